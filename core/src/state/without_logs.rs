//! Reading a state document without its log threads, for commands that show one action or a
//! summary (`status`, `logs RUN LABEL`, `inspect`): the log threads are most of a large run's
//! state (hundreds of entries per action), and passing over them costs a fraction of building
//! them.
//!
//! The document is read by the same seed as [`RunState::from_json`](super::RunState::from_json),
//! through a deserializer that hides the `log` entries it is not asked for, so the two readers
//! cannot drift apart as fields are added.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::CowStrDeserializer;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, Visitor};

use crate::model::{ActionIdx, Plan};

/// Which log thread to keep: the one of the action labelled `label`, if any.
#[derive(Clone, Copy)]
pub(super) struct Keep<'p> {
    pub(super) label: Option<&'p str>,
}

impl<'p> Keep<'p> {
    pub(super) fn action(plan: &'p Plan, idx: Option<ActionIdx>) -> Self {
        Keep {
            label: idx
                .filter(|&i| (i as usize) < plan.len())
                .map(|i| plan.label(i)),
        }
    }
}

/// What the hidden part of a map is: the document, the map of actions, or one action's entry.
#[derive(Clone, Copy, PartialEq)]
enum Level {
    Document,
    Actions,
    Entry,
}

/// A deserializer that hides `log` entries (see the module documentation).
pub(super) struct WithoutLogs<'p, D> {
    inner: D,
    level: Level,
    keep: Keep<'p>,
}

impl<'p, D> WithoutLogs<'p, D> {
    pub(super) fn document(inner: D, keep: Keep<'p>) -> Self {
        WithoutLogs {
            inner,
            level: Level::Document,
            keep,
        }
    }
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for WithoutLogs<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = Hiding {
            visitor,
            level: self.level,
            keep: self.keep,
        };
        self.inner.deserialize_any(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = Hiding {
            visitor,
            level: self.level,
            keep: self.keep,
        };
        self.inner.deserialize_map(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = Hiding {
            visitor,
            level: self.level,
            keep: self.keep,
        };
        self.inner.deserialize_struct(name, fields, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct enum identifier
        ignored_any
    }
}

/// The visitor of a map whose `log` entries are hidden; anything but a map goes to the visitor
/// it wraps, to refuse in its own words.
struct Hiding<'p, V> {
    visitor: V,
    level: Level,
    keep: Keep<'p>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Hiding<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(HidingMap {
            map,
            level: self.level,
            keep: self.keep,
            next: Next::AsIs,
        })
    }
}

/// How the value after the key just read is handed on.
enum Next {
    AsIs,
    /// The map of actions: each entry hides its log unless it is the kept action's.
    Actions,
    /// An action's entry whose log is hidden.
    Entry,
}

struct HidingMap<'p, A> {
    map: A,
    level: Level,
    keep: Keep<'p>,
    next: Next,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for HidingMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.map.next_key::<Cow<'de, str>>()? else {
                return Ok(None);
            };
            self.next = match (self.level, key.as_ref()) {
                (Level::Document | Level::Entry, "log") => {
                    self.map.next_value::<IgnoredAny>()?;
                    continue;
                }
                (Level::Document, "actions") => Next::Actions,
                (Level::Actions, label) if Some(label) != self.keep.label => Next::Entry,
                _ => Next::AsIs,
            };
            let key: CowStrDeserializer<'de, A::Error> = key.into_deserializer();
            return seed.deserialize(key).map(Some);
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let level = match std::mem::replace(&mut self.next, Next::AsIs) {
            Next::AsIs => return self.map.next_value_seed(seed),
            Next::Actions => Level::Actions,
            Next::Entry => Level::Entry,
        };
        self.map.next_value_seed(HidingSeed {
            seed,
            level,
            keep: self.keep,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// Hands a value on to `seed` through [`WithoutLogs`] at `level`.
struct HidingSeed<'p, S> {
    seed: S,
    level: Level,
    keep: Keep<'p>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for HidingSeed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(WithoutLogs {
            inner: deserializer,
            level: self.level,
            keep: self.keep,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ActionStatus, Level, LogEntry, RunState, StateError};
    use crate::model::ActionIdx;
    use serde_json::json;

    /// Labels that are also the names of the document's and entries' fields.
    const PLAN: &str = r#"[
        {"label": "log", "type": "system.no_op"},
        {"label": "actions", "type": "system.no_op", "depends_on": ["log"]},
        {"label": "status", "type": "system.no_op", "depends_on": ["actions"]},
        {"label": "plain", "type": "system.no_op"}
    ]"#;

    fn state_with_logs() -> (crate::model::Plan, RunState) {
        let plan = crate::testutil::plan(PLAN);
        let now = chrono::Utc::now();
        let mut state = RunState::new("r", &plan, "sha", Default::default(), now);
        for i in 0..plan.len() as ActionIdx {
            let action = state.action_mut(i);
            action.status = ActionStatus::Complete;
            action.attempt = 1;
            action.outputs.insert("n".into(), json!(i));
            action.error = Some(format!("error {i}"));
            for k in 0..3 {
                state.mirror_log(
                    Some(i),
                    LogEntry {
                        t: now,
                        level: Level::Info,
                        msg: format!("line {k} of {i}"),
                    },
                );
            }
        }
        state.log_run(now, Level::Warn, "the run's own line");
        (plan, state)
    }

    #[test]
    fn only_the_kept_log_thread_is_read() {
        let (plan, state) = state_with_logs();
        let bytes = state.to_json(&plan);
        for keep in [None, Some(0), Some(1), Some(2), Some(3)] {
            let read = RunState::from_json_without_logs(&bytes, &plan, keep).expect("reads");
            let mut expected = RunState::from_json(&bytes, &plan).expect("reads in full");
            assert!(expected.actions.iter().all(|a| a.log.len() == 3));
            assert!(!expected.log.is_empty());
            expected.log.clear();
            for (i, action) in expected.actions.iter_mut().enumerate() {
                if Some(i as ActionIdx) != keep {
                    action.log.clear();
                }
            }
            assert_eq!(read, expected, "keeping {keep:?}");
        }
    }

    #[test]
    fn what_from_json_refuses_it_refuses() {
        let (plan, state) = state_with_logs();
        let bytes = state.to_json(&plan);
        let cut = &bytes[..bytes.len() - 10];
        assert!(matches!(
            RunState::from_json_without_logs(cut, &plan, None),
            Err(StateError::Truncated(_))
        ));
        let mut doc: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        doc["actions"]["plain"]["colour"] = json!("red");
        let bytes = serde_json::to_vec(&doc).expect("json");
        let both = (
            RunState::from_json(&bytes, &plan).map(drop),
            RunState::from_json_without_logs(&bytes, &plan, Some(0)).map(drop),
        );
        assert!(
            matches!(both, (Err(StateError::Invalid(a)), Err(StateError::Invalid(b))) if a.contains("colour") && b.contains("colour"))
        );
        doc["actions"]["plain"]
            .as_object_mut()
            .expect("entry")
            .remove("colour");
        doc["actions"]["nope"] = json!({"status": "pending"});
        let bytes = serde_json::to_vec(&doc).expect("json");
        let error = RunState::from_json_without_logs(&bytes, &plan, None).expect_err("foreign");
        assert!(
            error
                .to_string()
                .contains("\"nope\", which is not in the run's plan"),
            "{error}"
        );
    }
}
