//! The sans-IO scheduler: decides what to start, check and cancel from the plan, the state and
//! the time, and folds executor outcomes back into the state. No IO, no clock: `now` is given.
//!
//! Like cargo's dependency queue it keeps, per action, the number of unmet dependencies, so a
//! completion readies its dependents in O(dependents) and a chain of instant actions finishes in
//! one call.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::actions::{ActionType, CancelError, Mode, Outcome, RunView};
use crate::duration::format_duration;
use crate::load::sck::StateName;
use crate::model::{ActionIdx, Plan};
use crate::state::{ActionStatus, Level, RunState, StopCause, StopFate, StopRecord, Timestamp};
use crate::template::{self, Context, TemplateError};

/// Work for the driver to hand to an executor.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Start an attempt (synchronous and asynchronous types; inline ones never leave the
    /// scheduler).
    Start {
        /// The action.
        idx: ActionIdx,
        /// The attempt's number: 1 for the first; a replayed attempt keeps its number.
        attempt: u32,
        /// Params as the attempt sees them (see [`rendered_params`]).
        params: Value,
    },
    /// Ask how running work is doing (its next check is due).
    Check {
        /// The action.
        idx: ActionIdx,
        /// What the start or the last check returned to find the work again.
        handle: Value,
    },
    /// Stop running work.
    Cancel {
        /// The action.
        idx: ActionIdx,
        /// What the start or the last check returned to find the work again.
        handle: Value,
        /// Why, which decides how the action ends.
        reason: CancelReason,
    },
}

impl Step {
    /// The action the step is for.
    pub fn idx(&self) -> ActionIdx {
        match self {
            Step::Start { idx, .. } | Step::Check { idx, .. } | Step::Cancel { idx, .. } => *idx,
        }
    }
}

/// Why running work is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// An operator aborted the run: the action ends `cancelled`.
    Abort,
    /// The attempt ran past the action's timeout: the action ends `failed`.
    Timeout,
}

/// What the caller should do after a tick: the one answer the scheduler, the driver, `baton
/// tick`, the console and the Lambda all route on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Work could proceed now but the time budget ran out: call again at once.
    Execute,
    /// Only running (or delayed) work remains: call again after this long.
    Wait(Duration),
    /// Not finished, but this Step Functions execution is near its history limit: go on in a
    /// fresh execution (decided by the Lambda, never by the scheduler).
    Continue,
    /// Every action completed or was skipped.
    Success,
    /// The run failed or was aborted.
    Failure,
}

impl Next {
    /// The run goes on (another tick is due).
    pub fn is_unfinished(self) -> bool {
        matches!(self, Next::Execute | Next::Wait(_) | Next::Continue)
    }
}

/// Decides what runs next in one run. It is built from the state (once per tick) and keeps
/// indices over it, so every call must be given that same state, whose action statuses change
/// only through the scheduler.
pub struct Scheduler<'p> {
    plan: &'p Plan,
    unmet: Vec<u32>,
    /// Pending actions whose dependencies are all satisfied, lowest index first.
    ready: BinaryHeap<Reverse<ActionIdx>>,
    /// Pending retries waiting for their delay.
    delayed: Vec<ActionIdx>,
    /// Running actions not currently with an executor.
    running: Vec<ActionIdx>,
    in_flight: Vec<bool>,
    in_flight_count: usize,
    max_parallel: usize,
    /// Actions whose status changed since the last `take_changes`, for observers.
    changed: Vec<ActionIdx>,
    /// Commands run as remote tasks, started once per attempt (see [`Scheduler::adopting`]).
    remote_commands: bool,
    /// The compact-JSON size of every action's outputs together (see [`MAX_RUN_OUTPUTS`]).
    outputs_bytes: usize,
}

/// The most an action's outputs may weigh (compact JSON). Outputs live in the state document,
/// which is written whole on every save: a bigger value makes every later version big.
pub const MAX_ACTION_OUTPUTS: usize = 1024 * 1024;

/// The most every action's outputs may weigh together. Kept well inside what one tick can read,
/// change and write within a 128 MB Lambda at 100,000 actions.
pub const MAX_RUN_OUTPUTS: usize = 8 * 1024 * 1024;

/// Outputs sit 4 levels deep in the state document, which is read with serde_json's limit of
/// 128: deeper outputs would be saved fine and then never read back.
pub const MAX_OUTPUT_NESTING: usize = 100;

impl<'p> Scheduler<'p> {
    /// Builds the scheduler's indices from the state, settling anything the state implies:
    /// interrupted synchronous actions and actions blocked by failed ancestors.
    pub fn new(
        plan: &'p Plan,
        state: &mut RunState,
        now: Timestamp,
        max_parallel: Option<usize>,
    ) -> Self {
        Self::adopting(plan, state, now, max_parallel, &[], false)
    }

    /// [`Scheduler::new`], except that the interrupted commands in `adopted` are still running
    /// on this host (an earlier baton process died while they ran): they stay `running`, in
    /// flight, while the driver watches them, and are settled by [`Scheduler::orphan_ended`]
    /// or [`Scheduler::apply`]. `remote_commands`: this driver's executor sends
    /// `system.command` to a service that starts each attempt once however often it is asked
    /// (ECS, by the attempt's token), so an interrupted command is started again, which finds
    /// its task, rather than failed as of unknown outcome.
    pub(crate) fn adopting(
        plan: &'p Plan,
        state: &mut RunState,
        now: Timestamp,
        max_parallel: Option<usize>,
        adopted: &[ActionIdx],
        remote_commands: bool,
    ) -> Self {
        let mut scheduler = Scheduler {
            plan,
            unmet: vec![0; plan.len()],
            ready: BinaryHeap::new(),
            delayed: Vec::new(),
            running: Vec::new(),
            in_flight: vec![false; plan.len()],
            in_flight_count: 0,
            max_parallel: max_parallel.unwrap_or(usize::MAX).max(1),
            changed: Vec::new(),
            remote_commands,
            outputs_bytes: state
                .actions
                .iter()
                .filter(|a| !a.outputs.is_empty())
                .map(|a| crate::util::json_size(&*a.outputs))
                .sum(),
        };
        let aborting = state.abort_requested;
        for &idx in &plan.order {
            let adopt = adopted.contains(&idx);
            if state.action(idx).status == ActionStatus::Running
                && state.action(idx).handle.is_none()
                && !adopt
            {
                scheduler.settle_interrupted(state, idx, now);
            }
            let mut unmet = 0;
            let mut blocker = None;
            for &dep in &plan.deps[idx as usize] {
                let dep_state = state.action(dep);
                if dep_state.status.blocks_dependents() && blocker.is_none() {
                    blocker = Some(
                        dep_state
                            .blocked_by
                            .clone()
                            .unwrap_or_else(|| plan.label(dep).to_string()),
                    );
                }
                if !dep_state.status.satisfies_dependents() {
                    unmet += 1;
                }
            }
            scheduler.unmet[idx as usize] = unmet;
            // Read, and changed only when blocked: a change marks the action for the next
            // save's journal delta.
            let entry = state.action(idx);
            match (entry.status, blocker) {
                // Under an abort, what has not started is cancelled rather than blocked.
                (ActionStatus::Pending, Some(blocker)) if !aborting => {
                    state.action_mut(idx).block(blocker);
                    scheduler.changed.push(idx);
                }
                (ActionStatus::Pending, None) if unmet == 0 => {
                    if entry.next_check_at.is_some() {
                        scheduler.delayed.push(idx);
                    } else {
                        scheduler.ready.push(Reverse(idx));
                    }
                }
                (ActionStatus::Running, _) if adopt => {
                    scheduler.in_flight[idx as usize] = true;
                    scheduler.in_flight_count += 1;
                }
                (ActionStatus::Running, _) => scheduler.running.push(idx),
                _ => {}
            }
        }
        scheduler
    }

    fn settle_interrupted(&mut self, state: &mut RunState, idx: ActionIdx, now: Timestamp) {
        self.changed.push(idx);
        let replay = self.may_replay(idx);
        let entry = state.action_mut(idx);
        if replay {
            entry.replay_interrupted(now);
            return;
        }
        let whereabouts = entry.process.as_deref().map_or_else(String::new, |p| {
            format!("; it ran as pid {} on {}", p.pid, p.host)
        });
        let error = format!(
            "interrupted: outcome unknown (baton stopped while it ran{whereabouts}); check its \
             effects, then re-execute it or mark it idempotent"
        );
        entry.fail(error, now);
    }

    /// An adopted command (see [`Scheduler::adopting`]) ended on its own while baton watched
    /// it: no exit status reached baton, so it is settled like any interrupted command.
    pub(crate) fn orphan_ended(&mut self, state: &mut RunState, idx: ActionIdx, now: Timestamp) {
        self.release(idx);
        self.settle_interrupted(state, idx, now);
        match state.action(idx).status {
            ActionStatus::Pending => self.ready.push(Reverse(idx)),
            // Under an abort, what has not started is cancelled rather than blocked.
            ActionStatus::Failed if !state.abort_requested => self.block_descendants(state, idx),
            _ => {}
        }
    }

    /// Actions whose status changed since the last call (may repeat an action).
    pub(crate) fn take_changes(&mut self) -> Vec<ActionIdx> {
        std::mem::take(&mut self.changed)
    }

    fn capacity(&self) -> usize {
        let busy = self.running.len() + self.in_flight_count;
        self.max_parallel.saturating_sub(busy)
    }

    /// Decides what to do now. Inline actions (and condition skips) are settled here, so their
    /// dependents become ready within the same call. `may_start` is false once the tick's time
    /// budget is spent: nothing new starts, but due checks still happen.
    pub fn next(&mut self, state: &mut RunState, now: Timestamp, may_start: bool) -> Vec<Step> {
        let mut steps = Vec::new();
        self.due_checks(state, now, &mut steps);
        // Retries whose delay has passed rejoin the ready queue.
        let mut i = 0;
        while i < self.delayed.len() {
            let idx = self.delayed[i];
            if state.action(idx).next_check_at.is_none_or(|t| t <= now) {
                self.delayed.swap_remove(i);
                state.action_mut(idx).next_check_at = None;
                self.ready.push(Reverse(idx));
            } else {
                i += 1;
            }
        }
        while let Some(&Reverse(idx)) = self.ready.peek() {
            let action = self.plan.action(idx);
            let mode = action.action_type.spec().mode;
            if mode != Mode::Inline && (!may_start || self.capacity() == 0) {
                break;
            }
            self.ready.pop();
            if state.action(idx).status != ActionStatus::Pending {
                continue;
            }
            let params = match self.decide(state, idx, now) {
                Some(params) => params,
                None => continue,
            };
            let attempt = self.begin_attempt(state, idx, now);
            if mode == Mode::Inline {
                let outcome = action.action_type.run_inline(&params);
                self.settle(state, idx, outcome, now);
            } else {
                self.in_flight[idx as usize] = true;
                self.in_flight_count += 1;
                steps.push(Step::Start {
                    idx,
                    attempt,
                    params,
                });
            }
        }
        steps
    }

    /// Evaluates a ready action's condition and renders its params. `None` when it will not
    /// start: skipped (its condition is false) or failed (a template error).
    fn decide(&mut self, state: &mut RunState, idx: ActionIdx, now: Timestamp) -> Option<Value> {
        let action = self.plan.action(idx);
        if action.details().condition.is_none() && !action.templated {
            return Some(prepared_params(
                self.plan,
                state,
                idx,
                action.params.clone(),
            ));
        }
        let context = self.context(state, idx);
        if let Some(condition) = &action.details().condition {
            match template::eval_condition(condition, &context) {
                Ok(true) => {}
                Ok(false) => {
                    state
                        .action_mut(idx)
                        .skip(now, format!("skipped: condition `{condition}` is false"));
                    self.changed.push(idx);
                    self.satisfy_dependents(state, idx);
                    return None;
                }
                Err(message) => {
                    self.begin_attempt(state, idx, now);
                    self.fail(state, idx, now, format!("condition: {message}"));
                    return None;
                }
            }
        }
        let params = if action.templated {
            match template::render_params(&action.params, &context) {
                Ok(params) => params,
                Err(message) => {
                    self.begin_attempt(state, idx, now);
                    self.fail(state, idx, now, message.to_string());
                    return None;
                }
            }
        } else {
            action.params.clone()
        };
        Some(prepared_params(self.plan, state, idx, params))
    }

    fn due_checks(&mut self, state: &mut RunState, now: Timestamp, steps: &mut Vec<Step>) {
        let mut i = 0;
        while i < self.running.len() {
            let idx = self.running[i];
            let entry = state.action(idx);
            let action = self.plan.action(idx);
            let timed_out = match (action.details().timeout, entry.started_at) {
                (Some(timeout), Some(started)) => (now - started)
                    .to_std()
                    .is_ok_and(|elapsed| elapsed >= timeout),
                _ => false,
            };
            let due = entry.next_check_at.is_none_or(|t| t <= now);
            if !(timed_out || due) {
                i += 1;
                continue;
            }
            self.running.swap_remove(i);
            let handle = entry.handle.as_deref().cloned().unwrap_or(Value::Null);
            if timed_out {
                let timeout = action.details().timeout.unwrap_or_default();
                if cancellable(action.action_type, &handle) {
                    self.in_flight[idx as usize] = true;
                    self.in_flight_count += 1;
                    steps.push(Step::Cancel {
                        idx,
                        handle,
                        reason: CancelReason::Timeout,
                    });
                } else {
                    self.fail(
                        state,
                        idx,
                        now,
                        format!(
                            "timed out after {}; {} cannot be cancelled, so the work may still be running",
                            format_duration(timeout),
                            action.action_type.name()
                        ),
                    );
                }
            } else {
                self.in_flight[idx as usize] = true;
                self.in_flight_count += 1;
                steps.push(Step::Check { idx, handle });
            }
        }
    }

    /// Marks the start of a new attempt and returns its number.
    fn begin_attempt(&mut self, state: &mut RunState, idx: ActionIdx, now: Timestamp) -> u32 {
        self.changed.push(idx);
        state.action_mut(idx).begin_attempt(now)
    }

    /// Folds the result of a `Start` or `Check` step back in.
    pub fn apply(
        &mut self,
        state: &mut RunState,
        idx: ActionIdx,
        outcome: Outcome,
        now: Timestamp,
    ) {
        self.release(idx);
        self.settle(state, idx, outcome, now);
    }

    /// Folds the result of a `Cancel` step back in.
    pub(crate) fn apply_cancel(
        &mut self,
        state: &mut RunState,
        idx: ActionIdx,
        reason: CancelReason,
        result: Result<(), CancelError>,
        now: Timestamp,
    ) {
        self.release(idx);
        self.changed.push(idx);
        match reason {
            CancelReason::Timeout => {
                let note = match &result {
                    Ok(()) => "cancelled".to_string(),
                    Err(e) => format!("could not cancel: {e}"),
                };
                let timeout = self.plan.action(idx).details().timeout.unwrap_or_default();
                self.fail(
                    state,
                    idx,
                    now,
                    format!("timed out after {} ({note})", format_duration(timeout)),
                );
            }
            CancelReason::Abort => {
                let (fate, detail) = match result {
                    Ok(()) => (StopFate::Stopped, "cancelled".to_string()),
                    Err(e) => (StopFate::LeftRunning, format!("could not cancel: {e}")),
                };
                let record = StopRecord {
                    cause: StopCause::Abort,
                    fate,
                    detail,
                };
                state.action_mut(idx).cancel(record, now);
            }
        }
    }

    /// Whether starting the action again after an interrupted attempt is safe.
    fn may_replay(&self, idx: ActionIdx) -> bool {
        let action = self.plan.action(idx);
        action.action_type.may_replay(&action.params)
            || (self.remote_commands && action.action_type == ActionType::Command)
    }

    fn release(&mut self, idx: ActionIdx) {
        if std::mem::replace(&mut self.in_flight[idx as usize], false) {
            self.in_flight_count -= 1;
        }
    }

    fn settle(&mut self, state: &mut RunState, idx: ActionIdx, outcome: Outcome, now: Timestamp) {
        self.changed.push(idx);
        match outcome {
            Outcome::Complete { outputs } => match self.refuse_outputs(&outputs) {
                Some(error) => self.fail(state, idx, now, error),
                None => {
                    self.outputs_bytes += crate::util::json_size(&outputs);
                    state.action_mut(idx).complete(outputs, now);
                    self.satisfy_dependents(state, idx);
                }
            },
            Outcome::Running {
                handle,
                check_after,
            } => {
                state
                    .action_mut(idx)
                    .keep_running(handle, after(now, check_after));
                self.running.push(idx);
            }
            Outcome::Failed { error, retryable } => {
                let policy = self.plan.action(idx).details().retry.as_ref();
                let attempt = state.action(idx).attempt;
                match policy {
                    Some(policy) if retryable && attempt < policy.attempts => {
                        let delay = policy.delay_before(attempt + 1);
                        let note = format!(
                            "attempt {attempt} of {} failed: {error}; retrying in {}",
                            policy.attempts,
                            format_duration(delay)
                        );
                        state
                            .action_mut(idx)
                            .retry_later(error, after(now, delay), now, note);
                        self.delayed.push(idx);
                    }
                    _ => self.fail(state, idx, now, error),
                }
            }
            Outcome::Stopped { cause, detail } => {
                self.settle_stopped(state, idx, cause, detail, now)
            }
        }
    }

    /// baton stopped the action's work before it finished. An abort cancels it; any other stop
    /// (a signal, quitting the console) leaves an unknown outcome: the action runs again on
    /// resume if that is safe, and otherwise fails for the operator to decide.
    fn settle_stopped(
        &mut self,
        state: &mut RunState,
        idx: ActionIdx,
        cause: StopCause,
        detail: String,
        now: Timestamp,
    ) {
        let record = StopRecord {
            cause,
            fate: StopFate::Stopped,
            detail,
        };
        if cause == StopCause::Abort {
            state.action_mut(idx).cancel(record, now);
        } else if self.may_replay(idx) {
            state.action_mut(idx).replay_stopped(record, now);
            self.ready.push(Reverse(idx));
        } else {
            state.action_mut(idx).fail_stopped(record, now);
            self.block_descendants(state, idx);
        }
    }

    /// Why outputs cannot be kept: too big for the action or for the run, or nested deeper
    /// than the state document can be read back. Every written state stays readable.
    fn refuse_outputs(&self, outputs: &Map<String, Value>) -> Option<String> {
        // The outputs map itself is the first level.
        if 1 + outputs.values().map(crate::load::depth).max().unwrap_or(0) > MAX_OUTPUT_NESTING {
            return Some(format!(
                "its outputs nest more than {MAX_OUTPUT_NESTING} levels deep; the state \
                 document would become unreadable (flatten them, or write them to a file)"
            ));
        }
        let size = crate::util::json_size(outputs);
        if size > MAX_ACTION_OUTPUTS {
            return Some(format!(
                "its outputs are {size} bytes, over the {MAX_ACTION_OUTPUTS}-byte limit for one \
                 action: they are kept in the run's state, which every save writes whole; put big \
                 data in a file or an S3 object and output its location"
            ));
        }
        if self.outputs_bytes + size > MAX_RUN_OUTPUTS {
            return Some(format!(
                "its outputs ({size} bytes) would take the run's outputs past the \
                 {MAX_RUN_OUTPUTS}-byte limit for all actions together ({} bytes kept so far); \
                 put big data in files or S3 objects and output their locations",
                self.outputs_bytes
            ));
        }
        None
    }

    fn fail(&mut self, state: &mut RunState, idx: ActionIdx, now: Timestamp, error: String) {
        self.changed.push(idx);
        state.action_mut(idx).fail(error, now);
        self.block_descendants(state, idx);
    }

    fn block_descendants(&mut self, state: &mut RunState, root: ActionIdx) {
        let root_label = self.plan.label(root).to_string();
        let mut stack: Vec<ActionIdx> = self.plan.dependents[root as usize].to_vec();
        while let Some(idx) = stack.pop() {
            let entry = state.action_mut(idx);
            if entry.status != ActionStatus::Pending {
                continue;
            }
            entry.block(root_label.clone());
            self.changed.push(idx);
            stack.extend_from_slice(&self.plan.dependents[idx as usize]);
        }
    }

    fn satisfy_dependents(&mut self, state: &RunState, idx: ActionIdx) {
        for &dependent in &self.plan.dependents[idx as usize] {
            let unmet = &mut self.unmet[dependent as usize];
            *unmet = unmet.saturating_sub(1);
            if *unmet == 0 && state.action(dependent).status == ActionStatus::Pending {
                self.ready.push(Reverse(dependent));
            }
        }
    }

    /// The template context for an action: run id, vars and the outputs it reads.
    pub fn context(&self, state: &RunState, idx: ActionIdx) -> Context {
        context_for(self.plan, state, idx)
    }

    /// Honours an abort request: cancels what can be cancelled (returned as steps), marks
    /// everything else that has not finished `cancelled`.
    pub fn abort(&mut self, state: &mut RunState, now: Timestamp) -> Vec<Step> {
        let mut steps = Vec::new();
        for idx in std::mem::take(&mut self.running) {
            let action = self.plan.action(idx);
            let handle = state.action(idx).handle.as_deref().cloned();
            match handle {
                Some(handle) if cancellable(action.action_type, &handle) => {
                    self.in_flight[idx as usize] = true;
                    self.in_flight_count += 1;
                    steps.push(Step::Cancel {
                        idx,
                        handle,
                        reason: CancelReason::Abort,
                    });
                }
                _ => {
                    let record = StopRecord {
                        cause: StopCause::Abort,
                        fate: StopFate::LeftRunning,
                        detail: action.action_type.abort_note(),
                    };
                    state.action_mut(idx).cancel(record, now);
                    self.changed.push(idx);
                }
            }
        }
        self.ready.clear();
        self.delayed.clear();
        for idx in 0..self.plan.len() as ActionIdx {
            let entry = state.action_mut(idx);
            if entry.status == ActionStatus::Pending {
                entry.cancel_pending();
                self.changed.push(idx);
            }
        }
        steps
    }

    /// When the earliest waiting work is due: a running action's next check or timeout, or a
    /// retry's delay. The driver sleeps until then while other work is in flight.
    pub(crate) fn next_due(&self, state: &RunState) -> Option<Timestamp> {
        self.running
            .iter()
            .chain(&self.delayed)
            .filter_map(|&idx| {
                let entry = state.action(idx);
                let timeout_at = match (self.plan.action(idx).details().timeout, entry.started_at) {
                    (Some(t), Some(s)) if entry.status == ActionStatus::Running => {
                        chrono::Duration::from_std(t)
                            .ok()
                            .and_then(|t| s.checked_add_signed(t))
                    }
                    _ => None,
                };
                match (entry.next_check_at, timeout_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            })
            .min()
    }

    /// What the caller should do next. Call when nothing is in flight.
    pub fn next_step(&self, state: &RunState, now: Timestamp) -> Next {
        if state.abort_requested {
            return Next::Failure;
        }
        if !self.ready.is_empty() && self.capacity() > 0 {
            return Next::Execute;
        }
        let earliest = self.next_due(state);
        if !self.running.is_empty() || !self.delayed.is_empty() {
            let wait = earliest.map_or(Duration::ZERO, |t| {
                (t - now).to_std().unwrap_or(Duration::ZERO)
            });
            return Next::Wait(wait);
        }
        if state
            .actions
            .iter()
            .all(|a| a.status.satisfies_dependents())
        {
            Next::Success
        } else {
            Next::Failure
        }
    }
}

/// `now + delay`. Delays are at most a year (`duration::MAX_DURATION`, or a day for retries),
/// so this never saturates in practice; checked all the same, as time arithmetic that panics
/// would stop the run for good.
fn after(now: Timestamp, delay: Duration) -> Timestamp {
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|delay| now.checked_add_signed(delay))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// The run as the action at `idx` sees it when its type fills in defaults.
struct ActionView<'a> {
    plan: &'a Plan,
    state: &'a RunState,
    idx: ActionIdx,
}

impl RunView for ActionView<'_> {
    fn run_id(&self) -> &str {
        &self.state.run_id
    }

    fn vars(&self) -> &Map<String, Value> {
        &self.state.vars
    }

    fn ancestor_outputs(&self) -> Map<String, Value> {
        self.plan
            .ancestors(self.idx)
            .into_iter()
            .filter(|&i| self.state.action(i).status == ActionStatus::Complete)
            .map(|i| {
                (
                    self.plan.label(i).to_string(),
                    Value::Object((*self.state.action(i).outputs).clone()),
                )
            })
            .collect()
    }
}

/// Rendered params with the type's run-dependent defaults filled in.
fn prepared_params(plan: &Plan, state: &RunState, idx: ActionIdx, params: Value) -> Value {
    let view = ActionView { plan, state, idx };
    plan.action(idx).action_type.prepare(params, &view)
}

/// The template context for an action: run id, vars and the outputs it reads.
/// The context of action `idx`'s templates: the run's vars and the outputs of the actions they
/// read, which validation proved are ancestors. Nothing else is offered, so a template can see
/// only what finished before it, whatever it does at run time.
///
/// A skipped action it reads has no outputs: it is offered as empty, so `default()` and `is
/// defined` work on it, and messages say it was skipped. `lookup`s see SCK's flat state as the
/// actions they may read wrote it.
pub(crate) fn context_for(plan: &Plan, state: &RunState, idx: ActionIdx) -> Context {
    let action = plan.action(idx);
    let status = |i: ActionIdx| state.action(i).status;
    let readable = match &action.reads_outputs {
        Some(reads) => reads.clone(),
        // Validated plans always say; a plan that did not is given the ancestors alone.
        None => plan.ancestors(idx),
    };
    let outputs: Vec<(&str, &Map<String, Value>)> = readable
        .iter()
        .filter(|&&i| status(i) == ActionStatus::Complete)
        .map(|&i| (plan.label(i), &*state.action(i).outputs))
        .collect();
    let writers = action.details().reads_state.as_deref().unwrap_or_default();
    let mut skipped: Vec<String> = readable
        .iter()
        .chain(writers)
        .filter(|&&i| status(i) == ActionStatus::Skipped)
        .map(|&i| plan.label(i).to_string())
        .collect();
    skipped.sort_unstable();
    skipped.dedup();
    let mut context = Context::new(&state.run_id, &state.vars, outputs.into_iter())
        .with_skipped(skipped)
        .sck(plan.dialect().is_sck());
    if !writers.is_empty() {
        context = context.with_state(state_table(plan, state, writers));
    }
    context
}

/// SCK's flat state as `writers` left it: each completed action's outputs under
/// `<namespace>:var/<path>/<name>` and, when it saves them, `<namespace>:output/<name>`, where
/// the action that finished last wins (as in SCK, whose state is one table).
pub(crate) fn state_table(
    plan: &Plan,
    state: &RunState,
    writers: &[ActionIdx],
) -> Map<String, Value> {
    let mut finished: Vec<ActionIdx> = writers
        .iter()
        .copied()
        .filter(|&i| state.action(i).status == ActionStatus::Complete)
        .collect();
    finished.sort_by_key(|&i| (state.action(i).finished_at, i));
    let mut table = Map::new();
    for i in finished {
        let Some(name) = StateName::of_label(plan.label(i)) else {
            continue;
        };
        let save = plan.action(i).save_outputs;
        for (key, value) in state.action(i).outputs.iter() {
            table.insert(name.var_key(key), value.clone());
            if save {
                table.insert(name.output_key(key), value.clone());
            }
        }
    }
    table
}

/// An action's params as its attempt sees them: templates rendered against the run's vars and
/// the outputs it reads, and its type's defaults filled in. The scheduler starts actions with
/// these; checks, `inspect` and the console show the same.
pub fn rendered_params(
    plan: &Plan,
    state: &RunState,
    idx: ActionIdx,
) -> Result<Value, TemplateError> {
    let action = plan.action(idx);
    let params = if action.templated {
        template::render_params(&action.params, &context_for(plan, state, idx))?
    } else {
        action.params.clone()
    };
    Ok(prepared_params(plan, state, idx, params))
}

/// Which actions a re-execution resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reexecute {
    /// Failed, blocked and cancelled actions.
    Failed,
    /// The action and all its descendants.
    From(ActionIdx),
    /// Only the action.
    Only(ActionIdx),
}

/// What a re-execution will do, for the operator to confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// Reset to pending and expected to run.
    pub will_run: Vec<ActionIdx>,
    /// Reset, but still blocked by a failure outside the selection.
    pub stays_blocked: Vec<ActionIdx>,
    /// Finished actions whose outputs the re-run actions read (directly or through their
    /// dependencies), reused as they are.
    pub reused: Vec<ActionIdx>,
}

/// Computes a re-execution without changing anything.
pub fn preview_reexecute(plan: &Plan, state: &RunState, mode: Reexecute) -> Preview {
    let mut reset = vec![false; plan.len()];
    match mode {
        Reexecute::Failed => {
            for (i, entry) in state.actions.iter().enumerate() {
                reset[i] = entry.status.blocks_dependents();
            }
        }
        Reexecute::From(idx) => {
            for i in plan.descendants(idx) {
                reset[i as usize] = true;
            }
        }
        Reexecute::Only(idx) => reset[idx as usize] = true,
    }
    // Re-executing what failed gives every blocked action its chance again (the others
    // choose exactly: `From` includes the descendants, `Only` is that action alone).
    if mode == Reexecute::Failed {
        for (i, entry) in state.actions.iter().enumerate() {
            if entry.status == ActionStatus::Blocked {
                reset[i] = true;
            }
        }
    }
    let mut doomed = vec![false; plan.len()];
    let mut preview = Preview {
        will_run: Vec::new(),
        stays_blocked: Vec::new(),
        reused: Vec::new(),
    };
    for &idx in &plan.order {
        let i = idx as usize;
        let blocked = plan.deps[i].iter().any(|&d| {
            doomed[d as usize] || (!reset[d as usize] && state.action(d).status.blocks_dependents())
        });
        if reset[i] {
            if blocked {
                doomed[i] = true;
                preview.stays_blocked.push(idx);
            } else {
                preview.will_run.push(idx);
            }
        }
    }
    // Reused: finished actions the re-run ones wait on or whose outputs their templates read.
    let mut reused = vec![false; plan.len()];
    for &idx in &preview.will_run {
        let action = plan.action(idx);
        let mut read: Vec<ActionIdx> = match &action.reads_outputs {
            Some(reads) => reads.clone(),
            None => plan.ancestors(idx),
        };
        read.extend(action.details().reads_state.iter().flatten());
        for dep in plan.deps[idx as usize].iter().copied().chain(read) {
            if !reset[dep as usize] && state.action(dep).status == ActionStatus::Complete {
                reused[dep as usize] = true;
            }
        }
    }
    preview.reused = (0..plan.len() as ActionIdx)
        .filter(|&i| reused[i as usize])
        .collect();
    preview
}

/// Resets the actions a re-execution selects. Attempt numbers keep counting, so a new attempt
/// gets a new idempotency token.
pub fn apply_reexecute(
    plan: &Plan,
    state: &mut RunState,
    mode: Reexecute,
    now: Timestamp,
) -> Preview {
    let preview = preview_reexecute(plan, state, mode);
    let description = match mode {
        Reexecute::Failed => "failed actions".to_string(),
        Reexecute::From(idx) => format!("from {}", plan.label(idx)),
        Reexecute::Only(idx) => format!("only {}", plan.label(idx)),
    };
    for &idx in preview.will_run.iter().chain(&preview.stays_blocked) {
        state.action_mut(idx).reset(now, &description);
    }
    state.status = crate::state::RunStatus::Running;
    state.abort_requested = false;
    state.log_run(
        now,
        Level::Info,
        format!(
            "re-execute {description}: {} to run, {} outputs reused",
            preview.will_run.len(),
            preview.reused.len()
        ),
    );
    preview
}

/// Whether running work can be stopped: its type can cancel, or it is a command running as a
/// remote task (which its handle says), which is stopped like one.
fn cancellable(action_type: ActionType, handle: &Value) -> bool {
    action_type.spec().can_cancel
        || (action_type == ActionType::Command && crate::actions::command::runs_remotely(handle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ActionState;
    use crate::testutil::{edit, plan};
    use serde_json::json;

    /// A template sees the outputs of the actions it reads, which validation proved are
    /// ancestors; a plan that does not say what its templates read (none validated does) is
    /// given its ancestors alone, never every finished action.
    #[test]
    fn templates_see_only_ancestors_outputs() {
        let mut plan = plan(
            r#"[
            {"label": "up", "type": "system.no_op"},
            {"label": "side", "type": "system.no_op"},
            {"label": "me", "type": "system.set_variables", "depends_on": ["up"],
             "params": {"variables": {"x": "{{ outputs.up.v }}"}}}
        ]"#,
        );
        assert_eq!(plan.action(2).reads_outputs, Some(vec![0]));
        let now = chrono::Utc::now();
        let mut state = RunState::new("r", &plan, "sha", Map::new(), now);
        for (idx, value) in [(0, "from up"), (1, "from side")] {
            let mut done = ActionState::default();
            let outputs = json!({ "v": value });
            done.complete(outputs.as_object().cloned().unwrap_or_default(), now);
            edit(&mut state).action(idx, done);
        }
        let all = json!({"whole": "{{ outputs }}"});
        let seen = template::render_params(&all, &context_for(&plan, &state, 2));
        assert_eq!(seen, Ok(json!({"whole": {"up": {"v": "from up"}}})));
        plan.actions[2].reads_outputs = None;
        let seen = template::render_params(&all, &context_for(&plan, &state, 2));
        assert_eq!(seen, Ok(json!({"whole": {"up": {"v": "from up"}}})));
    }

    /// A command whose start was saved but not its outcome: of unknown outcome locally (it
    /// fails), but started again under an executor that sends commands to a service that
    /// starts each attempt once (it finds its task). One running as a task can be stopped.
    #[test]
    fn an_interrupted_command_replays_only_when_commands_run_remotely() {
        let plan = plan(
            r#"[{"label": "cmd", "type": "system.command", "params": {"command": ["make"]}}]"#,
        );
        let now = chrono::Utc::now();
        let interrupted = || {
            let mut state = RunState::new("r", &plan, "sha", Map::new(), now);
            let mut running = ActionState::default();
            running.begin_attempt(now);
            edit(&mut state).action(0, running);
            state
        };
        let mut local = interrupted();
        Scheduler::adopting(&plan, &mut local, now, None, &[], false);
        assert_eq!(local.action(0).status, ActionStatus::Failed);
        assert!(local
            .action(0)
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("interrupted")));

        let mut remote = interrupted();
        Scheduler::adopting(&plan, &mut remote, now, None, &[], true);
        assert_eq!(remote.action(0).status, ActionStatus::Pending);
        // The replay is the same attempt: the same task token.
        assert_eq!(remote.action(0).attempt, 0);

        assert!(cancellable(
            ActionType::Command,
            &json!({"ecs": {"task_arn": "t"}})
        ));
        assert!(!cancellable(ActionType::Command, &json!({"pid": 7})));
        assert!(cancellable(ActionType::CreateStack, &Value::Null));
    }
}
