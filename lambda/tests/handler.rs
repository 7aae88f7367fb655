//! The handler's decisions on an in-memory store (S3-like: leases, no driver lock) and a
//! scripted executor; one end-to-end tick loop on S3 and CloudFormation in moto
//! (`BATON_TEST_AWS_ENDPOINT`, started by scripts/test; in CI a missing endpoint fails it).

use baton_core::testutil::edit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation as cfn;
use aws_sdk_s3 as s3;
use baton_core::aws::Aws;
use baton_core::state::Lease;
use baton_core::store::s3::S3Store;
use baton_core::store::{DriverGuard, VersionInfo};
use baton_core::testutil::{plan, MemoryStore, ScriptedExecutor};
use baton_core::{Outcome, Run, RunError, RunStore, StoreError};
use baton_lambda::{handle, handle_run, parse_run_locator, Config, HandlerError, Input};
use serde_json::json;

/// Where the runs of these tests claim to live: the handler reports it, never reads it.
const LOCATOR: &str = "s3://bucket/baton/runs/run-1";

fn input(execution_ticks: u64) -> Input {
    Input {
        run: LOCATOR.into(),
        execution_ticks,
        ..Input::default()
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

async fn new_run<S: RunStore>(store: S, plan_json: &str) -> Run<S> {
    let (run, _, _) = Run::create(
        store,
        plan(plan_json),
        "run-1",
        Default::default(),
        chrono::Utc::now(),
    )
    .await
    .expect("create run");
    run
}

async fn memory_run(plan_json: &str) -> Run<MemoryStore> {
    new_run(MemoryStore::with_leases(), plan_json).await
}

/// Starts of `label` report it running, due for a check after `check_after` (a stand-in for
/// `system.wait`); the check completes it.
fn running(label: &str, check_after: Duration) -> Arc<ScriptedExecutor> {
    Arc::new(ScriptedExecutor::new().on_start(
        label,
        [Outcome::Running {
            handle: json!({}),
            check_after,
        }],
    ))
}

#[tokio::test]
async fn ticks_until_success_with_waits_in_between() {
    let run = memory_run(
        r#"[{"label": "a", "type": "system.no_op"},
        {"label": "w", "type": "system.wait", "depends_on": ["a"], "params": {"seconds": 1}},
        {"label": "b", "type": "system.no_op", "depends_on": ["w"]}]"#,
    )
    .await;
    let executor = running("w", Duration::from_millis(50));
    let config = Config::default();
    let first = handle_run(&run, &executor, input(0), deadline(), &config)
        .await
        .expect("tick 1");
    assert_eq!(
        serde_json::to_value(&first).expect("serialize"),
        serde_json::json!({
            "run": LOCATOR,
            "run_id": "run-1",
            "state_version": run.store.head().await.expect("head"),
            "flow_control": "wait",
            // Step Functions waits whole seconds: rounded up, never zero.
            "wait_seconds": 1,
            "invocations": 1,
            "execution_ticks": 1,
            "status": "waiting",
            "options": {},
        })
    );
    // The output is what the state machine feeds back in.
    let again: Input = serde_json::from_value(serde_json::to_value(&first).expect("serialize"))
        .expect("round trip");
    tokio::time::sleep(Duration::from_millis(60)).await;
    let second = handle_run(&run, &executor, again, deadline(), &config)
        .await
        .expect("tick 2");
    assert_eq!(second.flow_control(), "success");
    assert_eq!(second.execution_ticks, 2);
    assert_eq!(second.invocations, 2);
    assert_eq!(second.status.as_str(), "succeeded");
    assert_eq!(second.state_version, run.store.head().await.expect("head"));
    assert_eq!(executor.count("w", "start"), 1);
    let text = serde_json::to_string(&second).expect("json");
    assert!(text.len() < 1024, "the payload stays a small pointer");
    assert!(
        !text.contains("summary"),
        "no failure summary for a success: {text}"
    );
}

#[tokio::test]
async fn continues_in_a_new_execution_past_the_tick_threshold() {
    let run =
        memory_run(r#"[{"label": "w", "type": "system.wait", "params": {"seconds": 30}}]"#).await;
    let executor = running("w", Duration::from_secs(30));
    let config = Config {
        continue_after: 3,
        ..Config::default()
    };
    let out = handle_run(&run, &executor, input(1), deadline(), &config)
        .await
        .expect("tick");
    assert_eq!(out.flow_control(), "wait");
    let out = handle_run(&run, &executor, input(2), deadline(), &config)
        .await
        .expect("tick");
    assert_eq!(out.flow_control(), "continue");
    // The new execution starts counting again.
    let out = handle_run(&run, &executor, input(0), deadline(), &config)
        .await
        .expect("tick");
    assert_eq!((out.flow_control(), out.execution_ticks), ("wait", 1));
    // An execution's input may set its own threshold; the output carries it on, and the
    // state machine hands it to the next execution.
    let chain = Input {
        options: baton_lambda::ExecutionOptions {
            continue_after_ticks: Some(2),
        },
        ..input(1)
    };
    let out = handle_run(&run, &executor, chain, deadline(), &Config::default())
        .await
        .expect("tick");
    assert_eq!(out.flow_control(), "continue");
    assert_eq!(
        serde_json::to_value(&out).expect("json")["options"],
        json!({"continue_after_ticks": 2})
    );
    // A finished run ends the execution however many ticks it took.
    let done = memory_run(r#"[{"label": "a", "type": "system.no_op"}]"#).await;
    let out = handle_run(&done, &executor, input(5), deadline(), &config)
        .await
        .expect("tick");
    assert_eq!(out.flow_control(), "success");
}

#[tokio::test]
async fn a_failed_run_reports_failure_and_the_budget_bounds_a_tick() {
    let run = memory_run(
        r#"[{"label": "bad", "type": "system.fail", "params": {"message": "nope"}},
        {"label": "child", "type": "system.no_op", "depends_on": ["bad"]},
        {"label": "slow", "type": "system.wait", "params": {"seconds": 1}}]"#,
    )
    .await;
    let executor = running("slow", Duration::from_millis(50));
    // A deadline inside the safety margin: nothing new may start, so the tick says execute.
    let tight = Instant::now() + Duration::from_secs(5);
    let out = handle_run(&run, &executor, input(0), tight, &Config::default())
        .await
        .expect("tick");
    assert_eq!(out.flow_control(), "execute");
    assert_eq!(executor.count("slow", "start"), 0);
    let out = handle_run(&run, &executor, input(1), deadline(), &Config::default())
        .await
        .expect("tick");
    assert_eq!(out.flow_control(), "wait");
    assert_eq!(out.summary, "", "not finished yet");
    tokio::time::sleep(Duration::from_millis(60)).await;
    let out = handle_run(&run, &executor, input(2), deadline(), &Config::default())
        .await
        .expect("tick");
    assert_eq!(
        (out.flow_control(), out.status.as_str()),
        ("failure", "failed")
    );
    assert_eq!(out.summary, "run failed: bad (nope); 1 blocked");
}

#[tokio::test]
async fn the_failure_summary_is_bounded() {
    let message = "é".repeat(3000);
    let run = memory_run(
        &json!([{"label": "bad", "type": "system.fail", "params": {"message": message}}])
            .to_string(),
    )
    .await;
    let out = handle_run(
        &run,
        &Arc::new(ScriptedExecutor::new()),
        input(0),
        deadline(),
        &Config::default(),
    )
    .await
    .expect("tick");
    assert_eq!(out.flow_control(), "failure");
    assert!(
        out.summary.starts_with("run failed: bad (éé"),
        "{}",
        out.summary
    );
    assert!(out.summary.ends_with('…'), "{}", out.summary);
    assert!(out.summary.len() <= 4000 + '…'.len_utf8());
}

/// Builds an AWS handle whose clients point nowhere: for paths that must fail before any call.
fn unreachable_aws() -> Arc<Aws> {
    aws("http://127.0.0.1:1")
}

#[tokio::test]
async fn a_bad_payload_is_fatal_before_anything_is_read() {
    for locator in ["not-a-url", "s3://", "s3://bucket/baton/no-run-here"] {
        let err = parse_run_locator(locator).expect_err(locator);
        assert!(matches!(err, HandlerError::BadPayload(_)), "{err}");
        assert_eq!(err.error_type(), "Baton.Fatal");
    }
    assert_eq!(
        parse_run_locator("s3://bucket/team/baton/runs/r1/").expect("locator"),
        ("bucket".to_string(), "team/baton/runs/r1".to_string())
    );
    let err = handle(
        unreachable_aws(),
        Input {
            run: "not-a-url".into(),
            ..Input::default()
        },
        deadline(),
        &Config::default(),
    )
    .await
    .expect_err("bad payload");
    assert!(matches!(err, HandlerError::BadPayload(_)), "{err}");
    // The payload arrives as JSON: a missing run is refused by the runtime's decoding.
    assert!(serde_json::from_value::<Input>(json!({"execution_ticks": 1})).is_err());
    let defaulted: Input = serde_json::from_value(json!({"run": LOCATOR})).expect("input");
    assert_eq!(defaulted.execution_ticks, 0);
}

#[tokio::test]
async fn a_damaged_state_is_fatal() {
    let run = memory_run(r#"[{"label": "a", "type": "system.no_op"}]"#).await;
    run.store
        .save(b"{\"not\": \"a state\"}".to_vec(), "1")
        .await
        .expect("save");
    let err = handle_run(
        &run,
        &Arc::new(ScriptedExecutor::new()),
        input(0),
        deadline(),
        &Config::default(),
    )
    .await
    .expect_err("damaged");
    assert!(matches!(err, HandlerError::Damaged(_)), "{err}");
    assert_eq!(err.error_type(), "Baton.Fatal");
}

#[tokio::test]
async fn another_drivers_live_lease_makes_the_execution_wait_not_fail() {
    let run = memory_run(r#"[{"label": "a", "type": "system.no_op"}]"#).await;
    let (mut state, version) = run.load().await.expect("load");
    edit(&mut state).driver(Some(Lease {
        holder: "baton pid 7 on elsewhere".into(),
        until: chrono::Utc::now() + chrono::Duration::seconds(5),
    }));
    run.save(&mut state, &version).await.expect("save");
    let executor = Arc::new(ScriptedExecutor::new());
    let out = handle_run(&run, &executor, input(3), deadline(), &Config::default())
        .await
        .expect("a live lease is no error");
    // The loop pauses until the lease could have lapsed, then ticks again; the tick counts
    // towards continue-as-new like any other.
    assert_eq!(out.flow_control(), "wait");
    assert!(
        (5..=7).contains(&out.wait_seconds()),
        "{}",
        out.wait_seconds()
    );
    assert_eq!(out.execution_ticks, 4);
    assert_eq!(out.status.as_str(), "running");
    assert!(executor.calls().is_empty());
    // A lease that is released by then: the next tick does the work.
    let (mut state, version) = run.load().await.expect("load");
    edit(&mut state).driver(None);
    run.save(&mut state, &version).await.expect("save");
    let out = handle_run(&run, &executor, input(4), deadline(), &Config::default())
        .await
        .expect("tick");
    assert_eq!(out.flow_control(), "success");
}

#[tokio::test]
async fn a_lease_held_for_minutes_keeps_the_execution_waiting_in_bounded_pauses() {
    let run = memory_run(r#"[{"label": "a", "type": "system.no_op"}]"#).await;
    let (mut state, version) = run.load().await.expect("load");
    edit(&mut state).driver(Some(Lease {
        holder: "baton pid 7 on elsewhere".into(),
        until: chrono::Utc::now() + chrono::Duration::minutes(10),
    }));
    run.save(&mut state, &version).await.expect("save");
    let out = handle_run(
        &run,
        &Arc::new(ScriptedExecutor::new()),
        input(0),
        deadline(),
        &Config::default(),
    )
    .await
    .expect("wait");
    assert_eq!(out.flow_control(), "wait");
    assert_eq!(
        out.wait_seconds(),
        10,
        "looks again well within a lease's lifetime"
    );
}

/// A store on which another driver ticks the run just before this tick's first save.
struct Raced {
    inner: MemoryStore,
    raced: AtomicBool,
}

impl Raced {
    async fn another_driver_ticks(&self) -> Result<(), StoreError> {
        let (bytes, version) = self.inner.load_latest().await?;
        let mut state: serde_json::Value =
            serde_json::from_slice(&bytes).expect("the state is JSON");
        state["invocations"] = json!(state["invocations"].as_u64().unwrap_or(0) + 1);
        let bytes = serde_json::to_vec(&state).expect("json");
        self.inner.save(bytes, &version).await.map(drop)
    }
}

impl RunStore for Raced {
    fn locator(&self) -> String {
        self.inner.locator()
    }
    async fn create(&self, plan: &[u8], state: &[u8]) -> Result<String, StoreError> {
        self.inner.create(plan, state).await
    }
    async fn load_plan(&self) -> Result<Vec<u8>, StoreError> {
        self.inner.load_plan().await
    }
    async fn load_latest(&self) -> Result<(Vec<u8>, String), StoreError> {
        self.inner.load_latest().await
    }
    async fn load_version(&self, version: &str) -> Result<Vec<u8>, StoreError> {
        self.inner.load_version(version).await
    }
    async fn save(&self, state: Vec<u8>, expected: &str) -> Result<String, StoreError> {
        if !self.raced.swap(true, Ordering::SeqCst) {
            self.another_driver_ticks().await?;
        }
        self.inner.save(state, expected).await
    }
    async fn list_versions(&self) -> Result<Vec<VersionInfo>, StoreError> {
        self.inner.list_versions().await
    }
    async fn head(&self) -> Result<String, StoreError> {
        self.inner.head().await
    }
    fn lock_driver(&self) -> Result<Box<dyn DriverGuard>, StoreError> {
        self.inner.lock_driver()
    }
    fn needs_lease(&self) -> bool {
        self.inner.needs_lease()
    }
}

#[tokio::test]
async fn a_conflict_with_another_driver_is_retryable() {
    let store = Raced {
        inner: MemoryStore::with_leases(),
        raced: AtomicBool::new(false),
    };
    let run = new_run(store, r#"[{"label": "a", "type": "system.no_op"}]"#).await;
    let err = handle_run(
        &run,
        &Arc::new(ScriptedExecutor::new()),
        input(0),
        deadline(),
        &Config::default(),
    )
    .await
    .expect_err("conflict");
    assert!(matches!(err, HandlerError::Conflict(_)), "{err}");
    assert_eq!(err.error_type(), "Baton.Retryable");
    // The retry reloads and continues.
    let out = handle_run(
        &run,
        &Arc::new(ScriptedExecutor::new()),
        input(0),
        deadline(),
        &Config::default(),
    )
    .await
    .expect("retry");
    assert_eq!(out.flow_control(), "success");
}

#[test]
fn errors_say_whether_a_retry_can_help() {
    let locator = || "s3://b/p/runs/r".to_string();
    let class = |err: RunError| HandlerError::from(err).error_type();
    assert_eq!(
        class(RunError::Store(StoreError::NotFound { locator: locator() })),
        "Baton.Fatal"
    );
    assert_eq!(
        class(RunError::Store(StoreError::Corrupt {
            locator: locator(),
            message: "m".into()
        })),
        "Baton.Fatal"
    );
    assert_eq!(
        class(RunError::Damaged {
            locator: locator(),
            message: "m".into()
        }),
        "Baton.Fatal"
    );
    assert_eq!(
        class(RunError::Store(StoreError::Conflict {
            locator: locator(),
            expected: "1".into(),
            actual: "2".into()
        })),
        "Baton.Retryable"
    );
    assert_eq!(
        class(RunError::Store(StoreError::Denied {
            locator: locator(),
            message: "GetObject state.json: AccessDenied".into()
        })),
        "Baton.Fatal",
        "403 (a missing run without s3:ListBucket) needs an operator, not retries"
    );
    assert_eq!(
        class(RunError::Store(StoreError::Busy {
            locator: locator(),
            holder: " (baton pid 7 on elsewhere)".into()
        })),
        "Baton.Retryable"
    );
    assert_eq!(
        class(RunError::Store(StoreError::Remote {
            locator: locator(),
            message: "SlowDown".into()
        })),
        "Baton.Retryable"
    );
    assert_eq!(
        HandlerError::Unavailable("u".into()).error_type(),
        "Baton.Retryable"
    );
}

// ---- end to end: the deployed wiring on S3 and CloudFormation, in moto ----

fn endpoint() -> Option<String> {
    match std::env::var("BATON_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "BATON_TEST_AWS_ENDPOINT is not set: run scripts/test"
            );
            eprintln!("skipping: no AWS emulator (run scripts/test)");
            None
        }
    }
}

fn creds() -> s3::config::Credentials {
    s3::config::Credentials::new("testing", "testing", None, None, "tests")
}

fn s3_client(endpoint: &str) -> s3::Client {
    s3::Client::from_conf(
        s3::Config::builder()
            .behavior_version(s3::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(s3::config::Region::new("us-east-1"))
            .credentials_provider(creds())
            .force_path_style(true)
            .build(),
    )
}

fn cfn_client(endpoint: &str) -> cfn::Client {
    cfn::Client::from_conf(
        cfn::Config::builder()
            .behavior_version(cfn::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(cfn::config::Region::new("us-east-1"))
            .credentials_provider(creds())
            .build(),
    )
}

fn aws(endpoint: &str) -> Arc<Aws> {
    Aws::fixed(cfn_client(endpoint), s3_client(endpoint))
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// Creates a versioned bucket and a run in it.
async fn new_s3_run(client: &s3::Client, plan_json: &str) -> Run<S3Store> {
    let bucket = unique("lambda");
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    let enabled = s3::types::VersioningConfiguration::builder()
        .status(s3::types::BucketVersioningStatus::Enabled)
        .build();
    client
        .put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(enabled)
        .send()
        .await
        .expect("versioning");
    let store = S3Store::in_prefix(client.clone(), &bucket, "baton", "run-1");
    new_run(store, plan_json).await
}

#[tokio::test]
async fn ticks_a_run_in_s3_that_creates_a_stack() {
    let Some(endpoint) = endpoint() else { return };
    let aws = aws(&endpoint);
    let stack = unique("lambda-stack");
    let template = json!({
        "Resources": {"P": {"Type": "AWS::SSM::Parameter", "Properties": {
            "Name": format!("/baton-test/{stack}"), "Type": "String", "Value": "v"}}},
        "Outputs": {"Greeting": {"Value": "hello"}}
    })
    .to_string();
    let run = new_s3_run(
        &s3_client(&endpoint),
        &json!([
            {"label": "stack", "type": "aws.create_stack",
             "params": {"stack_name": stack, "template_body": template}},
            {"label": "w", "type": "system.wait", "depends_on": ["stack"], "params": {"seconds": 1}},
            {"label": "b", "type": "system.no_op", "depends_on": ["w"]}
        ])
        .to_string(),
    )
    .await;
    let locator = run.store.locator();
    let config = Config::default();
    let first = handle(
        aws.clone(),
        Input {
            run: locator.clone(),
            ..Input::default()
        },
        deadline(),
        &config,
    )
    .await
    .expect("tick 1");
    assert_eq!(
        (
            first.flow_control(),
            first.wait_seconds(),
            first.status.as_str()
        ),
        ("wait", 1, "waiting")
    );
    assert_eq!(
        (first.run.as_str(), first.run_id.as_str()),
        (locator.as_str(), "run-1")
    );
    let again: Input = serde_json::from_value(serde_json::to_value(&first).expect("serialize"))
        .expect("round trip");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = handle(aws.clone(), again, deadline(), &config)
        .await
        .expect("tick 2");
    assert_eq!(
        (
            second.flow_control(),
            second.execution_ticks,
            second.status.as_str()
        ),
        ("success", 2, "succeeded")
    );
    assert_eq!(second.state_version, run.store.head().await.expect("head"));
    let (state, _) = run.load().await.expect("load");
    let created = run.plan.find("stack").expect("stack");
    assert_eq!(state.action(created).outputs["Greeting"], "hello");
    let described = cfn_client(&endpoint)
        .describe_stacks()
        .stack_name(&stack)
        .send()
        .await
        .expect("describe");
    assert_eq!(
        described.stacks()[0].stack_status(),
        Some(&cfn::types::StackStatus::CreateComplete)
    );
    // A run that is not there: an operator must look.
    let err = handle(
        aws,
        Input {
            run: "s3://no-such-bucket-anywhere/baton/runs/x".into(),
            ..Input::default()
        },
        deadline(),
        &config,
    )
    .await
    .expect_err("missing run");
    assert_eq!(err.error_type(), "Baton.Fatal", "{err}");
}

/// The state machine in cloudformation/runner.yaml routes on exactly what the handler returns.
#[test]
fn the_state_machine_definition_matches_the_handler() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../cloudformation/runner.yaml"
    ))
    .expect("template");
    let template: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
    let definition = &template["Resources"]["StateMachine"]["Properties"]["Definition"];
    let states = &definition["States"];
    assert_eq!(definition["StartAt"].as_str(), Some("Tick"));
    assert_eq!(states["Tick"]["Next"].as_str(), Some("Route"));
    assert_eq!(states["Tick"]["OutputPath"].as_str(), Some("$.Payload"));
    let retried: Vec<&str> = states["Tick"]["Retry"]
        .as_sequence()
        .expect("retries")
        .iter()
        .flat_map(|r| {
            r["ErrorEquals"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str())
        })
        .collect();
    assert!(retried.contains(&"Baton.Retryable") && retried.contains(&"Lambda.ServiceException"));
    assert!(
        !retried.contains(&"Baton.Fatal"),
        "fatal errors must not be retried"
    );
    let routes: Vec<(&str, &str, &str)> = states["Route"]["Choices"]
        .as_sequence()
        .expect("choices")
        .iter()
        .map(|c| {
            (
                c["Variable"].as_str().unwrap_or_default(),
                c["StringEquals"].as_str().unwrap_or_default(),
                c["Next"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        vec![
            ("$.flow_control", "execute", "Tick"),
            ("$.flow_control", "wait", "Pause"),
            ("$.flow_control", "success", "Succeeded"),
            ("$.flow_control", "continue", "ContinueAsNew"),
            // An operator's abort ends the execution without failing it (no alarm).
            ("$.status", "aborted", "RunAborted"),
        ]
    );
    assert_eq!(states["RunAborted"]["Type"].as_str(), Some("Succeed"));
    assert_eq!(states["Route"]["Default"].as_str(), Some("RunFailed"));
    assert_eq!(
        states["Pause"]["SecondsPath"].as_str(),
        Some("$.wait_seconds")
    );
    assert_eq!(states["Pause"]["Next"].as_str(), Some("Tick"));
    assert_eq!(states["RunFailed"]["CausePath"].as_str(), Some("$.summary"));
    let continue_as_new = &states["ContinueAsNew"];
    assert_eq!(
        continue_as_new["Parameters"]["StateMachineArn.$"].as_str(),
        Some("$$.StateMachine.Id")
    );
    // The next execution gets the run, its id and the chain's options.
    let next_input = &continue_as_new["Parameters"]["Input"];
    assert_eq!(next_input["run.$"].as_str(), Some("$.run"));
    assert_eq!(next_input["run_id.$"].as_str(), Some("$.run_id"));
    assert_eq!(next_input["options.$"].as_str(), Some("$.options"));
    assert!(
        continue_as_new["Retry"]
            .as_sequence()
            .is_some_and(|r| !r.is_empty()),
        "a failed start of the next execution must not strand the run"
    );
    // Every field the definition reads exists in the handler's output.
    let output = serde_json::to_value(baton_lambda::Output {
        payload: baton_core::Payload {
            run: String::new(),
            run_id: String::new(),
            state_version: String::new(),
            next: baton_core::Next::Wait(Duration::from_secs(1)),
            invocations: 0,
            execution_ticks: 0,
            status: baton_core::RunStatus::Waiting,
            summary: "x".into(),
        },
        options: Default::default(),
    })
    .expect("json");
    for field in [
        "flow_control",
        "wait_seconds",
        "run",
        "run_id",
        "invocations",
        "status",
        "summary",
        "options",
    ] {
        assert!(output.get(field).is_some(), "output lacks {field}");
    }
}

/// What the function's settings are in a deployment: the template maps its parameters onto the
/// environment `Config::from_vars` reads, and its defaults are the safe ones.
/// A function environment of these variables, as `Config::from_vars` looks them up.
fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

#[test]
fn the_functions_settings_follow_the_template_and_default_to_safe() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../cloudformation/runner.yaml"
    ))
    .expect("template");
    let template: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
    let reference = |value: &serde_yaml::Value| match value {
        serde_yaml::Value::Tagged(tagged) if tagged.tag == "!Ref" => {
            tagged.value.as_str().map(str::to_string)
        }
        _ => None,
    };
    let variables =
        &template["Resources"]["TickFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        reference(&variables["BATON_ALLOW_COMMANDS"]).as_deref(),
        Some("AllowCommands")
    );
    assert_eq!(
        reference(&variables["BATON_ROLE_NAME"]).as_deref(),
        Some("DeployerRoleName")
    );
    for (variable, parameter) in [
        ("BATON_COMMAND_CLUSTER", "CommandCluster"),
        ("BATON_COMMAND_TASK_DEFINITION", "CommandTaskDefinition"),
        ("BATON_COMMAND_CONTAINER", "CommandContainer"),
        ("BATON_COMMAND_LAUNCH_TYPE", "CommandLaunchType"),
        ("BATON_COMMAND_ASSIGN_PUBLIC_IP", "CommandAssignPublicIp"),
    ] {
        assert_eq!(
            reference(&variables[variable]).as_deref(),
            Some(parameter),
            "{variable}"
        );
    }
    let parameters = &template["Parameters"];
    assert_eq!(
        parameters["AllowCommands"]["Default"].as_str(),
        Some("false")
    );
    let prefix = parameters["StackNamePrefix"]["Default"]
        .as_str()
        .unwrap_or_default();
    assert!(!prefix.is_empty(), "the runner must not reach every stack");
    // The documented runner stack name is not one the runner may touch.
    assert!(!"baton-runner".starts_with(prefix));
    // One letter at least: an empty prefix would allow every stack.
    assert_eq!(
        parameters["StackNamePrefix"]["AllowedPattern"].as_str(),
        Some("[a-zA-Z][a-zA-Z0-9-]*")
    );
    let statements = template["Resources"]["TickFunctionRole"]["Properties"]["Policies"][0]
        ["PolicyDocument"]["Statement"]
        .as_sequence()
        .expect("statements")
        .clone();
    assert!(
        statements
            .iter()
            .any(|s| s["Sid"].as_str() == Some("NotItsOwnStack")
                && s["Effect"].as_str() == Some("Deny")),
        "the runner's own stack is denied"
    );
    let stack_rights = statements
        .iter()
        .find(|s| s["Sid"].as_str() == Some("StackActions"))
        .expect("StackActions");
    let resource = match &stack_rights["Resource"] {
        serde_yaml::Value::Tagged(tagged) => tagged.value.as_str().unwrap_or_default().to_string(),
        other => panic!("{other:?}"),
    };
    assert!(
        resource.ends_with(":stack/${StackNamePrefix}*"),
        "{resource}"
    );
    // Service roles can be passed, and only to CloudFormation.
    let pass = statements
        .iter()
        .filter_map(|s| match s {
            serde_yaml::Value::Tagged(tagged) if tagged.tag == "!If" => tagged.value.get(1),
            _ => None,
        })
        .find(|s| s["Sid"].as_str() == Some("PassServiceRoles"))
        .expect("PassServiceRoles");
    assert_eq!(pass["Action"].as_str(), Some("iam:PassRole"));
    assert_eq!(
        pass["Condition"]["StringEquals"]["iam:PassedToService"].as_str(),
        Some("cloudformation.amazonaws.com")
    );
    assert_eq!(
        reference(&pass["Resource"]).as_deref(),
        Some("CloudFormationServiceRoleArns")
    );

    let off = Config::from_vars(vars(&[
        ("BATON_ALLOW_COMMANDS", "false"),
        ("BATON_ROLE_NAME", "ops-deployer"),
    ]));
    assert!(!off.allow_commands);
    assert_eq!(off.role_name, "ops-deployer");
    assert!(Config::from_vars(vars(&[("BATON_ALLOW_COMMANDS", "true")])).allow_commands);
    let unset = Config::from_vars(vars(&[]));
    assert!(!unset.allow_commands, "commands are off unless enabled");
    assert_eq!(unset.role_name, "baton-deployer");
}

/// One tick of the deployed wiring on a fresh S3 run of `plan_json`, with `config`.
async fn tick_in_s3(endpoint: &str, plan_json: &str, config: &Config) -> baton_core::RunState {
    let run = new_s3_run(&s3_client(endpoint), plan_json).await;
    let out = handle(
        aws(endpoint),
        Input {
            run: run.store.locator(),
            ..Input::default()
        },
        deadline(),
        config,
    )
    .await
    .expect("tick");
    assert_eq!(out.flow_control(), "failure", "{out:?}");
    run.load().await.expect("load").0
}

#[tokio::test]
async fn commands_run_in_the_function_only_when_the_deployment_enables_them() {
    let Some(endpoint) = endpoint() else { return };
    let plan_json = json!([
        {"label": "cmd", "type": "system.command", "params": {"command": ["sh", "-c", "echo '{\"ran\": true}'"]}},
        {"label": "stop", "type": "system.fail", "depends_on": ["cmd"], "params": {"message": "end"}}
    ])
    .to_string();
    let state = tick_in_s3(&endpoint, &plan_json, &Config::default()).await;
    let cmd = state.action(0);
    assert_eq!(cmd.status, baton_core::ActionStatus::Failed);
    let error = cmd.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("system.command is turned off in this runner")
            && error.contains("CommandCluster")
            && error.contains("AllowCommands=true"),
        "{error}"
    );
    let enabled = Config {
        allow_commands: true,
        ..Config::default()
    };
    let state = tick_in_s3(&endpoint, &plan_json, &enabled).await;
    assert_eq!(state.action(0).status, baton_core::ActionStatus::Complete);
    assert_eq!(state.action(0).outputs["ran"], true);
}

#[tokio::test]
async fn the_function_reads_no_files_of_its_own_machine() {
    let Some(endpoint) = endpoint() else { return };
    let plan_json = json!([
        {"label": "stack", "type": "aws.create_stack",
         "params": {"stack_name": unique("local"), "template_file": "/etc/hostname"}}
    ])
    .to_string();
    let state = tick_in_s3(&endpoint, &plan_json, &Config::default()).await;
    let error = state.action(0).error.as_deref().unwrap_or_default();
    assert!(
        error.contains("params.template_file: /etc/hostname: the runner reads no files"),
        "{error}"
    );
}

/// moto's ECS with tasks that run until the test ends them (scripts/moto_ecs_patch.py), and a
/// task definition whose container logs where the test writes its output.
struct CommandCluster {
    ecs: aws_sdk_ecs::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    tasks: baton_core::CommandTasks,
    group: String,
}

macro_rules! moto_client {
    ($sdk:ident, $endpoint:expr) => {
        $sdk::Client::from_conf(
            $sdk::Config::builder()
                .behavior_version($sdk::config::BehaviorVersion::latest())
                .endpoint_url($endpoint)
                .region($sdk::config::Region::new("us-east-1"))
                .credentials_provider(creds())
                .build(),
        )
    };
}

async fn command_cluster(endpoint: &str) -> CommandCluster {
    use aws_sdk_cloudwatchlogs as logs_sdk;
    use aws_sdk_ecs as ecs_sdk;
    let ecs: ecs_sdk::Client = moto_client!(ecs_sdk, endpoint);
    let logs: logs_sdk::Client = moto_client!(logs_sdk, endpoint);
    let cluster = unique("commands");
    let family = unique("command");
    let group = format!("/baton/{}", unique("commands"));
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("cluster");
    logs.create_log_group()
        .log_group_name(&group)
        .send()
        .await
        .expect("log group");
    let log = ecs_sdk::types::LogConfiguration::builder()
        .log_driver(ecs_sdk::types::LogDriver::Awslogs)
        .options("awslogs-group", &group)
        .options("awslogs-stream-prefix", "baton")
        .build()
        .expect("log configuration");
    ecs.register_task_definition()
        .family(&family)
        .container_definitions(
            ecs_sdk::types::ContainerDefinition::builder()
                .name("runner")
                .image("example.com/tools:latest")
                .memory(512)
                .log_configuration(log)
                .build(),
        )
        .send()
        .await
        .expect("task definition");
    CommandCluster {
        ecs,
        logs,
        tasks: baton_core::CommandTasks {
            cluster,
            task_definition: family,
            launch_type: Some("FARGATE".into()),
            ..Default::default()
        },
        group,
    }
}

impl CommandCluster {
    fn aws(&self, endpoint: &str) -> Arc<Aws> {
        Aws::fixed_with(
            cfn_client(endpoint),
            s3_client(endpoint),
            baton_core::aws::Services {
                ecs: Some(self.ecs.clone()),
                logs: Some(self.logs.clone()),
                ..Default::default()
            },
        )
    }

    async fn task_arns(&self) -> Vec<String> {
        self.ecs
            .list_tasks()
            .cluster(&self.tasks.cluster)
            .send()
            .await
            .expect("list tasks")
            .task_arns()
            .to_vec()
    }

    /// The container prints `lines` and exits with `code`.
    async fn finish(&self, task_arn: &str, lines: &[&str], code: i32) {
        let stream = format!(
            "baton/runner/{}",
            task_arn.rsplit('/').next().unwrap_or_default()
        );
        self.logs
            .create_log_stream()
            .log_group_name(&self.group)
            .log_stream_name(&stream)
            .send()
            .await
            .expect("log stream");
        let now = chrono::Utc::now().timestamp_millis();
        for (i, line) in lines.iter().enumerate() {
            let event = aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(now + i as i64)
                .message(*line)
                .build()
                .expect("event");
            self.logs
                .put_log_events()
                .log_group_name(&self.group)
                .log_stream_name(&stream)
                .log_events(event)
                .send()
                .await
                .expect("put log events");
        }
        let tag = aws_sdk_ecs::types::Tag::builder()
            .key("moto-exit-code")
            .value(code.to_string())
            .build();
        self.ecs
            .tag_resource()
            .resource_arn(task_arn)
            .tags(tag)
            .send()
            .await
            .expect("end the task");
    }
}

/// A long command under the runner: one tick starts it as an ECS task and returns (the
/// execution waits), later ticks check it and stream its output, and it completes with the
/// outputs of its last line. A tick that died after starting the task but before saving its
/// handle is replayed, and the replay finds the same task.
#[tokio::test]
async fn long_commands_run_as_ecs_tasks_checked_by_later_ticks() {
    let Some(endpoint) = endpoint() else { return };
    let cluster = command_cluster(&endpoint).await;
    let aws = cluster.aws(&endpoint);
    let config = Config {
        command_tasks: Some(cluster.tasks.clone()),
        ..Config::default()
    };
    let plan_json = json!([
        {"label": "migrate", "type": "system.command", "timeout": "2h",
         "params": {"command": "./migrate --all && echo '{\"applied\": 12}'", "shell": true,
                    "env": {"STAGE": "prod"}}}
    ])
    .to_string();
    let run = new_s3_run(&s3_client(&endpoint), &plan_json).await;
    let input = || Input {
        run: run.store.locator(),
        ..Input::default()
    };
    let out = handle(aws.clone(), input(), deadline(), &config)
        .await
        .expect("first tick");
    assert_eq!(out.flow_control(), "wait", "{out:?}");
    let (state, version) = run.load().await.expect("load");
    let action = state.action(0);
    assert_eq!(action.status, baton_core::ActionStatus::Running);
    let handle_json = action.handle.as_deref().cloned().expect("a handle");
    let task_arn = handle_json["ecs"]["task_arn"]
        .as_str()
        .expect("task")
        .to_string();
    assert_eq!(cluster.task_arns().await, std::slice::from_ref(&task_arn));

    // The tick that started the task dies before saving its handle: the state still says
    // "running" with no handle (the intent saved before the start).
    let mut crashed = state.clone();
    let entry = edit(&mut crashed).action_mut(0);
    entry.handle = None;
    entry.next_check_at = None;
    run.save(&mut crashed, &version).await.expect("save");
    let out = handle(aws.clone(), input(), deadline(), &config)
        .await
        .expect("replayed tick");
    assert_eq!(out.flow_control(), "wait", "{out:?}");
    let (state, _) = run.load().await.expect("load");
    let replayed = state
        .action(0)
        .handle
        .as_deref()
        .cloned()
        .expect("a handle again");
    assert_eq!(replayed["ecs"]["task_arn"], task_arn.as_str());
    assert_eq!(
        cluster.task_arns().await.len(),
        1,
        "the replay started a second task"
    );

    cluster
        .finish(
            &task_arn,
            &["applying 12 migrations", r#"{"applied": 12}"#],
            0,
        )
        .await;
    // The first check is due 5 s after the start.
    let started = Instant::now();
    let out = loop {
        let out = handle(aws.clone(), input(), deadline(), &config)
            .await
            .expect("tick");
        if out.flow_control() != "wait" || started.elapsed() > Duration::from_secs(30) {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(out.flow_control(), "success", "{out:?}");
    let (state, _) = run.load().await.expect("load");
    let action = state.action(0);
    assert_eq!(action.outputs["applied"], 12);
    let log: Vec<&str> = action.log.iter().map(|e| e.msg.as_str()).collect();
    assert!(log.contains(&"applying 12 migrations"), "{log:?}");
    assert!(
        log.iter().any(|l| l.contains("started ECS task")),
        "{log:?}"
    );
}

#[test]
fn command_task_settings_come_from_the_environment() {
    let config = Config::from_vars(vars(&[
        ("BATON_COMMAND_CLUSTER", "builds"),
        ("BATON_COMMAND_TASK_DEFINITION", "baton-commands"),
        ("BATON_COMMAND_LAUNCH_TYPE", "FARGATE"),
        ("BATON_COMMAND_SUBNETS", "subnet-1, subnet-2"),
        ("BATON_COMMAND_SECURITY_GROUPS", ""),
        ("BATON_COMMAND_CONTAINER", ""),
        ("BATON_COMMAND_ASSIGN_PUBLIC_IP", "false"),
    ]));
    let tasks = config.command_tasks.expect("commands go to ECS");
    assert_eq!(tasks.cluster, "builds");
    assert_eq!(tasks.task_definition, "baton-commands");
    assert_eq!(tasks.subnets, ["subnet-1", "subnet-2"]);
    assert!(tasks.security_groups.is_empty());
    assert_eq!(tasks.container, None);
    assert_eq!(tasks.assign_public_ip, Some(false));
    // What CloudFormation passes when the parameters are left empty: no ECS.
    let unset = Config::from_vars(vars(&[
        ("BATON_COMMAND_CLUSTER", ""),
        ("BATON_COMMAND_TASK_DEFINITION", ""),
    ]));
    assert!(unset.command_tasks.is_none() && unset.command_tasks_problem.is_none());
    let half = Config::from_vars(vars(&[("BATON_COMMAND_CLUSTER", "builds")]));
    assert!(half.command_tasks.is_none());
    assert!(half
        .command_tasks_problem
        .as_deref()
        .is_some_and(|p| p.contains("BATON_COMMAND_TASK_DEFINITION is not")));
}
