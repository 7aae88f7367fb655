//! Timestamps and log entries: the vocabulary shared by the engine, the actions and the state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A point in time, always UTC.
pub type Timestamp = DateTime<Utc>;

/// How much a log entry matters, least first (so `>=` filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Detail for diagnosing baton or an action.
    Debug,
    /// Progress: what started, finished, was skipped or reset.
    Info,
    /// Something went wrong but the run goes on (a retry, a replayed attempt, an abort).
    Warn,
    /// An action or the run failed.
    Error,
}

impl Level {
    /// The name used in state documents and printed logs (`warn`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// One line of a log thread (the run's, or an action's), as stored in the state document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// When it was logged.
    #[serde(with = "ts")]
    pub t: Timestamp,
    /// How much it matters.
    pub level: Level,
    /// The message. Lines written by actions have the secrets the run knows of masked.
    pub msg: String,
}

/// RFC 3339 with milliseconds, `2026-11-28T09:04:58.123Z`: readable and compact.
pub mod ts {
    use super::Timestamp;
    use chrono::SecondsFormat;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes as this format (where a `with` attribute cannot be used).
    pub(crate) struct Text(pub(crate) Timestamp);

    impl Serialize for Text {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize(&self.0, s)
        }
    }

    /// `2026-11-28T09:04:58.123Z`.
    pub fn format(t: &Timestamp) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub(crate) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    /// Any RFC 3339 time, converted to UTC.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(serde::de::Error::custom)
    }
}
