//! The run's state document: one JSON object per version. In memory, action states are indexed
//! like the plan; on disk they are keyed by label (pending actions with nothing to say omitted).

use std::collections::{HashMap, VecDeque};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::model::{ActionIdx, Plan};

pub const FORMAT: u32 = 1;
/// Entries kept per log thread; older entries are dropped first.
pub const LOG_RING: usize = 200;

pub type Timestamp = DateTime<Utc>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    Pending,
    Running,
    Complete,
    Failed,
    Skipped,
    Blocked,
    Cancelled,
}

impl ActionStatus {
    pub const ALL: [ActionStatus; 7] = [
        ActionStatus::Pending,
        ActionStatus::Running,
        ActionStatus::Complete,
        ActionStatus::Failed,
        ActionStatus::Skipped,
        ActionStatus::Blocked,
        ActionStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Pending => "pending",
            ActionStatus::Running => "running",
            ActionStatus::Complete => "complete",
            ActionStatus::Failed => "failed",
            ActionStatus::Skipped => "skipped",
            ActionStatus::Blocked => "blocked",
            ActionStatus::Cancelled => "cancelled",
        }
    }

    /// Done and lets dependents run.
    pub fn satisfies_dependents(self) -> bool {
        matches!(self, ActionStatus::Complete | ActionStatus::Skipped)
    }

    /// Done and stops dependents from running.
    pub fn blocks_dependents(self) -> bool {
        matches!(
            self,
            ActionStatus::Failed | ActionStatus::Blocked | ActionStatus::Cancelled
        )
    }

    pub fn is_terminal(self) -> bool {
        self.satisfies_dependents() || self.blocks_dependents()
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Waiting,
    Succeeded,
    Failed,
    Aborted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Aborted => "aborted",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Aborted
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    #[serde(with = "ts")]
    pub t: Timestamp,
    pub level: Level,
    pub msg: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionState {
    pub status: ActionStatus,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
    #[serde(default, with = "ts_opt", skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, with = "ts_opt", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// When a running action is next checked, or when a pending retry may start.
    #[serde(default, with = "ts_opt", skip_serializing_if = "Option::is_none")]
    pub next_check_at: Option<Timestamp>,
    /// What the executor needs to check or cancel running work (e.g. a stack id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub outputs: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For blocked actions: the failed or cancelled ancestor that blocked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub log: VecDeque<LogEntry>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Default for ActionState {
    fn default() -> Self {
        ActionState {
            status: ActionStatus::Pending,
            attempt: 0,
            started_at: None,
            finished_at: None,
            next_check_at: None,
            handle: None,
            outputs: Map::new(),
            error: None,
            blocked_by: None,
            log: VecDeque::new(),
        }
    }
}

impl ActionState {
    fn is_default(&self) -> bool {
        self == &ActionState::default()
    }

    pub fn push_log(&mut self, entry: LogEntry) {
        push_ring(&mut self.log, entry);
    }
}

fn push_ring(ring: &mut VecDeque<LogEntry>, entry: LogEntry) {
    if ring.len() >= LOG_RING {
        ring.pop_front();
    }
    ring.push_back(entry);
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    pub format: u32,
    pub run_id: String,
    pub plan_sha256: String,
    pub status: RunStatus,
    pub invocations: u64,
    pub abort_requested: bool,
    pub vars: Map<String, Value>,
    /// The Step Functions state machine driving the run (remote runs), so `watch`, `abort
    /// --hard` and `retry` find its executions.
    pub state_machine: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Indexed like `Plan::actions`.
    pub actions: Vec<ActionState>,
    pub log: VecDeque<LogEntry>,
}

impl RunState {
    pub fn new(
        run_id: &str,
        plan: &Plan,
        plan_sha256: &str,
        vars: Map<String, Value>,
        now: Timestamp,
    ) -> Self {
        let mut state = RunState {
            format: FORMAT,
            run_id: run_id.to_string(),
            plan_sha256: plan_sha256.to_string(),
            status: RunStatus::Running,
            invocations: 0,
            abort_requested: false,
            vars,
            state_machine: None,
            created_at: now,
            updated_at: now,
            actions: vec![ActionState::default(); plan.len()],
            log: VecDeque::new(),
        };
        state.log_run(
            now,
            Level::Info,
            format!("run created from {} ({} actions)", plan.source, plan.len()),
        );
        state
    }

    pub fn action(&self, idx: ActionIdx) -> &ActionState {
        &self.actions[idx as usize]
    }

    pub fn action_mut(&mut self, idx: ActionIdx) -> &mut ActionState {
        &mut self.actions[idx as usize]
    }

    pub fn log_run(&mut self, t: Timestamp, level: Level, msg: impl Into<String>) {
        push_ring(
            &mut self.log,
            LogEntry {
                t,
                level,
                msg: msg.into(),
            },
        );
    }

    pub fn log_action(
        &mut self,
        idx: ActionIdx,
        t: Timestamp,
        level: Level,
        msg: impl Into<String>,
    ) {
        self.actions[idx as usize].push_log(LogEntry {
            t,
            level,
            msg: msg.into(),
        });
    }

    /// How many actions are in each status, in `ActionStatus::ALL` order.
    pub fn counts(&self) -> [usize; 7] {
        let mut counts = [0; 7];
        for action in &self.actions {
            counts[action.status as usize] += 1;
        }
        counts
    }

    pub fn count(&self, status: ActionStatus) -> usize {
        self.counts()[status as usize]
    }

    /// Serializes with labels from `plan` (compact JSON).
    pub fn to_json(&self, plan: &Plan) -> Vec<u8> {
        // Plain data into a Vec: cannot fail.
        serde_json::to_vec(&Document { state: self, plan }).unwrap_or_default()
    }

    pub fn to_json_pretty(&self, plan: &Plan) -> Vec<u8> {
        serde_json::to_vec_pretty(&Document { state: self, plan }).unwrap_or_default()
    }

    /// Parses a state document for `plan`, refusing anything damaged or foreign.
    pub fn from_json(bytes: &[u8], plan: &Plan) -> Result<Self, String> {
        let raw: RawState = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_eof() {
                format!("the state document is truncated ({e})")
            } else {
                format!("the state document is not valid: {e}")
            }
        })?;
        if raw.format != FORMAT {
            return Err(format!(
                "state format {} is not supported by this baton (it reads format {FORMAT}); upgrade baton",
                raw.format
            ));
        }
        let mut actions = vec![ActionState::default(); plan.len()];
        for (label, action) in raw.actions {
            let idx = plan.find(&label).ok_or_else(|| {
                format!("the state mentions action \"{label}\", which is not in the run's plan")
            })?;
            actions[idx as usize] = action;
        }
        Ok(RunState {
            format: raw.format,
            run_id: raw.run_id,
            plan_sha256: raw.plan_sha256,
            status: raw.status,
            invocations: raw.invocations,
            abort_requested: raw.abort_requested,
            vars: raw.vars,
            state_machine: raw.state_machine,
            created_at: raw.created_at,
            updated_at: raw.updated_at,
            actions,
            log: raw.log,
        })
    }
}

struct Document<'a> {
    state: &'a RunState,
    plan: &'a Plan,
}

struct Actions<'a>(&'a Document<'a>);

impl Serialize for Actions<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Document { state, plan } = self.0;
        let mut map = serializer.serialize_map(None)?;
        for (action, def) in state.actions.iter().zip(&plan.actions) {
            if !action.is_default() {
                map.serialize_entry(&def.label, action)?;
            }
        }
        map.end()
    }
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let s = self.state;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("format", &s.format)?;
        map.serialize_entry("run_id", &s.run_id)?;
        map.serialize_entry("plan_sha256", &s.plan_sha256)?;
        map.serialize_entry("status", &s.status)?;
        map.serialize_entry("invocations", &s.invocations)?;
        map.serialize_entry("abort_requested", &s.abort_requested)?;
        map.serialize_entry("vars", &s.vars)?;
        if let Some(arn) = &s.state_machine {
            map.serialize_entry("state_machine", arn)?;
        }
        map.serialize_entry("created_at", &ts::Text(s.created_at))?;
        map.serialize_entry("updated_at", &ts::Text(s.updated_at))?;
        map.serialize_entry("actions", &Actions(self))?;
        map.serialize_entry("log", &s.log)?;
        map.end()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    format: u32,
    run_id: String,
    plan_sha256: String,
    status: RunStatus,
    invocations: u64,
    #[serde(default)]
    abort_requested: bool,
    #[serde(default)]
    vars: Map<String, Value>,
    #[serde(default)]
    state_machine: Option<String>,
    #[serde(with = "ts")]
    created_at: Timestamp,
    #[serde(with = "ts")]
    updated_at: Timestamp,
    actions: HashMap<String, ActionState>,
    #[serde(default)]
    log: VecDeque<LogEntry>,
}

/// RFC 3339 with milliseconds, `2026-11-28T09:04:58.123Z`: readable and compact.
pub mod ts {
    use super::Timestamp;
    use chrono::SecondsFormat;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub struct Text(pub Timestamp);

    impl Serialize for Text {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize(&self.0, s)
        }
    }

    pub fn format(t: &Timestamp) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(serde::de::Error::custom)
    }
}

mod ts_opt {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::ts::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::ts")] Timestamp);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}
