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
        if let Some(t) = parse_own(&text) {
            return Ok(t);
        }
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&chrono::Utc).trunc_subsecs(3))
            .map_err(serde::de::Error::custom)
    }

    /// This format exactly (`2026-11-28T09:04:58.123Z`), as baton writes it: a state holds
    /// several per action, and the general RFC 3339 parser was a tenth of reading a state.
    /// `None` for anything else, which the general parser reads (or refuses).
    pub(crate) fn parse_own(text: &str) -> Option<Timestamp> {
        let b = text.as_bytes();
        let shape = b.len() == 24
            && [
                (4, b'-'),
                (7, b'-'),
                (10, b'T'),
                (13, b':'),
                (16, b':'),
                (19, b'.'),
                (23, b'Z'),
            ]
            .iter()
            .all(|&(at, c)| b[at] == c);
        if !shape {
            return None;
        }
        let number = |from: usize, to: usize| -> Option<u32> {
            b[from..to].iter().try_fold(0u32, |n, &c| {
                c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
            })
        };
        let date = chrono::NaiveDate::from_ymd_opt(
            i32::try_from(number(0, 4)?).ok()?,
            number(5, 7)?,
            number(8, 10)?,
        )?;
        let time = chrono::NaiveTime::from_hms_milli_opt(
            number(11, 13)?,
            number(14, 16)?,
            number(17, 19)?,
            number(20, 23)?,
        )?;
        Some(date.and_time(time).and_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The fast path reads what the general parser reads, and nothing it refuses.
        #[test]
        fn own_format_reads_as_rfc_3339(
            millis in 0i64..8_000_000_000_000,
            edit in proptest::option::of((0usize..24, proptest::char::any())),
        ) {
            use chrono::SubsecRound;
            let t = chrono::DateTime::from_timestamp_millis(millis).expect("in range");
            let mut text = ts::format(&t);
            if let Some((at, c)) = edit {
                let mut chars: Vec<char> = text.chars().collect();
                chars[at] = c;
                text = chars.into_iter().collect();
            }
            let general = chrono::DateTime::parse_from_rfc3339(&text)
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc).trunc_subsecs(3));
            let own = ts::parse_own(&text);
            proptest::prop_assert!(own.is_none() || own == general, "{}: {:?} {:?}", text, own, general);
            if edit.is_none() {
                proptest::prop_assert_eq!(own, Some(t));
            }
        }
    }

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
