//! `aws.unprotect_elb`: turns off an Application or Network Load Balancer's deletion
//! protection so the stack that owns it can be deleted. `none` (any case) skips the action; a
//! load balancer that no longer exists has nothing to unprotect.

use std::time::Duration;

use serde::Deserialize;

use super::AccountId;
use crate::actions::{Mode, Schema, TypeSpec};

/// The `aws.unprotect_elb` type.
pub struct UnprotectElb;

impl Schema for UnprotectElb {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.unprotect_elb",
        mode: Mode::Sync,
        poll_interval: Duration::ZERO,
        can_cancel: false,
        replay_safe: true,
    };
    const FEATURE: &'static str = "aws-elbv2";
    type Params = Params;
}

/// Params of `aws.unprotect_elb`.
#[allow(missing_docs)] // Elastic Load Balancing's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The load balancer's ARN, or `none`.
    pub load_balancer: String,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(not(feature = "aws-elbv2"))]
#[cfg(feature = "aws")]
super::needs_feature!(UnprotectElb);

#[cfg(feature = "aws-elbv2")]
mod calls {
    use aws_sdk_elasticloadbalancingv2::types::LoadBalancerAttribute;
    use aws_sdk_elasticloadbalancingv2::Client;
    use serde_json::{json, Map};

    use super::{Params, UnprotectElb};
    use crate::actions::aws::{call_failed, required};
    use crate::actions::{Behaviour, Env, Outcome, StartRequest};
    use crate::aws::code;
    use crate::log::Level;

    impl Behaviour for UnprotectElb {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            if let Err(problem) = required("load_balancer", &params.load_balancer) {
                return problem.into_outcome();
            }
            if params.load_balancer.trim().eq_ignore_ascii_case("none") {
                request
                    .log
                    .send(Level::Info, "no load balancer named; nothing to unprotect");
                return Outcome::complete();
            }
            match env.aws() {
                Ok(aws) => start(&aws.elbv2(&params.target(aws)).await, &params, request).await,
                Err(outcome) => outcome,
            }
        }
    }

    async fn start(client: &Client, p: &Params, request: &StartRequest) -> Outcome {
        let arn = &p.load_balancer;
        let changed = client
            .modify_load_balancer_attributes()
            .load_balancer_arn(arn)
            .attributes(
                LoadBalancerAttribute::builder()
                    .key("deletion_protection.enabled")
                    .value("false")
                    .build(),
            )
            .send()
            .await;
        match changed {
            Ok(_) => {
                request
                    .log
                    .send(Level::Info, format!("deletion protection of {arn} is off"));
            }
            Err(e) if code(&e).as_deref() == Some("LoadBalancerNotFound") => {
                request.log.send(
                    Level::Info,
                    format!("load balancer {arn} does not exist; nothing to unprotect"),
                );
            }
            Err(e) => {
                return call_failed(&format!("ModifyLoadBalancerAttributes {arn}"), &e);
            }
        }
        let mut outputs = Map::new();
        outputs.insert("LoadBalancerArn".into(), json!(arn));
        outputs.insert("DeletionProtection".into(), json!("false"));
        Outcome::Complete { outputs }
    }
}
