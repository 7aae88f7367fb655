//! `aws.upload_context`: writes run variables and outputs (or a given `content`) as JSON to
//! `s3://bucket/key`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::AccountId;
use crate::actions::{Mode, TypeSpec};

pub const SPEC: TypeSpec = TypeSpec {
    name: "aws.upload_context",
    mode: Mode::Sync,
    poll_interval: Duration::ZERO,
    can_cancel: false,
    replay_safe: true,
};

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
