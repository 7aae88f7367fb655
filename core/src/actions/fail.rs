//! `system.fail`: fails with a message. For drills and tests of failure handling.

use std::time::Duration;

use serde::Deserialize;

use super::{Behaviour, Mode, Outcome, Schema, TypeSpec};

/// The `system.fail` type.
pub struct Fail;

/// Params of `system.fail`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The failure's error.
    pub message: String,
    /// Marks the failure retryable so drills can exercise `retry`.
    #[serde(default)]
    pub retryable: bool,
}

impl Schema for Fail {
    const SPEC: TypeSpec = TypeSpec {
        name: "system.fail",
        mode: Mode::Inline,
        poll_interval: Duration::ZERO,
        can_cancel: false,
        replay_safe: true,
    };
    type Params = Params;
}

impl Behaviour for Fail {
    fn inline(params: Params) -> Outcome {
        Outcome::Failed {
            error: params.message,
            retryable: params.retryable,
        }
    }
}
