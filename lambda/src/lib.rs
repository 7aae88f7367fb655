//! baton-lambda: one engine tick per Lambda invocation, driven by the Step Functions loop in
//! `cloudformation/`. The handler is a plain async function of a small payload (a pointer to
//! the run in S3), so it is tested without Lambda; `main.rs` only wires it to the runtime.
//! [`handle_run`] decides (budget, tick, continue-as-new, failure summary, error class) for any
//! store and executor; [`handle`] opens the run in S3 and calls it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::driver::{tick, Silent, TickOptions, TickReport};
use baton_core::{
    ActionStatus, Executor, Flow, Plan, Run, RunError, RunState, RunStatus, RunStore, StoreError,
};
use serde::{Deserialize, Serialize};

mod s3;
pub use s3::{handle, parse_run_locator};

/// What the state machine passes in: at least the run; the rest is what the last tick returned.
#[derive(Debug, Clone, Deserialize)]
pub struct Input {
    /// `s3://bucket/prefix/runs/<run-id>`.
    pub run: String,
    /// Ticks performed in this Step Functions execution so far.
    #[serde(default)]
    pub execution_ticks: u64,
}

/// What the state machine routes on (`$.flow_control`), kept small: Step Functions payloads
/// are limited to 256 KB and history entries count against the execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    pub run: String,
    /// Names continuation executions (`<run-id>-c<invocations>`).
    pub run_id: String,
    pub state_version: String,
    /// `execute`, `wait`, `success`, `failure`, or `continue` (start a fresh execution before
    /// the history limit).
    pub flow_control: String,
    /// Whole seconds to wait before the next tick (`wait` only; Step Functions needs a value).
    pub wait_seconds: u64,
    pub invocations: u64,
    pub execution_ticks: u64,
    /// The run's status, for the execution's output and the console.
    pub status: String,
    /// When the run failed: which actions failed and why (the execution's error cause).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Stop starting work this long before the invocation's deadline.
    pub safety_margin: Duration,
    /// Ticks per execution before continuing in a fresh one. Each loop adds about ten history
    /// events; 2,000 ticks stay well under the 25,000-event limit.
    pub continue_after: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            safety_margin: Duration::from_secs(10),
            continue_after: 2_000,
        }
    }
}

impl Config {
    /// `BATON_SAFETY_MARGIN_SECONDS` and `BATON_CONTINUE_AFTER_TICKS` override the defaults.
    pub fn from_env() -> Self {
        let mut config = Config::default();
        if let Some(s) = std::env::var("BATON_SAFETY_MARGIN_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config.safety_margin = Duration::from_secs(s);
        }
        if let Some(n) = std::env::var("BATON_CONTINUE_AFTER_TICKS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config.continue_after = n;
        }
        config
    }
}

/// Handler errors, each telling the state machine whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The payload is wrong: retrying cannot help.
    #[error("bad payload: {0}")]
    BadPayload(String),
    /// The run's stored plan or state is damaged: an operator must look.
    #[error("{0}")]
    Damaged(String),
    /// Someone else wrote the run between load and save (another execution, an operator):
    /// a retry reloads and continues.
    #[error("{0}")]
    Conflict(String),
    /// S3 or the network failed: a retry may pass.
    #[error("{0}")]
    Unavailable(String),
}

impl HandlerError {
    /// The `error_type` Step Functions sees; its Retry matches `Baton.Retryable`.
    pub fn error_type(&self) -> &'static str {
        match self {
            HandlerError::Conflict(_) | HandlerError::Unavailable(_) => "Baton.Retryable",
            HandlerError::BadPayload(_) | HandlerError::Damaged(_) => "Baton.Fatal",
        }
    }
}

impl From<RunError> for HandlerError {
    fn from(err: RunError) -> Self {
        match &err {
            RunError::Store(StoreError::Conflict { .. }) => HandlerError::Conflict(err.to_string()),
            RunError::Store(StoreError::NotFound { .. })
            | RunError::Damaged { .. }
            | RunError::Store(StoreError::Corrupt { .. }) => HandlerError::Damaged(err.to_string()),
            _ => HandlerError::Unavailable(err.to_string()),
        }
    }
}

/// Performs one tick of `run`, with work stopping `config.safety_margin` before `deadline`,
/// and says what the state machine does next. Generic over the store and the executor so the
/// handler's decisions are tested without S3; [`handle`] is the deployed wiring.
pub async fn handle_run<S: RunStore, E: Executor>(
    run: &Run<S>,
    executor: &Arc<E>,
    input: Input,
    deadline: Instant,
    config: &Config,
) -> Result<Output, HandlerError> {
    let budget = deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(config.safety_margin);
    let options = TickOptions {
        budget,
        hard_deadline: true,
        ..TickOptions::default()
    };
    let report = tick(run, executor, &options, &Silent).await?;
    let summary = if report.status.is_finished() && report.status != RunStatus::Succeeded {
        match run.load().await {
            Ok((state, _)) => failure_summary(&run.plan, &state),
            Err(_) => String::new(),
        }
    } else {
        String::new()
    };
    Ok(output(&report, input, summary, config))
}

/// The state machine's view of a tick: the engine's payload, plus the continue-as-new decision
/// this execution's tick count calls for.
fn output(report: &TickReport, input: Input, summary: String, config: &Config) -> Output {
    let execution_ticks = input.execution_ticks + 1;
    let payload = report.payload(input.run);
    let mut flow_control = serde_json::to_value(payload.flow_control)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "failure".into());
    let unfinished = matches!(report.flow, Flow::Execute | Flow::Wait(_));
    if unfinished && execution_ticks >= config.continue_after {
        flow_control = "continue".into();
    }
    Output {
        run_id: run_id_of(&payload.run),
        summary,
        run: payload.run,
        state_version: payload.state_version,
        flow_control,
        wait_seconds: payload
            .wait_seconds
            .unwrap_or(0)
            .max(u64::from(matches!(report.flow, Flow::Wait(_)))),
        invocations: payload.invocations,
        execution_ticks,
        status: report.status.to_string(),
    }
}

fn run_id_of(locator: &str) -> String {
    locator
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// "run failed: deploy (stack app CREATE_FAILED: …); 3 blocked" — bounded, for the execution's
/// error cause.
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
    if text.len() > 4000 {
        let mut cut = 4000;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// JSON log lines on stdout with the tick's `run_id` and `invocation` and each event's
/// `action`, so CloudWatch Logs Insights can split the threads.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .flatten_event(true)
        .without_time()
        .with_target(false)
        .try_init();
}
