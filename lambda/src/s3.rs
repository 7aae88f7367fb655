//! The deployed wiring: the run named by an `s3://…/runs/<id>` locator, opened with this
//! container's plan cache, ticked by the standard executor with the container's AWS access.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use baton_core::aws::Aws;
use baton_core::run::PlanCache;
use baton_core::store::s3::{parse_url, S3Store};
use baton_core::{Run, StandardExecutor};

use crate::{handle_run, Config, HandlerError, Input, Output};

/// Performs one tick on the run named in `input`, with work stopping `config.safety_margin`
/// before `deadline`.
pub async fn handle(
    aws: Arc<Aws>,
    input: Input,
    deadline: Instant,
    config: &Config,
) -> Result<Output, HandlerError> {
    let locator = input.run.clone();
    let result = handle_input(aws, input, deadline, config).await;
    if let Err(err) = &result {
        // The error also ends up in the execution's history; here it sits beside the tick's
        // lines, under the run's id.
        let run = locator
            .rsplit('/')
            .find(|part| !part.is_empty())
            .unwrap_or_default();
        tracing::error!(run, error_type = err.error_type(), "{err}");
    }
    result
}

async fn handle_input(
    aws: Arc<Aws>,
    input: Input,
    deadline: Instant,
    config: &Config,
) -> Result<Output, HandlerError> {
    let (bucket, run_prefix) = parse_run_locator(&input.run)?;
    let client = aws.s3(&Default::default()).await;
    // A warm container re-opens the same run on every tick: its plan is parsed once.
    static PLANS: OnceLock<PlanCache> = OnceLock::new();
    let plans = PLANS.get_or_init(PlanCache::default);
    let run = Run::open_cached(S3Store::new(client, &bucket, &run_prefix), plans).await?;
    let mut executor = StandardExecutor::with_aws(aws).refusing_local_files(NO_LOCAL_FILES);
    if let Some(tasks) = &config.command_tasks {
        executor = executor.sending_commands_to(tasks.clone());
    } else if let Some(problem) = &config.command_tasks_problem {
        executor = executor.refusing_commands(problem.clone());
    } else if !config.allow_commands {
        executor = executor.refusing_commands(COMMANDS_OFF);
    }
    handle_run(&run, &Arc::new(executor), input, deadline, config).await
}

/// Why a `system.command` fails in a runner that was not deployed to run commands.
const COMMANDS_OFF: &str = "system.command is turned off in this runner: commands must be \
    enabled on purpose. Deploy cloudformation/runner.yaml with CommandCluster and \
    CommandTaskDefinition (each command runs as an ECS task, for as long as it needs), or with \
    AllowCommands=true (commands run inside the tick with the runner's role, bounded by the \
    function's timeout), or run this action file with `baton run` on a machine";

/// Why a `template_file` still in the plan fails here: the function's own files are nobody's
/// templates, and `baton submit` uploads template files beside the run.
const NO_LOCAL_FILES: &str = "the runner reads no files of its own machine; `baton submit` \
    uploads template files beside the run, so submit the action file again, or use template_url";

/// `s3://bucket/prefix/runs/<run-id>` split into the bucket and the run's prefix.
pub fn parse_run_locator(locator: &str) -> Result<(String, String), HandlerError> {
    parse_url(locator)
        .filter(|(_, prefix)| prefix.contains("runs/"))
        .ok_or_else(|| {
            HandlerError::BadPayload(format!(
                "\"run\" must be s3://bucket/prefix/runs/<run-id>, got {locator:?}"
            ))
        })
}
