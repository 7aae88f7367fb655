//! `aws.get_stack_outputs`: the outputs of an existing stack become this action's outputs.

use std::time::Duration;

use serde::Deserialize;

use super::AccountId;
use crate::actions::{Mode, TypeSpec};

pub const SPEC: TypeSpec = TypeSpec {
    name: "aws.get_stack_outputs",
    mode: Mode::Sync,
    poll_interval: Duration::ZERO,
    can_cancel: false,
    replay_safe: true,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub stack_name: String,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(feature = "aws")]
pub async fn start(
    aws: &crate::aws::Aws,
    request: &crate::executor::StartRequest,
) -> crate::executor::Outcome {
    use crate::executor::Outcome;
    let p: Params = super::params_or_fail!(request);
    let client = super::client_or_fail!(aws.cfn(&p.target(aws)));
    match super::stacks::find(&client, &p.stack_name).await {
        Ok(Some(stack)) => Outcome::Complete {
            outputs: stack.outputs,
        },
        Ok(None) => Outcome::failed(format!("stack {} does not exist", p.stack_name)),
        Err(outcome) => outcome,
    }
}
