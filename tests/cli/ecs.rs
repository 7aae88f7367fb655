//! Commands on ECS (`aws.run_task`) against moto. moto runs no containers: the test plays the
//! container, writing its output to CloudWatch Logs as the awslogs driver would and ending the
//! task by tagging it with its exit code (scripts/moto_ecs_patch.py keeps a task running until
//! then). Covered: start, checks that stream the output, success with outputs from the last
//! line, a failing exit code, a task that never ran, a replayed start that finds the task, and
//! through `baton`: a timeout and an abort that stop the task, and a crash between starting the
//! task and saving that it started, after which resuming follows the same task.

use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs as logs;
use aws_sdk_ecs as ecs;
use baton_core::actions::{CheckRequest, Control, LogSink, Outcome, StartRequest};
use baton_core::{ActionType, Executor, StandardExecutor};
use serde_json::{json, Value};

use crate::common::*;
use crate::moto::*;

/// A cluster, a task definition whose container logs to a fresh group, and the clients.
struct Cluster {
    cluster: String,
    family: String,
    group: String,
    ecs: ecs::Client,
    logs: logs::Client,
}

async fn cluster(endpoint: &str) -> Cluster {
    let cluster = unique("cmds");
    let family = unique("cmd");
    let group = format!("/baton-test/{}", unique("out"));
    let (ecs, logs) = command_task_setup(endpoint, &cluster, &family, &group, "main").await;
    Cluster {
        cluster,
        family,
        group,
        ecs,
        logs,
    }
}

impl Cluster {
    fn params(&self, command: &[&str]) -> Value {
        json!({
            "cluster": self.cluster,
            "task_definition": self.family,
            "command": command,
            "env": {"STAGE": "test"},
            "launch_type": "FARGATE",
        })
    }

    /// What the container writes: lines on its awslogs stream.
    async fn output(&self, task_arn: &str, lines: &[&str]) {
        let task_id = task_arn.rsplit('/').next().expect("task id");
        let stream = format!("cmd/main/{task_id}");
        let _ = self
            .logs
            .create_log_stream()
            .log_group_name(&self.group)
            .log_stream_name(&stream)
            .send()
            .await;
        let now = chrono::Utc::now().timestamp_millis();
        let events: Vec<_> = lines
            .iter()
            .enumerate()
            .map(|(i, line)| {
                logs::types::InputLogEvent::builder()
                    .timestamp(now + i as i64)
                    .message(*line)
                    .build()
                    .expect("event")
            })
            .collect();
        self.logs
            .put_log_events()
            .log_group_name(&self.group)
            .log_stream_name(&stream)
            .set_log_events(Some(events))
            .send()
            .await
            .expect("put log events");
    }

    /// The container exits with `code`.
    async fn exit(&self, task_arn: &str, code: i32) {
        self.tag(task_arn, "moto-exit-code", &code.to_string())
            .await;
    }

    async fn tag(&self, task_arn: &str, key: &str, value: &str) {
        self.ecs
            .tag_resource()
            .resource_arn(task_arn)
            .tags(ecs::types::Tag::builder().key(key).value(value).build())
            .send()
            .await
            .expect("tag task");
    }

    async fn tasks(&self) -> Vec<ecs::types::Task> {
        let arns = self
            .ecs
            .list_tasks()
            .cluster(&self.cluster)
            .send()
            .await
            .expect("list tasks")
            .task_arns()
            .to_vec();
        if arns.is_empty() {
            return Vec::new();
        }
        self.ecs
            .describe_tasks()
            .cluster(&self.cluster)
            .set_tasks(Some(arns))
            .send()
            .await
            .expect("describe tasks")
            .tasks()
            .to_vec()
    }
}

/// A log sink that keeps what it is given.
fn collecting() -> (LogSink, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let keep = lines.clone();
    let sink = LogSink::new(move |_, line| keep.lock().expect("lines").push(line));
    (sink, lines)
}

fn start_request(params: Value, log: LogSink) -> StartRequest {
    StartRequest {
        run_id: unique("ecs"),
        label: "build".into(),
        action_type: ActionType::RunTask,
        params,
        attempt: 1,
        limit: None,
        log,
        control: Control::none(),
    }
}

fn check_request(start: &StartRequest, handle: &Value) -> CheckRequest {
    CheckRequest {
        run_id: start.run_id.clone(),
        label: start.label.clone(),
        action_type: start.action_type,
        params: start.params.clone(),
        handle: handle.clone(),
        attempt: start.attempt,
        log: start.log.clone(),
    }
}

fn running(outcome: &Outcome) -> (Value, String, Duration) {
    match outcome {
        Outcome::Running {
            handle,
            check_after,
        } => {
            let arn = handle["ecs"]["task_arn"]
                .as_str()
                .unwrap_or_else(|| panic!("no task in {handle}"))
                .to_string();
            (handle.clone(), arn, *check_after)
        }
        other => panic!("expected a running task, got {other:?}"),
    }
}

fn exec(endpoint: &str) -> StandardExecutor {
    StandardExecutor::with_aws(moto_aws(endpoint))
}

#[test]
fn a_task_streams_its_output_and_completes_with_the_outputs_of_its_last_line() {
    let Some(endpoint) = endpoint() else { return };
    rt().block_on(async {
        let c = cluster(&endpoint).await;
        let exec = exec(&endpoint);
        let (sink, lines) = collecting();
        let request = start_request(c.params(&["make", "release"]), sink);
        let started = exec.start(request.clone()).await;
        let (handle, arn, first_wait) = running(&started);
        assert_eq!(first_wait, Duration::from_secs(5));
        assert_eq!(
            handle["ecs"]["log"]["stream"],
            format!("cmd/main/{}", arn.rsplit('/').next().unwrap_or_default())
        );
        let said = lines.lock().expect("lines").join("\n");
        assert!(said.contains(&format!("started ECS task {arn}")), "{said}");
        assert!(said.contains("console.aws.amazon.com/cloudwatch"), "{said}");

        // The task runs what the action says.
        let task = &c.tasks().await[0];
        let overrides = task.overrides().expect("overrides");
        let container = &overrides.container_overrides()[0];
        assert_eq!(container.name(), Some("main"));
        assert_eq!(container.command(), ["make", "release"]);
        assert_eq!(container.environment()[0].name(), Some("STAGE"));
        assert!(task.started_by().is_some_and(|by| by.starts_with("baton-")));

        // Nothing written yet: still running, the stream not there yet is no error.
        let checked = exec.check(check_request(&request, &handle)).await;
        let (handle, _, wait) = running(&checked);
        assert!(wait > first_wait, "checks slow down: {wait:?}");

        c.output(&arn, &["compiling", "linking"]).await;
        let checked = exec.check(check_request(&request, &handle)).await;
        let (handle, _, _) = running(&checked);
        let seen = lines.lock().expect("lines").clone();
        assert!(
            seen.ends_with(&["compiling".to_string(), "linking".to_string()]),
            "{seen:?}"
        );

        c.output(
            &arn,
            &[r#"{"artifact": "s3://bucket/app.zip", "size": 42}"#],
        )
        .await;
        c.exit(&arn, 0).await;
        let done = exec.check(check_request(&request, &handle)).await;
        let Outcome::Complete { outputs } = &done else {
            panic!("expected completion, got {done:?}")
        };
        assert_eq!(outputs["artifact"], "s3://bucket/app.zip");
        assert_eq!(outputs["size"], 42);
        assert_eq!(outputs["ExitCode"], 0);
        assert_eq!(outputs["TaskArn"], arn.as_str());
        // Each line once, in order.
        let seen = lines.lock().expect("lines").clone();
        assert_eq!(
            seen.iter().filter(|l| *l == "compiling").count(),
            1,
            "{seen:?}"
        );

        // A replayed start of the same attempt (a tick that died before saving) finds the task.
        let again = exec.start(request.clone()).await;
        let (_, same, _) = running(&again);
        assert_eq!(same, arn);
        assert_eq!(
            c.tasks().await.len(),
            1,
            "a replayed start started a second task"
        );
        // The next attempt is a new task.
        let next = StartRequest {
            attempt: 2,
            ..request.clone()
        };
        let (_, other, _) = running(&exec.start(next).await);
        assert_ne!(other, arn);
    });
}

#[test]
fn a_failing_exit_code_and_a_task_that_never_ran_fail_saying_why() {
    let Some(endpoint) = endpoint() else { return };
    rt().block_on(async {
        let c = cluster(&endpoint).await;
        let exec = exec(&endpoint);
        let request = start_request(c.params(&["sh", "-c", "exit 3"]), LogSink::discard());
        let (handle, arn, _) = running(&exec.start(request.clone()).await);
        c.output(&arn, &["error: tests failed"]).await;
        c.exit(&arn, 3).await;
        match exec.check(check_request(&request, &handle)).await {
            Outcome::Failed { error, retryable } => {
                assert!(
                    error.contains(&format!("task {arn} exited with status 3")),
                    "{error}"
                );
                assert!(error.ends_with(": error: tests failed"), "{error}");
                assert!(retryable);
            }
            other => panic!("expected a failure, got {other:?}"),
        }

        let request = start_request(c.params(&["true"]), LogSink::discard());
        let (handle, arn, _) = running(&exec.start(request.clone()).await);
        c.tag(
            &arn,
            "moto-stopped-reason",
            "CannotPullContainerError: pull access denied",
        )
        .await;
        match exec.check(check_request(&request, &handle)).await {
            Outcome::Failed { error, .. } => {
                assert!(
                    error.contains("stopped before its container exited"),
                    "{error}"
                );
                assert!(error.contains("CannotPullContainerError"), "{error}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }

        // A task definition that does not exist: ECS's answer, naming the call.
        let mut params = c.params(&["true"]);
        params["task_definition"] = json!("no-such-family");
        let request = start_request(params, LogSink::discard());
        match exec.start(request).await {
            Outcome::Failed { error, .. } => {
                assert!(error.contains("no-such-family: ClientException"), "{error}")
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    });
}

fn plan_with_task(c: &Cluster, extra: Value) -> Scratch {
    let mut action = json!({
        "label": "build",
        "type": "aws.run_task",
        "params": c.params(&["make"]),
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        action[k] = v.clone();
    }
    let scratch = Scratch::new();
    scratch.write("plan.json", &json!([action]).to_string());
    scratch
}

fn spawn(scratch: &Scratch, endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = aws_cmd(scratch, endpoint);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn baton")
}

/// Waits until the cluster has `n` tasks, returning them.
fn tasks_appear(c: &Cluster, n: usize) -> Vec<ecs::types::Task> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tasks = rt().block_on(c.tasks());
        if tasks.len() >= n {
            return tasks;
        }
        assert!(Instant::now() < deadline, "no task started");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn finish(child: Child) -> std::process::Output {
    child.wait_with_output().expect("baton finishes")
}

#[test]
fn a_timeout_and_an_abort_stop_the_task() {
    let Some(endpoint) = endpoint() else { return };
    let c = rt().block_on(cluster(&endpoint));

    let scratch = plan_with_task(&c, json!({"timeout": "1s"}));
    let out = baton_aws(
        &scratch,
        &endpoint,
        &["run", "plan.json", "--run-id", "t", "--json"],
    );
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let summary = json(&out);
    let error = summary["actions"]["build"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.starts_with("timed out after 1s"), "{summary}");
    let tasks = rt().block_on(c.tasks());
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].last_status(), Some("STOPPED"));
    assert!(
        tasks[0]
            .stopped_reason()
            .is_some_and(|r| r.contains("stopped by baton")),
        "{:?}",
        tasks[0].stopped_reason()
    );

    let c = rt().block_on(cluster(&endpoint));
    let scratch = plan_with_task(&c, json!({}));
    let driver = spawn(
        &scratch,
        &endpoint,
        &["run", "plan.json", "--run-id", "a", "--json"],
        &[],
    );
    let arn = tasks_appear(&c, 1)[0]
        .task_arn()
        .unwrap_or_default()
        .to_string();
    rt().block_on(c.output(&arn, &["working"]));
    let out = baton_aws(&scratch, &endpoint, &["abort", "a"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let out = finish(driver);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let summary = json(&out);
    assert_eq!(summary["status"], "aborted", "{summary}");
    assert_eq!(
        summary["actions"]["build"]["status"], "cancelled",
        "{summary}"
    );
    let task = &rt().block_on(c.tasks())[0];
    assert_eq!(task.last_status(), Some("STOPPED"));
    assert!(task
        .stopped_reason()
        .is_some_and(|r| r.contains("stopped by baton")));
    let logs = stdout(&baton_aws(&scratch, &endpoint, &["logs", "a", "build"]));
    assert!(logs.contains(&format!("StopTask {arn}")), "{logs}");
}

#[test]
fn a_crash_after_the_task_started_resumes_following_the_same_task() {
    let Some(endpoint) = endpoint() else { return };
    let c = rt().block_on(cluster(&endpoint));
    let scratch = plan_with_task(&c, json!({}));
    // baton dies once the executor has started the task, before the state says so.
    let out = aws_cmd(&scratch, &endpoint)
        .args(["run", "plan.json", "--run-id", "c"])
        .env("BATON_FAULT", "after_executor@1")
        .output()
        .expect("run baton");
    assert_ne!(code(&out), 0, "{}", describe(&out));
    assert_eq!(rt().block_on(c.tasks()).len(), 1);

    let resumed = spawn(&scratch, &endpoint, &["resume", "c", "--json"], &[]);
    let task = &tasks_appear(&c, 1)[0];
    let arn = task.task_arn().unwrap_or_default().to_string();
    // Let the resumed driver find the task before it ends.
    std::thread::sleep(Duration::from_secs(1));
    rt().block_on(async {
        c.output(&arn, &[r#"{"built": true}"#]).await;
        c.exit(&arn, 0).await;
    });
    let out = finish(resumed);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let summary = json(&out);
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!(
        rt().block_on(c.tasks()).len(),
        1,
        "resuming started a second task"
    );
    let logs = stdout(&baton_aws(&scratch, &endpoint, &["logs", "c", "build"]));
    assert!(logs.contains("already started by this attempt"), "{logs}");
    let inspected = json(&baton_aws(
        &scratch,
        &endpoint,
        &["inspect", "c", "build", "--json"],
    ));
    assert_eq!(inspected["outputs"]["built"], true, "{inspected}");
}

/// ECS failing to answer a check (after the SDK's own retries) leaves the task followed, not
/// failed: failing it would orphan a running task, and a retry would start a second one.
#[test]
fn a_check_that_ecs_does_not_answer_keeps_following_the_task() {
    let Some(endpoint) = endpoint() else { return };
    let proxy = crate::faults::Proxy::start(&endpoint);
    rt().block_on(async {
        let c = cluster(&endpoint).await;
        let exec = exec(&proxy.endpoint());
        let (sink, lines) = collecting();
        let request = start_request(c.params(&["make"]), sink);
        let (handle, arn, _) = running(&exec.start(request.clone()).await);
        proxy.faults(Some(
            json!({"rate": 1.0, "modes": ["500"], "services": ["ecs"]}),
        ));
        let checked = exec.check(check_request(&request, &handle)).await;
        let (handle, same, _) = running(&checked);
        assert_eq!(same, arn);
        let said = lines.lock().expect("lines").join("\n");
        assert!(said.contains("checking again later"), "{said}");
        proxy.faults(Some(json!({"rate": 0.0})));
        c.exit(&arn, 0).await;
        let done = exec.check(check_request(&request, &handle)).await;
        assert!(matches!(done, Outcome::Complete { .. }), "{done:?}");
    });
}
