//! Helpers for tests against moto (started by scripts/test): the endpoint, unique names,
//! SDK clients with test credentials, buckets.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_cloudformation as cfn;
use aws_sdk_s3 as s3;
use aws_sdk_sfn as sfn;

use crate::common::Scratch;

/// The moto endpoint, or `None` to skip. In CI a missing endpoint is a failure.
pub fn endpoint() -> Option<String> {
    match std::env::var("BATON_TEST_AWS_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "BATON_TEST_AWS_ENDPOINT is not set: run the tests with scripts/test, which starts moto"
            );
            eprintln!("skipping: no AWS emulator (run scripts/test)");
            None
        }
    }
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn creds() -> s3::config::Credentials {
    s3::config::Credentials::new("testing", "testing", None, None, "tests")
}

pub fn s3_client(endpoint: &str) -> s3::Client {
    let conf = s3::Config::builder()
        .behavior_version(s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(s3::config::Region::new("us-east-1"))
        .credentials_provider(creds())
        .force_path_style(true)
        .build();
    s3::Client::from_conf(conf)
}

pub fn cfn_client(endpoint: &str) -> cfn::Client {
    let conf = cfn::Config::builder()
        .behavior_version(cfn::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(cfn::config::Region::new("us-east-1"))
        .credentials_provider(creds())
        .build();
    cfn::Client::from_conf(conf)
}

pub async fn bucket(client: &s3::Client, name: &str, versioned: bool) {
    client
        .create_bucket()
        .bucket(name)
        .send()
        .await
        .expect("create bucket");
    if versioned {
        let config = s3::types::VersioningConfiguration::builder()
            .status(s3::types::BucketVersioningStatus::Enabled)
            .build();
        client
            .put_bucket_versioning()
            .bucket(name)
            .versioning_configuration(config)
            .send()
            .await
            .expect("versioning");
    }
}

pub fn sfn_client(endpoint: &str) -> sfn::Client {
    sfn::Client::from_conf(
        sfn::Config::builder()
            .behavior_version(sfn::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(sfn::config::Region::new("us-east-1"))
            .credentials_provider(creds())
            .build(),
    )
}

/// A `baton` command with moto's endpoint and test credentials.
pub fn aws_cmd(scratch: &Scratch, endpoint: &str) -> std::process::Command {
    let mut cmd = scratch.cmd();
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
    cmd
}

/// `baton` with moto's endpoint and test credentials.
pub fn baton_aws(scratch: &Scratch, endpoint: &str, args: &[&str]) -> std::process::Output {
    aws_cmd(scratch, endpoint)
        .args(args)
        .output()
        .expect("run baton")
}

/// Every stored version of an S3 run still parses against its plan (nothing half-written),
/// and there is at least one; returns the newest state.
pub fn every_version_parses(
    endpoint: &str,
    bucket: &str,
    prefix: &str,
    run_id: &str,
) -> baton_core::RunState {
    use baton_core::store::s3::S3Store;
    use baton_core::{Run, RunStore};
    rt().block_on(async {
        let store = S3Store::in_prefix(s3_client(endpoint), bucket, prefix, run_id);
        let run = Run::open(store).await.expect("the plan reads back");
        let versions = run.store.list_versions().await.expect("list versions");
        assert!(!versions.is_empty());
        for v in &versions {
            run.load_version(&v.version)
                .await
                .unwrap_or_else(|e| panic!("version {} is damaged: {e}", v.version));
        }
        run.load().await.expect("latest").0
    })
}

/// Waits (up to 20 s) until `check` holds for the run's `status --json`.
pub fn wait_for_status(
    scratch: &Scratch,
    endpoint: &str,
    store: &str,
    run_id: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = aws_cmd(scratch, endpoint)
            .args(["status", run_id, "--json", "--store", store])
            .output()
            .expect("status");
        if let Ok(status) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            if check(&status) {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never reached the expected state"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `$name(endpoint)`: a `$sdk` client for moto with the test credentials.
macro_rules! moto_client {
    ($name:ident, $sdk:ident) => {
        pub fn $name(endpoint: &str) -> $sdk::Client {
            $sdk::Client::from_conf(
                $sdk::Config::builder()
                    .behavior_version($sdk::config::BehaviorVersion::latest())
                    .endpoint_url(endpoint)
                    .region($sdk::config::Region::new("us-east-1"))
                    .credentials_provider(creds())
                    .build(),
            )
        }
    };
}

moto_client!(ec2_client, aws_sdk_ec2);
moto_client!(kms_client, aws_sdk_kms);
moto_client!(rds_client, aws_sdk_rds);
moto_client!(cloudfront_client, aws_sdk_cloudfront);
moto_client!(elbv2_client, aws_sdk_elasticloadbalancingv2);
moto_client!(iam_client, aws_sdk_iam);
moto_client!(sns_client, aws_sdk_sns);
moto_client!(sqs_client, aws_sdk_sqs);
moto_client!(events_client, aws_sdk_eventbridge);
moto_client!(ecs_client, aws_sdk_ecs);
moto_client!(logs_client, aws_sdk_cloudwatchlogs);

/// What commands run as ECS tasks need: cluster `cluster`, log group `group` and task
/// definition `family`, whose one container `container` logs to the group (awslogs, streams
/// `cmd/<container>/<task id>`). A cluster or log group that exists already is used as it is.
pub async fn command_task_setup(
    endpoint: &str,
    cluster: &str,
    family: &str,
    group: &str,
    container: &str,
) -> (aws_sdk_ecs::Client, aws_sdk_cloudwatchlogs::Client) {
    use aws_sdk_ecs::types::{ContainerDefinition, LogConfiguration, LogDriver};
    let ecs = ecs_client(endpoint);
    let logs = logs_client(endpoint);
    ecs.create_cluster()
        .cluster_name(cluster)
        .send()
        .await
        .expect("create cluster");
    if let Err(e) = logs.create_log_group().log_group_name(group).send().await {
        let exists = e
            .as_service_error()
            .is_some_and(|e| e.is_resource_already_exists_exception());
        assert!(exists, "create log group {group}: {e:?}");
    }
    let log_config = LogConfiguration::builder()
        .log_driver(LogDriver::Awslogs)
        .options("awslogs-group", group)
        .options("awslogs-stream-prefix", "cmd")
        .options("awslogs-region", "us-east-1")
        .build()
        .expect("log configuration");
    let container = ContainerDefinition::builder()
        .name(container)
        .image("public.ecr.aws/docker/library/busybox:latest")
        .memory(128)
        .essential(true)
        .log_configuration(log_config)
        .build();
    ecs.register_task_definition()
        .family(family)
        .container_definitions(container)
        .send()
        .await
        .expect("register task definition");
    (ecs, logs)
}

/// AWS access for an executor in this process: every service's client goes to moto.
pub fn moto_aws(endpoint: &str) -> std::sync::Arc<baton_core::aws::Aws> {
    baton_core::aws::Aws::fixed_with(
        cfn_client(endpoint),
        s3_client(endpoint),
        baton_core::aws::Services {
            ec2: Some(ec2_client(endpoint)),
            kms: Some(kms_client(endpoint)),
            rds: Some(rds_client(endpoint)),
            cloudfront: Some(cloudfront_client(endpoint)),
            elbv2: Some(elbv2_client(endpoint)),
            iam: Some(iam_client(endpoint)),
            ecs: Some(ecs_client(endpoint)),
            logs: Some(logs_client(endpoint)),
        },
    )
}
