//! `aws.delete_stack`: deletes a CloudFormation stack; an absent stack is already complete.

use std::time::Duration;

use serde::Deserialize;

use super::AccountId;
use crate::actions::{Mode, TypeSpec};

pub const SPEC: TypeSpec = TypeSpec {
    name: "aws.delete_stack",
    mode: Mode::Async,
    poll_interval: Duration::from_secs(10),
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
