//! End to end, no Docker: moto runs the real state machine definition from
//! cloudformation/runner.yaml in Step Functions execute mode, and its Lambda task reaches the
//! real baton-lambda handler (scripts/test starts moto, a loopback Lambda router and the
//! function). `baton submit` starts it all; the tests watch executions through the SFN API.
//! Remote runs never end up stuck: every way an execution can end leaves the run finished, or
//! `idle` with the way out, and operators act on exactly their run's executions.

use std::time::{Duration, Instant};

use aws_sdk_sfn as sfn;
use serde_json::json;

use crate::common::*;
use crate::moto::{rt, s3_client, sfn_client, unique};

fn ready() -> Option<String> {
    let endpoint = std::env::var("BATON_TEST_AWS_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty());
    match (endpoint, std::env::var("BATON_TEST_STEP_FUNCTIONS").is_ok()) {
        (Some(endpoint), true) => Some(endpoint),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "the Step Functions end-to-end setup is missing: run scripts/test"
            );
            eprintln!("skipping: no Step Functions setup (run scripts/test)");
            None
        }
    }
}

/// The definition from cloudformation/runner.yaml, with the Lambda substituted in.
fn definition() -> serde_json::Value {
    definition_for("baton-tick")
}

/// The runner's definition, its Tick state calling the function `name` (scripts/test runs
/// `baton-tick`, which runs commands inside the tick, and `baton-tick-ecs`, which sends them to
/// the ECS cluster `baton-e2e-commands`).
fn definition_for(name: &str) -> serde_json::Value {
    let text =
        std::fs::read_to_string(repo().join("cloudformation/runner.yaml")).expect("template");
    let template: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
    let definition = &template["Resources"]["StateMachine"]["Properties"]["Definition"];
    let text = serde_json::to_string(definition).expect("json").replace(
        "${TickFunctionArn}",
        &format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
    );
    serde_json::from_str(&text).expect("json")
}

/// The runner's definition, entered through a Pass state that sets the executions' options
/// (every continuation passes through it again).
fn definition_with_options(options: serde_json::Value) -> serde_json::Value {
    let mut definition = definition();
    definition["States"]["Configure"] = json!({
        "Type": "Pass", "Result": options, "ResultPath": "$.options", "Next": "Tick"
    });
    definition["StartAt"] = json!("Configure");
    definition
}

struct Setup {
    endpoint: String,
    state_machine: String,
    bucket: String,
    store: String,
}

fn setup() -> Option<Setup> {
    setup_with(definition())
}

fn setup_with(definition: serde_json::Value) -> Option<Setup> {
    let endpoint = ready()?;
    let bucket = unique("sfn-state");
    let state_machine = rt().block_on(async {
        let client = sfn_client(&endpoint);
        let arn = client
            .create_state_machine()
            .name(unique("baton-runner"))
            .definition(definition.to_string())
            .role_arn("arn:aws:iam::123456789012:role/baton-runner")
            .send()
            .await
            .expect("create state machine")
            .state_machine_arn()
            .to_string();
        crate::moto::bucket(&s3_client(&endpoint), &bucket, true).await;
        arn
    });
    Some(Setup {
        endpoint,
        state_machine,
        store: format!("s3://{bucket}/baton"),
        bucket,
    })
}

impl Setup {
    fn baton(&self, scratch: &Scratch, args: &[&str]) -> std::process::Output {
        crate::moto::baton_aws(scratch, &self.endpoint, args)
    }

    /// `baton submit plan.json` to this runner, as run `run_id`, whatever it answers.
    fn try_submit(&self, scratch: &Scratch, run_id: &str) -> std::process::Output {
        self.baton(
            scratch,
            &[
                "submit",
                "plan.json",
                "--store",
                &self.store,
                "--state-machine",
                &self.state_machine,
                "--run-id",
                run_id,
            ],
        )
    }

    fn submit(&self, scratch: &Scratch, run_id: &str) {
        let out = self.try_submit(scratch, run_id);
        assert_eq!(
            code(&out),
            0,
            "submit failed:\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stdout(&out).contains(&format!(":{run_id}\n")),
            "{}",
            stdout(&out)
        );
    }

    fn locator(&self, run_id: &str) -> String {
        format!("{}/runs/{run_id}", self.store)
    }

    /// Waits for the named execution to leave RUNNING; returns (status, error, cause).
    fn finish(&self, execution: &str, timeout: Duration) -> (String, String, String) {
        let arn = self.state_machine.replace(":stateMachine:", ":execution:") + ":" + execution;
        let client = sfn_client(&self.endpoint);
        let deadline = Instant::now() + timeout;
        rt().block_on(async {
            loop {
                let out = client
                    .describe_execution()
                    .execution_arn(&arn)
                    .send()
                    .await
                    .expect("describe execution");
                if out.status() != &sfn::types::ExecutionStatus::Running {
                    return (
                        out.status().as_str().to_string(),
                        out.error().unwrap_or_default().to_string(),
                        out.cause().unwrap_or_default().to_string(),
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "execution {execution} still running"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    }

    fn status(&self, scratch: &Scratch, run_id: &str) -> serde_json::Value {
        let out = self.baton(scratch, &["status", &self.locator(run_id), "--json"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        json(&out)
    }

    /// Waits until the run's `status --json` satisfies `check`.
    fn wait_until(
        &self,
        scratch: &Scratch,
        run_id: &str,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            // The run may not exist yet.
            let out = self.baton(scratch, &["status", &self.locator(run_id), "--json"]);
            let status = serde_json::from_slice(&out.stdout).unwrap_or(json!(null));
            if check(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "never {what}: {status}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The named execution's status, or `None` when it does not exist.
    fn execution_status(&self, name: &str) -> Option<String> {
        let arn = self.state_machine.replace(":stateMachine:", ":execution:") + ":" + name;
        rt().block_on(
            sfn_client(&self.endpoint)
                .describe_execution()
                .execution_arn(arn)
                .send(),
        )
        .ok()
        .map(|out| out.status().as_str().to_string())
    }

    /// Every execution of this state machine whose input names the run: (name, status),
    /// oldest first.
    fn executions_of(&self, run_id: &str) -> Vec<(String, String)> {
        let locator = self.locator(run_id);
        rt().block_on(async {
            let client = sfn_client(&self.endpoint);
            let list = client
                .list_executions()
                .state_machine_arn(&self.state_machine)
                .send()
                .await
                .expect("list executions");
            let mut found = Vec::new();
            for e in list.executions() {
                let out = client
                    .describe_execution()
                    .execution_arn(e.execution_arn())
                    .send()
                    .await
                    .expect("describe execution");
                let input: serde_json::Value =
                    serde_json::from_str(out.input().unwrap_or("{}")).expect("input");
                if input["run"] == locator.as_str() {
                    found.push((
                        e.start_date().secs(),
                        e.name().to_string(),
                        e.status().as_str().to_string(),
                    ));
                }
            }
            found.sort();
            found
                .into_iter()
                .map(|(_, name, status)| (name, status))
                .collect()
        })
    }

    /// Starts an execution directly (as the console of Step Functions would).
    fn start_execution(&self, name: &str, run_id: &str) {
        let input = json!({"run": self.locator(run_id), "run_id": run_id}).to_string();
        rt().block_on(
            sfn_client(&self.endpoint)
                .start_execution()
                .state_machine_arn(&self.state_machine)
                .name(name)
                .input(input)
                .send(),
        )
        .expect("start execution");
    }

    /// Keys of the run's objects in S3, with their versions: (key, version id).
    fn objects(&self, run_id: &str) -> Vec<(String, String)> {
        let prefix = format!("baton/runs/{run_id}/");
        rt().block_on(async {
            let out = s3_client(&self.endpoint)
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .send()
                .await
                .expect("list object versions");
            out.versions()
                .iter()
                .map(|v| {
                    (
                        v.key().unwrap_or_default().to_string(),
                        v.version_id().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
    }
}

/// The function's log lines (scripts/test keeps its stdout) about `run_id`.
fn function_log(run_id: &str) -> Vec<serde_json::Value> {
    let Ok(path) = std::env::var("BATON_TEST_LAMBDA_LOG") else {
        assert!(
            std::env::var("CI").is_err(),
            "BATON_TEST_LAMBDA_LOG is not set: run scripts/test"
        );
        return Vec::new();
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["run"] == run_id)
        .collect()
}

fn plan(scratch: &Scratch, plan: serde_json::Value) {
    scratch.write("plan.json", &plan.to_string());
}

#[test]
fn a_submitted_plan_with_a_stack_succeeds() {
    let Some(setup) = setup() else { return };
    let scratch = Scratch::new();
    let stack = unique("e2e-stack");
    let template = json!({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}, "Outputs": {"Url": {"Value": {"Ref": "Queue"}}}}).to_string();
    let plan = json!([
        {"label": "config", "type": "system.set_variables", "params": {"variables": {"stack": stack}}},
        {"label": "pause", "type": "system.wait", "depends_on": ["config"], "params": {"seconds": 1}},
        {"label": "queue", "type": "aws.create_stack", "depends_on": ["pause"],
         "params": {"stack_name": "{{ outputs['config'].stack }}", "template_body": template}},
        {"label": "done", "type": "system.no_op", "depends_on": ["queue"]}
    ]);
    scratch.write("plan.json", &plan.to_string());
    let run_id = unique("ok");
    setup.submit(&scratch, &run_id);
    let (status, error, cause) = setup.finish(&run_id, Duration::from_secs(60));
    assert_eq!(status, "SUCCEEDED", "{error}: {cause}");
    let state = setup.status(&scratch, &run_id);
    assert_eq!(state["status"], "succeeded");
    assert_eq!(state["counts"]["complete"], 4);
    assert!(
        state["invocations"].as_u64().unwrap_or(0) >= 2,
        "the wait took a second tick: {state}"
    );
}

#[test]
fn a_failing_plan_fails_the_execution_naming_the_action_then_retry_succeeds() {
    let Some(setup) = setup() else { return };
    let scratch = Scratch::new();
    let flag = std::env::temp_dir().join(unique("baton-e2e-approval"));
    let plan = json!([
        {"label": "build", "type": "system.no_op"},
        {"label": "approval", "type": "system.command",
         "params": {"command": ["test", "-f", flag.display().to_string()]}},
        {"label": "deploy", "type": "system.no_op", "depends_on": ["build", "approval"]}
    ]);
    scratch.write("plan.json", &plan.to_string());
    let run_id = unique("fail");
    setup.submit(&scratch, &run_id);
    let (status, error, cause) = setup.finish(&run_id, Duration::from_secs(60));
    assert_eq!(status, "FAILED");
    assert_eq!(error, "failed", "the error is the run status");
    assert!(
        cause.contains("approval (test exited with status 1)"),
        "the cause names the action: {cause}"
    );
    assert_eq!(
        setup.status(&scratch, &run_id)["actions"]["deploy"]["status"],
        "blocked"
    );

    // The operator fixes the precondition and re-executes: a new execution finishes the run.
    std::fs::write(&flag, "ok").expect("approve");
    let out = setup.baton(&scratch, &["retry", &setup.locator(&run_id), "--failed"]);
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("new execution"), "{}", stdout(&out));
    let (status, error, cause) = setup.finish(&format!("{run_id}-r2"), Duration::from_secs(60));
    assert_eq!(status, "SUCCEEDED", "{error}: {cause}");
    let state = setup.status(&scratch, &run_id);
    assert_eq!(state["status"], "succeeded");
    assert_eq!(state["actions"]["approval"]["attempts"], 2);
    let _ = std::fs::remove_file(flag);
}

#[test]
fn abort_hard_stops_the_execution_and_aborts_the_run() {
    let Some(setup) = setup() else { return };
    let scratch = Scratch::new();
    let plan = json!([
        {"label": "long", "type": "system.wait", "params": {"seconds": 60}},
        {"label": "after", "type": "system.no_op", "depends_on": ["long"]}
    ]);
    scratch.write("plan.json", &plan.to_string());
    let run_id = unique("abort");
    setup.submit(&scratch, &run_id);
    // Wait until the first tick has started the long wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    while setup.status(&scratch, &run_id)["actions"]["long"]["status"] != "running" {
        assert!(Instant::now() < deadline, "the first tick never ran");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = setup.baton(&scratch, &["abort", &setup.locator(&run_id), "--hard"]);
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("stopped 1 running execution"),
        "{}",
        stdout(&out)
    );
    let (status, _, _) = setup.finish(&run_id, Duration::from_secs(10));
    assert_eq!(status, "ABORTED");
    let state = setup.status(&scratch, &run_id);
    assert_eq!(state["status"], "aborted");
    assert_eq!(state["actions"]["long"]["status"], "cancelled");
    assert_eq!(state["actions"]["after"]["status"], "cancelled");
}

#[test]
fn abort_hard_during_a_synchronous_action_settles_the_run_itself() {
    let Some(setup) = setup() else { return };
    let scratch = Scratch::new();
    plan(
        &scratch,
        json!([
            {"label": "long", "type": "system.command", "params": {"command": ["sleep", "4"]}},
            {"label": "after", "type": "system.no_op", "depends_on": ["long"]}
        ]),
    );
    let run_id = unique("hard-sync");
    setup.submit(&scratch, &run_id);
    // The Lambda's tick is inside the command, holding the run's lease.
    setup.wait_until(&scratch, &run_id, "running the command", |s| {
        s["actions"]["long"]["status"] == "running" && !s["driver"].is_null()
    });
    let out = setup.baton(&scratch, &["abort", &setup.locator(&run_id), "--hard"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let said = stdout(&out);
    assert!(said.contains("stopped 1 running execution"), "{said}");
    // The stopped execution's tick let go of the run; the CLI settled it.
    assert!(said.contains(&format!("run {run_id} aborted")), "{said}");
    let (status, _, _) = setup.finish(&run_id, Duration::from_secs(10));
    assert_eq!(status, "ABORTED");
    let state = setup.status(&scratch, &run_id);
    assert_eq!(state["status"], "aborted", "{state}");
    assert_eq!(state["actions"]["after"]["status"], "cancelled");
    assert!(state["driver"].is_null(), "nothing holds the run: {state}");
    assert_eq!(state["idle"], false);
}

#[test]
fn an_idle_remote_run_says_so_and_resume_remote_continues_it_in_a_new_execution() {
    let Some(setup) = setup() else { return };
    let scratch = Scratch::new();
    plan(
        &scratch,
        json!([
            {"label": "pause", "type": "system.wait", "params": {"seconds": 3}},
            {"label": "done", "type": "system.no_op", "depends_on": ["pause"]}
        ]),
    );
    let run_id = unique("idle");
    setup.submit(&scratch, &run_id);
    let locator = setup.locator(&run_id);
    setup.wait_until(&scratch, &run_id, "pausing", |s| {
        s["status"] == "waiting" && s["driver"].is_null()
    });
    // While the execution drives the run, a second one is refused, and retry resets nothing.
    let out = setup.baton(&scratch, &["resume", &locator, "--remote"]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(
        stderr(&out).contains(&format!("is driven by execution {run_id} ")),
        "{}",
        describe(&out)
    );
    let out = setup.baton(&scratch, &["retry", &locator, "--only", "pause"]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert_eq!(
        setup.status(&scratch, &run_id)["actions"]["pause"]["attempts"],
        1
    );
    assert_eq!(setup.executions_of(&run_id).len(), 1);

    // The execution goes away with the run unfinished (its retries ran out, someone stopped
    // it): status says the run is idle and how to continue it.
    rt().block_on(
        sfn_client(&setup.endpoint)
            .stop_execution()
            .execution_arn(
                setup.state_machine.replace(":stateMachine:", ":execution:") + ":" + &run_id,
            )
            .send(),
    )
    .expect("stop");
    let state = setup.status(&scratch, &run_id);
    assert_eq!(state["idle"], true, "{state}");
    assert!(state["idle_since"].is_string(), "{state}");
    let out = setup.baton(&scratch, &["status", &locator]);
    let text = stdout(&out);
    assert!(
        text.contains("idle since")
            && text.contains("nothing is driving it")
            && text.contains(&format!("baton resume {locator} --remote")),
        "{text}"
    );

    let out = setup.baton(&scratch, &["resume", &locator, "--remote"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains(&format!(":{run_id}-r2")),
        "{}",
        stdout(&out)
    );
    let (status, error, cause) = setup.finish(&format!("{run_id}-r2"), Duration::from_secs(30));
    assert_eq!(status, "SUCCEEDED", "{error}: {cause}");
    assert_eq!(setup.status(&scratch, &run_id)["status"], "succeeded");
    // A finished run has nothing to resume.
    let out = setup.baton(&scratch, &["resume", &locator, "--remote"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(
        stderr(&out).contains("already finished"),
        "{}",
        describe(&out)
    );
}

#[test]
fn submit_to_a_missing_state_machine_writes_nothing() {
    let Some(setup) = setup() else { return };
    let scratch = Scratch::new();
    plan(&scratch, json!([{"label": "a", "type": "system.no_op"}]));
    let run_id = unique("no-sm");
    let missing = setup.state_machine.clone() + "-missing";
    let out = setup.baton(
        &scratch,
        &[
            "submit",
            "plan.json",
            "--store",
            &setup.store,
            "--state-machine",
            &missing,
            "--run-id",
            &run_id,
        ],
    );
    assert_eq!(code(&out), 2, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("StateMachineDoesNotExist") && err.contains("Nothing was written"),
        "{err}"
    );
    assert_eq!(
        setup.objects(&run_id),
        vec![],
        "the refused submit wrote objects"
    );
}

/// A runner that says (by its state machine's `baton:commands` tag) that it would fail or kill
/// a file's commands is refused at submit, naming the action and how to deploy the runner so
/// it can; nothing is written.
#[test]
fn submit_refuses_commands_the_runner_cannot_run() {
    let Some(setup) = setup() else { return };
    let tag = |value: &str| {
        let client = sfn_client(&setup.endpoint);
        let arn = setup.state_machine.clone();
        let value = value.to_string();
        rt().block_on(async move {
            client
                .tag_resource()
                .resource_arn(arn)
                .tags(
                    aws_sdk_sfn::types::Tag::builder()
                        .key("baton:commands")
                        .value(value)
                        .build(),
                )
                .send()
                .await
                .expect("tag the state machine")
        });
    };
    let scratch = Scratch::new();
    plan(
        &scratch,
        json!([
            {"label": "ok", "type": "system.no_op"},
            {"label": "migrate", "type": "system.command", "timeout": "10m",
             "params": {"command": ["./migrate"]}}
        ]),
    );
    for (mode, says) in [
        ("off", "this runner runs no commands"),
        (
            "in-function",
            "stops them after 4m40s, and the action's timeout is 10m",
        ),
    ] {
        tag(mode);
        let run_id = unique("refused");
        let out = setup.try_submit(&scratch, &run_id);
        assert_eq!(code(&out), 2, "{}", describe(&out));
        let err = stderr(&out);
        assert!(
            err.contains("action \"migrate\" (system.command): "),
            "{err}"
        );
        assert!(err.contains(says), "{err}");
        assert!(
            err.contains("CommandCluster") && err.contains("Nothing was written"),
            "{err}"
        );
        assert!(
            setup.objects(&run_id).is_empty(),
            "the refused submit wrote objects"
        );
    }
}

#[test]
fn abort_hard_of_a_run_leaves_the_run_named_like_its_re_execution_alone() {
    let Some(setup) = setup() else { return };
    let scratch = Scratch::new();
    plan(
        &scratch,
        json!([
            {"label": "long", "type": "system.wait", "params": {"seconds": 60}},
            {"label": "after", "type": "system.no_op", "depends_on": ["long"]}
        ]),
    );
    let run_id = unique("twin");
    let sibling = format!("{run_id}-r2");
    setup.submit(&scratch, &run_id);
    setup.submit(&scratch, &sibling);
    for id in [&run_id, &sibling] {
        setup.wait_until(&scratch, id, "waiting", |s| s["status"] == "waiting");
    }
    let out = setup.baton(&scratch, &["abort", &setup.locator(&run_id), "--hard"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("stopped 1 running execution"),
        "{}",
        stdout(&out)
    );
    assert_eq!(setup.execution_status(&run_id).as_deref(), Some("ABORTED"));
    assert_eq!(setup.execution_status(&sibling).as_deref(), Some("RUNNING"));
    assert_eq!(setup.status(&scratch, &sibling)["status"], "waiting");
    assert_eq!(setup.status(&scratch, &run_id)["status"], "aborted");

    // Re-executing the aborted run skips the name its sibling's execution holds.
    let out = setup.baton(&scratch, &["retry", &setup.locator(&run_id), "--failed"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains(&format!(":{run_id}-r3")),
        "{}",
        stdout(&out)
    );
    assert_eq!(setup.execution_status(&sibling).as_deref(), Some("RUNNING"));
    // Once the re-execution's first tick has ended (a tick in flight would take the abort
    // itself and end its execution cleanly, SUCCEEDED with the run aborted).
    setup.wait_until(&scratch, &run_id, "waiting", |s| s["status"] == "waiting");
    for id in [&run_id, &sibling] {
        let out = setup.baton(&scratch, &["abort", &setup.locator(id), "--hard"]);
        assert_eq!(code(&out), 0, "{}", describe(&out));
    }
    assert_eq!(
        setup.execution_status(&format!("{run_id}-r3")).as_deref(),
        Some("ABORTED")
    );
}

#[test]
fn resubmitting_an_existing_run_id_uploads_nothing_and_templates_are_pinned() {
    let Some(setup) = setup() else { return };
    let scratch = Scratch::new();
    let template = json!({"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}).to_string();
    scratch.write("queue.json", &template);
    plan(
        &scratch,
        json!([{"label": "queue", "type": "aws.create_stack",
                "params": {"stack_name": unique("pinned"), "template_file": "queue.json"}}]),
    );
    let run_id = unique("pinned");
    setup.submit(&scratch, &run_id);
    let (status, error, cause) = setup.finish(&run_id, Duration::from_secs(60));
    assert_eq!(status, "SUCCEEDED", "{error}: {cause}");
    let artifacts = |setup: &Setup| -> Vec<(String, String)> {
        setup
            .objects(&run_id)
            .into_iter()
            .filter(|(key, _)| key.contains("/artifacts/"))
            .collect()
    };
    let uploaded = artifacts(&setup);
    assert_eq!(uploaded.len(), 1, "{uploaded:?}");
    // The run deploys exactly the version it uploaded.
    let plan_text = rt().block_on(async {
        let out = s3_client(&setup.endpoint)
            .get_object()
            .bucket(&setup.bucket)
            .key(format!("baton/runs/{run_id}/actions.json"))
            .send()
            .await
            .expect("plan");
        String::from_utf8(out.body.collect().await.expect("body").to_vec()).expect("utf-8")
    });
    assert!(
        plan_text.contains(&format!("?versionId={}", uploaded[0].1)),
        "{plan_text}"
    );

    // Someone submits a changed template under the same run id: refused before any upload.
    scratch.write("queue.json", &template.replace("Queue", "Other"));
    let out = setup.try_submit(&scratch, &run_id);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(
        stderr(&out).contains("already exists"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        artifacts(&setup),
        uploaded,
        "the existing run's template was touched"
    );
    assert_eq!(setup.executions_of(&run_id).len(), 1);
}

#[test]
fn a_missing_run_fails_the_execution_at_once_as_an_operator_error() {
    let Some(setup) = setup() else { return };
    let scratch = Scratch::new();
    let run_id = unique("missing");
    let started = Instant::now();
    setup.start_execution(&run_id, &run_id);
    let (status, error, cause) = setup.finish(&run_id, Duration::from_secs(20));
    assert_eq!(
        (status.as_str(), error.as_str()),
        ("FAILED", "Baton.Fatal"),
        "{cause}"
    );
    assert!(cause.contains("no such run"), "{cause}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not retried: {:?}",
        started.elapsed()
    );
    // The command line says the same, with the exit code for a missing run.
    let out = setup.baton(&scratch, &["status", &setup.locator(&run_id)]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stderr(&out).contains("no such run"), "{}", describe(&out));
}

#[test]
fn a_run_leased_by_a_local_driver_makes_the_execution_wait_then_succeed() {
    let Some(setup) = setup() else { return };
    let scratch = Scratch::new();
    plan(
        &scratch,
        json!([
            {"label": "local", "type": "system.command", "params": {"command": ["sleep", "4"]}},
            {"label": "done", "type": "system.no_op", "depends_on": ["local"]}
        ]),
    );
    let run_id = unique("leased");
    let mut local = crate::moto::aws_cmd(&scratch, &setup.endpoint)
        .args([
            "run",
            "plan.json",
            "--store",
            &setup.store,
            "--run-id",
            &run_id,
            "--plain",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("baton run");
    setup.wait_until(&scratch, &run_id, "leased locally", |s| {
        s["actions"]["local"]["status"] == "running" && !s["driver"].is_null()
    });
    setup.start_execution(&run_id, &run_id);
    let (status, error, cause) = setup.finish(&run_id, Duration::from_secs(60));
    assert_eq!(status, "SUCCEEDED", "{error}: {cause}");
    assert!(local.wait().expect("local driver").success());
    assert_eq!(setup.status(&scratch, &run_id)["status"], "succeeded");
    let waited = function_log(&run_id).iter().any(|line| {
        line["message"]
            .as_str()
            .is_some_and(|m| m.contains("driven elsewhere"))
    });
    assert!(
        waited || std::env::var("BATON_TEST_LAMBDA_LOG").is_err(),
        "the execution never met the lease"
    );
}

#[test]
fn an_abort_while_pausing_settles_at_once_and_never_fails_the_execution() {
    let Some(setup) = setup() else { return };
    let scratch = Scratch::new();
    plan(
        &scratch,
        json!([
            {"label": "long", "type": "system.wait", "params": {"seconds": 3600}},
            {"label": "after", "type": "system.no_op", "depends_on": ["long"]}
        ]),
    );
    let run_id = unique("soft-pause");
    setup.submit(&scratch, &run_id);
    setup.wait_until(&scratch, &run_id, "pausing", |s| {
        s["status"] == "waiting" && s["driver"].is_null()
    });
    let started = Instant::now();
    let out = setup.baton(&scratch, &["abort", &setup.locator(&run_id)]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains(&format!("run {run_id} aborted")),
        "{}",
        describe(&out)
    );
    let (status, _, _) = setup.finish(&run_id, Duration::from_secs(10));
    assert_eq!(status, "ABORTED", "the hour-long pause is not waited out");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        setup.status(&scratch, &run_id)["actions"]["long"]["status"],
        "cancelled"
    );
}

#[test]
fn an_abort_taken_by_a_tick_in_flight_ends_the_execution_without_failing_it() {
    let Some(setup) = setup() else { return };
    let scratch = Scratch::new();
    plan(
        &scratch,
        json!([
            {"label": "busy", "type": "system.command", "params": {"command": ["sleep", "3"]}},
            {"label": "after", "type": "system.no_op", "depends_on": ["busy"]}
        ]),
    );
    let run_id = unique("soft-tick");
    setup.submit(&scratch, &run_id);
    setup.wait_until(&scratch, &run_id, "running the command", |s| {
        s["actions"]["busy"]["status"] == "running" && !s["driver"].is_null()
    });
    let out = setup.baton(&scratch, &["abort", &setup.locator(&run_id)]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(
        stdout(&out).contains("tick in flight"),
        "{}",
        describe(&out)
    );
    let (status, error, cause) = setup.finish(&run_id, Duration::from_secs(30));
    // RunAborted: no failed execution, no alarm.
    assert_eq!(status, "SUCCEEDED", "{error}: {cause}");
    let state = setup.status(&scratch, &run_id);
    assert_eq!(state["status"], "aborted", "{state}");
    assert_eq!(state["actions"]["after"]["status"], "cancelled");
}

#[test]
fn a_long_run_continues_as_new_across_executions_to_the_end() {
    let Some(setup) = setup_with(definition_with_options(json!({"continue_after_ticks": 2})))
    else {
        return;
    };
    let scratch = Scratch::new();
    plan(
        &scratch,
        json!([
            {"label": "w1", "type": "system.wait", "params": {"seconds": 1}},
            {"label": "w2", "type": "system.wait", "depends_on": ["w1"], "params": {"seconds": 1}},
            {"label": "w3", "type": "system.wait", "depends_on": ["w2"], "params": {"seconds": 1}},
            {"label": "done", "type": "system.no_op", "depends_on": ["w3"]}
        ]),
    );
    let run_id = unique("long-run");
    setup.submit(&scratch, &run_id);
    let state = setup.wait_until(&scratch, &run_id, "finished", |s| {
        s["status"] != "waiting" && s["status"] != "running"
    });
    assert_eq!(state["status"], "succeeded", "{state}");
    let executions = setup.executions_of(&run_id);
    assert!(
        executions.len() >= 3,
        "two continuations at least: {executions:?}"
    );
    assert_eq!(executions[0].0, run_id);
    for (name, _) in &executions[1..] {
        assert!(name.starts_with(&format!("{run_id}-c")), "{executions:?}");
    }
    // Each execution handed over and ended; the last ended with the run.
    let last = executions
        .last()
        .map(|(name, _)| name.clone())
        .unwrap_or_default();
    let (status, error, cause) = setup.finish(&last, Duration::from_secs(20));
    assert_eq!(status, "SUCCEEDED", "{error}: {cause}");
    for (name, _) in &executions {
        assert_eq!(
            setup.execution_status(name).as_deref(),
            Some("SUCCEEDED"),
            "{name}"
        );
    }
    // The console and status find the run's newest execution by following the chain.
    assert_eq!(setup.status(&scratch, &run_id)["idle"], false);
}

#[test]
fn the_function_logs_each_actions_output_and_errors_with_run_tick_and_attempt() {
    let Some(setup) = setup() else { return };
    if std::env::var("BATON_TEST_LAMBDA_LOG").is_err() && std::env::var("CI").is_err() {
        eprintln!("skipping: BATON_TEST_LAMBDA_LOG is not set (run scripts/test)");
        return;
    }
    let scratch = Scratch::new();
    plan(
        &scratch,
        json!([
            {"label": "greet", "type": "system.command",
             "params": {"command": ["sh", "-c", "echo hello from the function"]}},
            {"label": "break", "type": "system.command", "depends_on": ["greet"],
             "params": {"command": ["sh", "-c", "echo giving up >&2; exit 4"]}}
        ]),
    );
    let run_id = unique("logs");
    setup.submit(&scratch, &run_id);
    let (status, _, _) = setup.finish(&run_id, Duration::from_secs(30));
    assert_eq!(status, "FAILED");
    let lines = function_log(&run_id);
    let output = lines
        .iter()
        .find(|l| l["action"] == "greet" && l["message"] == "hello from the function")
        .unwrap_or_else(|| panic!("no output line: {lines:#?}"));
    assert_eq!(
        (&output["attempt"], &output["tick"], &output["level"]),
        (&json!(1), &json!(1), &json!("INFO"))
    );
    let error = lines
        .iter()
        .find(|l| l["action"] == "break" && l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error line: {lines:#?}"));
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("status 4")),
        "{error}"
    );
    assert_eq!(error["attempt"], 1);
}

/// The runner's command cluster as scripts/test deploys `baton-tick-ecs`: the cluster, the task
/// definition (its container logs to `/baton-e2e/commands`, streams `cmd/runner/<task id>`) and
/// the log group. Made once; later calls find them.
async fn command_cluster(endpoint: &str) -> (aws_sdk_ecs::Client, aws_sdk_cloudwatchlogs::Client) {
    crate::moto::command_task_setup(
        endpoint,
        "baton-e2e-commands",
        "baton-e2e-command",
        "/baton-e2e/commands",
        "runner",
    )
    .await
}

/// The same action file that runs a long command as a process with `baton run` runs it, under
/// `baton submit` to a runner with a command cluster, as an ECS task: its output shows in the
/// run's log thread as the task writes it, and an abort stops the task.
#[test]
fn a_submitted_long_command_runs_as_an_ecs_task_its_output_shows_and_abort_stops_it() {
    let Some(setup) = setup_with(definition_for("baton-tick-ecs")) else {
        return;
    };
    let (ecs, logs) = rt().block_on(command_cluster(&setup.endpoint));
    let scratch = Scratch::new();
    let marker = unique("release");
    plan(
        &scratch,
        json!([
            {"label": "build", "type": "system.command", "timeout": "20m",
             "params": {"command": ["sh", "-c", format!("echo {marker}; sleep 600")]}},
            {"label": "after", "type": "system.no_op", "depends_on": ["build"]}
        ]),
    );
    let run_id = unique("ecs-cmd");
    setup.submit(&scratch, &run_id);
    // The first tick started the task and returned.
    let state = setup.wait_until(&scratch, &run_id, "the command's task to start", |s| {
        s["actions"]["build"]["status"] == "running" && s["driver"].is_null()
    });
    assert_eq!(state["status"], "waiting", "{state}");
    let task = rt().block_on(async {
        let arns = ecs
            .list_tasks()
            .cluster("baton-e2e-commands")
            .send()
            .await
            .expect("list tasks")
            .task_arns()
            .to_vec();
        let tasks = ecs
            .describe_tasks()
            .cluster("baton-e2e-commands")
            .set_tasks(Some(arns))
            .send()
            .await
            .expect("describe tasks");
        tasks
            .tasks()
            .iter()
            .find(|t| {
                t.overrides()
                    .and_then(|o| o.container_overrides().first())
                    .is_some_and(|c| c.command().iter().any(|arg| arg.contains(&marker)))
            })
            .cloned()
            .expect("the command's task")
    });
    let arn = task.task_arn().unwrap_or_default().to_string();
    // The container writes a line; a later tick reads it into the log thread.
    rt().block_on(async {
        let stream = format!("cmd/runner/{}", arn.rsplit('/').next().unwrap_or_default());
        logs.create_log_stream()
            .log_group_name("/baton-e2e/commands")
            .log_stream_name(&stream)
            .send()
            .await
            .expect("stream");
        let event = aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
            .timestamp(chrono::Utc::now().timestamp_millis())
            .message(format!("{marker}: step 1 of 3"))
            .build()
            .expect("event");
        logs.put_log_events()
            .log_group_name("/baton-e2e/commands")
            .log_stream_name(&stream)
            .log_events(event)
            .send()
            .await
            .expect("put");
    });
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let out = setup.baton(&scratch, &["logs", &setup.locator(&run_id), "build"]);
        if stdout(&out).contains(&format!("{marker}: step 1 of 3")) {
            assert!(
                stdout(&out).contains(&format!("started ECS task {arn}")),
                "{}",
                stdout(&out)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the output never showed: {}",
            describe(&out)
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let out = setup.baton(&scratch, &["abort", &setup.locator(&run_id)]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let state = setup.wait_until(&scratch, &run_id, "the abort", |s| s["status"] == "aborted");
    assert_eq!(state["actions"]["build"]["status"], "cancelled", "{state}");
    assert_eq!(state["actions"]["after"]["status"], "cancelled", "{state}");
    let stopped = rt()
        .block_on(
            ecs.describe_tasks()
                .cluster("baton-e2e-commands")
                .tasks(&arn)
                .send(),
        )
        .expect("describe task");
    let stopped = &stopped.tasks()[0];
    let log = setup.baton(&scratch, &["logs", &setup.locator(&run_id), "build"]);
    assert_eq!(
        stopped.last_status(),
        Some("STOPPED"),
        "{state}\n{}",
        stdout(&log)
    );
    assert!(
        stopped
            .stopped_reason()
            .is_some_and(|r| r.contains("stopped by baton")),
        "{stopped:?}"
    );
}
