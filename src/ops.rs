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
use crate::remote::{self, Started};
use crate::Failure;

/// Drives the run from this process until it finishes (or `options.stop` is set); returns the
/// last tick's report (with the run's state then).
pub async fn drive(
    run: &Run<AnyStore>,
    options: &TickOptions,
    observer: &dyn Observer,
) -> Result<TickReport, RunError> {
    let executor = Arc::new(crate::aws::executor(&run.plan).await);
    driver::drive(run, &executor, options, observer).await
}

/// One engine tick with default options, for a caller holding the run's driver lock.
pub async fn tick(run: &Run<AnyStore>) -> Result<TickReport, RunError> {
    let executor = Arc::new(crate::aws::executor(&run.plan).await);
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Honoured {
    /// This process did, with one tick: the run's status after it.
    Here(RunStatus),
    /// The process driving the run (a local lock, or an S3 lease held elsewhere), on its next
    /// check.
    ByDriver,
    /// The run's Step Functions execution, on its next tick.
    ByExecution,
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
    let stopped = match (hard, &state.state_machine()) {
        (None, _) => Stopped::NotAsked,
        (Some(_), None) => Stopped::NoExecution,
        (Some(who), Some(state_machine)) => {
            let cause = format!("run {} aborted by an operator {who}", state.run_id());
            let sfn = remote::client().await;
            let stopped = remote::stop_running(&sfn, state_machine, state.run_id(), &cause).await?;
            Stopped::Executions(stopped)
        }
    };
    let (honoured, settled) = if stopped == Stopped::NotAsked && state.state_machine().is_some() {
        (Honoured::ByExecution, None)
    } else if driven_here {
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

/// Re-executes a run that Step Functions drives: reset, then a new execution drives it.
pub async fn reexecute_remotely(
    run: &Run<AnyStore>,
    mode: Reexecute,
    state_machine: &str,
) -> Result<Started, Failure> {
    let state = reset(run, mode).await?;
    start_reexecution(run, state_machine, state.run_id()).await
}

/// Starts a new execution of `state_machine` to drive the run after a reset.
pub async fn start_reexecution(
    run: &Run<AnyStore>,
    state_machine: &str,
    run_id: &str,
) -> Result<Started, Failure> {
    let sfn = remote::client().await;
    remote::start_reexecution(&sfn, state_machine, &run.store.locator(), run_id).await
}
