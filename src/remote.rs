//! Remote runs: the Step Functions executions that drive a run stored in S3.
//!
//! An execution belongs to a run when its input names the run (`"run"`, the run's locator):
//! names only narrow the search, since another run's id may be this one's plus `-r2`. The run's
//! executions are found without listing the state machine's history: the first is named
//! `<run-id>`, re-executions `<run-id>-r<n>`, and each continuation is named in the output of
//! the execution that started it. Running executions are found with one filtered listing.

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use aws_sdk_sfn::Client;
use baton_core::aws::{code, describe};
use baton_core::state::Timestamp;
use serde_json::Value;

use crate::Failure;

/// What the console knows about a remote run's execution.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteInfo {
    /// The newest execution's name (the running one, if any).
    pub execution: String,
    /// Its status: `RUNNING`, `SUCCEEDED`, `FAILED`, `ABORTED`, …
    pub status: String,
    /// History events used by this execution (Step Functions allows 25,000).
    pub events: u64,
    /// The newest history events, oldest first, with their times: `#212 TaskSucceeded`.
    pub recent: Vec<(Timestamp, String)>,
}

impl RemoteInfo {
    /// Whether the execution still drives the run.
    pub fn running(&self) -> bool {
        self.status == ExecutionStatus::Running.as_str()
    }
}

/// An execution started to drive a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub name: String,
    pub execution_arn: String,
}

/// One execution of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub name: String,
    pub arn: String,
    pub status: ExecutionStatus,
    pub started: Option<Timestamp>,
    pub stopped: Option<Timestamp>,
    /// The execution it continued in (continue-as-new), once it has.
    continued_as: Option<String>,
}

pub async fn client() -> Client {
    Client::new(crate::aws::aws().await.sdk_config())
}

/// The state machine's canonical ARN, or a clear refusal when it does not exist (or cannot be
/// read): checked before anything is written for a run it is to drive.
pub async fn check_state_machine(client: &Client, state_machine: &str) -> Result<String, Failure> {
    match client
        .describe_state_machine()
        .state_machine_arn(state_machine)
        .send()
        .await
    {
        Ok(out) => Ok(out.state_machine_arn().to_string()),
        Err(e)
            if matches!(
                code(&e).as_deref(),
                Some("StateMachineDoesNotExist" | "InvalidArn")
            ) =>
        {
            Err(Failure::Invalid(format!(
                "--state-machine {state_machine}: {}; give the StateMachineArn output of the \
                 runner stack (cloudformation/runner.yaml). Nothing was written",
                describe(&e)
            )))
        }
        Err(e) => Err(Failure::Infra(format!(
            "--state-machine {state_machine}: DescribeStateMachine: {}. Nothing was written",
            describe(&e)
        ))),
    }
}

/// What the runner behind `state_machine` does with `system.command`, as its stack tags the
/// state machine (`baton:commands`: `ecs`, `in-function` or `off`); `None` when it does not say
/// (a runner deployed before the tag, or no right to read tags).
pub async fn runner_commands(client: &Client, state_machine: &str) -> Option<String> {
    let tags = client
        .list_tags_for_resource()
        .resource_arn(state_machine)
        .send()
        .await
        .ok()?;
    tags.tags()
        .iter()
        .find(|tag| tag.key() == Some("baton:commands"))
        .and_then(|tag| tag.value())
        .map(str::to_string)
}

/// Longest a command may run in a runner that runs commands inside its tick function: the
/// function's 300-second timeout, less the tick's safety margin and a stop's grace.
pub const IN_FUNCTION_COMMAND_LIMIT: std::time::Duration = std::time::Duration::from_secs(280);

/// Refuses, before anything is written, a plan whose commands the runner would fail or kill:
/// any command when it runs none, and one that may outlast a tick when it runs them inside its
/// function. Says how to deploy the runner so it can.
pub fn refuse_commands_it_cannot_run(
    plan: &baton_core::Plan,
    commands: &str,
    state_machine: &str,
) -> Result<(), Failure> {
    use baton_core::duration::format_duration;
    let enable = "deploy cloudformation/runner.yaml with CommandCluster and CommandTaskDefinition \
        (each command then runs as an ECS task, for as long as it needs), or run the file on a \
        machine with `baton run`";
    for action in plan.actions() {
        if action.action_type != baton_core::ActionType::Command {
            continue;
        }
        let why = match (commands, action.details().timeout) {
            ("off", _) => "this runner runs no commands".to_string(),
            ("in-function", None) => format!(
                "this runner runs commands inside its tick function, which stops them after \
                 {}, and the action has no timeout",
                format_duration(IN_FUNCTION_COMMAND_LIMIT)
            ),
            ("in-function", Some(timeout)) if timeout > IN_FUNCTION_COMMAND_LIMIT => format!(
                "this runner runs commands inside its tick function, which stops them after \
                 {}, and the action's timeout is {}",
                format_duration(IN_FUNCTION_COMMAND_LIMIT),
                format_duration(timeout)
            ),
            _ => continue,
        };
        return Err(Failure::Invalid(format!(
            "action {:?} (system.command): {why} (the runner behind --state-machine \
             {state_machine} says `baton:commands: {commands}`); {enable}. Nothing was written",
            action.label
        )));
    }
    Ok(())
}

fn timestamp(t: &aws_sdk_sfn::primitives::DateTime) -> Option<Timestamp> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// A run in S3 and the state machine whose executions drive it.
#[derive(Debug, Clone)]
pub struct RemoteRun {
    client: Client,
    state_machine: String,
    locator: String,
    run_id: String,
}

/// Re-execution names tried before giving up (each is one DescribeExecution).
const MAX_SLOTS: u32 = 1000;

impl RemoteRun {
    /// The run at `locator` (`s3://…/runs/<run_id>`), driven by `state_machine`.
    pub fn new(client: Client, state_machine: &str, locator: &str, run_id: &str) -> Self {
        RemoteRun {
            client,
            state_machine: state_machine.to_string(),
            locator: locator.to_string(),
            run_id: run_id.to_string(),
        }
    }

    /// [`RemoteRun::new`] with the command line's AWS settings.
    pub async fn connect(state_machine: &str, locator: &str, run_id: &str) -> Self {
        RemoteRun::new(client().await, state_machine, locator, run_id)
    }

    pub fn state_machine(&self) -> &str {
        &self.state_machine
    }

    /// The input of an execution that drives the run: the state machine ticks `run`.
    fn input(&self) -> String {
        serde_json::json!({ "run": self.locator, "run_id": self.run_id }).to_string()
    }

    /// Whether an execution's input names this run.
    fn owns(&self, input: Option<&str>) -> bool {
        input
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .is_some_and(|input| input["run"].as_str() == Some(self.locator.as_str()))
    }

    /// `<run-id>` for the first execution, `<run-id>-r<n>` for the n-th start.
    fn slot(&self, n: u32) -> String {
        if n <= 1 {
            self.run_id.clone()
        } else {
            format!("{}-r{n}", self.run_id)
        }
    }

    fn execution_arn(&self, name: &str) -> String {
        format!(
            "{}:{name}",
            self.state_machine
                .replacen(":stateMachine:", ":execution:", 1)
        )
    }

    /// The execution at `arn` if it exists, with whether it is this run's.
    async fn describe(&self, arn: &str) -> Result<Option<(Execution, bool)>, Failure> {
        let out = match self
            .client
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if code(&e).as_deref() == Some("ExecutionDoesNotExist") => return Ok(None),
            Err(e) => {
                return Err(Failure::Infra(format!(
                    "DescribeExecution {arn}: {}",
                    describe(&e)
                )))
            }
        };
        let continued_as = out
            .output()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .and_then(|output| {
                let arn = output.get("ExecutionArn").or(output.get("executionArn"))?;
                arn.as_str().map(str::to_string)
            });
        let execution = Execution {
            name: out.name().unwrap_or_default().to_string(),
            arn: out.execution_arn().to_string(),
            status: out.status().clone(),
            started: timestamp(out.start_date()),
            stopped: out.stop_date().and_then(timestamp),
            continued_as,
        };
        Ok(Some((execution, self.owns(out.input()))))
    }

    /// The run's running executions (normally none or one), newest first.
    pub async fn running(&self) -> Result<Vec<Execution>, Failure> {
        let mut candidates = Vec::new();
        let mut pages = self
            .client
            .list_executions()
            .state_machine_arn(&self.state_machine)
            .status_filter(ExecutionStatus::Running)
            .into_paginator()
            .send();
        let prefix = format!("{}-", self.run_id);
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                Failure::Infra(format!(
                    "{}: ListExecutions: {}",
                    self.state_machine,
                    describe(&e)
                ))
            })?;
            candidates.extend(
                page.executions()
                    .iter()
                    .filter(|e| e.name() == self.run_id || e.name().starts_with(&prefix))
                    .map(|e| e.execution_arn().to_string()),
            );
        }
        let mut running = Vec::new();
        for arn in candidates {
            if let Some((execution, true)) = self.describe(&arn).await? {
                if execution.status == ExecutionStatus::Running {
                    running.push(execution);
                }
            }
        }
        running.sort_by_key(|e| std::cmp::Reverse(e.started));
        Ok(running)
    }

    /// Every execution of the run that still exists, oldest first: each start and the
    /// continuations it led to.
    pub async fn history(&self) -> Result<Vec<Execution>, Failure> {
        let mut found = Vec::new();
        for n in 1..=MAX_SLOTS {
            let Some((mut execution, ours)) =
                self.describe(&self.execution_arn(&self.slot(n))).await?
            else {
                break;
            };
            if !ours {
                continue;
            }
            loop {
                let next = execution.continued_as.clone();
                found.push(execution);
                let Some(next) = next else { break };
                match self.describe(&next).await? {
                    Some((continuation, true)) => execution = continuation,
                    _ => break,
                }
            }
        }
        found.sort_by_key(|e| e.started);
        Ok(found)
    }

    /// Refuses while an execution drives the run: two loops on one run would take turns
    /// ticking it, each on its own schedule.
    pub async fn ensure_none_running(&self) -> Result<(), Failure> {
        match self.running().await?.first() {
            None => Ok(()),
            Some(execution) => Err(Failure::Infra(format!(
                "run {} is driven by execution {} (running since {}); starting another would \
                 drive it twice. Watch it with `baton watch {}`, or stop it with `baton abort {} --hard`",
                self.run_id,
                execution.name,
                execution
                    .started
                    .map(|t| baton_core::state::ts::format(&t))
                    .unwrap_or_else(|| "an unknown time".into()),
                self.locator,
                self.locator
            ))),
        }
    }

    /// Starts an execution to drive the run, named after the first free slot (`<run-id>`,
    /// then `<run-id>-r2`, …); refused while one is running.
    pub async fn start(&self) -> Result<Started, Failure> {
        self.ensure_none_running().await?;
        for n in 1..=MAX_SLOTS {
            let name = self.slot(n);
            if self.describe(&self.execution_arn(&name)).await?.is_some() {
                continue;
            }
            let execution_arn = self
                .client
                .start_execution()
                .state_machine_arn(&self.state_machine)
                .name(&name)
                .input(self.input())
                .send()
                .await
                .map(|out| out.execution_arn().to_string())
                .map_err(|e| {
                    Failure::Infra(format!(
                        "{}: StartExecution {name}: {}",
                        self.state_machine,
                        describe(&e)
                    ))
                })?;
            return Ok(Started {
                name,
                execution_arn,
            });
        }
        Err(Failure::Infra(format!(
            "run {}: no free execution name after {MAX_SLOTS} tries",
            self.run_id
        )))
    }

    /// Stops the run's running executions with `cause`; returns those it stopped.
    pub async fn stop_running(&self, cause: &str) -> Result<Vec<Execution>, Failure> {
        let running = self.running().await?;
        for execution in &running {
            self.client
                .stop_execution()
                .execution_arn(&execution.arn)
                .error("Baton.Aborted")
                .cause(cause)
                .send()
                .await
                .map_err(|e| {
                    Failure::Infra(format!(
                        "StopExecution {}: {}",
                        execution.name,
                        describe(&e)
                    ))
                })?;
        }
        Ok(running)
    }

    /// The run's newest execution (the running one, if any): its status, the history events
    /// it has used (the newest event's id, read newest-first with one small page) and its
    /// latest events. `None` while the run has no execution.
    pub async fn newest(&self) -> Result<Option<RemoteInfo>, Failure> {
        let newest = match self.running().await?.into_iter().next() {
            Some(running) => running,
            None => match self.history().await?.pop() {
                Some(last) => last,
                None => return Ok(None),
            },
        };
        let page = self
            .client
            .get_execution_history()
            .execution_arn(&newest.arn)
            .reverse_order(true)
            .max_results(100)
            .send()
            .await
            .map_err(|e| Failure::Infra(describe(&e)))?;
        // Newest first where the service honours reverseOrder; sort by id either way.
        let mut events: Vec<&HistoryEvent> = page.events().iter().collect();
        events.sort_by_key(|e| e.id());
        Ok(Some(RemoteInfo {
            execution: newest.name,
            status: newest.status.as_str().to_string(),
            events: events.last().map_or(0, |e| e.id() as u64),
            recent: events.iter().map(|e| event_line(e)).collect(),
        }))
    }
}

/// `(time, "#212 TaskSucceeded")`
fn event_line(event: &HistoryEvent) -> (Timestamp, String) {
    let at = timestamp(event.timestamp()).unwrap_or_default();
    (at, format!("#{} {}", event.id(), event.r#type().as_str()))
}
