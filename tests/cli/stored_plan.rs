//! The plan a run stores (`actions.json`): read back without validating it again, refused when
//! damaged, and still read when an earlier version of baton stored it.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::{code, describe, json, plan, stderr, stdout, Scratch};

/// A run that stops at `check` until the file `ok` exists in its folder.
fn failing_run(run_id: &str) -> (Scratch, PathBuf) {
    let scratch = plan()
        .no_op("fetch")
        .shell("check", "test -f ok")
        .after(&["fetch"])
        .no_op("deploy-a")
        .after(&["check"])
        .no_op("deploy-b")
        .after(&["check"])
        .no_op("done")
        .after(&["deploy-*"])
        .scratch();
    scratch.run_plan(run_id, 1);
    let dir = scratch.path().join(".baton/runs").join(run_id);
    (scratch, dir)
}

fn sha256(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    stdout(&out)
        .split_whitespace()
        .next()
        .expect("a hash")
        .to_string()
}

/// Rewrites the run's plan as `plan` and every state version to name its bytes, as if the run
/// had been created with that plan.
fn replace_plan(dir: &Path, plan: &[u8]) {
    let file = dir.join("actions.json");
    let old = sha256(&file);
    std::fs::write(&file, plan).expect("write plan");
    let new = sha256(&file);
    for entry in std::fs::read_dir(dir.join("state")).expect("state folder") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("state");
        std::fs::write(&path, text.replace(&old, &new)).expect("write state");
    }
}

#[test]
fn the_stored_plan_holds_what_validation_computed() {
    let (_scratch, dir) = failing_run("r");
    let stored: Value =
        serde_json::from_slice(&std::fs::read(dir.join("actions.json")).expect("plan"))
            .expect("JSON");
    let header = &stored[0];
    assert_eq!(header["plan_format"], 2, "{header}");
    assert_eq!(header["dialect"], "baton");
    // The pattern is resolved: `done` waits for both deploys.
    assert_eq!(header["resolved"][4], json!({"deps": [2, 3]}));
    assert_eq!(header["order"], json!([0, 1, 2, 3, 4]));
    // The actions follow as written.
    assert_eq!(stored[5]["depends_on"], json!(["deploy-*"]));
}

/// What earlier versions stored (the action list as written) opens: the plan is validated in
/// full, and the run is inspected, retried and finished.
#[test]
fn a_run_stored_by_an_earlier_version_opens_and_finishes() {
    let (scratch, dir) = failing_run("old");
    let stored: Value =
        serde_json::from_slice(&std::fs::read(dir.join("actions.json")).expect("plan"))
            .expect("JSON");
    let actions: Vec<Value> = stored.as_array().expect("list")[1..].to_vec();
    replace_plan(&dir, &serde_json::to_vec(&actions).expect("JSON"));
    assert_eq!(scratch.status("old")["status"], "failed");
    let text = stdout(&scratch.exits(&["inspect", "old", "done"], 0));
    assert!(text.contains("depends on  deploy-a, deploy-b"), "{text}");
    scratch.write("ok", "");
    let summary = scratch.summary(&["retry", "old", "--failed"], 0);
    assert_eq!(summary["status"], "succeeded", "{summary}");
}

#[test]
fn a_damaged_stored_plan_is_refused_naming_the_file_and_what_is_wrong() {
    let (scratch, dir) = failing_run("r");
    let good = std::fs::read(dir.join("actions.json")).expect("plan");
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut doc: Value = serde_json::from_slice(&good).expect("JSON");
        edit(&mut doc);
        serde_json::to_vec(&doc).expect("JSON")
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            edited(&|d| d[0]["order"] = json!([1, 0, 2, 3, 4])),
            "order puts \"check\" before its dependency \"fetch\"",
        ),
        (
            edited(&|d| d[0]["resolved"][1]["deps"] = json!([9])),
            "actions[1] \"check\": deps names action 9, but the plan has 5 actions",
        ),
        (
            edited(&|d| d[3]["label"] = json!("fetch")),
            "actions[2] repeats the label \"fetch\" of actions[0]",
        ),
        (
            edited(&|d| d[2]["type"] = json!("system.teleport")),
            "unknown action type \"system.teleport\"",
        ),
        (good[..good.len() / 2].to_vec(), "it ends early"),
    ];
    for (bytes, expected) in cases {
        replace_plan(&dir, &bytes);
        for args in [
            vec!["status", "r"],
            vec!["inspect", "r", "done"],
            vec!["resume", "r", "--plain"],
        ] {
            let out = scratch.baton(&args);
            assert_eq!(code(&out), 3, "{args:?}: {}", describe(&out));
            let message = stderr(&out);
            assert!(
                message.contains("actions.json is damaged") && message.contains(expected),
                "{args:?}: {expected:?} not in {message}"
            );
        }
    }
    // The run's state is untouched: with the plan back, it carries on.
    replace_plan(&dir, &good);
    assert_eq!(
        json(&scratch.exits(&["status", "r", "--json"], 0))["status"],
        "failed"
    );
}
