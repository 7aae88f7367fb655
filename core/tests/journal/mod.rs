//! State as checkpoints and a journal of deltas: every version reads back exactly as it was
//! saved, most saves are small deltas, chains stay bounded, what is stored stays proportional
//! to what changed, and a damaged journal is refused naming the version.

use std::path::Path;

use baton_core::log::{Level, LogEntry};
use baton_core::store::s3::S3Store;
use baton_core::testutil::edit;
use baton_core::{ActionStatus, LocalStore, Run, RunState, RunStore};
use chrono::Utc;
use serde_json::{json, Map};

use super::{plan_of, rt};

/// A small deterministic generator: the test must fail the same way every time.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below
    }
}

fn entry(msg: String) -> LogEntry {
    LogEntry {
        t: Utc::now(),
        level: Level::Info,
        msg,
    }
}

/// One random change of the kind a tick makes: an attempt starting or ending, output, a log
/// line, the run's log.
fn change(state: &mut RunState, rng: &mut Lcg, actions: usize, step: usize) {
    let idx = rng.next(actions) as u32;
    match rng.next(5) {
        0 => {
            let action = edit(state).action_mut(idx);
            action.status = ActionStatus::Running;
            action.attempt += 1;
            action.started_at = Some(Utc::now());
        }
        1 => {
            let action = edit(state).action_mut(idx);
            action.status = ActionStatus::Complete;
            action.attempt = action.attempt.max(1);
            action.outputs.insert(
                format!("out{step}"),
                json!({"n": step, "text": "x".repeat(step % 50)}),
            );
        }
        2 => state.mirror_log(Some(idx), entry(format!("line {step}"))),
        3 => state.mirror_log(None, entry(format!("run line {step}"))),
        _ => {
            let mut action = state.action(idx).clone();
            action.status = ActionStatus::Pending;
            action.error = Some(format!("reset at step {step}"));
            state.mirror_action(idx, action);
        }
    }
}

fn state_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("state"))
        .expect("state dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect();
    files.sort();
    files
}

/// Saves `saves` versions of random changes through `store` and checks every one reads back
/// exactly as saved (through `reopened`, a fresh process's view, too), that most were small
/// deltas, that no chain outgrew its bound, and what was stored in all.
async fn journal_round_trip<S: RunStore>(store: S, reopen: impl Fn(&S) -> S, saves: usize) {
    let labels: Vec<String> = (0..300).map(|i| format!("action-{i:03}")).collect();
    let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let (run, mut state, mut version) =
        Run::create(store, plan_of(&refs), "journal", Map::new(), Utc::now())
            .await
            .expect("create");
    let mut saved = vec![(version.clone(), state.to_json(&run.plan))];
    let mut rng = Lcg(7);
    for step in 0..saves {
        for _ in 0..=rng.next(3) {
            change(&mut state, &mut rng, labels.len(), step);
        }
        if step % 97 == 0 {
            // Another process's view: read back, then carry on from what was read.
            let (loaded, at) = run.load().await.expect("reload");
            assert_eq!(at, version);
            state = loaded;
        }
        version = run.save(&mut state, &version).await.expect("save");
        saved.push((version.clone(), state.to_json(&run.plan)));
    }
    for (version, document) in &saved {
        let read = run.load_version(version).await.expect("load version");
        assert!(
            read.to_json(&run.plan) == *document,
            "version {version} reads back differently"
        );
    }
    let fresh = Run::open(reopen(&run.store)).await.expect("reopen");
    let (latest, at) = fresh.load().await.expect("load");
    assert_eq!(at, version);
    assert!(latest.to_json(&run.plan) == saved[saved.len() - 1].1);

    // Most saves were deltas, no chain outgrew its bound, and the journal cost what it saved:
    // everything stored is within about twice the deltas plus the last state.
    let infos = run.store.list_versions().await.expect("versions");
    assert_eq!(infos.len(), saved.len());
    let mut deltas = (0, 0);
    let mut run_length = 0;
    for info in &infos {
        let bytes = run.store.load_version(&info.version).await.expect("raw");
        assert_eq!(bytes.len() as u64, info.size);
        if bytes.starts_with(b"{\"delta\":") {
            deltas = (deltas.0 + 1, deltas.1 + bytes.len());
            run_length += 1;
        } else {
            run_length = 0;
        }
        assert!(
            run_length < 64,
            "version {}: chain of {run_length} deltas",
            info.version
        );
    }
    assert!(
        deltas.0 * 10 > infos.len() * 8,
        "{} of {} saves were deltas",
        deltas.0,
        infos.len()
    );
    let total: u64 = infos.iter().map(|i| i.size).sum();
    let last = saved[saved.len() - 1].1.len() as u64;
    assert!(
        total <= 2 * deltas.1 as u64 + 2 * last,
        "stored {total} B for {} B of deltas and a {last} B state",
        deltas.1
    );
    let whole: usize = saved.iter().map(|(_, d)| d.len()).sum();
    assert!(
        total * 4 < whole as u64,
        "journal {total} B vs whole versions {whole} B"
    );
}

#[test]
fn every_version_reads_back_exactly_as_it_was_saved() {
    rt().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        journal_round_trip(
            LocalStore::new(dir.path().join("run")),
            |s| LocalStore::new(s.dir()),
            300,
        )
        .await;
    });
}

#[test]
fn every_version_reads_back_exactly_as_it_was_saved_on_s3() {
    rt().block_on(async {
        let Some(s3) = super::store_contract::s3().await else {
            return;
        };
        let store = S3Store::in_prefix(s3.client.clone(), &s3.bucket, "baton", "journal");
        journal_round_trip(
            store,
            |s| S3Store::new(s.client().clone(), s.bucket(), s.run_prefix()),
            150,
        )
        .await;
    });
}

/// A run an earlier baton stored on S3 (the plan and one versioned `state.json`) opens: its
/// newest state becomes version 1 of the journal, and the run carries on from there.
#[test]
fn a_run_stored_in_the_earlier_s3_layout_carries_on() {
    rt().block_on(async {
        let Some(s3) = super::store_contract::s3().await else {
            return;
        };
        let plan = plan_of(&["a", "b"]);
        let plan_json = plan.to_json();
        let sha: String = {
            use sha2::Digest;
            sha2::Sha256::digest(&plan_json)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let mut state = RunState::new("legacy", &plan, &sha, Map::new(), Utc::now());
        state.mirror_log(Some(0), entry("from the earlier layout".into()));
        let prefix = "baton/runs/legacy";
        for (key, body) in [
            ("actions.json", plan_json.clone()),
            ("state.json", state.to_json(&plan)),
        ] {
            s3.client
                .put_object()
                .bucket(&s3.bucket)
                .key(format!("{prefix}/{key}"))
                .body(body.into())
                .send()
                .await
                .expect("put");
        }
        let run = Run::open(S3Store::new(s3.client.clone(), &s3.bucket, prefix))
            .await
            .expect("open");
        let (mut loaded, version) = run.load().await.expect("load");
        assert_eq!(version, "1");
        assert!(loaded.to_json(&run.plan) == state.to_json(&plan));
        loaded.mirror_log(Some(1), entry("carried on".into()));
        let next = run.save(&mut loaded, &version).await.expect("save");
        assert_eq!(next, "2");
        let versions = run.store.list_versions().await.expect("versions");
        assert_eq!(versions.len(), 2);
    });
}

/// Edits version `n`'s file with `f`.
fn tamper(dir: &Path, n: u64, f: impl FnOnce(String) -> String) {
    let path = dir.join("state").join(format!("{n:08}.json"));
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(&path, f(text)).expect("write");
}

/// A run whose versions are: 1 (created) and 2 checkpoints, 3 to 6 deltas.
async fn damaged_run(dir: &Path) -> Run<LocalStore> {
    let names: Vec<String> = (0..50).map(|i| format!("a{i}")).collect();
    let labels: Vec<&str> = names.iter().map(String::as_str).collect();
    let (run, mut state, mut version) = Run::create(
        LocalStore::new(dir.join("run")),
        plan_of(&labels),
        "damaged",
        Map::new(),
        Utc::now(),
    )
    .await
    .expect("create");
    // Version 2: every action has said something (a checkpoint: a delta would be bigger than
    // the first state); versions 3 to 6: one line each (deltas).
    for idx in 0..50 {
        state.mirror_log(Some(idx), entry(format!("hello from {idx}")));
    }
    version = run.save(&mut state, &version).await.expect("save");
    for step in 0..4 {
        state.mirror_log(Some(step), entry(format!("line {step}")));
        version = run.save(&mut state, &version).await.expect("save");
    }
    assert_eq!(version, "6");
    let files = state_files(&dir.join("run"));
    let deltas: Vec<bool> = files
        .iter()
        .map(|(_, b)| b.starts_with(b"{\"delta\":"))
        .collect();
    assert_eq!(deltas, [false, false, true, true, true, true]);
    run
}

#[test]
fn a_damaged_journal_is_refused_naming_the_version() {
    rt().block_on(async {
        type Edit = fn(String) -> String;
        let cases: [(u64, Edit, &str); 5] = [
            (
                4,
                |t| t.replacen("\"base\":3", "\"base\":2", 1),
                "state version 4: its journal reference",
            ),
            (
                6,
                |t| t.replacen("\"checkpoint\":2", "\"checkpoint\":3", 1),
                "state version 3: a journal delta where its chain needs a checkpoint",
            ),
            (
                6,
                |t| t.replacen("\"actions\":{\"", "\"actions\":{\"zz", 1),
                "not in the run's plan",
            ),
            (
                6,
                |t| t.replacen("\"run_id\":\"damaged\"", "\"run_id\":\"other\"", 1),
                "belongs to another run",
            ),
            (
                5,
                |t| t[..t.len() / 2].to_string(),
                "state version 5: the journal delta is not valid",
            ),
        ];
        for (n, edit_file, expected) in cases {
            let dir = tempfile::tempdir().expect("tempdir");
            let run = damaged_run(dir.path()).await;
            tamper(&dir.path().join("run"), n, edit_file);
            let err = match run.load().await {
                Ok(_) => panic!("version {n} tampered, yet the run loads"),
                Err(err) => err.to_string(),
            };
            assert!(err.contains(expected), "{expected:?} not in: {err}");
        }
        // A missing delta: the chain cannot be read.
        let dir = tempfile::tempdir().expect("tempdir");
        let run = damaged_run(dir.path()).await;
        std::fs::remove_file(dir.path().join("run/state/00000004.json")).expect("rm");
        let err = run.load().await.expect_err("refused").to_string();
        assert!(err.contains("version 4 does not exist"), "{err}");
    });
}

/// Opening a run with its state at once (plan and state read on two threads) reads what
/// opening and then loading reads, and refuses what that refuses, in the same words: for a
/// checkpoint listing the actions in plan order (read in order), one listing them otherwise,
/// and a journal delta (both read again with the plan).
#[test]
fn opening_with_the_state_at_once_reads_what_opening_then_loading_reads() {
    rt().block_on(async {
        type Edit = fn(String) -> String;
        let reversed: Edit = |text| {
            let mut doc: serde_json::Value = serde_json::from_str(&text).expect("json");
            let actions = doc["actions"].as_object().expect("actions").clone();
            let mut backwards = Map::new();
            for (label, entry) in actions.into_iter().rev() {
                backwards.insert(label, entry);
            }
            doc["actions"] = serde_json::Value::Object(backwards);
            serde_json::to_string(&doc).expect("json")
        };
        let cases: [(&str, bool, Option<Edit>); 5] = [
            ("a journal delta", true, None),
            ("a checkpoint in plan order", false, None),
            ("a checkpoint in another order", false, Some(reversed)),
            (
                "an unknown action",
                false,
                Some(|t| t.replacen("\"actions\":{\"", "\"actions\":{\"zz", 1)),
            ),
            (
                "an impossible state",
                false,
                Some(|t| t.replacen("\"status\":\"running\"", "\"status\":\"succeeded\"", 1)),
            ),
        ];
        for (case, keep_deltas, edit_file) in cases {
            let dir = tempfile::tempdir().expect("tempdir");
            let run_dir = dir.path().join("run");
            damaged_run(dir.path()).await;
            let latest = if keep_deltas {
                6
            } else {
                for n in 3..=6 {
                    std::fs::remove_file(run_dir.join(format!("state/{n:08}.json"))).expect("rm");
                }
                2
            };
            let path = run_dir.join(format!("state/{latest:08}.json"));
            let before = std::fs::read_to_string(&path).expect("read");
            if let Some(edit_file) = edit_file {
                tamper(&run_dir, latest, edit_file);
                let after = std::fs::read_to_string(&path).expect("read");
                assert_ne!(after, before, "{case}: the edit applies");
            }
            let run = Run::open(LocalStore::new(&run_dir)).await.expect("open");
            let keep = run.plan.find("a3");
            let expected = run.load_without_logs(keep).await;
            let at_once = Run::open_without_logs(LocalStore::new(&run_dir), Some("a3")).await;
            match (expected, at_once) {
                (Ok((state, version)), Ok((opened, again, at))) => {
                    assert_eq!(at, version, "{case}");
                    assert!(
                        again.to_json(&opened.plan) == state.to_json(&run.plan),
                        "{case}: read differently"
                    );
                    assert!(!again.action(3).log.is_empty(), "{case}: a3's log kept");
                    assert!(again.action(4).log.is_empty(), "{case}: a4's log left out");
                }
                (Err(expected), Err(at_once)) => {
                    assert_eq!(at_once.to_string(), expected.to_string(), "{case}")
                }
                (expected, at_once) => panic!(
                    "{case}: loading gave {:?}, opening at once {:?}",
                    expected.map(|_| ()),
                    at_once.map(|_| ())
                ),
            }
        }
    });
}
