//! Status hooks (SCK's `LifecycleHooks`): when an action enters Running, Complete or Failed,
//! each of its hooks for that state is rendered here (sans-IO), recorded in the action's and
//! the run's log threads by the driver, and published to the run's sink, if it has one,
//! through the executor. A hook that cannot be rendered or published is logged; it never
//! fails the action.

use serde_json::{json, Map, Value};

use crate::log::Timestamp;
use crate::model::{ActionIdx, HookState, LifecycleHook, Plan};
use crate::state::RunState;

pub mod sink;
pub use sink::{HookSink, HookSinkError, PublishError};

/// One hook that fired: what is recorded and published.
#[derive(Debug, Clone, PartialEq)]
pub struct HookEvent {
    /// The run's id.
    pub run_id: String,
    /// The action's label.
    pub label: String,
    /// The state the action entered.
    pub state: HookState,
    /// The rendered status (`DEPLOY_IN_PROGRESS`).
    pub status: String,
    /// The rendered message; on failure the action's error follows it.
    pub message: String,
    /// Whose status it is, rendered (`prn:portfolio:app:branch:build`).
    pub identity: String,
    /// The rendered details.
    pub details: Value,
    /// The action's attempt.
    pub attempt: u32,
    /// When it fired.
    pub at: Timestamp,
    /// The same for every publication of this hook for this (run, action, attempt, state): a
    /// tick replayed after a crash publishes again, and consumers drop what they have seen.
    pub dedupe_id: String,
}

impl HookEvent {
    /// The published body.
    pub fn to_json(&self) -> Value {
        json!({
            "run_id": self.run_id,
            "label": self.label,
            "state": self.state.as_str(),
            "status": self.status,
            "message": self.message,
            "identity": self.identity,
            "details": self.details,
            "attempt": self.attempt,
            "at": crate::log::ts::format(&self.at),
            "dedupe_id": self.dedupe_id,
        })
    }

    /// The line the action's and the run's log threads keep.
    pub fn log_line(&self) -> String {
        let mut line = format!("hook status {} for {}", self.status, self.identity);
        if !self.message.is_empty() {
            line.push_str(": ");
            line.push_str(&self.message);
        }
        line
    }
}

/// Renders the hooks of action `idx` that fire on entering `hook_state`: an event each, or why
/// one could not be rendered.
pub(crate) fn fire(
    plan: &Plan,
    state: &RunState,
    idx: ActionIdx,
    hook_state: HookState,
    now: Timestamp,
) -> Vec<Result<HookEvent, String>> {
    let action = plan.action(idx);
    let firing: Vec<&LifecycleHook> = action
        .details()
        .hooks
        .iter()
        .filter(|hook| hook.message(hook_state).is_some())
        .collect();
    if firing.is_empty() {
        return Vec::new();
    }
    let context = crate::scheduler::context_for(plan, state, idx);
    let entry = state.action(idx);
    let dedupe_id = crate::util::sha256_hex(
        format!(
            "{}\n{}\n{}\n{}",
            state.run_id(),
            action.label,
            entry.attempt,
            hook_state.as_str()
        )
        .as_bytes(),
    )[..32]
        .to_string();
    firing
        .into_iter()
        .enumerate()
        .map(|(n, hook)| {
            let words =
                hook.message(hook_state)
                    .cloned()
                    .unwrap_or_else(|| crate::model::HookMessage {
                        status: String::new(),
                        message: None,
                    });
            let texts = json!({
                "status": words.status,
                "message": words.message.unwrap_or_default(),
                "identity": hook.identity,
                "details": hook.details,
            });
            let rendered = crate::template::render_params(&texts, &context).map_err(|e| {
                format!(
                    "hook {} ({}) does not render: {e}",
                    n + 1,
                    hook_state.as_str()
                )
            })?;
            let text = |key: &str| match rendered.get(key) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            let mut message = text("message");
            if hook_state == HookState::Failed {
                if let Some(error) = &entry.error {
                    if !message.is_empty() {
                        message.push_str(": ");
                    }
                    message.push_str(error);
                }
            }
            // Two hooks of one action firing together must not share an id.
            let dedupe_id = if n == 0 {
                dedupe_id.clone()
            } else {
                format!("{dedupe_id}-{}", n + 1)
            };
            Ok(HookEvent {
                run_id: state.run_id().to_string(),
                label: action.label.clone(),
                state: hook_state,
                status: text("status"),
                message,
                identity: text("identity"),
                details: rendered.get("details").cloned().unwrap_or(Value::Null),
                attempt: entry.attempt,
                at: now,
                dedupe_id,
            })
        })
        .collect()
}

/// String attributes a subscriber can filter on (SNS message attributes, EventBridge
/// patterns read the body).
pub fn attributes(event: &HookEvent) -> Map<String, Value> {
    let mut map = Map::new();
    for (key, value) in [
        ("state", event.state.as_str()),
        ("status", event.status.as_str()),
        ("identity", event.identity.as_str()),
        ("run_id", event.run_id.as_str()),
    ] {
        if !value.is_empty() {
            map.insert(key.into(), Value::String(value.into()));
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_parse_and_print_back() {
        let sns = "sns:arn:aws:sns:eu-west-1:123456789012:deployments";
        let sink = HookSink::parse(sns).expect("an SNS sink");
        assert_eq!(sink.to_string(), sns);
        assert_eq!(sink.region(), Some("eu-west-1"));
        let events = HookSink::parse("events:default").expect("a bus");
        assert_eq!(events.region(), None);
        assert_eq!(events.to_string(), "events:default");
        for bad in ["sns:topic", "events:", "sqs:x", "arn:aws:sns:eu-west-1:1:t"] {
            assert!(HookSink::parse(bad).is_err(), "{bad}");
        }
    }
}
