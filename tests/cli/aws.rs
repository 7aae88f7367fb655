//! AWS: the S3 store and the aws.* actions against a real AWS API emulator (moto, started by
//! scripts/test; `BATON_TEST_AWS_ENDPOINT` names it), and every CloudFormation status branch,
//! failure and throttle with SDK-level mocks (moto never reports failures or progress).

use aws_sdk_cloudformation as cfn;
use aws_sdk_s3 as s3;
use baton_core::actions::{CheckRequest, Control, LogSink, Outcome, StartRequest};
use baton_core::aws::Aws;
use baton_core::store::s3::S3Store;
use baton_core::{ActionType, RunStore, StoreError};
use baton_core::{Executor, StandardExecutor};
use serde_json::{json, Value};

use crate::common::*;
use crate::moto::*;

// ---- the S3 store, against moto ----

#[test]
fn s3_store_round_trip_versions_and_a_true_conflict() {
    let Some(endpoint) = endpoint() else { return };
    rt().block_on(async {
        let client = s3_client(&endpoint);
        let name = unique("state");
        bucket(&client, &name, true).await;
        let store = S3Store::in_prefix(client.clone(), &name, "team/baton", "run-1");
        assert_eq!(
            store.locator(),
            format!("s3://{name}/team/baton/runs/run-1")
        );
        let v1 = store.create(b"[]", b"state-1").await.expect("create");
        assert!(matches!(
            store.create(b"[]", b"again").await,
            Err(StoreError::AlreadyExists { .. })
        ));
        // Two writers load version 1 (the second is a separate store: no shared caches).
        let other = S3Store::in_prefix(client.clone(), &name, "team/baton", "run-1");
        let (_, seen) = other.load_latest().await.expect("other loads");
        assert_eq!(seen, v1);
        let v2 = store
            .save(b"state-2".to_vec(), &v1)
            .await
            .expect("first writer wins");
        let err = other
            .save(b"state-2-other".to_vec(), &seen)
            .await
            .expect_err("second writer loses");
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert!(err.to_string().contains("conflict"), "{err}");
        // Nothing was overwritten, and every version is readable.
        assert_eq!(
            store.load_latest().await.expect("latest"),
            (b"state-2".to_vec(), v2.clone())
        );
        assert_eq!(store.load_version(&v1).await.expect("v1"), b"state-1");
        let versions: Vec<String> = store
            .list_versions()
            .await
            .expect("list")
            .into_iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(versions, vec![v1, v2.clone()]);
        assert_eq!(store.head().await.expect("head"), v2);
        assert_eq!(store.load_plan().await.expect("plan"), b"[]");
    });
}

/// A plan whose first action fails until `marker` exists, then a slow command: a run that an
/// operator re-executes while (or before) a driver works. Commands log to witness.txt.
fn flaky_then_slow(scratch: &Scratch, slow_depends_on_flaky: bool) {
    let slow_deps: Vec<&str> = if slow_depends_on_flaky {
        vec!["flaky"]
    } else {
        vec![]
    };
    let plan = json!([
        {"label": "flaky", "type": "system.command",
         "params": {"command": "test -f marker && echo flaky >> witness.txt", "shell": true}},
        {"label": "slow", "type": "system.command", "depends_on": slow_deps,
         "params": {"command": "sleep 1.5 && echo slow >> witness.txt", "shell": true}},
        {"label": "last", "type": "system.command", "depends_on": ["slow"],
         "params": {"command": "echo last >> witness.txt", "shell": true}},
    ]);
    scratch.write("plan.json", &plan.to_string());
}

/// A versioned bucket, a store in it, and a scratch folder for one test.
fn s3_scratch(endpoint: &str, tag: &str) -> (String, String, Scratch) {
    let name = unique(tag);
    rt().block_on(bucket(&s3_client(endpoint), &name, true));
    let store = format!("s3://{name}/p");
    (name, store, Scratch::new())
}

/// `baton ARGS` against moto in the background, its output captured.
fn spawn_aws(scratch: &Scratch, endpoint: &str, args: &[&str]) -> std::process::Child {
    aws_cmd(scratch, endpoint)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn witness_lines(scratch: &Scratch) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(scratch.path().join("witness.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Two drivers resume one S3 run at the same moment: one claims the lease and finishes the
/// run; the other exits 3 saying the run is busy (or conflicted); every command ran once and
/// every stored version is intact.
#[test]
fn two_drivers_on_an_s3_run_exactly_one_progresses() {
    let Some(endpoint) = endpoint() else { return };
    let (name, store, scratch) = s3_scratch(&endpoint, "drivers");
    flaky_then_slow(&scratch, true);
    let out = baton_aws(
        &scratch,
        &endpoint,
        &[
            "run",
            "plan.json",
            "--run-id",
            "r",
            "--json",
            "--store",
            &store,
        ],
    );
    assert_eq!(code(&out), 1, "flaky fails first: {}", stderr(&out));
    scratch.write("marker", "");
    let out = baton_aws(
        &scratch,
        &endpoint,
        &["retry", "r", "--failed", "--no-run", "--store", &store],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let spawn = || {
        spawn_aws(
            &scratch,
            &endpoint,
            &["resume", "r", "--json", "--store", &store],
        )
    };
    let (a, b) = (spawn(), spawn());
    let outs = [
        a.wait_with_output().expect("a"),
        b.wait_with_output().expect("b"),
    ];
    let mut codes: Vec<i32> = outs.iter().map(code).collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![0, 3],
        "{}\n---\n{}",
        stderr(&outs[0]),
        stderr(&outs[1])
    );
    let loser = outs.iter().find(|o| code(o) == 3).expect("loser");
    let message = stderr(loser);
    assert!(
        message.contains("being driven by another baton process") || message.contains("conflict"),
        "{message}"
    );
    assert_eq!(witness_lines(&scratch), ["flaky", "last", "slow"]);
    let state = every_version_parses(&endpoint, &name, "p", "r");
    assert_eq!(state.status(), baton_core::RunStatus::Succeeded);
    assert!(state.driver().is_none(), "the winner released its lease");
}

/// An operator re-executes a failed action while a driver is in the middle of a tick on the
/// same S3 run (what the console does for a Lambda-driven run). The operator's save wins the
/// compare-and-swap; the tick merges it when it saves, so the slow command's result and the
/// reset both survive and the driver goes on to run the reset action.
#[test]
fn a_reexecute_racing_a_tick_on_s3_keeps_both_changes() {
    let Some(endpoint) = endpoint() else { return };
    let (name, store, scratch) = s3_scratch(&endpoint, "race");
    flaky_then_slow(&scratch, false);
    let driver = spawn_aws(
        &scratch,
        &endpoint,
        &[
            "run",
            "plan.json",
            "--run-id",
            "r",
            "--json",
            "--store",
            &store,
        ],
    );
    wait_for_status(&scratch, &endpoint, &store, "r", |s| {
        s["actions"]["flaky"]["status"] == "failed" && s["actions"]["slow"]["status"] == "running"
    });
    scratch.write("marker", "");
    let out = baton_aws(
        &scratch,
        &endpoint,
        &["retry", "r", "--failed", "--no-run", "--store", &store],
    );
    assert_eq!(
        code(&out),
        0,
        "the operator is not blocked by the tick: {}",
        stderr(&out)
    );

    let out = driver.wait_with_output().expect("driver");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let summary = json(&out);
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!(witness_lines(&scratch), ["flaky", "last", "slow"]);
    let state = every_version_parses(&endpoint, &name, "p", "r");
    assert!(
        state
            .log()
            .iter()
            .any(|e| e.msg.starts_with("merged an operator's change")),
        "{:?}",
        state.log()
    );
}

/// `baton abort` on an S3 run that another process is driving: the request is saved and
/// the driver (whose lease refuses a settling tick) honours it.
#[test]
fn abort_of_an_s3_run_driven_elsewhere_is_honoured_by_its_driver() {
    let Some(endpoint) = endpoint() else { return };
    let (_, store, scratch) = s3_scratch(&endpoint, "abort");
    scratch.write(
        "plan.json",
        &json!([
            {"label": "slow", "type": "system.command", "params": {"command": ["sleep", "1.5"]}},
            {"label": "after", "type": "system.no_op", "depends_on": ["slow"]},
        ])
        .to_string(),
    );
    let driver = spawn_aws(
        &scratch,
        &endpoint,
        &[
            "run",
            "plan.json",
            "--run-id",
            "r",
            "--json",
            "--store",
            &store,
        ],
    );
    wait_for_status(&scratch, &endpoint, &store, "r", |s| {
        s["actions"]["slow"]["status"] == "running"
    });
    let out = baton_aws(&scratch, &endpoint, &["abort", "r", "--store", &store]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("abort requested"), "{}", stdout(&out));
    let out = driver.wait_with_output().expect("driver");
    let summary = json(&out);
    assert_eq!(summary["status"], "aborted", "{summary}");
    assert_eq!(
        summary["actions"]["after"]["status"], "cancelled",
        "{summary}"
    );
}

#[test]
fn s3_store_refuses_an_unversioned_bucket() {
    let Some(endpoint) = endpoint() else { return };
    rt().block_on(async {
        let client = s3_client(&endpoint);
        let name = unique("plain");
        bucket(&client, &name, false).await;
        let store = S3Store::in_prefix(client, &name, "", "run-1");
        let err = store.create(b"[]", b"s").await.expect_err("refused");
        assert!(
            err.to_string().contains("does not have versioning enabled"),
            "{err}"
        );
        assert!(err.to_string().contains("put-bucket-versioning"), "{err}");
    });
}

// ---- template_file reading: bounded and beside the action file (no AWS reached) ----

/// `baton ARGS` in `dir`, killed after `limit` (reading a device or a FIFO used to hang).
fn baton_within(
    dir: &std::path::Path,
    args: &[&str],
    limit: std::time::Duration,
) -> std::process::Output {
    let mut cmd = std::process::Command::new(baton_bin());
    cmd.current_dir(dir).args(args).env_remove("BATON_STORE");
    baton_within_cmd(cmd, limit)
}

/// Runs `cmd`, killed after `limit`.
fn baton_within_cmd(
    mut cmd: std::process::Command,
    limit: std::time::Duration,
) -> std::process::Output {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "baton {args:?} still running after {limit:?}: {}",
                describe(&out)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// A plan in `project/` of one stack from `file`, skipped by its condition: creating the run
/// reads the template, nothing reaches AWS.
fn template_project(file: &str) -> (Scratch, std::path::PathBuf) {
    let scratch = Scratch::new();
    let project = scratch.path().join("project");
    std::fs::create_dir_all(&project).expect("mkdir");
    let plan = json!([{"label": "net", "type": "aws.create_stack", "condition": "{{ false }}",
        "params": {"stack_name": "net", "template_file": file}}]);
    std::fs::write(project.join("plan.json"), plan.to_string()).expect("plan");
    (scratch, project)
}

const QUICK: std::time::Duration = std::time::Duration::from_secs(20);

#[test]
fn a_template_file_outside_the_action_files_folder_is_refused_unless_allowed() {
    let (scratch, project) = template_project("../secret.yaml");
    std::fs::write(scratch.path().join("secret.yaml"), "password: hunter2\n").expect("secret");
    let store = scratch.path().join("store");
    let store = store.to_str().expect("utf-8");
    let out = baton_within(
        &project,
        &["run", "plan.json", "--store", store, "--plain"],
        QUICK,
    );
    assert_eq!(code(&out), 2, "{}", describe(&out));
    let err = stderr(&out);
    assert!(
        err.contains("plan.json: actions[0] \"net\": params.template_file: ")
            && err.contains("../secret.yaml is outside")
            && err.contains("--allow-template-outside"),
        "{err}"
    );
    assert!(!std::path::Path::new(store).exists(), "a run was created");

    // A symlink inside the folder that leads out of it is refused the same way.
    std::os::unix::fs::symlink(
        scratch.path().join("secret.yaml"),
        project.join("link.yaml"),
    )
    .expect("symlink");
    let plan = std::fs::read_to_string(project.join("plan.json"))
        .expect("plan")
        .replace("../secret.yaml", "link.yaml");
    std::fs::write(project.join("plan.json"), &plan).expect("plan");
    let out = baton_within(
        &project,
        &["run", "plan.json", "--store", store, "--plain"],
        QUICK,
    );
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(
        stderr(&out).contains("link.yaml is outside"),
        "{}",
        describe(&out)
    );

    // Allowed explicitly, it is read (and inlined).
    let out = baton_within(
        &project,
        &[
            "run",
            "plan.json",
            "--store",
            store,
            "--json",
            "--allow-template-outside",
            "--run-id",
            "allowed",
        ],
        QUICK,
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let stored =
        std::fs::read_to_string(std::path::Path::new(store).join("runs/allowed/actions.json"))
            .expect("stored plan");
    assert!(stored.contains("hunter2"), "{stored}");
}

#[test]
fn devices_fifos_and_huge_template_files_are_refused_without_reading_them() {
    let (scratch, project) = template_project("zero.yaml");
    let store = scratch.path().join("store");
    let store = store.to_str().expect("utf-8");
    let run = |file: &str, extra: &[&str]| {
        let plan = json!([{"label": "net", "type": "aws.create_stack", "condition": "{{ false }}",
            "params": {"stack_name": "net", "template_file": file}}]);
        std::fs::write(project.join("plan.json"), plan.to_string()).expect("plan");
        let mut args = vec!["run", "plan.json", "--store", store, "--plain"];
        args.extend_from_slice(extra);
        baton_within(&project, &args, QUICK)
    };
    // /dev/zero, even when reading outside the folder is allowed.
    let out = run("/dev/zero", &["--allow-template-outside"]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(
        stderr(&out).contains("params.template_file: /dev/zero is not a regular file"),
        "{}",
        describe(&out)
    );
    // A FIFO would block whoever opens it.
    let fifo = project.join("pipe.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let out = run("pipe.yaml", &[]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(
        stderr(&out).contains("pipe.yaml is not a regular file"),
        "{}",
        describe(&out)
    );
    // Past CloudFormation's 1 MB for a template fetched from S3.
    std::fs::write(project.join("huge.yaml"), vec![b'#'; 1_048_577]).expect("huge");
    let out = run("huge.yaml", &[]);
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(
        stderr(&out)
            .contains("huge.yaml is larger than 1 MB (1048576 bytes), CloudFormation's limit"),
        "{}",
        describe(&out)
    );
    assert!(
        !std::path::Path::new(store).join("runs").exists(),
        "a run was created"
    );
}

// ---- whole runs through the CLI, against moto ----

fn copy_examples(scratch: &Scratch) {
    let from = repo().join("examples/aws");
    std::fs::create_dir_all(scratch.path().join("templates")).expect("mkdir");
    for file in [
        "deploy.json",
        "teardown.json",
        "templates/network.yaml",
        "templates/app.yaml",
    ] {
        std::fs::copy(from.join(file), scratch.path().join(file)).expect("copy example");
    }
}

async fn stack(client: &cfn::Client, name: &str) -> Option<cfn::types::Stack> {
    match client.describe_stacks().stack_name(name).send().await {
        Ok(out) => out
            .stacks()
            .first()
            .cloned()
            .filter(|s| s.stack_status() != Some(&cfn::types::StackStatus::DeleteComplete)),
        Err(_) => None,
    }
}

fn parameter(stack: &cfn::types::Stack, key: &str) -> Option<String> {
    stack
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some(key))
        .and_then(|p| p.parameter_value())
        .map(str::to_string)
}

fn output(stack: &cfn::types::Stack, key: &str) -> Option<String> {
    stack
        .outputs()
        .iter()
        .find(|o| o.output_key() == Some(key))
        .and_then(|o| o.output_value())
        .map(str::to_string)
}

#[test]
fn multi_stack_plan_deploys_through_an_s3_store_and_tears_down_in_reverse() {
    let Some(endpoint) = endpoint() else { return };
    let scratch = Scratch::new();
    copy_examples(&scratch);
    let env = unique("e2e");
    let (state_bucket, context_bucket) = (unique("state"), unique("ctx"));
    let rt = rt();
    rt.block_on(async {
        let client = s3_client(&endpoint);
        bucket(&client, &state_bucket, true).await;
        bucket(&client, &context_bucket, true).await;
    });
    let store = format!("s3://{state_bucket}/baton");
    let vars = [
        format!("env={env}"),
        format!("context_bucket={context_bucket}"),
    ];
    let out = baton_aws(
        &scratch,
        &endpoint,
        &[
            "run",
            "deploy.json",
            "--store",
            &store,
            "--var",
            &vars[0],
            "--var",
            &vars[1],
            "--json",
            "--run-id",
            "deploy-1",
        ],
    );
    assert_eq!(
        code(&out),
        0,
        "deploy failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let summary = json(&out);
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(
        summary["run"],
        format!("s3://{state_bucket}/baton/runs/deploy-1")
    );
    let vpc = summary["actions"]["network"]["outputs"]["VpcId"]
        .as_str()
        .expect("VpcId output")
        .to_string();

    rt.block_on(async {
        let cfn = cfn_client(&endpoint);
        let network = stack(&cfn, &format!("baton-{env}-network"))
            .await
            .expect("network stack exists");
        assert_eq!(
            parameter(&network, "Environment").as_deref(),
            Some(env.as_str())
        );
        assert!(network
            .tags()
            .iter()
            .any(|t| t.key() == Some("project") && t.value() == Some("baton-example")));
        // The network's outputs fed the app's parameters through templates.
        let app = stack(&cfn, &format!("baton-{env}-app"))
            .await
            .expect("app stack exists");
        assert_eq!(parameter(&app, "VpcId"), Some(vpc.clone()));
        assert_eq!(parameter(&app, "SubnetId"), output(&network, "SubnetId"));
        assert_eq!(parameter(&app, "Replicas").as_deref(), Some("3"));
        // upload_context wrote the run's vars and its ancestors' outputs.
        let s3c = s3_client(&endpoint);
        let object = s3c
            .get_object()
            .bucket(&context_bucket)
            .key(format!("baton/{env}/context.json"))
            .send()
            .await
            .expect("context");
        let body = object.body.collect().await.expect("body").into_bytes();
        let context: Value = serde_json::from_slice(&body).expect("context is JSON");
        assert_eq!(context["vars"]["env"], env.as_str());
        assert_eq!(context["outputs"]["network"]["VpcId"], vpc.as_str());
        assert!(
            context["outputs"]["app-outputs"]["QueueUrl"].is_string(),
            "{context}"
        );
    });

    // Every command takes the S3 locator.
    let locator = format!("s3://{state_bucket}/baton/runs/deploy-1");
    let status = baton_aws(
        &scratch,
        &endpoint,
        &["status", &locator, "--json", "--versions"],
    );
    assert_eq!(code(&status), 0, "{}", stderr(&status));
    let status = json(&status);
    assert_eq!(status["counts"]["complete"], 5);
    assert!(status["versions"].as_array().is_some_and(|v| !v.is_empty()));
    let inspect = baton_aws(
        &scratch,
        &endpoint,
        &["inspect", "deploy-1", "app", "--store", &store],
    );
    assert_eq!(code(&inspect), 0, "{}", stderr(&inspect));
    assert!(stdout(&inspect).contains(&vpc), "{}", stdout(&inspect));

    // Teardown: app first, then the network; then the context bucket is emptied.
    let out = baton_aws(
        &scratch,
        &endpoint,
        &[
            "run",
            "teardown.json",
            "--store",
            &store,
            "--var",
            &vars[0],
            "--var",
            &vars[1],
            "--json",
        ],
    );
    assert_eq!(
        code(&out),
        0,
        "teardown failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    rt.block_on(async {
        let cfn = cfn_client(&endpoint);
        assert!(
            stack(&cfn, &format!("baton-{env}-app")).await.is_none(),
            "app stack still exists"
        );
        assert!(
            stack(&cfn, &format!("baton-{env}-network")).await.is_none(),
            "network stack still exists"
        );
    });
}

/// A template whose one resource and output are named after `tag`.
fn tagged_template(tag: &str, run: &str) -> String {
    json!({
        "Resources": {format!("Param{tag}"): {"Type": "AWS::SSM::Parameter", "Properties": {
            "Name": format!("/baton-test/{run}/{tag}"), "Type": "String", "Value": tag}}},
        "Outputs": {"Which": {"Value": tag}}
    })
    .to_string()
}

/// Template files whose label + file name used to map to one upload key (`a` + `b-t.yaml` and
/// `a-b` + `t.yaml`; `net/a` and `net_a` with files both named `x.yaml`): each stack is created
/// from its own template, with its own resource. Uploads are keyed by content, and an object
/// already under such a key with other bytes is refused, never overwritten.
#[test]
fn template_files_never_share_an_upload_and_each_stack_gets_its_own() {
    let Some(endpoint) = endpoint() else { return };
    let (state_bucket, store, scratch) = s3_scratch(&endpoint, "tplkeys");
    let run = unique("keys");
    let cases = [
        ("a", "b-t.yaml", "A"),
        ("a-b", "t.yaml", "AB"),
        ("net/a", "one/x.yaml", "NetSlashA"),
        ("net_a", "two/x.yaml", "NetUnderscoreA"),
    ];
    let mut actions = Vec::new();
    for (label, file, tag) in cases {
        std::fs::create_dir_all(scratch.path().join(file).parent().expect("parent"))
            .expect("mkdir");
        scratch.write(file, &tagged_template(tag, &run));
        actions.push(json!({"label": label, "type": "aws.create_stack",
            "params": {"stack_name": format!("{run}-{tag}"), "template_file": file}}));
    }
    scratch.write("plan.json", &Value::Array(actions).to_string());
    let out = baton_aws(
        &scratch,
        &endpoint,
        &[
            "run",
            "plan.json",
            "--store",
            &store,
            "--run-id",
            "r1",
            "--json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let s3c = s3_client(&endpoint);
    let artifacts = |run_id: &str| -> Vec<String> {
        rt().block_on(async {
            let listed = s3c
                .list_objects_v2()
                .bucket(&state_bucket)
                .prefix(format!("p/runs/{run_id}/artifacts/"))
                .send()
                .await
                .expect("list");
            listed
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect()
        })
    };
    let uploaded = artifacts("r1");
    assert_eq!(uploaded.len(), 4, "{uploaded:?}");
    rt().block_on(async {
        let cfn = cfn_client(&endpoint);
        for (label, _, tag) in cases {
            let name = format!("{run}-{tag}");
            let created = stack(&cfn, &name).await.expect("stack exists");
            assert_eq!(output(&created, "Which").as_deref(), Some(tag), "{label}");
            let resources = cfn
                .describe_stack_resources()
                .stack_name(&name)
                .send()
                .await
                .expect("resources");
            let logical: Vec<&str> = resources
                .stack_resources()
                .iter()
                .filter_map(|r| r.logical_resource_id())
                .collect();
            assert_eq!(logical, vec![format!("Param{tag}").as_str()], "{label}");
        }
    });

    // Something other than baton left other bytes under the key this template maps to.
    let key = uploaded
        .iter()
        .find(|k| k.ends_with("/b-t.yaml"))
        .expect("a's upload")
        .replace("/runs/r1/", "/runs/r2/");
    rt().block_on(async {
        s3c.put_object()
            .bucket(&state_bucket)
            .key(&key)
            .body(b"not the template".to_vec().into())
            .send()
            .await
            .expect("put");
    });
    let out = baton_aws(
        &scratch,
        &endpoint,
        &["run", "plan.json", "--store", &store, "--run-id", "r2"],
    );
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(
        stderr(&out).contains("does not overwrite"),
        "{}",
        describe(&out)
    );
    let kept = rt().block_on(async {
        let object = s3c
            .get_object()
            .bucket(&state_bucket)
            .key(&key)
            .send()
            .await
            .expect("get");
        object.body.collect().await.expect("body").to_vec()
    });
    assert_eq!(kept, b"not the template");
}

/// `service_role_arn` is CloudFormation's `RoleARN` (the role it creates the resources with);
/// `role_arn` stays the role baton assumes for the calls.
#[test]
fn a_service_role_is_passed_to_cloudformation_on_create_and_delete() {
    let Some(endpoint) = endpoint() else { return };
    let scratch = Scratch::new();
    let name = unique("svcrole");
    let role = "arn:aws:iam::123456789012:role/baton-cfn-service";
    scratch.write("stack.json", &tagged_template("Svc", &name));
    let plan = json!([
        {"label": "stack", "type": "aws.create_stack",
         "params": {"stack_name": name, "template_file": "stack.json", "service_role_arn": role}}
    ]);
    scratch.write("plan.json", &plan.to_string());
    let out = baton_aws(&scratch, &endpoint, &["run", "plan.json", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let created = rt()
        .block_on(stack(&cfn_client(&endpoint), &name))
        .expect("stack");
    assert_eq!(created.role_arn(), Some(role));
    let plan = json!([
        {"label": "gone", "type": "aws.delete_stack",
         "params": {"stack_name": name, "service_role_arn": role}}
    ]);
    scratch.write("teardown.json", &plan.to_string());
    let out = baton_aws(&scratch, &endpoint, &["run", "teardown.json", "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert!(rt()
        .block_on(stack(&cfn_client(&endpoint), &name))
        .is_none());
}

/// A template too big to inline with a local store is kept as its path and read again at start,
/// bounded: replaced by a link to a device in between, it is refused without being read.
#[test]
fn a_template_file_read_at_start_is_bounded_too() {
    let Some(endpoint) = endpoint() else { return };
    let scratch = Scratch::new();
    scratch.write("big.yaml", &format!("# {}\n", "x".repeat(60_000)));
    let plan = json!([
        {"label": "swap", "type": "system.command",
         "params": {"command": "rm big.yaml && ln -s /dev/zero big.yaml", "shell": true}},
        {"label": "stack", "type": "aws.create_stack", "depends_on": ["swap"],
         "params": {"stack_name": unique("big"), "template_file": "big.yaml"}}
    ]);
    scratch.write("plan.json", &plan.to_string());
    let mut cmd = aws_cmd(&scratch, &endpoint);
    cmd.args(["run", "plan.json", "--json"]);
    let out = baton_within_cmd(cmd, QUICK);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let error = json(&out)["actions"]["stack"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.starts_with("params.template_file: ") && error.contains("is outside"),
        "{error}"
    );

    // Unchanged, it fails saying how to deploy it.
    std::fs::remove_file(scratch.path().join("big.yaml")).expect("rm link");
    scratch.write("big.yaml", &format!("# {}\n", "x".repeat(60_000)));
    let mut alone = plan[1].clone();
    alone.as_object_mut().expect("action").remove("depends_on");
    scratch.write("plan.json", &json!([alone]).to_string());
    let mut cmd = aws_cmd(&scratch, &endpoint);
    cmd.args(["run", "plan.json", "--json"]);
    let out = baton_within_cmd(cmd, QUICK);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let error = json(&out)["actions"]["stack"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("big.yaml is larger than 51200 bytes, CloudFormation's limit for a template sent inline; run with an S3 store"),
        "{error}"
    );
}

#[test]
fn a_second_run_updates_the_stack_it_created() {
    let Some(endpoint) = endpoint() else { return };
    let scratch = Scratch::new();
    let name = unique("upd");
    let template = json!({
        "Parameters": {"Size": {"Type": "String"}},
        "Resources": {"P": {"Type": "AWS::SSM::Parameter", "Properties": {"Name": format!("/baton-test/{name}"), "Type": "String", "Value": {"Ref": "Size"}}}},
        "Outputs": {"Size": {"Value": {"Ref": "Size"}}}
    })
    .to_string();
    let plan = json!([{
        "label": "stack", "type": "aws.create_stack",
        "params": {"stack_name": name, "template_body": template, "parameters": {"Size": "{{ vars.size }}"}}
    }]);
    scratch.write("plan.json", &plan.to_string());
    for size in ["small", "large"] {
        let out = baton_aws(
            &scratch,
            &endpoint,
            &[
                "run",
                "plan.json",
                "--var",
                &format!("size={size}"),
                "--json",
            ],
        );
        assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
        assert_eq!(json(&out)["actions"]["stack"]["outputs"]["Size"], size);
    }
    rt().block_on(async {
        let stack = stack(&cfn_client(&endpoint), &name).await.expect("stack");
        assert_eq!(parameter(&stack, "Size").as_deref(), Some("large"));
        assert_eq!(
            stack.stack_status(),
            Some(&cfn::types::StackStatus::UpdateComplete)
        );
    });
}

#[test]
fn empty_bucket_deletes_thousands_of_versions_and_delete_markers() {
    let Some(endpoint) = endpoint() else { return };
    let name = unique("full");
    let rt = rt();
    rt.block_on(async {
        let client = s3_client(&endpoint);
        bucket(&client, &name, true).await;
        // 1,000 keys × 3 versions, plus delete markers on 200 of them.
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in 0..20 {
            let client = client.clone();
            let name = name.clone();
            tasks.spawn(async move {
                for i in chunk * 50..(chunk + 1) * 50 {
                    for v in 0..3 {
                        client
                            .put_object()
                            .bucket(&name)
                            .key(format!("k{i:04}"))
                            .body(format!("v{v}").into_bytes().into())
                            .send()
                            .await
                            .expect("put");
                    }
                    if i % 5 == 0 {
                        client
                            .delete_object()
                            .bucket(&name)
                            .key(format!("k{i:04}"))
                            .send()
                            .await
                            .expect("delete");
                    }
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("uploader");
        }
    });
    let scratch = Scratch::new();
    let plan = json!([{"label": "empty", "type": "aws.empty_bucket", "params": {"bucket": name}}]);
    scratch.write("plan.json", &plan.to_string());
    let out = baton_aws(&scratch, &endpoint, &["run", "plan.json", "--json"]);
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let summary = json(&out);
    assert_eq!(summary["actions"]["empty"]["outputs"]["deleted"], 3200);
    rt.block_on(async {
        let listing = s3_client(&endpoint)
            .list_object_versions()
            .bucket(&name)
            .send()
            .await
            .expect("list");
        assert!(listing.versions().is_empty() && listing.delete_markers().is_empty());
    });
}

// ---- SDK-level mocks: what moto cannot show ----

use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use cfn::operation::describe_stacks::DescribeStacksOutput;
use cfn::types::{ResourceStatus, Stack, StackEvent, StackStatus};

fn stack_with(status: StackStatus) -> Stack {
    Stack::builder()
        .stack_name("app")
        .stack_id("arn:stack/app/1")
        .stack_status(status)
        .stack_status_reason("The following resource(s) failed")
        .creation_time(aws_smithy_types::DateTime::from_secs(0))
        .outputs(
            cfn::types::Output::builder()
                .output_key("Url")
                .output_value("https://app")
                .build(),
        )
        .build()
}

fn describe_returns(status: StackStatus) -> aws_smithy_mocks::Rule {
    mock!(cfn::Client::describe_stacks).then_output(move || {
        DescribeStacksOutput::builder()
            .stacks(stack_with(status.clone()))
            .build()
    })
}

fn event(logical: &str, status: ResourceStatus, reason: &str, secs: i64) -> StackEvent {
    StackEvent::builder()
        .stack_id("arn:stack/app/1")
        .event_id(format!("{logical}-{secs}"))
        .stack_name("app")
        .logical_resource_id(logical)
        .physical_resource_id(format!("phys-{logical}"))
        .resource_type(if logical == "app" {
            "AWS::CloudFormation::Stack"
        } else {
            "AWS::RDS::DBInstance"
        })
        .resource_status(status)
        .resource_status_reason(reason)
        .timestamp(aws_smithy_types::DateTime::from_secs(secs))
        .build()
}

fn events_return(events: Vec<StackEvent>) -> aws_smithy_mocks::Rule {
    mock!(cfn::Client::describe_stack_events).then_output(move || {
        cfn::operation::describe_stack_events::DescribeStackEventsOutput::builder()
            .set_stack_events(Some(events.clone()))
            .build()
    })
}

/// The standard executor with SDK clients answering by `rules`.
fn mocked(rules: &[&aws_smithy_mocks::Rule]) -> StandardExecutor {
    let cfn = mock_client!(cfn, RuleMode::MatchAny, rules);
    let s3 = mock_client!(s3, RuleMode::MatchAny, &[]);
    StandardExecutor::with_aws(Aws::fixed(cfn, s3))
}

fn check_request(action_type: ActionType, handle: Value) -> CheckRequest {
    let params = match action_type {
        ActionType::CreateStack => json!({"stack_name": "app", "template_body": "{}"}),
        _ => json!({"stack_name": "app"}),
    };
    CheckRequest {
        run_id: "run".into(),
        label: "app".into(),
        action_type,
        params,
        handle,
        attempt: 1,
        log: LogSink::discard(),
    }
}

fn start_request(action_type: ActionType, params: Value) -> StartRequest {
    StartRequest {
        run_id: "run".into(),
        label: "app".into(),
        action_type,
        params,
        attempt: 1,
        limit: None,
        log: LogSink::discard(),
        control: Control::none(),
    }
}

fn handle(operation: &str) -> Value {
    json!({"stack_id": "arn:stack/app/1", "operation": operation, "since": "1970-01-01T00:00:00.000Z"})
}

#[test]
fn create_stack_classifies_every_outcome() {
    rt().block_on(async {
        for status in [StackStatus::CreateComplete, StackStatus::UpdateComplete, StackStatus::ImportComplete] {
            let aws = mocked(&[&describe_returns(status.clone())]);
            let outcome = aws.check(check_request(ActionType::CreateStack, handle("create"))).await;
            assert_eq!(outcome, Outcome::Complete { outputs: json!({"Url": "https://app"}).as_object().cloned().unwrap_or_default() }, "{status:?}");
        }
        for status in [
            StackStatus::CreateInProgress,
            StackStatus::UpdateInProgress,
            StackStatus::UpdateCompleteCleanupInProgress,
            StackStatus::RollbackInProgress,
            StackStatus::UpdateRollbackInProgress,
            StackStatus::DeleteInProgress,
        ] {
            let aws = mocked(&[&describe_returns(status.clone())]);
            let outcome = aws.check(check_request(ActionType::CreateStack, handle("create"))).await;
            assert!(matches!(outcome, Outcome::Running { check_after, .. } if check_after.as_secs() == 10), "{status:?}: {outcome:?}");
        }
        // Failure: the error is the first failed resource, not the stack's own event or the
        // resources cancelled as a consequence.
        let events = vec![
            event("app", ResourceStatus::CreateFailed, "The following resource(s) failed to create: [Db]", 30),
            event("Cache", ResourceStatus::CreateFailed, "Resource creation cancelled", 25),
            event("Db", ResourceStatus::CreateFailed, "DB quota exceeded for this account", 20),
            event("Db", ResourceStatus::CreateInProgress, "", 10),
        ];
        for status in [StackStatus::RollbackComplete, StackStatus::CreateFailed, StackStatus::RollbackFailed, StackStatus::UpdateRollbackComplete, StackStatus::UpdateRollbackFailed] {
            let aws = mocked(&[&describe_returns(status.clone()), &events_return(events.clone())]);
            let outcome = aws.check(check_request(ActionType::CreateStack, handle("create"))).await;
            let Outcome::Failed { error, retryable } = outcome else { panic!("{status:?} must fail") };
            assert!(!retryable);
            assert!(error.contains(status.as_str()), "{error}");
            assert!(error.contains("Db (AWS::RDS::DBInstance) CREATE_FAILED: DB quota exceeded for this account"), "{error}");
            assert!(!error.contains("Cache"), "{error}");
        }
    });
}

#[test]
fn create_stack_update_without_changes_completes_with_outputs() {
    rt().block_on(async {
        let no_updates = mock!(cfn::Client::update_stack).then_error(|| {
            cfn::operation::update_stack::UpdateStackError::generic(
                ErrorMetadata::builder()
                    .code("ValidationError")
                    .message("No updates are to be performed.")
                    .build(),
            )
        });
        let aws = mocked(&[
            &describe_returns(StackStatus::UpdateComplete),
            &events_return(vec![]),
            &no_updates,
        ]);
        let outcome = aws
            .start(start_request(
                ActionType::CreateStack,
                json!({"stack_name": "app", "template_body": "{}"}),
            ))
            .await;
        assert_eq!(
            outcome,
            Outcome::Complete {
                outputs: json!({"Url": "https://app"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            }
        );
    });
}

#[test]
fn create_stack_after_a_failed_create_says_to_delete_first() {
    rt().block_on(async {
        let aws = mocked(&[
            &describe_returns(StackStatus::RollbackComplete),
            &events_return(vec![]),
        ]);
        let outcome = aws
            .start(start_request(
                ActionType::CreateStack,
                json!({"stack_name": "app", "template_body": "{}"}),
            ))
            .await;
        let Outcome::Failed { error, .. } = outcome else {
            panic!("must fail")
        };
        assert!(
            error.contains("ROLLBACK_COMPLETE") && error.contains("delete it"),
            "{error}"
        );
    });
}

#[test]
fn throttling_is_a_retryable_failure_and_other_errors_are_not() {
    rt().block_on(async {
        let throttled = mock!(cfn::Client::describe_stacks).then_error(|| {
            cfn::operation::describe_stacks::DescribeStacksError::generic(
                ErrorMetadata::builder()
                    .code("Throttling")
                    .message("Rate exceeded")
                    .build(),
            )
        });
        let aws = mocked(&[&throttled]);
        let outcome = aws
            .check(check_request(ActionType::CreateStack, handle("create")))
            .await;
        assert_eq!(
            outcome,
            Outcome::Failed {
                error: "DescribeStacks arn:stack/app/1: Throttling: Rate exceeded".into(),
                retryable: true
            }
        );
        let denied = mock!(cfn::Client::describe_stacks).then_error(|| {
            cfn::operation::describe_stacks::DescribeStacksError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized to perform cloudformation:DescribeStacks")
                    .build(),
            )
        });
        let aws = mocked(&[&denied]);
        let outcome = aws
            .check(check_request(ActionType::CreateStack, handle("create")))
            .await;
        let Outcome::Failed { error, retryable } = outcome else {
            panic!("must fail")
        };
        assert!(!retryable);
        assert!(
            error.contains("AccessDenied: not authorized"),
            "the service's message is kept: {error}"
        );
    });
}

#[test]
fn cancel_stops_an_update_but_not_a_create() {
    rt().block_on(async {
        let rule = mock!(cfn::Client::cancel_update_stack).then_output(|| {
            cfn::operation::cancel_update_stack::CancelUpdateStackOutput::builder().build()
        });
        let aws = mocked(&[&rule]);
        aws.cancel(check_request(ActionType::CreateStack, handle("update")))
            .await
            .expect("update cancelled");
        assert_eq!(rule.num_calls(), 1);
        let err = aws
            .cancel(check_request(ActionType::CreateStack, handle("create")))
            .await
            .expect_err("create");
        assert!(err.to_string().contains("cannot be cancelled"), "{err}");
        assert_eq!(rule.num_calls(), 1);
    });
}

#[test]
fn delete_stack_reports_the_resources_that_failed() {
    rt().block_on(async {
        let events = vec![
            event(
                "Bucket",
                ResourceStatus::DeleteFailed,
                "The bucket you tried to delete is not empty",
                40,
            ),
            event(
                "Db",
                ResourceStatus::DeleteFailed,
                "has deletion protection",
                35,
            ),
        ];
        let aws = mocked(&[
            &describe_returns(StackStatus::DeleteFailed),
            &events_return(events),
        ]);
        let outcome = aws
            .check(check_request(ActionType::DeleteStack, handle("delete")))
            .await;
        let Outcome::Failed { error, .. } = outcome else {
            panic!("must fail: {outcome:?}")
        };
        assert!(
            error.contains("Db (AWS::RDS::DBInstance) DELETE_FAILED: has deletion protection"),
            "{error}"
        );
        assert!(error.contains("Bucket"), "{error}");
        let aws = mocked(&[&describe_returns(StackStatus::DeleteComplete)]);
        let outcome = aws
            .check(check_request(ActionType::DeleteStack, handle("delete")))
            .await;
        assert_eq!(outcome, stack_status("DELETE_COMPLETE"));
        // An absent stack is already deleted.
        let absent = mock!(cfn::Client::describe_stacks).then_error(|| {
            cfn::operation::describe_stacks::DescribeStacksError::generic(
                ErrorMetadata::builder()
                    .code("ValidationError")
                    .message("Stack with id app does not exist")
                    .build(),
            )
        });
        let aws = mocked(&[&absent]);
        let outcome = aws
            .start(start_request(
                ActionType::DeleteStack,
                json!({"stack_name": "app"}),
            ))
            .await;
        assert_eq!(outcome, stack_status("DELETE_COMPLETE"));
    });
}

/// A deleted stack's last status is its `StackStatus` output, which SCK teardown conditions
/// read.
fn stack_status(status: &str) -> Outcome {
    let mut outputs = serde_json::Map::new();
    outputs.insert("StackStatus".into(), json!(status));
    Outcome::Complete { outputs }
}

/// `success_statuses`: a stack still in one of them after the delete request (CloudFormation
/// would not delete it) counts as deleted, once the status has had time to change; any other
/// status keeps the action waiting.
#[test]
fn delete_stack_success_statuses_count_as_deleted() {
    rt().block_on(async {
        let check = |params: Value, handle: Value| CheckRequest {
            params,
            ..check_request(ActionType::DeleteStack, handle)
        };
        let listed = json!({"stack_name": "app", "success_statuses": ["CREATE_COMPLETE", "UPDATE_COMPLETE"]});
        let aws = mocked(&[&describe_returns(StackStatus::UpdateComplete)]);
        let outcome = aws.check(check(listed.clone(), handle("delete"))).await;
        assert_eq!(outcome, stack_status("UPDATE_COMPLETE"));
        // Not listed: still waiting for the delete.
        let outcome = aws
            .check(check(json!({"stack_name": "app"}), handle("delete")))
            .await;
        assert!(matches!(outcome, Outcome::Running { .. }), "{outcome:?}");
        // Right after the request, the old status may not have changed yet.
        let now = json!({"stack_id": "arn:stack/app/1", "operation": "delete",
                         "since": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)});
        let outcome = aws.check(check(listed, now)).await;
        let Outcome::Running { check_after, .. } = outcome else {
            panic!("must wait: {outcome:?}")
        };
        assert!(check_after <= std::time::Duration::from_secs(5), "{check_after:?}");
    });
}

#[test]
fn cross_account_actions_assume_a_role_through_sts() {
    let Some(endpoint) = endpoint() else { return };
    let name = unique("xacct");
    rt().block_on(async { bucket(&s3_client(&endpoint), &name, false).await });
    let scratch = Scratch::new();
    let plan = json!([
        {"label": "by-account", "type": "aws.upload_context", "params": {"bucket": name, "key": "a.json", "account": 123456789012u64, "content": {"via": "account"}}},
        {"label": "by-role", "type": "aws.upload_context", "params": {"bucket": name, "key": "b.json", "role_arn": "arn:aws:iam::210987654321:role/deployer", "region": "us-east-1", "content": {"via": "role"}}}
    ]);
    scratch.write("plan.json", &plan.to_string());
    let out = baton_aws(
        &scratch,
        &endpoint,
        &["run", "plan.json", "--json", "--role-name", "ops-deployer"],
    );
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(
        json(&out)["actions"]["by-account"]["outputs"]["url"],
        format!("s3://{name}/a.json")
    );
    // Both uploads signed with credentials from STS AssumeRole (the SDK fetches them before the
    // first request; had STS refused, the actions would have failed).
    rt().block_on(async {
        let client = s3_client(&endpoint);
        for key in ["a.json", "b.json"] {
            client
                .head_object()
                .bucket(&name)
                .key(key)
                .send()
                .await
                .expect("uploaded through the assumed role");
        }
    });
}

/// `baton runs` lists an S3 prefix as it lists a folder: newest first, with status, counts
/// and "idle" for a run left unfinished with nothing driving it; a run elsewhere in the bucket
/// is not listed.
#[test]
fn runs_lists_an_s3_prefix() {
    let Some(endpoint) = endpoint() else { return };
    let (name, store, scratch) = s3_scratch(&endpoint, "runs");
    scratch.write(
        "ok.json",
        &json!([{"label": "a", "type": "system.no_op"}]).to_string(),
    );
    scratch.write(
        "bad.json",
        &json!([
            {"label": "a", "type": "system.no_op"},
            {"label": "boom", "type": "system.fail", "params": {"message": "no"}},
            {"label": "after", "type": "system.no_op", "depends_on": ["boom"]}
        ])
        .to_string(),
    );
    let run = |file: &str, id: &str, store: &str| {
        baton_aws(
            &scratch,
            &endpoint,
            &["run", file, "--run-id", id, "--plain", "--store", store],
        )
    };
    assert_eq!(code(&run("ok.json", "first", &store)), 0);
    assert_eq!(code(&run("bad.json", "second", &store)), 1);
    let elsewhere = format!("s3://{name}/other");
    assert_eq!(code(&run("ok.json", "elsewhere", &elsewhere)), 0);
    let out = baton_aws(
        &scratch,
        &endpoint,
        &["retry", "second", "--failed", "--no-run", "--store", &store],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let out = baton_aws(&scratch, &endpoint, &["runs", "--json", "--store", &store]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let rows = json(&out);
    let rows = rows.as_array().expect("a list");
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().expect("ok")).collect();
    assert_eq!(ids, ["second", "first"], "newest first, this prefix only");
    assert_eq!(rows[0]["status"], "running");
    assert_eq!(
        rows[0]["driver"], "idle",
        "reset and left: nothing drives it"
    );
    assert_eq!(rows[0]["counts"]["complete"], 1);
    assert_eq!(rows[0]["counts"]["pending"], 2);
    assert_eq!(rows[1]["status"], "succeeded");
    assert_eq!(rows[1]["run"], format!("{store}/runs/first"));

    let out = baton_aws(&scratch, &endpoint, &["runs", "--store", &store]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("second") && text.contains("idle"), "{text}");
    assert!(!text.contains("elsewhere"), "{text}");
}

/// A missing state bucket is blamed on the store, not on the action whose template_file was
/// being uploaded to it.
#[test]
fn a_missing_state_bucket_is_the_stores_fault_not_the_actions() {
    let Some(endpoint) = endpoint() else { return };
    let scratch = Scratch::new();
    scratch.write("t.yaml", "Resources: {}\n");
    scratch.write(
        "plan.json",
        &json!([{"label": "net", "type": "aws.create_stack",
                 "params": {"stack_name": "n1", "template_file": "t.yaml"}}])
        .to_string(),
    );
    let store = format!("s3://{}/p", unique("absent"));
    let out = baton_aws(
        &scratch,
        &endpoint,
        &["run", "plan.json", "--plain", "--store", &store],
    );
    assert_eq!(code(&out), 3, "{}", describe(&out));
    let err = stderr(&out);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&store) && first.contains("NoSuchBucket"),
        "{err}"
    );
    assert!(err.contains("check --store"), "{err}");
}
