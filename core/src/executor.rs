//! The IO boundary for actions: the [`Executor`] trait the engine drives, and the standard
//! registry that dispatches each type to its file in `actions/`.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::actions::{self, ActionType};
use crate::model::ActionIdx;
use crate::state::{Level, Timestamp};

/// What an executor reports about an action.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Complete {
        outputs: Map<String, Value>,
    },
    /// Still running; check again after `check_after` (zero: at once) with `handle`.
    Running {
        handle: Value,
        check_after: Duration,
    },
    Failed {
        error: String,
        retryable: bool,
    },
}

impl Outcome {
    pub fn complete() -> Self {
        Outcome::Complete {
            outputs: Map::new(),
        }
    }

    pub fn failed(error: impl Into<String>) -> Self {
        Outcome::Failed {
            error: error.into(),
            retryable: false,
        }
    }
}

/// A log line from a running action, on its way to the action's log thread.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub idx: ActionIdx,
    pub t: Timestamp,
    pub level: Level,
    pub msg: String,
}

/// Where an executor writes an action's log lines while it runs.
#[derive(Debug, Clone)]
pub struct LogSink {
    idx: ActionIdx,
    tx: Option<mpsc::UnboundedSender<LogLine>>,
}

impl LogSink {
    pub fn new(idx: ActionIdx, tx: mpsc::UnboundedSender<LogLine>) -> Self {
        LogSink { idx, tx: Some(tx) }
    }

    pub fn discard() -> Self {
        LogSink { idx: 0, tx: None }
    }

    pub fn send(&self, level: Level, msg: impl Into<String>) {
        if let Some(tx) = &self.tx {
            // The receiver outlives every running action; a send after the tick ended is moot.
            let _ = tx.send(LogLine {
                idx: self.idx,
                t: Utc::now(),
                level,
                msg: msg.into(),
            });
        }
    }
}

/// Everything an executor needs to start one attempt of an action.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub run_id: String,
    pub label: String,
    pub action_type: ActionType,
    /// Rendered params.
    pub params: Value,
    pub attempt: u32,
    /// Longest a synchronous action may run (action timeout and tick budget).
    pub limit: Option<Duration>,
    pub log: LogSink,
}

impl StartRequest {
    /// Token that makes a replayed start of the same attempt a no-op at the provider
    /// (e.g. CloudFormation's `ClientRequestToken`, max 128 chars of `[a-zA-Z0-9-]`).
    pub fn idempotency_token(&self) -> String {
        idempotency_token(&self.run_id, &self.label, self.attempt)
    }
}

pub fn idempotency_token(run_id: &str, label: &str, attempt: u32) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{run_id}\n{label}\n{attempt}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("baton-{hex}-{attempt}")
}

/// Everything an executor needs to check on, or cancel, a running action.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    pub run_id: String,
    pub label: String,
    pub action_type: ActionType,
    pub params: Value,
    pub handle: Value,
    pub attempt: u32,
    pub log: LogSink,
}

/// Runs actions. The engine calls `start` once per attempt, `check` on running actions that
/// are due, and `cancel` on abort or timeout for types that can cancel.
pub trait Executor: Send + Sync + 'static {
    fn start(&self, request: StartRequest) -> impl Future<Output = Outcome> + Send;
    fn check(&self, request: CheckRequest) -> impl Future<Output = Outcome> + Send;
    fn cancel(&self, request: CheckRequest) -> impl Future<Output = Result<(), String>> + Send;
}

/// The standard executor: every type in the catalogue. `aws.*` types need AWS access
/// ([`StandardExecutor::with_aws`], feature `aws`).
#[derive(Debug, Default, Clone)]
pub struct StandardExecutor {
    #[cfg(feature = "aws")]
    aws: Option<std::sync::Arc<crate::aws::Aws>>,
}

impl StandardExecutor {
    pub fn new() -> Self {
        StandardExecutor::default()
    }

    #[cfg(feature = "aws")]
    pub fn with_aws(aws: std::sync::Arc<crate::aws::Aws>) -> Self {
        StandardExecutor { aws: Some(aws) }
    }

    #[cfg(feature = "aws")]
    fn aws(&self) -> Result<&crate::aws::Aws, Outcome> {
        self.aws
            .as_deref()
            .ok_or_else(|| Outcome::failed("no AWS configuration was given to this baton process"))
    }
}

impl Executor for StandardExecutor {
    async fn start(&self, request: StartRequest) -> Outcome {
        match request.action_type {
            ActionType::Wait => match actions::parse::<actions::wait::Params>(&request.params)
                .and_then(|p| p.duration())
            {
                Ok(duration) => {
                    let until = Utc::now()
                        + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::zero());
                    request.log.send(
                        Level::Info,
                        format!("waiting {}", crate::duration::format_duration(duration)),
                    );
                    Outcome::Running {
                        handle: json!({ "until": crate::state::ts::format(&until) }),
                        check_after: duration,
                    }
                }
                Err(problem) => {
                    Outcome::failed(format!("params.{}: {}", problem.path, problem.message))
                }
            },
            ActionType::Command => {
                match actions::parse::<actions::command::Params>(&request.params) {
                    Ok(params) => actions::command::run(&params, request.limit, &request.log).await,
                    Err(problem) => {
                        Outcome::failed(format!("params.{}: {}", problem.path, problem.message))
                    }
                }
            }
            inline @ (ActionType::NoOp | ActionType::SetVariables | ActionType::Fail) => {
                actions::run_inline(inline, &request.params)
            }
            #[cfg(feature = "aws")]
            aws_type => {
                let aws = match self.aws() {
                    Ok(aws) => aws,
                    Err(outcome) => return outcome,
                };
                match aws_type {
                    ActionType::CreateStack => {
                        actions::aws::create_stack::start(aws, &request).await
                    }
                    ActionType::DeleteStack => {
                        actions::aws::delete_stack::start(aws, &request).await
                    }
                    ActionType::GetStackOutputs => {
                        actions::aws::get_stack_outputs::start(aws, &request).await
                    }
                    ActionType::UploadContext => {
                        actions::aws::upload_context::start(aws, &request).await
                    }
                    ActionType::EmptyBucket => {
                        actions::aws::empty_bucket::step(
                            aws,
                            &request.params,
                            &Value::Null,
                            &request.log,
                        )
                        .await
                    }
                    other => Outcome::failed(format!("{} is not an AWS type", other.name())),
                }
            }
            #[cfg(not(feature = "aws"))]
            aws => no_aws(aws),
        }
    }

    async fn check(&self, request: CheckRequest) -> Outcome {
        match request.action_type {
            ActionType::Wait => {
                let until = request
                    .handle
                    .get("until")
                    .and_then(Value::as_str)
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc));
                let Some(until) = until else {
                    return Outcome::failed("the wait's handle is damaged (no \"until\")");
                };
                let left = until - Utc::now();
                match left.to_std() {
                    Ok(left) if !left.is_zero() => Outcome::Running {
                        handle: request.handle,
                        check_after: left,
                    },
                    _ => Outcome::complete(),
                }
            }
            #[cfg(feature = "aws")]
            aws_type @ (ActionType::CreateStack
            | ActionType::DeleteStack
            | ActionType::EmptyBucket) => {
                let aws = match self.aws() {
                    Ok(aws) => aws,
                    Err(outcome) => return outcome,
                };
                match aws_type {
                    ActionType::CreateStack => {
                        actions::aws::create_stack::check(aws, &request).await
                    }
                    ActionType::DeleteStack => {
                        actions::aws::delete_stack::check(aws, &request).await
                    }
                    _ => {
                        actions::aws::empty_bucket::step(
                            aws,
                            &request.params,
                            &request.handle,
                            &request.log,
                        )
                        .await
                    }
                }
            }
            other => Outcome::failed(format!("{} actions are not checked", other.name())),
        }
    }

    async fn cancel(&self, request: CheckRequest) -> Result<(), String> {
        match request.action_type {
            ActionType::Wait => Ok(()),
            // Stopping between batches is enough: what was deleted stays deleted.
            ActionType::EmptyBucket => Ok(()),
            #[cfg(feature = "aws")]
            ActionType::CreateStack => match self.aws.as_deref() {
                Some(aws) => actions::aws::create_stack::cancel(aws, &request).await,
                None => Err("no AWS configuration".into()),
            },
            other => Err(format!("{} actions cannot be cancelled", other.name())),
        }
    }
}

#[cfg(not(feature = "aws"))]
fn no_aws(action_type: ActionType) -> Outcome {
    Outcome::failed(format!(
        "{} needs AWS support, which this baton build does not include; \
         install a build with the `aws` feature",
        action_type.name()
    ))
}
