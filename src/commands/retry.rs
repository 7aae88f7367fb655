//! `baton retry` and `baton abort`.

use std::sync::Arc;

use baton_core::driver::{self, Silent, TickOptions};
use baton_core::scheduler::{apply_reexecute, preview_reexecute, Reexecute};
use baton_core::{RunStore, StoreError};
use chrono::Utc;

use crate::cli::{RetryArgs, StoreArgs};
use crate::{locator, CommandResult, Failure};

pub async fn run(args: RetryArgs) -> CommandResult {
    let run = locator::open(&args.run, &args.store).await?;
    let plan = &run.plan;
    let mode = if args.selection.failed {
        Reexecute::Failed
    } else if let Some(label) = &args.selection.from {
        Reexecute::From(
            plan.find(label)
                .ok_or_else(|| super::logs::unknown_label(plan, label))?,
        )
    } else if let Some(label) = &args.selection.only {
        Reexecute::Only(
            plan.find(label)
                .ok_or_else(|| super::logs::unknown_label(plan, label))?,
        )
    } else {
        return Err(Failure::Invalid(
            "choose --failed, --from LABEL or --only LABEL".into(),
        ));
    };
    // Resetting under a live driver would race it; hold the run while changing it.
    let guard = run.store.lock_driver()?;
    let (state, _) = run.load().await?;
    let preview = preview_reexecute(plan, &state, mode);
    if preview.will_run.is_empty() {
        let why = if preview.stays_blocked.is_empty() {
            "nothing matches"
        } else {
            "everything selected is still blocked"
        };
        eprintln!("nothing to re-execute: {why}");
        return Err(Failure::RunFailed);
    }
    let names = |list: &[u32]| {
        list.iter()
            .map(|&i| plan.label(i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !args.drive.json {
        crate::out!(
            "will run ({}): {}",
            preview.will_run.len(),
            names(&preview.will_run)
        );
        if !preview.reused.is_empty() {
            crate::out!(
                "reusing outputs of ({}): {}",
                preview.reused.len(),
                names(&preview.reused)
            );
        }
        if !preview.stays_blocked.is_empty() {
            crate::out!(
                "still blocked ({}): {}",
                preview.stays_blocked.len(),
                names(&preview.stays_blocked)
            );
        }
    }
    let (_, state, _) = run
        .update(|plan, state| apply_reexecute(plan, state, mode, Utc::now()))
        .await?;
    drop(guard);
    if args.no_run {
        crate::out!("reset; drive it with: baton resume {}", run.store.locator());
        return Ok(());
    }
    // A remote run is driven again by a new execution of its state machine.
    if let (Some(state_machine), true) = (&state.state_machine, run.store.is_remote()) {
        let sfn = crate::remote::client().await;
        let existing = crate::remote::executions(&sfn, state_machine, &state.run_id).await?;
        let name = crate::remote::retry_name(&state.run_id, &existing);
        let execution =
            crate::remote::start(&sfn, state_machine, &run.store.locator(), &name).await?;
        crate::out!("re-executing in a new execution: {execution}");
        return Ok(());
    }
    super::run::drive(run, &args.drive).await
}

pub async fn abort(run_arg: &str, store: &StoreArgs, hard: bool) -> CommandResult {
    let run = locator::open(run_arg, store).await?;
    let (state, _) = run.load().await?;
    if state.status.is_finished() {
        eprintln!(
            "run {} has already finished ({}); nothing to abort",
            state.run_id, state.status
        );
        return Err(Failure::RunFailed);
    }
    run.update(|_, state| state.abort_requested = true).await?;
    if hard {
        match &state.state_machine {
            Some(state_machine) => {
                let sfn = crate::remote::client().await;
                let cause = format!("run {} aborted by an operator (baton abort --hard)", state.run_id);
                let stopped = crate::remote::stop_running(&sfn, state_machine, &state.run_id, &cause).await?;
                crate::out!("stopped {stopped} running execution(s)");
            }
            None => eprintln!("note: --hard stops the Step Functions execution of a submitted run; this run has none"),
        }
    } else if state.state_machine.is_some() {
        crate::out!("abort requested; the run's execution honours it on its next tick (--hard stops it now)");
        return Ok(());
    }
    // Nobody driving the run? Then honour the abort now. A driver (a local lock, or an S3
    // lease held by another machine) honours it itself.
    let settled = match run.store.lock_driver() {
        Ok(_guard) => settle_abort(&run).await?,
        Err(StoreError::Busy { .. }) => None,
        Err(other) => return Err(other.into()),
    };
    match settled {
        Some(report) => crate::out!("run {} {}", state.run_id, report.status()),
        None => crate::out!(
            "abort requested; the process driving run {} will stop it on its next check",
            state.run_id
        ),
    }
    Ok(())
}

/// One tick that carries out a requested abort, for a caller holding the run's driver lock.
/// `None` when another driver has the run after all (its S3 lease, or a save that raced this
/// tick's): that driver honours the request itself.
pub async fn settle_abort(
    run: &baton_core::Run<crate::locator::AnyStore>,
) -> Result<Option<driver::TickReport>, baton_core::RunError> {
    let executor = Arc::new(crate::aws::executor(&run.plan).await);
    match driver::tick(run, &executor, &TickOptions::default(), &Silent).await {
        Ok(report) => Ok(Some(report)),
        Err(baton_core::RunError::Store(StoreError::Busy { .. })) => Ok(None),
        Err(e) if e.is_conflict() => Ok(None),
        Err(e) => Err(e),
    }
}
