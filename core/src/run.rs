//! A run = a store + its plan. Creating, opening, loading and saving with compare-and-swap.

use serde_json::{Map, Value};

use std::fmt;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::changes::{self, Chain};
use crate::journal::{self, Delta, DeltaRef};
use crate::load;
use crate::model::Plan;
use crate::state::{RunState, Timestamp};
use crate::store::{RunStore, StoreError};
use crate::util::sha256_hex;
use crate::util::Counted;

/// Why a run could not be opened, read or saved.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed or refused (missing run, lost compare-and-swap, busy, IO).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What the store holds cannot be used: a plan that no longer validates, or a state
    /// version that does not parse or belongs to another plan.
    #[error("{locator}: {message}")]
    Damaged {
        /// The run, as users address it.
        locator: String,
        /// What is wrong, and where to look.
        message: String,
    },
}

impl RunError {
    /// Another process saved first: reload and apply the change again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, RunError::Store(StoreError::Conflict { .. }))
    }
}

/// The most recently parsed plan, by the sha256 of its bytes. One entry: a Lambda container
/// serves one run at a time in practice, and a second entry would double the memory a
/// 100k-action plan needs.
#[derive(Default)]
pub struct PlanCache {
    last: std::sync::Mutex<Option<(String, std::sync::Arc<Plan>)>>,
}

impl PlanCache {
    fn get(&self, sha256: &str) -> Option<std::sync::Arc<Plan>> {
        let last = self.last.lock().ok()?;
        last.as_ref()
            .filter(|(sha, _)| sha == sha256)
            .map(|(_, plan)| std::sync::Arc::clone(plan))
    }

    fn is_empty(&self) -> bool {
        self.last.lock().map_or(true, |last| last.is_none())
    }

    fn clear(&self) {
        if let Ok(mut last) = self.last.lock() {
            *last = None;
        }
    }

    fn put(&self, sha256: &str, plan: &std::sync::Arc<Plan>) {
        if let Ok(mut last) = self.last.lock() {
            *last = Some((sha256.to_string(), std::sync::Arc::clone(plan)));
        }
    }
}

/// An open run: its store and its plan, parsed once. States loaded through it are checked
/// against this plan.
pub struct Run<S> {
    /// Where the run lives.
    pub store: S,
    /// The plan, shared with a [`PlanCache`] when opened through one.
    pub plan: std::sync::Arc<Plan>,
    /// Hex sha256 of the stored plan's bytes; every state version must name the same.
    pub plan_sha256: String,
    // Debug builds check every delta against the state it stands for; release builds carry
    // an empty one.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    verifier: Verifier,
}

/// A stored plan and its SHA-256: the hashing (a tenth of reading a 100k-action plan) runs
/// beside the reading.
fn read_and_hash(source: &str, bytes: &[u8]) -> (Result<Plan, load::StoredPlanError>, String) {
    std::thread::scope(|scope| {
        let hash = scope.spawn(|| sha256_hex(bytes));
        let plan = load::read_stored(source, bytes);
        let plan_sha256 = hash.join().unwrap_or_else(|_| sha256_hex(bytes));
        (plan, plan_sha256)
    })
}

/// `demo-20261128-090458-3fa2`: readable, sortable by time, unique enough per store.
pub fn new_run_id(stem: &str, now: Timestamp) -> String {
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let nanos = now.timestamp_subsec_nanos() as u64;
    let mix = sha256_hex(
        format!(
            "{nanos}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        )
        .as_bytes(),
    );
    format!(
        "{}-{}-{}",
        if stem.is_empty() { "run" } else { &stem },
        now.format("%Y%m%d-%H%M%S"),
        &mix[..4]
    )
}

impl<S: RunStore> Run<S> {
    /// Writes the plan and the first state. Fails if the run exists.
    pub async fn create(
        store: S,
        plan: Plan,
        run_id: &str,
        vars: Map<String, Value>,
        now: Timestamp,
    ) -> Result<(Self, RunState, String), RunError> {
        Self::create_with_hooks(store, plan, run_id, vars, now, None).await
    }

    /// Like [`Run::create`], publishing the run's status hooks to `hook_sink`.
    pub async fn create_with_hooks(
        store: S,
        plan: Plan,
        run_id: &str,
        vars: Map<String, Value>,
        now: Timestamp,
        hook_sink: Option<crate::hooks::sink::HookSink>,
    ) -> Result<(Self, RunState, String), RunError> {
        let plan_json = plan.to_json();
        let plan_sha256 = sha256_hex(&plan_json);
        // The actions' states are allocated once the first document is stored: beside the
        // plan's JSON they were the peak of creating a 100k-action run (16 MB more).
        let mut state = RunState::without_actions(run_id, &plan, &plan_sha256, vars, now);
        if let Some(sink) = &hook_sink {
            state.log_run(
                now,
                crate::log::Level::Info,
                format!("status hooks publish to {sink}"),
            );
        }
        state.set_hook_sink(hook_sink);
        let first = state.to_json(&plan);
        let version = store.create(&plan_json, &first).await?;
        drop(plan_json);
        let mut plan = plan;
        plan.forget_edges_as_written();
        state.actions = vec![crate::state::ActionState::default(); plan.len()];
        if let Ok(seq) = version.parse::<u64>() {
            state
                .changes
                .settle(seq, Chain::checkpoint(seq, first.len()));
        }
        Ok((
            Run {
                store,
                plan: std::sync::Arc::new(plan),
                plan_sha256,
                verifier: Verifier::default(),
            },
            state,
            version,
        ))
    }

    /// Opens an existing run: reads and re-validates its plan.
    pub async fn open(store: S) -> Result<Self, RunError> {
        Self::open_cached(store, &PlanCache::default()).await
    }

    /// Like [`Run::open`], but a plan already parsed by this process (same bytes, by sha256)
    /// is reused: a warm Lambda re-opens the same run on every tick, and parsing a 10k-action
    /// plan was about 40% of such a tick.
    pub async fn open_cached(store: S, cache: &PlanCache) -> Result<Self, RunError> {
        let bytes = store.load_plan().await?;
        let source = format!("{}/actions.json", store.locator());
        if cache.is_empty() {
            // Nothing to compare the hash with first.
            let (plan, plan_sha256) = read_and_hash(&source, &bytes);
            return Self::opened(store, plan, plan_sha256, cache);
        }
        let plan_sha256 = sha256_hex(&bytes);
        if let Some(plan) = cache.get(&plan_sha256) {
            return Ok(Run {
                store,
                plan,
                plan_sha256,
                verifier: Verifier::default(),
            });
        }
        // Another run's plan: let it go before this one is parsed, not after.
        cache.clear();
        let plan = load::read_stored(&source, &bytes);
        Self::opened(store, plan, plan_sha256, cache)
    }

    fn opened(
        store: S,
        plan: Result<Plan, load::StoredPlanError>,
        plan_sha256: String,
        cache: &PlanCache,
    ) -> Result<Self, RunError> {
        let plan = plan.map_err(|e| RunError::Damaged {
            locator: store.locator(),
            message: e.to_string(),
        })?;
        let plan = std::sync::Arc::new(plan);
        cache.put(&plan_sha256, &plan);
        Ok(Run {
            store,
            plan,
            plan_sha256,
            verifier: Verifier::default(),
        })
    }

    fn damaged(&self, version: &str, what: impl fmt::Display) -> RunError {
        RunError::Damaged {
            locator: self.store.locator(),
            message: format!(
                "state version {version}: {what}; refusing to continue (older versions are \
                 intact: `baton status --versions`)"
            ),
        }
    }

    fn check_plan(&self, state: &RunState, version: &str) -> Result<(), RunError> {
        if state.plan_sha256 != self.plan_sha256 {
            return Err(RunError::Damaged {
                locator: self.store.locator(),
                message: format!(
                    "state version {version} belongs to a different plan (sha256 {} ≠ {}); actions.json was changed after the run was created",
                    state.plan_sha256, self.plan_sha256
                ),
            });
        }
        Ok(())
    }

    /// Version `version`, whose document is `bytes`: a whole state, or a journal delta folded
    /// onto the checkpoint and deltas before it.
    async fn assemble(&self, bytes: Vec<u8>, version: &str) -> Result<RunState, RunError> {
        let state = self
            .assemble_with(bytes, version, |bytes| {
                RunState::from_json(bytes, &self.plan)
            })
            .await?;
        self.remember(&state, version);
        Ok(state)
    }

    /// [`Run::assemble`] reading whole documents with `read`.
    async fn assemble_with(
        &self,
        bytes: Vec<u8>,
        version: &str,
        read: impl Fn(&[u8]) -> Result<RunState, crate::state::StateError>,
    ) -> Result<RunState, RunError> {
        let parse = |bytes: &[u8], version: &str| -> Result<RunState, RunError> {
            let state = read(bytes).map_err(|error| self.damaged(version, error))?;
            self.check_plan(&state, version)?;
            Ok(state)
        };
        let Some(at) = journal::delta_ref(&bytes) else {
            let mut state = parse(&bytes, version)?;
            if let Ok(seq) = version.parse::<u64>() {
                state
                    .changes
                    .settle(seq, Chain::checkpoint(seq, bytes.len()));
            }
            return Ok(state);
        };
        let at = at.map_err(|e| self.damaged(version, e))?;
        let seq: u64 = version
            .parse()
            .map_err(|_| self.damaged(version, "a journal delta needs a numbered version"))?;
        if at.base.checked_add(1) != Some(seq)
            || at.checkpoint >= seq
            || seq - at.checkpoint > u64::from(changes::MAX_DELTAS)
        {
            return Err(self.damaged(
                version,
                format!(
                    "its journal reference (checkpoint {}, base {}) does not fit the version",
                    at.checkpoint, at.base
                ),
            ));
        }
        let earlier: Vec<String> = (at.checkpoint..seq).map(|v| v.to_string()).collect();
        let mut documents = self.store.load_versions(&earlier).await?.into_iter();
        let checkpoint = documents.next().unwrap_or_default();
        if journal::is_delta(&checkpoint) {
            return Err(self.damaged(
                &earlier[0],
                "a journal delta where its chain needs a checkpoint",
            ));
        }
        let mut state = parse(&checkpoint, &earlier[0])?;
        let mut chain = Chain::checkpoint(at.checkpoint, checkpoint.len());
        drop(checkpoint);
        let deltas = (at.checkpoint + 1..seq)
            .zip(documents)
            .chain([(seq, bytes)]);
        for (number, document) in deltas {
            let name = number.to_string();
            let delta =
                Delta::from_json(&document, &self.plan).map_err(|e| self.damaged(&name, e))?;
            if delta.at
                != (DeltaRef {
                    checkpoint: at.checkpoint,
                    base: number - 1,
                })
            {
                return Err(
                    self.damaged(&name, "its journal reference does not continue the chain")
                );
            }
            delta
                .apply(&mut state)
                .map_err(|e| self.damaged(&name, e))?;
            chain = chain.then(document.len());
        }
        if state.format != crate::state::FORMAT {
            return Err(self.damaged(
                version,
                crate::state::StateError::Format {
                    found: state.format,
                },
            ));
        }
        self.check_plan(&state, version)?;
        state
            .check(&self.plan)
            .map_err(|e| self.damaged(version, e))?;
        state.changes.settle(seq, chain);
        Ok(state)
    }

    /// The newest state and its version (the `expected` of the next [`Run::save`]).
    pub async fn load(&self) -> Result<(RunState, String), RunError> {
        let (bytes, version) = self.store.load_latest().await?;
        let state = self.assemble(bytes, &version).await?;
        Ok((state, version))
    }

    /// The newest state and its version without its log threads, except action `keep_log`'s
    /// (see [`RunState::from_json_without_logs`]; lines journal deltas carry are kept): for
    /// showing a summary or one action, never for saving.
    pub async fn load_without_logs(
        &self,
        keep_log: Option<crate::model::ActionIdx>,
    ) -> Result<(RunState, String), RunError> {
        let (bytes, version) = self.store.load_latest().await?;
        let state = self.without_logs(bytes, &version, keep_log).await?;
        Ok((state, version))
    }

    async fn without_logs(
        &self,
        bytes: Vec<u8>,
        version: &str,
        keep_log: Option<crate::model::ActionIdx>,
    ) -> Result<RunState, RunError> {
        let mut state = self
            .assemble_with(bytes, version, |bytes| {
                RunState::from_json_without_logs(bytes, &self.plan, keep_log)
            })
            .await?;
        // Not a basis for a delta: the log threads left out would be lost.
        state.changes = Default::default();
        Ok(state)
    }

    /// [`Run::open`] and then [`Run::load_without_logs`] (keeping the log thread of the action
    /// labelled `keep_log`), for what shows a run as soon as it can: the console's first frame.
    /// The stored plan and the newest state are decoded on two threads at once (at 100k actions
    /// each takes tens of milliseconds), which holds both documents at once: commands that
    /// print and exit read one after the other, in less memory. The state's reader needs the plan only to
    /// place each action's entry, and every state document baton writes lists the actions in
    /// plan order: so it takes them in order and their labels are compared with the plan's
    /// once both are read. A journal delta, or a document that lists them otherwise, is read
    /// the usual way once the plan is read.
    pub async fn open_without_logs(
        store: S,
        keep_log: Option<&str>,
    ) -> Result<(Self, RunState, String), RunError> {
        let plan_bytes = store.load_plan().await?;
        let (bytes, version) = store.load_latest().await?;
        let source = format!("{}/actions.json", store.locator());
        let whole = journal::delta_ref(&bytes).is_none();
        let ((plan, plan_sha256), early) = std::thread::scope(|scope| {
            let early = whole.then(|| {
                scope.spawn(|| RunState::from_json_in_order_without_logs(&bytes, keep_log))
            });
            let plan = read_and_hash(&source, &plan_bytes);
            (plan, early.and_then(|reading| reading.join().ok()))
        });
        let run = Self::opened(store, plan, plan_sha256, &PlanCache::default())?;
        if let Some(Ok((mut state, labels))) = early {
            if let Some(checked) = state.in_plan_order(&labels, &run.plan) {
                checked.map_err(|error| run.damaged(&version, error))?;
                run.check_plan(&state, &version)?;
                // As `load_without_logs` leaves it: not a basis for a delta.
                state.changes = Default::default();
                return Ok((run, state, version));
            }
        }
        // Read again with the plan at hand, for its placement and its own words on damage.
        let keep = keep_log.and_then(|label| run.plan.find(label));
        let state = run.without_logs(bytes, &version, keep).await?;
        Ok((run, state, version))
    }

    /// An older state, by a version from [`RunStore::list_versions`].
    pub async fn load_version(&self, version: &str) -> Result<RunState, RunError> {
        let bytes = self.store.load_version(version).await?;
        self.assemble(bytes, version).await
    }

    /// Saves `state` as a new version if `expected` is still the newest; returns the new
    /// version. Fails with a conflict (see [`RunError::is_conflict`]) and writes nothing if
    /// another process saved in between. Writes a journal delta when `state` was read or saved
    /// as `expected` and the chain has room, else a whole checkpoint.
    pub async fn save(&self, state: &mut RunState, expected: &str) -> Result<String, RunError> {
        crate::fault::point("before_save");
        // The checkpoint's size, counted as it is written.
        let written = AtomicUsize::new(0);
        let (version, chain) = match self.delta(state, expected) {
            Some((delta, chain)) => {
                crate::fault::point("before_delta");
                (self.store.save(delta, expected).await?, Some(chain))
            }
            None => {
                crate::fault::point("before_checkpoint");
                // Streamed into the store rather than built first: at 100k actions the
                // checkpoint is 12.5 MB, on top of the plan and state it is written from.
                let write = |out: &mut dyn Write| -> std::io::Result<()> {
                    let mut counted = Counted::new(out);
                    let mut buffered = BufWriter::with_capacity(1 << 16, &mut counted);
                    state.write_json(&self.plan, &mut buffered)?;
                    buffered.flush()?;
                    drop(buffered);
                    written.store(counted.bytes, Ordering::Relaxed);
                    Ok(())
                };
                let size_hint = state.estimated_json_len(&self.plan);
                let version = self.store.save_written(&write, size_hint, expected).await?;
                (version, None)
            }
        };
        crate::fault::point("after_save");
        match version_seq(&version) {
            Some(seq) => {
                let chain = chain
                    .unwrap_or_else(|| Chain::checkpoint(seq, written.load(Ordering::Relaxed)));
                state.changes.settle(seq, chain);
            }
            None => state.changes = Default::default(),
        }
        self.remember(state, &version);
        Ok(version)
    }

    /// The journal delta a save of `state` after `expected` writes, and the chain it extends;
    /// `None` when the save writes a checkpoint instead.
    fn delta(&self, state: &RunState, expected: &str) -> Option<(Vec<u8>, Chain)> {
        let (basis, chain) = state.changes.basis()?;
        if version_seq(expected) != Some(basis) {
            return None;
        }
        let delta = journal::delta_json(state, &self.plan, basis, &chain, chain.room()?)?;
        self.verify_delta(state, basis, &delta);
        let chain = chain.then(delta.len());
        Some((delta, chain))
    }

    /// Applies an operator change with compare-and-swap, reloading and re-applying on conflict.
    pub async fn update<T>(
        &self,
        mut change: impl FnMut(&Plan, &mut RunState) -> T,
    ) -> Result<(T, RunState, String), RunError> {
        let mut attempts = 0;
        loop {
            let (mut state, version) = self.load().await?;
            let result = change(&self.plan, &mut state);
            match self.save(&mut state, &version).await {
                Ok(version) => return Ok((result, state, version)),
                Err(e) if e.is_conflict() && attempts < 20 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(5 * attempts)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// A store version as a journal sequence number (`None` for a store whose versions are not
/// numbers, which then always gets checkpoints).
fn version_seq(version: &str) -> Option<u64> {
    version.parse().ok()
}

/// Debug builds check every journal delta against the whole state it stands for: the version
/// it builds on (as this process last read or wrote it) with the delta folded in must serialize
/// exactly as the state saved. A change that bypassed the tracking fails the test that made it.
#[derive(Default)]
struct Verifier {
    #[cfg(debug_assertions)]
    last: std::sync::Mutex<Option<(String, Vec<u8>)>>,
}

impl<S: RunStore> Run<S> {
    #[cfg(debug_assertions)]
    fn remember(&self, state: &RunState, version: &str) {
        if let Ok(mut last) = self.verifier.last.lock() {
            *last = Some((version.to_string(), state.to_json(&self.plan)));
        }
    }

    #[cfg(not(debug_assertions))]
    fn remember(&self, _state: &RunState, _version: &str) {}

    #[cfg(debug_assertions)]
    fn verify_delta(&self, state: &RunState, basis: u64, delta: &[u8]) {
        let Ok(last) = self.verifier.last.lock() else {
            return;
        };
        let Some((version, whole)) = last.as_ref().filter(|(v, _)| *v == basis.to_string()) else {
            return;
        };
        let mut folded = RunState::from_json(whole, &self.plan)
            .unwrap_or_else(|e| panic!("version {version} as remembered does not read back: {e}"));
        Delta::from_json(delta, &self.plan)
            .and_then(|d| d.apply(&mut folded))
            .unwrap_or_else(|e| panic!("the delta after version {version} does not apply: {e}"));
        let (got, want) = (folded.to_json(&self.plan), state.to_json(&self.plan));
        assert!(
            got == want,
            "the journal delta after version {version} misses a change:\n  delta: {}\n  folded: {}\n  state:  {}",
            String::from_utf8_lossy(delta),
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
        );
    }

    #[cfg(not(debug_assertions))]
    fn verify_delta(&self, _state: &RunState, _basis: u64, _delta: &[u8]) {}
}
