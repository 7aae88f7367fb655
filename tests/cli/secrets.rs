//! A known secret value is never displayed, wherever it ends up: an error written by the engine
//! (`system.fail`, whose message a template fills), an output with an ordinary name, a log
//! line. Every command that shows a run is checked, and every stored version's errors and logs,
//! on the local store and on S3; the stored outputs keep what later templates need.

use serde_json::{json, Value};

use crate::common::{describe, plan, stderr, stdout, Scratch};
use crate::moto::{baton_aws, bucket, endpoint, rt, s3_client, unique};

const TOKEN: &str = "tok-AAAA-5150-session";
const PASSWORD: &str = "pw-SECRET-987-db";

/// `login` outputs a session token under a secret name; `copy` puts the database password (a
/// `--var` with a secret name) into an output with an ordinary name; `fail` quotes both in its
/// error; `echo` prints both on stdout.
fn leaky_plan(scratch: &Scratch) {
    plan()
        .set_variables("login", json!({"session_token": TOKEN}))
        .set_variables("copy", json!({"note": "{{ vars.db_password }}"}))
        .shell("echo", "echo \"token $T and $P\"")
        .param(
            "env",
            json!({"T": "{{ outputs.login.session_token }}", "P": "{{ vars.db_password }}"}),
        )
        .after(&["login"])
        .fail(
            "fail",
            "failed with {{ outputs.login.session_token }} and {{ vars.db_password }}",
        )
        .after(&["login", "copy", "echo"])
        .write(scratch, "plan.json");
}

#[track_caller]
fn assert_masked(what: &str, text: &str) {
    assert!(
        !text.contains(TOKEN) && !text.contains(PASSWORD),
        "{what} shows a secret:\n{text}"
    );
}

/// Every command that shows the run, none showing a secret.
fn check_displays(scratch: &Scratch, run: &str, baton: &dyn Fn(&[&str]) -> std::process::Output) {
    for args in [
        vec!["status", run],
        vec!["status", run, "--json"],
        vec!["logs", run],
        vec!["logs", run, "fail"],
        vec!["logs", run, "echo"],
        vec!["inspect", run, "fail"],
        vec!["inspect", run, "fail", "--json"],
        vec!["inspect", run, "copy"],
        vec!["inspect", run, "copy", "--json"],
        vec!["inspect", run, "echo"],
    ] {
        let out = baton(&args);
        assert_masked(&args.join(" "), &describe(&out));
    }
    let status = crate::common::json(&baton(&["status", run, "--json"]));
    let fail = &status["actions"]["fail"];
    assert_eq!(fail["status"], "failed", "{status:#}");
    assert!(
        fail["error"]
            .as_str()
            .unwrap_or_default()
            .contains("failed with ********"),
        "the error is there, masked: {status:#}"
    );
    let _ = scratch;
}

/// The errors and log lines of a stored version hold no secret; outputs keep their values.
fn check_stored(version: &Value, which: &str) {
    for (label, action) in version["actions"].as_object().into_iter().flatten() {
        assert_masked(
            &format!("{which}: {label}'s error"),
            &action["error"].to_string(),
        );
        assert_masked(
            &format!("{which}: {label}'s log"),
            &action["log"].to_string(),
        );
    }
    assert_masked(
        &format!("{which}: the run log"),
        &version["log"].to_string(),
    );
    // A journal delta carries the run log lines added since the version before.
    assert_masked(
        &format!("{which}: the run log lines added"),
        &version["log_added"].to_string(),
    );
}

#[test]
fn secrets_are_masked_in_every_view_and_every_stored_version_locally() {
    let scratch = Scratch::new();
    leaky_plan(&scratch);
    let var = format!("db_password={PASSWORD}");
    let out = scratch.baton(&[
        "run",
        "plan.json",
        "--plain",
        "--run-id",
        "leak",
        "--var",
        &var,
    ]);
    assert_eq!(crate::common::code(&out), 1, "{}", describe(&out));
    assert_masked("run --plain", &format!("{}{}", stdout(&out), stderr(&out)));
    let out = scratch.baton(&[
        "run",
        "plan.json",
        "--json",
        "--run-id",
        "leak2",
        "--var",
        &var,
    ]);
    assert_masked("run --json", &stdout(&out));
    assert!(
        stdout(&out).contains("\"note\":\"********\""),
        "{}",
        stdout(&out)
    );
    check_displays(&scratch, "leak", &|args| scratch.baton(args));

    let state_dir = scratch.path().join(".baton/runs/leak/state");
    let mut versions = 0;
    let mut outputs_kept = false;
    for entry in std::fs::read_dir(&state_dir).expect("state dir") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("version");
        let version: Value = serde_json::from_str(&text).expect("json");
        check_stored(&version, "a stored version");
        outputs_kept |= version["actions"]["login"]["outputs"]["session_token"] == TOKEN;
        versions += 1;
    }
    assert!(versions >= 2);
    assert!(
        outputs_kept,
        "outputs are stored as they are, for later templates"
    );
    for entry in std::fs::read_dir(scratch.path().join(".baton/runs/leak/logs"))
        .into_iter()
        .flatten()
    {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("stream");
        assert_masked("a log stream", &text);
    }
}

#[test]
fn secrets_are_masked_in_every_view_and_every_stored_version_on_s3() {
    let Some(endpoint) = endpoint() else { return };
    let name = unique("secrets");
    let client = s3_client(&endpoint);
    rt().block_on(bucket(&client, &name, true));
    let store = format!("s3://{name}/p");
    let scratch = Scratch::new();
    leaky_plan(&scratch);
    let var = format!("db_password={PASSWORD}");
    let run_args = [
        "run",
        "plan.json",
        "--plain",
        "--run-id",
        "leak",
        "--var",
        &var,
        "--store",
        &store,
    ];
    let out = baton_aws(&scratch, &endpoint, &run_args);
    assert_eq!(crate::common::code(&out), 1, "{}", describe(&out));
    assert_masked("run --plain", &format!("{}{}", stdout(&out), stderr(&out)));
    let with_store = |args: &[&str]| {
        let mut args = args.to_vec();
        args.extend(["--store", store.as_str()]);
        baton_aws(&scratch, &endpoint, &args)
    };
    check_displays(&scratch, "leak", &with_store);

    rt().block_on(async {
        // Every object version under the run's state: checkpoints and journal deltas.
        let listed = client
            .list_object_versions()
            .bucket(&name)
            .prefix("p/runs/leak/state/")
            .send()
            .await
            .expect("versions");
        let mut seen = 0;
        for v in listed.versions() {
            let body = client
                .get_object()
                .bucket(&name)
                .key(v.key().unwrap_or_default())
                .set_version_id(v.version_id().map(str::to_string))
                .send()
                .await
                .expect("get")
                .body
                .collect()
                .await
                .expect("body")
                .into_bytes();
            let version: Value = serde_json::from_slice(&body).expect("json");
            check_stored(&version, "a stored S3 version");
            seen += 1;
        }
        assert!(seen >= 2, "{seen} versions");
    });
}
