//! An action's params as an operator sees them (`inspect`, the console's detail pane).

use baton_core::redact::Secrets;
use baton_core::{rendered_params, ActionIdx, Plan, RunState};
use serde_json::Value;

/// Params as they were (or would be) rendered against a state, secrets masked.
#[derive(Debug, Clone, PartialEq)]
pub struct ShownParams {
    pub value: Value,
    /// Why the params are shown as written: their templates cannot be rendered yet.
    pub not_rendered: Option<String>,
}

/// Renders action `idx`'s params against `state` (the params as written when their templates
/// cannot be rendered yet) and masks the secrets they can contain.
pub fn shown_params(plan: &Plan, state: &RunState, idx: ActionIdx) -> ShownParams {
    let (value, not_rendered) = match rendered_params(plan, state, idx) {
        Ok(rendered) => (rendered, None),
        Err(e) => (plan.action(idx).params.clone(), Some(e.to_string())),
    };
    ShownParams {
        value: Secrets::for_action(plan, state, idx).redact_value(&value),
        not_rendered,
    }
}
