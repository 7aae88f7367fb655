//! `system.fail`: fails with a message. For drills and tests of failure handling.

use std::time::Duration;

use serde::Deserialize;

use super::{Mode, TypeSpec};

pub const SPEC: TypeSpec = TypeSpec {
    name: "system.fail",
    mode: Mode::Inline,
    poll_interval: Duration::ZERO,
    can_cancel: false,
    replay_safe: true,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub message: String,
    /// Marks the failure retryable so drills can exercise `retry`.
    #[serde(default)]
    pub retryable: bool,
}
