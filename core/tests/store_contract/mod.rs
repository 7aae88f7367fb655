//! The `RunStore` contract: one set of properties, written once against any store and checked
//! on each — the memory store (plain, and with leases like S3), the local store in a temporary
//! folder, and the S3 store on moto (`BATON_TEST_AWS_ENDPOINT`, started by scripts/test; skipped
//! without it, a failure in CI). The engine relies on exactly these; a store that passes them
//! can carry runs.

use std::future::Future;

use baton_core::store::s3::S3Store;
use baton_core::store::{LogStream, VersionInfo};
use baton_core::testutil::MemoryStore;
use baton_core::{LocalStore, RunStore, StoreError};

/// Where one test's runs live.
trait Backend {
    type Store: RunStore;
    /// Whether drivers exclude each other with a lease in the state document rather than with
    /// `lock_driver` (a store that other machines reach).
    fn leases(&self) -> bool;
    /// The run `run_id`, not created yet.
    fn run(&self, run_id: &str) -> Self::Store;
    /// The same run as another process opens it: sharing only what the store itself shares.
    fn reopen(&self, store: &Self::Store) -> Self::Store;
}

/// Stores treat documents as opaque bytes.
const PLAN: &[u8] = br#"[{"label": "a", "type": "system.no_op"}]"#;

// ---- the properties ----

async fn creates_a_run_once<B: Backend>(backend: B) {
    let store = backend.run("once");
    let v1 = store.create(PLAN, b"state-1").await.expect("create");
    assert_eq!(store.load_plan().await.expect("plan"), PLAN);
    assert_eq!(
        store.load_latest().await.expect("latest"),
        (b"state-1".to_vec(), v1.clone())
    );
    assert_eq!(store.head().await.expect("head"), v1);
    let other = backend.reopen(&store);
    for again in [&store, &other] {
        let err = again
            .create(b"[]", b"another state")
            .await
            .expect_err("the run exists");
        assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");
    }
    // Nothing was overwritten.
    assert_eq!(store.load_plan().await.expect("plan"), PLAN);
    assert_eq!(
        other.load_latest().await.expect("latest"),
        (b"state-1".to_vec(), v1.clone())
    );
    assert_eq!(store.list_versions().await.expect("list").len(), 1);
}

async fn a_missing_run_is_not_found<B: Backend>(backend: B) {
    // The store holds another run: only this one is missing.
    backend
        .run("present")
        .create(PLAN, b"state-1")
        .await
        .expect("create");
    let store = backend.run("missing");
    let not_found = |result: Result<(), StoreError>| match result {
        Err(StoreError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    };
    not_found(store.load_plan().await.map(drop));
    not_found(store.load_latest().await.map(drop));
    not_found(store.head().await.map(drop));
}

async fn saves_only_over_the_newest_version<B: Backend>(backend: B) {
    let store = backend.run("cas");
    let v1 = store.create(PLAN, b"state-1").await.expect("create");
    // Two writers load version 1.
    let other = backend.reopen(&store);
    let (_, seen) = other.load_latest().await.expect("other loads");
    assert_eq!(seen, v1);
    let v2 = store
        .save(b"state-2".to_vec(), &v1)
        .await
        .expect("the first writer wins");
    assert_ne!(v2, v1);
    let err = other
        .save(b"state-2-other".to_vec(), &seen)
        .await
        .expect_err("the second writer loses");
    match &err {
        StoreError::Conflict {
            expected, actual, ..
        } => assert_eq!((expected, actual), (&v1, &v2), "{err}"),
        _ => panic!("expected a conflict, got {err}"),
    }
    // A stale version is stale for the writer that moved past it too.
    let err = store
        .save(b"state-3-stale".to_vec(), &v1)
        .await
        .expect_err("stale");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    // Nothing was overwritten, seen from either side.
    for side in [&store, &other] {
        assert_eq!(
            side.load_latest().await.expect("latest"),
            (b"state-2".to_vec(), v2.clone())
        );
    }
    let listed: Vec<String> = store
        .list_versions()
        .await
        .expect("list")
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(listed, vec![v1, v2]);
    // The loser saves once it has reloaded.
    let (_, newest) = other.load_latest().await.expect("reload");
    let v3 = other
        .save(b"state-3".to_vec(), &newest)
        .await
        .expect("after reloading");
    assert_eq!(store.head().await.expect("head"), v3);
}

async fn a_written_document_is_saved_as_if_given_whole<B: Backend>(backend: B) {
    let store = backend.run("written");
    let v1 = store.create(PLAN, b"state-1").await.expect("create");
    // Written in pieces, and the size is only a hint.
    let pieces = |out: &mut dyn std::io::Write| -> std::io::Result<()> {
        for piece in [&b"state"[..], b"-", b"two"] {
            out.write_all(piece)?;
        }
        Ok(())
    };
    let v2 = store.save_written(&pieces, 2, &v1).await.expect("saved");
    assert_eq!(
        backend.reopen(&store).load_latest().await.expect("latest"),
        (b"state-two".to_vec(), v2.clone())
    );
    // Over a stale version: a conflict, and nothing written. (Another document: S3 takes the
    // same bytes over the same version for its own earlier write landing, and says so.)
    let other = |out: &mut dyn std::io::Write| out.write_all(b"state-two-other");
    let err = store.save_written(&other, 9, &v1).await.expect_err("stale");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    // A writer that fails halfway (a full disk, a serializer error) leaves no version behind,
    // whole or partial, and the next save goes ahead over the same version.
    let failing = |out: &mut dyn std::io::Write| -> std::io::Result<()> {
        out.write_all(b"half a sta")?;
        Err(std::io::Error::other("the disk is full"))
    };
    store
        .save_written(&failing, 20, &v2)
        .await
        .expect_err("the writer failed");
    let sizes: Vec<u64> = store
        .list_versions()
        .await
        .expect("list")
        .into_iter()
        .map(|v| v.size)
        .collect();
    assert_eq!(sizes, vec![7, 9]);
    let v3 = store
        .save(b"state-3".to_vec(), &v2)
        .await
        .expect("saves after the failed write");
    assert_eq!(store.head().await.expect("head"), v3);
}

async fn lists_versions_oldest_first_with_their_sizes<B: Backend>(backend: B) {
    let store = backend.run("versions");
    let documents: [&[u8]; 3] = [b"s1", b"state-two", b"the third state"];
    let mut versions = vec![store.create(PLAN, documents[0]).await.expect("create")];
    for document in &documents[1..] {
        let expected = versions.last().cloned().unwrap_or_default();
        let version = store
            .save(document.to_vec(), &expected)
            .await
            .expect("save");
        assert_eq!(store.head().await.expect("head"), version);
        versions.push(version);
    }
    let wanted: Vec<VersionInfo> = versions
        .iter()
        .zip(documents)
        .map(|(version, document)| VersionInfo {
            version: version.clone(),
            size: document.len() as u64,
        })
        .collect();
    assert_eq!(store.list_versions().await.expect("list"), wanted);
    let other = backend.reopen(&store);
    assert_eq!(other.list_versions().await.expect("list"), wanted);
    for (version, document) in versions.iter().zip(documents) {
        assert_eq!(
            other.load_version(version).await.expect("load version"),
            document
        );
    }
}

async fn an_unknown_version_is_refused<B: Backend>(backend: B) {
    let store = backend.run("unknown");
    store.create(PLAN, b"state-1").await.expect("create");
    for version in ["999", "no-such-version"] {
        match store.load_version(version).await {
            Err(StoreError::NoSuchVersion { version: named, .. }) => assert_eq!(named, version),
            other => panic!("{version}: expected NoSuchVersion, got {other:?}"),
        }
    }
}

async fn drivers_exclude_each_other<B: Backend>(backend: B) {
    let store = backend.run("driven");
    store.create(PLAN, b"state-1").await.expect("create");
    let other = backend.reopen(&store);
    assert_eq!(store.needs_lease(), backend.leases());
    let first = store.lock_driver().expect("the first driver");
    if backend.leases() {
        // The lock cannot see other machines, so it never refuses: ticks claim a lease in the
        // state document instead, and the compare-and-swap lets one through.
        other.lock_driver().expect("a lock that excludes nobody");
    } else {
        let err = other
            .lock_driver()
            .err()
            .expect("a second driver is refused");
        assert!(matches!(err, StoreError::Busy { .. }), "{err}");
        drop(first);
        other
            .lock_driver()
            .expect("free again once the first driver lets go");
    }
}

async fn a_log_stream_appends_and_reads_from_a_position<B: Backend>(backend: B) {
    let store = backend.run("logs");
    store.create(PLAN, b"state-1").await.expect("create");
    let stream = LogStream::new("deploy/api:v1.2", 1);
    let everything = usize::MAX;
    // Nothing written yet: empty, and the position stays.
    assert_eq!(
        store.read_log(&stream, 0, everything).await.expect("read"),
        (Vec::new(), 0)
    );
    store
        .append_log(&stream, b"one\ntwo\n".to_vec())
        .await
        .expect("append");
    let (lines, after_two) = store.read_log(&stream, 0, everything).await.expect("read");
    assert_eq!(lines, b"one\ntwo\n");
    assert_eq!(
        store
            .read_log(&stream, after_two, everything)
            .await
            .expect("read"),
        (Vec::new(), after_two),
        "nothing new"
    );
    store
        .append_log(&stream, b"three\n".to_vec())
        .await
        .expect("append");
    let (lines, after_three) = store
        .read_log(&stream, after_two, everything)
        .await
        .expect("read");
    assert_eq!(lines, b"three\n");
    // Another process reads the whole stream, and appends after what it finds.
    let other = backend.reopen(&store);
    let (lines, _) = other.read_log(&stream, 0, everything).await.expect("read");
    assert_eq!(lines, b"one\ntwo\nthree\n");
    other
        .append_log(&stream, b"four\n".to_vec())
        .await
        .expect("append");
    let (lines, _) = store
        .read_log(&stream, after_three, everything)
        .await
        .expect("read");
    assert_eq!(lines, b"four\n");
    // The first writer appends again after the other's line: nothing is overwritten.
    store
        .append_log(&stream, b"five\n".to_vec())
        .await
        .expect("append");
    let (lines, _) = other.read_log(&stream, 0, everything).await.expect("read");
    assert_eq!(lines, b"one\ntwo\nthree\nfour\nfive\n");
}

async fn log_streams_are_separate<B: Backend>(backend: B) {
    let store = backend.run("separate");
    store.create(PLAN, b"state-1").await.expect("create");
    let streams = [
        LogStream::new("a", 1),
        LogStream::new("a", 2),
        LogStream::new("a.1", 1),
        LogStream::new("A", 1),
        LogStream::new("a/b", 1),
        LogStream::new("a:b", 1),
        LogStream::new("a.b", 1),
    ];
    for (i, stream) in streams.iter().enumerate() {
        store
            .append_log(stream, format!("line {i}\n").into_bytes())
            .await
            .expect("append");
    }
    let other = backend.reopen(&store);
    for (i, stream) in streams.iter().enumerate() {
        let (lines, _) = other.read_log(stream, 0, usize::MAX).await.expect("read");
        assert_eq!(
            String::from_utf8_lossy(&lines),
            format!("line {i}\n"),
            "{}",
            stream.key()
        );
    }
}

async fn a_log_read_keeps_to_the_newest_lines_within_its_limit<B: Backend>(backend: B) {
    let store = backend.run("limit");
    store.create(PLAN, b"state-1").await.expect("create");
    let stream = LogStream::new("chatty", 1);
    for i in 0..10 {
        // Lines of 100 bytes, one append each (one chunk each on S3).
        let line = format!("{i:02}{}\n", "x".repeat(97));
        store
            .append_log(&stream, line.into_bytes())
            .await
            .expect("append");
    }
    let (lines, position) = store.read_log(&stream, 0, 250).await.expect("read");
    let text = String::from_utf8_lossy(&lines);
    let numbers: Vec<&str> = text.lines().map(|l| &l[..2]).collect();
    assert_eq!(numbers, vec!["08", "09"], "only whole lines, the newest");
    assert_eq!(
        store.read_log(&stream, position, 250).await.expect("read"),
        (Vec::new(), position),
        "the position is the stream's end"
    );
}

// ---- the stores ----

struct Memory {
    leases: bool,
}

async fn memory() -> Option<Memory> {
    Some(Memory { leases: false })
}

async fn memory_with_leases() -> Option<Memory> {
    Some(Memory { leases: true })
}

impl Backend for Memory {
    type Store = MemoryStore;
    fn leases(&self) -> bool {
        self.leases
    }
    /// A memory store holds one run, so a fresh one is a run of any id.
    fn run(&self, _run_id: &str) -> MemoryStore {
        if self.leases {
            MemoryStore::with_leases()
        } else {
            MemoryStore::new()
        }
    }
    fn reopen(&self, store: &MemoryStore) -> MemoryStore {
        store.clone()
    }
}

struct Local {
    root: tempfile::TempDir,
}

async fn local() -> Option<Local> {
    Some(Local {
        root: tempfile::tempdir().expect("tempdir"),
    })
}

impl Backend for Local {
    type Store = LocalStore;
    fn leases(&self) -> bool {
        false
    }
    fn run(&self, run_id: &str) -> LocalStore {
        LocalStore::in_root(self.root.path(), run_id)
    }
    fn reopen(&self, store: &LocalStore) -> LocalStore {
        LocalStore::new(store.dir())
    }
}

/// A fresh versioned bucket on moto.
pub(crate) struct S3 {
    pub(crate) client: aws_sdk_s3::Client,
    pub(crate) bucket: String,
}

/// The moto endpoint, or `None` to skip. In CI a missing endpoint is a failure.
fn endpoint() -> Option<String> {
    match std::env::var("BATON_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "BATON_TEST_AWS_ENDPOINT is not set: run the tests with scripts/test, which starts moto"
            );
            eprintln!("skipping: no AWS emulator (run scripts/test)");
            None
        }
    }
}

pub(crate) async fn s3() -> Option<S3> {
    let endpoint = endpoint()?;
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .force_path_style(true)
            .build(),
    );
    static BUCKETS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let bucket = format!(
        "contract-{}-{}-{:x}",
        std::process::id(),
        BUCKETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    client
        .put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(enabled)
        .send()
        .await
        .expect("versioning");
    Some(S3 { client, bucket })
}

impl Backend for S3 {
    type Store = S3Store;
    fn leases(&self) -> bool {
        true
    }
    fn run(&self, run_id: &str) -> S3Store {
        S3Store::in_prefix(self.client.clone(), &self.bucket, "baton", run_id)
    }
    fn reopen(&self, store: &S3Store) -> S3Store {
        S3Store::new(store.client().clone(), store.bucket(), store.run_prefix())
    }
}

// ---- every property on every store ----

fn check<B: Backend, P: Future<Output = ()>>(
    backend: impl Future<Output = Option<B>>,
    property: impl FnOnce(B) -> P,
) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            if let Some(backend) = backend.await {
                property(backend).await;
            }
        });
}

macro_rules! contract {
    ($($store:ident: $backend:expr;)*) => {$(
        mod $store {
            contract!(@properties $backend;
                creates_a_run_once,
                a_missing_run_is_not_found,
                saves_only_over_the_newest_version,
                a_written_document_is_saved_as_if_given_whole,
                lists_versions_oldest_first_with_their_sizes,
                an_unknown_version_is_refused,
                drivers_exclude_each_other,
                a_log_stream_appends_and_reads_from_a_position,
                log_streams_are_separate,
                a_log_read_keeps_to_the_newest_lines_within_its_limit,
            );
        }
    )*};
    (@properties $backend:expr; $($property:ident,)*) => {$(
        #[test]
        fn $property() {
            super::check($backend, super::$property);
        }
    )*};
}

contract! {
    memory: super::memory();
    memory_with_leases: super::memory_with_leases();
    local: super::local();
    s3: super::s3();
}
