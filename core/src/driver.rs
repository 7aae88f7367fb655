//! The async driver: composes the sans-IO scheduler with a store and an executor. One call of
//! [`tick`] is one Lambda invocation or one turn of the local loop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::actions::Mode;
use crate::executor::{CheckRequest, Executor, LogLine, LogSink, Outcome, StartRequest};
use crate::merge::{merge_operator_change, Merged};
use crate::model::{ActionIdx, Plan};
use crate::redact::Secrets;
use crate::run::{Run, RunError};
use crate::scheduler::{CancelReason, Flow, Scheduler, Step};
use crate::state::{ActionState, Lease, Level, LogEntry, RunState, RunStatus};
use crate::store::RunStore;

#[derive(Debug, Clone)]
pub struct TickOptions {
    /// Stop starting new work after this long (Lambda: deadline minus a margin).
    pub budget: Duration,
    /// Also bound synchronous actions by the budget (Lambda must return before its deadline;
    /// a local driver lets a long command finish).
    pub hard_deadline: bool,
    pub max_parallel: Option<usize>,
    /// Set (e.g. on Ctrl-C) to stop starting new work; running work finishes and is saved.
    pub stop: Arc<AtomicBool>,
    /// Take the run over even if another driver's lease on it has not lapsed (the operator
    /// knows that driver is dead). Only stores without a driver lock use leases.
    pub take_over: bool,
}

impl TickOptions {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl Default for TickOptions {
    fn default() -> Self {
        TickOptions {
            budget: Duration::from_secs(60),
            hard_deadline: false,
            max_parallel: None,
            stop: Arc::new(AtomicBool::new(false)),
            take_over: false,
        }
    }
}

/// How long a lease lasts without renewal. A live driver renews it halfway (while a long
/// command runs); a dead one's lapses soon enough for Step Functions' retries to get past it.
const LEASE: Duration = Duration::from_secs(30);

/// Outputs sit 4 levels deep in the state document, which is read with serde_json's limit of
/// 128: deeper outputs would be saved fine and then never read back.
const MAX_OUTPUT_NESTING: usize = 100;

/// How often a tick with work in flight looks for changes made by operators.
const WATCH: Duration = Duration::from_secs(1);

/// Names one tick in leases: readable in `baton status`, unique across machines and ticks
/// (two drivers in one process — the console and a CLI call — must not share a lease).
fn lease_holder() -> String {
    static PROCESS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static TICKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let process = PROCESS.get_or_init(|| {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown host".into());
        let nonce = crate::run::sha256_hex(
            format!("{:?}{:?}", std::time::SystemTime::now(), Instant::now()).as_bytes(),
        );
        format!(
            "baton pid {} on {host} ({})",
            std::process::id(),
            &nonce[..6]
        )
    });
    format!(
        "{process} tick {}",
        TICKS.fetch_add(1, Ordering::Relaxed) + 1
    )
}

fn lease_until() -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(LEASE).unwrap_or_default()
}

/// The small document that travels between ticks (the Step Functions payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub run: String,
    pub state_version: String,
    pub flow_control: FlowControl,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_seconds: Option<u64>,
    pub invocations: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowControl {
    Execute,
    Wait,
    Success,
    Failure,
}

#[derive(Debug, Clone)]
pub struct TickReport {
    pub flow: Flow,
    pub status: RunStatus,
    pub version: String,
    pub invocations: u64,
}

impl TickReport {
    pub fn payload(&self, run: String) -> Payload {
        let (flow_control, wait_seconds) = match self.flow {
            Flow::Execute => (FlowControl::Execute, None),
            // Step Functions waits whole seconds; round up so the action is due on arrival.
            Flow::Wait(d) => (
                FlowControl::Wait,
                Some(d.as_secs() + u64::from(d.subsec_nanos() > 0)),
            ),
            Flow::Success => (FlowControl::Success, None),
            Flow::Failure => (FlowControl::Failure, None),
        };
        Payload {
            run,
            state_version: self.version.clone(),
            flow_control,
            wait_seconds,
            invocations: self.invocations,
        }
    }
}

/// Receives progress as it happens (the plain printer, the console).
pub trait Observer: Send + Sync {
    fn action_changed(&self, _plan: &Plan, _idx: ActionIdx, _state: &ActionState) {}
    fn log(&self, _plan: &Plan, _idx: Option<ActionIdx>, _entry: &LogEntry) {}
    fn saved(&self, _plan: &Plan, _state: &RunState, _version: &str) {}
}

/// Observes nothing.
pub struct Silent;
impl Observer for Silent {}

enum TaskResult {
    Outcome(Outcome),
    Cancelled(CancelReason, Result<(), String>),
}

/// Runs one tick: load the newest state, make all progress possible now (within the budget),
/// save once more at the end, and say what to do next.
pub async fn tick<S: RunStore, E: Executor>(
    run: &Run<S>,
    executor: &Arc<E>,
    options: &TickOptions,
    observer: &dyn Observer,
) -> Result<TickReport, RunError> {
    use tracing::Instrument;
    // Every log line of the tick carries the run and invocation (JSON logs in Lambda).
    let span = tracing::info_span!(
        "tick",
        run_id = tracing::field::Empty,
        invocation = tracing::field::Empty
    );
    tick_in_span(run, executor, options, observer)
        .instrument(span)
        .await
}

async fn tick_in_span<S: RunStore, E: Executor>(
    run: &Run<S>,
    executor: &Arc<E>,
    options: &TickOptions,
    observer: &dyn Observer,
) -> Result<TickReport, RunError> {
    let began = Instant::now();
    let deadline = began + options.budget;
    let plan = &run.plan;
    let (mut state, version) = run.load().await?;
    if state.status.is_finished() {
        let flow = if state.status == RunStatus::Succeeded {
            Flow::Success
        } else {
            Flow::Failure
        };
        return Ok(TickReport {
            flow,
            status: state.status,
            version,
            invocations: state.invocations,
        });
    }
    state.invocations += 1;
    let now = Utc::now();
    tracing::Span::current()
        .record("run_id", state.run_id.as_str())
        .record("invocation", state.invocations);
    tracing::info!("tick started");
    // Stores that cannot lock claim the run in the document: of two drivers that loaded the
    // same version, the compare-and-swap lets exactly one through.
    let leased = run.store.needs_lease();
    let mut saved = Saved {
        version,
        operator_changed: false,
    };
    if leased {
        if let Some(lease) = &state.driver {
            if lease.until > now {
                if !options.take_over {
                    return Err(RunError::Store(crate::store::StoreError::Busy {
                        locator: run.store.locator(),
                        holder: format!(
                            " ({}, lease until {}; if that process died, wait for the lease to lapse or take over with `baton resume --take-over`)",
                            lease.holder,
                            crate::state::ts::format(&lease.until)
                        ),
                    }));
                }
                let message = format!("taking the run over from {}", lease.holder);
                state.log_run(now, Level::Warn, message);
            }
        }
        state.driver = Some(Lease {
            holder: lease_holder(),
            until: lease_until(),
        });
        saved.save(run, &mut state).await?;
    }
    let mut scheduler = Scheduler::new(plan, &mut state, now, options.max_parallel);
    let mut secrets = Secrets::for_run(plan, &state);
    let (log_tx, mut log_rx) = mpsc::unbounded_channel::<LogLine>();
    let mut tasks: JoinSet<(ActionIdx, TaskResult)> = JoinSet::new();
    let mut task_actions: HashMap<tokio::task::Id, ActionIdx> = HashMap::new();
    // Side effects whose start or end is not yet saved: a crash must not lose them.
    let mut unsaved_effects = false;

    let context = TaskContext {
        run_id: state.run_id.clone(),
        plan,
        executor,
        log_tx: &log_tx,
        options,
        deadline,
    };
    // An abort merged later in the tick is carried out by the next tick, with a fresh scheduler.
    let abort_handled = state.abort_requested;
    if state.abort_requested {
        state.log_run(
            now,
            Level::Warn,
            "abort requested: cancelling running actions",
        );
        for step in scheduler.abort(&mut state, now) {
            context.spawn(&mut tasks, &mut task_actions, &state, step);
        }
        notify_changes(&mut scheduler, plan, &state, observer);
    }

    // While work is in flight, look for operator changes (an abort from another terminal, a
    // re-execute) once a second, so they are merged now rather than at the tick's next save.
    let mut watch = tokio::time::interval_at(tokio::time::Instant::now() + WATCH, WATCH);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !state.abort_requested {
            // After an operator reset actions mid-tick, the scheduler's view is stale: start
            // nothing more, let a fresh tick pick the run up.
            let may_start =
                Instant::now() < deadline && !options.stopping() && !saved.operator_changed;
            let steps = scheduler.next(&mut state, Utc::now(), may_start);
            notify_changes(&mut scheduler, plan, &state, observer);
            let starts_effect = steps
                .iter()
                .any(|s| matches!(s, Step::Start { idx, .. } if has_side_effects(plan, *idx)));
            if starts_effect || unsaved_effects {
                // Record intent before the side effect, so a crash mid-command is detected.
                saved.save(run, &mut state).await?;
                unsaved_effects = false;
                observer.saved(plan, &state, &saved.version);
            }
            for step in steps {
                if let Step::Start { params, .. } = &step {
                    secrets.learn(params);
                }
                crate::fault::point("before_start");
                context.spawn(&mut tasks, &mut task_actions, &state, step);
            }
        }
        if tasks.is_empty() {
            break;
        }
        // While work is in flight, also wake when a waiting action falls due (a finished
        // `system.wait` must not wait for an unrelated long command).
        let due = scheduler
            .next_due(&state)
            .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(3600));
        // A long command must not let the lease lapse under it: renew halfway.
        let renew = state.driver.as_ref().filter(|_| leased).map(|lease| {
            (lease.until - Utc::now() - chrono::Duration::from_std(LEASE / 2).unwrap_or_default())
                .to_std()
                .unwrap_or(Duration::ZERO)
        });
        tokio::select! {
            _ = tokio::time::sleep(due) => {}
            _ = tokio::time::sleep(renew.unwrap_or(Duration::MAX)), if renew.is_some() => {
                if let Some(lease) = state.driver.as_mut() {
                    lease.until = lease_until();
                }
                saved.save(run, &mut state).await?;
            }
            _ = watch.tick(), if !state.abort_requested => {
                // A failed look is not worth failing the tick: the next save will tell.
                if run.store.head().await.is_ok_and(|head| head != saved.version) {
                    saved.save(run, &mut state).await?;
                }
            }
            Some(line) = log_rx.recv() => record_log(plan, &mut state, line, &secrets, observer),
            Some(joined) = tasks.join_next_with_id() => {
                let (idx, result) = match joined {
                    Ok((id, (idx, result))) => { task_actions.remove(&id); (idx, result) }
                    Err(err) => {
                        let idx = task_actions.remove(&err.id()).unwrap_or_default();
                        (idx, TaskResult::Outcome(Outcome::failed(format!("the executor crashed: {err}"))))
                    }
                };
                // Lines the action wrote before finishing belong before its result.
                while let Ok(line) = log_rx.try_recv() {
                    record_log(plan, &mut state, line, &secrets, observer);
                }
                crate::fault::point("after_executor");
                let now = Utc::now();
                match result {
                    TaskResult::Outcome(outcome) => {
                        let outcome = match outcome {
                            Outcome::Failed { error, retryable } => Outcome::Failed { error: secrets.redact(&error), retryable },
                            Outcome::Complete { outputs }
                                // The outputs map itself is the first level.
                                if 1 + outputs.values().map(crate::load::depth).max().unwrap_or(0) > MAX_OUTPUT_NESTING =>
                            {
                                Outcome::failed(format!(
                                    "its outputs nest more than {MAX_OUTPUT_NESTING} levels deep; the state document \
                                     would become unreadable (flatten them, or write them to a file)"
                                ))
                            }
                            Outcome::Complete { outputs } => {
                                secrets.learn_map(&outputs);
                                Outcome::Complete { outputs }
                            }
                            other => other,
                        };
                        scheduler.apply(&mut state, idx, outcome, now)
                    }
                    TaskResult::Cancelled(reason, result) => scheduler.apply_cancel(&mut state, idx, reason, result, now),
                }
                unsaved_effects |= has_side_effects(plan, idx);
                notify_changes(&mut scheduler, plan, &state, observer);
            }
        }
    }
    while let Ok(line) = log_rx.try_recv() {
        record_log(plan, &mut state, line, &secrets, observer);
    }

    let now = Utc::now();
    let flow = if saved.operator_changed || (state.abort_requested && !abort_handled) {
        Flow::Execute
    } else {
        scheduler.flow(&state, now)
    };
    let status = match flow {
        Flow::Execute => RunStatus::Running,
        Flow::Wait(_) => RunStatus::Waiting,
        Flow::Success => RunStatus::Succeeded,
        Flow::Failure if state.abort_requested => RunStatus::Aborted,
        Flow::Failure => RunStatus::Failed,
    };
    if status != state.status || status.is_finished() {
        let counts = state.counts();
        let summary: Vec<String> = crate::state::ActionStatus::ALL
            .iter()
            .filter(|s| counts[**s as usize] > 0)
            .map(|s| format!("{} {}", counts[*s as usize], s))
            .collect();
        state.log_run(
            now,
            if status == RunStatus::Failed {
                Level::Error
            } else {
                Level::Info
            },
            format!("run {status}: {}", summary.join(", ")),
        );
    }
    state.status = status;
    state.driver = None;
    let merged = saved.save(run, &mut state).await?;
    observer.saved(plan, &state, &saved.version);
    let status = state.status;
    tracing::info!(status = %status, version = %saved.version, "tick finished");
    // An operator change that arrived during the save is honoured by the next tick.
    let flow = if merged.actions || (state.abort_requested && !status.is_finished()) {
        Flow::Execute
    } else {
        flow
    };
    Ok(TickReport {
        flow,
        status,
        version: saved.version,
        invocations: state.invocations,
    })
}

/// The version a tick last saved, and whether any of its saves merged an operator's change
/// to actions (the scheduler's view is stale from then on).
struct Saved {
    version: String,
    operator_changed: bool,
}

impl Saved {
    async fn save<S: RunStore>(
        &mut self,
        run: &Run<S>,
        state: &mut RunState,
    ) -> Result<Merged, RunError> {
        state.updated_at = Utc::now();
        let (version, merged) = save_merging(run, state, &self.version).await?;
        self.version = version;
        self.operator_changed |= merged.actions;
        Ok(merged)
    }
}

fn has_side_effects(plan: &Plan, idx: ActionIdx) -> bool {
    let action = plan.action(idx);
    action.action_type.spec().mode == Mode::Sync && !action.action_type.may_replay(&action.params)
}

fn notify_changes(
    scheduler: &mut Scheduler<'_>,
    plan: &Plan,
    state: &RunState,
    observer: &dyn Observer,
) {
    let mut changed = scheduler.take_changes();
    changed.dedup();
    for idx in changed {
        let action = state.action(idx);
        tracing::debug!(action = plan.label(idx), status = %action.status, attempt = action.attempt, "action changed");
        observer.action_changed(plan, idx, action);
    }
}

fn record_log(
    plan: &Plan,
    state: &mut RunState,
    line: LogLine,
    secrets: &Secrets,
    observer: &dyn Observer,
) {
    let entry = LogEntry {
        t: line.t,
        level: line.level,
        msg: secrets.redact(&line.msg),
    };
    observer.log(plan, Some(line.idx), &entry);
    state.action_mut(line.idx).push_log(entry);
}

/// Saves with compare-and-swap. When someone saved first, their change is merged if it was an
/// operator's (see [`crate::merge`]) and the save retried; another driver's tick, or a change
/// to the same action, ends the tick with the conflict.
async fn save_merging<S: RunStore>(
    run: &Run<S>,
    state: &mut RunState,
    expected: &str,
) -> Result<(String, Merged), RunError> {
    let mut expected = expected.to_string();
    let mut merged = Merged::default();
    loop {
        match run.save(state, &expected).await {
            Ok(version) => return Ok((version, merged)),
            Err(err) if err.is_conflict() => {
                let base = run.load_version(&expected).await?;
                let (theirs, latest) = run.load().await?;
                match merge_operator_change(state, &base, &theirs) {
                    Ok(took) => {
                        if took.abort {
                            state.log_run(
                                Utc::now(),
                                Level::Warn,
                                "abort requested by an operator",
                            );
                        }
                        if took.actions {
                            state.log_run(
                                Utc::now(),
                                Level::Info,
                                "merged an operator's change to actions saved during this tick",
                            );
                        }
                        tracing::info!(version = %latest, "merged a concurrent operator change");
                        merged.actions |= took.actions;
                        merged.abort |= took.abort;
                        expected = latest;
                    }
                    Err(why) => {
                        tracing::warn!("{why}");
                        return Err(err);
                    }
                }
            }
            Err(err) => return Err(err),
        }
    }
}

struct TaskContext<'a, E> {
    run_id: String,
    plan: &'a Plan,
    executor: &'a Arc<E>,
    log_tx: &'a mpsc::UnboundedSender<LogLine>,
    options: &'a TickOptions,
    deadline: Instant,
}

impl<E: Executor> TaskContext<'_, E> {
    fn spawn(
        &self,
        tasks: &mut JoinSet<(ActionIdx, TaskResult)>,
        task_actions: &mut HashMap<tokio::task::Id, ActionIdx>,
        state: &RunState,
        step: Step,
    ) {
        let idx = step.idx();
        let action = self.plan.action(idx);
        let executor = Arc::clone(self.executor);
        let log = LogSink::new(idx, self.log_tx.clone());
        let handle = match step {
            Step::Start {
                idx,
                attempt,
                params,
            } => {
                let remaining_timeout = action.timeout;
                let budget_left = self.deadline.saturating_duration_since(Instant::now());
                let limit = match (remaining_timeout, self.options.hard_deadline) {
                    (Some(t), true) => Some(t.min(budget_left)),
                    (Some(t), false) => Some(t),
                    (None, true) => Some(budget_left),
                    (None, false) => None,
                };
                let request = StartRequest {
                    run_id: self.run_id.clone(),
                    label: action.label.clone(),
                    action_type: action.action_type,
                    params,
                    attempt,
                    limit,
                    log,
                };
                tasks
                    .spawn(async move { (idx, TaskResult::Outcome(executor.start(request).await)) })
            }
            Step::Check { idx, handle } => {
                let request = self.check_request(state, idx, handle, log);
                tasks
                    .spawn(async move { (idx, TaskResult::Outcome(executor.check(request).await)) })
            }
            Step::Cancel {
                idx,
                handle,
                reason,
            } => {
                let request = self.check_request(state, idx, handle, log);
                tasks.spawn(async move {
                    (
                        idx,
                        TaskResult::Cancelled(reason, executor.cancel(request).await),
                    )
                })
            }
        };
        task_actions.insert(handle.id(), idx);
    }

    fn check_request(
        &self,
        state: &RunState,
        idx: ActionIdx,
        handle: serde_json::Value,
        log: LogSink,
    ) -> CheckRequest {
        let action = self.plan.action(idx);
        // Checks see the params as the start saw them: rendered against the same outputs.
        let params = if action.templated {
            crate::template::render_params(
                &action.params,
                &crate::scheduler::context_for(self.plan, state, idx),
            )
            .unwrap_or_else(|_| action.params.clone())
        } else {
            action.params.clone()
        };
        CheckRequest {
            run_id: self.run_id.clone(),
            label: action.label.clone(),
            action_type: action.action_type,
            params,
            handle,
            attempt: state.action(idx).attempt,
            log,
        }
    }
}

/// Drives a run to the end on this machine: ticks, sleeping between them as the engine asks,
/// and waking early when someone else changes the run (an abort from another terminal).
pub async fn drive<S: RunStore, E: Executor>(
    run: &Run<S>,
    executor: &Arc<E>,
    options: &TickOptions,
    observer: &dyn Observer,
) -> Result<TickReport, RunError> {
    let _guard = run.store.lock_driver()?;
    loop {
        let report = tick(run, executor, options, observer).await?;
        if options.stopping() && !report.status.is_finished() {
            return Ok(report);
        }
        match report.flow {
            Flow::Success | Flow::Failure => return Ok(report),
            Flow::Execute => continue,
            Flow::Wait(duration) => {
                let until = Instant::now() + duration;
                while Instant::now() < until && !options.stopping() {
                    let step = until
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(250));
                    tokio::time::sleep(step).await;
                    if run.store.head().await? != report.version {
                        break;
                    }
                }
            }
        }
    }
}
