//! `system.no_op`: completes at once. Useful as a join point or placeholder.

use std::time::Duration;

use serde::Deserialize;

use super::{Mode, TypeSpec};

pub const SPEC: TypeSpec = TypeSpec {
    name: "system.no_op",
    mode: Mode::Inline,
    poll_interval: Duration::ZERO,
    can_cancel: false,
    replay_safe: true,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}
