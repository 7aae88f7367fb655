//! Versioned state storage behind one small trait. A store addresses one run: its plan
//! (`actions.json`, written once) and its state document (a new version on every save).

use std::future::Future;
use std::path::PathBuf;

pub mod local;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
#[cfg(feature = "aws")]
pub mod s3;

pub use local::LocalStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{locator}: no such run (check the run id or folder; runs live under <store>/runs/)")]
    NotFound { locator: String },
    /// The store refused to read the run (S3: 403). Without `s3:ListBucket` S3 answers a
    /// missing key with 403 too, so this is also how a missing run looks there.
    #[error(
        "{locator}: access denied ({message}); check the run id, and that these credentials may \
         read the run (S3 answers 403 for a missing run to callers that may not list the bucket)"
    )]
    Denied {
        /// The run.
        locator: String,
        /// The request S3 refused, and its answer.
        message: String,
    },
    #[error("{locator}: a run with this id already exists")]
    AlreadyExists { locator: String },
    #[error(
        "{locator}: conflict: state version {expected} is no longer the latest (now {actual}); \
         another process changed the run. Nothing was overwritten: check `baton status`, then retry"
    )]
    Conflict {
        locator: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{locator}: the run is being driven by another baton process{holder}; wait for it to \
         finish, or `baton abort` it"
    )]
    Busy { locator: String, holder: String },
    #[error("{locator}: version {version} does not exist (`baton status --versions` lists them)")]
    NoSuchVersion { locator: String, version: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{locator}: {message}")]
    Corrupt { locator: String, message: String },
    /// A remote store (S3) refused or failed a request.
    #[error("{locator}: {message}")]
    Remote { locator: String, message: String },
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// One saved version of a run's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: String,
    pub size: u64,
}

/// Held while a process drives a run; dropping it releases the run.
pub trait DriverGuard: Send {}

/// Storage for one run. Versions are opaque strings, ordered by `list_versions`.
pub trait RunStore: Send + Sync {
    /// How users address this run (a folder path or an `s3://` URL).
    fn locator(&self) -> String;

    /// Creates the run with its plan and first state; fails if it exists.
    fn create(
        &self,
        plan: &[u8],
        state: &[u8],
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    fn load_plan(&self) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// The newest state and its version.
    fn load_latest(&self) -> impl Future<Output = Result<(Vec<u8>, String), StoreError>> + Send;

    fn load_version(
        &self,
        version: &str,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// Saves a new version if `expected` is still the newest (compare-and-swap).
    /// Takes the document by value: at 100k actions it is 12 MB, and a copy for the request
    /// body would be 12 MB more at the peak of a tick.
    fn save(
        &self,
        state: Vec<u8>,
        expected: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Oldest first.
    fn list_versions(&self) -> impl Future<Output = Result<Vec<VersionInfo>, StoreError>> + Send;

    /// The newest version id, cheaply (to notice changes made by others).
    fn head(&self) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Claims the right to drive the run, or fails with [`StoreError::Busy`].
    fn lock_driver(&self) -> Result<Box<dyn DriverGuard>, StoreError>;

    /// Whether `lock_driver` cannot exclude other machines, so a tick must claim a lease in
    /// the state document itself (S3: any number of processes anywhere can reach the run).
    fn needs_lease(&self) -> bool {
        false
    }
}
