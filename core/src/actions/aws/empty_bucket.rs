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
