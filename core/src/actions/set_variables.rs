//! `system.set_variables`: its (templated) `variables` become its outputs, so later actions can
//! read computed values through `outputs["label"]`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Mode, TypeSpec};

pub const SPEC: TypeSpec = TypeSpec {
    name: "system.set_variables",
    mode: Mode::Inline,
    poll_interval: Duration::ZERO,
    can_cancel: false,
    replay_safe: true,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub variables: Map<String, Value>,
}
