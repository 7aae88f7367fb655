//! `aws.upload_context`: writes run variables and outputs (or a given `content`) as JSON to
//! `s3://bucket/key`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::AccountId;
use crate::actions::{Mode, RunView, Schema, TypeSpec};

/// The `aws.upload_context` type.
pub struct UploadContext;

impl Schema for UploadContext {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.upload_context",
        mode: Mode::Sync,
        poll_interval: Duration::ZERO,
        can_cancel: false,
        replay_safe: true,
    };
    type Params = Params;

    /// Without `content`, the run's vars and the outputs of the action's ancestors.
    fn prepare(mut params: Value, run: &dyn RunView) -> Value {
        if params.get("content").is_some() {
            return params;
        }
        if let Value::Object(map) = &mut params {
            map.insert(
                "content".into(),
                serde_json::json!({
                    "run_id": run.run_id(),
                    "vars": run.vars(),
                    "outputs": run.ancestor_outputs(),
                }),
            );
        }
        params
    }
}

/// Params of `aws.upload_context`.
#[allow(missing_docs)] // S3's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub bucket: String,
    pub key: String,
    pub content: Option<Value>,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(feature = "aws")]
impl crate::actions::Behaviour for UploadContext {
    async fn start(
        env: &crate::actions::Env,
        p: Params,
        request: &crate::actions::StartRequest,
    ) -> crate::actions::Outcome {
        use crate::actions::Outcome;
        let aws = match env.aws() {
            Ok(aws) => aws,
            Err(outcome) => return outcome,
        };
        let client = aws.s3(&p.target(aws)).await;
        // `prepare` filled `content` with the run's vars and its ancestors' outputs when absent.
        let body = serde_json::to_vec_pretty(&p.content.unwrap_or(Value::Null)).unwrap_or_default();
        let size = body.len();
        match client
            .put_object()
            .bucket(&p.bucket)
            .key(&p.key)
            .content_type("application/json")
            .body(aws_sdk_s3::primitives::ByteStream::from(body))
            .send()
            .await
        {
            Ok(out) => {
                request.log.send(
                    crate::log::Level::Info,
                    format!("wrote {size} bytes to s3://{}/{}", p.bucket, p.key),
                );
                let mut outputs = serde_json::Map::new();
                outputs.insert(
                    "url".into(),
                    Value::String(format!("s3://{}/{}", p.bucket, p.key)),
                );
                if let Some(version) = out.version_id() {
                    outputs.insert("version_id".into(), Value::String(version.to_string()));
                }
                Outcome::Complete { outputs }
            }
            Err(e) => Outcome::Failed {
                error: format!(
                    "PutObject s3://{}/{}: {}",
                    p.bucket,
                    p.key,
                    crate::aws::describe(&e)
                ),
                retryable: crate::aws::retryable(&e),
            },
        }
    }
}
