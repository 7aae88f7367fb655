//! Status hooks (`LifecycleHooks` of SCK action files) against moto (started by
//! scripts/test): `baton run --hooks sns:<topic>` publishes what fired to a topic, read back
//! through a queue subscribed to it; a publish that fails is logged and the run goes on.

use serde_json::{json, Value};

use crate::common::*;
use crate::moto::*;

/// An SCK-format file: variables, an action whose hook reads them through `lookup`, and an
/// action that fails (its own branch: the others go on).
const HOOKED: &str = r#"
- Label: "prn:shop:web:main:9:action/deploy/main/settings"
  Type: System::SetVariables
  Params:
    Variables:
      Colour: teal
  LifecycleHooks:
    - Type: status
      States: [Running, Complete, Failed]
      Parameters:
        OnRunning: {Status: DEPLOY_IN_PROGRESS, Message: "Choosing settings"}
        OnComplete: {Status: DEPLOY_IN_PROGRESS, Message: "Settings chosen"}
        OnFailed: {Status: DEPLOY_FAILED, Message: "No settings"}
        Identity: "prn:shop:web:main:9"
        Details: {Scope: build, Environment: "{{ vars.env }}"}
- Label: "prn:shop:web:main:9:action/deploy/main/paint"
  Type: System::NoOp
  DependsOn: ["prn:shop:web:main:9:action/deploy/main/settings"]
  LifecycleHooks:
    - Type: status
      States: [Complete]
      Parameters:
        OnComplete:
          Status: DEPLOY_COMPLETE
          Message: "Painted {{ 'prn:shop:web:main:9:var/deploy/main/settings/Colour' | lookup }}"
        Identity: "prn:shop:web:main:9"
"#;

const FAILING: &str = r#"
- Label: "prn:shop:web:main:9:action/deploy/main/broken"
  Type: System::Fail
  Params: {Message: "the disk is full"}
  LifecycleHooks:
    - Type: status
      States: [Running, Complete, Failed]
      Parameters:
        OnRunning: {Status: DEPLOY_IN_PROGRESS, Message: "Breaking"}
        OnFailed: {Status: DEPLOY_FAILED, Message: "Broke"}
        Identity: "prn:shop:web:main:9:broken"
"#;

/// Hooks that render a secret into every field they publish.
const SECRETIVE: &str = r#"
- Label: "prn:shop:web:main:9:action/deploy/main/login"
  Type: System::NoOp
  LifecycleHooks:
    - Type: status
      States: [Complete]
      Parameters:
        OnComplete:
          Status: "LOGGED_IN_{{ vars.db_password }}"
          Message: "Logged in with {{ vars.db_password }}"
        Identity: "prn:shop:web:main:9:{{ vars.db_password }}"
        Details: {DbPassword: "{{ vars.db_password }}", Note: "used {{ vars.db_password }}"}
"#;

/// A new SQS queue: its URL and ARN.
async fn queue(endpoint: &str, name: &str) -> (String, String) {
    let url = sqs_client(endpoint)
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("queue url")
        .to_string();
    (url, format!("arn:aws:sqs:us-east-1:123456789012:{name}"))
}

/// A topic and a queue subscribed to it (raw delivery: the body is the hook's JSON).
pub(crate) async fn topic_with_queue(endpoint: &str) -> (String, String) {
    let name = unique("hooks");
    let topic = sns_client(endpoint)
        .create_topic()
        .name(&name)
        .send()
        .await
        .expect("topic")
        .topic_arn()
        .expect("topic arn")
        .to_string();
    let (queue_url, queue_arn) = queue(endpoint, &name).await;
    sns_client(endpoint)
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .expect("subscribe");
    (topic, queue_url)
}

/// A queue that receives every event with source `baton` on the default EventBridge bus.
async fn bus_with_queue(endpoint: &str) -> String {
    let name = unique("bus-hooks");
    let (queue_url, queue_arn) = queue(endpoint, &name).await;
    let events = events_client(endpoint);
    events
        .put_rule()
        .name(&name)
        .event_pattern(r#"{"source": ["baton"]}"#)
        .send()
        .await
        .expect("rule");
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("queue")
        .arn(queue_arn)
        .build()
        .expect("target");
    events
        .put_targets()
        .rule(&name)
        .targets(target)
        .send()
        .await
        .expect("targets");
    queue_url
}

/// Every message on the queue, as JSON.
pub(crate) async fn drain(endpoint: &str, queue_url: &str) -> Vec<Value> {
    let sqs = sqs_client(endpoint);
    let mut messages = Vec::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        if got.messages().is_empty() {
            return messages;
        }
        for message in got.messages() {
            let body = message.body().unwrap_or_default();
            messages.push(serde_json::from_str(body).expect("a hook's JSON"));
            if let Some(handle) = message.receipt_handle() {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }
}

/// `baton run FILE --json --run-id RUN_ID --hooks SINK [--var VAR]` against moto.
fn run_hooked(
    scratch: &Scratch,
    endpoint: &str,
    file: &str,
    run_id: &str,
    sink: &str,
    var: Option<&str>,
) -> std::process::Output {
    let mut args = vec!["run", file, "--json", "--run-id", run_id, "--hooks", sink];
    args.extend(var.iter().flat_map(|var| ["--var", var]));
    baton_aws(scratch, endpoint, &args)
}

/// What the hooks of `HOOKED` say, as `said` lists it.
const HOOKED_SAYS: [(&str, &str, &str, &str); 3] = [
    ("paint", "Complete", "DEPLOY_COMPLETE", "Painted teal"),
    (
        "settings",
        "Complete",
        "DEPLOY_IN_PROGRESS",
        "Settings chosen",
    ),
    (
        "settings",
        "Running",
        "DEPLOY_IN_PROGRESS",
        "Choosing settings",
    ),
];

fn owned(said: &[(&str, &str, &str, &str)]) -> Vec<(String, String, String, String)> {
    said.iter()
        .map(|&(a, b, c, d)| (a.into(), b.into(), c.into(), d.into()))
        .collect()
}

fn said(messages: &[Value]) -> Vec<(String, String, String, String)> {
    let text = |m: &Value, k: &str| m[k].as_str().unwrap_or_default().to_string();
    let mut said: Vec<_> = messages
        .iter()
        .map(|m| {
            let label = text(m, "label");
            let short = label.rsplit('/').next().unwrap_or_default().to_string();
            (
                short,
                text(m, "state"),
                text(m, "status"),
                text(m, "message"),
            )
        })
        .collect();
    said.sort();
    said
}

#[test]
fn status_hooks_are_published_to_an_sns_topic() {
    let Some(endpoint) = endpoint() else { return };
    let (topic, queue) = rt().block_on(topic_with_queue(&endpoint));
    let scratch = Scratch::new();
    scratch.write("hooked.actions", HOOKED);
    scratch.write("failing.actions", FAILING);
    let sink = format!("sns:{topic}");
    let run_id = unique("hooked");
    let out = run_hooked(
        &scratch,
        &endpoint,
        "hooked.actions",
        &run_id,
        &sink,
        Some("env=staging"),
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let messages = rt().block_on(drain(&endpoint, &queue));
    assert_eq!(said(&messages), owned(&HOOKED_SAYS), "{messages:#?}");
    let first = messages
        .iter()
        .find(|m| m["label"].as_str().is_some_and(|l| l.ends_with("settings")))
        .expect("settings' hook");
    assert_eq!(first["identity"], "prn:shop:web:main:9");
    assert_eq!(
        first["details"],
        json!({"Scope": "build", "Environment": "staging"})
    );
    assert_eq!(first["run_id"], run_id.as_str());
    assert_eq!(first["attempt"], 1);
    assert_eq!(first["dedupe_id"].as_str().map(str::len), Some(32));
    let ids: std::collections::HashSet<_> =
        messages.iter().map(|m| m["dedupe_id"].clone()).collect();
    assert_eq!(
        ids.len(),
        messages.len(),
        "every hook has its own dedupe id"
    );
    // Recorded in the action's log thread and the run's.
    let paint = "prn:shop:web:main:9:action/deploy/main/paint";
    let log = stdout(&scratch.exits(&["logs", &run_id, paint], 0));
    assert!(
        log.contains("hook status DEPLOY_COMPLETE for prn:shop:web:main:9: Painted teal"),
        "{log}"
    );
    let run_log = stdout(&scratch.exits(&["logs", &run_id], 0));
    assert!(
        run_log.contains("status hooks publish to sns:"),
        "{run_log}"
    );
    assert!(
        run_log.contains("paint: hook status DEPLOY_COMPLETE"),
        "{run_log}"
    );

    // A failure: its hook says so, with the action's own error.
    let run_id = unique("failing");
    let out = run_hooked(&scratch, &endpoint, "failing.actions", &run_id, &sink, None);
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let messages = rt().block_on(drain(&endpoint, &queue));
    assert_eq!(
        said(&messages),
        owned(&[
            (
                "broken",
                "Failed",
                "DEPLOY_FAILED",
                "Broke: the disk is full"
            ),
            ("broken", "Running", "DEPLOY_IN_PROGRESS", "Breaking"),
        ]),
        "{messages:#?}"
    );
}

#[test]
fn status_hooks_are_published_to_an_eventbridge_bus() {
    let Some(endpoint) = endpoint() else { return };
    let queue = rt().block_on(bus_with_queue(&endpoint));
    let scratch = Scratch::new();
    scratch.write("hooked.actions", HOOKED);
    let run_id = unique("bus");
    let out = run_hooked(
        &scratch,
        &endpoint,
        "hooked.actions",
        &run_id,
        "events:default",
        Some("env=staging"),
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    // Each message is an EventBridge event; the hook is its detail.
    let events = rt().block_on(drain(&endpoint, &queue));
    for event in &events {
        assert_eq!(event["source"], "baton", "{event:#}");
        assert_eq!(event["detail-type"], "baton status hook", "{event:#}");
    }
    let hooks: Vec<Value> = events.iter().map(|e| e["detail"].clone()).collect();
    assert_eq!(said(&hooks), owned(&HOOKED_SAYS), "{events:#?}");
    assert!(hooks.iter().all(|h| h["run_id"] == run_id.as_str()));
    // A bus that does not exist: logged, and the run goes on.
    let run_id = unique("no-bus");
    let out = run_hooked(
        &scratch,
        &endpoint,
        "hooked.actions",
        &run_id,
        "events:no-such-bus",
        Some("env=staging"),
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let paint = "prn:shop:web:main:9:action/deploy/main/paint";
    let log = stdout(&scratch.exits(&["logs", &run_id, paint], 0));
    assert!(
        log.contains(
            "hook status DEPLOY_COMPLETE was not published: events:PutEvents to no-such-bus"
        ),
        "{log}"
    );
}

#[test]
fn a_published_hook_never_carries_a_secret() {
    let Some(endpoint) = endpoint() else { return };
    let (topic, queue) = rt().block_on(topic_with_queue(&endpoint));
    let scratch = Scratch::new();
    scratch.write("secretive.actions", SECRETIVE);
    let sink = format!("sns:{topic}");
    let run_id = unique("secretive");
    let secret = "hunter2-never-published";
    let var = format!("db_password={secret}");
    let out = run_hooked(
        &scratch,
        &endpoint,
        "secretive.actions",
        &run_id,
        &sink,
        Some(&var),
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    let messages = rt().block_on(drain(&endpoint, &queue));
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let body = messages[0].to_string();
    assert!(!body.contains(secret), "{body}");
    let hook = &messages[0];
    assert_eq!(hook["status"], "LOGGED_IN_********");
    assert_eq!(hook["message"], "Logged in with ********");
    assert_eq!(hook["identity"], "prn:shop:web:main:9:********");
    assert_eq!(
        hook["details"],
        json!({"DbPassword": "********", "Note": "used ********"})
    );
    // Nor its line in the log threads.
    let log = stdout(&scratch.exits(&["logs", &run_id], 0));
    assert!(log.contains("hook status LOGGED_IN_********"), "{log}");
    assert!(!log.contains(secret), "{log}");
}

#[test]
fn a_failed_publish_is_logged_and_the_run_goes_on() {
    let Some(endpoint) = endpoint() else { return };
    let (topic, _queue) = rt().block_on(topic_with_queue(&endpoint));
    rt().block_on(async {
        sns_client(&endpoint)
            .delete_topic()
            .topic_arn(&topic)
            .send()
            .await
            .expect("delete topic")
    });
    let scratch = Scratch::new();
    scratch.write("hooked.actions", HOOKED);
    let sink = format!("sns:{topic}");
    let run_id = unique("unpublished");
    let out = run_hooked(
        &scratch,
        &endpoint,
        "hooked.actions",
        &run_id,
        &sink,
        Some("env=prod"),
    );
    assert_eq!(code(&out), 0, "{}", describe(&out));
    assert_eq!(json(&out)["status"], "succeeded");
    let paint = "prn:shop:web:main:9:action/deploy/main/paint";
    let log = stdout(&scratch.exits(&["logs", &run_id, paint], 0));
    assert!(
        log.contains("hook status DEPLOY_COMPLETE was not published: sns:Publish to"),
        "{log}"
    );
    assert!(log.contains("NotFound"), "{log}");
}

#[test]
fn a_bad_sink_is_refused_before_the_run_exists() {
    let scratch = Scratch::new();
    scratch.write("hooked.actions", HOOKED);
    let out = scratch.exits(&["run", "hooked.actions", "--hooks", "sqs:queue"], 2);
    assert!(
        stderr(&out).contains("sns:<topic ARN> or events:<bus name or ARN>"),
        "{}",
        describe(&out)
    );
    assert!(scratch.runs().is_empty());
}
