//! `aws.apply_change_set` (also spelled `AWS::ExecuteChangeSet`): executes a change set made by
//! `aws.create_change_set` and follows the stack until the change is done; the stack's outputs
//! become the action's outputs.

use std::time::Duration;

use serde::Deserialize;

use super::AccountId;
use crate::actions::{Mode, Schema, TypeSpec};

/// The `aws.apply_change_set` type.
pub struct ApplyChangeSet;

impl Schema for ApplyChangeSet {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.apply_change_set",
        mode: Mode::Async,
        poll_interval: Duration::from_secs(10),
        can_cancel: true,
        replay_safe: true,
    };
    type Params = Params;

    fn abort_note() -> String {
        "a stack that is being created from a change set cannot be cancelled; it keeps going in \
         AWS"
        .into()
    }
}

/// Params of `aws.apply_change_set`.
#[allow(missing_docs)] // CloudFormation's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub stack_name: String,
    pub change_set_name: String,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(feature = "aws")]
mod calls {
    use aws_sdk_cloudformation::types::{ChangeSetStatus, ExecutionStatus};
    use aws_sdk_cloudformation::Client;
    use serde_json::json;

    use super::{ApplyChangeSet, Params};
    use crate::actions::aws::create_change_set::changes_nothing;
    use crate::actions::aws::{call_failed, stacks};
    use crate::actions::{
        Behaviour, CancelError, CheckRequest, Env, Outcome, Schema, StartRequest,
    };
    use crate::log::{ts, Level};

    impl Behaviour for ApplyChangeSet {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => start(&aws.cfn(&params.target(aws)).await, &params, request).await,
                Err(outcome) => outcome,
            }
        }

        async fn check(env: &Env, params: Params, request: &CheckRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => {
                    let client = aws.cfn(&params.target(aws)).await;
                    let poll = ApplyChangeSet::SPEC.poll_interval;
                    stacks::follow(&client, &params.stack_name, request, poll).await
                }
                Err(outcome) => outcome,
            }
        }

        async fn cancel(
            env: &Env,
            params: Params,
            request: &CheckRequest,
        ) -> Result<(), CancelError> {
            match env.aws() {
                Ok(aws) => {
                    let client = aws.cfn(&params.target(aws)).await;
                    stacks::cancel_update(&client, &params.stack_name, &request.handle).await
                }
                Err(_) => Err(CancelError::Refused("no AWS configuration".into())),
            }
        }
    }

    /// Following the stack from now on. A stack that only exists for its change sets
    /// (REVIEW_IN_PROGRESS) is being created.
    fn following(stack: &stacks::Stack) -> Outcome {
        let since = chrono::Utc::now();
        let operation = match stack.status.as_str() {
            "REVIEW_IN_PROGRESS" => "create",
            _ => stack.operation(),
        };
        Outcome::Running {
            handle: json!({"stack_id": stack.id, "operation": operation, "since": ts::format(&since)}),
            check_after: std::time::Duration::ZERO,
        }
    }

    async fn start(client: &Client, p: &Params, request: &StartRequest) -> Outcome {
        let token = request.idempotency_token();
        let stack = match stacks::find(client, &p.stack_name).await {
            Ok(stack) => stack,
            Err(outcome) => return outcome,
        };
        let described = client
            .describe_change_set()
            .change_set_name(&p.change_set_name)
            .stack_name(&p.stack_name)
            .send()
            .await;
        let change_set = match described {
            Ok(out) => out,
            Err(e) if stacks::change_set_missing(&e) => {
                // CloudFormation removes a stack's change sets once one is executed: was it
                // this attempt that executed it?
                return match stack {
                    Some(stack) if stacks::token_seen(client, &stack.id, &token).await => {
                        following(&stack)
                    }
                    _ => Outcome::failed(format!(
                        "change set {} does not exist on stack {}; create it first \
                         (aws.create_change_set)",
                        p.change_set_name, p.stack_name
                    )),
                };
            }
            Err(e) => return call_failed(&format!("DescribeChangeSet {}", p.change_set_name), &e),
        };
        let reason = change_set.status_reason().unwrap_or_default();
        let Some(stack) = stack else {
            return Outcome::failed(format!("stack {} does not exist", p.stack_name));
        };
        match (change_set.status(), change_set.execution_status()) {
            (
                _,
                Some(
                    ExecutionStatus::ExecuteInProgress
                    | ExecutionStatus::ExecuteComplete
                    | ExecutionStatus::ExecuteFailed,
                ),
            ) => {
                request.log.send(
                    Level::Info,
                    format!(
                        "change set {} is already executed; following stack {}",
                        p.change_set_name, p.stack_name
                    ),
                );
                following(&stack)
            }
            (Some(ChangeSetStatus::Failed), _) if changes_nothing(reason) => {
                request.log.send(
                    Level::Info,
                    format!("change set {} changes nothing: {reason}", p.change_set_name),
                );
                Outcome::Complete {
                    outputs: stack.outputs,
                }
            }
            (Some(ChangeSetStatus::CreatePending | ChangeSetStatus::CreateInProgress), _) => {
                Outcome::Failed {
                    error: format!(
                        "change set {} is still being created; try again when it is ready",
                        p.change_set_name
                    ),
                    retryable: true,
                }
            }
            (Some(ChangeSetStatus::CreateComplete), Some(ExecutionStatus::Available)) => {
                execute(client, p, request, &token, &stack).await
            }
            (status, execution) => Outcome::failed(format!(
                "change set {} cannot be executed: status {}, execution status {}{}",
                p.change_set_name,
                status.map(|s| s.as_str()).unwrap_or("unknown"),
                execution.map(|s| s.as_str()).unwrap_or("unknown"),
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                }
            )),
        }
    }

    async fn execute(
        client: &Client,
        p: &Params,
        request: &StartRequest,
        token: &str,
        stack: &stacks::Stack,
    ) -> Outcome {
        let executed = client
            .execute_change_set()
            .change_set_name(&p.change_set_name)
            .stack_name(&p.stack_name)
            .client_request_token(token)
            .send()
            .await;
        match executed {
            Ok(_) => {
                request.log.send(
                    Level::Info,
                    format!(
                        "executing change set {} on stack {}",
                        p.change_set_name, p.stack_name
                    ),
                );
                following(stack)
            }
            Err(e) => call_failed(&format!("ExecuteChangeSet {}", p.change_set_name), &e),
        }
    }
}
