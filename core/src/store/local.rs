//! The local store: `<root>/runs/<run-id>/actions.json` and `state/<seq>.json`.
//!
//! Every file is written to a temporary name, fsynced, then hard-linked to its final name.
//! `link` refuses to replace an existing file, so two writers that both loaded version N race
//! for `N+1` and exactly one wins: the compare-and-swap needs no lock, and a crash never leaves
//! a half-written version behind. A separate advisory lock (`driver.lock`) keeps two processes
//! from driving the same run at once.
//!
//! Live log streams are `logs/<stream>.jsonl`, appended to (one write per batch, no fsync: the
//! state stays the durable record) and read from a byte offset.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{DriverGuard, LogStream, RunStore, StoreError, VersionInfo, WriteDocument};
use crate::log_stream::{complete_lines, window_start};

pub(crate) const PLAN_FILE: &str = "actions.json";
const STATE_DIR: &str = "state";
const LOCK_FILE: &str = "driver.lock";
const LOG_DIR: &str = "logs";
/// State documents larger than this are refused as damaged rather than read into memory.
const MAX_STATE_BYTES: u64 = 512 * 1024 * 1024;

/// A run in a folder on this machine.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    /// The store for the run in `dir` (which need not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalStore { dir: dir.into() }
    }

    /// The run `run_id` under a store root such as `.baton`.
    pub fn in_root(root: &Path, run_id: &str) -> Self {
        LocalStore::new(root.join("runs").join(run_id))
    }

    /// The run's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether `dir` looks like a run folder. A folder whose name starts with `.` never is: a
    /// run being created is built in `.creating-…` and renamed into place when whole, so a
    /// crash mid-way must not leave something `last`, `status` or `resume` would pick up.
    pub fn is_run_dir(dir: &Path) -> bool {
        let hidden = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        !hidden && dir.join(PLAN_FILE).is_file()
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.join(STATE_DIR)
    }

    fn state_path(&self, seq: u64) -> PathBuf {
        self.state_dir().join(format!("{seq:08}.json"))
    }

    fn sequences(&self) -> Result<Vec<u64>, StoreError> {
        let dir = self.state_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    locator: self.locator(),
                })
            }
            Err(e) => return Err(StoreError::io(dir, e)),
        };
        let mut seqs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(seq) = name
                .strip_suffix(".json")
                .and_then(|s| s.parse::<u64>().ok())
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        Ok(seqs)
    }

    fn head_seq(&self) -> Result<u64, StoreError> {
        self.sequences()?
            .last()
            .copied()
            .ok_or_else(|| StoreError::Corrupt {
                locator: self.locator(),
                message: "the run has no state versions (was its folder emptied?)".into(),
            })
    }

    fn read(&self, path: &Path) -> Result<Vec<u8>, StoreError> {
        let mut file = File::open(path).map_err(|e| StoreError::io(path, e))?;
        let len = file.metadata().map_err(|e| StoreError::io(path, e))?.len();
        if len > MAX_STATE_BYTES {
            return Err(StoreError::Corrupt {
                locator: self.locator(),
                message: format!(
                    "{} is {len} bytes, larger than any state baton writes",
                    path.display()
                ),
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.read_to_end(&mut bytes)
            .map_err(|e| StoreError::io(path, e))?;
        Ok(bytes)
    }

    fn log_path(&self, stream: &LogStream) -> PathBuf {
        self.dir
            .join(LOG_DIR)
            .join(format!("{}.jsonl", stream.key()))
    }

    /// Writes version `expected + 1` with `fill`, unless `expected` is no longer the newest.
    fn save_filling(
        &self,
        expected: &str,
        fill: impl FnOnce(&File) -> std::io::Result<()>,
    ) -> Result<String, StoreError> {
        let seq = self.parse_version(expected)?;
        let conflict = |store: &Self| StoreError::Conflict {
            locator: store.locator(),
            expected: expected.to_string(),
            actual: store
                .head_seq()
                .map_or_else(|_| "unknown".into(), |s| s.to_string()),
        };
        if self.head_seq()? != seq {
            return Err(conflict(self));
        }
        // A version file named 18446744073709551615 (nothing baton writes) must not wrap to 0.
        let next = seq.checked_add(1).ok_or_else(|| StoreError::Corrupt {
            locator: self.locator(),
            message: format!("state version {seq} is the last version number there can be; the run's state folder was tampered with"),
        })?;
        let target = self.state_path(next);
        match write_new(&target, fill) {
            Ok(()) => Ok(next.to_string()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(conflict(self)),
            Err(e) => Err(StoreError::io(target, e)),
        }
    }

    fn parse_version(&self, version: &str) -> Result<u64, StoreError> {
        version.parse().map_err(|_| StoreError::NoSuchVersion {
            locator: self.locator(),
            version: version.to_string(),
        })
    }
}

/// Where a run is built before it is renamed into place: `.creating-<run-id>-<pid>`.
const STAGING: &str = ".creating-";

/// Removes what runs that crashed while being created left behind: staging folders whose
/// creating process is gone. (A live process's folder is its own business.)
fn remove_stale_staging(runs: &Path) {
    let Ok(entries) = fs::read_dir(runs) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(STAGING)) else {
            continue;
        };
        let pid = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_none_or(process_gone) {
            tracing::info!(folder = %entry.path().display(), "removing a half-created run");
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Writes what `fill` writes to `target` atomically; fails with `AlreadyExists` if `target`
/// exists.
fn write_new(
    target: &Path,
    fill: impl FnOnce(&File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = target.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        // State holds outputs (which may be secrets that templates read): owner-only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&tmp)?;
        fill(&file)?;
        file.sync_all()?;
        drop(file);
        crate::fault::point("before_link");
        fs::hard_link(&tmp, target)
    })();
    let _ = fs::remove_file(&tmp);
    result?;
    // Make the new name durable too.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

impl RunStore for LocalStore {
    fn locator(&self) -> String {
        self.dir.display().to_string()
    }

    async fn create(&self, plan: &[u8], state: &[u8]) -> Result<String, StoreError> {
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
        if self.dir.join(PLAN_FILE).exists() {
            return Err(StoreError::AlreadyExists {
                locator: self.locator(),
            });
        }
        // Build the run in a private folder and rename it into place: a crash leaves either no
        // run or a whole one, never a run without its plan or first state.
        let name = self
            .dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("run");
        remove_stale_staging(parent);
        let staging = parent.join(format!("{STAGING}{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&staging);
        let result = (|| {
            fs::create_dir_all(staging.join(STATE_DIR))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&staging, fs::Permissions::from_mode(0o700))?;
            }
            write_new(&staging.join(PLAN_FILE), |mut file| file.write_all(plan))?;
            write_new(
                &staging.join(STATE_DIR).join(format!("{:08}.json", 1)),
                |mut file| file.write_all(state),
            )?;
            fs::rename(&staging, &self.dir)
        })();
        match result {
            Ok(()) => {
                if let Ok(dir) = File::open(parent) {
                    let _ = dir.sync_all();
                }
                Ok("1".into())
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                if matches!(
                    e.kind(),
                    ErrorKind::AlreadyExists | ErrorKind::DirectoryNotEmpty
                ) {
                    Err(StoreError::AlreadyExists {
                        locator: self.locator(),
                    })
                } else {
                    Err(StoreError::io(&self.dir, e))
                }
            }
        }
    }

    async fn load_plan(&self) -> Result<Vec<u8>, StoreError> {
        let path = self.dir.join(PLAN_FILE);
        if !path.exists() {
            return Err(StoreError::NotFound {
                locator: self.locator(),
            });
        }
        self.read(&path)
    }

    async fn load_latest(&self) -> Result<(Vec<u8>, String), StoreError> {
        let seq = self.head_seq()?;
        Ok((self.read(&self.state_path(seq))?, seq.to_string()))
    }

    async fn load_version(&self, version: &str) -> Result<Vec<u8>, StoreError> {
        let seq = self.parse_version(version)?;
        let path = self.state_path(seq);
        if !path.exists() {
            return Err(StoreError::NoSuchVersion {
                locator: self.locator(),
                version: version.into(),
            });
        }
        self.read(&path)
    }

    async fn save(&self, state: Vec<u8>, expected: &str) -> Result<String, StoreError> {
        self.save_filling(expected, |mut file| file.write_all(&state))
    }

    async fn save_written(
        &self,
        write: WriteDocument<'_>,
        _size_hint: usize,
        expected: &str,
    ) -> Result<String, StoreError> {
        self.save_filling(expected, |mut file| write(&mut file))
    }

    async fn list_versions(&self) -> Result<Vec<VersionInfo>, StoreError> {
        self.sequences()?
            .into_iter()
            .map(|seq| {
                let path = self.state_path(seq);
                let size = fs::metadata(&path)
                    .map_err(|e| StoreError::io(&path, e))?
                    .len();
                Ok(VersionInfo {
                    version: seq.to_string(),
                    size,
                })
            })
            .collect()
    }

    async fn head(&self) -> Result<String, StoreError> {
        Ok(self.head_seq()?.to_string())
    }

    async fn append_log(&self, stream: &LogStream, lines: Vec<u8>) -> Result<(), StoreError> {
        let dir = self.dir.join(LOG_DIR);
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let path = self.log_path(stream);
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        // Like the state: owner-only (the lines are redacted, but they are a command's output).
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(|e| StoreError::io(&path, e))?;
        // One write: readers see whole batches, or a partial last line they leave for later.
        file.write_all(&lines).map_err(|e| StoreError::io(&path, e))
    }

    async fn read_log(
        &self,
        stream: &LogStream,
        from: u64,
        limit: usize,
    ) -> Result<(Vec<u8>, u64), StoreError> {
        let path = self.log_path(stream);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok((Vec::new(), from)),
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        let len = file.metadata().map_err(|e| StoreError::io(&path, e))?.len();
        if len <= from {
            return Ok((Vec::new(), from));
        }
        let start = window_start(len, from, limit);
        let mut window = Vec::with_capacity((len - start) as usize);
        file.seek(SeekFrom::Start(start))
            .and_then(|_| (&file).take(len - start).read_to_end(&mut window))
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(complete_lines(&window, start, from))
    }

    fn lock_driver(&self) -> Result<Box<dyn DriverGuard>, StoreError> {
        // A driver killed while it spawned a command leaves the lock with the child until
        // that child execs (the descriptor is close-on-exec, not close-on-fork); under load
        // that can take a moment. The driver's pid in the file tells: while it is gone, wait.
        let mut waited = 0;
        loop {
            match self.try_lock_driver() {
                Err(StoreError::Busy { holder, .. }) if waited < 40 && dead_holder(&holder) => {
                    waited += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn is_locked(&self) -> bool {
        held_elsewhere(&self.dir.join(LOCK_FILE))
    }
}

/// Whether the pid a Busy error names (` (pid N)`) is no longer a process on this machine.
/// Whether process `pid` has ended (where `/proc` lists the live ones).
fn process_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

fn dead_holder(holder: &str) -> bool {
    holder
        .trim()
        .strip_prefix("(pid ")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(process_gone)
}

impl LocalStore {
    /// Removes what saves that died halfway left in the state folder: the temporary files of
    /// processes that are gone (a checkpoint streamed there is megabytes at 100k actions).
    /// Only where `/proc` tells which processes live; a live writer's file is its own.
    fn remove_dead_writers_files(&self) {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let Ok(entries) = fs::read_dir(self.state_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.strip_prefix(".tmp-"))
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok());
            if pid.is_some_and(process_gone) {
                tracing::info!(file = %entry.path().display(), "removing what a dead save left");
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    fn try_lock_driver(&self) -> Result<Box<dyn DriverGuard>, StoreError> {
        let path = self.dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = write!(file, "{}", std::process::id());
                self.remove_dead_writers_files();
                Ok(Box::new(LocalGuard { _file: file }))
            }
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                Err(StoreError::Busy {
                    locator: self.locator(),
                    holder: if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    },
                })
            }
            Err(fs::TryLockError::Error(e)) => Err(StoreError::io(path, e)),
        }
    }
}

/// Whether another open file holds the lock: one quick try that writes nothing.
fn held_elsewhere(path: &Path) -> bool {
    let Ok(file) = OpenOptions::new().read(true).open(path) else {
        return false;
    };
    matches!(file.try_lock_shared(), Err(fs::TryLockError::WouldBlock))
}

/// The advisory lock lives as long as the open file; the OS drops it if the process dies.
struct LocalGuard {
    _file: File,
}

impl DriverGuard for LocalGuard {}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn create_save_load_and_conflict() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::in_root(tmp.path(), "r1");
        block_on(async {
            assert_eq!(store.create(b"[]", b"s1").await.expect("create"), "1");
            assert!(matches!(
                store.create(b"[]", b"x").await,
                Err(StoreError::AlreadyExists { .. })
            ));
            assert_eq!(store.save(b"s2".to_vec(), "1").await.expect("save"), "2");
            // A second writer that also loaded version 1 loses and changes nothing.
            assert!(matches!(
                store.save(b"other".to_vec(), "1").await,
                Err(StoreError::Conflict { .. })
            ));
            assert_eq!(
                store.load_latest().await.expect("latest"),
                (b"s2".to_vec(), "2".into())
            );
            assert_eq!(store.load_version("1").await.expect("v1"), b"s1");
            assert_eq!(store.list_versions().await.expect("list").len(), 2);
            assert!(matches!(
                store.load_version("9").await,
                Err(StoreError::NoSuchVersion { .. })
            ));
            // A streamed document whose writer fails leaves no file behind either.
            let failing = |out: &mut dyn Write| -> std::io::Result<()> {
                out.write_all(b"partial")?;
                Err(std::io::Error::other("full"))
            };
            assert!(store.save_written(&failing, 0, "2").await.is_err());
            assert_eq!(store.head().await.expect("head"), "2");
        });
        // No temporary files are left behind.
        let leftovers: Vec<_> = fs::read_dir(store.state_dir())
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    /// A save killed halfway leaves its temporary file; the next driver removes it, and
    /// leaves a live writer's alone.
    #[test]
    fn the_next_driver_removes_what_a_dead_save_left() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::in_root(tmp.path(), "dead");
        block_on(store.create(b"[]", b"s1")).expect("create");
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead = child.id();
        child.wait().expect("wait");
        let left = store.state_dir().join(format!(".tmp-{dead}-0"));
        let live = store
            .state_dir()
            .join(format!(".tmp-{}-99", std::process::id()));
        fs::write(&left, b"{\"format\": half a checkp").expect("write");
        fs::write(&live, b"being written").expect("write");
        let guard = store.lock_driver().expect("lock");
        assert!(!left.exists(), "a dead save's file stays");
        assert!(live.exists(), "a live writer's file was removed");
        drop(guard);
        assert_eq!(block_on(store.head()).expect("head"), "1");
    }

    /// Asking whether a run is driven takes no exclusive lock and sees a held one.
    #[test]
    fn asking_whether_a_run_is_driven_sees_the_driver() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::in_root(tmp.path(), "probe");
        block_on(store.create(b"[]", b"s1")).expect("create");
        assert!(!store.is_locked());
        let guard = store.lock_driver().expect("lock");
        assert!(store.is_locked());
        drop(guard);
        assert!(!store.is_locked());
        store.lock_driver().expect("asking left no lock behind");
    }

    #[test]
    fn concurrent_writers_exactly_one_wins() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::in_root(tmp.path(), "race");
        block_on(store.create(b"[]", b"s1")).expect("create");
        let wins: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let store = store.clone();
                    scope.spawn(move || {
                        block_on(store.save(format!("w{i}").into_bytes(), "1")).is_ok()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap_or(false)))
                .sum()
        });
        assert_eq!(wins, 1);
        assert_eq!(block_on(store.head()).expect("head"), "2");
    }

    #[test]
    fn driver_lock_is_exclusive() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::in_root(tmp.path(), "lock");
        block_on(store.create(b"[]", b"s1")).expect("create");
        let guard = store.lock_driver().expect("first lock");
        let err = store.lock_driver().err().expect("second lock fails");
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(guard);
        store.lock_driver().expect("lock again after release");
    }
}
