//! The S3 store: `s3://<bucket>/<prefix>/runs/<run-id>/actions.json` (written once) and
//! `state.json`, one S3 version per state version. The run is created with `If-None-Match: *`
//! and every save is a `PutObject` with `If-Match: <etag of the version loaded>`, so a writer
//! that lost a race gets a conflict and overwrites nothing. The bucket must be versioned.
//!
//! Live log streams are small objects `logs/<stream>/<chunk>.jsonl`, one per batch the driver
//! appends (at most one a second per stream), numbered so that listing order is append order;
//! readers list after the last chunk they read. Chunks are written with `If-None-Match: *`, so
//! two writers never overwrite each other's.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::BucketVersioningStatus;
use aws_sdk_s3::Client;

use super::{DriverGuard, LogStream, RunStore, StoreError, VersionInfo};
use crate::aws::{code, describe};

const PLAN_KEY: &str = "actions.json";
const STATE_KEY: &str = "state.json";

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
    /// ETags of versions this process has seen, for `If-Match` on the next save.
    etags: Mutex<HashMap<String, String>>,
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
            etags: Mutex::new(HashMap::new()),
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

    fn remember(&self, version: &str, etag: Option<&str>) {
        if let (Some(etag), Ok(mut etags)) = (etag, self.etags.lock()) {
            etags.insert(version.to_string(), etag.to_string());
        }
    }

    fn etag_of(&self, version: &str) -> Option<String> {
        self.etags.lock().ok()?.get(version).cloned()
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
        self.remember(&version_id, out.e_tag());
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Remote {
                locator: self.locator(),
                message: format!("reading {name}: {e}"),
            })?
            .into_bytes();
        // Without a copy where the body arrived in one piece (a 12 MB state at 100k actions).
        Ok((Vec::from(bytes), version_id))
    }
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
    /// The newest version of `name`, if it is exactly this write.
    async fn landed(&self, name: &str, sha: &str, parent: &str) -> Option<String> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .send()
            .await
            .ok()?;
        let meta = head.metadata()?;
        if meta.get(META_SHA)? != sha || meta.get(META_PARENT)? != parent {
            return None;
        }
        let version = head.version_id().unwrap_or("null").to_string();
        self.remember(&version, head.e_tag());
        tracing::info!(object = name, version = %version, "a write whose answer was lost had landed");
        Some(version)
    }
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
        let mut chunks = Vec::new();
        let mut key_marker = (after > 0).then(|| chunk_key(prefix, after));
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
                .map_err(|e| self.remote("ListObjectVersions", &e))?;
            for object in page.versions() {
                let seq = object
                    .key()
                    .and_then(|k| k.strip_prefix(prefix))
                    .and_then(|name| name.strip_suffix(".jsonl"))
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
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Remote {
                locator: self.locator(),
                message: format!("reading {key}: {e}"),
            })?
            .into_bytes();
        Ok(Vec::from(bytes))
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
        for (name, bytes) in [(PLAN_KEY, plan), (STATE_KEY, state)] {
            let sha = crate::util::sha256_hex(bytes);
            let result = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(self.key(name))
                .content_type("application/json")
                .if_none_match("*")
                .metadata(META_SHA, &sha)
                .metadata(META_PARENT, NO_PARENT)
                .body(ByteStream::from(bytes.to_vec()))
                .send()
                .await;
            match result {
                Ok(out) if name == STATE_KEY => {
                    let version = out.version_id().unwrap_or("null").to_string();
                    self.remember(&version, out.e_tag());
                    return Ok(version);
                }
                Ok(_) => {}
                Err(e) if precondition_failed(code(&e).as_deref()) => {
                    match self.landed(name, &sha, NO_PARENT).await {
                        Some(version) if name == STATE_KEY => return Ok(version),
                        Some(_) => {}
                        None => {
                            return Err(StoreError::AlreadyExists {
                                locator: self.locator(),
                            })
                        }
                    }
                }
                Err(e) => return Err(self.remote("PutObject", &e)),
            }
        }
        Err(StoreError::Remote {
            locator: self.locator(),
            message: "state was not written".into(),
        })
    }

    async fn load_plan(&self) -> Result<Vec<u8>, StoreError> {
        Ok(self.get(PLAN_KEY, None).await?.0)
    }

    async fn load_latest(&self) -> Result<(Vec<u8>, String), StoreError> {
        self.get(STATE_KEY, None).await
    }

    async fn load_version(&self, version: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.get(STATE_KEY, Some(version)).await?.0)
    }

    async fn save(&self, state: Vec<u8>, expected: &str) -> Result<String, StoreError> {
        let etag = match self.etag_of(expected) {
            Some(etag) => etag,
            None => {
                let head = self
                    .client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(self.key(STATE_KEY))
                    .version_id(expected)
                    .send()
                    .await
                    .map_err(|e| self.remote("HeadObject", &e))?;
                head.e_tag().unwrap_or_default().to_string()
            }
        };
        let sha = crate::util::sha256_hex(&state);
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(STATE_KEY))
            .content_type("application/json")
            .if_match(&etag)
            .metadata(META_SHA, &sha)
            .metadata(META_PARENT, expected)
            .body(ByteStream::from(state))
            .send()
            .await;
        match result {
            Ok(out) => {
                let version = out.version_id().unwrap_or("null").to_string();
                self.remember(&version, out.e_tag());
                Ok(version)
            }
            Err(e) if precondition_failed(code(&e).as_deref()) => {
                if let Some(version) = self.landed(STATE_KEY, &sha, expected).await {
                    return Ok(version);
                }
                Err(StoreError::Conflict {
                    locator: self.locator(),
                    expected: expected.to_string(),
                    actual: self.head().await.unwrap_or_else(|_| "unknown".into()),
                })
            }
            Err(e) => Err(self.remote("PutObject", &e)),
        }
    }

    async fn list_versions(&self) -> Result<Vec<VersionInfo>, StoreError> {
        let key = self.key(STATE_KEY);
        let mut versions = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&key)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| self.remote("ListObjectVersions", &e))?;
            for v in page.versions() {
                if v.key() == Some(key.as_str()) {
                    versions.push(VersionInfo {
                        version: v.version_id().unwrap_or("null").to_string(),
                        size: v.size().unwrap_or(0) as u64,
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
        }
        // S3 lists a key's versions newest first (timestamps tie within a second); baton lists
        // oldest first.
        versions.reverse();
        Ok(versions)
    }

    async fn head(&self) -> Result<String, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(STATE_KEY))
            .send()
            .await
        {
            Ok(out) => {
                let version = out.version_id().unwrap_or("null").to_string();
                self.remember(&version, out.e_tag());
                Ok(version)
            }
            Err(e)
                if matches!(code(&e).as_deref(), Some("NotFound" | "NoSuchKey"))
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Err(StoreError::NotFound {
                    locator: self.locator(),
                })
            }
            Err(e) if denied(&e) => Err(self.denied("HeadObject state.json", &e)),
            Err(e) => Err(self.remote("HeadObject", &e)),
        }
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
