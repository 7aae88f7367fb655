//! `system.no_op`: completes at once. Useful as a join point or placeholder.

use std::time::Duration;

use serde::Deserialize;

use super::{Behaviour, Mode, Outcome, Schema, TypeSpec};

/// The `system.no_op` type.
pub struct NoOp;

/// `system.no_op` takes no params.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

impl Schema for NoOp {
    const SPEC: TypeSpec = TypeSpec {
        name: "system.no_op",
        mode: Mode::Inline,
        poll_interval: Duration::ZERO,
        can_cancel: false,
        replay_safe: true,
    };
    type Params = Params;
}

impl Behaviour for NoOp {
    fn inline(_params: Params) -> Outcome {
        Outcome::complete()
    }
}
