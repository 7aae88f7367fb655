//! Commands on Amazon ECS: one task per attempt, started with a token derived from the run,
//! the label and the attempt (so a replayed start finds the task instead of starting a second),
//! checked on later ticks with a growing interval, its container's CloudWatch Logs stream read
//! a page at a time into the action's log thread, and stopped with `StopTask` on abort or
//! timeout. Shared by `aws.run_task` and by `system.command` in a runner that sends commands to
//! a cluster ([`CommandTasks`]).

use std::time::Duration;

use aws_sdk_cloudwatchlogs as logs;
use aws_sdk_ecs as ecs;
use ecs::operation::describe_tasks::DescribeTasksError;
use ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, ContainerOverride, DesiredStatus, KeyValuePair,
    LaunchType, NetworkConfiguration, TaskOverride,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::actions::aws::call_failed;
use crate::actions::{CancelError, CheckRequest, Outcome, StartRequest};
use crate::aws::{describe, Aws, Target};
use crate::log::Level;

/// What one task runs and where: everything `RunTask` is given.
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskSpec {
    pub cluster: String,
    pub task_definition: String,
    /// The container whose command and environment are set, and whose exit code and log
    /// stream are the action's; default: the task definition's first container.
    pub container: Option<String>,
    pub command: Option<Vec<String>>,
    pub environment: Vec<(String, String)>,
    pub launch_type: Option<String>,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: Option<bool>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub task_role_arn: Option<String>,
    pub platform_version: Option<String>,
    pub tags: Vec<(String, String)>,
}

/// What a running task's checks need, kept in the action's handle (under `"ecs"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct TaskHandle {
    pub cluster: String,
    pub task_arn: String,
    /// The container the action follows.
    pub container: String,
    /// Its CloudWatch Logs stream, when it logs with the `awslogs` driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogStream>,
    /// The target's region and role, for a check made by a process that only has the handle
    /// (a command sent to ECS by the runner's settings, checked by whichever driver ticks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Checks made so far (the interval grows with them).
    #[serde(default)]
    pub checks: u32,
    /// The last non-empty line read from the log, when short enough to be outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_line: Option<String>,
    /// Lines appended to the log thread so far.
    #[serde(default)]
    pub lines: u64,
}

/// A container's CloudWatch Logs stream and how far it has been read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct LogStream {
    pub group: String,
    pub stream: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `GetLogEvents`' forward token after the last event read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl LogStream {
    /// The stream in the CloudWatch console, for an operator to open.
    pub(crate) fn console_url(&self, region: Option<&str>) -> String {
        let region = self.region.as_deref().or(region).unwrap_or("us-east-1");
        // The console's fragment encodes '/' as $252F.
        let enc = |s: &str| s.replace('/', "$252F");
        format!(
            "https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{}/log-events/{}",
            enc(&self.group),
            enc(&self.stream)
        )
    }
}

impl TaskHandle {
    /// The handle of a running action, when it is a task's.
    pub(crate) fn of(handle: &Value) -> Option<TaskHandle> {
        serde_json::from_value(handle.get("ecs")?.clone()).ok()
    }

    fn to_outcome(&self) -> Outcome {
        Outcome::Running {
            handle: serde_json::json!({ "ecs": self }),
            check_after: check_interval(self.checks),
        }
    }

    fn target(&self, aws: &Aws) -> Target {
        Target::new(
            self.region.as_deref(),
            None,
            self.role_arn.as_deref(),
            aws.role_name(),
        )
    }
}

/// 5 s, then half again each check, at most 30 s: output shows soon after a start, and a long
/// task costs a check every 30 s (one Lambda tick each, in the runner).
pub(crate) fn check_interval(checks: u32) -> Duration {
    let mut secs = 5.0_f64;
    for _ in 0..checks.min(16) {
        secs *= 1.5;
    }
    Duration::from_secs_f64(secs.min(30.0))
}

/// Most log events read per check, and most bytes appended per check: a chatty task cannot
/// bloat the state in one tick; the rest is read on the next checks.
const EVENTS_PER_CHECK: i32 = 1_000;
const BYTES_PER_CHECK: usize = 256 * 1024;
/// Longest log line kept (longer ones are cut, as for local commands).
const MAX_LINE: usize = 2000;
/// Longest last line kept in the handle to become outputs.
const MAX_OUTPUT_LINE: usize = 64 * 1024;

/// `startedBy` of an attempt's task: ECS allows 36 characters, and lists tasks by it.
pub(crate) fn started_by(request_token: &str) -> String {
    let digest = crate::util::sha256_hex(request_token.as_bytes());
    format!("baton-{}", &digest[..30])
}

/// Starts the attempt's task, or finds it when this attempt already started one.
pub(crate) async fn start(
    aws: &Aws,
    target: &Target,
    spec: &TaskSpec,
    request: &StartRequest,
) -> Outcome {
    for (field, value) in [
        ("cluster", &spec.cluster),
        ("task_definition", &spec.task_definition),
    ] {
        if let Err(problem) = super::required(field, value) {
            return problem.into_outcome();
        }
    }
    let client = aws.ecs(target).await;
    let token = request.idempotency_token();
    let by = started_by(&token);
    let existing = match find_started(&client, &spec.cluster, &by).await {
        Ok(existing) => existing,
        Err(outcome) => return outcome,
    };
    let task = match existing {
        Some(task) => {
            request.log.send(
                Level::Info,
                format!(
                    "task {} was already started by this attempt; following it",
                    task.task_arn().unwrap_or_default()
                ),
            );
            task
        }
        None => match run_task(&client, spec, &token, &by).await {
            Ok(task) => task,
            Err(outcome) => return outcome,
        },
    };
    let task_arn = task.task_arn().unwrap_or_default().to_string();
    let container = spec
        .container
        .clone()
        .or_else(|| {
            task.containers()
                .first()
                .and_then(|c| c.name())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let log = match task.task_definition_arn() {
        Some(arn) => log_stream(&client, arn, &container, &task_arn).await,
        None => None,
    };
    let region = target.region.clone().or_else(|| aws.region());
    match &log {
        Some(log) => request.log.send(
            Level::Info,
            format!(
                "started ECS task {task_arn} on cluster {}; its output: {}",
                spec.cluster,
                log.console_url(region.as_deref())
            ),
        ),
        None => request.log.send(
            Level::Warn,
            format!(
                "started ECS task {task_arn} on cluster {}; container {container:?} does not \
                 log with the awslogs driver, so its output cannot be shown and no outputs \
                 can be read from it",
                spec.cluster
            ),
        ),
    }
    TaskHandle {
        cluster: spec.cluster.clone(),
        task_arn,
        container,
        log,
        region: target.region.clone(),
        role_arn: target.role_arn.clone(),
        checks: 0,
        last_line: None,
        lines: 0,
    }
    .to_outcome()
}

/// The task an attempt started, running or stopped (ECS lists stopped tasks for about an
/// hour).
async fn find_started(
    client: &ecs::Client,
    cluster: &str,
    by: &str,
) -> Result<Option<ecs::types::Task>, Outcome> {
    for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
        let listed = client
            .list_tasks()
            .cluster(cluster)
            .started_by(by)
            .desired_status(status)
            .send()
            .await;
        let arns = match listed {
            Ok(out) => out.task_arns().to_vec(),
            Err(e) => return Err(call_failed(&format!("ListTasks on {cluster}"), &e)),
        };
        if let Some(arn) = arns.first() {
            return describe_task(client, cluster, arn)
                .await
                .map_err(|e| call_failed(&format!("DescribeTasks {arn}"), &e));
        }
    }
    Ok(None)
}

async fn run_task(
    client: &ecs::Client,
    spec: &TaskSpec,
    token: &str,
    by: &str,
) -> Result<ecs::types::Task, Outcome> {
    let mut container = ContainerOverride::builder().set_command(spec.command.clone());
    for (name, value) in &spec.environment {
        container = container.environment(KeyValuePair::builder().name(name).value(value).build());
    }
    let mut overrides = TaskOverride::builder()
        .set_cpu(spec.cpu.clone())
        .set_memory(spec.memory.clone())
        .set_task_role_arn(spec.task_role_arn.clone());
    // An override names its container: without a name the first container is meant, whose
    // name the task definition tells.
    let overridden = match &spec.container {
        Some(name) => Some(name.clone()),
        None if spec.command.is_some() || !spec.environment.is_empty() => {
            Some(first_container(client, &spec.task_definition).await?)
        }
        None => None,
    };
    if let Some(name) = overridden {
        overrides = overrides.container_overrides(container.name(name).build());
    }
    let mut call = client
        .run_task()
        .cluster(&spec.cluster)
        .task_definition(&spec.task_definition)
        .count(1)
        .started_by(by)
        .client_token(token)
        .overrides(overrides.build())
        .set_platform_version(spec.platform_version.clone());
    if let Some(launch) = &spec.launch_type {
        call = call.launch_type(LaunchType::from(launch.as_str()));
    }
    if !spec.subnets.is_empty() {
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(spec.subnets.clone()))
            .set_security_groups(
                (!spec.security_groups.is_empty()).then(|| spec.security_groups.clone()),
            )
            .set_assign_public_ip(spec.assign_public_ip.map(|on| {
                if on {
                    AssignPublicIp::Enabled
                } else {
                    AssignPublicIp::Disabled
                }
            }))
            .build();
        match vpc {
            Ok(vpc) => {
                call = call.network_configuration(
                    NetworkConfiguration::builder()
                        .awsvpc_configuration(vpc)
                        .build(),
                )
            }
            Err(e) => return Err(Outcome::failed(format!("params.subnets: {e}"))),
        }
    }
    for (key, value) in &spec.tags {
        call = call.tags(ecs::types::Tag::builder().key(key).value(value).build());
    }
    let what = format!("RunTask {} on {}", spec.task_definition, spec.cluster);
    let out = call.send().await.map_err(|e| call_failed(&what, &e))?;
    if let Some(task) = out.tasks().first() {
        return Ok(task.clone());
    }
    let why = out
        .failures()
        .iter()
        .map(|f| {
            let detail = f.detail().map(|d| format!(" ({d})")).unwrap_or_default();
            format!("{}{detail}", f.reason().unwrap_or("no reason given"))
        })
        .collect::<Vec<_>>()
        .join("; ");
    // Placement failures (no capacity, an instance out of memory) pass; another attempt may
    // be placed.
    Err(Outcome::Failed {
        error: format!("{what}: ECS started no task: {why}"),
        retryable: true,
    })
}

async fn first_container(client: &ecs::Client, task_definition: &str) -> Result<String, Outcome> {
    let what = format!("DescribeTaskDefinition {task_definition}");
    let out = client
        .describe_task_definition()
        .task_definition(task_definition)
        .send()
        .await
        .map_err(|e| call_failed(&what, &e))?;
    out.task_definition()
        .and_then(|d| d.container_definitions().first())
        .and_then(|c| c.name())
        .map(str::to_string)
        .ok_or_else(|| Outcome::failed(format!("{what}: it defines no container")))
}

/// Where the container's output goes, when it uses the `awslogs` driver: the stream is
/// `prefix/container/task-id` (ECS's naming), or nothing baton can read without a prefix.
async fn log_stream(
    client: &ecs::Client,
    task_definition: &str,
    container: &str,
    task_arn: &str,
) -> Option<LogStream> {
    let out = client
        .describe_task_definition()
        .task_definition(task_definition)
        .send()
        .await
        .ok()?;
    let def = out
        .task_definition()?
        .container_definitions()
        .iter()
        .find(|c| c.name() == Some(container))?;
    let config = def.log_configuration()?;
    if config.log_driver().as_str() != "awslogs" {
        return None;
    }
    let options = config.options()?;
    let group = options.get("awslogs-group")?.clone();
    let prefix = options.get("awslogs-stream-prefix")?;
    let task_id = task_arn.rsplit('/').next().unwrap_or(task_arn);
    Some(LogStream {
        group,
        stream: format!("{prefix}/{container}/{task_id}"),
        region: options.get("awslogs-region").cloned(),
        next_token: None,
    })
}

/// The task, if ECS still knows it.
async fn describe_task(
    client: &ecs::Client,
    cluster: &str,
    arn: &str,
) -> Result<Option<ecs::types::Task>, ecs::error::SdkError<DescribeTasksError>> {
    let out = client
        .describe_tasks()
        .cluster(cluster)
        .tasks(arn)
        .send()
        .await?;
    Ok(out.tasks().first().cloned())
}

/// How a check ends: the task's outputs once it exited 0, or the outcome it reached.
pub(crate) enum Finished {
    /// Exited 0: the outputs read from its last log line.
    Succeeded(Map<String, Value>),
    /// Anything else, as an outcome.
    Other(Outcome),
}

/// Checks the task: appends its new log lines, and says whether (and how) it ended.
pub(crate) async fn check(aws: &Aws, request: &CheckRequest) -> Result<Finished, Outcome> {
    let Some(mut handle) = TaskHandle::of(&request.handle) else {
        return Err(Outcome::failed(
            "the running action's handle names no ECS task; re-execute it",
        ));
    };
    let target = handle.target(aws);
    let client = aws.ecs(&target).await;
    let task = match describe_task(&client, &handle.cluster, &handle.task_arn).await {
        Ok(task) => task,
        // The task runs on whether or not ECS answers: a failed check is tried again later
        // (failing the action would leave the task running, and a retry would start another).
        Err(e) if crate::aws::retryable(&e) => {
            request.log.send(
                Level::Warn,
                format!(
                    "DescribeTasks {}: {}; checking again later",
                    handle.task_arn,
                    describe(&e)
                ),
            );
            handle.checks += 1;
            return Ok(Finished::Other(handle.to_outcome()));
        }
        Err(e) => {
            return Err(call_failed(
                &format!("DescribeTasks {}", handle.task_arn),
                &e,
            ))
        }
    };
    // Logs are read after the status: a task seen stopped has written all its lines.
    if let Some(log) = handle.log.clone() {
        let region = log.region.clone().or(target.region.clone());
        let logs = aws
            .logs(&Target {
                region,
                role_arn: target.role_arn.clone(),
            })
            .await;
        read_log(&logs, &mut handle, log, request).await;
    }
    handle.checks += 1;
    let Some(task) = task else {
        return Ok(Finished::Other(Outcome::failed(format!(
            "task {} is gone from cluster {} (ECS forgets stopped tasks after about an hour); \
             its outcome is unknown: check its effects, then re-execute the action",
            handle.task_arn, handle.cluster
        ))));
    };
    if task.last_status() != Some("STOPPED") {
        return Ok(Finished::Other(handle.to_outcome()));
    }
    Ok(stopped(&handle, &task))
}

fn stopped(handle: &TaskHandle, task: &ecs::types::Task) -> Finished {
    let container = task
        .containers()
        .iter()
        .find(|c| c.name() == Some(handle.container.as_str()))
        .or_else(|| task.containers().first());
    let reason = task.stopped_reason().unwrap_or("no reason given");
    let exit = container.and_then(|c| c.exit_code());
    match exit {
        Some(0) => match outputs(handle.last_line.as_deref()) {
            Ok(outputs) => Finished::Succeeded(outputs),
            Err(error) => Finished::Other(Outcome::failed(error)),
        },
        Some(code) => {
            let detail = handle
                .last_line
                .as_deref()
                .map(|l| format!(": {l}"))
                .unwrap_or_default();
            Finished::Other(Outcome::Failed {
                error: format!(
                    "task {} exited with status {code} ({reason}){detail}",
                    handle.task_arn
                ),
                retryable: true,
            })
        }
        None => {
            let container_reason = container
                .and_then(|c| c.reason())
                .map(|r| format!("; container: {r}"))
                .unwrap_or_default();
            Finished::Other(Outcome::Failed {
                error: format!(
                    "task {} stopped before its container exited ({reason}{container_reason})",
                    handle.task_arn
                ),
                retryable: true,
            })
        }
    }
}

/// The outputs object of a last line that is one (as for local commands: a line that merely
/// is not JSON gives no outputs).
fn outputs(last: Option<&str>) -> Result<Map<String, Value>, String> {
    let Some(line) = last.filter(|l| l.trim_start().starts_with('{')) else {
        return Ok(Map::new());
    };
    serde_json::from_str(line)
        .map_err(|e| format!("its last output line starts like a JSON object but is not one ({e})"))
}

/// Reads the stream's new events (a bounded number per check) into the log thread.
async fn read_log(
    client: &logs::Client,
    handle: &mut TaskHandle,
    mut log: LogStream,
    request: &CheckRequest,
) {
    let mut bytes = 0;
    let mut events = 0;
    while events < EVENTS_PER_CHECK && bytes < BYTES_PER_CHECK {
        let page = client
            .get_log_events()
            .log_group_name(&log.group)
            .log_stream_name(&log.stream)
            .start_from_head(true)
            .set_next_token(log.next_token.clone())
            .limit(EVENTS_PER_CHECK - events)
            .send()
            .await;
        let page = match page {
            Ok(page) => page,
            // The stream appears once the container writes its first line.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                break
            }
            Err(e) => {
                request.log.send(
                    Level::Warn,
                    format!(
                        "reading the task's log stream {} failed: {}; tried again on the next check",
                        log.stream,
                        describe(&e)
                    ),
                );
                break;
            }
        };
        for event in page.events() {
            let message = event
                .message()
                .unwrap_or_default()
                .trim_end_matches(['\n', '\r']);
            bytes += message.len();
            events += 1;
            if !message.trim().is_empty() {
                handle.last_line = (message.len() <= MAX_OUTPUT_LINE).then(|| message.to_string());
            }
            request.log.send(Level::Info, cut(message));
            handle.lines += 1;
        }
        let next = page.next_forward_token().map(str::to_string);
        let done = page.events().is_empty() || next == log.next_token || next.is_none();
        if next.is_some() {
            log.next_token = next;
        }
        if done {
            break;
        }
    }
    handle.log = Some(log);
}

fn cut(line: &str) -> String {
    if line.len() <= MAX_LINE {
        return line.to_string();
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes cut]", &line[..end], line.len() - end)
}

/// Stops the task (ECS sends SIGTERM, then SIGKILL after the container's stop timeout).
pub(crate) async fn stop(aws: &Aws, request: &CheckRequest) -> Result<(), CancelError> {
    let Some(handle) = TaskHandle::of(&request.handle) else {
        return Err(CancelError::Refused(
            "the running action's handle names no ECS task".into(),
        ));
    };
    let client = aws.ecs(&handle.target(aws)).await;
    let stopped = client
        .stop_task()
        .cluster(&handle.cluster)
        .task(&handle.task_arn)
        .reason(format!(
            "stopped by baton (run {}, {})",
            request.run_id, request.label
        ))
        .send()
        .await;
    match stopped {
        Ok(_) => {
            request.log.send(
                Level::Info,
                format!(
                    "StopTask {}: ECS sends its containers SIGTERM, then SIGKILL after their \
                     stop timeout",
                    handle.task_arn
                ),
            );
            Ok(())
        }
        Err(e) => Err(CancelError::Refused(format!(
            "StopTask {}: {}",
            handle.task_arn,
            describe(&e)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_slow_down_to_thirty_seconds() {
        assert_eq!(check_interval(0), Duration::from_secs(5));
        assert!(check_interval(1) > check_interval(0));
        assert_eq!(check_interval(10), Duration::from_secs(30));
        assert_eq!(check_interval(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn started_by_fits_ecs_and_differs_per_attempt() {
        let a = started_by("baton-aaaa-1");
        let b = started_by("baton-aaaa-2");
        assert!(a.len() <= 36, "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn the_last_line_is_outputs_only_when_an_object() {
        assert_eq!(outputs(None), Ok(Map::new()));
        assert_eq!(outputs(Some("done")), Ok(Map::new()));
        let out = outputs(Some(r#"{"url": "https://x"}"#)).expect("object");
        assert_eq!(out["url"], "https://x");
        assert!(outputs(Some("{not json")).is_err());
    }

    #[test]
    fn console_links_name_the_group_and_stream() {
        let log = LogStream {
            group: "/baton/commands".into(),
            stream: "cmd/main/abc".into(),
            region: None,
            next_token: None,
        };
        let url = log.console_url(Some("eu-west-1"));
        assert!(
            url.starts_with("https://eu-west-1.console.aws.amazon.com/"),
            "{url}"
        );
        assert!(
            url.ends_with("$252Fbaton$252Fcommands/log-events/cmd$252Fmain$252Fabc"),
            "{url}"
        );
    }
}
