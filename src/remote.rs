//! Remote runs: the Step Functions executions that drive a run stored in S3.

use aws_sdk_sfn::types::{ExecutionListItem, ExecutionStatus, HistoryEvent};
use aws_sdk_sfn::Client;
use baton_core::aws::describe;
use baton_core::state::Timestamp;

use crate::Failure;

/// What the console knows about a remote run's execution.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteInfo {
    pub execution: String,
    pub status: String,
    /// History events used by this execution (Step Functions allows 25,000).
    pub events: u64,
    /// Executions of this run so far (re-executions and continuations included).
    pub executions: usize,
    /// The newest history events, oldest first, with their times: `#212 TaskSucceeded`.
    pub recent: Vec<(Timestamp, String)>,
}

/// An execution started to drive a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub name: String,
    pub execution_arn: String,
}

pub async fn client() -> Client {
    Client::new(crate::aws::aws().await.sdk_config())
}

/// Starts an execution of `state_machine` on the run; returns the execution ARN.
pub async fn start(
    client: &Client,
    state_machine: &str,
    run: &str,
    name: &str,
) -> Result<String, Failure> {
    let input = serde_json::json!({ "run": run }).to_string();
    client
        .start_execution()
        .state_machine_arn(state_machine)
        .name(name)
        .input(input)
        .send()
        .await
        .map(|out| out.execution_arn().to_string())
        .map_err(|e| Failure::Infra(format!("{state_machine}: StartExecution: {}", describe(&e))))
}

/// The run's executions (named after its id), newest first.
pub async fn executions(
    client: &Client,
    state_machine: &str,
    run_id: &str,
) -> Result<Vec<ExecutionListItem>, Failure> {
    let mut found = Vec::new();
    let mut pages = client
        .list_executions()
        .state_machine_arn(state_machine)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            Failure::Infra(format!("{state_machine}: ListExecutions: {}", describe(&e)))
        })?;
        found.extend(
            page.executions()
                .iter()
                .filter(|e| belongs(e.name(), run_id))
                .cloned(),
        );
    }
    found.sort_by_key(|e| std::cmp::Reverse(e.start_date().secs()));
    Ok(found)
}

/// `<run-id>`, `<run-id>-r2` (re-executions), `<run-id>-c4031` (continuations).
fn belongs(name: &str, run_id: &str) -> bool {
    name == run_id
        || name
            .strip_prefix(run_id)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|rest| {
                rest.len() > 1
                    && (rest.starts_with('r') || rest.starts_with('c'))
                    && rest[1..].chars().all(|c| c.is_ascii_digit())
            })
}

/// A fresh execution name for a re-execution of the run.
fn retry_name(run_id: &str, existing: &[ExecutionListItem]) -> String {
    format!("{run_id}-r{}", existing.len() + 1)
}

/// Starts a new execution, named as a re-execution, to drive the run `run` (its locator) again.
pub async fn start_reexecution(
    client: &Client,
    state_machine: &str,
    run: &str,
    run_id: &str,
) -> Result<Started, Failure> {
    let existing = executions(client, state_machine, run_id).await?;
    let name = retry_name(run_id, &existing);
    let execution_arn = start(client, state_machine, run, &name).await?;
    Ok(Started {
        name,
        execution_arn,
    })
}

/// The run's newest execution: its status, the history events it has used (the newest event's
/// id, read newest-first with one small page) and its latest events. `None` while the run has
/// no execution.
pub async fn newest_execution(
    client: &Client,
    state_machine: &str,
    run_id: &str,
) -> Result<Option<RemoteInfo>, Failure> {
    let executions = executions(client, state_machine, run_id).await?;
    let Some(newest) = executions.first() else {
        return Ok(None);
    };
    let page = client
        .get_execution_history()
        .execution_arn(newest.execution_arn())
        .reverse_order(true)
        .max_results(100)
        .send()
        .await
        .map_err(|e| Failure::Infra(describe(&e)))?;
    // Newest first where the service honours reverseOrder; sort by id either way.
    let mut events: Vec<&HistoryEvent> = page.events().iter().collect();
    events.sort_by_key(|e| e.id());
    Ok(Some(RemoteInfo {
        execution: newest.name().to_string(),
        status: newest.status().as_str().to_string(),
        events: events.last().map_or(0, |e| e.id() as u64),
        executions: executions.len(),
        recent: events.iter().map(|e| event_line(e)).collect(),
    }))
}

/// `(time, "#212 TaskSucceeded")`
fn event_line(event: &HistoryEvent) -> (Timestamp, String) {
    let at = chrono::DateTime::from_timestamp(
        event.timestamp().secs(),
        event.timestamp().subsec_nanos(),
    )
    .unwrap_or_default();
    (at, format!("#{} {}", event.id(), event.r#type().as_str()))
}

/// Stops every running execution of the run; returns how many were stopped.
pub async fn stop_running(
    client: &Client,
    state_machine: &str,
    run_id: &str,
    cause: &str,
) -> Result<usize, Failure> {
    let mut stopped = 0;
    for execution in executions(client, state_machine, run_id).await? {
        if execution.status() == &ExecutionStatus::Running {
            client
                .stop_execution()
                .execution_arn(execution.execution_arn())
                .error("Baton.Aborted")
                .cause(cause)
                .send()
                .await
                .map_err(|e| {
                    Failure::Infra(format!(
                        "StopExecution {}: {}",
                        execution.name(),
                        describe(&e)
                    ))
                })?;
            stopped += 1;
        }
    }
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use super::belongs;

    #[test]
    fn execution_names_belong_to_their_run() {
        assert!(belongs("deploy-1", "deploy-1"));
        assert!(belongs("deploy-1-r2", "deploy-1"));
        assert!(belongs("deploy-1-c4031", "deploy-1"));
        assert!(!belongs("deploy-10", "deploy-1"));
        assert!(!belongs("deploy-1-other", "deploy-1"));
    }
}
