//! The payload a tick returns to whoever loops: the Step Functions state machine (through the
//! Lambda) routes on `flow_control`; `baton tick` prints the same document.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::driver::TickReport;
use crate::model::Plan;
use crate::scheduler::Next;
use crate::state::{ActionStatus, RunState, RunStatus};

/// Step Functions keeps an execution's error cause short; so does this summary.
const MAX_SUMMARY: usize = 4000;

/// What a tick tells the loop driving the run. Serialized as
/// `{ run, run_id, state_version, flow_control, wait_seconds, invocations, execution_ticks,
/// status, summary }`, kept small: Step Functions payloads are limited to 256 KB and history
/// entries count against the execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// The run's locator (`s3://bucket/prefix/runs/<run-id>` or a folder).
    pub run: String,
    /// The run's id (continuation executions are named after it).
    pub run_id: String,
    /// The state version the tick saved.
    pub state_version: String,
    /// What to do next (`flow_control`, and `wait_seconds` for a wait).
    pub next: Next,
    /// Ticks performed on the run so far.
    pub invocations: u64,
    /// Ticks performed in this Step Functions execution so far (0 outside one).
    pub execution_ticks: u64,
    /// The run's status.
    pub status: RunStatus,
    /// When the run failed: which actions failed and why (the execution's error cause).
    pub summary: String,
}

impl Payload {
    /// The payload for `report` on the run at `run` with `plan`.
    pub fn new(run: String, report: &TickReport, plan: &Plan) -> Self {
        let state = &report.state;
        let summary = if state.status.is_finished() && state.status != RunStatus::Succeeded {
            failure_summary(plan, state)
        } else {
            String::new()
        };
        Payload {
            run,
            run_id: state.run_id.clone(),
            state_version: report.version.clone(),
            next: report.next,
            invocations: state.invocations,
            execution_ticks: 0,
            status: state.status,
            summary,
        }
    }

    /// `flow_control` as the state machine routes on it.
    pub fn flow_control(&self) -> &'static str {
        match self.next {
            Next::Execute => "execute",
            Next::Wait(_) => "wait",
            Next::Continue => "continue",
            Next::Success => "success",
            Next::Failure => "failure",
        }
    }

    /// Whole seconds to wait before the next tick: Step Functions waits whole seconds, so
    /// this rounds up (the action is due on arrival) and is at least 1 for a wait.
    pub fn wait_seconds(&self) -> u64 {
        match self.next {
            Next::Wait(d) => (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1),
            _ => 0,
        }
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("run", &self.run)?;
        map.serialize_entry("run_id", &self.run_id)?;
        map.serialize_entry("state_version", &self.state_version)?;
        map.serialize_entry("flow_control", self.flow_control())?;
        map.serialize_entry("wait_seconds", &self.wait_seconds())?;
        map.serialize_entry("invocations", &self.invocations)?;
        map.serialize_entry("execution_ticks", &self.execution_ticks)?;
        map.serialize_entry("status", &self.status)?;
        if !self.summary.is_empty() {
            map.serialize_entry("summary", &self.summary)?;
        }
        map.end()
    }
}

/// "run failed: deploy (stack app CREATE_FAILED: …); 3 blocked", bounded.
fn failure_summary(plan: &Plan, state: &RunState) -> String {
    let failed: Vec<String> = plan
        .actions
        .iter()
        .zip(&state.actions)
        .filter(|(_, a)| matches!(a.status, ActionStatus::Failed | ActionStatus::Cancelled))
        .map(|(def, a)| {
            format!(
                "{} ({})",
                def.label,
                a.error.as_deref().unwrap_or(a.status.as_str())
            )
        })
        .collect();
    let blocked = state.count(ActionStatus::Blocked);
    let mut text = format!("run {}: {}", state.status, failed.join("; "));
    if blocked > 0 {
        text.push_str(&format!("; {blocked} blocked"));
    }
    if text.len() > MAX_SUMMARY {
        let mut cut = MAX_SUMMARY;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}
