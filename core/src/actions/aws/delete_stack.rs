//! `aws.delete_stack`: deletes a CloudFormation stack; an absent stack is already complete. A
//! stack still in one of `success_statuses` after the delete request (CloudFormation refused
//! to delete it, e.g. because another stack still uses its exports) counts as success too.

use std::time::Duration;

use serde::Deserialize;

use super::AccountId;
use crate::actions::{Mode, ParamsProblem, Schema, TypeSpec};

/// The `aws.delete_stack` type.
pub struct DeleteStack;

impl Schema for DeleteStack {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.delete_stack",
        mode: Mode::Async,
        poll_interval: Duration::from_secs(10),
        can_cancel: false,
        replay_safe: true,
    };
    type Params = Params;

    fn validate(params: &Params) -> Result<(), ParamsProblem> {
        super::check_service_role(params.service_role_arn.as_deref())?;
        for (i, status) in params.success_statuses.iter().enumerate() {
            let word = |c: char| c.is_ascii_uppercase() || c == '_';
            if !(status.chars().all(word) || crate::template::is_template(status))
                || status.is_empty()
            {
                return Err(ParamsProblem::new(
                    format!("success_statuses[{i}]"),
                    format!(
                        "\"{status}\" is not a CloudFormation stack status (such as \
                         UPDATE_COMPLETE)"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Params of `aws.delete_stack`.
#[allow(missing_docs)] // CloudFormation's own parameter names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub stack_name: String,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
    pub service_role_arn: Option<String>,
    /// Stack statuses that count as success when the stack is still in one of them after the
    /// delete request.
    #[serde(default)]
    pub success_statuses: Vec<String>,
}

super::aws_target!(Params);

#[cfg(feature = "aws")]
mod calls {
    use serde_json::json;

    use super::{DeleteStack, Params};
    use crate::actions::aws::stacks;
    use crate::actions::{Behaviour, CheckRequest, Env, Outcome, Schema, StartRequest};
    use crate::aws::{describe, Aws};
    use crate::log::{ts, Level};

    impl Behaviour for DeleteStack {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => start(aws, &params, request).await,
                Err(outcome) => outcome,
            }
        }

        async fn check(env: &Env, params: Params, request: &CheckRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => check(aws, &params, request).await,
                Err(outcome) => outcome,
            }
        }
    }

    async fn start(aws: &Aws, p: &Params, request: &StartRequest) -> Outcome {
        let client = aws.cfn(&p.target(aws)).await;
        let stack = match stacks::find(&client, &p.stack_name).await {
            Ok(Some(stack)) => stack,
            Ok(None) => {
                request.log.send(
                    Level::Info,
                    format!("stack {} does not exist; nothing to delete", p.stack_name),
                );
                return status_outcome("DELETE_COMPLETE");
            }
            Err(outcome) => return outcome,
        };
        let since = chrono::Utc::now();
        match client
            .delete_stack()
            .stack_name(&stack.id)
            .client_request_token(request.idempotency_token())
            .set_role_arn(p.service_role_arn.clone())
            .send()
            .await
        {
            Ok(_) => {
                request.log.send(
                    Level::Info,
                    format!("deleting stack {} ({})", p.stack_name, stack.id),
                );
                Outcome::Running {
                    handle: json!({"stack_id": stack.id, "operation": "delete", "since": ts::format(&since)}),
                    check_after: std::time::Duration::ZERO,
                }
            }
            Err(e) if p.success_statuses.contains(&stack.status) => {
                request.log.send(
                    Level::Info,
                    format!(
                        "stack {} was not deleted ({}); it is {}, which success_statuses counts \
                         as success",
                        p.stack_name,
                        describe(&e),
                        stack.status
                    ),
                );
                status_outcome(&stack.status)
            }
            Err(e) => Outcome::Failed {
                error: format!("DeleteStack {}: {}", p.stack_name, describe(&e)),
                retryable: crate::aws::retryable(&e),
            },
        }
    }

    /// How long a stack must stay in one of `success_statuses` after the delete request before
    /// that counts: CloudFormation may report the old status for a moment after accepting it.
    const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

    /// Complete, with the stack's last status as the output SCK files read (`StackStatus`).
    fn status_outcome(status: &str) -> Outcome {
        let mut outputs = serde_json::Map::new();
        outputs.insert(
            "StackStatus".into(),
            serde_json::Value::String(status.to_string()),
        );
        Outcome::Complete { outputs }
    }

    async fn check(aws: &Aws, p: &Params, request: &CheckRequest) -> Outcome {
        let client = aws.cfn(&p.target(aws)).await;
        let stack_id = stacks::handle_stack_id(&request.handle, &p.stack_name);
        match stacks::find(&client, &stack_id).await {
            Ok(None) => status_outcome("DELETE_COMPLETE"),
            Ok(Some(stack)) if stack.status == "DELETE_COMPLETE" => {
                request
                    .log
                    .send(Level::Info, format!("stack {} deleted", p.stack_name));
                status_outcome("DELETE_COMPLETE")
            }
            Ok(Some(stack)) if stack.status == "DELETE_FAILED" => {
                let failed = stacks::failures(
                    &client,
                    &stack_id,
                    stacks::since(&request.handle),
                    "DELETE_FAILED",
                )
                .await;
                let detail = if failed.is_empty() {
                    stack.reason.unwrap_or_default()
                } else {
                    format!("resources that could not be deleted: {}", failed.join("; "))
                };
                Outcome::failed(format!("stack {} DELETE_FAILED: {detail}", p.stack_name))
            }
            Ok(Some(stack)) if p.success_statuses.contains(&stack.status) => {
                let waited = stacks::since(&request.handle)
                    .and_then(|since| (chrono::Utc::now() - since).to_std().ok());
                match waited {
                    Some(waited) if waited < SETTLE => Outcome::Running {
                        handle: request.handle.clone(),
                        check_after: SETTLE - waited,
                    },
                    _ => {
                        request.log.send(
                            Level::Info,
                            format!(
                                "stack {} is still {} after the delete request, which \
                                 success_statuses counts as success",
                                p.stack_name, stack.status
                            ),
                        );
                        status_outcome(&stack.status)
                    }
                }
            }
            Ok(Some(_)) => Outcome::Running {
                handle: request.handle.clone(),
                check_after: DeleteStack::SPEC.poll_interval,
            },
            Err(outcome) => outcome,
        }
    }
}
