//! `system.command`: runs a program (argv, no shell unless `shell: true`) in its own process
//! group, streams its stdout and stderr lines into the action's log thread, fails on a non-zero
//! exit, and takes the last stdout line as outputs when it is a JSON object.
//!
//! The action ends when its process group does, not when its pipes close: a background child
//! keeps it running (within its timeout), and a daemon that left the group while holding the
//! pipes does not hold up the run. A timeout, an abort, a signal to baton or quitting the
//! console stops the whole group: SIGTERM, the grace period, then SIGKILL.

use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{
    Behaviour, Control, Env, LogSink, Mode, Outcome, ParamsProblem, Schema, StartRequest, TypeSpec,
};
use crate::duration::{format_duration, parse_duration, seconds_to_duration};
use crate::log::Level;
use crate::process::StopCause;
use crate::process::{self, GroupGuard, ProcessRecord, StopResult};
use crate::template::is_template;

/// The `system.command` type.
pub struct Command;

impl Schema for Command {
    const SPEC: TypeSpec = TypeSpec {
        name: "system.command",
        mode: Mode::Sync,
        poll_interval: Duration::ZERO,
        can_cancel: false,
        replay_safe: false,
    };
    type Params = Params;

    fn validate(params: &Params) -> Result<(), ParamsProblem> {
        params.argv()?;
        params.check_env()?;
        if params.cwd.as_deref().is_some_and(|cwd| cwd.contains('\0')) {
            return Err(ParamsProblem::new("cwd", "contains a NUL byte"));
        }
        match &params.grace {
            Some(Value::String(text)) if is_template(text) => Ok(()),
            _ => params.grace_param().map(drop),
        }
    }
}

impl Behaviour for Command {
    async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
        #[cfg(feature = "aws-ecs")]
        if let Some(tasks) = &env.command_tasks {
            return on_ecs::start(env, tasks, &params, request).await;
        }
        let _ = env;
        run(&params, request).await
    }

    // A command is checked and stopped only when it runs as a remote task; a local one
    // finishes within its start.
    async fn check(env: &Env, _params: Params, request: &super::CheckRequest) -> Outcome {
        if !runs_remotely(&request.handle) {
            return Outcome::failed("system.command actions are not checked");
        }
        #[cfg(feature = "aws-ecs")]
        return on_ecs::check(env, request).await;
        #[cfg(not(feature = "aws-ecs"))]
        {
            let _ = env;
            Outcome::failed(
                "system.command runs as an ECS task, which this baton build cannot check (it \
                 has no `aws-ecs` feature); drive the run with a build that has",
            )
        }
    }

    async fn cancel(
        env: &Env,
        _params: Params,
        request: &super::CheckRequest,
    ) -> Result<(), super::CancelError> {
        if !runs_remotely(&request.handle) {
            return Err(super::CancelError::Unsupported {
                type_name: Command::SPEC.name,
            });
        }
        #[cfg(feature = "aws-ecs")]
        return on_ecs::stop(env, request).await;
        #[cfg(not(feature = "aws-ecs"))]
        {
            let _ = env;
            Err(super::CancelError::Refused(
                "this baton build has no `aws-ecs` feature to stop the command's ECS task".into(),
            ))
        }
    }
}

/// Whether a running command's handle is a remote task's (a local command never has one).
pub fn runs_remotely(handle: &Value) -> bool {
    handle.get("ecs").is_some_and(Value::is_object)
}

/// Where a runner sends `system.command`: each attempt becomes a task of `task_definition` on
/// `cluster`, its argv the container's command and its `env` added to the container's
/// environment. What the container has (image, tools, credentials) is the deployment's choice.
#[cfg(feature = "aws-ecs")]
#[derive(Debug, Clone, Default)]
pub struct CommandTasks {
    /// The cluster's name or ARN.
    pub cluster: String,
    /// The task definition (`family`, `family:revision` or ARN).
    pub task_definition: String,
    /// The container that runs the command (default: the task definition's first).
    pub container: Option<String>,
    /// `FARGATE`, `EC2` or `EXTERNAL` (default: the cluster's capacity provider strategy).
    pub launch_type: Option<String>,
    /// Subnets of the task's network interface (`awsvpc` tasks, e.g. Fargate).
    pub subnets: Vec<String>,
    /// Security groups of the task's network interface.
    pub security_groups: Vec<String>,
    /// Whether the interface gets a public IP.
    pub assign_public_ip: Option<bool>,
    /// The cluster's region (default: the runner's).
    pub region: Option<String>,
}

#[cfg(feature = "aws-ecs")]
mod on_ecs {
    use super::{CommandTasks, Params};
    use crate::actions::aws::ecs::{self, Finished, TaskSpec};
    use crate::actions::{CancelError, CheckRequest, Env, Outcome, StartRequest};
    use crate::aws::Target;

    pub(super) async fn start(
        env: &Env,
        tasks: &CommandTasks,
        params: &Params,
        request: &StartRequest,
    ) -> Outcome {
        let aws = match env.aws() {
            Ok(aws) => aws,
            Err(outcome) => return outcome,
        };
        if params.cwd.is_some() {
            return Outcome::failed(
                "params.cwd: this runner runs commands as ECS tasks, whose working directory is \
                 the container's; drop cwd, or `cd` in a shell command",
            );
        }
        let command = match params.argv() {
            Ok(argv) => argv,
            Err(problem) => return problem.into_outcome(),
        };
        let spec = TaskSpec {
            cluster: tasks.cluster.clone(),
            task_definition: tasks.task_definition.clone(),
            container: tasks.container.clone(),
            command: Some(command),
            environment: params
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            launch_type: tasks.launch_type.clone(),
            subnets: tasks.subnets.clone(),
            security_groups: tasks.security_groups.clone(),
            assign_public_ip: tasks.assign_public_ip,
            ..TaskSpec::default()
        };
        let target = Target::new(tasks.region.as_deref(), None, None, aws.role_name());
        ecs::start(aws, &target, &spec, request).await
    }

    pub(super) async fn check(env: &Env, request: &CheckRequest) -> Outcome {
        let aws = match env.aws() {
            Ok(aws) => aws,
            Err(outcome) => return outcome,
        };
        match ecs::check(aws, request).await {
            // The same outputs as when it runs locally: its last line's object.
            Ok(Finished::Succeeded(outputs)) => Outcome::Complete { outputs },
            Ok(Finished::Other(outcome)) | Err(outcome) => outcome,
        }
    }

    pub(super) async fn stop(env: &Env, request: &CheckRequest) -> Result<(), CancelError> {
        let aws = env
            .aws()
            .map_err(|_| CancelError::Refused("no AWS configuration".into()))?;
        ecs::stop(aws, request).await
    }
}

/// Longest log line kept; longer lines are cut (with a marker) so one chatty command cannot
/// bloat state.
const MAX_LINE: usize = 2000;

/// Longest last stdout line read as the outputs object. Outputs live in the state document,
/// which is saved whole: larger results belong in a file whose path the command outputs.
const MAX_OUTPUTS: usize = 1024 * 1024;

/// How long the pipes may stay open once the process group is gone: only a process that left
/// the group (a daemon) can still hold them, and its output is not the command's.
const DRAIN: Duration = Duration::from_millis(250);

/// Params of `system.command`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// argv as a list, or one string when `shell` is true.
    pub command: Value,
    /// Run `command` (one string) with `sh -c`.
    #[serde(default)]
    pub shell: bool,
    /// Added to the inherited environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: baton's).
    pub cwd: Option<String>,
    /// Safe to run again if an earlier attempt was interrupted with an unknown outcome.
    #[serde(default)]
    pub idempotent: bool,
    /// Time between SIGTERM and SIGKILL when baton stops the command (seconds or a duration
    /// such as `"30s"`); default `BATON_KILL_GRACE`, else 10 s.
    pub grace: Option<Value>,
}

impl Params {
    /// The program and its arguments.
    pub fn argv(&self) -> Result<Vec<String>, ParamsProblem> {
        argv(&self.command, self.shell)
    }
    /// Environment names must be names: no `=` (it would split into another variable), no NUL
    /// (no program can receive it), not empty; values no NUL.
    fn check_env(&self) -> Result<(), ParamsProblem> {
        for (name, value) in &self.env {
            let path = format!("env.{name}");
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(ParamsProblem::new(
                    path.escape_debug().to_string(),
                    "is not a variable name (it must be non-empty, without '=' or NUL bytes)",
                ));
            }
            if value.contains('\0') {
                return Err(ParamsProblem::new(path, "contains a NUL byte"));
            }
        }
        Ok(())
    }

    /// The `grace` param, when given.
    fn grace_param(&self) -> Result<Option<Duration>, ParamsProblem> {
        let parsed = match &self.grace {
            None => return Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| "is not a number".to_string())
                .and_then(|s| seconds_to_duration(s).map_err(|e| e.to_string())),
            Some(Value::String(text)) => parse_duration(text).map_err(|e| e.to_string()),
            Some(other) => Err(format!(
                "must be a number of seconds or a duration, not {other}"
            )),
        };
        parsed
            .map(Some)
            .map_err(|message| ParamsProblem::new("grace", message))
    }

    /// Time between SIGTERM and SIGKILL: the param, else `BATON_KILL_GRACE`, else the default.
    fn grace(&self) -> Result<Duration, String> {
        match self.grace_param() {
            Ok(Some(grace)) => Ok(grace),
            Ok(None) => process::grace_from_env(),
            Err(problem) => Err(format!("params.grace: {}", problem.message)),
        }
    }
}

/// The program and arguments of a `command` param: argv as a list, or one string run with
/// `sh -c` when `shell` is true.
pub(crate) fn argv(command: &Value, shell: bool) -> Result<Vec<String>, ParamsProblem> {
    match (command, shell) {
        (Value::String(script), true) if script.contains('\0') => Err(ParamsProblem::new(
            "command",
            "contains a NUL byte, which no program can receive",
        )),
        (Value::String(script), true) if !script.trim().is_empty() => {
            Ok(vec!["sh".into(), "-c".into(), script.clone()])
        }
        (Value::String(_), false) => Err(ParamsProblem::new(
            "command",
            "a string needs \"shell\": true; otherwise give argv as a list, e.g. [\"ls\", \"-l\"]",
        )),
        (Value::Array(items), false) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item.as_str() {
                Some(arg) if arg.contains('\0') => Err(ParamsProblem::new(
                    format!("command[{i}]"),
                    "contains a NUL byte, which no program can receive",
                )),
                Some(arg) => Ok(arg.to_string()),
                None => Err(ParamsProblem::new(
                    format!("command[{i}]"),
                    "must be a string",
                )),
            })
            .collect(),
        (Value::Array(_), true) => Err(ParamsProblem::new(
            "command",
            "with \"shell\": true, give the script as one string",
        )),
        _ => Err(ParamsProblem::new(
            "command",
            "must be a non-empty list of strings",
        )),
    }
}

/// How the command's process group ended.
enum End {
    /// Its first process exited (with this status) and no process is left in its group.
    Exited(std::io::Result<ExitStatus>),
    /// The time limit passed and baton stopped the group.
    TimedOut(Duration, Stopping),
    /// baton was asked to stop it.
    Stopped(StopCause, Stopping),
}

/// A stop of the group, and whether its first process had already exited by then (only its
/// background processes were left).
struct Stopping {
    result: StopResult,
    first_exited: Option<ExitStatus>,
}

impl Stopping {
    fn describe(&self) -> String {
        match self.first_exited {
            Some(status) => format!(
                "{}; its first process had already exited ({}), so only what it left \
                 running was stopped",
                self.result.describe(),
                exit_words(status)
            ),
            None => self.result.describe(),
        }
    }
}

/// Runs the command until its process group is gone, it runs out of time, or baton is asked
/// to stop it.
async fn run(params: &Params, request: &StartRequest) -> Outcome {
    let argv = match params.argv() {
        Ok(argv) => argv,
        Err(problem) => return problem.into_outcome(),
    };
    let grace = match params.grace() {
        Ok(grace) => request.control.grace(grace),
        Err(problem) => return Outcome::failed(problem),
    };
    let mut child = match spawn(params, &argv) {
        Ok(child) => child,
        Err(outcome) => return outcome,
    };
    let Some(pgid) = child.id() else {
        return Outcome::failed(format!("{:?} started but has no process id", argv[0]));
    };
    let guard = GroupGuard::new(pgid, true);
    request.control.started(ProcessRecord::new(pgid, grace));
    let stdout = child
        .stdout
        .take()
        .map(|out| Pump::start(out, request.log.clone(), Level::Info, MAX_OUTPUTS + 1));
    let stderr = child
        .stderr
        .take()
        .map(|err| Pump::start(err, request.log.clone(), Level::Warn, MAX_LINE + 4));
    let mut control = request.control.clone();
    let end = supervise(
        &mut child,
        pgid,
        request.limit,
        grace,
        &mut control,
        &request.log,
    )
    .await;
    let last_stdout = Pump::finish(stdout).await;
    let last_stderr = Pump::finish(stderr).await;
    drop(guard);
    outcome(&argv[0], end, last_stdout, last_stderr)
}

fn spawn(params: &Params, argv: &[String]) -> Result<tokio::process::Child, Outcome> {
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .envs(&params.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: baton stops the command and everything it started as one,
        // and Ctrl-C in the operator's terminal reaches baton alone, which decides what stops.
        .process_group(0);
    if let Some(cwd) = &params.cwd {
        // A missing folder fails the spawn with the same "not found" as a missing program:
        // tell them apart before blaming the program.
        if !std::path::Path::new(cwd).is_dir() {
            return Err(Outcome::failed(format!(
                "params.cwd: {cwd:?} is not a folder (does it exist on this machine?)"
            )));
        }
        command.current_dir(cwd);
    }
    command.spawn().map_err(|err| {
        let hint = if err.kind() == std::io::ErrorKind::NotFound {
            " (is it installed and on PATH?)"
        } else {
            ""
        };
        Outcome::failed(format!("cannot start {:?}: {err}{hint}", argv[0]))
    })
}

/// Waits for the first process, then for whatever it left running in its group, within the
/// time limit and until asked to stop.
async fn supervise(
    child: &mut tokio::process::Child,
    pgid: u32,
    limit: Option<Duration>,
    grace: Duration,
    control: &mut Control,
    log: &LogSink,
) -> End {
    let deadline = async {
        match limit {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let stop = |first_exited| async move {
        let result = process::stop_group(pgid, grace).await;
        Stopping {
            result,
            first_exited,
        }
    };
    let status = tokio::select! {
        status = child.wait() => status,
        () = &mut deadline => {
            let stopping = stop(None).await;
            reap(child, &stopping).await;
            return End::TimedOut(limit.unwrap_or_default(), stopping);
        }
        cause = control.stop_requested() => {
            let stopping = stop(None).await;
            reap(child, &stopping).await;
            return End::Stopped(cause, stopping);
        }
    };
    let first_exited = status.as_ref().ok().copied();
    let mut said = false;
    loop {
        if !process::group_alive(pgid) {
            return End::Exited(status);
        }
        if !said {
            said = true;
            let how = first_exited.map_or_else(|| "exited".to_string(), exit_words);
            log.send(
                Level::Info,
                format!("its first process {how}; waiting for the processes it left running in its process group"),
            );
        }
        tokio::select! {
            () = tokio::time::sleep(process::IDLE_POLL) => {}
            () = &mut deadline => {
                return End::TimedOut(limit.unwrap_or_default(), stop(first_exited).await);
            }
            cause = control.stop_requested() => return End::Stopped(cause, stop(first_exited).await),
        }
    }
}

/// Collects the stopped first process's exit, so it does not linger as a zombie.
async fn reap(child: &mut tokio::process::Child, stopping: &Stopping) {
    if stopping.result.gone {
        let _ = child.wait().await;
    }
}

fn exit_words(status: ExitStatus) -> String {
    status.code().map_or_else(
        || "was killed by a signal".to_string(),
        |c| format!("exited with status {c}"),
    )
}

fn outcome(program: &str, end: End, stdout: LastLine, stderr: LastLine) -> Outcome {
    match end {
        End::Exited(Ok(status)) if status.success() => match stdout.outputs() {
            Ok(outputs) => Outcome::Complete { outputs },
            Err(error) => Outcome::failed(error),
        },
        End::Exited(Ok(status)) => {
            let detail = stderr
                .text()
                .or_else(|| stdout.text())
                .map(|l| format!(": {l}"))
                .unwrap_or_default();
            Outcome::Failed {
                error: format!("{program} {}{detail}", exit_words(status)),
                retryable: true,
            }
        }
        End::Exited(Err(err)) => Outcome::failed(format!("waiting for {program:?} failed: {err}")),
        End::TimedOut(limit, stopping) => Outcome::Failed {
            error: format!(
                "timed out after {} ({})",
                format_duration(limit),
                stopping.describe()
            ),
            retryable: true,
        },
        End::Stopped(cause, stopping) => Outcome::Stopped {
            cause,
            detail: stopping.describe(),
        },
    }
}

/// The last non-empty line of a stream: its first bytes (as many as the pump keeps) and its
/// full length.
#[derive(Debug, Default)]
struct LastLine {
    bytes: Vec<u8>,
    len: usize,
}

impl LastLine {
    /// For an error message: lossy UTF-8, cut like a log line.
    fn text(&self) -> Option<String> {
        (self.len > 0).then(|| cut_for_log(&String::from_utf8_lossy(&self.bytes), self.len))
    }

    /// The outputs object, when the line is one. A line that merely is not JSON is output
    /// like any other; one that starts like an object but is too long to be read is an error
    /// rather than outputs silently dropped.
    fn outputs(&self) -> Result<Map<String, Value>, String> {
        let starts_like_object = self.bytes.trim_ascii_start().first() == Some(&b'{');
        if !starts_like_object {
            return Ok(Map::new());
        }
        if self.len > MAX_OUTPUTS {
            return Err(format!(
                "its last output line ({} bytes) is longer than the 1 MiB ({MAX_OUTPUTS} bytes) \
                 that may be read as outputs; write large results to a file and output its path",
                self.len
            ));
        }
        Ok(serde_json::from_slice(&self.bytes).unwrap_or_default())
    }
}

/// Reads one output stream as bytes, line by line, forwarding each line to the log thread.
struct Pump {
    task: JoinHandle<LastLine>,
    stop: Arc<Notify>,
}

impl Pump {
    fn start(
        stream: impl AsyncRead + Unpin + Send + 'static,
        log: LogSink,
        level: Level,
        keep: usize,
    ) -> Self {
        let stop = Arc::new(Notify::new());
        let task = tokio::spawn(pump(stream, log, level, keep, Arc::clone(&stop)));
        Pump { task, stop }
    }

    /// The stream's last line, once it ends or, if something outside the process group keeps
    /// it open, shortly after.
    async fn finish(pump: Option<Pump>) -> LastLine {
        let Some(mut pump) = pump else {
            return LastLine::default();
        };
        if let Ok(done) = tokio::time::timeout(DRAIN, &mut pump.task).await {
            return done.unwrap_or_default();
        }
        pump.stop.notify_one();
        pump.task.await.unwrap_or_default()
    }
}

/// Forwards each line (lossy UTF-8, cut at [`MAX_LINE`]) until the stream ends or `stop` is
/// notified; returns the last non-empty line, keeping its first `keep` bytes.
async fn pump(
    stream: impl AsyncRead + Unpin,
    log: LogSink,
    level: Level,
    keep: usize,
    stop: Arc<Notify>,
) -> LastLine {
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = LastLine::default();
    let mut last = LastLine::default();
    loop {
        let read = tokio::select! {
            read = reader.fill_buf() => read,
            () = stop.notified() => break,
        };
        let chunk = match read {
            Ok([]) => break,
            Ok(chunk) => chunk,
            Err(err) => {
                log.send(Level::Warn, format!("reading its output failed: {err}"));
                break;
            }
        };
        let (used, ended) = match chunk.iter().position(|&b| b == b'\n') {
            Some(newline) => (newline + 1, true),
            None => (chunk.len(), false),
        };
        let content = &chunk[..if ended { used - 1 } else { used }];
        let room = keep.saturating_sub(line.bytes.len());
        line.bytes
            .extend_from_slice(&content[..content.len().min(room)]);
        line.len += content.len();
        reader.consume(used);
        if ended {
            emit(&mut line, &mut last, &log, level);
        }
    }
    emit(&mut line, &mut last, &log, level);
    last
}

/// Sends a complete line to the log and keeps it as the last one, unless it is blank.
fn emit(line: &mut LastLine, last: &mut LastLine, log: &LogSink, level: Level) {
    if line.bytes.last() == Some(&b'\r') && line.bytes.len() == line.len {
        line.bytes.pop();
        line.len -= 1;
    }
    let taken = std::mem::take(line);
    if taken.bytes.trim_ascii().is_empty() {
        return;
    }
    log.send(
        level,
        cut_for_log(&String::from_utf8_lossy(&taken.bytes), taken.len),
    );
    *last = taken;
}

/// A line as the log keeps it: at most [`MAX_LINE`] bytes, with a marker saying how long it
/// was when it is cut.
fn cut_for_log(text: &str, full_len: usize) -> String {
    if text.len() <= MAX_LINE && full_len <= MAX_LINE {
        return text.to_string();
    }
    let mut cut = MAX_LINE.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… [line cut: {full_len} bytes]", &text[..cut])
}

/// Watches a group an earlier baton process started (it died while the command ran) until the
/// group ends by itself — `None`: no exit status reaches baton, the outcome is unknown — or
/// until its time runs out or a stop is asked for, when the group is stopped like a command
/// this process started. `limit` is what is left of the action's `timeout`.
pub(crate) async fn watch_orphan(
    record: &ProcessRecord,
    limit: Option<Duration>,
    timeout: Option<Duration>,
    control: &mut Control,
) -> Option<Outcome> {
    let _listed = GroupGuard::new(record.pgid, false);
    let deadline = async {
        match limit {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    loop {
        if record.whereabouts() != process::Whereabouts::Alive {
            return None;
        }
        tokio::select! {
            () = tokio::time::sleep(process::IDLE_POLL) => {}
            () = &mut deadline => {
                let stopped = process::stop_group(record.pgid, record.grace()).await;
                let timeout = crate::duration::format_duration(timeout.unwrap_or_default());
                return Some(Outcome::Failed {
                    error: format!(
                        "timed out after {timeout} while an earlier baton process's attempt \
                         still ran ({})",
                        stopped.describe()
                    ),
                    retryable: true,
                });
            }
            cause = control.stop_requested() => {
                let stopped = process::stop_group(record.pgid, record.grace()).await;
                return Some(Outcome::Stopped { cause, detail: stopped.describe() });
            }
        }
    }
}
