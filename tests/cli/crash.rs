//! Crash recovery: a `baton run` killed anywhere — by SIGKILL at arbitrary moments, or by the
//! fault-injection points inside the engine — is finished by `baton resume`, and no action's
//! side effect happens twice. A witness file records every execution of every command.

use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::moto;

const LABELS: [&str; 6] = [
    "prepare", "build-a", "build-b", "package", "publish", "notify",
];

fn cmd(label: &str) -> serde_json::Value {
    serde_json::json!({"command": format!("echo {label} >> witness.txt"), "shell": true})
}

/// Two parallel branches of commands, separated by short waits so runs span several ticks.
fn plan(scratch: &Scratch) {
    let plan = serde_json::json!([
        {"label": "prepare", "type": "system.command", "params": cmd("prepare")},
        {"label": "build-a", "type": "system.command", "depends_on": ["prepare"], "params": cmd("build-a")},
        {"label": "build-b", "type": "system.command", "depends_on": ["prepare"], "params": cmd("build-b")},
        {"label": "settle", "type": "system.wait", "depends_on": ["build-*"], "params": {"seconds": 0.2}},
        {"label": "package", "type": "system.command", "depends_on": ["settle"], "params": cmd("package")},
        {"label": "noop", "type": "system.no_op", "depends_on": ["package"]},
        {"label": "publish", "type": "system.command", "depends_on": ["noop"], "params": cmd("publish")},
        {"label": "cool-down", "type": "system.wait", "depends_on": ["publish"], "params": {"seconds": 0.1}},
        {"label": "notify", "type": "system.command", "depends_on": ["cool-down"], "params": cmd("notify")},
    ]);
    scratch.write("plan.json", &plan.to_string());
}

/// Where the crashed runs live: the default local store, or a versioned bucket in moto.
enum Target {
    Local,
    S3 { endpoint: String, store: String },
}

impl Target {
    fn cmd(&self, scratch: &Scratch) -> Command {
        match self {
            Target::Local => scratch.cmd(),
            Target::S3 { endpoint, store } => {
                let mut cmd = moto::aws_cmd(scratch, endpoint);
                cmd.env("BATON_STORE", store);
                cmd
            }
        }
    }

    fn baton(&self, scratch: &Scratch, args: &[&str]) -> Output {
        self.cmd(scratch).args(args).output().expect("run baton")
    }

    /// Whether the run got as far as being created (a crash can strike before).
    fn run_created(&self, scratch: &Scratch, run_id: &str) -> bool {
        match self {
            Target::Local => scratch
                .path()
                .join(".baton/runs")
                .join(run_id)
                .join("actions.json")
                .exists(),
            Target::S3 { .. } => {
                let out = self.baton(scratch, &["status", run_id, "--json"]);
                assert!(matches!(code(&out), 0 | 1 | 3), "{}", stderr(&out));
                code(&out) != 3
            }
        }
    }

    /// A crashed driver leaves its lease on an S3 run; the operator knows it is dead.
    fn resume_args<'a>(&self, run_id: &'a str) -> Vec<&'a str> {
        let mut args = vec!["resume", run_id, "--json"];
        if matches!(self, Target::S3 { .. }) {
            args.push("--take-over");
        }
        args
    }
}

fn witness(scratch: &Scratch) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(scratch.path().join("witness.txt")).unwrap_or_default();
    let mut counts = HashMap::new();
    for line in text.lines() {
        *counts.entry(line.to_string()).or_insert(0) += 1;
    }
    counts
}

/// Resumes the run until it ends and checks the guarantee: every command ran at most once;
/// a command caught mid-flight is reported "interrupted: outcome unknown" (never silently run
/// again), and after the operator re-executes those that did not run, each ran exactly once.
/// Returns the final summary.
fn resume_and_check(
    target: &Target,
    scratch: &Scratch,
    run_id: &str,
    labels: &[&str],
    context: &str,
) -> serde_json::Value {
    let out = target.baton(scratch, &target.resume_args(run_id));
    let exit = code(&out);
    assert!(
        exit == 0 || exit == 1,
        "{context}: resume exit {exit}\n{}",
        stderr(&out)
    );
    let summary = json(&out);
    let counts = witness(scratch);
    let mut rerun = Vec::new();
    for &label in labels {
        let action = &summary["actions"][label];
        let ran = counts.get(label).copied().unwrap_or(0);
        assert!(ran <= 1, "{context}: {label} ran {ran} times");
        match action["status"].as_str() {
            Some("complete") => {
                assert_eq!(ran, 1, "{context}: {label} complete but ran {ran} times")
            }
            Some("failed") => {
                let error = action["error"].as_str().unwrap_or_default();
                assert!(
                    error.starts_with("interrupted: outcome unknown"),
                    "{context}: {label}: {error}"
                );
                if ran == 0 {
                    rerun.push(label);
                }
            }
            Some("blocked") => assert_eq!(ran, 0, "{context}: blocked {label} ran"),
            other => panic!("{context}: {label} ended {other:?}"),
        }
    }
    if summary["status"] == "succeeded" {
        assert!(
            labels.iter().all(|l| counts.get(*l) == Some(&1)),
            "{context}: {counts:?}"
        );
        return summary;
    }
    // The operator checked the witness: these never ran, so re-execute them (and what they block).
    let interrupted_ran = labels
        .iter()
        .any(|l| summary["actions"][*l]["status"] == "failed" && counts.get(*l) == Some(&1));
    if interrupted_ran {
        // The command finished but the crash lost its record: the documented unknown outcome.
        return summary;
    }
    assert!(
        !rerun.is_empty(),
        "{context}: run failed without an interrupted action: {summary}"
    );
    let out = target.baton(scratch, &["retry", run_id, "--failed", "--json"]);
    assert_eq!(
        code(&out),
        0,
        "{context}: retry failed\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let counts = witness(scratch);
    assert!(
        labels.iter().all(|l| counts.get(*l) == Some(&1)),
        "{context}: after retry {counts:?}"
    );
    json(&out)
}

/// Runs `plan.json` with the fault `point@nth`; returns whether a crash happened and the run
/// exists to be resumed.
fn crash_at(target: &Target, scratch: &Scratch, run_id: &str, point: &str, nth: u32) -> bool {
    let out = target
        .cmd(scratch)
        .args(["run", "plan.json", "--plain", "--run-id", run_id])
        .env("BATON_FAULT", format!("{point}@{nth}"))
        .output()
        .expect("run");
    let context = format!("{point}@{nth}");
    if code(&out) == 0 {
        // The point was hit fewer than `nth` times; the run simply finished.
        assert!(witness(scratch).values().all(|&n| n == 1), "{context}");
        return false;
    }
    assert!(
        stderr(&out).contains(&format!("fault injection: killing the process at {point}")),
        "{context}: expected an injected crash, got exit {}\n{}",
        code(&out),
        stderr(&out)
    );
    if !target.run_created(scratch, run_id) {
        // Crashed while creating the run: no run, and nothing ran.
        assert!(witness(scratch).is_empty(), "{context}");
        return false;
    }
    true
}

#[test]
fn fault_points_are_survived() {
    // Each point is hit several times per run; try a few occurrences of each.
    let points = [
        "before_start",
        "after_executor",
        "before_save",
        "before_delta",
        "before_checkpoint",
        "before_link",
        "after_save",
    ];
    for point in points {
        for nth in [1, 2, 4, 7] {
            let scratch = Scratch::new();
            plan(&scratch);
            let run_id = format!("fault-{point}-{nth}");
            if crash_at(&Target::Local, &scratch, &run_id, point, nth) {
                resume_and_check(
                    &Target::Local,
                    &scratch,
                    &run_id,
                    &LABELS,
                    &format!("{point}@{nth}"),
                );
            }
        }
    }
}

/// The same loop on an S3 store (moto), with a CloudFormation stack in the plan: a replayed
/// start finds its own attempt through the client request token and follows it, so the stack
/// is created exactly once whatever the crash point.
#[test]
fn fault_points_are_survived_on_s3_with_a_stack() {
    let Some(endpoint) = moto::endpoint() else {
        return;
    };
    let bucket = moto::unique("crash");
    moto::rt().block_on(moto::bucket(&moto::s3_client(&endpoint), &bucket, true));
    let cfn = moto::cfn_client(&endpoint);
    let labels = ["prepare", "build-a", "after-stack", "notify"];
    let template = r#"{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": {"TopicArn": {"Value": {"Ref": "Topic"}}}}"#;
    let mut replays_recognised = 0;
    for point in [
        "before_start",
        "after_executor",
        "before_save",
        "before_delta",
        "before_checkpoint_pointer",
        "after_save",
    ] {
        for nth in [1, 2, 3, 5] {
            let scratch = Scratch::new();
            let stack_name = moto::unique("crash-stack");
            let plan = serde_json::json!([
                {"label": "prepare", "type": "system.command", "params": cmd("prepare")},
                {"label": "build-a", "type": "system.command", "depends_on": ["prepare"], "params": cmd("build-a")},
                {"label": "stack", "type": "aws.create_stack", "depends_on": ["prepare"],
                 "params": {"stack_name": stack_name, "template_body": template}},
                {"label": "after-stack", "type": "system.command", "depends_on": ["stack"], "params": cmd("after-stack")},
                {"label": "notify", "type": "system.command", "depends_on": ["after-stack", "build-a"], "params": cmd("notify")},
            ]);
            scratch.write("plan.json", &plan.to_string());
            let target = Target::S3 {
                endpoint: endpoint.clone(),
                store: format!("s3://{bucket}/{point}-{nth}"),
            };
            let run_id = format!("fault-{point}-{nth}");
            let context = format!("s3 {point}@{nth}");
            let summary = if crash_at(&target, &scratch, &run_id, point, nth) {
                resume_and_check(&target, &scratch, &run_id, &labels, &context)
            } else if target.run_created(&scratch, &run_id) {
                json(&target.baton(&scratch, &["status", &run_id, "--json"]))
            } else {
                continue;
            };
            if summary["actions"]["stack"]["status"] != "complete" {
                continue;
            }
            let stacks = moto::rt()
                .block_on(cfn.describe_stacks().stack_name(&stack_name).send())
                .expect("describe");
            assert_eq!(stacks.stacks().len(), 1, "{context}");
            let events = moto::rt()
                .block_on(cfn.describe_stack_events().stack_name(&stack_name).send())
                .expect("events");
            let stack_events: Vec<_> = events
                .stack_events()
                .iter()
                .filter(|e| e.resource_type() == Some("AWS::CloudFormation::Stack"))
                .filter_map(|e| e.resource_status().map(|s| s.as_str().to_string()))
                .collect();
            let creates = stack_events
                .iter()
                .filter(|s| *s == "CREATE_IN_PROGRESS")
                .count();
            assert_eq!(creates, 1, "{context}: {stack_events:?}");
            assert!(
                !stack_events.iter().any(|s| s.starts_with("UPDATE")),
                "{context}: a replay must not update: {stack_events:?}"
            );
            let log = stdout(&target.baton(&scratch, &["logs", &run_id, "stack"]));
            if log.contains("already started by this attempt") {
                replays_recognised += 1;
            }
        }
    }
    // Some crash landed between CreateStack and the save that records it.
    assert!(replays_recognised > 0, "no replayed create was exercised");
}

#[test]
fn sigkill_at_arbitrary_moments_is_survived() {
    // Measure one undisturbed run, then kill runs at points spread across that duration.
    let scratch = Scratch::new();
    plan(&scratch);
    let started = Instant::now();
    let out = scratch.baton(&["run", "plan.json", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let full = started.elapsed();

    let kills = 12;
    for i in 0..kills {
        let scratch = Scratch::new();
        plan(&scratch);
        let run_id = format!("kill-{i}");
        let mut child = scratch
            .cmd()
            .args(["run", "plan.json", "--plain", "--run-id", &run_id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let delay = full.mul_f64(i as f64 / kills as f64) + Duration::from_millis(3);
        std::thread::sleep(delay);
        // SIGKILL: no cleanup, no flush.
        let _ = child.kill();
        let _ = child.wait();
        if !Target::Local.run_created(&scratch, &run_id) {
            // Killed before the run was created: nothing to resume, nothing ran.
            assert!(witness(&scratch).is_empty());
            continue;
        }
        resume_and_check(
            &Target::Local,
            &scratch,
            &run_id,
            &LABELS,
            &format!("kill after {delay:?}"),
        );
    }
}

/// A crash while a run is being created leaves only a staging folder: never a run that `last`,
/// `status` or `resume` pick up (and run), and the next creation removes it.
#[test]
fn a_half_created_run_is_never_a_run_and_is_cleaned() {
    let scratch = Scratch::new();
    plan(&scratch);
    let out = scratch
        .cmd()
        .args(["run", "plan.json", "--plain", "--run-id", "half"])
        .env("BATON_FAULT", "before_link@2")
        .output()
        .expect("run");
    assert_ne!(out.status.code(), Some(0), "the fault must kill it");
    let runs = scratch.path().join(".baton/runs");
    let staging: Vec<_> = std::fs::read_dir(&runs)
        .expect("runs folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".creating-"))
        })
        .collect();
    assert_eq!(
        staging.len(),
        1,
        "the crash left its staging folder: {staging:?}"
    );
    let staged = staging[0].to_string_lossy().to_string();
    for args in [
        vec!["status", "last"],
        vec!["resume", "last", "--plain"],
        vec!["status", staged.as_str()],
        vec!["resume", staged.as_str(), "--plain"],
    ] {
        let out = scratch.baton(&args);
        assert_eq!(
            code(&out),
            3,
            "{args:?} must not find a run: {}",
            stdout(&out)
        );
    }
    assert!(
        witness(&scratch).is_empty(),
        "nothing ran: {:?}",
        witness(&scratch)
    );
    // The next creation cleans up after the dead one and runs the plan once.
    let out = scratch.baton(&["run", "plan.json", "--plain", "--run-id", "half"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(!staging[0].exists(), "the stale staging folder is gone");
    assert!(
        witness(&scratch).values().all(|&n| n == 1),
        "{:?}",
        witness(&scratch)
    );
}
