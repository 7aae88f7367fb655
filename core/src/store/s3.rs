//! The S3 store: `s3://<bucket>/<prefix>/runs/<run-id>/actions.json` (written once) and
//! `state/<version>.json`, one object per state version (a checkpoint or a journal delta, see
//! `core/src/journal.rs`), numbered from 1 with ten digits. Every object is written once, with
//! `If-None-Match: *`: two writers that both read version N race for N+1 and exactly one
//! wins, so a writer that lost gets a conflict and overwrites nothing. `checkpoint.json` names
//! the newest checkpoint, where finding the newest version starts listing. The bucket must be
//! versioned (deleting a run's state then keeps what it deleted).
//!
//! Live log streams are small objects `logs/<stream>/<chunk>.jsonl`, one per batch the driver
//! appends (at most one a second per stream), numbered so that listing order is append order;
//! readers list after the last chunk they read. Chunks are written with `If-None-Match: *`, so
//! two writers never overwrite each other's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::BucketVersioningStatus;
use aws_sdk_s3::Client;

use super::{DriverGuard, LogStream, RunStore, StoreError, VersionInfo};
use crate::aws::{code, describe};

const PLAN_KEY: &str = "actions.json";
/// Where an earlier baton kept the state (one versioned object).
const LEGACY_STATE_KEY: &str = "state.json";
/// State versions: `state/<ten digits>.json`, each a checkpoint or a journal delta.
const STATE_DIR: &str = "state/";
/// The newest checkpoint's version, where finding the newest version starts.
const CHECKPOINT_KEY: &str = "checkpoint.json";

/// `s3://bucket/prefix` split into its parts.
pub fn parse_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// A run in a versioned S3 bucket.
#[derive(Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// `<prefix>/runs/<run-id>` (no leading or trailing slash).
    run_prefix: String,
    /// The newest state version this process has seen: versions are never removed, so the
    /// newest is at or after it.
    known_head: AtomicU64,
    /// The next chunk number of each log stream this process appends to.
    next_chunks: Mutex<HashMap<LogStream, u64>>,
}

impl S3Store {
    /// The run at `s3://bucket/<run_prefix>`.
    pub fn new(client: Client, bucket: &str, run_prefix: &str) -> Self {
        S3Store {
            client,
            bucket: bucket.to_string(),
            run_prefix: run_prefix.trim_matches('/').to_string(),
            known_head: AtomicU64::new(0),
            next_chunks: Mutex::new(HashMap::new()),
        }
    }

    /// The run `run_id` under `s3://bucket/prefix`.
    pub fn in_prefix(client: Client, bucket: &str, prefix: &str, run_id: &str) -> Self {
        let prefix = prefix.trim_matches('/');
        let run_prefix = if prefix.is_empty() {
            format!("runs/{run_id}")
        } else {
            format!("{prefix}/runs/{run_id}")
        };
        S3Store::new(client, bucket, &run_prefix)
    }

    /// The bucket the run is in.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The run's key prefix, `<prefix>/runs/<run-id>`.
    pub fn run_prefix(&self) -> &str {
        &self.run_prefix
    }

    /// The client the store makes its calls with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.run_prefix)
    }

    fn remote<E, R>(
        &self,
        what: &str,
        err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> StoreError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        StoreError::Remote {
            locator: self.locator(),
            message: format!("{what}: {}", describe(err)),
        }
    }

    fn denied<E, R>(
        &self,
        what: &str,
        err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> StoreError
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        StoreError::Denied {
            locator: self.locator(),
            message: format!("{what}: {}", describe(err)),
        }
    }

    /// Refuses buckets without versioning: baton keeps every state version.
    pub(crate) async fn check_versioning(&self) -> Result<(), StoreError> {
        let status = match self
            .client
            .get_bucket_versioning()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => out.status().map(|s| s.as_str().to_string()),
            // Some S3-compatible servers (moto among them) wrap the answer in a root element the
            // SDK refuses; the status inside is still authoritative.
            Err(e) => match e
                .raw_response()
                .and_then(|r| r.body().bytes())
                .map(String::from_utf8_lossy)
            {
                Some(body)
                    if body.contains("VersioningConfiguration")
                        || body.contains("BucketVersioning") =>
                {
                    body.split_once("<Status>")
                        .and_then(|(_, rest)| rest.split_once("</Status>"))
                        .map(|(status, _)| status.to_string())
                }
                _ => return Err(self.remote("GetBucketVersioning", &e)),
            },
        };
        if status.as_deref() != Some(BucketVersioningStatus::Enabled.as_str()) {
            return Err(StoreError::Remote {
                locator: self.locator(),
                message: format!(
                    "bucket {} does not have versioning enabled; baton keeps every state version there. Enable it: \
                     aws s3api put-bucket-versioning --bucket {} --versioning-configuration Status=Enabled",
                    self.bucket, self.bucket
                ),
            });
        }
        Ok(())
    }

    /// Uploads a file next to the run (e.g. a CloudFormation template) under a key named by
    /// the sha256 of its bytes, `artifacts/<sha256>/<name>`; returns the key and the S3 version
    /// written, so the run refers to exactly these bytes. Keys of different bytes never collide
    /// whatever the files and actions are called, and nothing is overwritten (`If-None-Match`):
    /// the same bytes already there are not uploaded again (their version is returned), so
    /// creating a run again after a failure part-way writes the same plan.
    pub async fn put_artifact(
        &self,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<(String, Option<String>), StoreError> {
        let sha = crate::util::sha256_hex(&bytes);
        let key = self.key(&format!("artifacts/{sha}/{}", artifact_name(name)));
        if let Some(version) = self.artifact_there(&key, &sha).await? {
            return Ok((key, version));
        }
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .if_none_match("*")
            .metadata(META_SHA, &sha)
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match result {
            Ok(out) => Ok((key, out.version_id().map(str::to_string))),
            // Another upload of these bytes won the race (or our own write's answer was lost).
            Err(e) if precondition_failed(code(&e).as_deref()) => {
                match self.artifact_there(&key, &sha).await? {
                    Some(version) => Ok((key, version)),
                    None => Err(self.remote("PutObject", &e)),
                }
            }
            Err(e) => Err(self.remote("PutObject", &e)),
        }
    }

    /// `Some(version)` when `key` holds the bytes whose sha256 is `sha`; `None` when it is
    /// free. An object there with other bytes (written by something other than baton) is an
    /// error: it is never overwritten.
    async fn artifact_there(
        &self,
        key: &str,
        sha: &str,
    ) -> Result<Option<Option<String>>, StoreError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match head {
            Ok(head)
                if head
                    .metadata()
                    .and_then(|m| m.get(META_SHA))
                    .map(String::as_str)
                    == Some(sha) =>
            {
                Ok(Some(head.version_id().map(str::to_string)))
            }
            Ok(_) => Err(StoreError::Remote {
                locator: self.locator(),
                message: format!(
                    "s3://{}/{key} already holds other bytes than its name says; baton does not \
                     overwrite it (remove it, or create the run under another id)",
                    self.bucket
                ),
            }),
            Err(_) => Ok(None),
        }
    }

    async fn get(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<(Vec<u8>, String), StoreError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .set_version_id(version.map(str::to_string))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) if matches!(code(&e).as_deref(), Some("NoSuchKey" | "NoSuchBucket")) => {
                return Err(StoreError::NotFound {
                    locator: self.locator(),
                })
            }
            Err(e) if denied(&e) => return Err(self.denied(&format!("GetObject {name}"), &e)),
            Err(e)
                if matches!(
                    code(&e).as_deref(),
                    Some("NoSuchVersion" | "InvalidArgument")
                ) && version.is_some() =>
            {
                return Err(StoreError::NoSuchVersion {
                    locator: self.locator(),
                    version: version.unwrap_or_default().into(),
                })
            }
            Err(e) => return Err(self.remote("GetObject", &e)),
        };
        let version_id = out.version_id().unwrap_or("null").to_string();
        let bytes = body_bytes(out.body, out.content_length)
            .await
            .map_err(|e| StoreError::Remote {
                locator: self.locator(),
                message: format!("reading {name}: {e}"),
            })?;
        Ok((bytes, version_id))
    }
}

/// The most an object's stated length may reserve up front; a longer body still arrives whole.
const MOST_RESERVED: usize = 256 << 20;

/// An object's body in one buffer, copied chunk by chunk as it arrives. Collecting the body
/// first and then joining its chunks held it twice: 24 MB at the peak of a Lambda tick of a
/// 100k-action run, whose checkpoint is 12 MB.
async fn body_bytes(
    mut body: ByteStream,
    length: Option<i64>,
) -> Result<Vec<u8>, aws_smithy_types::byte_stream::error::Error> {
    let reserve = length
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
        .min(MOST_RESERVED);
    let mut bytes = Vec::with_capacity(reserve);
    while let Some(chunk) = body.try_next().await? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A file name as it may appear in an artifact's key and URL: letters, digits, `.`, `-` and
/// `_` (anything else becomes `_`), at most 100 characters. Only a label for people: the
/// sha256 before it is what tells artifacts apart.
fn artifact_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    match cleaned.trim_start_matches('.') {
        "" => "template".to_string(),
        _ => cleaned,
    }
}

struct NoGuard;
impl DriverGuard for NoGuard {}

/// Metadata on every object baton writes: the body's sha256 and the version it replaced. A
/// write whose answer was lost (the connection dropped after S3 stored it, and the SDK's retry
/// then failed its own precondition) is recognised as ours instead of being reported as a
/// conflict or an existing run.
const META_SHA: &str = "baton-sha256";
const META_PARENT: &str = "baton-parent";
/// The parent of the objects a create writes.
const NO_PARENT: &str = "none";

impl S3Store {
    /// Whether the newest version of `name` is exactly this write.
    async fn landed(&self, name: &str, sha: &str, parent: &str) -> bool {
        let Ok(head) = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .send()
            .await
        else {
            return false;
        };
        let ours = head.metadata().is_some_and(|meta| {
            meta.get(META_SHA).is_some_and(|s| s == sha)
                && meta.get(META_PARENT).is_some_and(|p| p == parent)
        });
        if ours {
            tracing::info!(object = name, "a write whose answer was lost had landed");
        }
        ours
    }

    /// Writes `name` unless it exists (`If-None-Match: *`); `false` if someone else's is there.
    async fn put_new(&self, name: &str, bytes: Vec<u8>, parent: &str) -> Result<bool, StoreError> {
        let sha = crate::util::sha256_hex(&bytes);
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .content_type("application/json")
            .if_none_match("*")
            .metadata(META_SHA, &sha)
            .metadata(META_PARENT, parent)
            .body(ByteStream::from(bytes))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if precondition_failed(code(&e).as_deref()) => {
                Ok(self.landed(name, &sha, parent).await)
            }
            Err(e) if denied(&e) => Err(self.denied(&format!("PutObject {name}"), &e)),
            Err(e) => Err(self.remote("PutObject", &e)),
        }
    }

    fn version_number(&self, version: &str) -> Result<u64, StoreError> {
        version.parse().map_err(|_| StoreError::NoSuchVersion {
            locator: self.locator(),
            version: version.to_string(),
        })
    }

    fn known_head(&self) -> u64 {
        self.known_head.load(Ordering::Relaxed)
    }

    fn saw(&self, version: u64) {
        self.known_head.fetch_max(version, Ordering::Relaxed);
    }

    /// Records the newest checkpoint, where finding the newest version starts listing. Only a
    /// hint: a lost write, or a slower writer's older one, makes the listing longer, not wrong.
    async fn point_to_checkpoint(&self, version: u64) {
        let body = format!("{{\"version\":{version}}}");
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(CHECKPOINT_KEY))
            .content_type("application/json")
            .body(ByteStream::from(body.into_bytes()))
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!("could not record checkpoint {version}: {}", describe(&e));
        }
    }

    /// The newest state version: listed after the newest this process saw or, in a new
    /// process, after the newest checkpoint.
    async fn head_seq(&self) -> Result<u64, StoreError> {
        let mut start = self.known_head();
        if start == 0 {
            #[derive(serde::Deserialize)]
            struct Pointer {
                version: u64,
            }
            if let Ok((bytes, _)) = self.get(CHECKPOINT_KEY, None).await {
                start = serde_json::from_slice::<Pointer>(&bytes).map_or(0, |p| p.version);
            }
        }
        let after = self
            .list_numbered(&self.key(STATE_DIR), ".json", start)
            .await?;
        let head = after.last().map_or(start, |&(seq, _)| seq);
        let head = if head == 0 {
            self.adopt_legacy_state().await?
        } else {
            head
        };
        self.saw(head);
        Ok(head)
    }

    /// A run stored by an earlier baton keeps its state in one versioned `state.json`: its
    /// newest version becomes the journal's first checkpoint (older ones stay as S3 versions
    /// of `state.json`). Without either, there is no run (or no right to read it).
    async fn adopt_legacy_state(&self) -> Result<u64, StoreError> {
        let (bytes, _) = self.get(LEGACY_STATE_KEY, None).await?;
        if crate::journal::is_delta(&bytes) {
            return Err(StoreError::Corrupt {
                locator: self.locator(),
                message: format!("{LEGACY_STATE_KEY} holds a journal delta, not a state"),
            });
        }
        self.put_new(&state_name(1), bytes, NO_PARENT).await?;
        tracing::info!(run = %self.locator(), "state.json of an earlier baton became state version 1");
        self.point_to_checkpoint(1).await;
        Ok(1)
    }
}

/// State version `seq`'s object: ten digits, so that keys sort by number.
fn state_name(seq: u64) -> String {
    format!("{STATE_DIR}{seq:010}.json")
}

/// A stream's chunk `seq` under `prefix` (`…/logs/<stream>/`): ten digits, so that keys sort
/// by number.
fn chunk_key(prefix: &str, seq: u64) -> String {
    format!("{prefix}{seq:010}.jsonl")
}

/// Attempts at appending a chunk when other writers keep taking the next number.
const APPEND_ATTEMPTS: usize = 3;

impl S3Store {
    fn log_prefix(&self, stream: &LogStream) -> String {
        self.key(&format!("logs/{}/", stream.key()))
    }

    /// The numbers and sizes of a stream's chunks after chunk `after` (0: all), in order.
    ///
    /// Listed as versions: that needs `s3:ListBucketVersions`, which listing state versions
    /// needs anyway, and not `s3:ListBucket` (the runner's role has only the former). Chunks
    /// are written once, so each has one version.
    async fn log_chunks(&self, prefix: &str, after: u64) -> Result<Vec<(u64, u64)>, StoreError> {
        self.list_numbered(prefix, ".jsonl", after).await
    }

    /// The numbers and sizes of the objects `<prefix><ten digits><suffix>` numbered after
    /// `after` (0: all), in order (log chunks, state versions).
    ///
    /// Listed as versions: that needs `s3:ListBucketVersions` and not `s3:ListBucket` (the
    /// runner's role has only the former). These objects are written once, so each has one
    /// version.
    async fn list_numbered(
        &self,
        prefix: &str,
        suffix: &str,
        after: u64,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let mut chunks = Vec::new();
        let mut key_marker = (after > 0).then(|| format!("{prefix}{after:010}{suffix}"));
        let mut version_marker = None;
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| match code(&e).as_deref() {
                    Some("NoSuchBucket") => StoreError::NotFound {
                        locator: self.locator(),
                    },
                    _ if denied(&e) => self.denied("ListObjectVersions", &e),
                    _ => self.remote("ListObjectVersions", &e),
                })?;
            for object in page.versions() {
                let seq = object
                    .key()
                    .and_then(|k| k.strip_prefix(prefix))
                    .and_then(|name| name.strip_suffix(suffix))
                    .and_then(|n| n.parse::<u64>().ok());
                if let Some(seq) = seq.filter(|&seq| seq > after) {
                    chunks.push((seq, object.size().unwrap_or(0).max(0) as u64));
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
        }
        chunks.sort_unstable();
        chunks.dedup_by_key(|(seq, _)| *seq);
        Ok(chunks)
    }

    async fn log_chunk(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.remote("GetObject", &e))?;
        body_bytes(out.body, out.content_length)
            .await
            .map_err(|e| StoreError::Remote {
                locator: self.locator(),
                message: format!("reading {key}: {e}"),
            })
    }

    fn next_chunk(&self, stream: &LogStream) -> Option<u64> {
        self.next_chunks.lock().ok()?.get(stream).copied()
    }

    fn set_next_chunk(&self, stream: &LogStream, next: Option<u64>) {
        if let Ok(mut chunks) = self.next_chunks.lock() {
            match next {
                Some(next) => chunks.insert(stream.clone(), next),
                None => chunks.remove(stream),
            };
        }
    }
}

/// S3 refused the caller (403): retrying cannot help.
fn denied<E>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    matches!(code(err).as_deref(), Some("AccessDenied" | "Forbidden"))
        || err
            .raw_response()
            .is_some_and(|r| r.status().as_u16() == 403)
}

fn precondition_failed(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("PreconditionFailed" | "ConditionalRequestConflict")
    )
}

impl RunStore for S3Store {
    fn locator(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.run_prefix)
    }

    async fn create(&self, plan: &[u8], state: &[u8]) -> Result<String, StoreError> {
        self.check_versioning().await?;
        if !self.put_new(PLAN_KEY, plan.to_vec(), NO_PARENT).await? {
            return Err(StoreError::AlreadyExists {
                locator: self.locator(),
            });
        }
        if !self
            .put_new(&state_name(1), state.to_vec(), NO_PARENT)
            .await?
        {
            return Err(StoreError::AlreadyExists {
                locator: self.locator(),
            });
        }
        self.saw(1);
        self.point_to_checkpoint(1).await;
        Ok("1".into())
    }

    async fn load_plan(&self) -> Result<Vec<u8>, StoreError> {
        Ok(self.get(PLAN_KEY, None).await?.0)
    }

    async fn load_latest(&self) -> Result<(Vec<u8>, String), StoreError> {
        let head = self.head_seq().await?;
        let bytes = self.load_version(&head.to_string()).await?;
        Ok((bytes, head.to_string()))
    }

    async fn load_version(&self, version: &str) -> Result<Vec<u8>, StoreError> {
        let seq = self.version_number(version)?;
        match self.get(&state_name(seq), None).await {
            Err(StoreError::NotFound { .. }) => Err(StoreError::NoSuchVersion {
                locator: self.locator(),
                version: version.into(),
            }),
            other => Ok(other?.0),
        }
    }

    async fn load_versions(&self, versions: &[String]) -> Result<Vec<Vec<u8>>, StoreError> {
        // One request each, all at once: a chain is a checkpoint and up to 63 small deltas,
        // and one after the other they would cost a round trip each.
        let mut tasks = tokio::task::JoinSet::new();
        for (slot, version) in versions.iter().enumerate() {
            let seq = self.version_number(version)?;
            let (client, bucket, key) = (
                self.client.clone(),
                self.bucket.clone(),
                self.key(&state_name(seq)),
            );
            tasks.spawn(async move {
                let result = client.get_object().bucket(bucket).key(&key).send().await;
                let body = match result {
                    Ok(out) => body_bytes(out.body, out.content_length)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(describe(&e)),
                };
                (slot, key, body)
            });
        }
        let mut documents = vec![Vec::new(); versions.len()];
        while let Some(joined) = tasks.join_next().await {
            let (slot, key, body) = joined.map_err(|e| StoreError::Remote {
                locator: self.locator(),
                message: format!("reading state versions: {e}"),
            })?;
            documents[slot] = body.map_err(|message| StoreError::Remote {
                locator: self.locator(),
                message: format!("GetObject {key}: {message}"),
            })?;
        }
        Ok(documents)
    }

    async fn save(&self, state: Vec<u8>, expected: &str) -> Result<String, StoreError> {
        let seq = self.version_number(expected)?;
        if self.known_head() < seq {
            // Not a version this process has seen: it must exist, or the new one would leave
            // a gap in the journal.
            self.load_version(expected).await?;
        }
        let next = seq.checked_add(1).ok_or_else(|| StoreError::Corrupt {
            locator: self.locator(),
            message: format!("state version {seq} is the last version number there can be"),
        })?;
        let checkpoint = !crate::journal::is_delta(&state);
        if !self.put_new(&state_name(next), state, expected).await? {
            return Err(StoreError::Conflict {
                locator: self.locator(),
                expected: expected.to_string(),
                actual: self.head().await.unwrap_or_else(|_| "unknown".into()),
            });
        }
        self.saw(next);
        if checkpoint {
            crate::fault::point("before_checkpoint_pointer");
            self.point_to_checkpoint(next).await;
        }
        Ok(next.to_string())
    }

    async fn list_versions(&self) -> Result<Vec<VersionInfo>, StoreError> {
        self.head_seq().await?;
        let versions = self.list_numbered(&self.key(STATE_DIR), ".json", 0).await?;
        Ok(versions
            .into_iter()
            .map(|(seq, size)| VersionInfo {
                version: seq.to_string(),
                size,
            })
            .collect())
    }

    async fn head(&self) -> Result<String, StoreError> {
        Ok(self.head_seq().await?.to_string())
    }

    fn needs_lease(&self) -> bool {
        true
    }

    async fn append_log(&self, stream: &LogStream, lines: Vec<u8>) -> Result<(), StoreError> {
        let prefix = self.log_prefix(stream);
        for _ in 0..APPEND_ATTEMPTS {
            // A stream this process has not written yet may have chunks from an earlier tick
            // of the same attempt (a check in another invocation, a replayed attempt).
            let seq = match self.next_chunk(stream) {
                Some(seq) => seq,
                None => self
                    .log_chunks(&prefix, 0)
                    .await?
                    .last()
                    .map_or(1, |(seq, _)| seq + 1),
            };
            let result = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(chunk_key(&prefix, seq))
                .content_type("application/x-ndjson")
                .if_none_match("*")
                .body(ByteStream::from(lines.clone()))
                .send()
                .await;
            match result {
                Ok(_) => {
                    self.set_next_chunk(stream, Some(seq + 1));
                    return Ok(());
                }
                // Someone else wrote that chunk: never overwrite it, count again.
                Err(e) if precondition_failed(code(&e).as_deref()) => {
                    self.set_next_chunk(stream, None);
                }
                Err(e) => return Err(self.remote("PutObject", &e)),
            }
        }
        Err(StoreError::Remote {
            locator: self.locator(),
            message: format!(
                "log stream {}: other writers keep taking the next chunk",
                stream.key()
            ),
        })
    }

    async fn read_log(
        &self,
        stream: &LogStream,
        from: u64,
        limit: usize,
    ) -> Result<(Vec<u8>, u64), StoreError> {
        let prefix = self.log_prefix(stream);
        let chunks = self.log_chunks(&prefix, from).await?;
        let Some(&(last, _)) = chunks.last() else {
            return Ok((Vec::new(), from));
        };
        // Only the newest chunks that hold `limit` bytes are fetched.
        let mut first = chunks.len();
        let mut total = 0u64;
        while first > 0 && total < limit as u64 {
            first -= 1;
            total += chunks[first].1;
        }
        let mut bytes = Vec::with_capacity(total as usize);
        for &(seq, _) in &chunks[first..] {
            bytes.extend(self.log_chunk(&chunk_key(&prefix, seq)).await?);
        }
        // Chunks hold whole lines; the oldest may reach past the limit.
        let start = crate::log_stream::window_start(bytes.len() as u64, 0, limit);
        let window = bytes.get(start as usize..).unwrap_or_default();
        let (lines, _) = crate::log_stream::complete_lines(window, start, 0);
        Ok((lines, last))
    }

    fn lock_driver(&self) -> Result<Box<dyn DriverGuard>, StoreError> {
        // Remote runs are driven by one Step Functions execution; every save is still a
        // compare-and-swap, so a second driver can never overwrite the first.
        Ok(Box::new(NoGuard))
    }
}
