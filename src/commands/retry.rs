//! `baton retry` and `baton abort`.

use baton_core::scheduler::{Preview, Reexecute};
use baton_core::{Plan, RunState, RunStore};

use crate::args::{RetryArgs, Selection, StoreArgs};
use crate::ops::{self, Aborted, Honoured, Stopped};
use crate::{locator, CommandResult, Failure};

pub async fn run(args: RetryArgs) -> CommandResult {
    let run = locator::open(&args.run, &args.store).await?;
    let mode = selected(&run.plan, &args.selection)?;
    // A remote run is re-executed by a new execution: refused, before anything is reset,
    // while one drives it.
    let (state, _) = run.load().await?;
    let remote = match ops::remote_driver(&run, &state) {
        Some(state_machine) if !args.no_run => {
            let remote = ops::remote_run(&run, &state, state_machine).await;
            remote.ensure_none_running().await?;
            Some(remote)
        }
        _ => None,
    };
    let planned = ops::plan_reexecute(&run, mode).await?;
    let preview = planned.preview();
    if preview.will_run.is_empty() {
        let why = if preview.stays_blocked.is_empty() {
            format!(
                "no action is failed, blocked or cancelled (the run is {}; its actions: {})",
                state.status(),
                state.count_summary()
            )
        } else {
            format!(
                "what you selected stays blocked by a failure outside the selection: {} \
                 (re-execute with --failed, or --from the failed action)",
                blocked_by(&run.plan, &state, &preview.stays_blocked)
            )
        };
        eprintln!("nothing to re-execute: {why}");
        if remote.is_some() && !state.status().is_finished() {
            eprintln!(
                "the run is {} and no execution drives it: continue it with `baton resume {} --remote`",
                state.status(),
                run.store.locator()
            );
        }
        return Err(Failure::RunFailed);
    }
    if !args.drive.json {
        print_preview(&run.plan, preview);
    }
    planned.reset().await?;
    if args.no_run {
        crate::out!("reset; drive it with: baton resume {}", run.store.locator());
        return Ok(());
    }
    if let Some(remote) = remote {
        let started = remote.start().await?;
        crate::out!("re-executing in a new execution: {}", started.execution_arn);
        return Ok(());
    }
    super::run::drive(run, &args.drive).await
}

fn selected(plan: &Plan, selection: &Selection) -> Result<Reexecute, Failure> {
    let find = |label: &str| {
        plan.find(label)
            .ok_or_else(|| super::logs::unknown_label(plan, label))
    };
    if selection.failed {
        Ok(Reexecute::Failed)
    } else if let Some(label) = &selection.from {
        Ok(Reexecute::From(find(label)?))
    } else if let Some(label) = &selection.only {
        Ok(Reexecute::Only(find(label)?))
    } else {
        Err(Failure::Invalid(
            "choose --failed, --from LABEL or --only LABEL".into(),
        ))
    }
}

/// `deploy (needs build: failed)`: each action that stays blocked and the unfinished work it
/// waits for.
fn blocked_by(plan: &Plan, state: &RunState, blocked: &[u32]) -> String {
    blocked
        .iter()
        .take(12)
        .map(|&idx| {
            let needs: Vec<String> = plan
                .deps(idx)
                .iter()
                .filter(|&&d| !state.action(d).status.satisfies_dependents())
                .map(|&d| format!("{}: {}", plan.label(d), state.action(d).status))
                .collect();
            if needs.is_empty() {
                plan.label(idx).to_string()
            } else {
                format!("{} (needs {})", plan.label(idx), needs.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn print_preview(plan: &Plan, preview: &Preview) {
    let names = |list: &[u32]| {
        list.iter()
            .map(|&i| plan.label(i))
            .collect::<Vec<_>>()
            .join(", ")
    };
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

pub async fn abort(run_arg: &str, store: &StoreArgs, hard: bool) -> CommandResult {
    let run = locator::open(run_arg, store).await?;
    let aborted = if hard {
        ops::abort_hard(&run, "(baton abort --hard)").await?
    } else {
        ops::abort(&run, false).await?
    };
    let (run_id, stopped, honoured, settled) = match aborted {
        Aborted::AlreadyFinished { run_id, status } => {
            eprintln!("run {run_id} has already finished ({status}); nothing to abort");
            return Err(Failure::RunFailed);
        }
        Aborted::Requested {
            run_id,
            stopped,
            honoured,
            settled,
        } => (run_id, stopped, honoured, settled),
    };
    match stopped {
        Stopped::NotAsked => {}
        Stopped::NoExecution => eprintln!(
            "note: --hard stops the Step Functions execution of a submitted run; this run has none"
        ),
        Stopped::Executions(n) => crate::out!("stopped {n} running execution(s)"),
    }
    match (honoured, settled) {
        (Honoured::Here(status), settled) => {
            crate::out!("run {run_id} {status}");
            if let Some(state) = settled {
                print_stop_report(&run.plan, &state);
            }
        }
        (Honoured::ByDriver, Some(state)) => {
            crate::out!("abort requested; the process driving run {run_id} carried it out");
            crate::out!("run {run_id} {}", state.status());
            print_stop_report(&run.plan, &state);
        }
        (Honoured::ByDriver, None) => crate::out!(
            "abort requested; the process driving run {run_id} is still stopping it (see: baton status {run_arg})"
        ),
        (Honoured::ByExecution, _) => crate::out!(
            "abort requested; the tick in flight takes it within a second and the run's execution ends the run aborted (--hard stops the execution now)"
        ),
        (Honoured::StillHeld { holder, until }, _) => {
            return Err(Failure::Infra(format!(
                "abort requested, but the stopped execution's last tick ({holder}) still holds run \
                 {run_id} (lease until {}): it takes the request itself; once it lets go, \
                 `baton abort {run_arg}` finishes the abort (`baton status {run_arg}` says when nothing drives the run)",
                baton_core::state::ts::format(&until)
            )))
        }
    }
    Ok(())
}

/// What the abort did to each action: stopped (how), left running (why), not started.
fn print_stop_report(plan: &Plan, state: &RunState) {
    let report = state.stop_report();
    for (idx, how) in &report.stopped {
        crate::out!("  stopped       {}: {how}", plan.label(*idx));
    }
    for (idx, why) in &report.left_running {
        crate::out!("  left running  {}: {why}", plan.label(*idx));
    }
    if !report.not_started.is_empty() {
        let names: Vec<&str> = report.not_started.iter().map(|&i| plan.label(i)).collect();
        crate::out!(
            "  not started   {} ({})",
            names.join(", "),
            report.not_started.len()
        );
    }
}
