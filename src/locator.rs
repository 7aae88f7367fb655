//! Run locators: a run folder, a run id under `--store`, `last`, or an
//! `s3://bucket/prefix/runs/<id>` URL (and `--store s3://bucket/prefix` for new runs).

use std::path::{Path, PathBuf};

use baton_core::store::s3::{parse_url, S3Store};
use baton_core::store::{DriverGuard, LogStream, VersionInfo, WriteDocument};
use baton_core::{LocalStore, Run, RunStore, StoreError};

use crate::args::StoreArgs;
use crate::Failure;

/// Every store the command line can address.
#[derive(Debug)]
pub enum AnyStore {
    Local(LocalStore),
    S3(S3Store),
}

macro_rules! each {
    ($self:expr, $store:ident => $body:expr) => {
        match $self {
            AnyStore::Local($store) => $body,
            AnyStore::S3($store) => $body,
        }
    };
}

impl RunStore for AnyStore {
    fn locator(&self) -> String {
        each!(self, s => s.locator())
    }

    async fn create(&self, plan: &[u8], state: &[u8]) -> Result<String, StoreError> {
        each!(self, s => s.create(plan, state).await)
    }

    async fn load_plan(&self) -> Result<Vec<u8>, StoreError> {
        each!(self, s => s.load_plan().await)
    }

    async fn load_latest(&self) -> Result<(Vec<u8>, String), StoreError> {
        each!(self, s => s.load_latest().await)
    }

    async fn load_version(&self, version: &str) -> Result<Vec<u8>, StoreError> {
        each!(self, s => s.load_version(version).await)
    }

    async fn load_versions(&self, versions: &[String]) -> Result<Vec<Vec<u8>>, StoreError> {
        each!(self, s => s.load_versions(versions).await)
    }

    async fn save(&self, state: Vec<u8>, expected: &str) -> Result<String, StoreError> {
        each!(self, s => s.save(state, expected).await)
    }

    async fn save_written(
        &self,
        write: WriteDocument<'_>,
        size_hint: usize,
        expected: &str,
    ) -> Result<String, StoreError> {
        each!(self, s => s.save_written(write, size_hint, expected).await)
    }

    async fn list_versions(&self) -> Result<Vec<VersionInfo>, StoreError> {
        each!(self, s => s.list_versions().await)
    }

    async fn head(&self) -> Result<String, StoreError> {
        each!(self, s => s.head().await)
    }

    fn lock_driver(&self) -> Result<Box<dyn DriverGuard>, StoreError> {
        each!(self, s => s.lock_driver())
    }

    fn is_locked(&self) -> bool {
        each!(self, s => s.is_locked())
    }

    fn needs_lease(&self) -> bool {
        each!(self, s => s.needs_lease())
    }

    async fn append_log(&self, stream: &LogStream, lines: Vec<u8>) -> Result<(), StoreError> {
        each!(self, s => s.append_log(stream, lines).await)
    }

    async fn read_log(
        &self,
        stream: &LogStream,
        from: u64,
        limit: usize,
    ) -> Result<(Vec<u8>, u64), StoreError> {
        each!(self, s => s.read_log(stream, from, limit).await)
    }
}

impl AnyStore {
    pub fn is_remote(&self) -> bool {
        matches!(self, AnyStore::S3(_))
    }
}

fn bad_url(url: &str) -> Failure {
    Failure::Invalid(format!(
        "{url}: not an S3 location; write s3://BUCKET/PREFIX"
    ))
}

async fn s3_store(bucket: &str, run_prefix: &str) -> S3Store {
    let aws = crate::aws::aws().await;
    let client = aws.s3(&Default::default()).await;
    S3Store::new(client, bucket, run_prefix)
}

/// The store a new run with `run_id` goes into.
pub async fn for_new_run(store: &StoreArgs, run_id: &str) -> Result<AnyStore, Failure> {
    if store.store.starts_with("s3://") {
        let (bucket, prefix) = parse_url(&store.store).ok_or_else(|| bad_url(&store.store))?;
        let run_prefix = if prefix.is_empty() {
            format!("runs/{run_id}")
        } else {
            format!("{prefix}/runs/{run_id}")
        };
        return Ok(AnyStore::S3(s3_store(&bucket, &run_prefix).await));
    }
    Ok(AnyStore::Local(LocalStore::in_root(
        Path::new(&store.store),
        run_id,
    )))
}

/// Finds an existing run.
pub async fn resolve(run: &str, store: &StoreArgs) -> Result<AnyStore, Failure> {
    if run.starts_with("s3://") {
        let (bucket, prefix) = parse_url(run).ok_or_else(|| bad_url(run))?;
        if !prefix.contains("runs/") {
            return Err(Failure::Invalid(format!(
                "{run}: an S3 run locator ends in /runs/<run-id> (e.g. s3://bucket/baton/runs/demo-20261128-091942-198a)"
            )));
        }
        return Ok(AnyStore::S3(s3_store(&bucket, &prefix).await));
    }
    if store.store.starts_with("s3://") {
        let (bucket, prefix) = parse_url(&store.store).ok_or_else(|| bad_url(&store.store))?;
        if run == "last" {
            return Err(Failure::Invalid(
                "`last` works with local stores only; give the run id".into(),
            ));
        }
        let run_prefix = if prefix.is_empty() {
            format!("runs/{run}")
        } else {
            format!("{prefix}/runs/{run}")
        };
        return Ok(AnyStore::S3(s3_store(&bucket, &run_prefix).await));
    }
    let as_path = PathBuf::from(run);
    if LocalStore::is_run_dir(&as_path) {
        return Ok(AnyStore::Local(LocalStore::new(as_path)));
    }
    let root = Path::new(&store.store);
    if run == "last" {
        return latest_run(root).map(|dir| AnyStore::Local(LocalStore::new(dir)));
    }
    let dir = root.join("runs").join(run);
    if LocalStore::is_run_dir(&dir) {
        return Ok(AnyStore::Local(LocalStore::new(dir)));
    }
    Err(Failure::Infra(format!(
        "{run}: no such run (looked for a run folder, and for {}); `baton runs{}` lists the runs",
        dir.display(),
        store_flag(root)
    )))
}

fn latest_run(root: &Path) -> Result<PathBuf, Failure> {
    let runs = root.join("runs");
    let no_runs = || {
        Failure::Infra(format!(
            "{}: there are no runs yet (start one with `baton run FILE`)",
            runs.display()
        ))
    };
    if !runs.is_dir() {
        return Err(no_runs());
    }
    let newest = std::fs::read_dir(&runs)
        .map_err(|e| Failure::Infra(format!("{}: {e}", runs.display())))?
        .filter_map(Result::ok)
        .filter(|e| LocalStore::is_run_dir(&e.path()))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max();
    newest.map(|(_, path)| path).ok_or_else(no_runs)
}

/// Opens an existing run (reads and re-validates its plan).
pub async fn open(run: &str, store: &StoreArgs) -> Result<Run<AnyStore>, Failure> {
    Ok(Run::open(resolve(run, store).await?).await?)
}

/// [`open`], and the run's newest state and version without log threads but `keep_log`'s
/// (see [`Run::open_without_logs`]: the plan and the state are read at once).
pub async fn open_without_logs(
    run: &str,
    store: &StoreArgs,
    keep_log: Option<&str>,
) -> Result<(Run<AnyStore>, baton_core::RunState, String), Failure> {
    Ok(Run::open_without_logs(resolve(run, store).await?, keep_log).await?)
}

/// ` --store DIR` when the store is not the default one.
fn store_flag(root: &Path) -> String {
    if root == Path::new(".baton") {
        String::new()
    } else {
        format!(" --store {}", root.display())
    }
}
