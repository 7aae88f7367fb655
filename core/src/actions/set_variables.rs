//! `system.set_variables`: its (templated) `variables` become its outputs, so later actions can
//! read computed values through `outputs["label"]`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Behaviour, Mode, Outcome, Schema, TypeSpec};

/// The `system.set_variables` type.
pub struct SetVariables;

/// Params of `system.set_variables`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Become the action's outputs, rendered.
    pub variables: Map<String, Value>,
}

impl Schema for SetVariables {
    const SPEC: TypeSpec = TypeSpec {
        name: "system.set_variables",
        mode: Mode::Inline,
        poll_interval: Duration::ZERO,
        can_cancel: false,
        replay_safe: true,
    };
    type Params = Params;
}

impl Behaviour for SetVariables {
    fn inline(params: Params) -> Outcome {
        Outcome::Complete {
            outputs: params.variables,
        }
    }
}
