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

    /// Any RFC 3339 time, converted to UTC and cut to the milliseconds this format keeps, so
    /// a document read and written again says the same (a hand-edited `…:58.123456Z` would
    /// otherwise come back as `…:58.123Z`).
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        use chrono::SubsecRound;
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&chrono::Utc).trunc_subsecs(3))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_back_as_they_are_written() {
        let entry: LogEntry = serde_json::from_str(
            r#"{"t":"2026-11-28T09:04:58.1239999Z","level":"info","msg":"m"}"#,
        )
        .expect("parses");
        assert_eq!(ts::format(&entry.t), "2026-11-28T09:04:58.123Z");
        let again: LogEntry =
            serde_json::from_slice(&serde_json::to_vec(&entry).expect("json")).expect("parses");
        assert_eq!(again, entry);
    }
}
