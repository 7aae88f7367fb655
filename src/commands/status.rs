//! `baton status RUN`

use baton_core::{Plan, Run, RunState, RunStore};
use serde_json::json;

use crate::args::StoreArgs;
use crate::locator::{self, AnyStore};
use crate::output::{elapsed, format_elapsed, symbol};
use crate::CommandResult;

pub async fn run(run: &str, store: &StoreArgs, as_json: bool, versions: bool) -> CommandResult {
    let run = locator::open(run, store).await?;
    let (state, version) = run.load().await?;
    if as_json {
        return print_json(&run, &state, &version, versions).await;
    }
    print_summary(&run, &state, &version);
    print_actions(&run.plan, &state);
    if versions {
        crate::out!("versions:");
        for v in run.store.list_versions().await? {
            crate::out!("  {:>6}  {} bytes", v.version, v.size);
        }
    }
    Ok(())
}

async fn print_json(
    run: &Run<AnyStore>,
    state: &RunState,
    version: &str,
    versions: bool,
) -> CommandResult {
    let plan = &run.plan;
    let counts = state.counts();
    let counts: serde_json::Map<_, _> = baton_core::ActionStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), json!(counts[*s as usize])))
        .collect();
    let actions: serde_json::Map<_, _> = plan
        .actions()
        .iter()
        .zip(state.actions())
        .map(|(def, a)| {
            (def.label.clone(), json!({ "status": a.status, "attempts": a.attempt, "error": a.error, "blocked_by": a.blocked_by }))
        })
        .collect();
    let mut doc = json!({
        "run_id": state.run_id(), "run": run.store.locator(), "status": state.status(),
        "version": version, "invocations": state.invocations(), "abort_requested": state.abort_requested(), "driver": state.driver(),
        "created_at": baton_core::state::ts::format(&state.created_at()),
        "updated_at": baton_core::state::ts::format(&state.updated_at()),
        "counts": counts, "actions": actions,
    });
    if versions {
        let list = run.store.list_versions().await?;
        doc["versions"] = json!(list
            .iter()
            .map(|v| json!({"version": v.version, "size": v.size}))
            .collect::<Vec<_>>());
    }
    crate::out!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    Ok(())
}

/// The run's status (and who drives it, or how to continue it), its store and its counts.
fn print_summary(run: &Run<AnyStore>, state: &RunState, version: &str) {
    // A run that is not finished and that nobody drives is idle: say how to continue it.
    let lease = state
        .driver()
        .filter(|lease| lease.until > chrono::Utc::now());
    let idle = !state.status().is_finished()
        && lease.is_none()
        && state.state_machine().is_none()
        && run.store.lock_driver().is_ok();
    let age = elapsed(Some(state.created_at()), Some(state.updated_at()))
        .map(format_elapsed)
        .unwrap_or_default();
    let note = if state.abort_requested() && !state.status().is_finished() {
        " (abort requested)".to_string()
    } else if let Some(lease) = lease {
        format!(
            " (driven by {}, lease until {})",
            lease.holder,
            baton_core::state::ts::format(&lease.until)
        )
    } else if idle {
        format!(
            " (idle: nothing is driving it; continue with `baton resume {}`)",
            run.store.locator()
        )
    } else {
        String::new()
    };
    crate::out!("run {}  {}{note}", state.run_id(), state.status());
    crate::out!(
        "store {}  version {}  invocations {}  elapsed {}",
        run.store.locator(),
        version,
        state.invocations(),
        age
    );
    crate::out!("actions {}: {}", run.plan.len(), state.count_summary());
}

/// One line per action, in plan order.
fn print_actions(plan: &Plan, state: &RunState) {
    let width = plan
        .actions()
        .iter()
        .map(|a| a.label.len())
        .max()
        .unwrap_or(0)
        .min(40);
    for &idx in plan.order() {
        let def = plan.action(idx);
        let a = state.action(idx);
        let mut line = format!(
            "  {} {:<width$}  {:<9}",
            symbol(a.status),
            def.label,
            a.status.as_str()
        );
        if let Some(d) = elapsed(a.started_at, a.finished_at) {
            line.push_str(&format!("  {:>7}", format_elapsed(d)));
        }
        if a.attempt > 1 {
            line.push_str(&format!("  attempt {}", a.attempt));
        }
        if let Some(by) = &a.blocked_by {
            line.push_str(&format!("  blocked by {by}"));
        } else if let Some(error) = &a.error {
            line.push_str(&format!("  {error}"));
        }
        crate::out!("{}", line.trim_end());
    }
}
