//! The async driver: composes the sans-IO scheduler with a store and an executor. One call of
//! [`tick`] is one Lambda invocation or one turn of the local loop; [`drive`] repeats ticks
//! until the run ends.
//!
//! A tick has named steps: `claim_lease` (stores that cannot lock), then on a `Tick`:
//! `honour_abort`, `pump` (start what is ready, fold outcomes back in, save around side
//! effects) and `finish` (decide what next, save once more).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::actions::{CancelError, CheckRequest, Control, LogSink, Mode, Outcome, StartRequest};
use crate::executor::Executor;
use crate::hooks::HookEvent;
use crate::log::{Level, LogEntry, Timestamp};
use crate::log_stream::StreamWriter;
use crate::merge::{merge_operator_change, Merged};
use crate::model::{ActionIdx, HookState, Plan};
use crate::process::{ProcessRecord, Whereabouts};
use crate::redact::Secrets;
use crate::run::{Run, RunError};
use crate::scheduler::{rendered_params, CancelReason, Next, Scheduler, Step};
use crate::state::{ActionState, ActionStatus, Lease, RunState, RunStatus, StopCause};
use crate::store::{RunStore, StoreError};
use crate::template::TemplateError;

/// How a tick may use its time.
#[derive(Debug, Clone)]
pub struct TickOptions {
    /// Stop starting new work after this long (Lambda: deadline minus a margin).
    pub budget: Duration,
    /// Also bound synchronous actions by the budget (Lambda must return before its deadline;
    /// a local driver lets a long command finish).
    pub hard_deadline: bool,
    /// Most actions running at once (instant actions do not count).
    pub max_parallel: Option<usize>,
    /// Set (a signal to baton, quitting the console) to stop: nothing new starts, running
    /// commands are stopped (see [`StopSwitch`]), the state is saved and the tick returns.
    pub stop: StopSwitch,
    /// Take the run over even if another driver's lease on it has not lapsed (the operator
    /// knows that driver is dead). Only stores without a driver lock use leases.
    pub take_over: bool,
}

impl TickOptions {
    fn stopping(&self) -> bool {
        self.stop.requested().is_some()
    }
}

impl Default for TickOptions {
    fn default() -> Self {
        TickOptions {
            budget: Duration::from_secs(60),
            hard_deadline: false,
            max_parallel: None,
            stop: StopSwitch::default(),
            take_over: false,
        }
    }
}

/// Asks the drivers that share it to stop: they start nothing more, stop running commands
/// (SIGTERM to each command's process group, its grace period, then SIGKILL), fold what that
/// did into the state, save, and return. Waits and stacks are left as they are: a later
/// `resume` picks them up. The first request's cause is the one recorded.
#[derive(Debug, Clone)]
pub struct StopSwitch {
    tx: Arc<watch::Sender<Option<StopCause>>>,
}

impl Default for StopSwitch {
    fn default() -> Self {
        StopSwitch {
            tx: Arc::new(watch::Sender::new(None)),
        }
    }
}

impl StopSwitch {
    /// Asks for a stop; returns false when one was asked for already.
    pub fn request(&self, cause: StopCause) -> bool {
        self.tx.send_if_modified(|current| {
            let first = current.is_none();
            if first {
                *current = Some(cause);
            }
            first
        })
    }

    /// The cause of the stop asked for, if any.
    pub fn requested(&self) -> Option<StopCause> {
        *self.tx.borrow()
    }

    /// Resolves once a stop is asked for.
    async fn wait(&self) -> StopCause {
        let mut rx = self.tx.subscribe();
        loop {
            if let Some(cause) = *rx.borrow_and_update() {
                return cause;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// How long a lease lasts without renewal. A live driver renews it halfway (while a long
/// command runs); a dead one's lapses soon enough for Step Functions' retries to get past it.
const LEASE: Duration = Duration::from_secs(30);

/// How long one status hook's publication may hold the tick up.
const HOOK_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest grace period of a command stopped in a tick with a hard deadline (Lambda): the
/// stop, the save and the answer must fit in the function's safety margin.
const HARD_DEADLINE_GRACE: Duration = Duration::from_secs(2);

/// How often a tick with work in flight looks for changes made by operators (an abort stops
/// running commands this soon): cheap on a local store, a request on S3.
const WATCH_LOCAL: Duration = Duration::from_millis(250);
const WATCH_REMOTE: Duration = Duration::from_secs(1);

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
        let nonce = crate::util::sha256_hex(
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

fn lease_until() -> Timestamp {
    Utc::now() + chrono::Duration::from_std(LEASE).unwrap_or_default()
}

/// What a tick did: what to do next, and the state it left (as saved, at `version`).
#[derive(Debug, Clone)]
pub struct TickReport {
    /// What the caller should do next.
    pub next: Next,
    /// The run's state after the tick.
    pub state: RunState,
    /// The version the tick saved last (or found, if it had nothing to do).
    pub version: String,
}

impl TickReport {
    /// The run's status after the tick.
    pub fn status(&self) -> RunStatus {
        self.state.status
    }
}

/// Receives progress as it happens (the plain printer, the console).
pub trait Observer: Send + Sync {
    /// A tick loaded the run and is about to work on it (the state as loaded).
    fn tick_started(&self, _plan: &Plan, _state: &RunState) {}
    /// An action's status (or attempt, or error) changed.
    fn action_changed(&self, _plan: &Plan, _idx: ActionIdx, _state: &ActionState) {}
    /// A log line arrived for an action (`Some`) or the run.
    fn log(&self, _plan: &Plan, _idx: Option<ActionIdx>, _entry: &LogEntry) {}
    /// A version was saved.
    fn saved(&self, _plan: &Plan, _state: &RunState, _version: &str) {}
}

/// Observes nothing.
pub struct Silent;
impl Observer for Silent {}

/// A log line from a running action, on its way to the action's log thread.
#[derive(Debug)]
struct LogLine {
    idx: ActionIdx,
    t: Timestamp,
    level: Level,
    msg: String,
}

enum TaskResult {
    Outcome(Outcome),
    Cancelled(CancelReason, Result<(), CancelError>),
    /// A command an earlier baton process started, watched until it ended by itself.
    OrphanEnded,
}

/// A command's process record, on its way to the state.
struct Started {
    idx: ActionIdx,
    attempt: u32,
    record: ProcessRecord,
}

type Joined = Result<(tokio::task::Id, (ActionIdx, TaskResult)), tokio::task::JoinError>;

/// What a tick waiting on work in flight woke up for.
enum Event {
    /// A waiting action fell due.
    Due,
    /// The lease is half spent.
    RenewLease,
    /// Time to look for operator changes.
    Watch,
    /// Someone asked this process to stop (a signal, quitting the console).
    Stop,
    /// A command started: where its processes are.
    Started(Started),
    Log(LogLine),
    /// Log lines have waited long enough: append them to their live streams.
    FlushLogs,
    Joined(Joined),
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
    async {
        let (mut state, version) = run.load().await?;
        if state.status.is_finished() {
            let next = if state.status == RunStatus::Succeeded {
                Next::Success
            } else {
                Next::Failure
            };
            return Ok(TickReport {
                next,
                state,
                version,
            });
        }
        state.invocations =
            state
                .invocations
                .checked_add(1)
                .ok_or_else(|| RunError::Damaged {
                    locator: run.store.locator(),
                    message: format!(
                        "state version {version}: the tick count is at its maximum ({}); the state was tampered with",
                        u64::MAX
                    ),
                })?;
        tracing::Span::current()
            .record("run_id", state.run_id.as_str())
            .record("invocation", state.invocations);
        tracing::info!("tick started");
        observer.tick_started(&run.plan, &state);
        let mut saved = Saved {
            version,
            operator_changed: false,
        };
        claim_lease(run, options, &mut state, &mut saved).await?;
        let mut tick = Tick::new(run, executor, options, observer, state, saved);
        tick.honour_abort();
        tick.pump().await?;
        tick.finish().await
    }
    .instrument(span)
    .await
}

/// Stores that cannot lock claim the run in the document: of two drivers that loaded the
/// same version, the compare-and-swap lets exactly one through.
async fn claim_lease<S: RunStore>(
    run: &Run<S>,
    options: &TickOptions,
    state: &mut RunState,
    saved: &mut Saved,
) -> Result<(), RunError> {
    if !run.store.needs_lease() {
        return Ok(());
    }
    let now = Utc::now();
    if let Some(lease) = &state.driver {
        if lease.until > now {
            if !options.take_over {
                return Err(RunError::Store(StoreError::Busy {
                    locator: run.store.locator(),
                    holder: format!(
                        " ({}, lease until {}; if that process died, wait for the lease to lapse or take over with `baton resume --take-over`)",
                        lease.holder,
                        crate::log::ts::format(&lease.until)
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
    saved.save(run, state).await?;
    Ok(())
}

/// One tick in progress: the state it works on, the scheduler's view of it, and the work in
/// flight.
struct Tick<'r, S, E> {
    run: &'r Run<S>,
    plan: &'r Plan,
    executor: &'r Arc<E>,
    options: &'r TickOptions,
    observer: &'r dyn Observer,
    deadline: Instant,
    state: RunState,
    saved: Saved,
    scheduler: Scheduler<'r>,
    secrets: Secrets,
    log_tx: mpsc::UnboundedSender<LogLine>,
    log_rx: mpsc::UnboundedReceiver<LogLine>,
    /// Redacted lines on their way to the live log streams watchers read.
    streams: StreamWriter,
    tasks: JoinSet<(ActionIdx, TaskResult)>,
    task_actions: HashMap<tokio::task::Id, ActionIdx>,
    started_tx: mpsc::UnboundedSender<Started>,
    started_rx: mpsc::UnboundedReceiver<Started>,
    /// Tells running commands to stop, and why; `Some` once the tick has asked.
    halt: watch::Sender<Option<StopCause>>,
    /// Side effects whose start or end is not yet saved: a crash must not lose them.
    unsaved_effects: bool,
    /// An abort merged later in the tick is carried out by the next tick, with a fresh
    /// scheduler.
    abort_handled: bool,
    /// Each action's status and attempt when its status hooks were last considered: a hook
    /// fires when the action enters a state, not each time it is looked at.
    hook_seen: Vec<(ActionStatus, u32)>,
    /// Hooks that fired, on their way to the run's sink.
    hooks_pending: Vec<(ActionIdx, HookEvent)>,
}

impl<'r, S: RunStore, E: Executor> Tick<'r, S, E> {
    fn new(
        run: &'r Run<S>,
        executor: &'r Arc<E>,
        options: &'r TickOptions,
        observer: &'r dyn Observer,
        mut state: RunState,
        saved: Saved,
    ) -> Self {
        let plan: &'r Plan = &run.plan;
        let hook_seen = state
            .actions
            .iter()
            .map(|a| (a.status, a.attempt))
            .collect();
        let orphans = live_orphans(plan, &state);
        let adopted: Vec<ActionIdx> = orphans.iter().map(|(idx, _)| *idx).collect();
        let scheduler = Scheduler::adopting(
            plan,
            &mut state,
            Utc::now(),
            options.max_parallel,
            &adopted,
            executor.sends_commands_elsewhere(),
        );
        let secrets = Secrets::for_run(plan, &state);
        let (log_tx, log_rx) = mpsc::unbounded_channel();
        let (started_tx, started_rx) = mpsc::unbounded_channel();
        let abort_handled = state.abort_requested;
        let mut tick = Tick {
            run,
            plan,
            executor,
            options,
            observer,
            deadline: Instant::now() + options.budget,
            state,
            saved,
            scheduler,
            secrets,
            log_tx,
            log_rx,
            streams: StreamWriter::default(),
            tasks: JoinSet::new(),
            task_actions: HashMap::new(),
            started_tx,
            started_rx,
            halt: watch::Sender::new(None),
            unsaved_effects: false,
            abort_handled,
            hook_seen,
            hooks_pending: Vec::new(),
        };
        for (idx, record) in orphans {
            tick.watch_orphan(idx, record);
        }
        tick
    }

    /// Watches a command an earlier baton process started and that still runs on this host,
    /// instead of reporting it interrupted (or replaying it beside itself).
    fn watch_orphan(&mut self, idx: ActionIdx, record: ProcessRecord) {
        let action = self.plan.action(idx);
        let entry = self.state.action(idx);
        let elapsed = entry
            .started_at
            .and_then(|t| (Utc::now() - t).to_std().ok())
            .unwrap_or_default();
        let timeout = action.details().timeout;
        let limit = timeout.map(|t| t.saturating_sub(elapsed));
        let log = self.log_sink(idx);
        log.send(
            Level::Warn,
            format!(
                "attempt {} is still running (pid {}, started by an earlier baton process); \
                 waiting for it to end instead of starting a second copy",
                entry.attempt, record.pid
            ),
        );
        let mut control = Control::new(self.halt.subscribe(), |_| {});
        let handle = self.tasks.spawn(async move {
            let result =
                match crate::actions::command::watch_orphan(&record, limit, timeout, &mut control)
                    .await
                {
                    Some(outcome) => TaskResult::Outcome(outcome),
                    None => TaskResult::OrphanEnded,
                };
            (idx, result)
        });
        self.task_actions.insert(handle.id(), idx);
    }

    /// Tells running commands to stop, once, when an abort or a stop has been asked for.
    fn halt_if_asked(&mut self) {
        if self.halt.borrow().is_some() {
            return;
        }
        let cause = if self.state.abort_requested {
            Some(StopCause::Abort)
        } else {
            self.options.stop.requested()
        };
        if let Some(cause) = cause {
            tracing::info!(%cause, "stopping running commands");
            self.halt.send_replace(Some(cause));
        }
    }

    /// Carries out an abort requested before the tick: cancels what can be cancelled.
    fn honour_abort(&mut self) {
        if !self.state.abort_requested {
            return;
        }
        let now = Utc::now();
        self.state.log_run(
            now,
            Level::Warn,
            "abort requested: cancelling running actions",
        );
        for step in self.scheduler.abort(&mut self.state, now) {
            self.spawn(step);
        }
        self.notify_changes();
    }

    /// Starts what is ready and folds outcomes back in until nothing is in flight.
    async fn pump(&mut self) -> Result<(), RunError> {
        // While work is in flight, look for operator changes (an abort from another terminal,
        // a re-execute) often, so they are merged, and an abort stops running commands, now
        // rather than at the next save.
        let every = if self.run.store.needs_lease() {
            WATCH_REMOTE
        } else {
            WATCH_LOCAL
        };
        let mut watch = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.halt_if_asked();
            if !self.state.abort_requested {
                self.start_ready().await?;
            }
            self.publish_hooks().await;
            if self.tasks.is_empty() {
                break;
            }
            match self.next_event(&mut watch).await {
                Event::Due | Event::Stop => {}
                Event::Started(started) => self.on_started(started).await?,
                Event::RenewLease => {
                    if let Some(lease) = self.state.driver.as_mut() {
                        lease.until = lease_until();
                    }
                    self.saved.save(self.run, &mut self.state).await?;
                }
                Event::Watch => {
                    // A failed look is not worth failing the tick: the next save will tell.
                    let head = self.run.store.head().await;
                    if head.is_ok_and(|head| head != self.saved.version) {
                        self.saved.save(self.run, &mut self.state).await?;
                    }
                }
                Event::Log(line) => self.record_log(line),
                Event::FlushLogs => self.flush_logs().await?,
                Event::Joined(joined) => {
                    self.on_outcome(joined);
                    // Everything else that finished meanwhile (typically while the last save
                    // was being made durable) goes into the same next save: completions share
                    // one write and one fsync instead of queueing for one each.
                    while let Some(joined) = self.tasks.try_join_next_with_id() {
                        self.on_outcome(joined);
                    }
                }
            }
        }
        while let Ok(line) = self.log_rx.try_recv() {
            self.record_log(line);
        }
        self.publish_hooks().await;
        Ok(())
    }

    /// Hands what the scheduler decides to the executor, saving first when a start has side
    /// effects: intent is recorded before the effect, so a crash mid-command is detected.
    async fn start_ready(&mut self) -> Result<(), RunError> {
        // After an operator reset actions mid-tick, the scheduler's view is stale: start
        // nothing more, let a fresh tick pick the run up.
        let may_start = Instant::now() < self.deadline
            && !self.options.stopping()
            && !self.saved.operator_changed;
        let steps = self.scheduler.next(&mut self.state, Utc::now(), may_start);
        self.notify_changes();
        let starts_effect = steps
            .iter()
            .any(|s| matches!(s, Step::Start { idx, .. } if has_side_effects(self.plan, *idx)));
        if starts_effect || self.unsaved_effects {
            self.saved.save(self.run, &mut self.state).await?;
            self.unsaved_effects = false;
            self.observer
                .saved(self.plan, &self.state, &self.saved.version);
        }
        for step in steps {
            if let Step::Start { params, .. } = &step {
                self.secrets.learn(params);
            }
            crate::fault::point("before_start");
            self.spawn(step);
        }
        Ok(())
    }

    async fn next_event(&mut self, watch: &mut tokio::time::Interval) -> Event {
        // Also wake when a waiting action falls due (a finished `system.wait` must not wait
        // for an unrelated long command).
        let due = self
            .scheduler
            .next_due(&self.state)
            .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(3600));
        // A long command must not let the lease lapse under it: renew halfway.
        let renew = match &self.state.driver {
            Some(lease) if self.run.store.needs_lease() => Some(
                (lease.until
                    - Utc::now()
                    - chrono::Duration::from_std(LEASE / 2).unwrap_or_default())
                .to_std()
                .unwrap_or(Duration::ZERO),
            ),
            _ => None,
        };
        let watching = !self.state.abort_requested;
        let flush = self.streams.due();
        let halted = self.halt.borrow().is_some();
        tokio::select! {
            _ = tokio::time::sleep(due) => Event::Due,
            _ = tokio::time::sleep(renew.unwrap_or(Duration::MAX)), if renew.is_some() => Event::RenewLease,
            _ = watch.tick(), if watching => Event::Watch,
            _ = self.options.stop.wait(), if !halted => Event::Stop,
            Some(started) = self.started_rx.recv() => Event::Started(started),
            Some(line) = self.log_rx.recv() => Event::Log(line),
            _ = tokio::time::sleep_until(flush.unwrap_or_else(tokio::time::Instant::now)), if flush.is_some() => Event::FlushLogs,
            Some(joined) = self.tasks.join_next_with_id() => Event::Joined(joined),
        }
    }

    /// Folds a finished start, check or cancel back into the state.
    fn on_outcome(&mut self, joined: Joined) {
        let (idx, result) = match joined {
            Ok((id, (idx, result))) => {
                self.task_actions.remove(&id);
                (idx, result)
            }
            Err(err) => {
                let idx = self.task_actions.remove(&err.id()).unwrap_or_default();
                let outcome = Outcome::failed(format!("the executor crashed: {err}"));
                (idx, TaskResult::Outcome(outcome))
            }
        };
        // Lines the action wrote before finishing belong before its result.
        while let Ok(line) = self.log_rx.try_recv() {
            self.record_log(line);
        }
        while let Ok(started) = self.started_rx.try_recv() {
            self.record_started(started);
        }
        crate::fault::point("after_executor");
        let now = Utc::now();
        match result {
            TaskResult::Outcome(outcome) => {
                let outcome = self.vet(outcome);
                self.scheduler.apply(&mut self.state, idx, outcome, now)
            }
            TaskResult::Cancelled(reason, result) => {
                self.scheduler
                    .apply_cancel(&mut self.state, idx, reason, result, now)
            }
            TaskResult::OrphanEnded => self.scheduler.orphan_ended(&mut self.state, idx, now),
        }
        self.unsaved_effects |= has_side_effects(self.plan, idx);
        self.notify_changes();
    }

    /// Masks known secrets in errors and learns secrets from outputs (whether outputs can be
    /// kept is the scheduler's call).
    fn vet(&mut self, outcome: Outcome) -> Outcome {
        match outcome {
            Outcome::Failed { error, retryable } => Outcome::Failed {
                error: self.secrets.redact(&error),
                retryable,
            },
            Outcome::Complete { outputs } => {
                self.secrets.learn_map(&outputs);
                Outcome::Complete { outputs }
            }
            other => other,
        }
    }

    /// Decides what next, records the run's status and saves once more.
    async fn finish(mut self) -> Result<TickReport, RunError> {
        // The tails of streamed attempts land before the state that ends them.
        self.streams.flush(&self.run.store, &self.state).await;
        let now = Utc::now();
        let next =
            if self.saved.operator_changed || (self.state.abort_requested && !self.abort_handled) {
                Next::Execute
            } else {
                self.scheduler.next_step(&self.state, now)
            };
        let status = match next {
            Next::Execute | Next::Continue => RunStatus::Running,
            Next::Wait(_) => RunStatus::Waiting,
            Next::Success => RunStatus::Succeeded,
            Next::Failure if self.state.abort_requested => RunStatus::Aborted,
            Next::Failure => RunStatus::Failed,
        };
        if status != self.state.status || status.is_finished() {
            let summary = self.state.count_summary();
            let level = if status == RunStatus::Failed {
                Level::Error
            } else {
                Level::Info
            };
            self.state
                .log_run(now, level, format!("run {status}: {summary}"));
        }
        self.state.status = status;
        self.state.driver = None;
        let merged = self.saved.save(self.run, &mut self.state).await?;
        self.observer
            .saved(self.plan, &self.state, &self.saved.version);
        tracing::info!(status = %status, version = %self.saved.version, "tick finished");
        // An operator change that arrived during the save is honoured by the next tick.
        let next = if merged.actions || (self.state.abort_requested && !status.is_finished()) {
            Next::Execute
        } else {
            next
        };
        Ok(TickReport {
            next,
            state: self.state,
            version: self.saved.version,
        })
    }

    fn notify_changes(&mut self) {
        let mut changed = self.scheduler.take_changes();
        changed.dedup();
        for idx in changed {
            // Errors the scheduler wrote itself (an inline `system.fail`, a template or condition
            // error) can quote a secret: masked before any observer or save sees them.
            self.secrets.mask_written(self.state.action_mut(idx));
            let action = self.state.action(idx);
            tracing::debug!(action = self.plan.label(idx), status = %action.status, attempt = action.attempt, "action changed");
            self.observer.action_changed(self.plan, idx, action);
            self.fire_hooks(idx);
        }
    }

    /// Fires action `idx`'s status hooks when it has just entered Running, Complete or
    /// Failed: each is recorded in the action's and the run's log threads, and queued for the
    /// run's sink.
    fn fire_hooks(&mut self, idx: ActionIdx) {
        if self.plan.action(idx).details().hooks.is_empty() {
            return;
        }
        let entry = self.state.action(idx);
        let now_seen = (entry.status, entry.attempt);
        let before = std::mem::replace(&mut self.hook_seen[idx as usize], now_seen);
        let entered = match now_seen.0 {
            _ if before == now_seen => return,
            ActionStatus::Running => HookState::Running,
            ActionStatus::Complete => HookState::Complete,
            ActionStatus::Failed => HookState::Failed,
            _ => return,
        };
        // An inline action (a no-op, variables) starts and ends within one step: it was
        // running all the same, and its Running hooks say so first.
        let passed_running = entered != HookState::Running && now_seen.1 != before.1;
        let states = if passed_running {
            vec![HookState::Running, entered]
        } else {
            vec![entered]
        };
        let now = Utc::now();
        let fired = states
            .into_iter()
            .flat_map(|state| crate::hooks::fire(self.plan, &self.state, idx, state, now));
        for fired in fired.collect::<Vec<_>>() {
            match fired {
                Ok(event) => {
                    let line = self.secrets.redact(&event.log_line());
                    self.record_hook_line(idx, Level::Info, line);
                    if self.state.hook_sink.is_some() {
                        self.hooks_pending.push((idx, event));
                    }
                }
                Err(why) => {
                    let line = self.secrets.redact(&why);
                    self.record_hook_line(idx, Level::Warn, line);
                }
            }
        }
    }

    /// A hook's line, in the action's log thread and the run's.
    fn record_hook_line(&mut self, idx: ActionIdx, level: Level, msg: String) {
        let t = Utc::now();
        let entry = LogEntry {
            t,
            level,
            msg: msg.clone(),
        };
        self.observer.log(self.plan, Some(idx), &entry);
        self.state.action_mut(idx).push_log(entry);
        let run_line = LogEntry {
            t,
            level,
            msg: format!("{}: {msg}", self.plan.label(idx)),
        };
        self.observer.log(self.plan, None, &run_line);
        self.state.log_run(t, level, run_line.msg);
    }

    /// Publishes the hooks that fired to the run's sink. A failure is logged and the action
    /// goes on; a replayed tick may publish a hook again, under the same dedupe id.
    async fn publish_hooks(&mut self) {
        let Some(sink) = self.state.hook_sink.clone() else {
            self.hooks_pending.clear();
            return;
        };
        for (idx, event) in std::mem::take(&mut self.hooks_pending) {
            // Every rendered field can hold a secret a template put there (the log line,
            // made of the same fields, is redacted where it is recorded).
            let redacted = HookEvent {
                status: self.secrets.redact(&event.status),
                message: self.secrets.redact(&event.message),
                identity: self.secrets.redact(&event.identity),
                details: self.secrets.redact_value(&event.details),
                ..event
            };
            let publish = self.executor.publish(&sink, &redacted);
            let failure = match tokio::time::timeout(HOOK_PUBLISH_TIMEOUT, publish).await {
                Ok(Ok(())) => continue,
                Ok(Err(why)) => why.to_string(),
                Err(_) => format!(
                    "no answer from {sink} within {} s",
                    HOOK_PUBLISH_TIMEOUT.as_secs()
                ),
            };
            let line = format!(
                "hook status {} was not published: {}",
                redacted.status,
                self.secrets.redact(&failure)
            );
            self.record_hook_line(idx, Level::Warn, line);
        }
    }

    /// Saves a command's process record at once: a baton that dies from here on leaves enough
    /// behind for `resume` to find the command still running.
    async fn on_started(&mut self, started: Started) -> Result<(), RunError> {
        let mut changed = self.record_started(started);
        while let Ok(more) = self.started_rx.try_recv() {
            changed |= self.record_started(more);
        }
        if changed {
            self.saved.save(self.run, &mut self.state).await?;
            self.observer
                .saved(self.plan, &self.state, &self.saved.version);
        }
        Ok(())
    }

    /// Puts a process record in its action's state, unless that attempt is over already.
    fn record_started(&mut self, started: Started) -> bool {
        let entry = self.state.action_mut(started.idx);
        let current = entry.status == ActionStatus::Running && entry.attempt == started.attempt;
        if current {
            entry.record_process(started.record);
        }
        current
    }

    fn record_log(&mut self, line: LogLine) {
        let entry = LogEntry {
            t: line.t,
            level: line.level,
            msg: self.secrets.redact(&line.msg),
        };
        self.observer.log(self.plan, Some(line.idx), &entry);
        let attempt = self.state.action(line.idx).attempt;
        self.streams.push(self.plan, line.idx, attempt, &entry);
        self.state.action_mut(line.idx).push_log(entry);
    }

    /// Appends waiting lines to the live streams; an attempt the stored state does not show
    /// running yet is saved first, so watchers know to follow it (once per attempt).
    async fn flush_logs(&mut self) -> Result<(), RunError> {
        if self.streams.needs_announcing(&self.state) {
            self.saved.save(self.run, &mut self.state).await?;
            self.observer
                .saved(self.plan, &self.state, &self.saved.version);
        }
        self.streams.flush(&self.run.store, &self.state).await;
        Ok(())
    }

    fn spawn(&mut self, step: Step) {
        let idx = step.idx();
        let executor = Arc::clone(self.executor);
        let handle = match step {
            Step::Start {
                idx,
                attempt,
                params,
            } => {
                let request = self.start_request(idx, attempt, params);
                self.tasks
                    .spawn(async move { (idx, TaskResult::Outcome(executor.start(request).await)) })
            }
            Step::Check { idx, handle } => match self.check_request(idx, handle) {
                Ok(request) => self.tasks.spawn(async move {
                    (idx, TaskResult::Outcome(executor.check(request).await))
                }),
                Err(error) => self.tasks.spawn(async move {
                    let outcome = Outcome::failed(format!("its params no longer render: {error}"));
                    (idx, TaskResult::Outcome(outcome))
                }),
            },
            Step::Cancel {
                idx,
                handle,
                reason,
            } => match self.check_request(idx, handle) {
                Ok(request) => self.tasks.spawn(async move {
                    let result = executor.cancel(request).await;
                    (idx, TaskResult::Cancelled(reason, result))
                }),
                Err(error) => self.tasks.spawn(async move {
                    let result = Err(CancelError::Refused(format!(
                        "its params no longer render: {error}"
                    )));
                    (idx, TaskResult::Cancelled(reason, result))
                }),
            },
        };
        self.task_actions.insert(handle.id(), idx);
    }

    fn log_sink(&self, idx: ActionIdx) -> LogSink {
        let tx = self.log_tx.clone();
        LogSink::new(move |level, msg| {
            // The receiver outlives every running action; a line after the tick ended is moot.
            let _ = tx.send(LogLine {
                idx,
                t: Utc::now(),
                level,
                msg,
            });
        })
    }

    fn start_request(
        &self,
        idx: ActionIdx,
        attempt: u32,
        params: serde_json::Value,
    ) -> StartRequest {
        let action = self.plan.action(idx);
        let budget_left = self.deadline.saturating_duration_since(Instant::now());
        let limit = match (action.details().timeout, self.options.hard_deadline) {
            (Some(t), true) => Some(t.min(budget_left)),
            (Some(t), false) => Some(t),
            (None, true) => Some(budget_left),
            (None, false) => None,
        };
        let started = self.started_tx.clone();
        let mut control = Control::new(self.halt.subscribe(), move |record| {
            // The receiver outlives every running action; a record after the tick ended is moot.
            let _ = started.send(Started {
                idx,
                attempt,
                record,
            });
        });
        if self.options.hard_deadline {
            control = control.with_max_grace(HARD_DEADLINE_GRACE);
        }
        StartRequest {
            run_id: self.state.run_id.clone(),
            label: action.label.clone(),
            action_type: action.action_type,
            params,
            attempt,
            limit,
            log: self.log_sink(idx),
            control,
        }
    }

    /// Checks see the params as the start saw them: rendered against the same outputs.
    fn check_request(
        &self,
        idx: ActionIdx,
        handle: serde_json::Value,
    ) -> Result<CheckRequest, TemplateError> {
        let action = self.plan.action(idx);
        let params = rendered_params(self.plan, &self.state, idx)?;
        Ok(CheckRequest {
            run_id: self.state.run_id.clone(),
            label: action.label.clone(),
            action_type: action.action_type,
            params,
            handle,
            attempt: self.state.action(idx).attempt,
            log: self.log_sink(idx),
        })
    }
}

/// Running commands without a handle whose process records say they still run on this host:
/// an earlier baton process died while they ran.
fn live_orphans(plan: &Plan, state: &RunState) -> Vec<(ActionIdx, ProcessRecord)> {
    (0..plan.len() as ActionIdx)
        .filter_map(|idx| {
            let entry = state.action(idx);
            if entry.status != ActionStatus::Running || entry.handle.is_some() {
                return None;
            }
            let record = entry.process.as_deref()?;
            (record.whereabouts() == Whereabouts::Alive).then(|| (idx, record.clone()))
        })
        .collect()
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
                        state.changes.rebase_onto(&theirs.changes);
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
        if options.stopping() && !report.status().is_finished() {
            return Ok(report);
        }
        match report.next {
            Next::Success | Next::Failure => return Ok(report),
            Next::Execute | Next::Continue => continue,
            Next::Wait(duration) => {
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
