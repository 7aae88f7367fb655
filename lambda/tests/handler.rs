//! The handler with plain payloads, against runs in S3 on moto (`BATON_TEST_AWS_ENDPOINT`,
//! started by scripts/test; in CI a missing endpoint fails the tests).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_cloudformation as cfn;
use aws_sdk_s3 as s3;
use baton_core::aws::Aws;
use baton_core::store::s3::S3Store;
use baton_core::{load_str, Format, Run};
use baton_lambda::{handle, Config, HandlerError, Input};

fn endpoint() -> Option<String> {
    match std::env::var("BATON_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "BATON_TEST_AWS_ENDPOINT is not set: run scripts/test"
            );
            None
        }
    }
}

fn creds() -> s3::config::Credentials {
    s3::config::Credentials::new("testing", "testing", None, None, "tests")
}

fn aws(endpoint: &str) -> Arc<Aws> {
    let s3c = s3::Client::from_conf(
        s3::Config::builder()
            .behavior_version(s3::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(s3::config::Region::new("us-east-1"))
            .credentials_provider(creds())
            .force_path_style(true)
            .build(),
    );
    let cfnc = cfn::Client::from_conf(
        cfn::Config::builder()
            .behavior_version(cfn::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(cfn::config::Region::new("us-east-1"))
            .credentials_provider(creds())
            .build(),
    );
    Aws::fixed(cfnc, s3c)
}

/// Creates a versioned bucket and a run in it; returns the run locator.
async fn new_run(aws: &Aws, plan_json: &str) -> String {
    let client = aws.s3(&Default::default()).await;
    let bucket = format!(
        "lambda-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
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
    let plan = load_str("plan.json", plan_json, Format::Json)
        .expect("valid plan")
        .plan;
    let store = S3Store::in_prefix(client, &bucket, "baton", "run-1");
    let (run, _, _) = Run::create(store, plan, "run-1", Default::default(), chrono::Utc::now())
        .await
        .expect("create run");
    use baton_core::RunStore;
    run.store.locator()
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

#[tokio::test]
async fn ticks_until_success_with_waits_in_between() {
    let Some(endpoint) = endpoint() else { return };
    let aws = aws(&endpoint);
    let run = new_run(
        &aws,
        r#"[{"label": "a", "type": "system.no_op"},
        {"label": "w", "type": "system.wait", "depends_on": ["a"], "params": {"seconds": 1}},
        {"label": "b", "type": "system.no_op", "depends_on": ["w"]}]"#,
    )
    .await;
    let config = Config::default();
    let first = handle(
        aws.clone(),
        Input {
            run: run.clone(),
            execution_ticks: 0,
        },
        deadline(),
        &config,
    )
    .await
    .expect("tick 1");
    assert_eq!(first.flow_control(), "wait");
    assert_eq!(first.wait_seconds(), 1);
    assert_eq!(first.invocations, 1);
    assert_eq!(first.status.as_str(), "waiting");
    // The output is what the state machine feeds back in.
    let again: Input = serde_json::from_value(serde_json::to_value(&first).expect("serialize"))
        .expect("round trip");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = handle(aws.clone(), again, deadline(), &config)
        .await
        .expect("tick 2");
    assert_eq!(second.flow_control(), "success");
    assert_eq!(second.execution_ticks, 2);
    assert_eq!(second.status.as_str(), "succeeded");
    assert!(
        serde_json::to_string(&second).expect("json").len() < 1024,
        "the payload stays a small pointer"
    );
}

#[tokio::test]
async fn continues_in_a_new_execution_past_the_tick_threshold() {
    let Some(endpoint) = endpoint() else { return };
    let aws = aws(&endpoint);
    let run = new_run(
        &aws,
        r#"[{"label": "w", "type": "system.wait", "params": {"seconds": 30}}]"#,
    )
    .await;
    let config = Config {
        continue_after: 3,
        ..Config::default()
    };
    let out = handle(
        aws.clone(),
        Input {
            run: run.clone(),
            execution_ticks: 1,
        },
        deadline(),
        &config,
    )
    .await
    .expect("tick");
    assert_eq!(out.flow_control(), "wait");
    let out = handle(
        aws.clone(),
        Input {
            run: run.clone(),
            execution_ticks: 2,
        },
        deadline(),
        &config,
    )
    .await
    .expect("tick");
    assert_eq!(out.flow_control(), "continue");
    // The new execution starts counting again.
    let out = handle(
        aws,
        Input {
            run,
            execution_ticks: 0,
        },
        deadline(),
        &config,
    )
    .await
    .expect("tick");
    assert_eq!((out.flow_control(), out.execution_ticks), ("wait", 1));
}

#[tokio::test]
async fn a_failed_run_reports_failure_and_the_budget_bounds_a_tick() {
    let Some(endpoint) = endpoint() else { return };
    let aws = aws(&endpoint);
    let run = new_run(
        &aws,
        r#"[{"label": "bad", "type": "system.fail", "params": {"message": "nope"}},
        {"label": "slow", "type": "system.wait", "params": {"seconds": 1}}]"#,
    )
    .await;
    // A deadline inside the safety margin: nothing new may start, so the tick says execute.
    let tight = Instant::now() + Duration::from_secs(5);
    let out = handle(
        aws.clone(),
        Input {
            run: run.clone(),
            execution_ticks: 0,
        },
        tight,
        &Config::default(),
    )
    .await
    .expect("tick");
    assert_eq!(out.flow_control(), "execute");
    let out = handle(
        aws.clone(),
        Input {
            run: run.clone(),
            execution_ticks: 1,
        },
        deadline(),
        &Config::default(),
    )
    .await
    .expect("tick");
    assert_eq!(out.flow_control(), "wait");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = handle(
        aws,
        Input {
            run,
            execution_ticks: 2,
        },
        deadline(),
        &Config::default(),
    )
    .await
    .expect("tick");
    assert_eq!(
        (out.flow_control(), out.status.as_str()),
        ("failure", "failed")
    );
}

#[tokio::test]
async fn errors_say_whether_a_retry_can_help() {
    let Some(endpoint) = endpoint() else { return };
    let aws = aws(&endpoint);
    let err = handle(
        aws.clone(),
        Input {
            run: "not-a-url".into(),
            execution_ticks: 0,
        },
        deadline(),
        &Config::default(),
    )
    .await
    .expect_err("bad payload");
    assert!(matches!(err, HandlerError::BadPayload(_)));
    assert_eq!(err.error_type(), "Baton.Fatal");
    let err = handle(
        aws,
        Input {
            run: "s3://no-such-bucket-anywhere/baton/runs/x".into(),
            execution_ticks: 0,
        },
        deadline(),
        &Config::default(),
    )
    .await
    .expect_err("missing run");
    assert_eq!(err.error_type(), "Baton.Fatal", "{err}");
    assert!(HandlerError::Conflict("c".into()).error_type() == "Baton.Retryable");
    // Another driver's live lease: Step Functions retries until it lapses (30 s; the retries
    // wait 5, 10, 20, 40 and 80 s).
    let busy = HandlerError::from(baton_core::RunError::Store(baton_core::StoreError::Busy {
        locator: "s3://b/p/runs/r".into(),
        holder: " (baton pid 7 on elsewhere)".into(),
    }));
    assert_eq!(busy.error_type(), "Baton.Retryable", "{busy}");
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
    let routes: Vec<(&str, &str)> = states["Route"]["Choices"]
        .as_sequence()
        .expect("choices")
        .iter()
        .map(|c| {
            (
                c["StringEquals"].as_str().unwrap_or_default(),
                c["Next"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        vec![
            ("execute", "Tick"),
            ("wait", "Pause"),
            ("success", "Succeeded"),
            ("continue", "ContinueAsNew")
        ]
    );
    assert_eq!(states["Route"]["Default"].as_str(), Some("RunFailed"));
    assert_eq!(
        states["Pause"]["SecondsPath"].as_str(),
        Some("$.wait_seconds")
    );
    assert_eq!(states["Pause"]["Next"].as_str(), Some("Tick"));
    assert_eq!(states["RunFailed"]["CausePath"].as_str(), Some("$.summary"));
    assert_eq!(
        states["ContinueAsNew"]["Parameters"]["StateMachineArn.$"].as_str(),
        Some("$$.StateMachine.Id")
    );
    // Every field the definition reads exists in the handler's output.
    let output = serde_json::to_value(baton_lambda::Output {
        run: String::new(),
        run_id: String::new(),
        state_version: String::new(),
        next: baton_core::Next::Wait(std::time::Duration::from_secs(1)),
        invocations: 0,
        execution_ticks: 0,
        status: baton_core::RunStatus::Waiting,
        summary: "x".into(),
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
    ] {
        assert!(output.get(field).is_some(), "output lacks {field}");
    }
}
