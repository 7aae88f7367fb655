//! Processes and stopping, with real process trees and real signals to a real `baton`: a
//! command's process group decides when it ends and is stopped whole (timeout, abort, signals);
//! output is read as bytes; a resumed run never starts a second copy of a command that is
//! still running.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{code, describe, json, plan, stderr, stdout, Scratch};

// ---------------------------------------------------------------------------------------------
// helpers

/// Whether `pid` is a running process (a zombie is not: it runs nothing, and an init that does
/// not reap leaves zombies behind).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            !matches!(state, Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

/// Waits up to `limit` for `pred`; whether it came true.
fn eventually(limit: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if pred() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    pred()
}

/// The pids a command wrote, one per line, into `file` in the scratch folder (waits for it).
fn pids(scratch: &Scratch, file: &str, count: usize) -> Vec<u32> {
    let path = scratch.path().join(file);
    let mut found = Vec::new();
    let ok = eventually(Duration::from_secs(10), || {
        found = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        found.len() >= count
    });
    assert!(ok, "{file} never held {count} pid(s): {found:?}");
    found
}

/// `kill -SIGNAL pid`, through the system's `kill` (no unsafe code in tests either).
fn send(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A `baton` process the test drives, killed if the test fails first.
struct Baton(Option<Child>);

impl Baton {
    fn spawn(scratch: &Scratch, args: &[&str], grace: Option<&str>) -> Self {
        let mut cmd = scratch.cmd();
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(grace) = grace {
            cmd.env("BATON_KILL_GRACE", grace);
        }
        Baton(Some(cmd.spawn().expect("spawn baton")))
    }

    fn pid(&self) -> u32 {
        self.0.as_ref().expect("child").id()
    }

    /// Waits up to `limit` for it to exit; its output.
    fn finish(&mut self, limit: Duration) -> std::process::Output {
        let mut child = self.0.take().expect("child");
        let started = Instant::now();
        while child.try_wait().expect("try_wait").is_none() {
            if started.elapsed() > limit {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!("baton did not exit within {limit:?}\n{}", describe(&out));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait_with_output().expect("output")
    }
}

impl Drop for Baton {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The newest state document of a local run.
fn state_file(scratch: &Scratch, run: &str) -> Value {
    let dir = scratch.path().join(".baton/runs").join(run).join("state");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("state dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let newest = files.last().expect("a state version");
    serde_json::from_slice(&std::fs::read(newest).expect("read state")).expect("state json")
}

/// Waits until the run's saved state records where `label`'s command runs; its pid.
fn recorded_pid(scratch: &Scratch, run: &str, label: &str) -> u32 {
    let mut pid = None;
    let dir = scratch.path().join(".baton/runs").join(run);
    let found = eventually(Duration::from_secs(10), || {
        if !dir.join("state").exists() {
            return false;
        }
        pid = state_file(scratch, run)["actions"][label]["process"]["pgid"].as_u64();
        pid.is_some()
    });
    assert!(found, "{label}'s process record was never saved");
    pid.map(|p| p as u32).unwrap_or_default()
}

fn action<'a>(summary: &'a Value, label: &str) -> &'a Value {
    &summary["actions"][label]
}

fn error_of(summary: &Value, label: &str) -> String {
    action(summary, label)["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn log_text(scratch: &Scratch, run: &str, label: &str) -> String {
    stdout(&scratch.exits(&["logs", run, label], 0))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// the process group decides

/// A background child keeps the command running; the timeout then stops the whole group.
#[test]
fn a_background_child_is_stopped_by_the_timeout_at_the_timeout() {
    let scratch = plan()
        .shell("bg", "sleep 30 & echo $! > sleeper; echo started")
        .set("timeout", json!("2s"))
        .scratch();
    let started = Instant::now();
    let summary = scratch.summary(&["run", "plan.json", "--run-id", "bg"], 1);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let error = error_of(&summary, "bg");
    assert!(
        error.starts_with("timed out after 2s (SIGTERM to its process group"),
        "{error}"
    );
    assert!(
        error.contains("its first process had already exited"),
        "{error}"
    );
    let sleeper = pids(&scratch, "sleeper", 1)[0];
    assert!(!alive(sleeper), "the background sleep survived the timeout");
    let log = log_text(&scratch, "bg", "bg");
    assert!(log.contains("started"), "{log}");
    assert!(
        log.contains("waiting for the processes it left running"),
        "{log}"
    );
}

/// Grandchildren are stopped with their parents, and what ignores SIGTERM gets SIGKILL after
/// the grace period (here the `grace` param).
#[test]
fn a_timeout_stops_the_whole_tree_and_kills_what_ignores_sigterm() {
    let script = "trap '' TERM; \
                  sh -c 'sleep 30 & echo $! >> pids; wait' & echo $! >> pids; \
                  sleep 30 & echo $! >> pids; wait";
    let scratch = plan()
        .shell("tree", script)
        .param("grace", json!("300ms"))
        .set("timeout", json!("0.5s"))
        .scratch();
    let started = Instant::now();
    let summary = scratch.summary(&["run", "plan.json"], 1);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let error = error_of(&summary, "tree");
    assert!(
        error.contains("then SIGKILL after the 300ms grace period"),
        "{error}"
    );
    for pid in pids(&scratch, "pids", 3) {
        assert!(!alive(pid), "pid {pid} of the tree survived");
    }
}

/// A daemon that leaves the group (its own session) but holds the output pipe does not hold
/// up the run: the command ends when its process group does.
#[test]
fn a_daemon_holding_the_pipe_does_not_hang_the_run() {
    let scratch = plan()
        .shell("daemon", "setsid sleep 30 & echo $! > daemon; echo started")
        .no_op("after")
        .after(&["daemon"])
        .scratch();
    let started = Instant::now();
    let summary = scratch.summary(&["run", "plan.json"], 0);
    let took = started.elapsed();
    let daemon = pids(&scratch, "daemon", 1)[0];
    let still_there = alive(daemon);
    let _ = Command::new("kill").arg(daemon.to_string()).status();
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert!(
        still_there,
        "the daemon left the group: baton must not stop it"
    );
}

// ---------------------------------------------------------------------------------------------
// output

#[test]
fn non_utf8_output_is_shown_lossily_and_reading_goes_on() {
    // Far more than a pipe buffer after the bad byte: a reader that stopped would kill the
    // command with SIGPIPE.
    let script = r#"printf 'bad \377 byte\n'; i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done; echo '{"done": true}'"#;
    let scratch = plan().shell("bytes", script).scratch();
    let summary = scratch.summary(&["run", "plan.json", "--run-id", "u"], 0);
    assert_eq!(action(&summary, "bytes")["outputs"], json!({"done": true}));
    let log = log_text(&scratch, "u", "bytes");
    assert!(log.contains("line 19999"), "{log}");
}

#[test]
fn a_large_json_line_becomes_outputs_and_one_over_1_mib_fails_clearly() {
    let line = |bytes: usize| {
        format!(r#"printf '{{"big": "'; head -c {bytes} /dev/zero | tr '\0' a; printf '"}}\n'"#)
    };
    let scratch = plan()
        .shell("fits", &line(500_000))
        .shell("too-big", &line(1_500_000))
        .scratch();
    let summary = scratch.summary(&["run", "plan.json", "--run-id", "big"], 1);
    let fits = action(&summary, "fits");
    assert_eq!(fits["status"], "complete", "{}", fits["error"]);
    assert_eq!(fits["outputs"]["big"].as_str().map(str::len), Some(500_000));
    let error = error_of(&summary, "too-big");
    assert!(
        error.contains("(1500011 bytes) is longer than the 1 MiB (1048576 bytes)"),
        "{error}"
    );
    // The log keeps a cut copy, marked as such.
    let log = log_text(&scratch, "big", "fits");
    assert!(log.contains("… [line cut: 500011 bytes]"), "{log}");
}

// ---------------------------------------------------------------------------------------------
// abort

/// `baton abort` from another terminal stops a running command within its grace period and a
/// second, waits for the driver to settle, and lists what it did.
#[test]
fn abort_from_another_terminal_stops_a_running_command_within_its_grace() {
    let scratch = plan()
        .shell("slow", "trap '' TERM; sleep 30 & echo $! > sleeper; wait")
        .param("grace", json!(1))
        .wait("pause", 30.0)
        .no_op("after")
        .after(&["slow"])
        .scratch();
    let mut driver = Baton::spawn(
        &scratch,
        &["run", "plan.json", "--run-id", "ab", "--json"],
        None,
    );
    recorded_pid(&scratch, "ab", "slow");
    let sleeper = pids(&scratch, "sleeper", 1)[0];

    let asked = Instant::now();
    let out = scratch.exits(&["abort", "ab"], 0);
    let stopped_in = asked.elapsed();
    assert!(!alive(sleeper), "the command outlived the abort");
    assert!(stopped_in < Duration::from_secs(2), "{stopped_in:?}");
    let text = stdout(&out);
    assert!(text.contains("abort requested"), "{text}");
    assert!(text.contains("run ab aborted"), "{text}");
    assert!(
        text.contains("stopped       slow: SIGTERM to its process group, then SIGKILL after the 1s grace period"),
        "{text}"
    );
    assert!(text.contains("stopped       pause: cancelled"), "{text}");
    assert!(text.contains("not started   after (1)"), "{text}");

    let out = driver.finish(Duration::from_secs(5));
    assert_eq!(code(&out), 1, "{}", describe(&out));
    let summary = json(&out);
    assert_eq!(summary["status"], "aborted");
    assert_eq!(action(&summary, "slow")["status"], "cancelled");
    assert!(
        error_of(&summary, "slow").starts_with("aborted by an operator (stopped: SIGTERM"),
        "{summary}"
    );
}

// ---------------------------------------------------------------------------------------------
// signals

/// SIGTERM to `baton run`: its commands' groups are stopped, the state saved, exit 1 with the
/// resume hint; an idempotent command runs again on resume.
#[test]
fn sigterm_stops_the_commands_saves_and_exits_1_with_the_resume_hint() {
    let scratch = plan()
        .shell(
            "slow",
            "echo run >> runs; [ -f quick ] && exit 0; sleep 30 & echo $! > sleeper; wait",
        )
        .param("idempotent", json!(true))
        .no_op("after")
        .after(&["slow"])
        .scratch();
    let mut baton = Baton::spawn(
        &scratch,
        &["run", "plan.json", "--plain", "--run-id", "t"],
        None,
    );
    recorded_pid(&scratch, "t", "slow");
    let sleeper = pids(&scratch, "sleeper", 1)[0];
    send("TERM", baton.pid());
    let out = baton.finish(Duration::from_secs(5));
    assert_eq!(code(&out), 1, "{}", describe(&out));
    assert!(!alive(sleeper), "the command outlived baton's stop");
    let err = stderr(&out);
    assert!(err.contains("SIGTERM: stopping"), "{err}");
    assert!(
        err.contains("slow: stopped (SIGTERM to its process group; it ended after"),
        "{err}"
    );
    assert!(
        err.contains("it runs again on resume (idempotent)"),
        "{err}"
    );
    assert!(err.contains("continue it with: baton resume"), "{err}");

    // Saved: the command is pending again, with what stopped it.
    let state = state_file(&scratch, "t");
    let slow = &state["actions"]["slow"];
    assert_eq!(slow["status"], "pending", "{slow}");
    assert_eq!(slow["stop"]["cause"], "SIGTERM", "{slow}");
    assert_eq!(slow["stop"]["fate"], "stopped", "{slow}");
    assert!(slow.get("process").is_none(), "{slow}");

    // Resume runs it again (it is idempotent); quick this time.
    scratch.write("quick", "");
    let summary = scratch.summary(&["resume", "t"], 0);
    assert_eq!(summary["status"], "succeeded", "{summary}");
    assert_eq!(read(&scratch.path().join("runs")), "run\nrun\n");
}

/// SIGHUP (the terminal went away) is handled the same way; a command that is not idempotent
/// is marked failed with an unknown outcome, and the hint says how to re-run it.
#[test]
fn sighup_stops_the_commands_and_a_non_idempotent_one_fails_honestly() {
    let scratch = plan()
        .shell(
            "slow",
            "sh -c 'sleep 30 & echo $! >> pids; wait' & echo $! >> pids; wait",
        )
        .no_op("after")
        .after(&["slow"])
        .scratch();
    let mut baton = Baton::spawn(
        &scratch,
        &["run", "plan.json", "--plain", "--run-id", "h"],
        None,
    );
    recorded_pid(&scratch, "h", "slow");
    let tree = pids(&scratch, "pids", 2);
    send("HUP", baton.pid());
    let out = baton.finish(Duration::from_secs(5));
    assert_eq!(code(&out), 1, "{}", describe(&out));
    for pid in tree {
        assert!(!alive(pid), "pid {pid} outlived baton's stop");
    }
    let err = stderr(&out);
    assert!(err.contains("SIGHUP: stopping"), "{err}");
    assert!(
        err.contains("outcome unknown: it is marked failed"),
        "{err}"
    );
    assert!(
        err.contains("re-run what did not finish: baton retry"),
        "{err}"
    );
    let status = scratch.status("h");
    assert_eq!(status["actions"]["slow"]["status"], "failed", "{status}");
    let error = status["actions"]["slow"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.starts_with("stopped by baton (SIGHUP) before it finished; outcome unknown"),
        "{error}"
    );
}

/// A second signal does not wait for the grace period: the groups are killed at once.
#[test]
fn a_second_signal_kills_the_commands_at_once() {
    let scratch = plan()
        .shell(
            "stubborn",
            "trap '' TERM; sleep 30 & echo $! > sleeper; wait",
        )
        .scratch();
    let mut baton = Baton::spawn(
        &scratch,
        &["run", "plan.json", "--plain", "--run-id", "twice"],
        Some("30s"),
    );
    recorded_pid(&scratch, "twice", "stubborn");
    let sleeper = pids(&scratch, "sleeper", 1)[0];
    send("INT", baton.pid());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        alive(sleeper),
        "the first signal must give the command its grace period"
    );
    let second = Instant::now();
    send("INT", baton.pid());
    let out = baton.finish(Duration::from_secs(3));
    assert!(
        second.elapsed() < Duration::from_secs(1),
        "{:?}",
        second.elapsed()
    );
    assert_eq!(code(&out), 130, "{}", describe(&out));
    assert!(
        eventually(Duration::from_secs(1), || !alive(sleeper)),
        "the command outlived the second signal"
    );
    assert!(
        stderr(&out).contains("quitting at once")
            && stderr(&out).contains("continue with: baton resume .baton/runs/twice"),
        "{}",
        stderr(&out)
    );
    // Its end was never saved: resume reports it interrupted, and does not run it again.
    let summary = scratch.summary(&["resume", "twice"], 1);
    assert!(
        error_of(&summary, "stubborn").starts_with("interrupted: outcome unknown"),
        "{summary}"
    );
}

// ---------------------------------------------------------------------------------------------
// resume after a crash

/// baton is killed (SIGKILL) while a command with a grandchild runs; `resume` finds the
/// command still running, waits for it instead of starting a second copy, then replays it
/// (it is idempotent): the two runs never overlap.
#[test]
fn resume_after_sigkill_waits_for_the_running_command_and_never_runs_two_copies() {
    let script = "echo start >> witness; sh -c 'sleep 1.5; echo end >> witness' & wait";
    let scratch = plan()
        .shell("cmd", script)
        .param("idempotent", json!(true))
        .scratch();
    let mut baton = Baton::spawn(
        &scratch,
        &["run", "plan.json", "--plain", "--run-id", "k"],
        None,
    );
    recorded_pid(&scratch, "k", "cmd");
    // SIGKILL: no handler, no cleanup; the command and its grandchild keep running.
    let mut child = baton.0.take().expect("child");
    let _ = child.kill();
    let _ = child.wait();
    let witness = scratch.path().join("witness");
    assert!(eventually(Duration::from_secs(5), || read(&witness) == "start\n"));

    let summary = scratch.summary(&["resume", "k"], 0);
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(read(&witness), "start\nend\nstart\nend\n");
    let log = log_text(&scratch, "k", "cmd");
    assert!(
        log.contains("waiting for it to end instead of starting a second copy"),
        "{log}"
    );
}

/// The same for a command that is not idempotent: resume waits for it, then reports it
/// interrupted (its exit status is lost) instead of while it still runs.
#[test]
fn resume_after_sigkill_reports_a_command_interrupted_only_once_it_has_ended() {
    let scratch = plan()
        .shell("cmd", "sh -c 'sleep 1; echo end >> witness' & wait")
        .scratch();
    let mut baton = Baton::spawn(
        &scratch,
        &["run", "plan.json", "--plain", "--run-id", "n"],
        None,
    );
    recorded_pid(&scratch, "n", "cmd");
    let mut child = baton.0.take().expect("child");
    let _ = child.kill();
    let _ = child.wait();
    let summary = scratch.summary(&["resume", "n"], 1);
    assert_eq!(read(&scratch.path().join("witness")), "end\n");
    let error = error_of(&summary, "cmd");
    assert!(error.starts_with("interrupted: outcome unknown"), "{error}");
}

/// `baton abort` on a run whose driver was SIGKILLed while a command runs: nobody drives the
/// run, so `abort` carries it out itself, and stops that command (it still runs on this host)
/// rather than leaving it behind.
#[test]
fn abort_of_a_run_whose_driver_died_stops_its_still_running_command() {
    let scratch = plan()
        .shell("cmd", "sleep 30 & echo $! > sleeper; wait")
        .no_op("after")
        .after(&["cmd"])
        .scratch();
    let mut baton = Baton::spawn(
        &scratch,
        &["run", "plan.json", "--plain", "--run-id", "d"],
        None,
    );
    recorded_pid(&scratch, "d", "cmd");
    let sleeper = pids(&scratch, "sleeper", 1)[0];
    let mut child = baton.0.take().expect("child");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        alive(sleeper),
        "SIGKILL of baton must not reach the command"
    );

    let asked = Instant::now();
    let out = scratch.exits(&["abort", "d"], 0);
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    assert!(!alive(sleeper), "the abort left the command running");
    let text = stdout(&out);
    assert!(text.starts_with("run d aborted\n"), "{text}");
    assert!(
        text.contains("stopped       cmd: SIGTERM to its process group; it ended after"),
        "{text}"
    );
    assert!(text.contains("not started   after (1)"), "{text}");
}
