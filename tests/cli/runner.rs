//! The runner's deployment (cloudformation/runner.yaml) deployed into a moto of its own with
//! IAM enforcement on: the tick function's role drives a run in the state bucket with exactly
//! the template's permissions, assumes the roles the template names for `account` and
//! `role_arn` (`DeployerRoleName`, `AssumableRoleArns`) and no other, and reads nothing outside
//! its prefix. moto checks resources for STS and S3 (not for CloudFormation calls, which it
//! matches against `*` only), so those are what this proves; the template's shape is checked in
//! lambda/tests/handler.rs.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_cloudformation as cfn;
use serde_json::json;

use crate::common::*;
use crate::moto::*;

const ACCOUNT: &str = "123456789012";

/// A moto server for one test (IAM enforcement is server-wide), ended when dropped.
struct PrivateMoto {
    child: Child,
    endpoint: String,
}

impl PrivateMoto {
    /// `None` (skip) without the venv's python; in CI that is a failure.
    fn start() -> Option<PrivateMoto> {
        let python = match std::env::var("BATON_TEST_MOTO_PYTHON") {
            Ok(python) if !python.is_empty() => python,
            _ => {
                assert!(
                    std::env::var("CI").is_err(),
                    "BATON_TEST_MOTO_PYTHON is not set: run the tests with scripts/test"
                );
                eprintln!("skipping: no moto to start (run scripts/test)");
                return None;
            }
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(python)
            .arg(repo().join("scripts/moto_server_patched.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let moto = PrivateMoto {
            child,
            endpoint: format!("http://localhost:{port}"),
        };
        let started = Instant::now();
        while moto.post("/moto-api/reset", "").is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// POSTs `body` to moto's own API; `None` if nothing answers yet.
    fn post(&self, path: &str, body: &str) -> Option<String> {
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address.replace("localhost", "127.0.0.1")).ok()?;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    /// From now on every request must be signed by a known principal and allowed by its policies.
    fn enforce_iam(&self) {
        let answer = self.post("/moto-api/reset-auth", "0").expect("reset-auth");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}

impl Drop for PrivateMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn deploy(client: &cfn::Client, name: &str, body: &str, parameters: &[(&str, &str)]) {
    let parameters = parameters
        .iter()
        .map(|(k, v)| {
            cfn::types::Parameter::builder()
                .parameter_key(*k)
                .parameter_value(*v)
                .build()
        })
        .collect();
    client
        .create_stack()
        .stack_name(name)
        .template_body(body)
        .set_parameters(Some(parameters))
        .capabilities(cfn::types::Capability::CapabilityIam)
        .capabilities(cfn::types::Capability::CapabilityNamedIam)
        .send()
        .await
        .expect("create stack");
    let described = client
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .expect("describe");
    let status = described.stacks()[0].stack_status().cloned();
    assert_eq!(
        status,
        Some(cfn::types::StackStatus::CreateComplete),
        "{name}: {described:?}"
    );
}

async fn physical_id(client: &cfn::Client, stack: &str, logical: &str) -> String {
    let resources = client
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .expect("resources");
    resources
        .stack_resources()
        .iter()
        .find(|r| r.logical_resource_id() == Some(logical))
        .and_then(|r| r.physical_resource_id())
        .unwrap_or_else(|| panic!("{stack} has no {logical}"))
        .to_string()
}

/// Roles in the account that trust anyone (the test's stand-in for "trusts the tick role") and
/// may describe stacks: the ones the runner may assume and one it may not.
fn target_roles() -> String {
    let role = |name: &str| {
        json!({"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": name,
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": "describe", "PolicyDocument": {"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "cloudformation:DescribeStacks", "Resource": "*"}]}}]
        }})
    };
    json!({"Resources": {
        "Deployer": role("custom-deployer"),
        "Listed": role("listed-role"),
        "Other": role("other-role"),
    }})
    .to_string()
}

/// Session credentials of `role_arn`, through STS.
async fn assume(endpoint: &str, role_arn: &str) -> aws_credential_types::Credentials {
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(creds())
        .load()
        .await;
    aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name("tick")
        .configure(&base)
        .build()
        .await
        .provide_credentials()
        .await
        .expect("assume the tick role")
}

/// An S3 run (created with the account's root credentials) whose actions reach AWS through a
/// deployer named by `account`, a role listed in `AssumableRoleArns`, and a role not listed.
async fn create_run(endpoint: &str, bucket: &str) {
    let client = s3_client(endpoint);
    // moto's CloudFormation does not apply VersioningConfiguration; AWS does.
    let enabled = aws_sdk_s3::types::VersioningConfiguration::builder()
        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
        .build();
    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(enabled)
        .send()
        .await
        .expect("versioning");
    let gone = "baton-managed-gone";
    let plan = json!([
        {"label": "by-account", "type": "aws.delete_stack",
         "params": {"stack_name": gone, "account": ACCOUNT}},
        {"label": "by-listed-role", "type": "aws.delete_stack",
         "params": {"stack_name": gone, "role_arn": format!("arn:aws:iam::{ACCOUNT}:role/listed-role")}},
        {"label": "by-other-role", "type": "aws.delete_stack",
         "params": {"stack_name": gone, "role_arn": format!("arn:aws:iam::{ACCOUNT}:role/other-role")}}
    ]);
    let loaded = baton_core::load_str("plan.json", &plan.to_string(), baton_core::Format::Json)
        .expect("plan");
    let store = baton_core::store::s3::S3Store::in_prefix(client, bucket, "baton", "r1");
    baton_core::Run::create(
        store,
        loaded.plan,
        "r1",
        Default::default(),
        chrono::Utc::now(),
    )
    .await
    .expect("create run");
}

#[test]
fn the_tick_role_drives_runs_and_assumes_exactly_the_roles_the_template_names() {
    let Some(moto) = PrivateMoto::start() else {
        return;
    };
    let endpoint = moto.endpoint.clone();
    let rt = rt();
    let (bucket, tick) = rt.block_on(async {
        let s3 = s3_client(&endpoint);
        bucket(&s3, "code", false).await;
        s3.put_object()
            .bucket("code")
            .key("baton.zip")
            .body(
                b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
                    .to_vec()
                    .into(),
            )
            .send()
            .await
            .expect("code");
        let cfn = cfn_client(&endpoint);
        let template = std::fs::read_to_string(repo().join("cloudformation/runner.yaml"))
            .expect("runner.yaml");
        let listed = format!("arn:aws:iam::{ACCOUNT}:role/listed-role");
        deploy(
            &cfn,
            "runner",
            &template,
            &[
                ("CodeBucket", "code"),
                ("CodeKey", "baton.zip"),
                ("DeployerRoleName", "custom-deployer"),
                ("AssumableRoleArns", &listed),
            ],
        )
        .await;
        deploy(&cfn, "targets", &target_roles(), &[]).await;
        let bucket = physical_id(&cfn, "runner", "StateBucket").await;
        let role = physical_id(&cfn, "runner", "TickFunctionRole").await;
        create_run(&endpoint, &bucket).await;
        let tick = assume(&endpoint, &format!("arn:aws:iam::{ACCOUNT}:role/{role}")).await;
        (bucket, tick)
    });
    moto.enforce_iam();

    let scratch = Scratch::new();
    let as_tick = |args: &[&str]| {
        let mut cmd = aws_cmd(&scratch, &endpoint);
        cmd.env("AWS_ACCESS_KEY_ID", tick.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", tick.secret_access_key())
            .env(
                "AWS_SESSION_TOKEN",
                tick.session_token().unwrap_or_default(),
            )
            // What the template sets on the function (lambda/tests checks the mapping).
            .env("BATON_ROLE_NAME", "custom-deployer")
            .args(args)
            .output()
            .expect("run baton")
    };
    let run = format!("s3://{bucket}/baton/runs/r1");
    let out = as_tick(&["resume", &run, "--plain"]);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let out = as_tick(&["status", &run, "--json"]);
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let status = json(&out);
    let actions = &status["actions"];
    assert_eq!(actions["by-account"]["status"], "complete", "{status:#}");
    assert_eq!(
        actions["by-listed-role"]["status"], "complete",
        "{status:#}"
    );
    assert_eq!(actions["by-other-role"]["status"], "failed", "{status:#}");
    let error = actions["by-other-role"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains(&format!(
            "cannot assume role arn:aws:iam::{ACCOUNT}:role/other-role (sts:AssumeRole): AccessDenied: "
        )),
        "{error}"
    );
    // Refused by IAM: trying again cannot help, so the action failed once.
    assert_eq!(actions["by-other-role"]["attempts"], 1, "{status:#}");
    // Nothing outside the runner's prefix is readable to it.
    let out = as_tick(&["status", &format!("s3://{bucket}/elsewhere/runs/r1")]);
    assert_eq!(code(&out), 3, "{}", describe(&out));
    assert!(stderr(&out).contains("Access Denied"), "{}", describe(&out));
}
