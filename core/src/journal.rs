//! A run's state as checkpoints and a journal of deltas.
//!
//! Every save is still one new, numbered version written with compare-and-swap, but most are
//! **deltas**: the run-level fields, the entries of the actions that changed and the run log
//! lines added since the version they build on. A delta names that version (`base`, always the
//! one before it) and the **checkpoint** its chain starts from, a whole state document. Reading
//! version *n* reads its checkpoint and the deltas after it, and folds them in order.
//!
//! A save writes a checkpoint instead when it cannot know what changed (the state was not read
//! or saved as the version it replaces), when the chain already holds
//! [`MAX_DELTAS`](crate::changes::MAX_DELTAS) deltas (a bound on what one read fetches), or
//! when the chain's deltas would outweigh the checkpoint (a bound on storage: checkpoints cost
//! at most as much again as the journal, so a run stores about twice its journal plus its last
//! state, instead of every whole version). A checkpoint is streamed into stores that write
//! files, and a delta is measured before it is built, so a delta that will not be written is
//! never held and a checkpoint is held whole only by a store that sends it whole (S3).
//!
//! What changed is tracked as it happens ([`Changes`](crate::changes::Changes)): every change
//! to an action goes through `RunState::action_mut`, run log lines through `log_run`, and the
//! two wholesale replacements a merge makes are marked. Debug builds check each delta against
//! the whole state it stands for (`Run::save`).

use std::collections::VecDeque;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::changes::Chain;
use crate::model::{ActionIdx, Plan};
use crate::state::{push_ring, serialize_header, ActionState, Header, LogEntry, RunState};

/// The prefix every delta document starts with (whole documents start with `{"format"`).
const DELTA_PREFIX: &[u8] = b"{\"delta\":";

/// A delta's place: the version it builds on and its chain's checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeltaRef {
    pub(crate) checkpoint: u64,
    pub(crate) base: u64,
}

/// `Some` if `bytes` is a delta (its reference, or why it cannot be read), `None` if it is a
/// whole state document.
pub(crate) fn delta_ref(bytes: &[u8]) -> Option<Result<DeltaRef, String>> {
    let rest = bytes.strip_prefix(DELTA_PREFIX)?;
    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<DeltaRef>();
    Some(match values.next() {
        Some(Ok(delta)) => Ok(delta),
        Some(Err(e)) => Err(format!("its journal reference is not valid: {e}")),
        None => Err("its journal reference is missing".into()),
    })
}

/// Whether `bytes` is a delta rather than a whole state document.
pub(crate) fn is_delta(bytes: &[u8]) -> bool {
    bytes.starts_with(DELTA_PREFIX)
}

/// The delta from `state`'s basis to `state`, building on version `base` of chain `chain`, or
/// `None` if it would be larger than `room` bytes.
///
/// It is measured before it is built, and measuring stops as soon as it outgrows `room`: the
/// first tick of a large run, or one after `retry --from` its first action, changes almost
/// every action, and that delta, as large as the checkpoint written instead, is never held.
/// (Building it in a buffer bounded by `room` would not do: the allocator keeps a buffer that
/// size in its heap after it is freed, and the checkpoint is allocated beside it.)
pub(crate) fn delta_json(
    state: &RunState,
    plan: &Plan,
    base: u64,
    chain: &Chain,
    room: usize,
) -> Option<Vec<u8>> {
    let doc = DeltaDoc {
        state,
        plan,
        delta: DeltaRef {
            checkpoint: chain.checkpoint,
            base,
        },
    };
    let size = crate::util::json_size_within(&doc, room)?;
    let mut out = Vec::with_capacity(size);
    // Plain data into a Vec: cannot fail.
    let _ = serde_json::to_writer(&mut out, &doc);
    Some(out)
}

struct DeltaDoc<'a> {
    state: &'a RunState,
    plan: &'a Plan,
    delta: DeltaRef,
}

struct ChangedActions<'a>(&'a DeltaDoc<'a>);

impl Serialize for ChangedActions<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let DeltaDoc { state, plan, .. } = self.0;
        let mut map = serializer.serialize_map(None)?;
        for idx in state.changes.dirty() {
            if let Some(action) = state.actions.get(idx as usize) {
                map.serialize_entry(plan.label(idx), action)?;
            }
        }
        map.end()
    }
}

impl Serialize for DeltaDoc<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let state = self.state;
        let changes = &state.changes;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("delta", &self.delta)?;
        serialize_header(&mut map, state, changes.vars_rewritten())?;
        map.serialize_entry("actions", &ChangedActions(self))?;
        match changes.log_entries_added() {
            None => map.serialize_entry("log", &state.log)?,
            Some(added) => {
                let added = added.min(state.log.len());
                let skip = state.log.len() - added;
                let added: Vec<&LogEntry> = state.log.iter().skip(skip).collect();
                map.serialize_entry("log_added", &added)?;
            }
        }
        map.end()
    }
}

/// A delta, read.
pub(crate) struct Delta {
    pub(crate) at: DeltaRef,
    header: Header,
    actions: Vec<(ActionIdx, ActionState)>,
    log: LogChange,
}

enum LogChange {
    Added(Vec<LogEntry>),
    Replaced(VecDeque<LogEntry>),
}

impl Delta {
    /// Reads a delta for `plan`.
    pub(crate) fn from_json(bytes: &[u8], plan: &Plan) -> Result<Delta, String> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let delta = DeltaSeed { plan }
            .deserialize(&mut deserializer)
            .and_then(|delta| deserializer.end().map(|()| delta))
            .map_err(|e| format!("the journal delta is not valid: {e}"))?;
        Ok(delta)
    }

    /// Folds the delta into `state`, the version it builds on.
    pub(crate) fn apply(self, state: &mut RunState) -> Result<(), String> {
        let (run_id, plan_sha256) = (state.run_id.clone(), state.plan_sha256.clone());
        self.header
            .apply_to::<serde_json::Error>(state)
            .map_err(|e| format!("the journal delta is not valid: {e}"))?;
        if state.run_id != run_id || state.plan_sha256 != plan_sha256 {
            return Err(format!(
                "the journal delta belongs to another run ({} of plan {}, not {run_id} of plan \
                 {plan_sha256})",
                state.run_id, state.plan_sha256
            ));
        }
        for (idx, action) in self.actions {
            state.actions[idx as usize] = action;
        }
        match self.log {
            LogChange::Added(entries) => {
                for entry in entries {
                    push_ring(&mut state.log, entry);
                }
            }
            LogChange::Replaced(log) => state.log = log,
        }
        Ok(())
    }
}

struct DeltaSeed<'p> {
    plan: &'p Plan,
}

impl<'de> DeserializeSeed<'de> for DeltaSeed<'_> {
    type Value = Delta;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Delta, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DeltaSeed<'_> {
    type Value = Delta;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a baton journal delta")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Delta, A::Error> {
        use serde::de::Error;
        let mut header = Header::default();
        let mut at = None;
        let mut actions = Vec::new();
        let mut log = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "delta" => at = Some(map.next_value()?),
                "actions" => actions = map.next_value_seed(ChangedSeed { plan: self.plan })?,
                "log" => log = Some(LogChange::Replaced(map.next_value()?)),
                "log_added" => log = Some(LogChange::Added(map.next_value()?)),
                other => {
                    if !header.read(other, &mut map)? {
                        return Err(A::Error::unknown_field(other, &["delta", "actions", "log"]));
                    }
                }
            }
        }
        Ok(Delta {
            at: at.ok_or_else(|| A::Error::missing_field("delta"))?,
            header,
            actions,
            log: log.unwrap_or(LogChange::Added(Vec::new())),
        })
    }
}

struct ChangedSeed<'p> {
    plan: &'p Plan,
}

impl<'de> DeserializeSeed<'de> for ChangedSeed<'_> {
    type Value = Vec<(ActionIdx, ActionState)>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ChangedSeed<'_> {
    type Value = Vec<(ActionIdx, ActionState)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of action states by label")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut actions = Vec::new();
        while let Some(label) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let idx = self.plan.find(&label).ok_or_else(|| {
                <A::Error as serde::de::Error>::custom(format!(
                    "the delta mentions action \"{label}\", which is not in the run's plan"
                ))
            })?;
            actions.push((idx, map.next_value()?));
        }
        Ok(actions)
    }
}
