//! baton-lambda: one engine tick per Lambda invocation, driven by the Step Functions loop in
//! `cloudformation/`. The handler is a plain async function of a small payload (a pointer to
//! the run in S3), so it is tested without Lambda; `main.rs` only wires it to the runtime.
//! [`handle_run`] decides (budget, tick, continue-as-new, failure summary, error class) for any
//! store and executor; [`handle`] opens the run in S3 and calls it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::driver::{tick, TickOptions, TickReport};
use baton_core::{Executor, Next, Payload, Run, RunError, RunStore, StoreError};
use serde::{Deserialize, Serialize};

mod logging;
mod s3;
pub use logging::{JsonLines, TickLog};
pub use s3::{handle, parse_run_locator};

/// What the state machine passes in: at least the run; the rest is what the last tick returned.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Input {
    /// `s3://bucket/prefix/runs/<run-id>`.
    pub run: String,
    /// Ticks performed in this Step Functions execution so far.
    #[serde(default)]
    pub execution_ticks: u64,
    /// Options of this chain of executions, carried into continuations.
    #[serde(default)]
    pub options: ExecutionOptions,
}

/// Settings an execution's input may give, overriding the function's environment for that
/// execution and its continuations (one function serves every run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ExecutionOptions {
    /// Ticks per execution before continuing in a fresh one (`BATON_CONTINUE_AFTER_TICKS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_after_ticks: Option<u64>,
}

/// What the handler returns: the tick's [`Payload`], with `execution_ticks` counted and
/// `flow_control: continue` when this execution should hand over to a fresh one, and the
/// input's `options` (always present: the state machine's continue-as-new passes them on).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    /// What the tick says.
    #[serde(flatten)]
    pub payload: Payload,
    /// The execution's options, as given.
    pub options: ExecutionOptions,
}

impl std::ops::Deref for Output {
    type Target = Payload;
    fn deref(&self) -> &Payload {
        &self.payload
    }
}

/// The function's settings, from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Stop starting work this long before the invocation's deadline.
    pub safety_margin: Duration,
    /// Ticks per execution before continuing in a fresh one. Each loop adds about ten history
    /// events; 2,000 ticks stay well under the 25,000-event limit.
    pub continue_after: u64,
    /// Whether `system.command` runs here. Off unless the deployment turns it on: a command
    /// runs with the function's role, which reaches further than whoever submits runs should.
    pub allow_commands: bool,
    /// Where `system.command` runs instead of inside the tick: ECS tasks, started by one tick
    /// and checked by later ones (a command may then outlive any invocation). Wins over
    /// `allow_commands`.
    pub command_tasks: Option<baton_core::CommandTasks>,
    /// Why the command settings are unusable (one of cluster and task definition given
    /// without the other): commands fail saying so.
    pub command_tasks_problem: Option<String>,
    /// Role assumed in an account an action names without a `role_arn`; the runner's IAM
    /// policy allows assuming exactly this name.
    pub role_name: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            safety_margin: Duration::from_secs(10),
            continue_after: 2_000,
            allow_commands: false,
            command_tasks: None,
            command_tasks_problem: None,
            role_name: "baton-deployer".into(),
        }
    }
}

impl Config {
    /// [`Config::from_vars`] of this process's environment.
    pub fn from_env() -> Self {
        Config::from_vars(|name| std::env::var(name).ok())
    }

    /// `BATON_SAFETY_MARGIN_SECONDS`, `BATON_CONTINUE_AFTER_TICKS`, `BATON_ALLOW_COMMANDS`
    /// (`true` turns commands on; anything else leaves them off) and `BATON_ROLE_NAME` override
    /// the defaults; `BATON_COMMAND_CLUSTER` with `BATON_COMMAND_TASK_DEFINITION` send commands
    /// to ECS (with `BATON_COMMAND_CONTAINER`, `BATON_COMMAND_LAUNCH_TYPE`,
    /// `BATON_COMMAND_SUBNETS` and `BATON_COMMAND_SECURITY_GROUPS` (comma-separated) and
    /// `BATON_COMMAND_ASSIGN_PUBLIC_IP`); `var` looks a variable up.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let mut config = Config::default();
        if let Some(s) = var("BATON_SAFETY_MARGIN_SECONDS").and_then(|v| v.parse().ok()) {
            config.safety_margin = Duration::from_secs(s);
        }
        if let Some(n) = var("BATON_CONTINUE_AFTER_TICKS").and_then(|v| v.parse().ok()) {
            config.continue_after = n;
        }
        config.allow_commands =
            var("BATON_ALLOW_COMMANDS").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if let Some(name) = var("BATON_ROLE_NAME").filter(|name| !name.trim().is_empty()) {
            config.role_name = name.trim().to_string();
        }
        match command_tasks(&var) {
            Ok(tasks) => config.command_tasks = tasks,
            Err(problem) => config.command_tasks_problem = Some(problem),
        }
        config
    }
}

/// The ECS settings for commands, when the deployment gives them (empty values are unset:
/// CloudFormation passes an empty parameter as an empty string).
fn command_tasks(
    var: &impl Fn(&str) -> Option<String>,
) -> Result<Option<baton_core::CommandTasks>, String> {
    let get = |name: &str| {
        var(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let list = |name: &str| {
        get(name)
            .map(|v| {
                v.split(',')
                    .map(|item| item.trim().to_string())
                    .filter(|item| !item.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (cluster, task_definition) = match (
        get("BATON_COMMAND_CLUSTER"),
        get("BATON_COMMAND_TASK_DEFINITION"),
    ) {
        (None, None) => return Ok(None),
        (Some(cluster), Some(definition)) => (cluster, definition),
        (given, _) => {
            let (set, unset) = if given.is_some() {
                ("BATON_COMMAND_CLUSTER", "BATON_COMMAND_TASK_DEFINITION")
            } else {
                ("BATON_COMMAND_TASK_DEFINITION", "BATON_COMMAND_CLUSTER")
            };
            return Err(format!(
                "{set} is set but {unset} is not: commands need both (deploy \
                 cloudformation/runner.yaml with CommandCluster and CommandTaskDefinition)"
            ));
        }
    };
    Ok(Some(baton_core::CommandTasks {
        cluster,
        task_definition,
        container: get("BATON_COMMAND_CONTAINER"),
        launch_type: get("BATON_COMMAND_LAUNCH_TYPE"),
        subnets: list("BATON_COMMAND_SUBNETS"),
        security_groups: list("BATON_COMMAND_SECURITY_GROUPS"),
        assign_public_ip: get("BATON_COMMAND_ASSIGN_PUBLIC_IP")
            .map(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("enabled")),
        region: None,
    }))
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
    /// The run cannot be read: it does not exist, or the function may not read it (S3 answers
    /// 403 for both when the caller may not list the bucket). An operator must look.
    #[error("{0}")]
    Unreadable(String),
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
            HandlerError::BadPayload(_)
            | HandlerError::Damaged(_)
            | HandlerError::Unreadable(_) => "Baton.Fatal",
        }
    }
}

impl From<RunError> for HandlerError {
    fn from(err: RunError) -> Self {
        match &err {
            RunError::Store(StoreError::Conflict { .. }) => HandlerError::Conflict(err.to_string()),
            RunError::Store(StoreError::NotFound { .. } | StoreError::Denied { .. }) => {
                HandlerError::Unreadable(err.to_string())
            }
            RunError::Damaged { .. } | RunError::Store(StoreError::Corrupt { .. }) => {
                HandlerError::Damaged(err.to_string())
            }
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
    match tick(run, executor, &options, &TickLog::default()).await {
        Ok(report) => Ok(output(&report, &run.plan, input, config)),
        Err(RunError::Store(StoreError::Busy { holder, .. })) => {
            wait_for_lease(run, input, config, &holder).await
        }
        Err(err) => Err(err.into()),
    }
}

/// Longest pause before looking at a leased run again. A lease lasts 30 s, renewed while its
/// holder works, but a holder that finishes releases it at once: looking every 10 s keeps the
/// run from idling long after, for about five history events a look.
const LEASE_WAIT_MAX: Duration = Duration::from_secs(10);

/// Another driver (a `baton resume` on someone's machine, a tick of another execution) holds
/// the run's lease: the execution waits for it to lapse or be released and ticks again, rather
/// than failing while the run is healthy.
async fn wait_for_lease<S: RunStore>(
    run: &Run<S>,
    input: Input,
    config: &Config,
    holder: &str,
) -> Result<Output, HandlerError> {
    let (state, version) = run.load().await?;
    let now = chrono::Utc::now();
    let left = state
        .driver()
        .and_then(|lease| (lease.until - now).to_std().ok());
    let next = match left {
        Some(left) => Next::Wait((left + Duration::from_secs(1)).min(LEASE_WAIT_MAX)),
        None => Next::Execute,
    };
    tracing::warn!(
        run = state.run_id(),
        "the run is driven elsewhere{holder}; this execution waits and ticks again"
    );
    let report = TickReport {
        next,
        state,
        version,
    };
    Ok(output(&report, &run.plan, input, config))
}

/// The state machine's view of a tick: the engine's payload, plus the continue-as-new decision
/// this execution's tick count calls for.
fn output(report: &TickReport, plan: &baton_core::Plan, input: Input, config: &Config) -> Output {
    let continue_after = input
        .options
        .continue_after_ticks
        .unwrap_or(config.continue_after);
    let mut payload = Payload::new(input.run, report, plan);
    payload.execution_ticks = input.execution_ticks + 1;
    if report.next.is_unfinished() && payload.execution_ticks >= continue_after {
        payload.next = Next::Continue;
    }
    Output {
        payload,
        options: input.options,
    }
}

/// Flat JSON log lines on stdout (see [`JsonLines`]): `run`, `tick`, `action`, `attempt`,
/// `level` and `message`, so CloudWatch Logs Insights can split the threads. `BATON_LOG` sets
/// the filter (default `info`).
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(JsonLines::new(std::io::stdout()))
        .try_init();
}
