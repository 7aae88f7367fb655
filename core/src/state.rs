//! The run's state document: one JSON object per version. In memory, action states are indexed
//! like the plan; on disk they are keyed by label (pending actions with nothing to say omitted).

use std::collections::VecDeque;
use std::fmt;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::model::{ActionIdx, Plan, Texts};
use crate::process::ProcessRecord;

/// The state document format this baton reads and writes; documents in another format are
/// refused ([`StateError::Format`]).
pub const FORMAT: u32 = 1;
/// Entries kept per log thread; older entries are dropped first.
pub(crate) const LOG_RING: usize = 200;

pub use crate::log::{ts, Level, LogEntry, Timestamp};

mod without_logs;

/// Where one action is in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Not started: waiting for its dependencies, or for a retry's delay.
    Pending,
    /// An attempt is under way.
    Running,
    /// Succeeded: its outputs are set, and its dependents may run.
    Complete,
    /// Failed for good (no retry left, or not retryable); its dependents are blocked.
    Failed,
    /// Its condition was false; for its dependents it counts as complete.
    Skipped,
    /// Will not run: an ancestor failed or was cancelled (see [`ActionState::blocked_by`]).
    Blocked,
    /// An operator's abort stopped it, or came before it started.
    Cancelled,
}

impl ActionStatus {
    /// Every status, in declaration order (the order of [`RunState::counts`]).
    pub const ALL: [ActionStatus; 7] = [
        ActionStatus::Pending,
        ActionStatus::Running,
        ActionStatus::Complete,
        ActionStatus::Failed,
        ActionStatus::Skipped,
        ActionStatus::Blocked,
        ActionStatus::Cancelled,
    ];

    /// The name used in state documents and output (`complete`).
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
    pub(crate) fn blocks_dependents(self) -> bool {
        matches!(
            self,
            ActionStatus::Failed | ActionStatus::Blocked | ActionStatus::Cancelled
        )
    }

    /// Done either way: it changes again only if an operator re-executes it.
    pub fn is_terminal(self) -> bool {
        self.satisfies_dependents() || self.blocks_dependents()
    }
}

impl fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the run as a whole is, as the last tick left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Work can proceed now: the next tick is due at once (also a new run's status).
    Running,
    /// Only running or delayed work remains: the next tick is due later.
    Waiting,
    /// Every action completed or was skipped.
    Succeeded,
    /// Nothing more can run, and some action failed or was blocked.
    Failed,
    /// An operator aborted the run.
    Aborted,
}

impl RunStatus {
    /// The name used in state documents and output (`succeeded`).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Aborted => "aborted",
        }
    }

    /// No tick is due: only an operator's re-execution starts the run again.
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

/// One action's part of the state document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionState {
    /// Where the action is.
    pub status: ActionStatus,
    /// The latest attempt's number; 0 before the first. Re-executions keep counting.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
    /// When the latest attempt started (action timeouts count from it); `None` before the
    /// first and after a reset.
    #[serde(default, with = "ts_opt", skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When the action completed, failed, was skipped or was cancelled while running; `None`
    /// until then.
    #[serde(default, with = "ts_opt", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// When a running action is next checked, or when a pending retry may start.
    #[serde(default, with = "ts_opt", skip_serializing_if = "Option::is_none")]
    pub next_check_at: Option<Timestamp>,
    /// What the executor needs to check or cancel running work (e.g. a stack id). Boxed, like
    /// `outputs`: most actions have neither, and inline they cost 128 B per action (13 MB at
    /// 100k actions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<Box<Value>>,
    /// What the action produced when it completed, for the templates of the actions that
    /// read it; empty otherwise.
    #[serde(default, skip_serializing_if = "Outputs::is_empty")]
    pub outputs: Outputs,
    /// Why the last attempt failed, or why the action was cancelled. Kept while a retry
    /// waits; cleared when it completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For blocked actions: the failed or cancelled ancestor that blocked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    /// The action's log thread, oldest first; only the newest 200 entries are kept.
    #[serde(
        default,
        skip_serializing_if = "VecDeque::is_empty",
        deserialize_with = "exact_log"
    )]
    pub log: VecDeque<LogEntry>,
    /// Where a running command's processes are (saved as soon as it has started). Boxed like
    /// `handle`: only running commands have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Box<ProcessRecord>>,
    /// What baton did to the action's running work when it stopped it (abort, signal, quit),
    /// or why it left it running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Box<StopRecord>>,
}

pub use crate::process::StopCause;

/// What became of an action's running work when baton stopped the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopFate {
    /// baton stopped it (a command's process group, a wait, a stack update).
    Stopped,
    /// It keeps running where baton cannot stop it (a stack being created, a type that cannot
    /// cancel, a command on another host).
    LeftRunning,
}

/// What baton did to an action's running work when it stopped the run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopRecord {
    /// What asked for the stop.
    pub cause: StopCause,
    /// Stopped, or left running.
    pub fate: StopFate,
    /// How it was stopped, or why it was left running.
    pub detail: String,
}

/// What a stop did to each action of a run, from the actions' [`StopRecord`]s: what both the
/// command line and the console show after an abort.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopReport {
    /// Running work baton stopped, and how.
    pub stopped: Vec<(ActionIdx, String)>,
    /// Running work left running, and why.
    pub left_running: Vec<(ActionIdx, String)>,
    /// Actions an abort cancelled before they started.
    pub not_started: Vec<ActionIdx>,
}

impl StopReport {
    /// Nothing was running and nothing was waiting to start.
    pub fn is_empty(&self) -> bool {
        self.stopped.is_empty() && self.left_running.is_empty() && self.not_started.is_empty()
    }
}

/// An action's outputs: a map that takes no allocation while it is empty, which it is for most
/// actions (a boxed empty map cost 80 B per action, 8 MB of a 100k-action state). Reads and
/// writes go through the map it derefs to.
#[derive(Debug, Clone, Default)]
pub struct Outputs(Option<Box<Map<String, Value>>>);

static NO_OUTPUTS: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl Outputs {
    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|map| map.is_empty())
    }
}

impl From<Map<String, Value>> for Outputs {
    fn from(map: Map<String, Value>) -> Self {
        Outputs((!map.is_empty()).then(|| Box::new(map)))
    }
}

impl std::ops::Deref for Outputs {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Self::Target {
        self.0.as_deref().unwrap_or(&NO_OUTPUTS)
    }
}

impl std::ops::DerefMut for Outputs {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.get_or_insert_with(Box::default)
    }
}

impl PartialEq for Outputs {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Serialize for Outputs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Outputs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::deserialize(deserializer).map(Outputs::from)
    }
}

/// A log thread read with room for exactly its lines: grown one line at a time it reserves
/// four, and most actions of a finished run have one (16 MB at 100k actions).
fn exact_log<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<VecDeque<LogEntry>, D::Error> {
    let mut lines = Vec::<LogEntry>::deserialize(deserializer)?;
    lines.shrink_to_fit();
    Ok(VecDeque::from(lines))
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
            outputs: Outputs::default(),
            error: None,
            blocked_by: None,
            log: VecDeque::new(),
            process: None,
            stop: None,
        }
    }
}

/// About what a log thread takes in a state document.
fn estimated_log_len(log: &VecDeque<LogEntry>) -> usize {
    log.iter().map(|e| e.msg.len() + 64).sum()
}

impl ActionState {
    /// About what the action takes in a state document, under `label`: a little more rather
    /// than less, so that a buffer sized by it does not grow by doubling.
    fn estimated_json_len(&self, label: &str) -> usize {
        label.len()
            + 128
            + estimated_log_len(&self.log)
            + self.error.as_ref().map_or(0, |e| e.len() + 16)
            + self.blocked_by.as_ref().map_or(0, |b| b.len() + 16)
            + self.process.as_ref().map_or(0, |p| p.host.len() + 160)
            + self.stop.as_ref().map_or(0, |s| s.detail.len() + 64)
            + if self.outputs.is_empty() && self.handle.is_none() {
                0
            } else {
                256
            }
    }

    fn is_default(&self) -> bool {
        self == &ActionState::default()
    }

    /// Appends to the action's log thread (the oldest entry goes when it is full).
    pub fn push_log(&mut self, entry: LogEntry) {
        push_ring(&mut self.log, entry);
    }

    fn log(&mut self, t: Timestamp, level: Level, msg: impl Into<String>) {
        self.push_log(LogEntry {
            t,
            level,
            msg: msg.into(),
        });
    }

    /// A new attempt starts now; returns its number.
    pub(crate) fn begin_attempt(&mut self, now: Timestamp) -> u32 {
        self.attempt += 1;
        self.status = ActionStatus::Running;
        self.started_at = Some(now);
        self.finished_at = None;
        self.next_check_at = None;
        self.handle = None;
        self.blocked_by = None;
        self.process = None;
        self.stop = None;
        self.attempt
    }

    /// The attempt's command has started: where its processes are.
    pub(crate) fn record_process(&mut self, record: ProcessRecord) {
        self.process = Some(Box::new(record));
    }

    /// The attempt succeeded with `outputs`.
    pub(crate) fn complete(&mut self, outputs: Map<String, Value>, now: Timestamp) {
        self.status = ActionStatus::Complete;
        self.finished_at = Some(now);
        self.next_check_at = None;
        self.handle = None;
        self.process = None;
        self.error = None;
        self.outputs = Outputs::from(outputs);
    }

    /// The attempt is still running elsewhere: check it at `next_check` with `handle`.
    pub(crate) fn keep_running(&mut self, handle: Value, next_check: Timestamp) {
        self.status = ActionStatus::Running;
        self.handle = Some(Box::new(handle));
        self.next_check_at = Some(next_check);
    }

    /// The attempt failed but another may start at `at`.
    pub(crate) fn retry_later(
        &mut self,
        error: String,
        at: Timestamp,
        now: Timestamp,
        note: String,
    ) {
        self.status = ActionStatus::Pending;
        self.handle = None;
        self.process = None;
        self.error = Some(error);
        self.next_check_at = Some(at);
        self.log(now, Level::Warn, note);
    }

    /// The action failed for good.
    pub(crate) fn fail(&mut self, error: String, now: Timestamp) {
        self.status = ActionStatus::Failed;
        self.finished_at = Some(now);
        self.next_check_at = None;
        self.handle = None;
        self.process = None;
        self.log(now, Level::Error, error.clone());
        self.error = Some(error);
    }

    /// An operator's abort stopped the action's running work, or left it running: `record`
    /// says which, and how or why.
    pub(crate) fn cancel(&mut self, record: StopRecord, now: Timestamp) {
        let what = match record.fate {
            StopFate::Stopped => "stopped",
            StopFate::LeftRunning => "left running",
        };
        self.status = ActionStatus::Cancelled;
        self.finished_at = Some(now);
        self.next_check_at = None;
        self.process = None;
        self.error = Some(format!(
            "aborted by an operator ({what}: {})",
            record.detail
        ));
        self.log(
            now,
            Level::Warn,
            format!("aborted: {what}: {}", record.detail),
        );
        self.stop = Some(Box::new(record));
    }

    /// baton stopped the action's command before it finished (a signal, quitting the console)
    /// and its outcome is unknown: it fails for the operator to decide, like an interruption.
    pub(crate) fn fail_stopped(&mut self, record: StopRecord, now: Timestamp) {
        self.fail(
            format!(
                "stopped by baton ({}) before it finished; outcome unknown: check its effects, \
                 then re-execute it (baton retry --failed) or mark it idempotent",
                record.cause
            ),
            now,
        );
        self.stop = Some(Box::new(record));
    }

    /// baton stopped the action's command before it finished; it is safe to run again, so it
    /// is pending again as the same attempt (like an interrupted replay).
    pub(crate) fn replay_stopped(&mut self, record: StopRecord, now: Timestamp) {
        self.status = ActionStatus::Pending;
        self.started_at = None;
        self.process = None;
        self.log(
            now,
            Level::Warn,
            format!(
                "attempt {} was stopped by baton on {} ({}); it runs again when the run is \
                 resumed (idempotent)",
                self.attempt, record.cause, record.detail
            ),
        );
        self.attempt = self.attempt.saturating_sub(1);
        self.stop = Some(Box::new(record));
    }

    /// An operator's abort came before the action started.
    pub(crate) fn cancel_pending(&mut self) {
        self.status = ActionStatus::Cancelled;
        self.next_check_at = None;
        // An earlier stop (a signal) of an attempt that was to run again is not this abort's.
        self.stop = None;
        self.error = Some("aborted by an operator before it started".into());
    }

    /// A failed or cancelled ancestor (`by`) keeps the action from running.
    pub(crate) fn block(&mut self, by: String) {
        self.status = ActionStatus::Blocked;
        self.blocked_by = Some(by);
        self.next_check_at = None;
    }

    /// Its condition is false.
    pub(crate) fn skip(&mut self, now: Timestamp, note: String) {
        self.status = ActionStatus::Skipped;
        self.finished_at = Some(now);
        self.log(now, Level::Info, note);
    }

    /// An attempt interrupted with an unknown outcome is run again as the same attempt: it
    /// keeps its idempotency token, so a start that reached AWS before the crash is recognised
    /// rather than repeated, and it does not use up a retry.
    pub(crate) fn replay_interrupted(&mut self, now: Timestamp) {
        self.status = ActionStatus::Pending;
        self.started_at = None;
        self.process = None;
        self.log(
            now,
            Level::Warn,
            format!(
                "attempt {} was interrupted; replaying it (idempotent)",
                self.attempt
            ),
        );
        self.attempt = self.attempt.saturating_sub(1);
    }

    /// Back to pending for a re-execution (attempt numbers keep counting, so the next attempt
    /// gets a new idempotency token).
    pub(crate) fn reset(&mut self, now: Timestamp, description: &str) {
        let previous = self.status;
        self.status = ActionStatus::Pending;
        self.started_at = None;
        self.finished_at = None;
        self.next_check_at = None;
        self.handle = None;
        self.outputs = Outputs::default();
        self.error = None;
        self.blocked_by = None;
        self.process = None;
        self.stop = None;
        self.log(
            now,
            Level::Info,
            format!("reset for re-execution ({description}; was {previous})"),
        );
    }
}

pub(crate) fn push_ring(ring: &mut VecDeque<LogEntry>, entry: LogEntry) {
    if ring.len() >= LOG_RING {
        ring.pop_front();
    } else if ring.len() < 4 && ring.len() == ring.capacity() {
        // Most threads hold a line or two: room for four each would be most of a large
        // state's log memory.
        ring.reserve_exact(1);
    }
    ring.push_back(entry);
}

/// A driver's claim on a run. It lapses at `until` (a crashed driver cannot release it); a live
/// driver renews it while it works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    /// The driving process and tick, in words for operators:
    /// `baton pid 7 on build-1 (3fa2c1) tick 3`.
    pub holder: String,
    /// When the claim lapses unless renewed.
    #[serde(with = "ts")]
    pub until: Timestamp,
}

/// A run's state: one version of the state document. Its parts stay consistent with the plan
/// and with each other (one entry per action, statuses the scheduler can reach), so they are
/// read through methods and changed through the engine's transitions and the few operator
/// changes below.
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    pub(crate) format: u32,
    pub(crate) run_id: String,
    pub(crate) plan_sha256: String,
    pub(crate) status: RunStatus,
    pub(crate) invocations: u64,
    pub(crate) abort_requested: bool,
    pub(crate) vars: Map<String, Value>,
    /// The Step Functions state machine driving the run (remote runs), so `watch`, `abort
    /// --hard` and `retry` find its executions.
    pub(crate) state_machine: Option<String>,
    /// Where status hooks are published (`--hooks`); `None`: they are only logged.
    pub(crate) hook_sink: Option<crate::hooks::sink::HookSink>,
    /// Who is driving the run right now, on stores that cannot lock (S3): a tick claims the
    /// lease with a compare-and-swap save before doing anything and clears it when it ends.
    pub(crate) driver: Option<Lease>,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    /// Indexed like the plan's actions.
    pub(crate) actions: Vec<ActionState>,
    pub(crate) log: VecDeque<LogEntry>,
    /// What changed since the version this state was read as or last saved as: what the next
    /// save writes when it can write a delta (see [`crate::journal`]). Never compared.
    pub(crate) changes: crate::changes::Changes,
}

impl RunState {
    /// The document's format number.
    pub fn format(&self) -> u32 {
        self.format
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The sha256 of the plan this state belongs to.
    pub fn plan_sha256(&self) -> &str {
        &self.plan_sha256
    }

    /// The run's status.
    pub fn status(&self) -> RunStatus {
        self.status
    }

    /// Ticks performed on the run so far.
    pub fn invocations(&self) -> u64 {
        self.invocations
    }

    /// Whether an operator asked the run to stop.
    pub fn abort_requested(&self) -> bool {
        self.abort_requested
    }

    /// Run variables (`--var`), readable as `vars.NAME` in templates.
    pub fn vars(&self) -> &Map<String, Value> {
        &self.vars
    }

    /// The Step Functions state machine driving the run (submitted runs).
    pub fn state_machine(&self) -> Option<&str> {
        self.state_machine.as_deref()
    }

    /// The lease of the driver working on the run right now (S3 stores).
    pub fn driver(&self) -> Option<&Lease> {
        self.driver.as_ref()
    }

    /// When the run was created.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }

    /// When this version was saved.
    pub fn updated_at(&self) -> Timestamp {
        self.updated_at
    }

    /// Every action's state, indexed like the plan's actions.
    pub fn actions(&self) -> &[ActionState] {
        &self.actions
    }

    /// The run's own log thread, oldest first.
    pub fn log(&self) -> &VecDeque<LogEntry> {
        &self.log
    }

    /// An operator asks the run to stop: the next tick cancels what it can and ends the run
    /// `aborted`.
    pub fn request_abort(&mut self) {
        self.abort_requested = true;
    }

    /// A view following the engine through observer messages takes an action's new state.
    pub fn mirror_action(&mut self, idx: ActionIdx, action: ActionState) {
        *self.action_mut(idx) = action;
    }

    /// A view following the engine through observer messages takes a log line: the action's
    /// (`Some`) or the run's.
    pub fn mirror_log(&mut self, idx: Option<ActionIdx>, entry: LogEntry) {
        match idx {
            Some(idx) => self.action_mut(idx).push_log(entry),
            None => {
                self.changes.log_pushed();
                push_ring(&mut self.log, entry);
            }
        }
    }

    /// What stopping the run did to each action: from the actions' stop records, and the
    /// actions an abort cancelled before they started.
    pub fn stop_report(&self) -> StopReport {
        let mut report = StopReport::default();
        for (idx, action) in self.actions.iter().enumerate() {
            let idx = idx as ActionIdx;
            match action.stop.as_deref() {
                Some(record) if record.fate == StopFate::Stopped => {
                    report.stopped.push((idx, record.detail.clone()));
                }
                Some(record) => report.left_running.push((idx, record.detail.clone())),
                None if action.status == ActionStatus::Cancelled => report.not_started.push(idx),
                None => {}
            }
        }
        report
    }

    /// Where the run's status hooks are published, if anywhere.
    pub fn hook_sink(&self) -> Option<&crate::hooks::sink::HookSink> {
        self.hook_sink.as_ref()
    }

    /// Records where the run's status hooks are published.
    pub fn set_hook_sink(&mut self, sink: Option<crate::hooks::sink::HookSink>) {
        self.hook_sink = sink;
    }

    /// Records the Step Functions state machine that drives the run.
    pub fn set_state_machine(&mut self, arn: Option<String>) {
        self.state_machine = arn;
    }
}

impl RunState {
    /// The first state of a new run: every action pending, status running.
    pub fn new(
        run_id: &str,
        plan: &Plan,
        plan_sha256: &str,
        vars: Map<String, Value>,
        now: Timestamp,
    ) -> Self {
        let mut state = RunState::without_actions(run_id, plan, plan_sha256, vars, now);
        state.actions = vec![ActionState::default(); plan.len()];
        state
    }

    /// [`RunState::new`] before its actions' states are allocated: enough to write the first
    /// document, which leaves out every action at its default (that is, all of them).
    pub(crate) fn without_actions(
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
            hook_sink: None,
            driver: None,
            created_at: now,
            updated_at: now,
            actions: Vec::new(),
            log: VecDeque::new(),
            changes: crate::changes::Changes::default(),
        };
        state.log_run(
            now,
            Level::Info,
            format!("run created from {} ({} actions)", plan.source, plan.len()),
        );
        state
    }

    /// Action `idx`'s state. Panics if `idx` is not an index of the plan.
    pub fn action(&self, idx: ActionIdx) -> &ActionState {
        &self.actions[idx as usize]
    }

    /// Action `idx`'s state, to change: the one way actions change, so saves know what did.
    pub(crate) fn action_mut(&mut self, idx: ActionIdx) -> &mut ActionState {
        self.changes.action(idx);
        &mut self.actions[idx as usize]
    }

    /// Replaces the run's log thread (a merge interleaving another process's entries).
    pub(crate) fn replace_log(&mut self, log: VecDeque<LogEntry>) {
        self.changes.log_replaced();
        self.log = log;
    }

    /// Replaces the run's variables (a merge taking an operator's change).
    pub(crate) fn replace_vars(&mut self, vars: Map<String, Value>) {
        self.changes.vars_replaced();
        self.vars = vars;
    }

    pub(crate) fn log_run(&mut self, t: Timestamp, level: Level, msg: impl Into<String>) {
        self.changes.log_pushed();
        push_ring(
            &mut self.log,
            LogEntry {
                t,
                level,
                msg: msg.into(),
            },
        );
    }

    /// How many actions are in each status, in `ActionStatus::ALL` order.
    pub fn counts(&self) -> [usize; 7] {
        let mut counts = [0; 7];
        for action in &self.actions {
            counts[action.status as usize] += 1;
        }
        counts
    }

    /// "3 complete, 1 failed" in status order, skipping zeros.
    pub fn count_summary(&self) -> String {
        let counts = self.counts();
        let parts: Vec<String> = ActionStatus::ALL
            .iter()
            .filter(|s| counts[**s as usize] > 0)
            .map(|s| format!("{} {}", counts[*s as usize], s))
            .collect();
        if parts.is_empty() {
            "no actions".into()
        } else {
            parts.join(", ")
        }
    }

    /// How many actions are in `status`.
    pub fn count(&self, status: ActionStatus) -> usize {
        self.counts()[status as usize]
    }

    /// Serializes with labels from `plan` (compact JSON).
    pub fn to_json(&self, plan: &Plan) -> Vec<u8> {
        // Sized up front: growing by doubling would overshoot by up to 2x and, while it copies,
        // hold both buffers (12 MB + 16 MB at 100k actions, the peak of a Lambda tick).
        let mut out = Vec::with_capacity(self.estimated_json_len(plan));
        // Plain data into a Vec: cannot fail.
        let _ = serde_json::to_writer(&mut out, &Document { state: self, plan });
        out
    }

    /// Writes what [`to_json`](Self::to_json) returns into `out` (buffer it: the serializer
    /// writes a token at a time).
    pub(crate) fn write_json(&self, plan: &Plan, out: impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(out, &Document { state: self, plan }).map_err(std::io::Error::from)
    }

    /// A slight overestimate of the serialized size.
    pub(crate) fn estimated_json_len(&self, plan: &Plan) -> usize {
        let written =
            (0..self.actions.len() as ActionIdx).filter(|&i| !self.action(i).is_default());
        self.estimated_json_len_of(plan, written)
    }

    /// About the size of a document holding the run's fields and `actions` (labels from
    /// `plan`): a little more rather than less, so that a buffer sized by it does not grow by
    /// doubling (which overshoots by up to 2x and, while it copies, holds both buffers).
    fn estimated_json_len_of(
        &self,
        plan: &Plan,
        actions: impl Iterator<Item = ActionIdx>,
    ) -> usize {
        let actions: usize = actions
            .filter_map(|i| {
                Some(
                    self.actions
                        .get(i as usize)?
                        .estimated_json_len(plan.label(i)),
                )
            })
            .sum();
        512 + actions + estimated_log_len(&self.log)
    }

    /// Serializes with labels from `plan`, indented for people to read.
    pub fn to_json_pretty(&self, plan: &Plan) -> Vec<u8> {
        serde_json::to_vec_pretty(&Document { state: self, plan }).unwrap_or_default()
    }

    /// Parses a state document for `plan`, refusing anything damaged or foreign.
    pub fn from_json(bytes: &[u8], plan: &Plan) -> Result<Self, StateError> {
        use serde::de::DeserializeSeed;
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let state = StateSeed {
            place: Place::ByPlan(plan),
        }
        .deserialize(&mut deserializer)
        .and_then(|state| deserializer.end().map(|()| state))
        .map_err(|e| parse_error(e, bytes))?
        .of_this_format()?;
        state.check(plan)?;
        Ok(state)
    }
}

impl RunState {
    /// Like [`RunState::from_json`], but every log thread is left out (read past, not built)
    /// except action `keep_log`'s: for what shows a summary or one action (`status`, `logs RUN
    /// LABEL`, `inspect`). Everything else is read and checked as `from_json` reads and checks
    /// it. Not for saving: the log threads it leaves out would be lost.
    pub fn from_json_without_logs(
        bytes: &[u8],
        plan: &Plan,
        keep_log: Option<ActionIdx>,
    ) -> Result<Self, StateError> {
        let keep = without_logs::Keep::action(plan, keep_log);
        let state = Self::read_without_logs(bytes, Place::ByPlan(plan), keep)?;
        state.check(plan)?;
        Ok(state)
    }

    /// [`RunState::from_json_without_logs`] before the plan is at hand (it is being read on
    /// another thread): the actions' entries are taken in the order the document lists them,
    /// which is plan order in every document baton writes, and their labels are kept for
    /// [`RunState::in_plan_order`] to compare with the plan's. `keep_log`: the label of the
    /// action whose log thread to keep.
    pub(crate) fn from_json_in_order_without_logs(
        bytes: &[u8],
        keep_log: Option<&str>,
    ) -> Result<(Self, Texts), StateError> {
        let mut labels = Texts::default();
        let keep = without_logs::Keep { label: keep_log };
        let state = Self::read_without_logs(bytes, Place::InOrder(&mut labels), keep)?;
        Ok((state, labels))
    }

    /// Whether a state read by [`RunState::from_json_in_order_without_logs`] listed exactly
    /// `plan`'s actions in plan order; then it is checked against the plan as
    /// [`RunState::from_json_without_logs`] checks it.
    pub(crate) fn in_plan_order(
        &self,
        labels: &Texts,
        plan: &Plan,
    ) -> Option<Result<(), StateError>> {
        let same = labels.len() == plan.len()
            && (0..plan.len()).all(|i| labels.get(i) == plan.label(i as ActionIdx));
        same.then(|| self.check(plan))
    }

    fn read_without_logs(
        bytes: &[u8],
        place: Place<'_>,
        keep: without_logs::Keep<'_>,
    ) -> Result<Self, StateError> {
        use serde::de::DeserializeSeed;
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let state = StateSeed { place }
            .deserialize(without_logs::WithoutLogs::document(&mut deserializer, keep))
            .and_then(|state| deserializer.end().map(|()| state))
            .map_err(|e| parse_error(e, bytes))?;
        state.of_this_format()
    }

    /// Refuses a document of another format version.
    fn of_this_format(self) -> Result<Self, StateError> {
        if self.format != FORMAT {
            return Err(StateError::Format { found: self.format });
        }
        Ok(self)
    }
}

/// Why a state document did not parse, in the words of [`StateError`].
fn parse_error(e: serde_json::Error, bytes: &[u8]) -> StateError {
    if e.is_eof() {
        StateError::Truncated(e.to_string())
    } else if e.is_syntax() && nesting(bytes) > MAX_STATE_NESTING {
        // serde_json's guard against hostile nesting (no stack overflow).
        StateError::TooDeep {
            line: e.line(),
            column: e.column(),
        }
    } else {
        StateError::Invalid(e.to_string())
    }
}

/// Where a state document's action entries go: into the slot of the plan's action of that
/// label, or in the order they come (their labels kept, to compare with the plan's later).
enum Place<'p> {
    ByPlan(&'p Plan),
    InOrder(&'p mut Texts),
}

impl RunState {
    /// Refuses states no run can reach, which a tampered or hand-edited document can hold and
    /// which would otherwise be acted on: a finished run with unfinished actions (`resume`
    /// would exit 0 and run nothing), an action that started before a dependency ever ran.
    pub(crate) fn check(&self, plan: &Plan) -> Result<(), StateError> {
        let impossible = |what: String| Err(StateError::Inconsistent(what));
        if self.status.is_finished() {
            if let Some((idx, action)) = self
                .actions
                .iter()
                .enumerate()
                .find(|(_, a)| !a.status.is_terminal())
            {
                return impossible(format!(
                    "the run is {} but action \"{}\" is {}",
                    self.status,
                    plan.label(idx as ActionIdx),
                    action.status
                ));
            }
        }
        if self.status == RunStatus::Succeeded {
            if let Some((idx, action)) = self
                .actions
                .iter()
                .enumerate()
                .find(|(_, a)| !a.status.satisfies_dependents())
            {
                return impossible(format!(
                    "the run succeeded but action \"{}\" is {}",
                    plan.label(idx as ActionIdx),
                    action.status
                ));
            }
        }
        for (idx, action) in self.actions.iter().enumerate() {
            if action.attempt == 0 {
                continue;
            }
            // A dependency still waiting for its first attempt cannot have let it start.
            let never_ran = plan.deps[idx].iter().find(|&&dep| {
                let dep = &self.actions[dep as usize];
                dep.attempt == 0
                    && matches!(dep.status, ActionStatus::Pending | ActionStatus::Blocked)
            });
            if let Some(&dep) = never_ran {
                return impossible(format!(
                    "action \"{}\" ran (attempt {}) before its dependency \"{}\" ever did",
                    plan.label(idx as ActionIdx),
                    action.attempt,
                    plan.label(dep)
                ));
            }
        }
        Ok(())
    }
}

/// The deepest nesting serde_json reads (its recursion limit is 128).
const MAX_STATE_NESTING: usize = 127;

/// Why a state document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// It ends early (a torn write, a cut copy).
    #[error("the state document is truncated ({0})")]
    Truncated(String),
    /// More nesting than the reader allows.
    #[error(
        "the state document is not valid: nested too deeply (more than {max} levels of lists \
         and objects) at line {line} column {column}",
        max = MAX_STATE_NESTING
    )]
    TooDeep {
        /// Where the reader gave up.
        line: usize,
        /// Where the reader gave up.
        column: usize,
    },
    /// Not JSON, or not a state document for this plan.
    #[error("the state document is not valid: {0}")]
    Invalid(String),
    /// Parts that contradict each other: no run reaches such a state.
    #[error("the state document is not valid: it describes what no run can reach ({0})")]
    Inconsistent(String),
    /// Written by a newer baton.
    #[error("state format {found} is not supported by this baton (it reads format {FORMAT}); upgrade baton")]
    Format {
        /// The document's format number.
        found: u32,
    },
}

/// The deepest nesting of lists and objects in JSON text (strings skipped).
fn nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Reads a state document straight into plan order: each action's entry lands in its slot as
/// it is read (a label-keyed map in between cost ~50 MB at 100k actions).
struct StateSeed<'p> {
    place: Place<'p>,
}

impl<'de> serde::de::DeserializeSeed<'de> for StateSeed<'_> {
    type Value = RunState;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<RunState, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for StateSeed<'_> {
    type Value = RunState;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a baton state document")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RunState, A::Error> {
        use serde::de::Error;
        let mut place = self.place;
        let mut header = Header::default();
        let mut actions: Option<Vec<ActionState>> = None;
        let mut log = VecDeque::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "actions" => {
                    actions = Some(map.next_value_seed(ActionsSeed { place: &mut place })?)
                }
                "log" => log = map.next_value()?,
                other => {
                    if !header.read(other, &mut map)? {
                        return Err(A::Error::unknown_field(other, FIELDS));
                    }
                }
            }
        }
        let actions = actions.ok_or_else(|| A::Error::missing_field("actions"))?;
        header.into_state(actions, log)
    }
}

/// The run-level fields of a state document, as read: a whole document's, or a journal
/// delta's (which carries them all, the variables only when they changed).
#[derive(Default)]
pub(crate) struct Header {
    format: Option<u32>,
    run_id: Option<String>,
    plan_sha256: Option<String>,
    status: Option<RunStatus>,
    invocations: Option<u64>,
    abort_requested: bool,
    pub(crate) vars: Option<Map<String, Value>>,
    state_machine: Option<String>,
    hook_sink: Option<String>,
    driver: Option<Lease>,
    created_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
}

impl Header {
    /// Reads `key`'s value if it is a run-level field; `false` if it is not one.
    pub(crate) fn read<'de, A: serde::de::MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<bool, A::Error> {
        #[derive(Deserialize)]
        struct Ts(#[serde(with = "ts")] Timestamp);
        match key {
            "format" => self.format = Some(map.next_value()?),
            "run_id" => self.run_id = Some(map.next_value()?),
            "plan_sha256" => self.plan_sha256 = Some(map.next_value()?),
            "status" => self.status = Some(map.next_value()?),
            "invocations" => self.invocations = Some(map.next_value()?),
            "abort_requested" => self.abort_requested = map.next_value()?,
            "vars" => self.vars = Some(map.next_value()?),
            "state_machine" => self.state_machine = map.next_value()?,
            "hooks" => self.hook_sink = map.next_value()?,
            "driver" => self.driver = map.next_value()?,
            "created_at" => self.created_at = Some(map.next_value::<Ts>()?.0),
            "updated_at" => self.updated_at = Some(map.next_value::<Ts>()?.0),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A whole state from these fields (no variables if the document had none).
    pub(crate) fn into_state<E: serde::de::Error>(
        self,
        actions: Vec<ActionState>,
        log: VecDeque<LogEntry>,
    ) -> Result<RunState, E> {
        let mut state = RunState {
            format: 0,
            run_id: String::new(),
            plan_sha256: String::new(),
            status: RunStatus::Running,
            invocations: 0,
            abort_requested: false,
            vars: Map::new(),
            state_machine: None,
            hook_sink: None,
            driver: None,
            created_at: Timestamp::default(),
            updated_at: Timestamp::default(),
            actions,
            log,
            changes: crate::changes::Changes::default(),
        };
        self.apply_to(&mut state)?;
        Ok(state)
    }

    /// Sets `state`'s run-level fields to these (the variables only if present).
    pub(crate) fn apply_to<E: serde::de::Error>(self, state: &mut RunState) -> Result<(), E> {
        state.format = self.format.ok_or_else(|| E::missing_field("format"))?;
        state.run_id = self.run_id.ok_or_else(|| E::missing_field("run_id"))?;
        state.plan_sha256 = self
            .plan_sha256
            .ok_or_else(|| E::missing_field("plan_sha256"))?;
        state.status = self.status.ok_or_else(|| E::missing_field("status"))?;
        state.invocations = self
            .invocations
            .ok_or_else(|| E::missing_field("invocations"))?;
        state.abort_requested = self.abort_requested;
        if let Some(vars) = self.vars {
            state.vars = vars;
        }
        state.state_machine = self.state_machine;
        state.hook_sink = self
            .hook_sink
            .map(|text| crate::hooks::sink::HookSink::parse(&text).map_err(E::custom))
            .transpose()?;
        state.driver = self.driver;
        state.created_at = self
            .created_at
            .ok_or_else(|| E::missing_field("created_at"))?;
        state.updated_at = self
            .updated_at
            .ok_or_else(|| E::missing_field("updated_at"))?;
        Ok(())
    }
}

/// Writes the run-level fields of `s` into a document being serialized (`vars`: whether to
/// include the variables, which a journal delta leaves out unless they changed).
pub(crate) fn serialize_header<M: SerializeMap>(
    map: &mut M,
    s: &RunState,
    vars: bool,
) -> Result<(), M::Error> {
    map.serialize_entry("format", &s.format)?;
    map.serialize_entry("run_id", &s.run_id)?;
    map.serialize_entry("plan_sha256", &s.plan_sha256)?;
    map.serialize_entry("status", &s.status)?;
    map.serialize_entry("invocations", &s.invocations)?;
    map.serialize_entry("abort_requested", &s.abort_requested)?;
    if vars {
        map.serialize_entry("vars", &s.vars)?;
    }
    if let Some(arn) = &s.state_machine {
        map.serialize_entry("state_machine", arn)?;
    }
    if let Some(sink) = &s.hook_sink {
        map.serialize_entry("hooks", &sink.to_string())?;
    }
    if let Some(lease) = &s.driver {
        map.serialize_entry("driver", lease)?;
    }
    map.serialize_entry("created_at", &ts::Text(s.created_at))?;
    map.serialize_entry("updated_at", &ts::Text(s.updated_at))
}

const FIELDS: &[&str] = &[
    "format",
    "run_id",
    "plan_sha256",
    "status",
    "invocations",
    "abort_requested",
    "vars",
    "state_machine",
    "hooks",
    "driver",
    "created_at",
    "updated_at",
    "actions",
    "log",
];

struct ActionsSeed<'s, 'p> {
    place: &'s mut Place<'p>,
}

impl<'de> serde::de::DeserializeSeed<'de> for ActionsSeed<'_, '_> {
    type Value = Vec<ActionState>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ActionsSeed<'_, '_> {
    type Value = Vec<ActionState>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of action states by label")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let plan = match self.place {
            Place::ByPlan(plan) => plan,
            Place::InOrder(labels) => {
                let mut actions = Vec::new();
                while let Some(label) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    labels.push(&label);
                    actions.push(map.next_value()?);
                }
                return Ok(actions);
            }
        };
        let mut actions = vec![ActionState::default(); plan.len()];
        while let Some(label) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let idx = plan.find(&label).ok_or_else(|| {
                <A::Error as serde::de::Error>::custom(format!(
                    "the state mentions action \"{label}\", which is not in the run's plan"
                ))
            })?;
            actions[idx as usize] = map.next_value()?;
        }
        Ok(actions)
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
        let mut map = serializer.serialize_map(None)?;
        serialize_header(&mut map, self.state, true)?;
        map.serialize_entry("actions", &Actions(self))?;
        map.serialize_entry("log", &self.state.log)?;
        map.end()
    }
}

mod ts_opt {
    use super::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::ts::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::ts")] Timestamp);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}
