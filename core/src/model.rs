//! The validated, resolved plan the engine runs: actions in file order, dependencies resolved to
//! indices, a topological order, and what each action's templates read.

use std::collections::HashMap;
use std::time::Duration;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::actions::ActionType;
use crate::duration::format_duration;

/// Index of an action in [`Plan::actions`]. `u32` keeps the per-action graph data small.
pub type ActionIdx = u32;

/// How an action's retryable failures are retried (its `retry` field).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, including the first.
    pub attempts: u32,
    /// Wait before the first retry.
    pub delay: Duration,
    /// Each further retry waits this many times longer than the one before (1 to 10).
    pub backoff: f64,
}

impl RetryPolicy {
    /// Delay before attempt `next_attempt` (2 = the first retry).
    pub(crate) fn delay_before(&self, next_attempt: u32) -> Duration {
        let exponent = next_attempt.saturating_sub(2) as i32;
        let seconds = self.delay.as_secs_f64() * self.backoff.powi(exponent);
        Duration::from_secs_f64(seconds.min(86400.0))
    }
}

/// One action of a plan, as written in the file once validated.
#[derive(Debug, Clone)]
pub struct Action {
    /// Unique within the plan; how dependencies, outputs and operators name the action.
    pub label: String,
    /// What the action does, and how it runs (inline, synchronous or asynchronous).
    pub action_type: ActionType,
    /// As written: labels and glob patterns.
    pub depends_on: Vec<String>,
    /// As written (templates unrendered); `Null` when absent.
    pub params: Value,
    /// Template expression evaluated when the action is ready; false skips it (and lets its
    /// dependents run). `None`: always runs.
    pub condition: Option<String>,
    /// Longest one attempt may run, from its start; past it the action fails without a retry
    /// (its work cancelled where the type can). `None`: no limit.
    pub timeout: Option<Duration>,
    /// `None`: the first failure fails the action.
    pub retry: Option<RetryPolicy>,
    /// Free text for operators (`inspect`, the console).
    pub description: Option<String>,
    /// Whether any param string is a template (only those are rendered).
    pub templated: bool,
    /// Actions whose outputs the templates read by name; `None` when they index `outputs`
    /// dynamically, in which case every finished action's outputs are offered.
    pub reads_outputs: Option<Vec<ActionIdx>>,
    /// Run variables its templates read, with the field that reads each (`params.command[1]`,
    /// `condition`), so a missing `--var` is caught before the run starts.
    pub reads_vars: Vec<(String, String)>,
}

/// A validated plan. Its parts stay consistent with each other (indices, dependents, order,
/// what templates read), so they are read through methods and changed only by the loader.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The file the plan came from, for messages.
    pub(crate) source: String,
    pub(crate) actions: Vec<Action>,
    pub(crate) deps: Vec<Vec<ActionIdx>>,
    pub(crate) dependents: Vec<Vec<ActionIdx>>,
    /// A topological order (dependencies first), ties broken by file order.
    pub(crate) order: Vec<ActionIdx>,
    index: HashMap<String, ActionIdx>,
}

impl Plan {
    pub(crate) fn new(
        source: String,
        actions: Vec<Action>,
        deps: Vec<Vec<ActionIdx>>,
        order: Vec<ActionIdx>,
    ) -> Self {
        let mut dependents = vec![Vec::new(); actions.len()];
        for (idx, list) in deps.iter().enumerate() {
            for &dep in list {
                dependents[dep as usize].push(idx as ActionIdx);
            }
        }
        let index = actions
            .iter()
            .enumerate()
            .map(|(i, a)| (a.label.clone(), i as ActionIdx))
            .collect();
        Plan {
            source,
            actions,
            deps,
            dependents,
            order,
            index,
        }
    }

    /// The file the plan came from, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The actions in file order (indexed by [`ActionIdx`]).
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// What action `idx` depends on (resolved, deduplicated).
    pub fn deps(&self, idx: ActionIdx) -> &[ActionIdx] {
        &self.deps[idx as usize]
    }

    /// What depends on action `idx` directly.
    pub fn dependents(&self, idx: ActionIdx) -> &[ActionIdx] {
        &self.dependents[idx as usize]
    }

    /// A topological order (dependencies first), ties broken by file order.
    pub fn order(&self) -> &[ActionIdx] {
        &self.order
    }

    /// Replaces one param of action `idx` after validation (a `template_file` resolved to the
    /// uploaded `template_url` or an inline `template_body`). The new value is plain text,
    /// never a template, so what the action's templates read is unchanged.
    pub fn replace_param(&mut self, idx: ActionIdx, old: &str, new: &str, value: String) {
        if let Some(Value::Object(params)) =
            self.actions.get_mut(idx as usize).map(|a| &mut a.params)
        {
            params.remove(old);
            params.insert(new.to_string(), Value::String(value));
        }
    }

    /// How many actions.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether the plan has no actions.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The action labelled `label`, if any.
    pub fn find(&self, label: &str) -> Option<ActionIdx> {
        self.index.get(label).copied()
    }

    /// Action `idx`. Panics if `idx` is not an index of this plan.
    pub fn action(&self, idx: ActionIdx) -> &Action {
        &self.actions[idx as usize]
    }

    /// Action `idx`'s label. Panics if `idx` is not an index of this plan.
    pub fn label(&self, idx: ActionIdx) -> &str {
        &self.actions[idx as usize].label
    }

    /// `idx` and everything that depends on it, transitively, in topological order.
    pub fn descendants(&self, idx: ActionIdx) -> Vec<ActionIdx> {
        self.closure(idx, &self.dependents)
    }

    /// Everything `idx` depends on, transitively (excluding `idx`).
    pub fn ancestors(&self, idx: ActionIdx) -> Vec<ActionIdx> {
        let mut all = self.closure(idx, &self.deps);
        all.retain(|&a| a != idx);
        all
    }

    fn closure(&self, start: ActionIdx, edges: &[Vec<ActionIdx>]) -> Vec<ActionIdx> {
        let mut seen = vec![false; self.len()];
        let mut stack = vec![start];
        seen[start as usize] = true;
        while let Some(next) = stack.pop() {
            for &other in &edges[next as usize] {
                if !std::mem::replace(&mut seen[other as usize], true) {
                    stack.push(other);
                }
            }
        }
        self.order
            .iter()
            .copied()
            .filter(|&i| seen[i as usize])
            .collect()
    }

    /// Depth of each action: 0 for roots, else 1 + the deepest dependency.
    pub fn layers(&self) -> Vec<Vec<ActionIdx>> {
        let mut depth = vec![0usize; self.len()];
        let mut layers: Vec<Vec<ActionIdx>> = Vec::new();
        for &idx in &self.order {
            let d = self.deps[idx as usize]
                .iter()
                .map(|&dep| depth[dep as usize] + 1)
                .max()
                .unwrap_or(0);
            depth[idx as usize] = d;
            if layers.len() <= d {
                layers.resize_with(d + 1, Vec::new);
            }
            layers[d].push(idx);
        }
        for layer in &mut layers {
            layer.sort_unstable();
        }
        layers
    }

    /// The canonical JSON of the plan (what the store keeps as `actions.json`).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a plan of plain data into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Serialize for Plan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.actions.len()))?;
        for action in &self.actions {
            seq.serialize_element(action)?;
        }
        seq.end()
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("label", &self.label)?;
        map.serialize_entry("type", self.action_type.name())?;
        if !self.depends_on.is_empty() {
            map.serialize_entry("depends_on", &self.depends_on)?;
        }
        if !self.params.is_null() {
            map.serialize_entry("params", &self.params)?;
        }
        if let Some(condition) = &self.condition {
            map.serialize_entry("condition", condition)?;
        }
        if let Some(timeout) = self.timeout {
            map.serialize_entry("timeout", &format_duration(timeout))?;
        }
        if let Some(retry) = &self.retry {
            map.serialize_entry(
                "retry",
                &serde_json::json!({
                    "attempts": retry.attempts,
                    "delay": format_duration(retry.delay),
                    "backoff": retry.backoff,
                }),
            )?;
        }
        if let Some(description) = &self.description {
            map.serialize_entry("description", description)?;
        }
        map.end()
    }
}
