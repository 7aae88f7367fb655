//! The function's log: one flat JSON object per line on stdout, which the Lambda runtime ships
//! to CloudWatch Logs. Every line of a tick carries `run` and `tick` (the run's invocation
//! number); lines about an action add `action` and `attempt`; `level` and `message` are always
//! there. Flat, so a Logs Insights query filters on `run`, `action` or `level` directly.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use baton_core::driver::Observer;
use baton_core::log::{Level, LogEntry};
use baton_core::state::ActionState;
use baton_core::{ActionIdx, ActionStatus, Plan, RunState};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Span and event fields renamed on the way out: the engine's tick span says `run_id` and
/// `invocation`; the log says `run` and `tick`.
fn field_name(name: &str) -> &str {
    match name {
        "run_id" => "run",
        "invocation" => "tick",
        other => other,
    }
}

/// The fields recorded on a span, kept in its extensions until an event inside it is written.
#[derive(Default)]
struct SpanFields(Map<String, Value>);

/// Collects fields into a JSON object.
struct Collect<'a>(&'a mut Map<String, Value>);

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.insert(field, Value::from(format!("{value:?}")));
    }
}

impl Collect<'_> {
    fn insert(&mut self, field: &Field, value: Value) {
        self.0.insert(field_name(field.name()).to_string(), value);
    }
}

/// A `tracing` layer writing one flat JSON object per event: the fields of the spans around
/// it (outermost first), then the event's own, `level` and `message`.
pub struct JsonLines<W> {
    writer: Mutex<W>,
}

impl<W: Write> JsonLines<W> {
    /// Writes lines to `writer` (stdout in the function).
    pub fn new(writer: W) -> Self {
        JsonLines {
            writer: Mutex::new(writer),
        }
    }
}

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: Write + Send + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = SpanFields::default();
        attrs.record(&mut Collect(&mut fields.0));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut Collect(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        line.insert(
            "level".into(),
            Value::from(event.metadata().level().as_str()),
        );
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    line.extend(fields.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        event.record(&mut Collect(&mut line));
        let Ok(mut text) = serde_json::to_vec(&line) else {
            return;
        };
        text.push(b'\n');
        if let Ok(mut writer) = self.writer.lock() {
            // Nowhere to report a failed log write to.
            let _ = writer.write_all(&text).and_then(|()| writer.flush());
        }
    }
}

/// Logs what a tick does to its actions: each output line and status change, and each error,
/// as `tracing` events with `action` and `attempt` (the tick span adds `run` and `tick`).
#[derive(Default)]
pub struct TickLog {
    /// Attempt numbers of the actions seen in this tick: log lines do not carry them.
    attempts: Mutex<HashMap<ActionIdx, u32>>,
}

impl TickLog {
    fn attempt(&self, idx: ActionIdx) -> u32 {
        self.attempts
            .lock()
            .ok()
            .and_then(|attempts| attempts.get(&idx).copied())
            .unwrap_or(0)
    }
}

impl Observer for TickLog {
    fn tick_started(&self, _plan: &Plan, state: &RunState) {
        if let Ok(mut attempts) = self.attempts.lock() {
            attempts.clear();
            attempts.extend(
                (0..)
                    .zip(state.actions())
                    .filter(|(_, action)| action.attempt > 0 && !action.status.is_terminal())
                    .map(|(idx, action)| (idx, action.attempt)),
            );
        }
    }

    fn action_changed(&self, plan: &Plan, idx: ActionIdx, state: &ActionState) {
        if let Ok(mut attempts) = self.attempts.lock() {
            attempts.insert(idx, state.attempt);
        }
        let action = plan.label(idx);
        let status = state.status.as_str();
        match (state.status, state.error.as_deref()) {
            (ActionStatus::Failed | ActionStatus::Cancelled, Some(error)) => tracing::error!(
                action,
                attempt = state.attempt,
                status,
                "{action} {status}: {error}"
            ),
            (_, Some(error)) => tracing::warn!(
                action,
                attempt = state.attempt,
                status,
                "{action} {status}: {error}"
            ),
            (_, None) => {
                tracing::info!(action, attempt = state.attempt, status, "{action} {status}")
            }
        }
    }

    fn log(&self, plan: &Plan, idx: Option<ActionIdx>, entry: &LogEntry) {
        let Some(idx) = idx else {
            log_run_line(entry);
            return;
        };
        let action = plan.label(idx);
        let attempt = self.attempt(idx);
        let msg = entry.msg.as_str();
        match entry.level {
            Level::Debug => tracing::debug!(action, attempt, "{msg}"),
            Level::Info => tracing::info!(action, attempt, "{msg}"),
            Level::Warn => tracing::warn!(action, attempt, "{msg}"),
            Level::Error => tracing::error!(action, attempt, "{msg}"),
        }
    }
}

fn log_run_line(entry: &LogEntry) {
    let msg = entry.msg.as_str();
    match entry.level {
        Level::Debug => tracing::debug!("{msg}"),
        Level::Info => tracing::info!("{msg}"),
        Level::Warn => tracing::warn!("{msg}"),
        Level::Error => tracing::error!("{msg}"),
    }
}
