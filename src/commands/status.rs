//! `baton status RUN`

use baton_core::redact::Secrets;
use baton_core::state::{ts, Lease};
use baton_core::store::VersionInfo;
use baton_core::{ActionStatus, Plan, Run, RunState, RunStore};
use chrono::Utc;

use crate::args::StoreArgs;
use crate::locator::{self, AnyStore};
use crate::output::{
    elapsed, format_elapsed, status_counts, symbol, write_json, JsonStyle, MapWith, SeqWith,
};
use crate::{ops, CommandResult};

pub async fn run(run: &str, store: &StoreArgs, as_json: bool, versions: bool) -> CommandResult {
    let run = locator::open(run, store).await?;
    // No log thread is shown: they are passed over, not built.
    let (state, version) = run.load_without_logs(None).await?;
    let driver = Driver::of(&run, &state).await;
    if as_json {
        // Masks as it writes: a masked copy of the whole state would double what it holds.
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
    let versions = match versions {
        true => Some(run.store.list_versions().await?),
        false => None,
    };
    let doc = JsonStatus {
        plan: &run.plan,
        state,
        locator: &run.store.locator(),
        version,
        driver,
        versions: versions.as_deref(),
    };
    write_json(&doc, JsonStyle::Pretty)
}

/// `status --json`, written as it is serialized; errors masked one action at a time.
struct JsonStatus<'a> {
    plan: &'a Plan,
    state: &'a RunState,
    locator: &'a str,
    version: &'a str,
    driver: &'a Driver,
    versions: Option<&'a [VersionInfo]>,
}

/// One action of [`JsonStatus`].
#[derive(serde::Serialize)]
struct JsonAction<'a> {
    status: ActionStatus,
    attempts: u32,
    error: Option<String>,
    blocked_by: Option<&'a str>,
}

/// One stored version in `status --json --versions`.
#[derive(serde::Serialize)]
struct JsonVersion<'a> {
    version: &'a str,
    size: u64,
}

impl serde::Serialize for JsonStatus<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (plan, state) = (self.plan, self.state);
        let secrets = Secrets::for_run(plan, state);
        let actions = MapWith(|| {
            plan.actions().iter().zip(state.actions()).map(|(def, a)| {
                let action = JsonAction {
                    status: a.status,
                    attempts: a.attempt,
                    error: a.error.as_deref().map(|e| secrets.redact(e)),
                    blocked_by: a.blocked_by.as_deref(),
                };
                (def.label.as_str(), action)
            })
        });
        let mut doc = serializer.serialize_map(None)?;
        doc.serialize_entry("run_id", state.run_id())?;
        doc.serialize_entry("run", self.locator)?;
        doc.serialize_entry("status", &state.status())?;
        doc.serialize_entry("version", self.version)?;
        doc.serialize_entry("invocations", &state.invocations())?;
        doc.serialize_entry("abort_requested", &state.abort_requested())?;
        doc.serialize_entry("driver", &state.driver())?;
        doc.serialize_entry("created_at", &ts::format(&state.created_at()))?;
        doc.serialize_entry("updated_at", &ts::format(&state.updated_at()))?;
        doc.serialize_entry("counts", &status_counts(state.counts()))?;
        doc.serialize_entry("actions", &actions)?;
        doc.serialize_entry("idle", &matches!(self.driver, Driver::Idle))?;
        match self.driver {
            Driver::Execution(name) => doc.serialize_entry("execution", name)?,
            Driver::Idle => doc.serialize_entry("idle_since", &ts::format(&state.updated_at()))?,
            Driver::Unknown(error) => doc.serialize_entry("execution_error", error)?,
            Driver::Nobody | Driver::Lease(_) | Driver::Locked => {}
        }
        if let Some(list) = self.versions {
            let list = SeqWith(|| {
                list.iter().map(|v| JsonVersion {
                    version: &v.version,
                    size: v.size,
                })
            });
            doc.serialize_entry("versions", &list)?;
        }
        doc.end()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::state::ActionState;
    use baton_core::testutil::{edit, plan};
    use baton_core::RunStatus;
    use serde_json::json;

    /// The tree-building rendering `status --json` had before it streamed (from the masked
    /// copy of the state): the shape the streamed output must keep, byte for byte.
    fn tree_status(doc: &JsonStatus<'_>) -> String {
        let (plan, driver) = (doc.plan, doc.driver);
        let state = &baton_core::redact::shown(plan, doc.state);
        let counts = state.counts();
        let counts: serde_json::Map<_, _> = ActionStatus::ALL
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
        let mut tree = json!({
            "run_id": state.run_id(), "run": doc.locator, "status": state.status(),
            "version": doc.version, "invocations": state.invocations(), "abort_requested": state.abort_requested(), "driver": state.driver(),
            "created_at": ts::format(&state.created_at()),
            "updated_at": ts::format(&state.updated_at()),
            "counts": counts, "actions": actions,
            "idle": matches!(driver, Driver::Idle),
        });
        match driver {
            Driver::Execution(name) => tree["execution"] = json!(name),
            Driver::Idle => tree["idle_since"] = json!(ts::format(&state.updated_at())),
            Driver::Unknown(error) => tree["execution_error"] = json!(error),
            Driver::Nobody | Driver::Lease(_) | Driver::Locked => {}
        }
        if let Some(list) = doc.versions {
            tree["versions"] = json!(list
                .iter()
                .map(|v| json!({"version": v.version, "size": v.size}))
                .collect::<Vec<_>>());
        }
        serde_json::to_string_pretty(&tree).expect("json")
    }

    #[test]
    fn streamed_json_status_keeps_the_tree_shape() {
        let plan = plan(
            r#"[
            {"label": "creds", "type": "system.set_variables",
             "params": {"variables": {"db_password": "hunter2-secret"}}},
            {"label": "fails", "type": "system.no_op", "depends_on": ["creds"]},
            {"label": "prn:after/fails", "type": "system.no_op", "depends_on": ["fails"]},
            {"label": "waits", "type": "system.no_op"}
        ]"#,
        );
        let now = chrono::Utc::now();
        let mut state = RunState::new("r-1", &plan, "sha", serde_json::Map::new(), now);
        let mut outputs = serde_json::Map::new();
        outputs.insert("db_password".into(), json!("hunter2-secret"));
        let creds = ActionState {
            status: ActionStatus::Complete,
            attempt: 1,
            outputs: outputs.into(),
            ..ActionState::default()
        };
        let fails = ActionState {
            status: ActionStatus::Failed,
            attempt: 3,
            error: Some("login with hunter2-secret refused".into()),
            ..ActionState::default()
        };
        let blocked = ActionState {
            status: ActionStatus::Blocked,
            blocked_by: Some("fails".into()),
            ..ActionState::default()
        };
        let lease = Lease {
            holder: "baton pid 7".into(),
            until: now,
        };
        edit(&mut state)
            .status(RunStatus::Waiting)
            .invocations(4)
            .driver(Some(lease))
            .action(0, creds)
            .action(1, fails)
            .action(2, blocked);
        let versions = [
            VersionInfo {
                version: "00000001".into(),
                size: 120,
            },
            VersionInfo {
                version: "00000002".into(),
                size: 340,
            },
        ];
        let drivers = [
            Driver::Nobody,
            Driver::Idle,
            Driver::Locked,
            Driver::Execution("exec-1".into()),
            Driver::Unknown("no answer".into()),
        ];
        for driver in &drivers {
            for versions in [None, Some(&versions[..]), Some(&[][..])] {
                let doc = JsonStatus {
                    plan: &plan,
                    state: &state,
                    locator: "/tmp/runs/r-1",
                    version: "00000002",
                    driver,
                    versions,
                };
                let streamed = serde_json::to_string_pretty(&doc).expect("json");
                assert_eq!(streamed, tree_status(&doc));
                assert!(!streamed.contains("hunter2-secret"), "{streamed}");
            }
        }
    }
}
