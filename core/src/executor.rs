//! The IO boundary the engine drives: the [`Executor`] trait, and the standard executor that
//! hands each request to its type in the catalogue ([`crate::actions`]).

use std::future::Future;

use crate::actions::{ActionType, CancelError, CheckRequest, Env, Outcome, StartRequest};
use crate::hooks::{HookEvent, HookSink, PublishError};

/// Runs actions. The engine calls `start` once per attempt, `check` on running actions that
/// are due, and `cancel` on abort or timeout for types that can cancel.
pub trait Executor: Send + Sync + 'static {
    /// Starts one attempt.
    fn start(&self, request: StartRequest) -> impl Future<Output = Outcome> + Send;
    /// Checks on running work.
    fn check(&self, request: CheckRequest) -> impl Future<Output = Outcome> + Send;
    /// Stops running work.
    fn cancel(&self, request: CheckRequest)
        -> impl Future<Output = Result<(), CancelError>> + Send;
    /// Whether `system.command` runs elsewhere, as a task started once per attempt however
    /// often its start is asked for (so an interrupted command may be started again).
    fn sends_commands_elsewhere(&self) -> bool {
        false
    }

    /// Publishes a status hook that fired to the run's sink; `Err` says why it was not
    /// (logged by the driver, never failing the action).
    fn publish(
        &self,
        sink: &HookSink,
        event: &HookEvent,
    ) -> impl Future<Output = Result<(), PublishError>> + Send {
        let _ = event;
        let why = PublishError(format!("this baton process cannot publish to {sink}"));
        async move { Err(why) }
    }
}

/// The standard executor: every type in the catalogue. `aws.*` types need AWS access
/// ([`StandardExecutor::with_aws`], feature `aws`).
#[derive(Debug, Default, Clone)]
pub struct StandardExecutor {
    env: Env,
}

impl StandardExecutor {
    /// Runs every type except those that need AWS (they fail saying so).
    pub fn new() -> Self {
        StandardExecutor::default()
    }

    /// Runs every type, `aws.*` ones through `aws`.
    #[cfg(feature = "aws")]
    pub fn with_aws(aws: std::sync::Arc<crate::aws::Aws>) -> Self {
        StandardExecutor {
            env: Env::with_aws(aws),
        }
    }

    /// `system.command` actions fail with `reason` instead of running: a process whose
    /// credentials reach further than those of whoever submits runs (the Lambda runner) runs
    /// no programs unless its deployment enables them.
    pub fn refusing_commands(mut self, reason: impl Into<String>) -> Self {
        self.env.commands_refused = Some(reason.into());
        self
    }

    /// `system.command` actions run as ECS tasks of `tasks` instead of local processes (the
    /// Lambda runner, where a command must outlive the invocation that starts it).
    #[cfg(feature = "aws-ecs")]
    pub fn sending_commands_to(mut self, tasks: crate::actions::command::CommandTasks) -> Self {
        self.env.command_tasks = Some(std::sync::Arc::new(tasks));
        self
    }

    /// Actions that would read a file of this machine when they start (an
    /// `aws.create_stack` `template_file`) fail with `reason` instead.
    pub fn refusing_local_files(mut self, reason: impl Into<String>) -> Self {
        self.env.files_refused = Some(reason.into());
        self
    }
}

impl Executor for StandardExecutor {
    fn sends_commands_elsewhere(&self) -> bool {
        self.env.sends_commands_elsewhere()
    }

    async fn start(&self, request: StartRequest) -> Outcome {
        if let (ActionType::Command, Some(reason), false) = (
            request.action_type,
            &self.env.commands_refused,
            self.env.sends_commands_elsewhere(),
        ) {
            return Outcome::failed(reason.clone());
        }
        request.action_type.start(&self.env, &request).await
    }

    async fn check(&self, request: CheckRequest) -> Outcome {
        request.action_type.check(&self.env, &request).await
    }

    async fn cancel(&self, request: CheckRequest) -> Result<(), CancelError> {
        request.action_type.cancel(&self.env, &request).await
    }

    async fn publish(&self, sink: &HookSink, event: &HookEvent) -> Result<(), PublishError> {
        #[cfg(feature = "aws")]
        if let Ok(aws) = self.env.aws() {
            return aws.publish_hook(sink, event).await;
        }
        let _ = event;
        Err(PublishError(format!(
            "no AWS configuration was given to this baton process, so nothing is published to {sink}"
        )))
    }
}
