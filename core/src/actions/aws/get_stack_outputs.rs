//! `aws.get_stack_outputs`: the outputs of an existing stack become this action's outputs.

use std::time::Duration;

use serde::Deserialize;

use super::AccountId;
use crate::actions::{Mode, Schema, TypeSpec};

/// The `aws.get_stack_outputs` type.
pub struct GetStackOutputs;

impl Schema for GetStackOutputs {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.get_stack_outputs",
        mode: Mode::Sync,
        poll_interval: Duration::ZERO,
        can_cancel: false,
        replay_safe: true,
    };
    type Params = Params;
}

/// Params of `aws.get_stack_outputs`.
#[allow(missing_docs)] // CloudFormation's own parameter names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub stack_name: String,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
    /// A missing stack completes the action with no outputs instead of failing it (SCK's
    /// behaviour, set for its files: a first deploy reads the outputs of a release that does
    /// not exist yet).
    #[serde(default)]
    pub missing_ok: bool,
}

super::aws_target!(Params);

#[cfg(feature = "aws")]
impl crate::actions::Behaviour for GetStackOutputs {
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
        let client = aws.cfn(&p.target(aws)).await;
        match super::stacks::find(&client, &p.stack_name).await {
            Ok(Some(stack)) => Outcome::Complete {
                outputs: stack.outputs,
            },
            Ok(None) if p.missing_ok => {
                let words = format!("stack {} does not exist: no outputs", p.stack_name);
                request.log.send(crate::log::Level::Info, words);
                Outcome::Complete {
                    outputs: Default::default(),
                }
            }
            Ok(None) => Outcome::failed(format!("stack {} does not exist", p.stack_name)),
            Err(outcome) => outcome,
        }
    }
}
