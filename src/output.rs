//! Progress lines, status symbols and the `--json` summary.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

use baton_core::driver::Observer;
use baton_core::redact::Secrets;
use baton_core::state::{ActionState, LogEntry, Timestamp};
use baton_core::{ActionIdx, ActionStatus, Plan, RunState};
use serde_json::{json, Value};

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

/// The `--json` summary printed by `run`, `resume` and `retry`. Serialized straight from the
/// state (no intermediate JSON tree: at 100k actions that tree alone was 160 MB).
pub struct Summary<'a> {
    pub plan: &'a Plan,
    pub state: &'a RunState,
    pub locator: &'a str,
    pub duration_ms: u128,
}

struct SummaryActions<'a>(&'a Summary<'a>);

impl serde::Serialize for SummaryActions<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Summary { plan, state, .. } = self.0;
        let secrets = Secrets::for_run(plan, state);
        let mut map = serializer.serialize_map(Some(plan.len()))?;
        for (def, action) in plan.actions().iter().zip(state.actions()) {
            let action = &secrets.shown_action(action);
            let outputs = Value::Object((*action.outputs).clone());
            map.serialize_entry(
                &def.label,
                &json!({
                    "status": action.status,
                    "attempts": action.attempt,
                    "outputs": outputs,
                    "error": action.error,
                }),
            )?;
        }
        map.end()
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
    /// Writes the summary and a newline to stdout (quietly ends on a closed pipe).
    pub fn print(&self) {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let written = serde_json::to_writer(&mut out, self)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
            .and_then(|()| out.flush());
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
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
