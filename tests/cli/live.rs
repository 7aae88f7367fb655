//! Live logs: one `baton run --plain` process drives a command that prints a line every 200 ms;
//! a second process follows it (`baton logs RUN LABEL --follow`) and must see each line within
//! 2 s while the command still runs, on the local store and on S3 (moto), with a handful of
//! state versions for the whole run rather than one per line.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::common::*;
use crate::moto::*;

const LABEL: &str = "build/api:v1.2";
const LINES: usize = 20;

/// A command printing `LINES` lines, 200 ms apart, each holding a secret.
fn chatty_plan(scratch: &Scratch) {
    let plan = json!([{
        "label": LABEL,
        "type": "system.command",
        "params": {
            "command": format!(
                "for i in $(seq 1 {LINES}); do echo \"line $i token $API_TOKEN\"; sleep 0.2; done"
            ),
            "shell": true,
            "env": {"API_TOKEN": "hunter2-sekret"},
        },
    }]);
    scratch.write("plan.json", &plan.to_string());
}

/// A line the follower printed, and when it arrived.
struct Seen {
    at: DateTime<Utc>,
    text: String,
}

/// Reads a child's stdout lines as they come, stamped on arrival.
fn lines_of(child: &mut Child) -> mpsc::Receiver<Seen> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for text in std::io::BufReader::new(stdout).lines() {
            let Ok(text) = text else { return };
            if tx
                .send(Seen {
                    at: Utc::now(),
                    text,
                })
                .is_err()
            {
                return;
            }
        }
    });
    rx
}

/// What a follower saw of the run.
struct Followed {
    /// The command's lines, in the order printed.
    lines: Vec<String>,
    /// For each line that arrived while the driver still ran: how long after the command
    /// printed it.
    live_delays: Vec<Duration>,
    /// State versions the whole run wrote.
    versions: usize,
}

/// Drives the chatty plan with `baton run --plain` and follows it with `baton logs --follow`
/// from another process; `store` and `cmd` give both the store and its environment.
fn drive_and_follow(scratch: &Scratch, store: &[&str], cmd: impl Fn() -> Command) -> Followed {
    chatty_plan(scratch);
    let mut driver = cmd()
        .args(["run", "plan.json", "--run-id", "live", "--plain"])
        .args(store)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the driver");
    // The follower starts once the run exists.
    let deadline = Instant::now() + Duration::from_secs(20);
    while code(
        &cmd()
            .args(["status", "live"])
            .args(store)
            .output()
            .expect("status"),
    ) != 0
    {
        assert!(Instant::now() < deadline, "the run was never created");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut follower = cmd()
        .args(["logs", "live", LABEL, "--follow"])
        .args(store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the follower");
    let arrivals = lines_of(&mut follower);
    let mut followed = Followed {
        lines: Vec::new(),
        live_delays: Vec::new(),
        versions: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Ok(seen) = arrivals.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let driving = driver.try_wait().expect("driver").is_none();
        // `2026-11-28T09:04:58.123Z info  build/api:v1.2  line 3 token ********`
        let stamp = seen.text.split_whitespace().next().unwrap_or_default();
        let msg = seen.text.split(LABEL).nth(1).unwrap_or_default().trim();
        if !msg.starts_with("line ") {
            continue;
        }
        let printed: DateTime<Utc> = stamp.parse().expect("a timestamp first");
        if driving {
            followed
                .live_delays
                .push((seen.at - printed).to_std().unwrap_or_default());
        }
        followed.lines.push(msg.to_string());
        if followed.lines.len() == 5 && driving {
            // A one-off `baton logs` shows the newest lines too, not only the last save's.
            let out = cmd()
                .args(["logs", "live", LABEL])
                .args(store)
                .output()
                .expect("logs");
            let text = stdout(&out);
            assert!(text.contains("line 5 token ********"), "{}", describe(&out));
        }
    }
    let out = driver.wait_with_output().expect("driver");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = follower.wait_with_output().expect("follower");
    assert_eq!(
        code(&out),
        0,
        "the follower ends with the run: {}",
        stderr(&out)
    );
    let status = cmd()
        .args(["status", "live", "--versions", "--json"])
        .args(store)
        .output()
        .expect("status");
    followed.versions = json(&status)["versions"].as_array().map_or(0, Vec::len);
    followed
}

fn check(followed: &Followed) {
    let wanted: Vec<String> = (1..=LINES)
        .map(|i| format!("line {i} token ********"))
        .collect();
    assert_eq!(followed.lines, wanted, "every line once, in order, masked");
    assert!(
        followed.live_delays.len() >= LINES / 2,
        "only {} of {LINES} lines arrived while the command ran",
        followed.live_delays.len()
    );
    let slowest = followed
        .live_delays
        .iter()
        .max()
        .copied()
        .unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(2),
        "a line took {slowest:?}: {:?}",
        followed.live_delays
    );
    // Created, claimed (S3), the intent, the result, the end: never one per line.
    assert!(
        followed.versions <= 6,
        "{} state versions for {LINES} lines",
        followed.versions
    );
    eprintln!(
        "{} lines, {} while running, slowest {slowest:?}, {} state versions",
        followed.lines.len(),
        followed.live_delays.len(),
        followed.versions
    );
}

#[test]
fn logs_follow_shows_a_running_commands_lines_within_two_seconds() {
    let scratch = Scratch::new();
    let followed = drive_and_follow(&scratch, &[], || scratch.cmd());
    check(&followed);
    // The stream beside the state holds the lines too, masked.
    let stream = scratch
        .path()
        .join(".baton/runs/live/logs/build~2fapi~3av1~2e2.1.jsonl");
    let text = std::fs::read_to_string(&stream).expect("the live stream");
    assert_eq!(text.lines().count(), LINES, "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn logs_follow_shows_a_running_commands_lines_within_two_seconds_on_s3() {
    let Some(endpoint) = endpoint() else { return };
    let scratch = Scratch::new();
    let name = unique("live");
    rt().block_on(bucket(&s3_client(&endpoint), &name, true));
    let store = format!("s3://{name}/p");
    let followed = drive_and_follow(&scratch, &["--store", &store], || {
        aws_cmd(&scratch, &endpoint)
    });
    check(&followed);
    // At most one chunk a second, never one per line.
    let chunks = rt().block_on(async {
        s3_client(&endpoint)
            .list_objects_v2()
            .bucket(&name)
            .prefix("p/runs/live/logs/")
            .send()
            .await
            .expect("list")
            .contents()
            .len()
    });
    eprintln!("{chunks} stream objects");
    assert!(
        (2..=7).contains(&chunks),
        "{chunks} chunks for {LINES} lines over 4 s"
    );
}
