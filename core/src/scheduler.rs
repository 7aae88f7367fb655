//! The sans-IO scheduler: decides what to start, check and cancel from the plan, the state and
//! the time, and folds executor outcomes back into the state. No IO, no clock: `now` is given.
//!
//! Like cargo's dependency queue it keeps, per action, the number of unmet dependencies, so a
//! completion readies its dependents in O(dependents) and a chain of instant actions finishes in
//! one call.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use serde_json::Value;

use crate::actions::{self, ActionType, Mode};
use crate::duration::format_duration;
use crate::executor::Outcome;
use crate::model::{ActionIdx, Plan};
use crate::state::{ActionStatus, Level, RunState, Timestamp};
use crate::template::{self, Context};

/// Work for the driver to hand to an executor.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Start {
        idx: ActionIdx,
        attempt: u32,
        params: Value,
    },
    Check {
        idx: ActionIdx,
        handle: Value,
    },
    Cancel {
        idx: ActionIdx,
        handle: Value,
        reason: CancelReason,
    },
}

impl Step {
    pub fn idx(&self) -> ActionIdx {
        match self {
            Step::Start { idx, .. } | Step::Check { idx, .. } | Step::Cancel { idx, .. } => *idx,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    Abort,
    Timeout,
}

/// What the caller should do after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Work could proceed now but the time budget ran out: call again at once.
    Execute,
    /// Only running (or delayed) work remains: call again after this long.
    Wait(Duration),
    Success,
    Failure,
}

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
}

impl<'p> Scheduler<'p> {
    /// Builds the scheduler's indices from the state, settling anything the state implies:
    /// interrupted synchronous actions and actions blocked by failed ancestors.
    pub fn new(
        plan: &'p Plan,
        state: &mut RunState,
        now: Timestamp,
        max_parallel: Option<usize>,
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
        };
        for &idx in &plan.order {
            let action = plan.action(idx);
            if state.action(idx).status == ActionStatus::Running
                && state.action(idx).handle.is_none()
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
            let entry = state.action_mut(idx);
            match entry.status {
                ActionStatus::Pending if blocker.is_some() => {
                    entry.status = ActionStatus::Blocked;
                    entry.blocked_by = blocker;
                    scheduler.changed.push(idx);
                }
                ActionStatus::Pending if unmet == 0 => {
                    if entry.next_check_at.is_some() {
                        scheduler.delayed.push(idx);
                    } else {
                        scheduler.ready.push(Reverse(idx));
                    }
                }
                ActionStatus::Running => scheduler.running.push(idx),
                _ => {}
            }
            let _ = action;
        }
        scheduler
    }

    fn settle_interrupted(&mut self, state: &mut RunState, idx: ActionIdx, now: Timestamp) {
        self.changed.push(idx);
        let action = self.plan.action(idx);
        let entry = state.action_mut(idx);
        if action.action_type.may_replay(&action.params) {
            entry.status = ActionStatus::Pending;
            entry.started_at = None;
            entry.push_log(crate::state::LogEntry {
                t: now,
                level: Level::Warn,
                msg: format!(
                    "attempt {} was interrupted; replaying it (idempotent)",
                    entry.attempt
                ),
            });
            // The replay is the same attempt: it keeps the attempt's idempotency token, so a
            // start that reached AWS before the crash is recognised rather than repeated, and
            // it does not use up a retry.
            entry.attempt = entry.attempt.saturating_sub(1);
        } else {
            entry.status = ActionStatus::Failed;
            entry.finished_at = Some(now);
            let error = "interrupted: outcome unknown (baton stopped while it ran); check its \
                         effects, then re-execute it or mark it idempotent";
            entry.error = Some(error.to_string());
            entry.push_log(crate::state::LogEntry {
                t: now,
                level: Level::Error,
                msg: error.to_string(),
            });
        }
    }

    /// Actions whose status changed since the last call (may repeat an action).
    pub fn take_changes(&mut self) -> Vec<ActionIdx> {
        std::mem::take(&mut self.changed)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight_count
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
            let context =
                (action.condition.is_some() || action.templated).then(|| self.context(state, idx));
            if let (Some(condition), Some(context)) = (&action.condition, &context) {
                match template::eval_condition(condition, context) {
                    Ok(true) => {}
                    Ok(false) => {
                        let entry = state.action_mut(idx);
                        entry.status = ActionStatus::Skipped;
                        entry.finished_at = Some(now);
                        self.changed.push(idx);
                        state.log_action(
                            idx,
                            now,
                            Level::Info,
                            format!("skipped: condition `{condition}` is false"),
                        );
                        self.satisfy_dependents(state, idx);
                        continue;
                    }
                    Err(message) => {
                        self.begin_attempt(state, idx, now);
                        self.fail(state, idx, now, format!("condition: {message}"));
                        continue;
                    }
                }
            }
            let params = match &context {
                Some(context) if action.templated => {
                    match template::render_params(&action.params, context) {
                        Ok(params) => params,
                        Err(message) => {
                            self.begin_attempt(state, idx, now);
                            self.fail(state, idx, now, message);
                            continue;
                        }
                    }
                }
                _ => action.params.clone(),
            };
            let params = if action.action_type == ActionType::UploadContext {
                with_default_context(self.plan, state, idx, params)
            } else {
                params
            };
            let attempt = self.begin_attempt(state, idx, now);
            if mode == Mode::Inline {
                let outcome = actions::run_inline(action.action_type, &params);
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

    fn due_checks(&mut self, state: &mut RunState, now: Timestamp, steps: &mut Vec<Step>) {
        let mut i = 0;
        while i < self.running.len() {
            let idx = self.running[i];
            let entry = state.action(idx);
            let action = self.plan.action(idx);
            let timed_out = match (action.timeout, entry.started_at) {
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
                let timeout = action.timeout.unwrap_or_default();
                if action.action_type.spec().can_cancel {
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
        let entry = state.action_mut(idx);
        entry.attempt += 1;
        entry.status = ActionStatus::Running;
        entry.started_at = Some(now);
        entry.finished_at = None;
        entry.next_check_at = None;
        entry.handle = None;
        entry.blocked_by = None;
        entry.attempt
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
    pub fn apply_cancel(
        &mut self,
        state: &mut RunState,
        idx: ActionIdx,
        reason: CancelReason,
        result: Result<(), String>,
        now: Timestamp,
    ) {
        self.release(idx);
        self.changed.push(idx);
        let note = match &result {
            Ok(()) => "cancelled".to_string(),
            Err(e) => format!("could not cancel: {e}"),
        };
        match reason {
            CancelReason::Timeout => {
                let timeout = self.plan.action(idx).timeout.unwrap_or_default();
                self.fail(
                    state,
                    idx,
                    now,
                    format!("timed out after {} ({note})", format_duration(timeout)),
                );
            }
            CancelReason::Abort => {
                let entry = state.action_mut(idx);
                entry.status = ActionStatus::Cancelled;
                entry.finished_at = Some(now);
                entry.error = Some(format!("aborted by an operator ({note})"));
                state.log_action(idx, now, Level::Warn, format!("aborted: {note}"));
            }
        }
    }

    fn release(&mut self, idx: ActionIdx) {
        if std::mem::replace(&mut self.in_flight[idx as usize], false) {
            self.in_flight_count -= 1;
        }
    }

    fn settle(&mut self, state: &mut RunState, idx: ActionIdx, outcome: Outcome, now: Timestamp) {
        self.changed.push(idx);
        match outcome {
            Outcome::Complete { outputs } => {
                let entry = state.action_mut(idx);
                entry.status = ActionStatus::Complete;
                entry.finished_at = Some(now);
                entry.next_check_at = None;
                entry.handle = None;
                entry.error = None;
                *entry.outputs = outputs;
                self.satisfy_dependents(state, idx);
            }
            Outcome::Running {
                handle,
                check_after,
            } => {
                let entry = state.action_mut(idx);
                entry.status = ActionStatus::Running;
                entry.handle = Some(Box::new(handle));
                entry.next_check_at = Some(
                    now + chrono::Duration::from_std(check_after)
                        .unwrap_or(chrono::Duration::zero()),
                );
                self.running.push(idx);
            }
            Outcome::Failed { error, retryable } => {
                let policy = self.plan.action(idx).retry.as_ref();
                let attempt = state.action(idx).attempt;
                match policy {
                    Some(policy) if retryable && attempt < policy.attempts => {
                        let delay = policy.delay_before(attempt + 1);
                        let entry = state.action_mut(idx);
                        entry.status = ActionStatus::Pending;
                        entry.handle = None;
                        entry.error = Some(error.clone());
                        entry.next_check_at = Some(
                            now + chrono::Duration::from_std(delay)
                                .unwrap_or(chrono::Duration::zero()),
                        );
                        state.log_action(
                            idx,
                            now,
                            Level::Warn,
                            format!(
                                "attempt {attempt} of {} failed: {error}; retrying in {}",
                                policy.attempts,
                                format_duration(delay)
                            ),
                        );
                        self.delayed.push(idx);
                    }
                    _ => self.fail(state, idx, now, error),
                }
            }
        }
    }

    fn fail(&mut self, state: &mut RunState, idx: ActionIdx, now: Timestamp, error: String) {
        self.changed.push(idx);
        let entry = state.action_mut(idx);
        entry.status = ActionStatus::Failed;
        entry.finished_at = Some(now);
        entry.next_check_at = None;
        entry.handle = None;
        state.log_action(idx, now, Level::Error, error.clone());
        state.action_mut(idx).error = Some(error);
        self.block_descendants(state, idx);
    }

    fn block_descendants(&mut self, state: &mut RunState, root: ActionIdx) {
        let root_label = self.plan.label(root).to_string();
        let mut stack: Vec<ActionIdx> = self.plan.dependents[root as usize].clone();
        while let Some(idx) = stack.pop() {
            let entry = state.action_mut(idx);
            if entry.status != ActionStatus::Pending {
                continue;
            }
            entry.status = ActionStatus::Blocked;
            entry.blocked_by = Some(root_label.clone());
            entry.next_check_at = None;
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
                Some(handle) if action.action_type.spec().can_cancel => {
                    self.in_flight[idx as usize] = true;
                    self.in_flight_count += 1;
                    steps.push(Step::Cancel {
                        idx,
                        handle,
                        reason: CancelReason::Abort,
                    });
                }
                _ => {
                    let note = if action.action_type == ActionType::CreateStack {
                        "a stack that is being created cannot be cancelled; it keeps going in AWS"
                            .to_string()
                    } else {
                        format!(
                            "{} cannot be cancelled; the work may still be running",
                            action.action_type.name()
                        )
                    };
                    let entry = state.action_mut(idx);
                    entry.status = ActionStatus::Cancelled;
                    entry.finished_at = Some(now);
                    entry.error = Some(format!("aborted by an operator ({note})"));
                    state.log_action(idx, now, Level::Warn, format!("aborted: {note}"));
                    self.changed.push(idx);
                }
            }
        }
        self.ready.clear();
        self.delayed.clear();
        for idx in 0..self.plan.len() as ActionIdx {
            let entry = state.action_mut(idx);
            if entry.status == ActionStatus::Pending {
                entry.status = ActionStatus::Cancelled;
                entry.next_check_at = None;
                entry.error = Some("aborted by an operator before it started".into());
                self.changed.push(idx);
            }
        }
        steps
    }

    /// When the earliest waiting work is due: a running action's next check or timeout, or a
    /// retry's delay. The driver sleeps until then while other work is in flight.
    pub fn next_due(&self, state: &RunState) -> Option<Timestamp> {
        self.running
            .iter()
            .chain(&self.delayed)
            .filter_map(|&idx| {
                let entry = state.action(idx);
                let timeout_at = match (self.plan.action(idx).timeout, entry.started_at) {
                    (Some(t), Some(s)) if entry.status == ActionStatus::Running => {
                        chrono::Duration::from_std(t).ok().map(|t| s + t)
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
    pub fn flow(&self, state: &RunState, now: Timestamp) -> Flow {
        if state.abort_requested {
            return Flow::Failure;
        }
        if !self.ready.is_empty() && self.capacity() > 0 {
            return Flow::Execute;
        }
        let earliest = self.next_due(state);
        if !self.running.is_empty() || !self.delayed.is_empty() {
            let wait = earliest.map_or(Duration::ZERO, |t| {
                (t - now).to_std().unwrap_or(Duration::ZERO)
            });
            return Flow::Wait(wait);
        }
        if state
            .actions
            .iter()
            .all(|a| a.status.satisfies_dependents())
        {
            Flow::Success
        } else {
            Flow::Failure
        }
    }
}

/// `aws.upload_context` without `content` uploads the run's vars and the outputs of the
/// action's ancestors.
fn with_default_context(plan: &Plan, state: &RunState, idx: ActionIdx, mut params: Value) -> Value {
    if params.get("content").is_some() {
        return params;
    }
    let outputs: serde_json::Map<String, Value> = plan
        .ancestors(idx)
        .into_iter()
        .filter(|&i| state.action(i).status == ActionStatus::Complete)
        .map(|i| {
            (
                plan.label(i).to_string(),
                Value::Object((*state.action(i).outputs).clone()),
            )
        })
        .collect();
    if let Value::Object(map) = &mut params {
        map.insert(
            "content".into(),
            serde_json::json!({ "run_id": state.run_id, "vars": state.vars, "outputs": outputs }),
        );
    }
    params
}

/// The template context for an action (shared by the scheduler and `inspect`).
pub fn context_for(plan: &Plan, state: &RunState, idx: ActionIdx) -> Context {
    let action = plan.action(idx);
    let finished = |i: &ActionIdx| state.action(*i).status == ActionStatus::Complete;
    let outputs: Vec<(&str, &serde_json::Map<String, Value>)> = match &action.reads_outputs {
        Some(reads) => reads
            .iter()
            .filter(|i| finished(i))
            .map(|&i| (plan.label(i), &*state.action(i).outputs))
            .collect(),
        None => (0..plan.len() as ActionIdx)
            .filter(finished)
            .map(|i| (plan.label(i), &*state.action(i).outputs))
            .collect(),
    };
    Context::new(&state.run_id, &state.vars, outputs.into_iter())
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
    // Blocked actions never ran; once their blocker is reset they get their chance again.
    for (i, entry) in state.actions.iter().enumerate() {
        if entry.status == ActionStatus::Blocked {
            reset[i] = true;
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
        let read: Vec<ActionIdx> = match &action.reads_outputs {
            Some(reads) => reads.clone(),
            None => plan.ancestors(idx),
        };
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
        let entry = state.action_mut(idx);
        let previous = entry.status;
        entry.status = ActionStatus::Pending;
        entry.started_at = None;
        entry.finished_at = None;
        entry.next_check_at = None;
        entry.handle = None;
        entry.outputs.clear();
        entry.error = None;
        entry.blocked_by = None;
        state.log_action(
            idx,
            now,
            Level::Info,
            format!("reset for re-execution ({description}; was {previous})"),
        );
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
