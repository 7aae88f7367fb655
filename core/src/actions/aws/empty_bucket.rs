//! `aws.empty_bucket`: deletes every object version and delete marker, in batches across ticks.

use std::time::Duration;

use serde::Deserialize;

use super::AccountId;
use crate::actions::{Mode, Schema, TypeSpec};

/// The `aws.empty_bucket` type.
pub struct EmptyBucket;

impl Schema for EmptyBucket {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.empty_bucket",
        mode: Mode::Async,
        poll_interval: Duration::from_secs(1),
        can_cancel: true,
        replay_safe: true,
    };
    type Params = Params;
}

/// Params of `aws.empty_bucket`.
#[allow(missing_docs)] // S3's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub bucket: String,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(feature = "aws")]
mod calls {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    use aws_sdk_s3::Client;
    use serde_json::Value;

    use super::{EmptyBucket, Params};
    use crate::actions::{
        Behaviour, CancelError, CheckRequest, Env, LogSink, Outcome, Schema, StartRequest,
    };
    use crate::aws::{code, describe, retryable, Aws};
    use crate::log::Level;

    /// Delete batches per call: bounded so one check stays well inside a tick's time budget.
    const BATCHES_PER_CALL: usize = 5;

    impl Behaviour for EmptyBucket {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => step(aws, &params, &Value::Null, &request.log).await,
                Err(outcome) => outcome,
            }
        }

        async fn check(env: &Env, params: Params, request: &CheckRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => step(aws, &params, &request.handle, &request.log).await,
                Err(outcome) => outcome,
            }
        }

        /// Stopping between batches is enough: what was deleted stays deleted.
        async fn cancel(
            _env: &Env,
            _params: Params,
            _request: &CheckRequest,
        ) -> Result<(), CancelError> {
            Ok(())
        }
    }

    /// Deletes up to a few batches of 1,000 versions; `Running` until the bucket is empty.
    async fn step(aws: &Aws, p: &Params, handle: &Value, log: &LogSink) -> Outcome {
        let client = aws.s3(&p.target(aws)).await;
        let mut deleted = handle.get("deleted").and_then(Value::as_u64).unwrap_or(0);
        for _ in 0..BATCHES_PER_CALL {
            let objects = match next_batch(&client, p, log).await {
                Ok(Some(objects)) => objects,
                Ok(None) => return Outcome::complete(),
                Err(outcome) => return outcome,
            };
            if objects.is_empty() {
                log.send(
                    Level::Info,
                    format!("bucket {} is empty ({deleted} versions deleted)", p.bucket),
                );
                let mut outputs = serde_json::Map::new();
                outputs.insert("deleted".into(), deleted.into());
                return Outcome::Complete { outputs };
            }
            match delete(&client, p, objects).await {
                Ok(count) => deleted += count,
                Err(outcome) => return outcome,
            }
        }
        log.send(Level::Info, format!("deleted {deleted} versions so far"));
        Outcome::Running {
            handle: serde_json::json!({ "deleted": deleted }),
            check_after: EmptyBucket::SPEC.poll_interval,
        }
    }

    /// Up to 1,000 versions and delete markers; `None` when the bucket does not exist.
    async fn next_batch(
        client: &Client,
        p: &Params,
        log: &LogSink,
    ) -> Result<Option<Vec<ObjectIdentifier>>, Outcome> {
        let listing = match client
            .list_object_versions()
            .bucket(&p.bucket)
            .max_keys(1000)
            .send()
            .await
        {
            Ok(listing) => listing,
            Err(e) if code(&e).as_deref() == Some("NoSuchBucket") => {
                log.send(
                    Level::Info,
                    format!("bucket {} does not exist; nothing to empty", p.bucket),
                );
                return Ok(None);
            }
            Err(e) => {
                return Err(Outcome::Failed {
                    error: format!("ListObjectVersions {}: {}", p.bucket, describe(&e)),
                    retryable: retryable(&e),
                })
            }
        };
        let identifier = |key: Option<&str>, version: Option<&str>| {
            ObjectIdentifier::builder()
                .key(key?)
                .set_version_id(version.map(str::to_string))
                .build()
                .ok()
        };
        let versions = listing
            .versions()
            .iter()
            .filter_map(|v| identifier(v.key(), v.version_id()));
        let markers = listing
            .delete_markers()
            .iter()
            .filter_map(|m| identifier(m.key(), m.version_id()));
        Ok(Some(versions.chain(markers).collect()))
    }

    /// Deletes one batch; returns how many versions went.
    async fn delete(
        client: &Client,
        p: &Params,
        objects: Vec<ObjectIdentifier>,
    ) -> Result<u64, Outcome> {
        let count = objects.len() as u64;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| Outcome::failed(format!("building the delete request: {e}")))?;
        match client
            .delete_objects()
            .bucket(&p.bucket)
            .delete(delete)
            .send()
            .await
        {
            Ok(out) if !out.errors().is_empty() => {
                let first = &out.errors()[0];
                Err(Outcome::Failed {
                    error: format!(
                        "could not delete {} versions, e.g. {}: {}",
                        out.errors().len(),
                        first.key().unwrap_or("?"),
                        first.message().unwrap_or("?")
                    ),
                    retryable: true,
                })
            }
            Ok(_) => Ok(count),
            Err(e) => Err(Outcome::Failed {
                error: format!("DeleteObjects {}: {}", p.bucket, describe(&e)),
                retryable: retryable(&e),
            }),
        }
    }
}
