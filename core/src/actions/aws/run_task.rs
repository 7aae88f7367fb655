//! `aws.run_task`: runs a command as an Amazon ECS task (Fargate or EC2) and follows it on
//! later checks, its container's output streamed from CloudWatch Logs into the log thread.
//! Completes when the container exits 0 (outputs: the task's ARN and exit code, plus the keys
//! of a JSON object on its last output line), fails on any other exit, and is stopped with
//! `StopTask` on abort or timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{AccountId, Flag, Tags};
use crate::actions::{Mode, ParamsProblem, Schema, TypeSpec};

/// The `aws.run_task` type.
pub struct RunTask;

impl Schema for RunTask {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.run_task",
        mode: Mode::Async,
        poll_interval: Duration::from_secs(5),
        can_cancel: true,
        // A replayed start finds the task its attempt started (by `startedBy`).
        replay_safe: true,
    };
    const FEATURE: &'static str = "aws-ecs";
    type Params = Params;

    fn validate(params: &Params) -> Result<(), ParamsProblem> {
        if let Some(command) = &params.command {
            crate::actions::command::argv(command, params.shell)?;
        }
        if let Some(flag) = &params.assign_public_ip {
            flag.validate("assign_public_ip")?;
        }
        if let Some(launch) = &params.launch_type {
            let known = ["FARGATE", "EC2", "EXTERNAL"];
            if !crate::template::is_template(launch) && !known.contains(&launch.as_str()) {
                return Err(ParamsProblem::new(
                    "launch_type",
                    format!("\"{launch}\" is not one of FARGATE, EC2, EXTERNAL"),
                ));
            }
        }
        if params.security_groups.is_some() && params.subnets.is_none() {
            return Err(ParamsProblem::new(
                "security_groups",
                "security groups apply to the task's network interface: give subnets too",
            ));
        }
        Ok(())
    }

    fn abort_note() -> String {
        "the ECS task could not be stopped; it may still be running".into()
    }
}

/// Params of `aws.run_task`.
#[allow(missing_docs)] // ECS's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The cluster's name or ARN.
    pub cluster: String,
    /// The task definition: `family`, `family:revision` or its ARN.
    pub task_definition: String,
    /// The container to run the command in (default: the task definition's first).
    pub container: Option<String>,
    /// argv as a list, or one string with `shell: true` (run with `sh -c`); default: the
    /// container's own command.
    pub command: Option<Value>,
    /// Run `command` (one string) with `sh -c`.
    #[serde(default)]
    pub shell: bool,
    /// Added to the container's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// FARGATE, EC2 or EXTERNAL; default: the cluster's capacity provider strategy.
    pub launch_type: Option<String>,
    /// Subnets of the task's network interface (tasks in `awsvpc` mode, e.g. Fargate).
    pub subnets: Option<Vec<String>>,
    /// Security groups of the task's network interface.
    pub security_groups: Option<Vec<String>>,
    /// Whether the task's interface gets a public IP (Fargate in a public subnet).
    pub assign_public_ip: Option<Flag>,
    /// Task CPU and memory overrides, as ECS writes them (`"1024"`, `"2048"`).
    pub cpu: Option<String>,
    pub memory: Option<String>,
    /// The role the task's containers run with (the runner must be allowed to pass it).
    pub task_role_arn: Option<String>,
    pub platform_version: Option<String>,
    pub tags: Option<Tags>,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(not(feature = "aws-ecs"))]
#[cfg(feature = "aws")]
super::needs_feature!(RunTask);

#[cfg(feature = "aws-ecs")]
mod calls {
    use serde_json::json;

    use super::{Params, RunTask};
    use crate::actions::aws::ecs::{self, Finished, TaskSpec};
    use crate::actions::aws::tag_pairs;
    use crate::actions::{Behaviour, CancelError, CheckRequest, Env, Outcome, StartRequest};

    impl Behaviour for RunTask {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            let aws = match env.aws() {
                Ok(aws) => aws,
                Err(outcome) => return outcome,
            };
            let spec = match spec(&params) {
                Ok(spec) => spec,
                Err(problem) => return problem.into_outcome(),
            };
            ecs::start(aws, &params.target(aws), &spec, request).await
        }

        async fn check(env: &Env, _params: Params, request: &CheckRequest) -> Outcome {
            let aws = match env.aws() {
                Ok(aws) => aws,
                Err(outcome) => return outcome,
            };
            match ecs::check(aws, request).await {
                Ok(Finished::Succeeded(mut outputs)) => {
                    if let Some(task) = ecs::TaskHandle::of(&request.handle) {
                        outputs.insert("TaskArn".into(), json!(task.task_arn));
                    }
                    outputs.insert("ExitCode".into(), json!(0));
                    Outcome::Complete { outputs }
                }
                Ok(Finished::Other(outcome)) | Err(outcome) => outcome,
            }
        }

        async fn cancel(
            env: &Env,
            _params: Params,
            request: &CheckRequest,
        ) -> Result<(), CancelError> {
            let aws = env
                .aws()
                .map_err(|_| CancelError::Refused("no AWS configuration".into()))?;
            ecs::stop(aws, request).await
        }
    }

    fn spec(p: &Params) -> Result<TaskSpec, crate::actions::ParamsProblem> {
        let command = p
            .command
            .as_ref()
            .map(|c| crate::actions::command::argv(c, p.shell))
            .transpose()?;
        let assign_public_ip = p
            .assign_public_ip
            .as_ref()
            .map(|f| f.value("assign_public_ip"))
            .transpose()?;
        Ok(TaskSpec {
            cluster: p.cluster.clone(),
            task_definition: p.task_definition.clone(),
            container: p.container.clone(),
            command,
            environment: p.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            launch_type: p.launch_type.clone(),
            subnets: p.subnets.clone().unwrap_or_default(),
            security_groups: p.security_groups.clone().unwrap_or_default(),
            assign_public_ip,
            cpu: p.cpu.clone(),
            memory: p.memory.clone(),
            task_role_arn: p.task_role_arn.clone(),
            platform_version: p.platform_version.clone(),
            tags: tag_pairs(p.tags.as_ref()),
        })
    }
}
