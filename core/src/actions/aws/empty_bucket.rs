//! `aws.empty_bucket`: deletes every object version and delete marker, in batches across ticks.

use std::time::Duration;

use serde::Deserialize;

use super::AccountId;
use crate::actions::{Mode, TypeSpec};

pub const SPEC: TypeSpec = TypeSpec {
    name: "aws.empty_bucket",
    mode: Mode::Async,
    poll_interval: Duration::from_secs(1),
    can_cancel: true,
    replay_safe: true,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub bucket: String,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

/// Delete batches per call: bounded so one check stays well inside a tick's time budget.
#[cfg(feature = "aws")]
const BATCHES_PER_CALL: usize = 5;

/// Deletes up to a few batches of 1,000 versions; `Running` until the bucket is empty.
#[cfg(feature = "aws")]
pub async fn step(
    aws: &crate::aws::Aws,
    params: &serde_json::Value,
    handle: &serde_json::Value,
    log: &crate::executor::LogSink,
) -> crate::executor::Outcome {
    use crate::executor::Outcome;
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let p: Params = match crate::actions::parse(params) {
        Ok(p) => p,
        Err(problem) => {
            return Outcome::failed(format!("params.{}: {}", problem.path, problem.message))
        }
    };
    let client = super::client_or_fail!(aws.s3(&p.target(aws)));
    let mut deleted = handle
        .get("deleted")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    for _ in 0..BATCHES_PER_CALL {
        let listing = match client
            .list_object_versions()
            .bucket(&p.bucket)
            .max_keys(1000)
            .send()
            .await
        {
            Ok(listing) => listing,
            Err(e) if crate::aws::code(&e).as_deref() == Some("NoSuchBucket") => {
                log.send(
                    crate::state::Level::Info,
                    format!("bucket {} does not exist; nothing to empty", p.bucket),
                );
                return Outcome::complete();
            }
            Err(e) => {
                return Outcome::Failed {
                    error: format!(
                        "ListObjectVersions {}: {}",
                        p.bucket,
                        crate::aws::describe(&e)
                    ),
                    retryable: crate::aws::retryable(&e),
                }
            }
        };
        let objects: Vec<ObjectIdentifier> = listing
            .versions()
            .iter()
            .filter_map(|v| {
                ObjectIdentifier::builder()
                    .key(v.key()?)
                    .set_version_id(v.version_id().map(str::to_string))
                    .build()
                    .ok()
            })
            .chain(listing.delete_markers().iter().filter_map(|m| {
                ObjectIdentifier::builder()
                    .key(m.key()?)
                    .set_version_id(m.version_id().map(str::to_string))
                    .build()
                    .ok()
            }))
            .collect();
        if objects.is_empty() {
            log.send(
                crate::state::Level::Info,
                format!("bucket {} is empty ({deleted} versions deleted)", p.bucket),
            );
            let mut outputs = serde_json::Map::new();
            outputs.insert("deleted".into(), deleted.into());
            return Outcome::Complete { outputs };
        }
        let count = objects.len() as u64;
        let delete = match Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
        {
            Ok(delete) => delete,
            Err(e) => return Outcome::failed(format!("building the delete request: {e}")),
        };
        match client
            .delete_objects()
            .bucket(&p.bucket)
            .delete(delete)
            .send()
            .await
        {
            Ok(out) if !out.errors().is_empty() => {
                let first = &out.errors()[0];
                return Outcome::Failed {
                    error: format!(
                        "could not delete {} versions, e.g. {}: {}",
                        out.errors().len(),
                        first.key().unwrap_or("?"),
                        first.message().unwrap_or("?")
                    ),
                    retryable: true,
                };
            }
            Ok(_) => deleted += count,
            Err(e) => {
                return Outcome::Failed {
                    error: format!("DeleteObjects {}: {}", p.bucket, crate::aws::describe(&e)),
                    retryable: crate::aws::retryable(&e),
                }
            }
        }
    }
    log.send(
        crate::state::Level::Info,
        format!("deleted {deleted} versions so far"),
    );
    Outcome::Running {
        handle: serde_json::json!({ "deleted": deleted }),
        check_after: SPEC.poll_interval,
    }
}
