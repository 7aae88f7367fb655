//! `system.command`: runs a program (argv, no shell unless `shell: true`), streams its stdout
//! and stderr lines into the action's log thread, fails on a non-zero exit, and takes the last
//! stdout line as outputs when it is a JSON object.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::{
    Behaviour, Env, LogSink, Mode, Outcome, ParamsProblem, Schema, StartRequest, TypeSpec,
};
use crate::log::Level;

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
        params.argv().map(drop)
    }
}

impl Behaviour for Command {
    async fn start(_env: &Env, params: Params, request: &StartRequest) -> Outcome {
        run(&params, request.limit, &request.log).await
    }
}

/// Longest log line kept; longer lines are cut so one chatty command cannot bloat state.
const MAX_LINE: usize = 2000;

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
}

impl Params {
    /// The program and its arguments.
    pub fn argv(&self) -> Result<Vec<String>, ParamsProblem> {
        match (&self.command, self.shell) {
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
                .map(|(i, item)| {
                    item.as_str().map(str::to_string).ok_or_else(|| {
                        ParamsProblem::new(format!("command[{i}]"), "must be a string")
                    })
                })
                .collect(),
            (Value::Array(_), true) => Err(ParamsProblem::new(
                "command",
                "with \"shell\": true, give the script as one string",
            )),
            _ => Err(ParamsProblem::new("command", "must be a non-empty list of strings")),
        }
    }
}

/// Runs the command to completion or until `limit` passes (then it is killed).
async fn run(params: &Params, limit: Option<Duration>, log: &LogSink) -> Outcome {
    let argv = match params.argv() {
        Ok(argv) => argv,
        Err(problem) => return problem.into_outcome(),
    };
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .envs(&params.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group: Ctrl-C in the operator's terminal reaches baton, which stops
        // starting work and lets running commands finish, instead of killing them mid-way.
        .process_group(0);
    if let Some(cwd) = &params.cwd {
        command.current_dir(cwd);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let hint = if err.kind() == std::io::ErrorKind::NotFound {
                " (is it installed and on PATH?)"
            } else {
                ""
            };
            return Outcome::failed(format!("cannot start {:?}: {err}{hint}", argv[0]));
        }
    };
    let stdout = child
        .stdout
        .take()
        .map(|out| tokio::spawn(pump(out, log.clone(), Level::Info)));
    let stderr = child
        .stderr
        .take()
        .map(|err| tokio::spawn(pump(err, log.clone(), Level::Warn)));

    let status = match limit {
        Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                // kill_on_drop would do it too, but an explicit kill lets the pumps finish.
                let _ = child.kill().await;
                return Outcome::Failed {
                    error: format!(
                        "timed out after {}; the command was killed",
                        crate::duration::format_duration(limit)
                    ),
                    retryable: true,
                };
            }
        },
        None => child.wait().await,
    };
    let last_stdout = match stdout {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };
    let last_stderr = match stderr {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };
    match status {
        Ok(status) if status.success() => {
            let outputs = last_stdout
                .and_then(|line| serde_json::from_str::<Map<String, Value>>(&line).ok())
                .unwrap_or_default();
            Outcome::Complete { outputs }
        }
        Ok(status) => {
            let code = status.code().map_or_else(
                || "was killed by a signal".to_string(),
                |c| format!("exited with status {c}"),
            );
            let detail = last_stderr
                .or(last_stdout)
                .map(|l| format!(": {l}"))
                .unwrap_or_default();
            Outcome::Failed {
                error: format!("{} {code}{detail}", argv[0]),
                retryable: true,
            }
        }
        Err(err) => Outcome::failed(format!("waiting for {:?} failed: {err}", argv[0])),
    }
}

/// Forwards each line to the log thread; returns the last non-empty line.
async fn pump(stream: impl AsyncRead + Unpin, log: LogSink, level: Level) -> Option<String> {
    let mut lines = BufReader::new(stream).lines();
    let mut last = None;
    loop {
        match lines.next_line().await {
            Ok(Some(mut line)) => {
                if line.trim().is_empty() {
                    continue;
                }
                if line.len() > MAX_LINE {
                    let mut cut = MAX_LINE;
                    while !line.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    line.truncate(cut);
                    line.push('…');
                }
                log.send(level, line.clone());
                last = Some(line);
            }
            Ok(None) => return last,
            Err(err) => {
                // Non-UTF-8 output: say so once rather than dropping it silently.
                log.send(Level::Warn, format!("unreadable output: {err}"));
                return last;
            }
        }
    }
}
