//! Faults in AWS calls: S3 and CloudFormation answer 500s, throttle, hang and drop connections
//! (before or after doing the work), through scripts/fault_proxy.py in front of moto. Ticks
//! retry or end cleanly, the run always resumes to the end, every stored state version stays
//! readable, and no stack is created twice.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{json, Value};

use crate::common::*;
use crate::moto::*;

/// The fault proxy, stopped on drop.
pub(crate) struct Proxy {
    child: Child,
    port: u16,
}

impl Proxy {
    pub(crate) fn start(upstream: &str) -> Proxy {
        let upstream_port = upstream.rsplit(':').next().expect("endpoint port");
        let mut child = Command::new("python3")
            .arg(repo().join("scripts/fault_proxy.py"))
            .arg(upstream_port)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scripts/fault_proxy.py");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout"))
            .read_line(&mut line)
            .expect("proxy announces its port");
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected proxy output: {line}"));
        Proxy { child, port }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    /// POSTs (or GETs, without a body) the fault configuration; returns the proxy's answer.
    pub(crate) fn faults(&self, config: Option<Value>) -> Value {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        let request = match &config {
            Some(config) => {
                let body = config.to_string();
                format!(
                    "POST /__faults__ HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            }
            None => {
                "GET /__faults__ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".into()
            }
        };
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).expect("proxy answers JSON")
    }

    fn injected(&self) -> u64 {
        let answer = self.faults(None);
        answer["injected"]
            .as_object()
            .into_iter()
            .flat_map(|services| services.values())
            .filter_map(Value::as_object)
            .flat_map(|modes| modes.values())
            .filter_map(Value::as_u64)
            .sum()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three stacks in a chain beside idempotent commands and a wait, all with a retry policy.
fn plan(scratch: &Scratch, stacks: &[String]) {
    let template = r#"{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": {"TopicArn": {"Value": {"Ref": "Topic"}}}}"#;
    let retry = json!({"attempts": 6, "delay": "200ms", "backoff": 1.5});
    let plan = json!([
        {"label": "net", "type": "aws.create_stack", "retry": retry,
         "params": {"stack_name": stacks[0], "template_body": template}},
        {"label": "data", "type": "aws.create_stack", "depends_on": ["net"], "retry": retry,
         "params": {"stack_name": stacks[1], "template_body": template}},
        {"label": "app", "type": "aws.create_stack", "depends_on": ["data"], "retry": retry,
         "params": {"stack_name": stacks[2], "template_body": template}},
        {"label": "build", "type": "system.command", "retry": retry,
         "params": {"command": "mkdir -p out && echo built > out/build", "shell": true, "idempotent": true}},
        {"label": "settle", "type": "system.wait", "depends_on": ["build"], "params": {"seconds": 0.3}},
        {"label": "smoke", "type": "system.command", "depends_on": ["app", "settle"], "retry": retry,
         "params": {"command": ["test", "-f", "out/build"], "idempotent": true}},
    ]);
    scratch.write("plan.json", &plan.to_string());
}

/// Drives the run through the proxy until it finishes, resuming after every tick that ended
/// on an AWS error; returns the outputs of every attempt.
fn drive_to_the_end(
    scratch: &Scratch,
    proxy: &Proxy,
    store: &str,
    env: &[(&str, &str)],
    max_resumes: usize,
) -> Vec<Output> {
    let baton = |args: &[&str]| {
        let mut cmd = aws_cmd(scratch, &proxy.endpoint());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(args)
            .args(["--store", store])
            .output()
            .expect("baton")
    };
    let create = ["run", "plan.json", "--run-id", "r", "--json"];
    let mut outputs = vec![baton(&create)];
    for _ in 0..max_resumes {
        let last = outputs.last().expect("an attempt");
        match code(last) {
            0 => return outputs,
            // Failed for good (a retry policy ran out): the operator re-executes.
            1 => outputs.push(baton(&["retry", "r", "--failed", "--json"])),
            3 => {
                let message = stderr(last);
                assert!(
                    message.contains("s3://")
                        || message.contains("conflict")
                        || message.contains("Stack"),
                    "an infrastructure error names what failed: {message}"
                );
                if message.contains("no such run") {
                    // Creating the run failed part-way: creating it again completes it (the
                    // store recognises the plan it already wrote).
                    outputs.push(baton(&create));
                } else {
                    // A tick that died on an error keeps its lease until it lapses; this
                    // operator knows that driver is gone.
                    outputs.push(baton(&["resume", "r", "--json", "--take-over"]));
                }
            }
            other => panic!("exit {other} (crash?):\n{}", stderr(last)),
        }
    }
    let codes: Vec<i32> = outputs.iter().map(code).collect();
    panic!(
        "the run did not finish after {max_resumes} resumes (exit codes {codes:?}):\n{}",
        describe(outputs.last().expect("an attempt"))
    );
}

fn check_stacks_created_once(endpoint: &str, stacks: &[String]) {
    let cfn = cfn_client(endpoint);
    for name in stacks {
        let events = rt()
            .block_on(cfn.describe_stack_events().stack_name(name).send())
            .expect("events");
        let creates = events
            .stack_events()
            .iter()
            .filter(|e| e.resource_type() == Some("AWS::CloudFormation::Stack"))
            .filter(|e| e.resource_status().map(|s| s.as_str()) == Some("CREATE_IN_PROGRESS"))
            .count();
        assert_eq!(creates, 1, "stack {name} created {creates} times");
    }
}

struct Scenario {
    name: &'static str,
    faults: Value,
    env: &'static [(&'static str, &'static str)],
    max_resumes: usize,
    /// Whether a run exercised what the scenario is about (faults are random: a seed may
    /// spare the calls that matter).
    exercised: fn(&[Output], u64) -> bool,
}

/// Runs the scenario under successive seeds until one exercises it; every run, exercised or
/// not, must finish with its guarantees intact.
fn run_scenario(endpoint: &str, scenario: &Scenario) {
    for seed in 1..=8 {
        let mut faults = scenario.faults.clone();
        faults["seed"] = json!(seed);
        let (outputs, injected) = run_once(endpoint, scenario, faults);
        if (scenario.exercised)(&outputs, injected) {
            return;
        }
    }
    panic!("{}: no seed exercised the scenario", scenario.name);
}

fn run_once(endpoint: &str, scenario: &Scenario, faults: Value) -> (Vec<Output>, u64) {
    let proxy = Proxy::start(endpoint);
    let bucket_name = unique(scenario.name);
    rt().block_on(bucket(&s3_client(endpoint), &bucket_name, true));
    let stacks: Vec<String> = (0..3)
        .map(|i| unique(&format!("{}-{i}", scenario.name)))
        .collect();
    let scratch = Scratch::new();
    plan(&scratch, &stacks);
    proxy.faults(Some(faults));
    let store = format!("s3://{bucket_name}/p");
    let outputs = drive_to_the_end(&scratch, &proxy, &store, scenario.env, scenario.max_resumes);
    let injected = proxy.injected();
    let summary = json(outputs.last().expect("an attempt"));
    assert_eq!(
        summary["status"], "succeeded",
        "{}: {summary}",
        scenario.name
    );
    // Read back directly from moto, past the proxy.
    let state = every_version_parses(endpoint, &bucket_name, "p", "r");
    assert_eq!(state.status(), baton_core::RunStatus::Succeeded);
    check_stacks_created_once(endpoint, &stacks);
    (outputs, injected)
}

#[test]
fn every_kind_of_aws_fault_is_retried_and_the_run_finishes() {
    let Some(endpoint) = endpoint() else { return };
    run_scenario(
        &endpoint,
        &Scenario {
            name: "faults-all",
            faults: json!({"rate": 0.45, "delay": 1.0,
                           "modes": ["500", "throttle", "drop", "drop_after", "delay"]}),
            env: &[("BATON_AWS_ATTEMPT_TIMEOUT_SECONDS", "0.5")],
            max_resumes: 10,
            exercised: |_, injected| injected >= 5,
        },
    );
}

/// S3 stores the write, then the answer is lost: the SDK's retry fails its own precondition.
/// The store recognises its own write (metadata sha256 + parent) instead of calling it a
/// conflict, so ticks go on.
#[test]
fn a_state_write_whose_answer_was_lost_is_recognised() {
    let Some(endpoint) = endpoint() else { return };
    run_scenario(
        &endpoint,
        &Scenario {
            name: "faults-lost",
            faults: json!({"rate": 0.5, "modes": ["drop_after"], "services": ["s3"]}),
            env: &[("BATON_LOG", "baton_core=info")],
            max_resumes: 5,
            exercised: |outputs, _| {
                outputs
                    .iter()
                    .any(|o| stderr(o).contains("a write whose answer was lost had landed"))
            },
        },
    );
}

/// No SDK retries at all: ticks die on injected faults. Each such tick ends with exit 3 and a
/// message, and resuming again and again still finishes the run with every version intact.
#[test]
fn ticks_that_die_on_aws_errors_end_cleanly_and_the_run_resumes() {
    let Some(endpoint) = endpoint() else { return };
    run_scenario(
        &endpoint,
        &Scenario {
            name: "faults-harsh",
            faults: json!({"rate": 0.2, "modes": ["500", "throttle", "drop", "drop_after"]}),
            env: &[("BATON_AWS_MAX_ATTEMPTS", "1")],
            max_resumes: 60,
            exercised: |outputs, _| outputs.iter().filter(|o| code(o) == 3).count() >= 2,
        },
    );
}

#[test]
fn access_denied_on_a_run_is_an_operator_error_and_not_retried() {
    let Some(endpoint) = endpoint() else { return };
    let scratch = Scratch::new();
    let bucket_name = unique("denied");
    rt().block_on(bucket(&s3_client(&endpoint), &bucket_name, true));
    let proxy = Proxy::start(&endpoint);
    // What S3 answers for a missing run to a caller without s3:ListBucket.
    proxy.faults(Some(
        json!({"rate": 1.0, "modes": ["deny"], "services": ["s3"]}),
    ));
    let locator = format!("s3://{bucket_name}/baton/runs/nope");
    let out = aws_cmd(&scratch, &proxy.endpoint())
        .args(["status", &locator])
        .output()
        .expect("baton");
    assert_eq!(code(&out), 3, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("access denied") && err.contains("check the run id"),
        "{err}"
    );
    assert_eq!(proxy.injected(), 1, "a 403 is answered once, not retried");
}
