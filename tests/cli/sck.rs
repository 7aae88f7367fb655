//! Simple Cloud Kit (SCK) action files run under SCK's rules: `lookup` over its state, text
//! rendering (`'False' == 'False'`), conditions that run only on `true`, `Before`, absent
//! optional parts, and a stored plan that keeps its dialect. The fixtures are baton's own, in
//! SCK's format (tests/corpus/good/sck_*.actions).

use serde_json::{json, Value};

use crate::common::{json, repo, stderr, stdout, Scratch};

const PERSISTENCE: &str = "sck_v2_persistence.actions";
const NS: &str = "prn:demo:web:main:7";

fn scratch_with(fixture: &str) -> Scratch {
    let scratch = Scratch::new();
    let text =
        std::fs::read_to_string(repo().join("tests/corpus/good").join(fixture)).expect("fixture");
    scratch.write(fixture, &text);
    scratch
}

fn action<'a>(summary: &'a Value, label: &str) -> &'a Value {
    &summary["actions"][label]
}

#[test]
fn an_sck_file_runs_by_sck_rules() {
    let scratch = scratch_with(PERSISTENCE);
    let summary = scratch.summary(&["run", PERSISTENCE, "--run-id", "sck"], 0);
    let db = format!("{NS}:db:action/deploy");
    // No released build: its facts are skipped, and persistence takes the defaults.
    assert_eq!(
        action(&summary, &format!("{db}/gather-facts/release"))["status"],
        "skipped"
    );
    let persistence = action(&summary, &format!("{db}/gather-facts/persistence"));
    assert_eq!(
        persistence["outputs"],
        json!({"Persist": "False", "ResourcesStackName": "demo-web-main-7-db-resources"}),
        "a comparison renders as SCK's text"
    );
    // `'False' == 'False'` holds: the resources are created, the persisted branch is not.
    let resources = action(&summary, &format!("{db}/main/resources"));
    assert_eq!(resources["status"], "complete", "{summary}");
    assert_eq!(
        resources["outputs"],
        json!({
            "StackName": "demo-web-main-7-db-resources",
            "KmsKeyArn": "arn:aws:kms:ap-southeast-2:111111111111:key/demo"
        })
    );
    assert_eq!(
        action(&summary, &format!("{db}/main/persisted"))["status"],
        "skipped"
    );
    assert_eq!(
        action(&summary, &format!("{NS}:action/post-deploy/status"))["status"],
        "complete"
    );
    // The stored plan keeps its dialect, so the rules hold when the run is opened again.
    let stored = std::fs::read_to_string(scratch.path().join(".baton/runs/sck/actions.json"))
        .expect("stored plan");
    assert!(
        stored.starts_with("[{\"plan_format\":2,\"dialect\":\"sck-v2\","),
        "{stored}"
    );
    let status = scratch.status("sck");
    assert_eq!(status["status"], "succeeded", "{status}");
    let text = stdout(&scratch.exits(&["inspect", "sck", &format!("{db}/main/resources")], 0));
    assert!(
        text.contains("format      SCK V2 (Simple Cloud Kit)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "status hook Running → DEPLOY_IN_PROGRESS, Complete → DEPLOY_IN_PROGRESS, Failed → DEPLOY_FAILED for {NS}:db"
        )),
        "{text}"
    );
    let doc = json(&scratch.exits(
        &[
            "inspect",
            "sck",
            &format!("{NS}:action/pre-deploy/status"),
            "--json",
        ],
        0,
    ));
    assert_eq!(doc["format"], "SCK V2 (Simple Cloud Kit)");
    assert_eq!(doc["scope"], "build");
    assert_eq!(
        doc["lifecycle_hooks"][0]["Parameters"]["OnComplete"]["Status"],
        "DEPLOY_IN_PROGRESS"
    );
}

#[test]
fn plan_states_the_format_the_failure_rule_and_sck_dependencies() {
    let scratch = scratch_with(PERSISTENCE);
    let out = scratch.exits(&["plan", PERSISTENCE], 0);
    let text = stdout(&out);
    assert!(
        text.contains("\nformat: SCK V2 (Simple Cloud Kit)\n"),
        "{text}"
    );
    assert!(
        text.contains("on failure: baton blocks only what depends on the failed action"),
        "{text}"
    );
    // The absent optional part is a warning, not an error.
    assert!(
        stderr(&out).contains("DependsOn[1]: no action is named"),
        "{}",
        stderr(&out)
    );
    let doc = json(&scratch.exits(&["plan", PERSISTENCE, "--format", "json"], 0));
    assert_eq!(doc["format"], "SCK V2 (Simple Cloud Kit)");
    let by_label = |label: &str| -> Value {
        doc["actions"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["label"] == label).cloned())
            .unwrap_or(Value::Null)
    };
    let db = format!("{NS}:db:action/deploy");
    // `Before: [resources]` on persisted: resources waits for it.
    let resources = by_label(&format!("{db}/main/resources"));
    assert!(
        resources["depends_on"]
            .as_array()
            .is_some_and(|d| d.contains(&json!(format!("{db}/main/persisted")))),
        "{resources}"
    );
    // `After` is waited for like `DependsOn`.
    assert_eq!(
        by_label(&format!("{db}/gather-facts/release"))["depends_on"],
        json!([format!("{NS}:action/pre-deploy/kms")])
    );
    // Before the first `/` a star is one segment: the component's deploy actions, not the
    // build's own pre-deploy ones.
    let post = by_label(&format!("{NS}:action/post-deploy/status"));
    let deps = post["depends_on"].as_array().cloned().unwrap_or_default();
    assert_eq!(deps.len(), 5, "{post}");
    assert!(
        deps.iter().all(|d| d
            .as_str()
            .is_some_and(|d| d.starts_with(&format!("{NS}:db:action/deploy/")))),
        "{post}"
    );
}

#[test]
fn the_third_format_runs_too() {
    let scratch = scratch_with("sck_v3.actions");
    let summary = scratch.summary(&["run", "sck_v3.actions"], 0);
    assert_eq!(
        action(&summary, "prn:demo:core:action/report")["status"],
        "complete",
        "the output key of the namespace holds the fact: {summary}"
    );
    let out = scratch.exits(&["plan", "sck_v3.actions"], 0);
    assert!(
        stdout(&out).contains("format: SCK V3 (Simple Cloud Kit)"),
        "{}",
        stdout(&out)
    );
}

/// A failure blocks what depends on it and independent branches go on (baton's rule, which
/// `plan` states); a `lookup` without a default of a key its skipped writer never wrote fails
/// naming the key and why.
#[test]
fn failures_block_dependents_and_missing_keys_say_why() {
    let scratch = Scratch::new();
    let file = r#"
- Name: ns:action/fails
  Kind: system.fail
  Spec: { Message: broken }
- Name: ns:action/after-it
  Kind: System::NoOp
  DependsOn: ns:action/fails
- Name: ns:action/facts
  Kind: System::SetVariables
  Condition: "False"
  Spec: { Variables: { Build: "7" } }
- Name: ns:action/reads
  Kind: System::SetVariables
  DependsOn: [ ns:action/facts ]
  Spec: { Variables: { Build: "{{ 'ns:var/facts/Build' | lookup }}" } }
- Name: ns:action/independent
  Kind: System::NoOp
"#;
    scratch.write("f.actions", file);
    let summary = scratch.summary(&["run", "f.actions"], 1);
    assert_eq!(action(&summary, "ns:action/fails")["status"], "failed");
    assert_eq!(action(&summary, "ns:action/after-it")["status"], "blocked");
    assert_eq!(
        action(&summary, "ns:action/independent")["status"],
        "complete"
    );
    let error = action(&summary, "ns:action/reads")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("\"ns:var/facts/Build\""), "{error}");
    assert!(error.contains("\"ns:action/facts\" was skipped"), "{error}");
}
