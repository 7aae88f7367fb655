//! `aws.delete_stack`: deletes a CloudFormation stack; an absent stack is already complete.

use std::time::Duration;

use serde::Deserialize;

use super::AccountId;
use crate::actions::{Mode, TypeSpec};

pub const SPEC: TypeSpec = TypeSpec {
    name: "aws.delete_stack",
    mode: Mode::Async,
    poll_interval: Duration::from_secs(10),
    can_cancel: false,
    replay_safe: true,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub stack_name: String,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(feature = "aws")]
pub use self::calls::{check, start};

#[cfg(feature = "aws")]
mod calls {
    use serde_json::json;

    use super::{Params, SPEC};
    use crate::actions::aws::stacks;
    use crate::actions::aws::{client_or_fail, params_or_fail};
    use crate::aws::{describe, Aws};
    use crate::executor::{CheckRequest, Outcome, StartRequest};
    use crate::state::Level;

    pub async fn start(aws: &Aws, request: &StartRequest) -> Outcome {
        let p: Params = params_or_fail!(request);
        let client = client_or_fail!(aws.cfn(&p.target(aws)));
        let stack = match stacks::find(&client, &p.stack_name).await {
            Ok(Some(stack)) => stack,
            Ok(None) => {
                request.log.send(
                    Level::Info,
                    format!("stack {} does not exist; nothing to delete", p.stack_name),
                );
                return Outcome::complete();
            }
            Err(outcome) => return outcome,
        };
        let since = chrono::Utc::now();
        match client
            .delete_stack()
            .stack_name(&stack.id)
            .client_request_token(request.idempotency_token())
            .send()
            .await
        {
            Ok(_) => {
                request.log.send(
                    Level::Info,
                    format!("deleting stack {} ({})", p.stack_name, stack.id),
                );
                Outcome::Running {
                    handle: json!({"stack_id": stack.id, "operation": "delete", "since": crate::state::ts::format(&since)}),
                    check_after: std::time::Duration::ZERO,
                }
            }
            Err(e) => Outcome::Failed {
                error: format!("DeleteStack {}: {}", p.stack_name, describe(&e)),
                retryable: crate::aws::retryable(&e),
            },
        }
    }

    pub async fn check(aws: &Aws, request: &CheckRequest) -> Outcome {
        let p: Params = params_or_fail!(request);
        let client = client_or_fail!(aws.cfn(&p.target(aws)));
        let stack_id = stacks::handle_stack_id(&request.handle, &p.stack_name);
        match stacks::find(&client, &stack_id).await {
            Ok(None) => Outcome::complete(),
            Ok(Some(stack)) if stack.status == "DELETE_COMPLETE" => {
                request
                    .log
                    .send(Level::Info, format!("stack {} deleted", p.stack_name));
                Outcome::complete()
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
            Ok(Some(_)) => Outcome::Running {
                handle: request.handle.clone(),
                check_after: SPEC.poll_interval,
            },
            Err(outcome) => outcome,
        }
    }
}
