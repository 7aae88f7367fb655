//! Test doubles: an in-memory store and helpers to build plans quickly.

pub use crate::store::memory::MemoryStore;

use crate::load::{load_str, Format};
use crate::model::Plan;

/// Builds a plan from JSON text, panicking with the problems if it is invalid.
pub fn plan(json: &str) -> Plan {
    match load_str("test.json", json, Format::Json) {
        Ok(loaded) => loaded.plan,
        Err(problems) => panic!("invalid test plan:\n{problems}"),
    }
}

/// `plan` as a plan read back from its store holds it: without its dependencies as written
/// (only the resolved ones are stored), and so spelling them out as labels when serialized.
pub fn as_read_back(plan: &Plan) -> Plan {
    let mut plan = plan.clone();
    plan.forget_edges_as_written();
    plan
}

/// Whether a plan read back from its stored form runs as `plan` does: the same actions (but
/// for their dependencies as written, which a plan read back leaves out), the same resolved
/// dependencies, order and dialect.
pub fn runs_the_same(again: &Plan, plan: &Plan) -> bool {
    as_read_back(again).actions == as_read_back(plan).actions
        && again.order() == plan.order()
        && again.dialect() == plan.dialect()
        && (0..plan.len() as u32).all(|i| again.deps(i) == plan.deps(i))
}

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::actions::{CancelError, CheckRequest, Outcome, StartRequest};
use crate::executor::Executor;

/// An executor whose outcomes are scripted per label; unscripted starts complete at once.
/// Records every call so tests can assert what ran, and how often.
#[derive(Debug, Default)]
pub struct ScriptedExecutor {
    starts: Mutex<HashMap<String, VecDeque<Outcome>>>,
    checks: Mutex<HashMap<String, VecDeque<Outcome>>>,
    calls: Mutex<Vec<(String, &'static str, u32)>>,
}

impl ScriptedExecutor {
    /// An executor with nothing scripted: every start completes at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Outcomes of successive starts of `label`.
    pub fn on_start(self, label: &str, outcomes: impl IntoIterator<Item = Outcome>) -> Self {
        if let Ok(mut map) = self.starts.lock() {
            map.entry(label.into()).or_default().extend(outcomes);
        }
        self
    }

    /// Outcomes of successive checks of `label`; when they run out, checks complete.
    pub fn on_check(self, label: &str, outcomes: impl IntoIterator<Item = Outcome>) -> Self {
        if let Ok(mut map) = self.checks.lock() {
            map.entry(label.into()).or_default().extend(outcomes);
        }
        self
    }

    /// `(label, "start"|"check"|"cancel", attempt)` in call order.
    pub fn calls(&self) -> Vec<(String, &'static str, u32)> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// How many times `label` was called for `kind` (`"start"`, `"check"` or `"cancel"`).
    pub fn count(&self, label: &str, kind: &str) -> usize {
        self.calls()
            .iter()
            .filter(|(l, k, _)| l == label && *k == kind)
            .count()
    }

    fn next(map: &Mutex<HashMap<String, VecDeque<Outcome>>>, label: &str) -> Option<Outcome> {
        map.lock().ok()?.get_mut(label)?.pop_front()
    }

    fn record(&self, label: &str, kind: &'static str, attempt: u32) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((label.to_string(), kind, attempt));
        }
    }
}

impl Executor for ScriptedExecutor {
    async fn start(&self, request: StartRequest) -> Outcome {
        self.record(&request.label, "start", request.attempt);
        Self::next(&self.starts, &request.label).unwrap_or_else(Outcome::complete)
    }

    async fn check(&self, request: CheckRequest) -> Outcome {
        self.record(&request.label, "check", request.attempt);
        Self::next(&self.checks, &request.label).unwrap_or_else(Outcome::complete)
    }

    async fn cancel(&self, request: CheckRequest) -> Result<(), CancelError> {
        self.record(&request.label, "cancel", request.attempt);
        Ok(())
    }
}

use crate::log::Timestamp;
use crate::model::ActionIdx;
use crate::state::{ActionState, Lease, RunState, RunStatus};

/// Puts a state into a shape a test needs directly (tests of views and documents, which the
/// engine would reach only step by step).
pub fn edit(state: &mut RunState) -> StateEdit<'_> {
    StateEdit(state)
}

/// See [`edit`].
pub struct StateEdit<'s>(&'s mut RunState);

impl<'s> StateEdit<'s> {
    /// Sets the run's status.
    pub fn status(self, status: RunStatus) -> Self {
        self.0.status = status;
        self
    }

    /// Sets the tick count.
    pub fn invocations(self, invocations: u64) -> Self {
        self.0.invocations = invocations;
        self
    }

    /// Sets when the version was saved.
    pub fn updated_at(self, t: Timestamp) -> Self {
        self.0.updated_at = t;
        self
    }

    /// Sets the driver's lease.
    pub fn driver(self, lease: Option<Lease>) -> Self {
        self.0.driver = lease;
        self
    }

    /// Replaces action `idx`'s state.
    pub fn action(self, idx: ActionIdx, action: ActionState) -> Self {
        *self.0.action_mut(idx) = action;
        self
    }

    /// Action `idx`'s state, to change in place.
    pub fn action_mut(self, idx: ActionIdx) -> &'s mut ActionState {
        self.0.action_mut(idx)
    }

    /// Sets the Step Functions state machine.
    pub fn state_machine(self, arn: &str) -> Self {
        self.0.state_machine = Some(arn.to_string());
        self
    }
}
