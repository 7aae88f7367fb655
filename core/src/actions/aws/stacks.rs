//! CloudFormation helpers shared by the stack actions: finding a stack, classifying every
//! stack status, and finding the first failed resource of an operation.

use aws_sdk_cloudformation::Client;
use serde_json::{Map, Value};

use crate::actions::{CancelError, CheckRequest, Outcome};
use crate::aws::{code, describe};
use crate::log::{Level, Timestamp};

/// What a stack status means for the action waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Complete,
    InProgress,
    /// Going to end badly; wait until it settles, then fail.
    RollingBack,
    Failed,
}

/// Every status CloudFormation documents, classified.
pub(crate) fn classify(status: &str) -> Class {
    match status {
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE" => Class::Complete,
        "CREATE_IN_PROGRESS"
        | "UPDATE_IN_PROGRESS"
        | "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
        | "IMPORT_IN_PROGRESS"
        | "REVIEW_IN_PROGRESS" => Class::InProgress,
        "ROLLBACK_IN_PROGRESS"
        | "UPDATE_ROLLBACK_IN_PROGRESS"
        | "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"
        | "IMPORT_ROLLBACK_IN_PROGRESS"
        | "DELETE_IN_PROGRESS" => Class::RollingBack,
        // CREATE_FAILED, ROLLBACK_COMPLETE, ROLLBACK_FAILED, UPDATE_FAILED, UPDATE_ROLLBACK_COMPLETE,
        // UPDATE_ROLLBACK_FAILED, DELETE_COMPLETE, DELETE_FAILED, IMPORT_ROLLBACK_*, and anything new.
        _ => Class::Failed,
    }
}

/// A stack as `describe-stacks` reports it, reduced to what the stack actions use.
#[derive(Debug, Clone)]
pub(crate) struct Stack {
    pub(crate) id: String,
    pub(crate) status: String,
    pub(crate) reason: Option<String>,
    pub(crate) outputs: Map<String, Value>,
    /// The idempotency token of the baton attempt that created the stack (its
    /// [`CREATE_TOKEN_TAG`] tag), if baton created it.
    pub(crate) create_token: Option<String>,
}

/// Tags a stack with the attempt that created it. A replayed start recognises its own create
/// through this tag even where stack events carry no `ClientRequestToken` (emulators; events
/// paged out on a busy stack); it also tells operators which run made the stack.
pub(crate) const CREATE_TOKEN_TAG: &str = "baton:create-token";

impl Stack {
    /// The operation a stack in progress is doing.
    pub(crate) fn operation(&self) -> &'static str {
        if self.status.starts_with("CREATE") || self.status.starts_with("ROLLBACK") {
            "create"
        } else if self.status.starts_with("DELETE") {
            "delete"
        } else {
            "update"
        }
    }
}

/// The stack by name or id; `None` if it does not exist.
pub(crate) async fn find(client: &Client, name_or_id: &str) -> Result<Option<Stack>, Outcome> {
    match client.describe_stacks().stack_name(name_or_id).send().await {
        Ok(out) => Ok(out.stacks().first().map(|s| Stack {
            id: s.stack_id().unwrap_or(name_or_id).to_string(),
            status: s
                .stack_status()
                .map(|st| st.as_str().to_string())
                .unwrap_or_default(),
            reason: s.stack_status_reason().map(str::to_string),
            outputs: s
                .outputs()
                .iter()
                .filter_map(|o| {
                    Some((
                        o.output_key()?.to_string(),
                        Value::String(o.output_value().unwrap_or_default().to_string()),
                    ))
                })
                .collect(),
            create_token: s
                .tags()
                .iter()
                .find(|t| t.key() == Some(CREATE_TOKEN_TAG))
                .and_then(|t| t.value())
                .map(str::to_string),
        })),
        Err(e)
            if code(&e).as_deref() == Some("ValidationError")
                && describe(&e).contains("does not exist") =>
        {
            Ok(None)
        }
        Err(e) => Err(Outcome::Failed {
            error: format!("DescribeStacks {name_or_id}: {}", describe(&e)),
            retryable: crate::aws::retryable(&e),
        }),
    }
}

/// Whether the stack's recent events carry this attempt's request token.
pub(crate) async fn token_seen(client: &Client, stack_id: &str, token: &str) -> bool {
    match client
        .describe_stack_events()
        .stack_name(stack_id)
        .send()
        .await
    {
        Ok(out) => out
            .stack_events()
            .iter()
            .any(|e| e.client_request_token() == Some(token)),
        Err(_) => false,
    }
}

/// The stack id a running action's handle records (the name before the first call returned).
pub(crate) fn handle_stack_id(handle: &Value, stack_name: &str) -> String {
    handle
        .get("stack_id")
        .and_then(Value::as_str)
        .unwrap_or(stack_name)
        .to_string()
}

/// When the operation a running action's handle records began (events before it belong to
/// earlier operations); `None` if the handle does not say.
pub(crate) fn since(handle: &Value) -> Option<Timestamp> {
    handle
        .get("since")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The earliest resource that failed since `since`: `Logical (Type) STATUS: reason`.
pub(crate) async fn first_failure(
    client: &Client,
    stack_id: &str,
    since: Option<Timestamp>,
) -> Option<String> {
    failures(client, stack_id, since, "_FAILED")
        .await
        .into_iter()
        .next()
}

/// Resources whose status ends with `suffix` since `since`, oldest first.
pub(crate) async fn failures(
    client: &Client,
    stack_id: &str,
    since: Option<Timestamp>,
    suffix: &str,
) -> Vec<String> {
    let mut found = Vec::new();
    let mut pages = client
        .describe_stack_events()
        .stack_name(stack_id)
        .into_paginator()
        .send();
    'pages: while let Some(page) = pages.next().await {
        let Ok(page) = page else { break };
        // Events come newest first.
        for event in page.stack_events() {
            let at = event
                .timestamp()
                .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
            if let (Some(at), Some(since)) = (at, since) {
                if at < since - chrono::Duration::seconds(5) {
                    break 'pages;
                }
            }
            let status = event
                .resource_status()
                .map(|s| s.as_str())
                .unwrap_or_default();
            let reason = event.resource_status_reason().unwrap_or_default();
            // The stack's own event and cascade cancellations are consequences, not causes.
            let is_stack = event.physical_resource_id() == Some(stack_id)
                || event.resource_type() == Some("AWS::CloudFormation::Stack");
            if status.ends_with(suffix) && !is_stack && !reason.contains("cancelled") {
                found.push(format!(
                    "{} ({}) {status}: {reason}",
                    event.logical_resource_id().unwrap_or("?"),
                    event.resource_type().unwrap_or("?")
                ));
            }
        }
    }
    found.reverse();
    found
}

/// One check of a stack operation a running action follows (create, update, or a change set
/// being executed): complete with the stack's outputs, running, or failed naming the first
/// resource that failed.
pub(crate) async fn follow(
    client: &Client,
    stack_name: &str,
    request: &CheckRequest,
    poll: std::time::Duration,
) -> Outcome {
    let stack_id = handle_stack_id(&request.handle, stack_name);
    let since = since(&request.handle);
    let stack = match find(client, &stack_id).await {
        Ok(Some(stack)) => stack,
        Ok(None) => return Outcome::failed(format!("stack {stack_name} no longer exists")),
        Err(outcome) => return outcome,
    };
    match classify(&stack.status) {
        Class::Complete => {
            request
                .log
                .send(Level::Info, format!("stack {stack_name} {}", stack.status));
            Outcome::Complete {
                outputs: stack.outputs,
            }
        }
        Class::InProgress | Class::RollingBack => Outcome::Running {
            handle: request.handle.clone(),
            check_after: poll,
        },
        Class::Failed => {
            let cause = first_failure(client, &stack_id, since).await;
            let error = match cause {
                Some(cause) => format!("stack {stack_name} {}: {cause}", stack.status),
                None => format!(
                    "stack {stack_name} {}{}",
                    stack.status,
                    stack.reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
            };
            Outcome::failed(error)
        }
    }
}

/// Cancels the update a running action's handle records; a create cannot be cancelled.
pub(crate) async fn cancel_update(
    client: &Client,
    stack_name: &str,
    handle: &Value,
) -> Result<(), CancelError> {
    if handle.get("operation").and_then(Value::as_str) != Some("update") {
        return Err(CancelError::Refused("a stack that is being created cannot be cancelled; it keeps going in AWS (delete it afterwards if needed)".into()));
    }
    let stack_id = handle
        .get("stack_id")
        .and_then(Value::as_str)
        .unwrap_or(stack_name);
    client
        .cancel_update_stack()
        .stack_name(stack_id)
        .send()
        .await
        .map(drop)
        .map_err(|e| CancelError::Refused(format!("CancelUpdateStack: {}", describe(&e))))
}

/// CloudFormation's answer for a change set that does not exist (emulators say it as a
/// ValidationError).
pub(crate) fn change_set_missing<E, R>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> bool
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match code(err).as_deref() {
        Some("ChangeSetNotFound" | "ChangeSetNotFoundException") => true,
        Some("ValidationError") => describe(err).contains("does not exist"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_status_is_classified() {
        let complete = ["CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"];
        let running = [
            "CREATE_IN_PROGRESS",
            "UPDATE_IN_PROGRESS",
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            "IMPORT_IN_PROGRESS",
            "REVIEW_IN_PROGRESS",
        ];
        let rolling = [
            "ROLLBACK_IN_PROGRESS",
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
            "IMPORT_ROLLBACK_IN_PROGRESS",
            "DELETE_IN_PROGRESS",
        ];
        let failed = [
            "CREATE_FAILED",
            "ROLLBACK_COMPLETE",
            "ROLLBACK_FAILED",
            "UPDATE_FAILED",
            "UPDATE_ROLLBACK_COMPLETE",
            "UPDATE_ROLLBACK_FAILED",
            "DELETE_COMPLETE",
            "DELETE_FAILED",
            "IMPORT_ROLLBACK_COMPLETE",
            "IMPORT_ROLLBACK_FAILED",
        ];
        for s in complete {
            assert_eq!(classify(s), Class::Complete, "{s}");
        }
        for s in running {
            assert_eq!(classify(s), Class::InProgress, "{s}");
        }
        for s in rolling {
            assert_eq!(classify(s), Class::RollingBack, "{s}");
        }
        for s in failed {
            assert_eq!(classify(s), Class::Failed, "{s}");
        }
    }
}
