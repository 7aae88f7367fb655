//! `aws.create_cloud_front_invalidation`: invalidates paths in a CloudFront distribution's
//! caches and waits until the invalidation is completed.

use std::time::Duration;

use serde::Deserialize;

use super::AccountId;
use crate::actions::{Mode, ParamsProblem, Schema, TypeSpec};

/// The `aws.create_cloud_front_invalidation` type.
pub struct CreateCloudFrontInvalidation;

impl Schema for CreateCloudFrontInvalidation {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.create_cloud_front_invalidation",
        mode: Mode::Async,
        poll_interval: Duration::from_secs(20),
        can_cancel: false,
        replay_safe: true,
    };
    const FEATURE: &'static str = "aws-cloudfront";
    type Params = Params;

    fn validate(p: &Params) -> Result<(), ParamsProblem> {
        if p.paths.is_empty() {
            return Err(ParamsProblem::new("paths", "name at least one path"));
        }
        for (i, path) in p.paths.iter().enumerate() {
            if !path.starts_with('/') && !crate::template::is_template(path) {
                return Err(ParamsProblem::new(
                    format!("paths[{i}]"),
                    format!("\"{path}\" must start with / (e.g. \"/*\" or \"/index.html\")"),
                ));
            }
        }
        Ok(())
    }

    fn abort_note() -> String {
        "a CloudFront invalidation cannot be cancelled; it completes in AWS".into()
    }
}

/// Params of `aws.create_cloud_front_invalidation`.
#[allow(missing_docs)] // CloudFront's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub distribution_id: String,
    pub paths: Vec<String>,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(not(feature = "aws-cloudfront"))]
#[cfg(feature = "aws")]
super::needs_feature!(CreateCloudFrontInvalidation);

#[cfg(feature = "aws-cloudfront")]
mod calls {
    use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
    use aws_sdk_cloudfront::Client;
    use serde_json::{json, Map, Value};

    use super::{CreateCloudFrontInvalidation, Params};
    use crate::actions::aws::{call_failed, required};
    use crate::actions::{Behaviour, CheckRequest, Env, Outcome, Schema, StartRequest};
    use crate::log::Level;

    /// How many of the newest invalidations a start looks through for its own.
    const LOOK_BACK: usize = 10;

    impl Behaviour for CreateCloudFrontInvalidation {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => {
                    let client = aws.cloudfront(&params.target(aws)).await;
                    start(&client, &params, request).await
                }
                Err(outcome) => outcome,
            }
        }

        async fn check(env: &Env, params: Params, request: &CheckRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => {
                    let client = aws.cloudfront(&params.target(aws)).await;
                    check(&client, &params, request).await
                }
                Err(outcome) => outcome,
            }
        }
    }

    fn running(id: &str, check_after: std::time::Duration) -> Outcome {
        Outcome::Running {
            handle: json!({ "invalidation_id": id }),
            check_after,
        }
    }

    async fn start(client: &Client, p: &Params, request: &StartRequest) -> Outcome {
        if let Err(problem) = required("distribution_id", &p.distribution_id) {
            return problem.into_outcome();
        }
        let token = request.idempotency_token();
        // CloudFront answers a repeated caller reference with the invalidation it made; some
        // endpoints make another, so a replayed start first looks for its own.
        match own_invalidation(client, p, &token).await {
            Ok(Some(id)) => {
                request.log.send(
                    Level::Info,
                    format!("invalidation {id} already created by this attempt"),
                );
                return running(&id, std::time::Duration::ZERO);
            }
            Ok(None) => {}
            Err(outcome) => return outcome,
        }
        let paths = Paths::builder()
            .quantity(p.paths.len() as i32)
            .set_items(Some(p.paths.clone()))
            .build();
        let batch = match paths.and_then(|paths| {
            InvalidationBatch::builder()
                .paths(paths)
                .caller_reference(&token)
                .build()
        }) {
            Ok(batch) => batch,
            Err(e) => return Outcome::failed(format!("invalidation request: {e}")),
        };
        let created = client
            .create_invalidation()
            .distribution_id(&p.distribution_id)
            .invalidation_batch(batch)
            .send()
            .await;
        match created {
            Ok(out) => {
                let id = out.invalidation().map(|i| i.id()).unwrap_or_default();
                request.log.send(
                    Level::Info,
                    format!(
                        "invalidating {:?} in distribution {} ({id})",
                        p.paths, p.distribution_id
                    ),
                );
                running(id, std::time::Duration::ZERO)
            }
            Err(e) => call_failed(
                &format!("CreateInvalidation (distribution {})", p.distribution_id),
                &e,
            ),
        }
    }

    /// The invalidation among the newest ones whose caller reference is this attempt's.
    async fn own_invalidation(
        client: &Client,
        p: &Params,
        token: &str,
    ) -> Result<Option<String>, Outcome> {
        let listed = client
            .list_invalidations()
            .distribution_id(&p.distribution_id)
            .send()
            .await;
        let mut summaries = match listed {
            Ok(out) => out
                .invalidation_list()
                .map(|l| l.items().to_vec())
                .unwrap_or_default(),
            Err(e) => {
                return Err(call_failed(
                    &format!("ListInvalidations (distribution {})", p.distribution_id),
                    &e,
                ))
            }
        };
        summaries.sort_by_key(|s| std::cmp::Reverse(s.create_time().secs()));
        for summary in summaries.iter().take(LOOK_BACK) {
            let got = client
                .get_invalidation()
                .distribution_id(&p.distribution_id)
                .id(summary.id())
                .send()
                .await;
            let reference = got
                .ok()
                .and_then(|out| out.invalidation().cloned())
                .and_then(|i| {
                    i.invalidation_batch()
                        .map(|b| b.caller_reference().to_string())
                });
            if reference.as_deref() == Some(token) {
                return Ok(Some(summary.id().to_string()));
            }
        }
        Ok(None)
    }

    async fn check(client: &Client, p: &Params, request: &CheckRequest) -> Outcome {
        let Some(id) = request
            .handle
            .get("invalidation_id")
            .and_then(Value::as_str)
        else {
            return Outcome::failed("the running action's handle names no invalidation");
        };
        let got = client
            .get_invalidation()
            .distribution_id(&p.distribution_id)
            .id(id)
            .send()
            .await;
        let status = match got {
            Ok(out) => out
                .invalidation()
                .map(|i| i.status().to_string())
                .unwrap_or_default(),
            Err(e) => return call_failed(&format!("GetInvalidation {id}"), &e),
        };
        if status.eq_ignore_ascii_case("completed") {
            request
                .log
                .send(Level::Info, format!("invalidation {id} completed"));
            let mut outputs = Map::new();
            outputs.insert("DistributionId".into(), json!(p.distribution_id));
            outputs.insert("InvalidationId".into(), json!(id));
            outputs.insert("InvalidationStatus".into(), json!(status));
            return Outcome::Complete { outputs };
        }
        running(id, CreateCloudFrontInvalidation::SPEC.poll_interval)
    }
}
