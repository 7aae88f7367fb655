//! `baton runs`: the runs in a store (a folder or an S3 prefix), newest first, with their
//! status, start, duration, counts and who drives them (or "idle"). The console's runs view
//! shows the same rows.

use std::path::Path;

use baton_core::state::{ts, Timestamp};
use baton_core::store::s3::{parse_url, S3Store};
use baton_core::{ActionStatus, LocalStore, Run, RunState, RunStatus, RunStore};
use chrono::Utc;

use crate::args::StoreArgs;
use crate::locator::AnyStore;
use crate::output::{format_elapsed, status_counts, symbol, write_json, JsonStyle, SeqWith};
use crate::{ops, CommandResult, Failure};

/// One run as the list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: String,
    /// Its locator (what `baton watch` takes).
    pub run: String,
    pub status: RunStatus,
    pub started: Timestamp,
    pub updated: Timestamp,
    pub duration: std::time::Duration,
    pub counts: [usize; 7],
    pub actions: usize,
    /// Who drives it: `None` once finished; "idle" when nothing does.
    pub driver: Option<String>,
}

impl RunRow {
    /// `✔3 ✖1 ⊘2`: the counts of every status but pending.
    pub fn counts_text(&self) -> String {
        let mut parts = Vec::new();
        for status in ActionStatus::ALL {
            let n = self.counts[status as usize];
            if n > 0 && status != ActionStatus::Pending {
                parts.push(format!("{}{n}", symbol(status)));
            }
        }
        let pending = self.counts[ActionStatus::Pending as usize];
        if pending > 0 {
            parts.push(format!("·{pending}"));
        }
        parts.join(" ")
    }

    pub fn driver_text(&self) -> &str {
        self.driver.as_deref().unwrap_or("-")
    }
}

/// One run in `runs --json`.
#[derive(serde::Serialize)]
struct JsonRow<'a, C: serde::Serialize> {
    id: &'a str,
    run: &'a str,
    status: RunStatus,
    started_at: String,
    updated_at: String,
    duration_ms: u64,
    actions: usize,
    counts: C,
    driver: Option<&'a str>,
}

impl RunRow {
    fn to_json(&self) -> impl serde::Serialize + '_ {
        JsonRow {
            id: &self.id,
            run: &self.run,
            status: self.status,
            started_at: ts::format(&self.started),
            updated_at: ts::format(&self.updated),
            duration_ms: self.duration.as_millis() as u64,
            actions: self.actions,
            counts: status_counts(self.counts),
            driver: self.driver.as_deref(),
        }
    }
}

/// The store's runs, newest first, and a line for each run that could not be read.
pub async fn list(store: &StoreArgs) -> Result<(Vec<RunRow>, Vec<String>), Failure> {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for run in open_all(store).await? {
        match run {
            Ok(run) => match row(&run).await {
                Ok(row) => rows.push(row),
                Err(e) => problems.push(format!("{}: {e}", run.store.locator())),
            },
            Err(problem) => problems.push(problem),
        }
    }
    rows.sort_by(|a, b| b.started.cmp(&a.started).then(a.id.cmp(&b.id)));
    Ok((rows, problems))
}

/// The ids of the store's runs (cheap: no run is read).
pub async fn ids(store: &StoreArgs) -> Result<Vec<String>, Failure> {
    match s3_prefix(store)? {
        Some((bucket, prefix)) => s3_ids(&bucket, &prefix).await,
        None => Ok(local_dirs(Path::new(&store.store))?
            .into_iter()
            .filter_map(|dir| Some(dir.file_name()?.to_str()?.to_string()))
            .collect()),
    }
}

fn s3_prefix(store: &StoreArgs) -> Result<Option<(String, String)>, Failure> {
    if !store.store.starts_with("s3://") {
        return Ok(None);
    }
    parse_url(&store.store).map(Some).ok_or_else(|| {
        Failure::Invalid(format!(
            "{}: not an S3 location; write s3://BUCKET/PREFIX",
            store.store
        ))
    })
}

fn local_dirs(root: &Path) -> Result<Vec<std::path::PathBuf>, Failure> {
    let runs = root.join("runs");
    if !runs.is_dir() {
        return Ok(Vec::new());
    }
    let mut dirs: Vec<_> = std::fs::read_dir(&runs)
        .map_err(|e| Failure::Infra(format!("{}: {e}", runs.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| LocalStore::is_run_dir(p))
        .collect();
    dirs.sort();
    Ok(dirs)
}

fn runs_prefix(prefix: &str) -> String {
    if prefix.is_empty() {
        "runs/".to_string()
    } else {
        format!("{prefix}/runs/")
    }
}

async fn s3_ids(bucket: &str, prefix: &str) -> Result<Vec<String>, Failure> {
    let client = crate::aws::aws().await.s3(&Default::default()).await;
    let runs = runs_prefix(prefix);
    let mut ids = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&runs)
        .delimiter("/")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            Failure::Infra(format!(
                "s3://{bucket}/{runs}: cannot list the runs: {}",
                baton_core::aws::describe(&e)
            ))
        })?;
        for common in page.common_prefixes() {
            if let Some(id) = common
                .prefix()
                .and_then(|p| p.strip_prefix(&runs))
                .map(|p| p.trim_end_matches('/'))
                .filter(|p| !p.is_empty())
            {
                ids.push(id.to_string());
            }
        }
    }
    Ok(ids)
}

/// Opens every run of the store (a run that cannot be opened is a problem line).
async fn open_all(store: &StoreArgs) -> Result<Vec<Result<Run<AnyStore>, String>>, Failure> {
    let mut runs = Vec::new();
    match s3_prefix(store)? {
        Some((bucket, prefix)) => {
            let client = crate::aws::aws().await.s3(&Default::default()).await;
            for id in s3_ids(&bucket, &prefix).await? {
                let s3 = S3Store::in_prefix(client.clone(), &bucket, &prefix, &id);
                let locator = s3.locator();
                runs.push(
                    Run::open(AnyStore::S3(s3))
                        .await
                        .map_err(|e| format!("{locator}: {e}")),
                );
            }
        }
        None => {
            for dir in local_dirs(Path::new(&store.store))? {
                let shown = dir.display().to_string();
                runs.push(
                    Run::open(AnyStore::Local(LocalStore::new(dir)))
                        .await
                        .map_err(|e| format!("{shown}: {e}")),
                );
            }
        }
    }
    Ok(runs)
}

async fn row(run: &Run<AnyStore>) -> Result<RunRow, Failure> {
    let (state, _) = run.load().await?;
    let driver = driver(run, &state).await;
    let idle_or_done = state.status().is_finished() || driver.as_deref() == Some("idle");
    let end = if idle_or_done {
        state.updated_at()
    } else {
        Utc::now()
    };
    Ok(RunRow {
        id: state.run_id().to_string(),
        run: run.store.locator(),
        status: state.status(),
        started: state.created_at(),
        updated: state.updated_at(),
        duration: (end - state.created_at()).to_std().unwrap_or_default(),
        counts: state.counts(),
        actions: run.plan.len(),
        driver,
    })
}

/// Who drives an unfinished run: a lease holder, an execution, a process here, or "idle".
async fn driver(run: &Run<AnyStore>, state: &RunState) -> Option<String> {
    if state.status().is_finished() {
        return None;
    }
    if let Some(lease) = state.driver().filter(|lease| lease.until > Utc::now()) {
        return Some(lease.holder.clone());
    }
    if let Some(state_machine) = ops::remote_driver(run, state) {
        let remote = ops::remote_run(run, state, state_machine).await;
        return Some(match remote.running().await {
            Ok(running) => match running.into_iter().next() {
                Some(execution) => format!("execution {}", execution.name),
                None => "idle".to_string(),
            },
            Err(e) => format!("unknown ({e})"),
        });
    }
    if let AnyStore::Local(local) = &run.store {
        if let Some(pid) = local_driver(local.dir()) {
            return Some(match pid {
                Some(pid) => format!("pid {pid}"),
                None => "a baton process".to_string(),
            });
        }
    }
    Some("idle".to_string())
}

/// Whether a process holds a local run's driver lock: `Some(pid)` when one does. Takes a
/// shared lock for an instant (never the driver's exclusive one), and only when the lock
/// file exists.
pub fn local_driver(dir: &Path) -> Option<Option<u32>> {
    use std::io::Read;
    let path = dir.join("driver.lock");
    let mut file = std::fs::File::open(&path).ok()?;
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            None
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            Some(holder.trim().parse().ok())
        }
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

/// `baton runs [--json]`
pub async fn run(store: &StoreArgs, as_json: bool) -> CommandResult {
    let (rows, problems) = list(store).await?;
    for problem in &problems {
        eprintln!("warning: {problem}");
    }
    if as_json {
        let list = SeqWith(|| rows.iter().map(RunRow::to_json));
        return write_json(&list, JsonStyle::Pretty);
    }
    if rows.is_empty() {
        crate::out!(
            "no runs in {} (start one with `baton run FILE`)",
            store.store
        );
        return Ok(());
    }
    for line in table(&rows) {
        crate::out!("{}", line.trim_end());
    }
    Ok(())
}

/// The plain table: a header, then one line per run.
pub fn table(rows: &[RunRow]) -> Vec<String> {
    let id_width = rows.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let mut lines = vec![format!(
        "{:<id_width$}  {:<10} {:<19}  {:>8}  {:<24} DRIVER",
        "ID", "STATUS", "STARTED", "DURATION", "ACTIONS"
    )];
    for r in rows {
        lines.push(format!(
            "{:<id_width$}  {:<10} {:<19}  {:>8}  {:<24} {}",
            r.id,
            r.status.as_str(),
            r.started.format("%Y-%m-%d %H:%M:%S"),
            format_elapsed(r.duration),
            format!("{} {}", r.actions, r.counts_text()),
            r.driver_text()
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The tree-building rendering `runs --json` had before it streamed.
    fn tree_row(row: &RunRow) -> Value {
        let counts: serde_json::Map<String, Value> = ActionStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), json!(row.counts[*s as usize])))
            .collect();
        json!({
            "id": row.id,
            "run": row.run,
            "status": row.status,
            "started_at": ts::format(&row.started),
            "updated_at": ts::format(&row.updated),
            "duration_ms": row.duration.as_millis() as u64,
            "actions": row.actions,
            "counts": counts,
            "driver": row.driver,
        })
    }

    #[test]
    fn streamed_json_rows_keep_the_tree_shape() {
        let now = Utc::now();
        let row = |id: &str, driver: Option<&str>| RunRow {
            id: id.into(),
            run: format!("/tmp/store/runs/{id}"),
            status: RunStatus::Failed,
            started: now,
            updated: now,
            duration: std::time::Duration::from_millis(1234),
            counts: [1, 0, 4, 1, 0, 3, 0],
            actions: 9,
            driver: driver.map(str::to_string),
        };
        for rows in [vec![], vec![row("one", None), row("two", Some("idle"))]] {
            let streamed =
                serde_json::to_string_pretty(&SeqWith(|| rows.iter().map(RunRow::to_json)))
                    .expect("json");
            let tree: Vec<Value> = rows.iter().map(tree_row).collect();
            assert_eq!(streamed, serde_json::to_string_pretty(&tree).expect("json"));
        }
    }
}
