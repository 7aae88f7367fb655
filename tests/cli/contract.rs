//! The command-line contract: exit codes, output formats, the `--json` summary,
//! and the run-management commands, on small plans of `system.*` actions in a scratch folder.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{code, describe, json, plan, repo, stderr, stdout, PlanBuilder, Scratch};

// ---------------------------------------------------------------------------------------------
// helpers

fn action<'a>(summary: &'a Value, label: &str) -> &'a Value {
    let action = &summary["actions"][label];
    assert!(!action.is_null(), "no action {label} in {summary:#}");
    action
}

fn status_of(summary: &Value, label: &str) -> String {
    action(summary, label)["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `a` → `long` (a wait of `seconds`) → `after`.
fn waiting_plan(seconds: f64) -> PlanBuilder {
    plan()
        .no_op("a")
        .wait("long", seconds)
        .after(&["a"])
        .no_op("after")
        .after(&["long"])
}

/// A finished run `id` whose `long` action is reset to pending, with nobody driving it.
fn unfinished_run(id: &str) -> Scratch {
    let scratch = waiting_plan(0.05).scratch();
    scratch.run_plan(id, 0);
    let out = scratch.exits(&["retry", id, "--only", "long", "--no-run"], 0);
    assert!(stdout(&out).contains("baton resume"), "{}", describe(&out));
    scratch
}

/// A child process that is killed if the test ends early (a failed assertion).
struct Reaped(Option<Child>);

impl Reaped {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child")
    }

    fn take(&mut self) -> Child {
        self.0.take().expect("child")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Polls `status RUN --json` until `pred` holds (the run may not exist yet).
fn wait_for_status(scratch: &Scratch, run: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let out = scratch.baton(&["status", run, "--json"]);
        if code(&out) == 0 {
            let doc = json(&out);
            if pred(&doc) {
                return doc;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "run {run} never reached the expected state: {}",
            describe(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// validate and plan

#[test]
fn validate_ok_prints_the_action_count() {
    let scratch = waiting_plan(0.1).scratch();
    let out = scratch.exits(&["validate", "plan.json"], 0);
    assert_eq!(stdout(&out), "plan.json: ok (3 actions)\n");
    assert_eq!(stderr(&out), "");
    assert!(scratch.runs().is_empty() && !scratch.path().join(".baton").exists());
}

#[test]
fn validate_several_files_with_one_bad_exits_2_and_reports_each() {
    let scratch = waiting_plan(0.1).scratch();
    plan()
        .action("x", "system.noop", None)
        .write(&scratch, "bad.json");
    plan().no_op("y").write(&scratch, "also-good.json");
    let out = scratch.exits(&["validate", "plan.json", "bad.json", "also-good.json"], 2);
    assert_eq!(
        stdout(&out),
        "plan.json: ok (3 actions)\nalso-good.json: ok (1 action)\n"
    );
    assert_eq!(
        stderr(&out),
        "bad.json: actions[0] \"x\": type: unknown action type \"system.noop\" (did you mean \
         \"system.no_op\"?)\n1 of 3 files invalid\n"
    );
}

#[test]
fn validate_without_files_is_a_usage_error() {
    let out = Scratch::new().exits(&["validate"], 2);
    assert!(stderr(&out).contains("Usage"), "{}", describe(&out));
}

fn layered_plan() -> PlanBuilder {
    plan()
        .no_op("fetch")
        .no_op("build-a")
        .after(&["fetch"])
        .no_op("build-b")
        .after(&["fetch"])
        .no_op("ship")
        .after(&["build-*"])
        .when("vars.env == 'prod'")
}

#[test]
fn plan_text_shows_layers() {
    let scratch = layered_plan().scratch();
    let text = stdout(&scratch.exits(&["plan", "plan.json"], 0));
    assert!(
        text.starts_with("plan.json: 4 actions in 3 layers\n"),
        "{text}"
    );
    let layer0 = text.find("layer 0 (1 action)").expect("layer 0");
    let layer1 = text.find("layer 1 (2 actions)").expect("layer 1");
    let layer2 = text.find("layer 2 (1 action)").expect("layer 2");
    assert!(layer0 < layer1 && layer1 < layer2, "{text}");
    let ship = text
        .lines()
        .find(|l| l.contains("ship"))
        .expect("ship line");
    assert!(ship.contains("← build-a, build-b"), "{ship}");
    assert!(ship.contains("if vars.env == 'prod'"), "{ship}");
    assert!(!scratch.path().join(".baton").exists());
}

#[test]
fn plan_json_has_layers_and_resolved_dependencies() {
    let scratch = layered_plan().scratch();
    let doc = json(&scratch.exits(&["plan", "plan.json", "--format", "json"], 0));
    assert_eq!(
        doc["layers"],
        json!([["fetch"], ["build-a", "build-b"], ["ship"]])
    );
    let ship = &doc["actions"][3];
    assert_eq!(ship["label"], "ship");
    assert_eq!(ship["depends_on"], json!(["build-a", "build-b"]));
    assert_eq!(ship["layer"], 2);
}

#[test]
fn plan_dot_is_a_digraph() {
    let scratch = layered_plan().scratch();
    let text = stdout(&scratch.exits(&["plan", "plan.json", "--format", "dot"], 0));
    assert!(text.starts_with("digraph"), "{text}");
    assert!(text.contains("\"fetch\" -> \"build-a\";"), "{text}");
    assert!(text.trim_end().ends_with('}'), "{text}");
}

#[test]
fn plan_mermaid_is_a_top_down_graph() {
    let scratch = layered_plan().scratch();
    let text = stdout(&scratch.exits(&["plan", "plan.json", "--format", "mermaid"], 0));
    assert!(text.starts_with("graph TD\n"), "{text}");
    assert!(text.contains("a0 --> a1"), "{text}");
    assert!(text.contains("build-a"), "{text}");
}

#[test]
fn json_outputs_end_quietly_when_the_reader_stops_early() {
    use std::io::Read;
    // Each document is far bigger than a pipe's buffer, so the writer meets the closed pipe
    // in the middle of it.
    let mut big = plan();
    for i in 0..3000 {
        big = big.no_op(&format!("action-{i:04}"));
    }
    let scratch = big.scratch();
    scratch.run_plan("big", 0);
    let commands = [
        vec!["status", "big", "--json"],
        vec!["status", "big", "--json", "--versions"],
        vec!["plan", "plan.json", "--format", "json"],
        vec!["run", "plan.json", "--json", "--run-id", "piped"],
    ];
    for args in commands {
        let mut child = scratch
            .cmd()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn baton");
        let mut head = [0u8; 10];
        let mut reader = child.stdout.take().expect("stdout");
        reader.read_exact(&mut head).expect("first bytes");
        drop(reader);
        let out = child.wait_with_output().expect("wait");
        assert_eq!(head[0], b'{', "{args:?}");
        assert_eq!(code(&out), 0, "{args:?}: {}", describe(&out));
        assert_eq!(stderr(&out), "", "{args:?}");
    }
}

#[test]
fn plan_of_a_bad_file_exits_2() {
    let scratch = plan().no_op("a").after(&["a"]).scratch();
    let out = scratch.exits(&["plan", "plan.json", "--format", "dot"], 2);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("cannot depend on itself"),
        "{}",
        describe(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// run

/// set_variables outputs, a command's last JSON stdout line as outputs, and templates (outputs,
/// vars, run.id) feeding later params.
fn data_flow_plan() -> PlanBuilder {
    plan()
        .set_variables("config", json!({"env": "dev", "replicas": 3}))
        .command(
            "probe",
            &[
                "sh",
                "-c",
                "echo probing; echo '{\"port\": 8080, \"host\": \"db.local\"}'",
            ],
        )
        .after(&["config"])
        .set_variables(
            "derive",
            json!({
                "url": "http://{{ outputs['probe'].host }}:{{ outputs['probe'].port }}/{{ vars.team }}",
                "port": "{{ outputs['probe'].port }}",
                "run": "{{ run.id }}"}),
        )
        .after(&["probe"])
        .command(
            "report",
            &[
                "printf",
                "{\"line\": \"%s\"}\\n",
                "{{ outputs['config'].env }}/{{ outputs['derive'].url }}/{{ outputs['config'].replicas * 2 }}",
            ],
        )
        .after(&["derive", "config"])
}

#[test]
fn run_json_success_summary() {
    let scratch = data_flow_plan().scratch();
    let summary = scratch.summary(
        &[
            "run",
            "plan.json",
            "--var",
            "team=infra",
            "--run-id",
            "flow-1",
        ],
        0,
    );
    for key in [
        "run_id",
        "run",
        "status",
        "invocations",
        "duration_ms",
        "actions",
    ] {
        assert!(
            summary.get(key).is_some(),
            "summary lacks {key}: {summary:#}"
        );
    }
    assert_eq!(summary["run_id"], "flow-1");
    assert_eq!(summary["status"], "succeeded");
    assert!(summary["invocations"].as_u64().expect("invocations") >= 1);
    assert!(summary["duration_ms"].is_u64(), "{summary:#}");
    let run = summary["run"].as_str().expect("run locator");
    assert!(
        scratch.path().join(run).join("actions.json").is_file(),
        "{run} is not a run folder"
    );
    assert_eq!(summary["actions"].as_object().expect("actions").len(), 4);
    for label in ["config", "probe", "derive", "report"] {
        let a = action(&summary, label);
        assert_eq!(a["status"], "complete", "{label}: {a}");
        assert_eq!(a["attempts"], 1, "{label}: {a}");
        assert!(a["error"].is_null(), "{label}: {a}");
        assert!(a["outputs"].is_object(), "{label}: {a}");
    }
    assert_eq!(
        action(&summary, "config")["outputs"],
        json!({"env": "dev", "replicas": 3})
    );
    assert_eq!(
        action(&summary, "probe")["outputs"],
        json!({"port": 8080, "host": "db.local"})
    );
    // A string that is one `{{ expression }}` keeps the expression's type.
    assert_eq!(
        action(&summary, "derive")["outputs"],
        json!({"url": "http://db.local:8080/infra", "port": 8080, "run": "flow-1"})
    );
    assert_eq!(
        action(&summary, "report")["outputs"],
        json!({"line": "dev/http://db.local:8080/infra/6"})
    );
}

fn failing_plan() -> PlanBuilder {
    plan()
        .no_op("ok")
        .fail("bad", "boom")
        .after(&["ok"])
        .no_op("child")
        .after(&["bad"])
        .no_op("grandchild")
        .after(&["child"])
        .wait("independent", 0.2)
        .command("after-independent", &["echo", "independent branch done"])
        .after(&["independent"])
}

#[test]
fn run_json_failure_blocks_descendants_and_finishes_independent_branches() {
    let summary = failing_plan().scratch().summary(&["run", "plan.json"], 1);
    assert_eq!(summary["status"], "failed");
    let bad = action(&summary, "bad");
    assert_eq!(bad["status"], "failed");
    assert_eq!(bad["error"], "boom");
    assert_eq!(bad["attempts"], 1);
    for label in ["child", "grandchild"] {
        assert_eq!(status_of(&summary, label), "blocked", "{summary:#}");
        assert_eq!(action(&summary, label)["attempts"], 0);
    }
    for label in ["ok", "independent", "after-independent"] {
        assert_eq!(status_of(&summary, label), "complete", "{summary:#}");
    }
}

#[test]
fn run_plain_prints_progress_lines() {
    let scratch = failing_plan().scratch();
    let out = scratch.exits(&["run", "plan.json", "--plain", "--run-id", "plain-1"], 1);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("run plain-1 (6 actions) in "),
        "{text}"
    );
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(has("✔ ok"), "{text}");
    assert!(has("✖ bad") && has("failed: boom"), "{text}");
    assert!(has("⊘ child") && has("blocked by bad"), "{text}");
    assert!(has("│ independent branch done"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("run plain-1 failed in ")),
        "{text}"
    );
    assert!(has("baton retry") && has("--failed"), "{text}");
    // No JSON and no errors on stderr for a run that merely failed.
    assert_eq!(stderr(&out), "", "{}", describe(&out));
}

#[test]
fn run_plain_success_ends_with_a_summary_line() {
    let scratch = layered_plan().scratch();
    let text = stdout(&scratch.exits(&["run", "plan.json", "--plain", "--var", "env=prod"], 0));
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.contains(" succeeded in ") && last.contains("4 complete"),
        "{text}"
    );
}

#[test]
fn run_var_is_visible_as_vars_name() {
    let scratch = plan()
        .command(
            "echo",
            &[
                "printf",
                "{\"got\": \"%s\"}\\n",
                "{{ vars.region }}-{{ vars.tier }}",
            ],
        )
        .scratch();
    let summary = scratch.summary(
        &[
            "run",
            "plan.json",
            "--var",
            "region=eu-west-1",
            "--var",
            "tier=a=b",
        ],
        0,
    );
    assert_eq!(
        action(&summary, "echo")["outputs"],
        json!({"got": "eu-west-1-a=b"})
    );
}

#[test]
fn run_rejects_malformed_vars_and_options_with_exit_2() {
    let scratch = layered_plan().scratch();
    for (args, needle) in [
        (vec!["--var", "novalue"], "NAME=VALUE"),
        (vec!["--var", "bad name=x"], "letters, digits"),
        (vec!["--max-parallel", "0"], "at least 1"),
        (vec!["--budget", "0"], "positive number"),
        (vec!["--budget", "1e20"], "at most 86400"),
        (vec!["--budget", "inf"], "positive number"),
        (vec!["--run-id", "has space"], "--run-id"),
        (vec!["--run-id", "../escape"], "--run-id"),
    ] {
        let mut full = vec!["run", "plan.json"];
        full.extend(args.iter().copied());
        let out = scratch.exits(&full, 2);
        assert!(
            stderr(&out).contains(needle),
            "{args:?}: {}",
            describe(&out)
        );
    }
    // Values are never echoed (they may be secrets), and their size is bounded.
    let out = scratch.exits(
        &["run", "plan.json", "--var", "db-password=hunter2-sekret"],
        2,
    );
    assert!(stderr(&out).contains("db-password=…"), "{}", describe(&out));
    assert!(
        !describe(&out).contains("hunter2-sekret"),
        "{}",
        describe(&out)
    );
    let out = scratch.exits(&["run", "plan.json", "--var", "hunter2-sekret"], 2);
    assert!(
        !describe(&out).contains("hunter2-sekret"),
        "{}",
        describe(&out)
    );
    let big = format!("blob={}", "x".repeat(70_000));
    let out = scratch.exits(&["run", "plan.json", "--var", &big], 2);
    assert!(
        stderr(&out).contains("65536-byte limit"),
        "{}",
        describe(&out)
    );
    // Bad input is refused before any state is written: no orphan run is left behind.
    assert!(
        scratch.runs().is_empty(),
        "runs created: {:?}",
        scratch.runs()
    );
}

#[test]
fn max_parallel_1_runs_one_command_at_a_time_and_succeeds() {
    let mut steps = plan();
    for name in ["a", "b", "c"] {
        steps = steps.shell(
            name,
            &format!("echo start {name} >> trace; sleep 0.1; echo end {name} >> trace"),
        );
    }
    let scratch = steps.no_op("done").after(&["a", "b", "c"]).scratch();
    let summary = scratch.summary(&["run", "plan.json", "--max-parallel", "1"], 0);
    assert_eq!(summary["status"], "succeeded");
    let trace = std::fs::read_to_string(scratch.path().join("trace")).expect("trace");
    let lines: Vec<&str> = trace.lines().collect();
    assert_eq!(lines.len(), 6, "{trace}");
    for pair in lines.chunks(2) {
        let name = pair[0].strip_prefix("start ").expect("a start line");
        assert_eq!(
            pair[1],
            format!("end {name}"),
            "commands overlapped:\n{trace}"
        );
    }
}

#[test]
fn run_id_is_used_for_the_run_folder() {
    let scratch = layered_plan().scratch();
    let args = [
        "run",
        "plan.json",
        "--run-id",
        "release-42",
        "--var",
        "env=dev",
    ];
    let summary = scratch.summary(&args, 0);
    assert_eq!(summary["run_id"], "release-42");
    assert_eq!(summary["run"], ".baton/runs/release-42");
    assert_eq!(
        scratch.runs(),
        vec![scratch.path().join(".baton/runs/release-42")]
    );
    // The same id again is refused: runs are never overwritten.
    let out = scratch.exits(&args, 3);
    assert!(
        stderr(&out).contains("already exists"),
        "{}",
        describe(&out)
    );
}

#[test]
fn a_chain_of_50_no_ops_finishes_in_one_invocation() {
    let mut chain = plan().no_op("n0");
    for i in 1..50 {
        chain = chain
            .no_op(&format!("n{i}"))
            .after(&[&format!("n{}", i - 1)]);
    }
    let summary = chain.scratch().summary(&["run", "plan.json"], 0);
    assert_eq!(summary["invocations"], 1, "{summary}");
    assert_eq!(summary["actions"].as_object().expect("actions").len(), 50);
    assert_eq!(status_of(&summary, "n49"), "complete");
}

#[test]
fn condition_false_skips_the_action_and_its_dependents_still_run() {
    let scratch = plan()
        .fail("prod-only", "must not run")
        .when("vars.env == 'prod'")
        .fail("braced", "must not run")
        .when("{{ vars.env == 'prod' }}")
        .command("after", &["echo", "ran"])
        .after(&["prod-only", "braced"])
        .no_op("dev-only")
        .when("vars.env == 'dev'")
        .scratch();
    let summary = scratch.summary(&["run", "plan.json", "--var", "env=dev"], 0);
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(status_of(&summary, "prod-only"), "skipped");
    assert_eq!(status_of(&summary, "braced"), "skipped");
    assert_eq!(status_of(&summary, "after"), "complete");
    assert_eq!(status_of(&summary, "dev-only"), "complete");
}

#[test]
fn retry_policy_retries_a_failing_command() {
    let scratch = plan()
        .shell(
            "flaky",
            "n=$(cat counter 2>/dev/null || echo 0); n=$((n+1)); echo $n > counter; \
             if [ $n -lt 2 ]; then echo attempt $n failed >&2; exit 1; fi; \
             echo \"{\\\"succeeded_on\\\": $n}\"",
        )
        .set("retry", json!({"attempts": 2, "delay": "0.2s"}))
        .scratch();
    let started = Instant::now();
    let summary = scratch.run_plan("flaky", 0);
    let took = started.elapsed();
    let flaky = action(&summary, "flaky");
    assert_eq!(flaky["status"], "complete", "{summary:#}");
    assert_eq!(flaky["attempts"], 2);
    assert_eq!(flaky["outputs"], json!({"succeeded_on": 2}));
    assert!(
        took >= Duration::from_millis(200),
        "no delay before the retry: {took:?}"
    );
    let counter = std::fs::read_to_string(scratch.path().join("counter")).expect("counter");
    assert_eq!(counter.trim(), "2");
    let logs = stdout(&scratch.baton(&["logs", "flaky", "flaky"]));
    assert!(logs.contains("attempt 1 failed"), "{logs}");
    assert!(logs.contains("attempt 1 of 2 failed"), "{logs}");
}

#[test]
fn retry_policy_gives_up_after_the_last_attempt() {
    let scratch = plan()
        .shell("broken", "echo run >> tries; exit 3")
        .set(
            "retry",
            json!({"attempts": 3, "delay": "0.05s", "backoff": 1.0}),
        )
        .scratch();
    let summary = scratch.summary(&["run", "plan.json"], 1);
    let broken = action(&summary, "broken");
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["attempts"], 3);
    assert!(
        broken["error"]
            .as_str()
            .unwrap_or_default()
            .contains("status 3"),
        "{broken}"
    );
    let tries = std::fs::read_to_string(scratch.path().join("tries")).expect("tries");
    assert_eq!(tries.lines().count(), 3);
}

#[test]
fn timeout_kills_a_long_command() {
    let scratch = plan()
        .command("slow", &["sleep", "5"])
        .set("timeout", json!("0.5s"))
        .no_op("after")
        .after(&["slow"])
        .scratch();
    let started = Instant::now();
    let summary = scratch.summary(&["run", "plan.json"], 1);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let slow = action(&summary, "slow");
    assert_eq!(slow["status"], "failed");
    assert!(
        slow["error"]
            .as_str()
            .unwrap_or_default()
            .contains("timed out"),
        "{slow}"
    );
    assert_eq!(status_of(&summary, "after"), "blocked");
}

/// A `system.wait` that is due must complete (and unblock its dependents) while an unrelated
/// long command is still running: independent branches proceed.
#[test]
fn a_due_wait_is_not_held_up_by_a_concurrent_long_command() {
    let scratch = plan()
        .wait("short-wait", 0.1)
        .shell("after-wait", "echo after-wait >> order")
        .after(&["short-wait"])
        .shell("long", "sleep 1.5; echo long >> order")
        .scratch();
    let summary = scratch.summary(&["run", "plan.json"], 0);
    assert_eq!(summary["status"], "succeeded");
    let order = std::fs::read_to_string(scratch.path().join("order")).expect("order");
    assert_eq!(
        order, "after-wait\nlong\n",
        "after-wait had to wait for the unrelated long command"
    );
}

// ---------------------------------------------------------------------------------------------
// status, logs, inspect, tick

#[test]
fn status_text_and_json() {
    let scratch = failing_plan().scratch();
    scratch.run_plan("st", 1);

    let text = stdout(&scratch.exits(&["status", "st"], 0));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "run st  failed", "{text}");
    assert!(
        lines[1].starts_with("store .baton/runs/st  version "),
        "{text}"
    );
    assert_eq!(
        lines[2], "actions 6: 3 complete, 1 failed, 2 blocked",
        "{text}"
    );
    let line = |label: &str| {
        lines
            .iter()
            .find(|l| l.split_whitespace().nth(1) == Some(label))
            .unwrap_or_else(|| panic!("no line for {label}:\n{text}"))
            .to_string()
    };
    assert!(
        line("bad").contains("failed") && line("bad").ends_with("boom"),
        "{text}"
    );
    assert!(line("grandchild").contains("blocked by bad"), "{text}");
    assert!(line("ok").contains("complete"), "{text}");

    let doc = scratch.status("st");
    assert_eq!(doc["run_id"], "st");
    assert_eq!(doc["status"], "failed");
    assert_eq!(
        doc["counts"],
        json!({"pending": 0, "running": 0, "complete": 3, "failed": 1, "skipped": 0,
               "blocked": 2, "cancelled": 0})
    );
    assert_eq!(doc["actions"]["bad"]["error"], "boom");
    assert_eq!(doc["actions"]["child"]["blocked_by"], "bad");
    assert!(doc["versions"].is_null(), "versions only with --versions");
}

#[test]
fn status_versions_lists_every_state_version() {
    let scratch = waiting_plan(0.1).scratch();
    scratch.run_plan("v", 0);
    let doc = scratch.summary(&["status", "v", "--versions"], 0);
    let versions = doc["versions"].as_array().expect("versions");
    assert!(versions.len() >= 2, "{doc:#}");
    let last = versions.last().expect("a version");
    assert_eq!(
        last["version"], doc["version"],
        "the head is the newest version"
    );
    assert!(versions.iter().all(|v| v["size"].as_u64().unwrap_or(0) > 0));

    let text = stdout(&scratch.exits(&["status", "v", "--versions"], 0));
    let listed = text
        .split("versions:\n")
        .nth(1)
        .expect("a versions section");
    assert_eq!(listed.lines().count(), versions.len(), "{text}");
    assert!(listed.lines().all(|l| l.ends_with(" bytes")), "{text}");
}

/// Whether a `logs` line of `thread` ends with `msg`.
fn has_log(text: &str, thread: &str, msg: &str) -> bool {
    text.lines().any(|l| {
        let mut words = l.split_whitespace();
        words.nth(2) == Some(thread) && l.ends_with(msg)
    })
}

/// The data-flow plan, run as `lg`.
fn data_flow_run() -> Scratch {
    let scratch = data_flow_plan().scratch();
    scratch.summary(
        &["run", "plan.json", "--var", "team=x", "--run-id", "lg"],
        0,
    );
    scratch
}

#[test]
fn logs_show_command_output_per_run_and_per_action() {
    let scratch = data_flow_run();
    let all = stdout(&scratch.exits(&["logs", "lg"], 0));
    assert!(
        has_log(&all, "run", "run created from plan.json (4 actions)"),
        "{all}"
    );
    assert!(has_log(&all, "probe", "probing"), "{all}");
    assert!(
        has_log(
            &all,
            "report",
            "{\"line\": \"dev/http://db.local:8080/x/6\"}"
        ),
        "{all}"
    );

    let one = stdout(&scratch.exits(&["logs", "lg", "probe"], 0));
    assert!(has_log(&one, "probe", "probing"), "{one}");
    assert!(
        one.lines()
            .all(|l| l.split_whitespace().nth(2) == Some("probe")),
        "only the probe thread:\n{one}"
    );
}

#[test]
fn logs_of_an_unknown_label_exit_2_with_a_suggestion() {
    let scratch = data_flow_run();
    for command in ["logs", "inspect"] {
        let out = scratch.exits(&[command, "lg", "prbe"], 2);
        assert_eq!(
            stderr(&out),
            "no action labelled \"prbe\" in this run (did you mean \"probe\"?)\n",
            "{command}"
        );
        assert_eq!(stdout(&out), "");
    }
}

fn secret_plan() -> PlanBuilder {
    plan()
        .set_variables("config", json!({"db": "orders"}))
        .command(
            "migrate",
            &["sh", "-c", "echo migrating $DB_NAME; echo '{\"rows\": 12}'"],
        )
        .after(&["config"])
        .param(
            "env",
            json!({"DB_NAME": "{{ outputs['config'].db }}", "DB_PASSWORD": "hunter2"}),
        )
}

#[test]
fn inspect_shows_rendered_params_and_outputs_with_secrets_redacted() {
    let scratch = secret_plan().scratch();
    scratch.run_plan("ins", 0);

    let text = stdout(&scratch.exits(&["inspect", "ins", "migrate"], 0));
    assert!(text.starts_with("✔ migrate  (system.command)"), "{text}");
    assert!(
        text.contains("\"DB_NAME\": \"orders\""),
        "template not rendered:\n{text}"
    );
    assert!(
        !text.contains("outputs['config']"),
        "template not rendered:\n{text}"
    );
    assert!(text.contains("\"DB_PASSWORD\": \"********\""), "{text}");
    assert!(!text.contains("hunter2"), "secret leaked:\n{text}");
    assert!(text.contains("\"rows\": 12"), "outputs missing:\n{text}");
    assert!(text.contains("migrating orders"), "log missing:\n{text}");
    assert!(text.contains("depends on  config"), "{text}");

    let out = scratch.exits(&["inspect", "ins", "migrate", "--json"], 0);
    assert!(
        !stdout(&out).contains("hunter2"),
        "secret leaked: {}",
        stdout(&out)
    );
    let doc = json(&out);
    assert_eq!(doc["label"], "migrate");
    assert_eq!(doc["status"], "complete");
    assert_eq!(doc["params"]["env"]["DB_NAME"], "orders");
    assert_eq!(doc["params"]["env"]["DB_PASSWORD"], "********");
    assert_eq!(doc["outputs"], json!({"rows": 12}));
    assert_eq!(doc["depends_on"], json!(["config"]));
}

#[test]
fn secrets_are_redacted_in_logs_and_summaries() {
    let scratch = plan()
        .command(
            "leaky",
            &[
                "sh",
                "-c",
                "echo DB_PASSWORD=$DB_PASSWORD; echo connecting with $DB_PASSWORD; echo '{\"api_token\": \"t0k3n-value\", \"user\": \"admin\"}'",
            ],
        )
        .param("env", json!({"DB_PASSWORD": "hunter2"}))
        .command(
            "uses-token",
            &[
                "sh",
                "-c",
                "echo calling the API with $T; echo \"auth failed for $T\" >&2; exit 3",
            ],
        )
        .after(&["leaky"])
        .param("env", json!({"T": "{{ outputs['leaky'].api_token }}"}))
        .scratch();
    let out = scratch.exits(&["run", "plan.json", "--json", "--run-id", "leak"], 1);
    assert!(!stdout(&out).contains("t0k3n"), "{}", stdout(&out));
    let summary = json(&out);
    assert_eq!(
        action(&summary, "leaky")["outputs"],
        json!({"api_token": "********", "user": "admin"})
    );
    let logs = stdout(&scratch.baton(&["logs", "leak"]));
    assert!(
        !logs.contains("hunter2") && !logs.contains("t0k3n"),
        "{logs}"
    );
    assert!(logs.contains("DB_PASSWORD=********"), "{logs}");
    assert!(logs.contains("connecting with ********"), "{logs}");
    assert!(logs.contains("calling the API with ********"), "{logs}");
    assert!(logs.contains("auth failed for ********"), "{logs}");
    for command in [
        vec!["status", "leak", "--json"],
        vec!["inspect", "leak", "uses-token"],
        vec!["inspect", "leak", "leaky", "--json"],
    ] {
        let text = stdout(&scratch.baton(&command));
        assert!(
            !text.contains("hunter2") && !text.contains("t0k3n"),
            "{command:?}: {text}"
        );
    }
    // Stored log threads and errors hold no secret either (outputs are kept: templates read them).
    for version in std::fs::read_dir(scratch.path().join(".baton/runs/leak/state")).expect("state")
    {
        let text = std::fs::read_to_string(version.expect("entry").path()).expect("read");
        assert!(!text.contains("hunter2"), "{text}");
    }
    let debug = scratch
        .cmd()
        .args(["retry", "leak", "--only", "leaky", "--plain"])
        .env("BATON_LOG", "debug")
        .output()
        .expect("retry");
    assert!(!stdout(&debug).contains("hunter2"), "{}", stdout(&debug));
    assert!(!stderr(&debug).contains("hunter2"), "{}", stderr(&debug));
}

#[test]
fn tick_prints_one_payload_and_exits_0() {
    let scratch = unfinished_run("tk");
    let payload = json(&scratch.exits(&["tick", "tk"], 0));
    assert_eq!(payload["run"], ".baton/runs/tk");
    assert!(payload["state_version"].is_string(), "{payload}");
    let flow = payload["flow_control"].as_str().expect("flow_control");
    assert!(["execute", "wait", "success"].contains(&flow), "{payload}");
    if flow == "wait" {
        assert!(payload["wait_seconds"].as_u64().is_some(), "{payload}");
    }
    let invocations = payload["invocations"].as_u64().expect("invocations");

    // Tick until done; each payload points at the newest state version.
    let mut last = payload;
    for _ in 0..50 {
        if last["flow_control"] == "success" {
            break;
        }
        std::thread::sleep(Duration::from_millis(60));
        last = json(&scratch.exits(&["tick", "tk"], 0));
    }
    assert_eq!(last["flow_control"], "success", "{last}");
    assert!(last["invocations"].as_u64().expect("invocations") > invocations);
    let status = scratch.status("tk");
    assert_eq!(status["version"], last["state_version"]);
    assert_eq!(status["status"], "succeeded");

    // A tick of a finished run reports its end again and changes nothing.
    let again = json(&scratch.baton(&["tick", "tk"]));
    assert_eq!(again, last);
}

// ---------------------------------------------------------------------------------------------
// retry, abort, resume

#[test]
fn retry_failed_after_fixing_the_precondition() {
    let scratch = plan()
        .no_op("prepare")
        .command("check", &["test", "-f", "ready.flag"])
        .after(&["prepare"])
        .command("deploy", &["echo", "deployed"])
        .after(&["check"])
        .no_op("side")
        .scratch();
    let summary = scratch.run_plan("fix", 1);
    assert_eq!(status_of(&summary, "check"), "failed");
    assert_eq!(status_of(&summary, "deploy"), "blocked");

    scratch.write("ready.flag", "");
    let text = stdout(&scratch.exits(&["retry", "fix", "--failed", "--plain"], 0));
    assert!(text.starts_with("will run (2): check, deploy\n"), "{text}");
    assert!(text.contains("reusing outputs of (1): prepare"), "{text}");

    let doc = scratch.status("fix");
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["actions"]["check"]["attempts"], 2);
    assert_eq!(doc["actions"]["deploy"]["attempts"], 1);
    assert_eq!(
        doc["actions"]["prepare"]["attempts"], 1,
        "prepare must not run again"
    );
    assert_eq!(
        doc["actions"]["side"]["attempts"], 1,
        "side must not run again"
    );
}

#[test]
fn retry_from_reruns_descendants_and_only_reruns_one() {
    let echo = |name: &str| format!("echo {name} >> ran");
    let scratch = plan()
        .shell("a", &echo("a"))
        .shell("b", &echo("b"))
        .after(&["a"])
        .shell("c", &echo("c"))
        .after(&["b"])
        .shell("d", &echo("d"))
        .scratch();
    let ran = || std::fs::read_to_string(scratch.path().join("ran")).unwrap_or_default();
    scratch.run_plan("re", 0);
    assert_eq!(ran().lines().count(), 4);

    std::fs::remove_file(scratch.path().join("ran")).expect("rm");
    let summary = scratch.summary(&["retry", "re", "--from", "b"], 0);
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(ran(), "b\nc\n");
    assert_eq!(action(&summary, "a")["attempts"], 1);
    assert_eq!(action(&summary, "b")["attempts"], 2);
    assert_eq!(action(&summary, "c")["attempts"], 2);

    std::fs::remove_file(scratch.path().join("ran")).expect("rm");
    let summary = scratch.summary(&["retry", "re", "--only", "a"], 0);
    assert_eq!(ran(), "a\n");
    assert_eq!(action(&summary, "a")["attempts"], 2);
    assert_eq!(action(&summary, "b")["attempts"], 2);

    // An unknown label is bad input.
    let out = scratch.exits(&["retry", "re", "--only", "zz"], 2);
    assert!(
        stderr(&out).contains("no action labelled \"zz\""),
        "{}",
        describe(&out)
    );
}

#[test]
fn retry_needs_exactly_one_selection() {
    let scratch = waiting_plan(0.05).scratch();
    scratch.run_plan("sel", 0);
    let out = scratch.exits(&["retry", "sel"], 2);
    assert!(stderr(&out).contains("--failed"), "{}", describe(&out));
    assert!(stderr(&out).contains("Usage"), "{}", describe(&out));
    scratch.exits(&["retry", "sel", "--failed", "--only", "a"], 2);
}

#[test]
fn retry_failed_with_nothing_failed_exits_1() {
    let scratch = waiting_plan(0.05).scratch();
    scratch.run_plan("clean", 0);
    let out = scratch.exits(&["retry", "clean", "--failed"], 1);
    assert!(
        stderr(&out).contains("nothing to re-execute"),
        "{}",
        describe(&out)
    );
}

#[test]
fn abort_of_an_undriven_run_finishes_it_as_aborted() {
    let scratch = unfinished_run("ab");
    let doc = scratch.status("ab");
    assert!(!["succeeded", "failed", "aborted"].contains(&doc["status"].as_str().unwrap_or("")));

    let out = scratch.exits(&["abort", "ab"], 0);
    // The abort reports what it did to each action: `long` had not started.
    assert_eq!(stdout(&out), "run ab aborted\n  not started   long (1)\n");
    let doc = scratch.status("ab");
    assert_eq!(doc["status"], "aborted");
    assert_eq!(doc["actions"]["long"]["status"], "cancelled");
    // `--only long` reset nothing else.
    assert_eq!(doc["actions"]["a"]["status"], "complete");
    assert_eq!(doc["actions"]["after"]["status"], "complete");

    // Resuming an aborted run reports its result again: exit 1.
    let summary = scratch.summary(&["resume", "ab"], 1);
    assert_eq!(summary["status"], "aborted");
}

#[test]
fn abort_from_another_process_stops_a_waiting_run() {
    let scratch = waiting_plan(30.0).scratch();
    let mut child = Reaped(Some(
        scratch
            .cmd()
            .args(["run", "plan.json", "--run-id", "bg", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn baton run"),
    ));
    wait_for_status(&scratch, "bg", |doc| {
        doc["actions"]["long"]["status"] == "running"
    });

    let out = scratch.exits(&["abort", "bg"], 0);
    assert!(
        stdout(&out).contains("abort requested"),
        "{}",
        describe(&out)
    );
    let asked = Instant::now();
    let status = wait_for_exit(child.child(), Duration::from_secs(5));
    assert!(
        status.is_some(),
        "the driving process did not stop after the abort"
    );
    let out = child.take().wait_with_output().expect("run output");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let summary = json(&out);
    assert_eq!(summary["status"], "aborted");
    assert_eq!(status_of(&summary, "long"), "cancelled");
    assert_eq!(status_of(&summary, "after"), "cancelled");
}

#[test]
fn abort_of_a_finished_run_exits_1() {
    let scratch = waiting_plan(0.05).scratch();
    scratch.run_plan("done", 0);
    let out = scratch.exits(&["abort", "done"], 1);
    assert!(
        stderr(&out).contains("already finished (succeeded)"),
        "{}",
        describe(&out)
    );
    let doc = scratch.status("done");
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["abort_requested"], false);
}

#[test]
fn resume_of_a_finished_run_exits_with_its_result() {
    let scratch = waiting_plan(0.05).scratch();
    failing_plan().write(&scratch, "failing.json");
    scratch.run_plan("good", 0);
    scratch.summary(&["run", "failing.json", "--run-id", "bad"], 1);
    let summary = scratch.summary(&["resume", "good"], 0);
    assert_eq!(summary["status"], "succeeded");
    let summary = scratch.summary(&["resume", "bad"], 1);
    assert_eq!(summary["status"], "failed");
    let out = scratch.exits(&["resume", "bad", "--plain"], 1);
    assert!(
        stdout(&out).contains("run bad failed"),
        "{}",
        describe(&out)
    );
}

#[test]
fn resume_drives_a_reset_run_to_the_end() {
    let scratch = unfinished_run("rs");
    let summary = scratch.summary(&["resume", "rs"], 0);
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(action(&summary, "long")["attempts"], 2);
    assert_eq!(
        action(&summary, "after")["attempts"],
        1,
        "--only long reset only long"
    );
    assert_eq!(action(&summary, "a")["attempts"], 1);
}

#[test]
fn a_nonexistent_run_exits_3_with_a_clear_message() {
    let scratch = waiting_plan(0.05).scratch();
    scratch.run_plan("exists", 0);
    for args in [
        vec!["status", "nope"],
        vec!["status", "nope", "--json"],
        vec!["logs", "nope"],
        vec!["inspect", "nope", "a"],
        vec!["tick", "nope"],
        vec!["resume", "nope"],
        vec!["retry", "nope", "--failed"],
        vec!["abort", "nope"],
    ] {
        let out = scratch.exits(&args, 3);
        assert_eq!(stdout(&out), "", "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("nope: no such run") && err.contains(".baton/runs"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // Nothing was created for the missing run.
    assert_eq!(scratch.runs().len(), 1);
}

#[test]
fn last_without_any_run_says_there_are_no_runs() {
    let out = Scratch::new().exits(&["status", "last"], 3);
    assert!(
        stderr(&out).contains("no runs"),
        "`last` with no store should say there are no runs yet, not an OS error: {}",
        describe(&out)
    );
}

#[test]
fn the_last_locator_and_run_folders_address_runs() {
    let scratch = waiting_plan(0.05).scratch();
    // The newer run sorts first by name, so only recency can pick it.
    scratch.run_plan("zz-older", 0);
    std::thread::sleep(Duration::from_millis(20));
    failing_plan().write(&scratch, "failing.json");
    scratch.summary(&["run", "failing.json", "--run-id", "aa-newer"], 1);

    assert_eq!(scratch.status("last")["run_id"], "aa-newer");
    scratch.exits(&["logs", "last", "bad"], 0);
    // A run folder path works as a locator too.
    assert_eq!(scratch.status(".baton/runs/zz-older")["run_id"], "zz-older");
    // And so does a run id under an explicit --store.
    let other = Scratch::new();
    let store = scratch.path().join(".baton");
    let doc = other.summary(
        &["status", "zz-older", "--store", &store.to_string_lossy()],
        0,
    );
    assert_eq!(doc["run_id"], "zz-older");
}

#[test]
fn two_resumes_at_once_one_is_refused_with_exit_3() {
    let scratch = waiting_plan(1.0).scratch();
    scratch.run_plan("twice", 0);
    scratch.exits(&["retry", "twice", "--only", "long", "--no-run"], 0);

    let spawn = || {
        scratch
            .cmd()
            .args(["resume", "twice", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn resume")
    };
    let first = spawn();
    let second = spawn();
    let outs = [
        first.wait_with_output().expect("first"),
        second.wait_with_output().expect("second"),
    ];
    let mut codes: Vec<i32> = outs.iter().map(code).collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        vec![0, 3],
        "{}\n{}",
        describe(&outs[0]),
        describe(&outs[1])
    );
    let refused = outs.iter().find(|o| code(o) == 3).expect("refused");
    assert!(
        stderr(refused).contains("being driven by another baton process"),
        "{}",
        describe(refused)
    );
    assert_eq!(stdout(refused), "");
    let winner = outs.iter().find(|o| code(o) == 0).expect("winner");
    assert_eq!(json(winner)["status"], "succeeded");
}

// ---------------------------------------------------------------------------------------------
// output hygiene

/// `baton status RUN | head -1` must not panic when the reader goes away: a closed stdout is
/// a normal way for a pipeline to end.
#[test]
fn a_closed_stdout_does_not_panic() {
    let scratch = failing_plan().scratch();
    scratch.run_plan("pipe", 1);
    for args in [
        vec!["status", "pipe"],
        vec!["logs", "pipe"],
        vec!["inspect", "pipe", "bad"],
        vec!["plan", "plan.json"],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = scratch
            .cmd()
            .args(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run baton");
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?} panicked on a closed stdout:\n{}",
            stderr(&out).lines().take(3).collect::<Vec<_>>().join("\n")
        );
        assert_ne!(code(&out), 101, "{args:?}");
    }
}

#[test]
fn a_missing_cwd_is_blamed_on_the_cwd_not_the_program() {
    let scratch = plan()
        .command("build", &["true"])
        .param("cwd", json!("/nonexistent/folder"))
        .scratch();
    let summary = scratch.summary(&["run", "plan.json"], 1);
    let error = action(&summary, "build")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("params.cwd") && error.contains("is not a folder"),
        "{error}"
    );
    assert!(!error.contains("is it installed"), "{error}");
}

#[test]
fn retry_only_reruns_that_action_alone_and_failed_then_the_rest() {
    let scratch = plan()
        .command("gate", &["test", "-f", "ok"])
        .no_op("after")
        .after(&["gate"])
        .scratch();
    let summary = scratch.summary(&["run", "plan.json", "--run-id", "only"], 1);
    assert_eq!(status_of(&summary, "after"), "blocked");
    scratch.write("ok", "");
    let summary = scratch.summary(&["retry", "only", "--only", "gate"], 1);
    assert_eq!(status_of(&summary, "gate"), "complete");
    assert_eq!(
        status_of(&summary, "after"),
        "blocked",
        "--only runs that action alone"
    );
    let summary = scratch.summary(&["retry", "only", "--failed"], 0);
    assert_eq!(status_of(&summary, "after"), "complete");
}

/// Defaults from the config file apply where neither a flag nor the environment gave one:
/// flag > environment > file > built-in default.
#[test]
fn the_config_file_fills_defaults_below_flags_and_the_environment() {
    let scratch = plan().no_op("a").scratch();
    let config = scratch.path().join(".config/baton");
    std::fs::create_dir_all(&config).expect("ok");
    std::fs::write(config.join("config.toml"), "store = \"from-file\"\n").expect("ok");
    let run = |id: &str, extra: &[&str], env: Option<&str>| {
        let mut cmd = scratch.cmd();
        cmd.args(["run", "plan.json", "--plain", "--run-id", id])
            .args(extra);
        if let Some(store) = env {
            cmd.env("BATON_STORE", store);
        }
        let out = cmd.output().expect("ok");
        assert_eq!(code(&out), 0, "{}", describe(&out));
    };
    run("f", &[], None);
    run("e", &[], Some("from-env"));
    run("c", &["--store", "from-flag"], Some("from-env"));
    assert!(scratch.path().join("from-file/runs/f").is_dir());
    assert!(scratch.path().join("from-env/runs/e").is_dir());
    assert!(scratch.path().join("from-flag/runs/c").is_dir());
    assert!(
        !scratch.path().join(".baton").exists(),
        "the built-in default lost to the file"
    );
    // Reading commands see the same default.
    let out = scratch.exits(&["status", "f"], 0);
    assert!(stdout(&out).contains("succeeded"), "{}", describe(&out));

    // A named file must exist; a bad one is invalid input naming the file, line and key.
    let missing = scratch.path().join("nope.toml");
    let out = scratch
        .cmd()
        .args(["status", "f"])
        .env("BATON_CONFIG", &missing)
        .output()
        .expect("ok");
    assert_eq!(code(&out), 2, "{}", describe(&out));
    assert!(stderr(&out).contains("nope.toml"), "{}", describe(&out));
    std::fs::write(
        config.join("config.toml"),
        "store = \"x\"\nmouse = \"no\"\n",
    )
    .expect("ok");
    let out = scratch.exits(&["status", "f"], 2);
    let err = stderr(&out);
    assert!(
        err.contains("config.toml") && err.contains("line 2: mouse = \"no\""),
        "{err}"
    );
}

/// Shell completions and the manual page come from the same definitions as `--help`.
#[test]
fn completions_and_the_manual_page_are_generated() {
    let scratch = Scratch::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = scratch.exits(&["completions", shell], 0);
        let text = stdout(&out);
        assert!(
            text.contains("retry") && text.contains("store"),
            "{shell}: {text}"
        );
    }
    let out = scratch.exits(&["completions", "tcsh"], 2);
    assert!(stderr(&out).contains("tcsh"), "{}", describe(&out));
    let out = scratch.exits(&["man"], 0);
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie") || page.contains(".TH baton 1"),
        "{page}"
    );
    assert!(page.contains("submit") && page.contains("watch"), "{page}");
}

/// `resume` of a run another process drives refuses before printing anything on stdout (no
/// "run … (N actions)" header for a run it will not drive).
#[test]
fn resume_of_a_busy_run_refuses_before_its_header() {
    let scratch = plan().command("slow", &["sleep", "5"]).scratch();
    let mut driver = scratch
        .cmd()
        .args(["run", "plan.json", "--plain", "--run-id", "busy"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !scratch.path().join(".baton/runs/busy").is_dir() {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = scratch.exits(&["resume", "busy", "--plain"], 3);
    assert_eq!(stdout(&out), "", "{}", describe(&out));
    assert!(
        stderr(&out).contains("being driven by another baton process"),
        "{}",
        describe(&out)
    );
    let _ = driver.kill();
    let _ = driver.wait();
}

/// Every row of the exit-code table in docs/cli.md, exercised: the table and the binary agree,
/// and a row added without a case here fails this test.
#[test]
fn every_exit_code_in_the_table_is_what_baton_exits_with() {
    let table = std::fs::read_to_string(repo().join("docs/cli.md")).expect("docs/cli.md");
    let rows: Vec<String> = table
        .lines()
        .skip_while(|l| !l.starts_with("## Exit codes"))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next())
        .filter(|code| code.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    assert_eq!(
        rows,
        ["0", "1", "2", "3", "128+N"],
        "the table changed: cover the new row"
    );

    let scratch = plan()
        .no_op("ok")
        .fail("boom", "no")
        .after(&["ok"])
        .scratch();
    // 0: success.
    scratch.exits(&["validate", "plan.json"], 0);
    // 1: the run failed; nothing to re-execute.
    scratch.exits(&["run", "plan.json", "--plain", "--run-id", "r"], 1);
    scratch.exits(&["retry", "r", "--only", "ok", "--no-run"], 0);
    scratch.write("good.json", &plan().no_op("a").to_json().to_string());
    scratch.exits(&["run", "good.json", "--plain", "--run-id", "g"], 0);
    scratch.exits(&["retry", "g", "--failed"], 1);
    // 2: an invalid file, an unknown label, bad arguments, a bad config file.
    scratch.write("bad.json", "[{\"label\": \"a\"}]");
    scratch.exits(&["validate", "bad.json"], 2);
    scratch.exits(&["inspect", "r", "nope"], 2);
    scratch.exits(&["status"], 2);
    scratch.exits(&["run", "plan.json", "--budget", "nan"], 2);
    let out = scratch
        .cmd()
        .args(["status", "r"])
        .env("BATON_CONFIG", scratch.path().join("missing.toml"))
        .output()
        .expect("baton");
    assert_eq!(code(&out), 2, "{}", describe(&out));
    // 3: no such run; store I/O.
    scratch.exits(&["status", "nope"], 3);
    std::fs::write(scratch.path().join("afile"), "").expect("write");
    scratch.exits(&["run", "good.json", "--plain", "--store", "afile/x"], 3);
    // 3: a run another process drives: resume_of_a_busy_run_refuses_before_its_header.
    // 128+N: a second signal during a stop: stopping::a_second_signal_kills_the_commands_at_once.
}
