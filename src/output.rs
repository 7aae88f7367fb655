//! Progress lines, status symbols and the `--json` summary.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use baton_core::driver::Observer;
use baton_core::redact::Secrets;
use baton_core::state::{ActionState, LogEntry, Timestamp};
use baton_core::{ActionIdx, ActionStatus, Plan, RunState};
use serde_json::Value;

/// A symbol per status, readable without colour.
pub fn symbol(status: ActionStatus) -> &'static str {
    match status {
        ActionStatus::Pending => "·",
        ActionStatus::Running => "▶",
        ActionStatus::Complete => "✔",
        ActionStatus::Failed => "✖",
        ActionStatus::Skipped => "↷",
        ActionStatus::Blocked => "⊘",
        ActionStatus::Cancelled => "■",
    }
}

pub fn elapsed(from: Option<Timestamp>, to: Option<Timestamp>) -> Option<std::time::Duration> {
    (to? - from?).to_std().ok()
}

pub fn format_elapsed(d: std::time::Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        baton_core::duration::format_duration(std::time::Duration::from_secs(d.as_secs()))
    }
}

/// "1 action", "3 actions".
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// One line per status change and log entry, for terminals without the console and for CI.
pub struct PlainPrinter {
    started: Instant,
    width: usize,
    inner: Mutex<Vec<Option<ActionStatus>>>,
}

impl PlainPrinter {
    pub fn new(plan: &Plan) -> Self {
        let width = plan
            .actions()
            .iter()
            .map(|a| a.label.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(8, 32);
        PlainPrinter {
            started: Instant::now(),
            width,
            inner: Mutex::new(vec![None; plan.len()]),
        }
    }

    fn line(&self, text: std::fmt::Arguments<'_>) {
        let stamp = format_elapsed(self.started.elapsed());
        let mut out = std::io::stdout().lock();
        // A closed pipe must not stop the run; progress lines are best effort.
        let _ = writeln!(out, "{stamp:>7}  {text}");
        let _ = out.flush();
    }
}

impl Observer for PlainPrinter {
    fn action_changed(&self, plan: &Plan, idx: ActionIdx, state: &ActionState) {
        let Ok(mut seen) = self.inner.lock() else {
            return;
        };
        let slot = &mut seen[idx as usize];
        let status = state.status;
        if *slot == Some(status)
            || (slot.is_none() && status == ActionStatus::Pending && state.attempt == 0)
        {
            return;
        }
        *slot = Some(status);
        drop(seen);
        let label = plan.label(idx);
        let width = self.width;
        let detail = match status {
            ActionStatus::Running if state.attempt > 1 => {
                format!("running (attempt {})", state.attempt)
            }
            ActionStatus::Running => "running".to_string(),
            ActionStatus::Complete => match elapsed(state.started_at, state.finished_at) {
                Some(d) => format!("complete in {}", format_elapsed(d)),
                None => "complete".into(),
            },
            ActionStatus::Failed => format!("failed: {}", state.error.as_deref().unwrap_or("")),
            ActionStatus::Blocked => {
                format!(
                    "blocked by {}",
                    state.blocked_by.as_deref().unwrap_or("a failed dependency")
                )
            }
            ActionStatus::Pending => {
                format!("retry pending: {}", state.error.as_deref().unwrap_or(""))
            }
            other => other.to_string(),
        };
        self.line(format_args!("{} {label:<width$}  {detail}", symbol(status)));
    }

    fn log(&self, plan: &Plan, idx: Option<ActionIdx>, entry: &LogEntry) {
        let label = idx.map_or("run", |i| plan.label(i));
        let width = self.width;
        self.line(format_args!("  {label:<width$}  │ {}", entry.msg));
    }
}

/// Writes `value` as JSON and a newline to stdout, streamed through a buffer: no output is
/// built whole in memory (at 100k actions a `serde_json::Value` tree of `status --json` took
/// 290 MB). A closed pipe (`baton status --json | head -c 10`) ends the process quietly.
pub fn write_json<T: serde::Serialize + ?Sized>(
    value: &T,
    style: JsonStyle,
) -> Result<(), crate::Failure> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match style {
        JsonStyle::Pretty => serde_json::to_writer_pretty(&mut out, value),
        JsonStyle::Compact => serde_json::to_writer(&mut out, value),
    }
    .map_err(std::io::Error::from)
    .and_then(|()| writeln!(out))
    .and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(crate::Failure::Infra(format!(
            "could not write the JSON output to stdout: {e}"
        ))),
    }
}

/// How [`write_json`] lays JSON out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStyle {
    /// Indented, for people as much as programs (`status`, `plan`, `inspect`, `runs`).
    Pretty,
    /// One line (the `run`/`resume`/`retry` summary, the `tick` payload).
    Compact,
}

/// Serializes as a JSON object whose entries the closure yields, one at a time.
pub struct MapWith<F>(pub F);

impl<F, I, K, V> serde::Serialize for MapWith<F>
where
    F: Fn() -> I,
    I: IntoIterator<Item = (K, V)>,
    K: serde::Serialize,
    V: serde::Serialize,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map((self.0)())
    }
}

/// Serializes as a JSON array whose items the closure yields, one at a time.
pub struct SeqWith<F>(pub F);

impl<F, I> serde::Serialize for SeqWith<F>
where
    F: Fn() -> I,
    I: IntoIterator,
    I::Item: serde::Serialize,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((self.0)())
    }
}

/// `{"pending": 0, "running": 1, …}`: a count per status, in status order.
pub fn status_counts(counts: [usize; 7]) -> impl serde::Serialize {
    MapWith(move || {
        ActionStatus::ALL
            .iter()
            .map(move |s| (s.as_str(), counts[*s as usize]))
    })
}

/// The `--json` summary printed by `run`, `resume` and `retry`. Serialized straight from the
/// state the drive ended with (no intermediate JSON tree: at 100k actions that tree alone
/// was 160 MB).
pub struct Summary<'a> {
    pub plan: &'a Plan,
    pub state: &'a RunState,
    pub locator: &'a str,
    pub duration_ms: u128,
}

/// One action in the summary, its error and outputs masked.
#[derive(serde::Serialize)]
struct SummaryAction<'a> {
    status: ActionStatus,
    attempts: u32,
    outputs: Shown<'a>,
    error: Option<String>,
}

/// An action's outputs as operators may see them. Most actions have none, so the common case
/// borrows; only outputs that exist are copied (one action's at a time) to be masked.
enum Shown<'a> {
    Borrowed(&'a serde_json::Map<String, Value>),
    Masked(Value),
}

impl serde::Serialize for Shown<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Shown::Borrowed(map) => map.serialize(serializer),
            Shown::Masked(value) => value.serialize(serializer),
        }
    }
}

impl<'a> Shown<'a> {
    fn outputs(secrets: &Secrets, outputs: &'a serde_json::Map<String, Value>) -> Self {
        if outputs.is_empty() {
            Shown::Borrowed(outputs)
        } else {
            Shown::Masked(secrets.redact_value(&Value::Object(outputs.clone())))
        }
    }
}

struct SummaryActions<'a>(&'a Summary<'a>);

impl serde::Serialize for SummaryActions<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Summary { plan, state, .. } = self.0;
        let secrets = Secrets::for_run(plan, state);
        let entries = plan.actions().iter().zip(state.actions()).map(|(def, a)| {
            let shown = SummaryAction {
                status: a.status,
                attempts: a.attempt,
                outputs: Shown::outputs(&secrets, &a.outputs),
                error: a.error.as_deref().map(|e| secrets.redact(e)),
            };
            (def.label.as_str(), shown)
        });
        serializer.collect_map(entries)
    }
}

impl serde::Serialize for Summary<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(6))?;
        map.serialize_entry("run_id", &self.state.run_id())?;
        map.serialize_entry("run", self.locator)?;
        map.serialize_entry("status", &self.state.status())?;
        map.serialize_entry("invocations", &self.state.invocations())?;
        map.serialize_entry("duration_ms", &(self.duration_ms as u64))?;
        map.serialize_entry("actions", &SummaryActions(self))?;
        map.end()
    }
}

impl Summary<'_> {
    /// Writes the summary and a newline to stdout.
    pub fn print(&self) -> Result<(), crate::Failure> {
        write_json(self, JsonStyle::Compact)
    }
}

/// What failed and how to go on, after a run that did not succeed (plain output and the
/// console's last words alike).
pub fn print_next_steps(plan: &Plan, state: &RunState, locator: &str) {
    for (def, action) in plan.actions().iter().zip(state.actions()) {
        if action.status == ActionStatus::Failed {
            crate::out!(
                "  ✖ {}: {}",
                def.label,
                action.error.as_deref().unwrap_or("failed")
            );
        }
    }
    crate::out!(
        "inspect: baton inspect {locator} <label>    re-run failures: baton retry {locator} --failed"
    );
}

/// What the console prints as it closes on a run it drove: the run's own duration (not how
/// long the console was open) and, unless it succeeded, the same summary and next steps as
/// plain output; for an unfinished run, how to continue it.
pub fn print_console_outcome(plan: &Plan, state: &RunState, locator: &str, opened: Instant) {
    if !state.status().is_finished() {
        crate::out!(
            "run {} {} after {} ({})",
            state.run_id(),
            state.status(),
            format_elapsed(opened.elapsed()),
            state.count_summary()
        );
        crate::out!("continue it with: baton resume {locator}");
        return;
    }
    let took = (state.updated_at() - state.created_at())
        .to_std()
        .unwrap_or_default();
    crate::out!(
        "run {} {} in {} ({}; {})",
        state.run_id(),
        state.status(),
        format_elapsed(took),
        state.count_summary(),
        plural(state.invocations() as usize, "invocation")
    );
    if state.status() != baton_core::RunStatus::Succeeded {
        print_next_steps(plan, state, locator);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::state::ActionState;
    use baton_core::testutil::{edit, plan};
    use serde_json::json;

    /// The tree-building rendering of the summary's actions before it streamed.
    fn tree_summary(summary: &Summary<'_>) -> String {
        let Summary { plan, state, .. } = summary;
        let secrets = Secrets::for_run(plan, state);
        let mut actions = serde_json::Map::new();
        for (def, action) in plan.actions().iter().zip(state.actions()) {
            let action = &secrets.shown_action(action);
            let outputs = Value::Object((*action.outputs).clone());
            actions.insert(
                def.label.clone(),
                json!({
                    "status": action.status,
                    "attempts": action.attempt,
                    "outputs": outputs,
                    "error": action.error,
                }),
            );
        }
        let doc = json!({
            "run_id": state.run_id(),
            "run": summary.locator,
            "status": state.status(),
            "invocations": state.invocations(),
            "duration_ms": summary.duration_ms as u64,
            "actions": actions,
        });
        serde_json::to_string(&doc).expect("json")
    }

    #[test]
    fn streamed_summary_keeps_the_tree_shape() {
        let plan = plan(
            r#"[
            {"label": "creds", "type": "system.set_variables",
             "params": {"variables": {"api_token": "tok-123456"}}},
            {"label": "echo", "type": "system.no_op", "depends_on": ["creds"]},
            {"label": "later", "type": "system.no_op"}
        ]"#,
        );
        let now = chrono::Utc::now();
        let mut state = RunState::new("r-9", &plan, "sha", serde_json::Map::new(), now);
        let mut outputs = serde_json::Map::new();
        outputs.insert("api_token".into(), json!("tok-123456"));
        outputs.insert(
            "echoed".into(),
            json!({"said": "token tok-123456", "n": [1, 2.5]}),
        );
        let creds = ActionState {
            status: ActionStatus::Complete,
            attempt: 1,
            outputs: outputs.into(),
            ..ActionState::default()
        };
        let echo = ActionState {
            status: ActionStatus::Failed,
            attempt: 2,
            error: Some("sent tok-123456, got 401".into()),
            ..ActionState::default()
        };
        edit(&mut state)
            .invocations(3)
            .action(0, creds)
            .action(1, echo);
        let summary = Summary {
            plan: &plan,
            state: &state,
            locator: "/tmp/runs/r-9",
            duration_ms: 42,
        };
        let streamed = serde_json::to_string(&summary).expect("json");
        assert_eq!(streamed, tree_summary(&summary));
        assert!(!streamed.contains("tok-123456"), "{streamed}");
    }
}
