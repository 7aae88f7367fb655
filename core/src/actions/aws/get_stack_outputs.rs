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
