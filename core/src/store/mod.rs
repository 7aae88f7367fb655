//! Versioned state storage behind one small trait. A store addresses one run: its plan
//! (`actions.json`, written once), its state document (a new version on every save) and, beside
//! them, the live log streams of running actions (append-only, see [`crate::log_stream`]).

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;

pub use crate::log_stream::LogStream;

pub mod local;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;
#[cfg(feature = "aws")]
pub mod s3;

pub use local::LocalStore;

/// Why a store could not do what was asked. Every variant names the run (or file) it is about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// There is no run here.
    #[error("{locator}: no such run (check the run id or folder; runs live under <store>/runs/)")]
    NotFound {
        /// The run, as users address it.
        locator: String,
    },
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
    /// Creating a run found one already there.
    #[error("{locator}: a run with this id already exists")]
    AlreadyExists {
        /// The run, as users address it.
        locator: String,
    },
    /// A save lost the compare-and-swap: another process saved since `expected` was loaded.
    /// Nothing was written.
    #[error(
        "{locator}: conflict: state version {expected} is no longer the latest (now {actual}); \
         another process changed the run. Nothing was overwritten: check `baton status`, then retry"
    )]
    Conflict {
        /// The run, as users address it.
        locator: String,
        /// The version the save was based on.
        expected: String,
        /// The newest version now (`unknown` if the store could not say).
        actual: String,
    },
    /// Another process drives the run (it holds the driver lock, or a live lease).
    #[error(
        "{locator}: the run is being driven by another baton process{holder}; wait for it to \
         finish, or `baton abort` it"
    )]
    Busy {
        /// The run, as users address it.
        locator: String,
        /// Who holds it and what to do, as ` (…)` to append to the message; empty when unknown.
        holder: String,
    },
    /// The version asked for is not one of the run's.
    #[error("{locator}: version {version} does not exist (`baton status --versions` lists them)")]
    NoSuchVersion {
        /// The run, as users address it.
        locator: String,
        /// The version asked for.
        version: String,
    },
    /// A file of a local run could not be read or written.
    #[error("{path}: {source}{hint}", hint = io_hint(.source))]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The stored run is damaged (no state versions, an oversized document).
    #[error("{locator}: {message}")]
    Corrupt {
        /// The run, as users address it.
        locator: String,
        /// What is wrong.
        message: String,
    },
    /// A remote store (S3) refused or failed a request.
    #[error("{locator}: {message}")]
    Remote {
        /// The run, as users address it.
        locator: String,
        /// What failed and why (in the service's own words where it gave them).
        message: String,
    },
}

/// What to do about an operating system error, for the ones an operator can fix.
fn io_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            "; free some space and try again (what was saved before is intact: a run this stopped \
             carries on with `baton resume`)"
        }
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            "; check that this user may write there (or choose another --store)"
        }
        _ => "",
    }
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// One saved version of a run's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// The store's id for the version (opaque; pass it back as it is).
    pub version: String,
    /// The state document's size in bytes.
    pub size: u64,
}

/// Writes a whole state document into the writer it is given (buffered by the caller). A
/// store may call it more than once (each call writes the whole document again).
pub type WriteDocument<'a> = &'a (dyn Fn(&mut dyn Write) -> std::io::Result<()> + Sync);

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

    /// The plan's bytes (`actions.json`), as written at creation.
    fn load_plan(&self) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// The newest state and its version.
    fn load_latest(&self) -> impl Future<Output = Result<(Vec<u8>, String), StoreError>> + Send;

    /// One state version's document.
    fn load_version(
        &self,
        version: &str,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// Several versions' documents, in the order asked (a journal chain: a checkpoint and the
    /// deltas after it). Stores with slow requests fetch them concurrently.
    fn load_versions(
        &self,
        versions: &[String],
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, StoreError>> + Send {
        async move {
            let mut documents = Vec::with_capacity(versions.len());
            for version in versions {
                documents.push(self.load_version(version).await?);
            }
            Ok(documents)
        }
    }

    /// Saves a new version if `expected` is still the newest (compare-and-swap).
    /// Takes the document by value: at 100k actions it is 12 MB, and a copy for the request
    /// body would be 12 MB more at the peak of a tick.
    fn save(
        &self,
        state: Vec<u8>,
        expected: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Like [`save`](Self::save), with the document written by `write` (about `size_hint`
    /// bytes). A store that writes files streams it there, so a whole checkpoint (12.5 MB
    /// at 100k actions) is never held in memory beside the state it is written from; others
    /// build it in a buffer and save that.
    fn save_written(
        &self,
        write: WriteDocument<'_>,
        size_hint: usize,
        expected: &str,
    ) -> impl Future<Output = Result<String, StoreError>> + Send {
        async move {
            let mut document = Vec::with_capacity(size_hint);
            write(&mut document).map_err(|e| StoreError::io(self.locator(), e))?;
            self.save(document, expected).await
        }
    }

    /// Oldest first.
    fn list_versions(&self) -> impl Future<Output = Result<Vec<VersionInfo>, StoreError>> + Send;

    /// The newest version id, cheaply (to notice changes made by others).
    fn head(&self) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Claims the right to drive the run, or fails with [`StoreError::Busy`].
    fn lock_driver(&self) -> Result<Box<dyn DriverGuard>, StoreError>;

    /// Whether a process holds the run's driver lock right now. Asking never keeps a driver
    /// that starts at the same moment from taking the run.
    fn is_locked(&self) -> bool {
        self.lock_driver().is_err()
    }

    /// Whether `lock_driver` cannot exclude other machines, so a tick must claim a lease in
    /// the state document itself (S3: any number of processes anywhere can reach the run).
    fn needs_lease(&self) -> bool {
        false
    }

    /// Appends complete lines (each ending in `\n`) to an action attempt's live log stream,
    /// creating it on first use. A store without streams keeps nothing: watchers then see
    /// lines when the state is saved.
    fn append_log(
        &self,
        _stream: &LogStream,
        _lines: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }

    /// The complete lines of `stream` after position `from` (0: its start) and the position
    /// after them; positions are the store's own (a byte offset, a chunk number). When more
    /// than `limit` bytes follow `from`, only the newest lines within about `limit` bytes. A
    /// stream never written reads as empty.
    fn read_log(
        &self,
        _stream: &LogStream,
        from: u64,
        _limit: usize,
    ) -> impl Future<Output = Result<(Vec<u8>, u64), StoreError>> + Send {
        async move { Ok((Vec::new(), from)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_says_what_to_do() {
        let full = StoreError::io(
            "/runs/r/state/00000002.json",
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        let said = full.to_string();
        assert!(said.starts_with("/runs/r/state/00000002.json: "), "{said}");
        assert!(said.contains("free some space and try again"), "{said}");
        let other = StoreError::io("/x", std::io::Error::other("odd"));
        assert_eq!(other.to_string(), "/x: odd");
    }
}
