//! End to end, no Docker: moto runs the real state machine definition from
//! cloudformation/runner.yaml in Step Functions execute mode, and its Lambda task reaches the
//! real baton-lambda handler (scripts/test starts moto, a loopback Lambda router and the
//! function). `baton submit` starts it all; the tests watch executions through the SFN API.

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
fn definition() -> String {
    let text =
        std::fs::read_to_string(repo().join("cloudformation/runner.yaml")).expect("template");
    let template: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
    let definition = &template["Resources"]["StateMachine"]["Properties"]["Definition"];
    serde_json::to_string(definition).expect("json").replace(
        "${TickFunctionArn}",
        "arn:aws:lambda:us-east-1:123456789012:function:baton-tick",
    )
}

struct Setup {
    endpoint: String,
    state_machine: String,
    store: String,
}

fn setup() -> Option<Setup> {
    let endpoint = ready()?;
    let bucket = unique("sfn-state");
    let state_machine = rt().block_on(async {
        let client = sfn_client(&endpoint);
        let arn = client
            .create_state_machine()
            .name(unique("baton-runner"))
            .definition(definition())
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
    })
}

impl Setup {
    fn baton(&self, scratch: &Scratch, args: &[&str]) -> std::process::Output {
        crate::moto::baton_aws(scratch, &self.endpoint, args)
    }

    fn submit(&self, scratch: &Scratch, run_id: &str) {
        let out = self.baton(
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
        );
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
