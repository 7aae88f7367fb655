//! An in-memory store for tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{DriverGuard, LogStream, RunStore, StoreError, VersionInfo};

/// A run held in memory; clones share it, so a test can keep one while the engine uses another.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    /// Behave like S3: no driver lock, so ticks claim leases.
    leases: bool,
    /// Whether a driver holds the run (stores without leases only).
    driven: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct Inner {
    plan: Option<Vec<u8>>,
    versions: Vec<Vec<u8>>,
    logs: std::collections::HashMap<LogStream, Vec<u8>>,
}

impl MemoryStore {
    /// Like the local store: `lock_driver` excludes other drivers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Like the S3 store: drivers exclude each other with leases in the state document.
    pub fn with_leases() -> Self {
        MemoryStore {
            leases: true,
            ..Self::default()
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Inner) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut inner = self.inner.lock().map_err(|_| StoreError::Corrupt {
            locator: "memory".into(),
            message: "store lock poisoned".into(),
        })?;
        f(&mut inner)
    }
}

struct NoGuard;
impl DriverGuard for NoGuard {}

/// Releases the run when the driver lets go, like the local store's lock file.
struct Held(Arc<AtomicBool>);
impl DriverGuard for Held {}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl RunStore for MemoryStore {
    fn locator(&self) -> String {
        "memory".into()
    }

    async fn create(&self, plan: &[u8], state: &[u8]) -> Result<String, StoreError> {
        self.with(|inner| {
            if inner.plan.is_some() {
                return Err(StoreError::AlreadyExists {
                    locator: "memory".into(),
                });
            }
            inner.plan = Some(plan.to_vec());
            inner.versions.push(state.to_vec());
            Ok("1".into())
        })
    }

    async fn load_plan(&self) -> Result<Vec<u8>, StoreError> {
        self.with(|inner| {
            inner.plan.clone().ok_or(StoreError::NotFound {
                locator: "memory".into(),
            })
        })
    }

    async fn load_latest(&self) -> Result<(Vec<u8>, String), StoreError> {
        self.with(|inner| {
            let last = inner.versions.last().cloned().ok_or(StoreError::NotFound {
                locator: "memory".into(),
            })?;
            Ok((last, inner.versions.len().to_string()))
        })
    }

    async fn load_version(&self, version: &str) -> Result<Vec<u8>, StoreError> {
        self.with(|inner| {
            version
                .parse::<usize>()
                .ok()
                .and_then(|v| inner.versions.get(v.wrapping_sub(1)).cloned())
                .ok_or(StoreError::NoSuchVersion {
                    locator: "memory".into(),
                    version: version.into(),
                })
        })
    }

    async fn save(&self, state: Vec<u8>, expected: &str) -> Result<String, StoreError> {
        self.with(|inner| {
            let head = inner.versions.len().to_string();
            if head != expected {
                return Err(StoreError::Conflict {
                    locator: "memory".into(),
                    expected: expected.into(),
                    actual: head,
                });
            }
            inner.versions.push(state);
            Ok(inner.versions.len().to_string())
        })
    }

    async fn list_versions(&self) -> Result<Vec<VersionInfo>, StoreError> {
        self.with(|inner| {
            Ok(inner
                .versions
                .iter()
                .enumerate()
                .map(|(i, v)| VersionInfo {
                    version: (i + 1).to_string(),
                    size: v.len() as u64,
                })
                .collect())
        })
    }

    async fn head(&self) -> Result<String, StoreError> {
        self.with(|inner| {
            if inner.versions.is_empty() {
                return Err(StoreError::NotFound {
                    locator: "memory".into(),
                });
            }
            Ok(inner.versions.len().to_string())
        })
    }

    fn needs_lease(&self) -> bool {
        self.leases
    }

    async fn append_log(&self, stream: &LogStream, lines: Vec<u8>) -> Result<(), StoreError> {
        self.with(|inner| {
            inner.logs.entry(stream.clone()).or_default().extend(lines);
            Ok(())
        })
    }

    async fn read_log(
        &self,
        stream: &LogStream,
        from: u64,
        limit: usize,
    ) -> Result<(Vec<u8>, u64), StoreError> {
        self.with(|inner| {
            let Some(bytes) = inner.logs.get(stream) else {
                return Ok((Vec::new(), from));
            };
            let start = crate::log_stream::window_start(bytes.len() as u64, from, limit);
            let window = bytes.get(start as usize..).unwrap_or_default();
            Ok(crate::log_stream::complete_lines(window, start, from))
        })
    }

    fn lock_driver(&self) -> Result<Box<dyn DriverGuard>, StoreError> {
        if self.leases {
            return Ok(Box::new(NoGuard));
        }
        if self.driven.swap(true, Ordering::SeqCst) {
            return Err(StoreError::Busy {
                locator: "memory".into(),
                holder: String::new(),
            });
        }
        Ok(Box::new(Held(Arc::clone(&self.driven))))
    }
}
