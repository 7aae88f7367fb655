//! What the command line and the console both do to a run: drive it, abort it (and stop its
//! Step Functions execution), re-execute part of it, and settle an abort that nobody driving
//! the run would carry out. Each operation says what happened; callers decide how to tell it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::driver::{self, Observer, Silent, TickOptions, TickReport};
use baton_core::scheduler::{apply_reexecute, preview_reexecute, Preview, Reexecute};
use baton_core::store::DriverGuard;
use baton_core::{ActionStatus, Run, RunError, RunState, RunStatus, RunStore, StoreError};
use chrono::Utc;

use crate::locator::AnyStore;
use crate::remote::{RemoteRun, Started};
use crate::Failure;

/// Drives the run from this process until it finishes (or `options.stop` is set); returns the
/// last tick's report (with the run's state then).
pub async fn drive(
    run: &Run<AnyStore>,
    options: &TickOptions,
    observer: &dyn Observer,
) -> Result<TickReport, RunError> {
    let executor = Arc::new(crate::aws::executor(&run.plan, needs_aws(run).await).await);
    driver::drive(run, &executor, options, observer).await
}

/// Whether driving the run needs AWS beyond what its action types say: a sink for its status
/// hooks (set when it was created), or commands of a submitted run, which a runner may have
/// started as ECS tasks that only AWS can check or stop (its S3 store has AWS loaded anyway).
async fn needs_aws(run: &Run<AnyStore>) -> bool {
    let commands = run
        .plan
        .actions()
        .iter()
        .any(|a| a.action_type == baton_core::ActionType::Command);
    if run.store.is_remote() && commands {
        return true;
    }
    let hooked = run
        .plan
        .actions()
        .iter()
        .any(|a| !a.details().hooks.is_empty());
    hooked
        && run
            .load()
            .await
            .is_ok_and(|(state, _)| state.hook_sink().is_some())
}

/// One engine tick with default options, for a caller holding the run's driver lock.
pub async fn tick(run: &Run<AnyStore>) -> Result<TickReport, RunError> {
    let executor = Arc::new(crate::aws::executor(&run.plan, needs_aws(run).await).await);
    driver::tick(run, &executor, &TickOptions::default(), &Silent).await
}

/// What an abort did.
#[derive(Debug, Clone, PartialEq)]
pub enum Aborted {
    /// The run had already finished: nothing changed.
    AlreadyFinished { run_id: String, status: RunStatus },
    /// The request is saved in the run.
    Requested {
        run_id: String,
        stopped: Stopped,
        honoured: Honoured,
        /// The run's state once the abort was carried out (here, or by the process driving
        /// the run while `abort` waited for it), for its stop report; `None` while that is
        /// still under way.
        settled: Option<Box<RunState>>,
    },
}

/// What a hard abort did to the run's Step Functions executions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// A plain abort leaves them to notice the request.
    NotAsked,
    /// The run has no execution: it was not submitted.
    NoExecution,
    /// This many were running and are stopped.
    Executions(usize),
}

/// Who carries out a requested abort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Honoured {
    /// This process did, with one tick: the run's status after it.
    Here(RunStatus),
    /// The process driving the run (a local lock, or an S3 lease held elsewhere), on its next
    /// check.
    ByDriver,
    /// The run's Step Functions execution: its tick in flight takes the request within a
    /// second, and its next tick ends the run.
    ByExecution,
    /// The stopped execution's last tick still holds the run (a Lambda invocation outlives
    /// the execution it belonged to): it takes the request itself, but nothing will settle
    /// the run after it lets go. `baton abort RUN` then finishes the abort.
    StillHeld {
        holder: String,
        until: baton_core::state::Timestamp,
    },
}

/// Asks the run to stop: running actions are cancelled where their type can cancel. A run
/// nobody drives is settled here at once; `driven_here` says this process drives it already.
pub async fn abort(run: &Run<AnyStore>, driven_here: bool) -> Result<Aborted, Failure> {
    request_abort(run, None, driven_here).await
}

/// [`abort`], and stop the run's running Step Functions executions first; `who` ends the cause
/// recorded on them ("from the console").
pub async fn abort_hard(run: &Run<AnyStore>, who: &str) -> Result<Aborted, Failure> {
    request_abort(run, Some(who), false).await
}

async fn request_abort(
    run: &Run<AnyStore>,
    hard: Option<&str>,
    driven_here: bool,
) -> Result<Aborted, Failure> {
    let (state, _) = run.load().await?;
    if state.status().is_finished() {
        return Ok(Aborted::AlreadyFinished {
            run_id: state.run_id().to_string(),
            status: state.status(),
        });
    }
    run.update(|_, state| state.request_abort()).await?;
    // A console driving a remote run here honours a plain abort itself, like any driver.
    let remote_machine = remote_driver(run, &state).filter(|_| hard.is_some() || !driven_here);
    if let Some(state_machine) = remote_machine {
        let remote = remote_run(run, &state, state_machine).await;
        return abort_remote(run, &remote, state.run_id(), hard).await;
    }
    let stopped = match hard {
        None => Stopped::NotAsked,
        Some(_) => Stopped::NoExecution,
    };
    let (honoured, settled) = if driven_here {
        (Honoured::ByDriver, None)
    } else {
        match settle_abort_here(run).await? {
            Some(state) => (Honoured::Here(state.status()), Some(Box::new(state))),
            None => (
                Honoured::ByDriver,
                wait_for_driver(run).await?.map(Box::new),
            ),
        }
    };
    Ok(Aborted::Requested {
        run_id: state.run_id().to_string(),
        stopped,
        honoured,
        settled,
    })
}

/// The abort of a run that Step Functions drives. Hard: stop its executions, then settle the
/// run here once their last tick lets go of it. Plain: a tick in flight takes the request
/// itself; otherwise the execution is only pausing between ticks (for as long as the longest
/// wait), so the abort is settled here at once and the execution, with nothing left to drive,
/// is stopped.
async fn abort_remote(
    run: &Run<AnyStore>,
    remote: &RemoteRun,
    run_id: &str,
    hard: Option<&str>,
) -> Result<Aborted, Failure> {
    let requested = |stopped, honoured| Aborted::Requested {
        run_id: run_id.to_string(),
        stopped,
        honoured,
        settled: None,
    };
    if let Some(who) = hard {
        let cause = format!("run {run_id} aborted by an operator {who}");
        let stopped = remote.stop_running(&cause).await?.len();
        let honoured = settle_once_released(run).await?;
        return Ok(requested(Stopped::Executions(stopped), honoured));
    }
    let Some(status) = settle_abort(run).await? else {
        return Ok(requested(Stopped::NotAsked, Honoured::ByExecution));
    };
    let cause = format!("run {run_id} aborted by an operator; nothing is left to drive");
    let stopped = match remote.stop_running(&cause).await?.len() {
        0 => Stopped::NotAsked,
        n => Stopped::Executions(n),
    };
    Ok(requested(stopped, Honoured::Here(status)))
}

/// How long a hard abort waits for the stopped execution's last tick to let go of the run: a
/// lease's lifetime and a little more. A tick takes an abort within a second and stops its
/// commands' processes; one that outlasts this is still at work, and says so.
const RELEASE_WAIT: Duration = Duration::from_secs(45);

/// Settles a requested abort as soon as nobody holds the run, waiting at most
/// [`RELEASE_WAIT`] for the holder of a live lease.
async fn settle_once_released(run: &Run<AnyStore>) -> Result<Honoured, Failure> {
    let deadline = Instant::now() + RELEASE_WAIT;
    loop {
        if let Some(status) = settle_abort(run).await? {
            return Ok(Honoured::Here(status));
        }
        let (state, _) = run.load().await?;
        if state.status().is_finished() {
            return Ok(Honoured::Here(state.status()));
        }
        if Instant::now() >= deadline {
            let lease = state.driver().filter(|lease| lease.until > Utc::now());
            return Ok(match lease {
                Some(lease) => Honoured::StillHeld {
                    holder: lease.holder.clone(),
                    until: lease.until,
                },
                None => Honoured::ByDriver,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Carries out a requested abort with one tick, when nobody drives the run. `None` when a
/// driver has it after all (its lock, its S3 lease, or a save that raced this tick's): that
/// driver honours the request itself.
pub async fn settle_abort(run: &Run<AnyStore>) -> Result<Option<RunStatus>, Failure> {
    Ok(settle_abort_here(run).await?.map(|state| state.status()))
}

async fn settle_abort_here(run: &Run<AnyStore>) -> Result<Option<RunState>, Failure> {
    let _guard = match run.store.lock_driver() {
        Ok(guard) => guard,
        Err(StoreError::Busy { .. }) => return Ok(None),
        Err(other) => return Err(other.into()),
    };
    match tick(run).await {
        Ok(report) => Ok(Some(report.state)),
        Err(RunError::Store(StoreError::Busy { .. })) => Ok(None),
        Err(e) if e.is_conflict() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Time for a driver to notice an abort (it looks once a second at most, and between ticks
/// four times a second), stop what it runs and save, on top of its commands' grace periods.
const ABORT_SLACK: Duration = Duration::from_secs(3);

/// Waits for the process driving the run to carry out the abort: as long as the longest grace
/// period of the commands it must stop, plus [`ABORT_SLACK`]. The run's state once it has
/// finished, or `None` if it has not by then.
async fn wait_for_driver(run: &Run<AnyStore>) -> Result<Option<RunState>, Failure> {
    let (mut state, mut version) = run.load().await?;
    let grace = state
        .actions()
        .iter()
        .filter(|a| a.status == ActionStatus::Running)
        .filter_map(|a| a.process.as_deref())
        .map(|p| p.grace())
        .max()
        .unwrap_or_default();
    let until = Instant::now() + grace + ABORT_SLACK;
    loop {
        if state.status().is_finished() {
            return Ok(Some(state));
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if run.store.head().await? != version {
            (state, version) = run.load().await?;
        }
    }
}

/// A re-execution worked out while holding the run (resetting under a live driver would race
/// it), not applied yet.
pub struct PlannedReexecute<'r> {
    run: &'r Run<AnyStore>,
    mode: Reexecute,
    preview: Preview,
    _guard: Box<dyn DriverGuard>,
}

/// Takes the run's driver lock and works out what re-executing `mode` would do.
pub async fn plan_reexecute(
    run: &Run<AnyStore>,
    mode: Reexecute,
) -> Result<PlannedReexecute<'_>, Failure> {
    let guard = run.store.lock_driver()?;
    let (state, _) = run.load().await?;
    let preview = preview_reexecute(&run.plan, &state, mode);
    Ok(PlannedReexecute {
        run,
        mode,
        preview,
        _guard: guard,
    })
}

impl PlannedReexecute<'_> {
    pub fn preview(&self) -> &Preview {
        &self.preview
    }

    /// Resets the selected actions to pending and lets go of the run; returns the new state.
    /// Nothing drives the run yet: see [`remote_driver`].
    pub async fn reset(self) -> Result<RunState, Failure> {
        let mode = self.mode;
        let (_, state, _) = self
            .run
            .update(|plan, state| apply_reexecute(plan, state, mode, Utc::now()))
            .await?;
        Ok(state)
    }
}

/// The state machine whose executions drive the run, for a submitted run in S3; `None` when a
/// process drives it.
pub fn remote_driver<'s>(run: &Run<AnyStore>, state: &'s RunState) -> Option<&'s str> {
    state.state_machine().filter(|_| run.store.is_remote())
}

/// Resets the actions `mode` selects, whatever the preview says; nothing drives the run yet.
pub async fn reset(run: &Run<AnyStore>, mode: Reexecute) -> Result<RunState, Failure> {
    plan_reexecute(run, mode).await?.reset().await
}

/// The run's executions under `state_machine`.
pub async fn remote_run(run: &Run<AnyStore>, state: &RunState, state_machine: &str) -> RemoteRun {
    RemoteRun::connect(state_machine, &run.store.locator(), state.run_id()).await
}

/// Re-executes a run that Step Functions drives: reset, then a new execution drives it.
/// Refused, before anything is reset, while an execution drives the run.
pub async fn reexecute_remotely(
    run: &Run<AnyStore>,
    mode: Reexecute,
    state_machine: &str,
) -> Result<Started, Failure> {
    let (state, _) = run.load().await?;
    let remote = remote_run(run, &state, state_machine).await;
    remote.ensure_none_running().await?;
    reset(run, mode).await?;
    remote.start().await
}

/// Starts a new execution for a remote run that nothing drives (its execution failed, was
/// stopped, or never started), under `state_machine` or the one recorded at submit.
/// Refused while an execution or another driver holds the run.
pub async fn resume_remotely(
    run: &Run<AnyStore>,
    state_machine: Option<&str>,
) -> Result<Started, Failure> {
    let locator = run.store.locator();
    if !run.store.is_remote() {
        return Err(Failure::Invalid(format!(
            "{locator}: --remote drives a run in S3 with Step Functions; `baton resume {locator}` drives this one here"
        )));
    }
    let (state, _) = run.load().await?;
    if let Some(lease) = state.driver().filter(|lease| lease.until > Utc::now()) {
        return Err(Failure::Infra(format!(
            "{locator}: the run is being driven by {} (lease until {}); a new execution would wait for it. \
             Once it lets go, `baton status {locator}` says whether anything still drives the run",
            lease.holder,
            baton_core::state::ts::format(&lease.until)
        )));
    }
    let state_machine = match (state_machine, state.state_machine()) {
        (Some(given), _) => {
            crate::remote::check_state_machine(&crate::remote::client().await, given).await?
        }
        (None, Some(recorded)) => recorded.to_string(),
        (None, None) => {
            return Err(Failure::Invalid(format!(
                "{locator}: the run was not submitted, so no state machine is recorded; give --state-machine ARN"
            )))
        }
    };
    let remote = remote_run(run, &state, &state_machine).await;
    remote.ensure_none_running().await?;
    if state.state_machine() != Some(state_machine.as_str()) {
        let arn = state_machine.clone();
        run.update(|_, state| state.set_state_machine(Some(arn.clone())))
            .await?;
    }
    remote.start().await
}
