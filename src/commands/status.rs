//! `baton status RUN`

use baton_core::redact::Secrets;
use baton_core::state::Lease;
use baton_core::{Plan, Run, RunState, RunStore};
use chrono::Utc;
use serde_json::json;

use crate::args::StoreArgs;
use crate::locator::{self, AnyStore};
use crate::output::{elapsed, format_elapsed, symbol};
use crate::{ops, CommandResult};

pub async fn run(run: &str, store: &StoreArgs, as_json: bool, versions: bool) -> CommandResult {
    let run = locator::open(run, store).await?;
    // No log thread is shown: they are passed over, not built.
    let (state, version) = run.load_without_logs(None).await?;
    let driver = Driver::of(&run, &state).await;
    if as_json {
        let state = baton_core::redact::shown(&run.plan, &state);
        return print_json(&run, &state, &version, &driver, versions).await;
    }
    print_summary(&run, &state, &version, &driver);
    print_actions(&run.plan, &state);
    if versions {
        crate::out!("versions:");
        for v in run.store.list_versions().await? {
            crate::out!("  {:>6}  {} bytes", v.version, v.size);
        }
    }
    super::drop_in_background((run, state));
    Ok(())
}

/// Who drives an unfinished run right now.
enum Driver {
    /// The run has finished.
    Nobody,
    /// A tick holds the run's lease (S3 stores).
    Lease(Lease),
    /// A Step Functions execution, between ticks.
    Execution(String),
    /// A process on this machine holds the run's lock (local stores).
    Locked,
    /// Nothing: the run waits for an operator.
    Idle,
    /// Step Functions did not answer, so whether an execution drives the run is unknown.
    Unknown(String),
}

impl Driver {
    async fn of(run: &Run<AnyStore>, state: &RunState) -> Driver {
        if state.status().is_finished() {
            return Driver::Nobody;
        }
        if let Some(lease) = state.driver().filter(|lease| lease.until > Utc::now()) {
            return Driver::Lease(lease.clone());
        }
        if let Some(state_machine) = ops::remote_driver(run, state) {
            let remote = ops::remote_run(run, state, state_machine).await;
            return match remote.running().await {
                Ok(running) => match running.into_iter().next() {
                    Some(execution) => Driver::Execution(execution.name),
                    None => Driver::Idle,
                },
                Err(e) => Driver::Unknown(e.to_string()),
            };
        }
        if run.store.is_locked() {
            return Driver::Locked;
        }
        Driver::Idle
    }

    /// How to get an idle run going again (or finish its abort).
    fn way_out(&self, run: &Run<AnyStore>, state: &RunState) -> String {
        let locator = run.store.locator();
        if state.abort_requested() {
            format!("finish the abort with `baton abort {locator}`")
        } else if ops::remote_driver(run, state).is_some() {
            format!("continue with `baton resume {locator} --remote` (a new execution)")
        } else {
            format!("continue with `baton resume {locator}`")
        }
    }
}

async fn print_json(
    run: &Run<AnyStore>,
    state: &RunState,
    version: &str,
    driver: &Driver,
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
        "idle": matches!(driver, Driver::Idle),
    });
    match driver {
        Driver::Execution(name) => doc["execution"] = json!(name),
        Driver::Idle => {
            doc["idle_since"] = json!(baton_core::state::ts::format(&state.updated_at()))
        }
        Driver::Unknown(error) => doc["execution_error"] = json!(error),
        Driver::Nobody | Driver::Lease(_) | Driver::Locked => {}
    }
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
fn print_summary(run: &Run<AnyStore>, state: &RunState, version: &str, driver: &Driver) {
    // A run still being driven has been going until now, not until its last save.
    let driven = matches!(
        driver,
        Driver::Lease(_) | Driver::Execution(_) | Driver::Locked
    );
    let until = if driven && !state.status().is_finished() {
        Utc::now()
    } else {
        state.updated_at()
    };
    let age = elapsed(Some(state.created_at()), Some(until))
        .map(format_elapsed)
        .unwrap_or_default();
    let abort = if state.abort_requested() {
        "; abort requested"
    } else {
        ""
    };
    let note = match driver {
        Driver::Nobody => String::new(),
        Driver::Lease(lease) => format!(
            " (driven by {}, lease until {}{abort})",
            lease.holder,
            baton_core::state::ts::format(&lease.until)
        ),
        Driver::Execution(name) => format!(" (driven by execution {name}{abort})"),
        Driver::Locked if state.abort_requested() => " (abort requested)".to_string(),
        Driver::Locked => String::new(),
        Driver::Idle => {
            let since = state.updated_at();
            let ago = (Utc::now() - since)
                .to_std()
                .map(format_elapsed)
                .unwrap_or_default();
            format!(
                " (idle since {} ({ago} ago){abort}; nothing is driving it: {})",
                baton_core::state::ts::format(&since),
                driver.way_out(run, state)
            )
        }
        Driver::Unknown(error) => format!(" (whether an execution drives it is unknown: {error})"),
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

/// One line per action, in plan order; errors with the run's secrets masked. Written in
/// blocks: a write per line is 100,000 system calls at 100k actions.
fn print_actions(plan: &Plan, state: &RunState) {
    use std::fmt::Write as _;
    const BLOCK: usize = 64 * 1024;
    let secrets = Secrets::for_run(plan, state);
    let width = plan
        .actions()
        .iter()
        .map(|a| a.label.len())
        .max()
        .unwrap_or(0)
        .min(40);
    let mut block = String::with_capacity(BLOCK + 1024);
    for &idx in plan.order() {
        let def = plan.action(idx);
        let a = state.action(idx);
        let start = block.len();
        let _ = write!(
            block,
            "  {} {:<width$}  {:<9}",
            symbol(a.status),
            def.label,
            a.status.as_str()
        );
        if let Some(d) = elapsed(a.started_at, a.finished_at) {
            let _ = write!(block, "  {:>7}", format_elapsed(d));
        }
        if a.attempt > 1 {
            let _ = write!(block, "  attempt {}", a.attempt);
        }
        if let Some(by) = &a.blocked_by {
            let _ = write!(block, "  blocked by {by}");
        } else if let Some(error) = &a.error {
            let _ = write!(block, "  {}", secrets.redact(error));
        }
        let end = block[start..].trim_end().len() + start;
        block.truncate(end);
        block.push('\n');
        if block.len() >= BLOCK {
            crate::out!("{}", block.trim_end_matches('\n'));
            block.clear();
        }
    }
    if !block.is_empty() {
        crate::out!("{}", block.trim_end_matches('\n'));
    }
}
