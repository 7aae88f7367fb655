//! Run locators: a run folder, a run id under `--store`, `last`, or (with AWS support) an
//! `s3://bucket/prefix/runs/<id>` URL.

use std::path::{Path, PathBuf};

use baton_core::store::{DriverGuard, VersionInfo};
use baton_core::{LocalStore, Run, RunStore, StoreError};

use crate::cli::StoreArgs;
use crate::Failure;

/// Every store the command line can address.
#[derive(Debug, Clone)]
pub enum AnyStore {
    Local(LocalStore),
}

impl RunStore for AnyStore {
    fn locator(&self) -> String {
        match self {
            AnyStore::Local(s) => s.locator(),
        }
    }

    async fn create(&self, plan: &[u8], state: &[u8]) -> Result<String, StoreError> {
        match self {
            AnyStore::Local(s) => s.create(plan, state).await,
        }
    }

    async fn load_plan(&self) -> Result<Vec<u8>, StoreError> {
        match self {
            AnyStore::Local(s) => s.load_plan().await,
        }
    }

    async fn load_latest(&self) -> Result<(Vec<u8>, String), StoreError> {
        match self {
            AnyStore::Local(s) => s.load_latest().await,
        }
    }

    async fn load_version(&self, version: &str) -> Result<Vec<u8>, StoreError> {
        match self {
            AnyStore::Local(s) => s.load_version(version).await,
        }
    }

    async fn save(&self, state: &[u8], expected: &str) -> Result<String, StoreError> {
        match self {
            AnyStore::Local(s) => s.save(state, expected).await,
        }
    }

    async fn list_versions(&self) -> Result<Vec<VersionInfo>, StoreError> {
        match self {
            AnyStore::Local(s) => s.list_versions().await,
        }
    }

    async fn head(&self) -> Result<String, StoreError> {
        match self {
            AnyStore::Local(s) => s.head().await,
        }
    }

    fn lock_driver(&self) -> Result<Box<dyn DriverGuard>, StoreError> {
        match self {
            AnyStore::Local(s) => s.lock_driver(),
        }
    }
}

fn reject_s3(text: &str) -> Result<(), Failure> {
    if text.starts_with("s3://") {
        return Err(Failure::Infra(format!(
            "{text}: S3 stores are not available in this build yet; use a local folder (--store DIR)"
        )));
    }
    Ok(())
}

/// The store a new run with `run_id` goes into.
pub fn for_new_run(store: &StoreArgs, run_id: &str) -> Result<AnyStore, Failure> {
    reject_s3(&store.store)?;
    Ok(AnyStore::Local(LocalStore::in_root(
        Path::new(&store.store),
        run_id,
    )))
}

/// Finds an existing run.
pub fn resolve(run: &str, store: &StoreArgs) -> Result<AnyStore, Failure> {
    reject_s3(run)?;
    reject_s3(&store.store)?;
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
        "{run}: no such run (looked for a run folder, and for {}); `ls {}/runs` lists the runs",
        dir.display(),
        root.display()
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
    Ok(Run::open(resolve(run, store)?).await?)
}
