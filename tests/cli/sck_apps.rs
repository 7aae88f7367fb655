//! Simple Cloud Kit sample applications, end to end against moto (started by scripts/test):
//! each app's `deploy`, `release` and `teardown` action files, read in place from the SCK
//! corpus (`$BATON_SCK_CORPUS`, else `../shared/sck` beside the repository; absent, the test
//! says so and passes), run one after the other with `baton run`, with stand-in CloudFormation
//! templates at their `TemplateUrl`s and status hooks published to an SNS topic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::common::*;
use crate::hooks::{drain, topic_with_queue};
use crate::moto::*;

const APPS: &[&str] = &[
    "s3-storage-quickstart",
    "dynamodb-payperrequest",
    "s3-bucket-lifecycle",
];
const PHASES: [&str; 3] = ["deploy", "release", "teardown"];
/// The account whose stacks the test looks at (moto's default; the files' deployer role is
/// assumed in it).
const ACCOUNT: &str = "123456789012";

fn corpus() -> Option<PathBuf> {
    let dir = match std::env::var("BATON_SCK_CORPUS") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo().join("../shared/sck"),
    };
    dir.join("per-app").is_dir().then_some(dir)
}

/// An action of an SCK file: its label, kind and spec.
struct SckAction {
    label: String,
    kind: String,
    spec: Value,
}

fn read_actions(path: &std::path::Path) -> Vec<SckAction> {
    let text = std::fs::read_to_string(path).expect("read the action file");
    let items: Vec<Value> = serde_yaml::from_str(&text).expect("YAML");
    items
        .into_iter()
        .map(|a| {
            let text = |k1: &str, k2: &str| {
                a.get(k1)
                    .or_else(|| a.get(k2))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            SckAction {
                label: text("Label", "Name"),
                kind: text("Type", "Kind"),
                spec: a
                    .get("Spec")
                    .or_else(|| a.get("Params"))
                    .cloned()
                    .unwrap_or(Value::Null),
            }
        })
        .collect()
}

fn namespace(label: &str) -> &str {
    label.split(":action/").next().unwrap_or_default()
}

/// Every `'<key>' | lookup` read in a file's text.
fn lookups(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (i, _) in text.match_indices("' | lookup") {
        if let Some(start) = text[..i].rfind('\'') {
            keys.insert(text[start + 1..i].to_string());
        }
    }
    keys
}

/// A stand-in template: the parameters its stacks are given, and the outputs later lookups
/// read (`key`, a real KMS key, for `KmsKeyArn`, which the grants use; a parameter's value when one
/// has the output's name; the build for `Build`; otherwise a literal).
fn stand_in(
    params: &BTreeSet<String>,
    outputs: &BTreeSet<String>,
    build: &str,
    key: &str,
) -> String {
    let mut resources = serde_json::Map::new();
    resources.insert(
        "Handle".into(),
        json!({"Type": "AWS::CloudFormation::WaitConditionHandle"}),
    );
    let mut outs = serde_json::Map::new();
    for name in outputs {
        let value = if name == "KmsKeyArn" {
            json!(key)
        } else if params.contains(name) {
            json!({"Ref": name})
        } else if name == "Build" {
            json!(build)
        } else {
            json!(format!("stand-in-{name}"))
        };
        outs.insert(name.clone(), json!({"Value": value}));
    }
    let parameters: serde_json::Map<String, Value> = params
        .iter()
        .map(|p| (p.clone(), json!({"Type": "String", "Default": ""})))
        .collect();
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": parameters,
        "Resources": resources,
        "Outputs": outs,
    })
    .to_string()
}

/// The app's templates (`s3://bucket/key` → body) and the buckets its actions write to.
fn templates(
    actions: &[SckAction],
    texts: &str,
    key: &str,
) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let mut params: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut outputs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut by_stack: BTreeMap<String, String> = BTreeMap::new();
    let mut buckets = BTreeSet::new();
    let mut build = String::new();
    for a in actions.iter().filter(|a| a.kind == "AWS::CreateStack") {
        let url = a.spec["TemplateUrl"]
            .as_str()
            .expect("TemplateUrl")
            .to_string();
        let entry = params.entry(url.clone()).or_default();
        if let Some(given) = a.spec["StackParameters"].as_object() {
            entry.extend(given.keys().cloned());
        }
        outputs.entry(url.clone()).or_default();
        by_stack.insert(a.spec["StackName"].as_str().unwrap_or_default().into(), url);
        build = namespace(&a.label)
            .split(':')
            .nth(4)
            .unwrap_or_default()
            .to_string();
    }
    for a in actions {
        if let Some(bucket) = a
            .spec
            .get("Bucket")
            .or_else(|| a.spec.get("BucketName"))
            .and_then(Value::as_str)
        {
            buckets.insert(bucket.to_string());
        }
    }
    for key in lookups(texts) {
        if let Some((ns, name)) = key.split_once(":output/") {
            // Outputs saved by the namespace's stacks.
            for a in actions
                .iter()
                .filter(|a| a.kind == "AWS::CreateStack" && namespace(&a.label) == ns)
            {
                let url = a.spec["TemplateUrl"].as_str().unwrap_or_default();
                outputs.entry(url.into()).or_default().insert(name.into());
            }
        } else if let Some((ns, rest)) = key.split_once(":var/") {
            let Some((path, name)) = rest.rsplit_once('/') else {
                continue;
            };
            let reader = format!("{ns}:action/{path}");
            let stack = actions
                .iter()
                .find(|a| a.label == reader && a.kind == "AWS::GetStackOutputs")
                .and_then(|a| a.spec["StackName"].as_str());
            if let Some(url) = stack.and_then(|s| by_stack.get(s)) {
                outputs.entry(url.clone()).or_default().insert(name.into());
            }
        }
    }
    let bodies = params
        .iter()
        .map(|(url, p)| (url.clone(), stand_in(p, &outputs[url], &build, key)))
        .collect();
    (bodies, buckets)
}

async fn stage(endpoint: &str, bodies: &BTreeMap<String, String>, buckets: &BTreeSet<String>) {
    let s3 = s3_client(endpoint);
    let mut all: BTreeSet<String> = buckets.clone();
    for url in bodies.keys() {
        let (bucket, _) = url["s3://".len()..]
            .split_once('/')
            .expect("s3://bucket/key");
        all.insert(bucket.into());
    }
    for bucket in &all {
        // Already there from an earlier app: fine.
        let _ = s3.create_bucket().bucket(bucket).send().await;
    }
    for (url, body) in bodies {
        let (bucket, key) = url["s3://".len()..]
            .split_once('/')
            .expect("s3://bucket/key");
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(body.clone().into_bytes().into())
            .send()
            .await
            .expect("upload a stand-in template");
    }
}

/// A KMS key where the app's grants are made (moto keeps keys per account): created with the
/// deployer role assumed there, as baton does.
async fn grants_key(endpoint: &str, actions: &[SckAction]) -> String {
    let grants = actions
        .iter()
        .find(|a| a.kind == "AWS::KMS::CreateGrants")
        .expect("a KMS::CreateGrants action");
    let account = grants.spec["Account"].as_str().expect("Account");
    let region = grants.spec["Region"].as_str().expect("Region").to_string();
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(creds())
        .load()
        .await;
    let role = format!("arn:aws:iam::{account}:role/baton-deployer");
    let provider = aws_config::sts::AssumeRoleProvider::builder(role)
        .session_name("sck-apps")
        .configure(&base)
        .build()
        .await;
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_kms::config::Region::new(region))
            .credentials_provider(provider)
            .build(),
    );
    let key = kms.create_key().send().await.expect("create a key");
    key.key_metadata()
        .and_then(|k| k.arn())
        .expect("key arn")
        .to_string()
}

/// The stack's status in the test account, `None` when it does not exist (or is deleted).
async fn stack_status(endpoint: &str, region: &str, name: &str) -> Option<String> {
    let cfn = aws_sdk_cloudformation::Client::from_conf(
        aws_sdk_cloudformation::Config::builder()
            .behavior_version(aws_sdk_cloudformation::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_cloudformation::config::Region::new(
                region.to_string(),
            ))
            .credentials_provider(creds())
            .build(),
    );
    let got = cfn.describe_stacks().stack_name(name).send().await.ok()?;
    let status = got.stacks().first()?.stack_status()?.as_str().to_string();
    (status != "DELETE_COMPLETE").then_some(status)
}

#[test]
fn sample_applications_deploy_release_and_tear_down() {
    let Some(endpoint) = endpoint() else { return };
    let Some(corpus) = corpus() else {
        eprintln!("skipping: no SCK corpus (set BATON_SCK_CORPUS or put it at ../shared/sck)");
        return;
    };
    let started = std::time::Instant::now();
    let (topic, queue) = rt().block_on(topic_with_queue(&endpoint));
    let sink = format!("sns:{topic}");
    let scratch = Scratch::new();
    let mut published = 0;
    for app in APPS {
        let dir = corpus.join("per-app").join(app);
        let files: Vec<PathBuf> = PHASES
            .iter()
            .map(|p| dir.join(format!("{p}.actions")))
            .collect();
        let texts: String = files
            .iter()
            .map(|f| std::fs::read_to_string(f).expect("read"))
            .collect();
        let actions: Vec<SckAction> = files.iter().flat_map(|f| read_actions(f)).collect();
        let key = rt().block_on(grants_key(&endpoint, &actions));
        let (bodies, buckets) = templates(&actions, &texts, &key);
        rt().block_on(stage(&endpoint, &bodies, &buckets));
        // The stacks each phase leaves, in the test account.
        let stacks = |phase: &str| -> Vec<(String, String)> {
            read_actions(&dir.join(format!("{phase}.actions")))
                .into_iter()
                .filter(|a| a.kind == "AWS::CreateStack" && a.spec["Account"] == ACCOUNT)
                .map(|a| {
                    (
                        a.spec["Region"].as_str().unwrap_or("us-east-1").to_string(),
                        a.spec["StackName"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        };
        for (phase, file) in PHASES.iter().zip(&files) {
            let run_id = unique(&format!("{app}-{phase}"));
            let file = file.to_str().expect("path");
            let args = ["run", file, "--json", "--run-id", &run_id, "--hooks", &sink];
            let out = baton_aws(&scratch, &endpoint, &args);
            assert_eq!(code(&out), 0, "{app} {phase}: {}", describe(&out));
            let summary = json(&out);
            assert_eq!(summary["status"], "succeeded", "{app} {phase}: {summary:#}");
            let messages = rt().block_on(drain(&endpoint, &queue));
            let statuses: BTreeSet<&str> = messages
                .iter()
                .filter_map(|m| m["status"].as_str())
                .collect();
            let upper = phase.to_uppercase();
            for want in [format!("{upper}_IN_PROGRESS"), format!("{upper}_COMPLETE")] {
                assert!(
                    statuses.contains(want.as_str()),
                    "{app} {phase}: no {want} among {statuses:?}"
                );
            }
            assert!(messages.iter().all(|m| m["run_id"] == run_id.as_str()));
            published += messages.len();
            if *phase != "teardown" {
                for (region, name) in stacks(phase) {
                    let status = rt().block_on(stack_status(&endpoint, &region, &name));
                    assert!(status.is_some(), "{app} {phase}: stack {name} is missing");
                }
            }
        }
        for phase in ["deploy", "release"] {
            for (region, name) in stacks(phase) {
                let status = rt().block_on(stack_status(&endpoint, &region, &name));
                assert_eq!(
                    status, None,
                    "{app}: stack {name} is still there after teardown"
                );
            }
        }
    }
    eprintln!(
        "{} sample applications deployed, released and torn down in {:.1} s; {published} status hooks published",
        APPS.len(),
        started.elapsed().as_secs_f64()
    );
}
