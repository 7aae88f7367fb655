//! Hostile input that validation cannot refuse outright: templates whose work depends on run
//! variables, durations that only exist once rendered, and files shaped to cost as much memory
//! as possible. Each must end in a clear refusal or a failed action, in bounded time and
//! memory, and the run must stay readable and resumable.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{baton_bin, plan, stderr, Scratch};

/// Peak memory (resident set, bytes) and wall time of `baton ARGS` run in `scratch`, with its
/// exit code. Measured by the kernel's accounting of the reaped child (python's `resource`).
fn measured(scratch: &Scratch, args: &[&str]) -> (i32, u64, Duration, String) {
    let script = "import resource, subprocess, sys\n\
                  r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n\
                  sys.stderr.buffer.write(r.stderr)\n\
                  print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
    let started = Instant::now();
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(baton_bin())
        .args(args)
        .current_dir(scratch.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("python3 runs baton");
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse::<i64>().unwrap_or(-1));
    let code = fields.next().unwrap_or(-1) as i32;
    let kib = fields.next().unwrap_or(-1).max(0) as u64;
    (code, kib * 1024, elapsed, stderr(&out))
}

const MIB: u64 = 1024 * 1024;

/// Templates whose work is chosen at run time (`--var n=…`) are rendered in a worker with
/// limits: each fails its action with the limit it hit, in seconds, while a template that only
/// computes a little renders as before. On the old engine the first one never returned.
#[test]
fn templates_that_compute_without_end_fail_their_action_in_bounded_time() {
    let scratch = plan()
        .set_variables("sum", json!({"x": "{{ ([1] * (vars.n|int))|sum }}"}))
        .set_variables("join", json!({"x": "{{ (['xxxxxxxxxx'] * (vars.n|int))|join }}"}))
        .no_op("gate")
        .when("([1] * (vars.n|int))|sum > 0")
        .set_variables(
            "doubling",
            json!({"x": "{% set ns = namespace(s='x' * 1000000) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"}),
        )
        .set_variables(
            "concat",
            json!({"x": "{% set big = 'x' * (vars.m|int) %}{{ (big ~ big ~ big ~ big ~ big)|length }}"}),
        )
        .set_variables("fine", json!({"x": "{{ vars.n ~ '-' ~ (vars.n|int % 7) }}"}))
        .scratch();
    let started = Instant::now();
    let summary = scratch.summary(
        &[
            "run",
            "plan.json",
            "--run-id",
            "hostile",
            "--var",
            "n=1000000000000",
            "--var",
            "m=100000000",
        ],
        1,
    );
    let took = started.elapsed();
    let error = |label: &str| {
        summary["actions"][label]["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for label in ["sum", "gate"] {
        assert_eq!(summary["actions"][label]["status"], "failed", "{summary}");
        assert!(
            error(label).contains("s of CPU time (the limit for one template)")
                || error(label).contains("did not finish rendering within"),
            "{label}: {}",
            error(label)
        );
    }
    for label in ["join", "doubling", "concat"] {
        assert_eq!(summary["actions"][label]["status"], "failed", "{summary}");
        assert!(
            error(label).contains("(the limit for one template)"),
            "{label}: {}",
            error(label)
        );
    }
    assert!(
        error("gate").starts_with("condition: "),
        "{}",
        error("gate")
    );
    assert_eq!(
        summary["actions"]["fine"]["status"], "complete",
        "{summary}"
    );
    assert_eq!(
        summary["actions"]["fine"]["outputs"]["x"], "1000000000000-1",
        "{summary}"
    );
    // Five limits of at most 5 s each, with room for a loaded machine.
    assert!(took < Duration::from_secs(60), "{took:?}");
    // The run is readable, and resuming it does not render the templates again.
    let started = Instant::now();
    let again = scratch.summary(&["resume", "hostile"], 1);
    assert_eq!(again["actions"]["sum"]["status"], "failed", "{again}");
    assert!(started.elapsed() < Duration::from_secs(20));
    scratch.status("hostile");
}

/// A wait whose duration is rendered at run time gets the same one-year limit as one written
/// out: `{{ '366d' * 300000 }}` fails the action (it used to panic the engine, exit 101).
#[test]
fn a_rendered_wait_over_a_year_fails_the_action_and_does_not_panic() {
    let scratch = plan()
        .action(
            "nap",
            "system.wait",
            Some(json!({"seconds": "{{ '366d' * 300000 }}"})),
        )
        .action(
            "nap-days",
            "system.wait",
            Some(json!({"seconds": "{{ vars.days ~ 'd' }}"})),
        )
        .scratch();
    let summary = scratch.summary(
        &["run", "plan.json", "--run-id", "long", "--var", "days=400"],
        1,
    );
    for label in ["nap", "nap-days"] {
        let action = &summary["actions"][label];
        assert_eq!(action["status"], "failed", "{summary}");
        let error = action["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("seconds: ") && error.contains("is longer than a year"),
            "{label}: {error}"
        );
    }
    scratch.status("long");
}

fn write_repeated(
    scratch: &Scratch,
    name: &str,
    head: &str,
    item: &str,
    sep: &str,
    tail: &str,
    size: u64,
) {
    let count = (size as usize - head.len() - tail.len()) / (item.len() + sep.len());
    let mut text = String::with_capacity(size as usize);
    text.push_str(head);
    for i in 0..count {
        if i > 0 {
            text.push_str(sep);
        }
        text.push_str(item);
    }
    text.push_str(tail);
    scratch.write(name, &text);
}

/// Files at their size limit made of the cheapest values, and a short YAML file of aliases to
/// a long string: each is refused with a message naming the limit, quickly, and peak memory
/// stays within what docs/reliability.md states (these took 1.5 to 5.9 GB before).
#[test]
fn files_shaped_to_cost_memory_are_refused_within_bounded_memory() {
    let scratch = Scratch::new();
    let json_limit = 32 * MIB - 16;
    write_repeated(&scratch, "ones.json", "[", "1", ",", "]", json_limit);
    write_repeated(&scratch, "objects.json", "[", "{}", ",", "]", json_limit);
    write_repeated(&scratch, "flow.yaml", "[", "1", ", ", "]\n", 8 * MIB - 16);
    // Actions whose params are a flat list of a million numbers, 16 times.
    let params = format!("[{}]", vec!["1"; 1_000_000].join(","));
    let actions: Vec<String> = (0..16)
        .map(|i| format!(r#"{{"label": "a{i}", "type": "system.set_variables", "params": {{"variables": {{"x": {params}}}}}}}"#))
        .collect();
    scratch.write("params.json", &format!("[{}]", actions.join(",")));
    let mut aliases = format!(
        "- label: a\n  type: system.set_variables\n  params:\n    variables:\n      big: &big \"{}\"\n      copies:\n",
        "x".repeat(100_000)
    );
    while aliases.len() < 1024 * 1024 {
        aliases.push_str("        - *big\n");
    }
    scratch.write("aliases.yaml", &aliases);
    for (name, expected, peak) in [
        ("ones.json", "more than 200000 actions", 160 * MIB),
        ("objects.json", "more than 200000 actions", 160 * MIB),
        ("flow.yaml", "more than 200000 actions", 160 * MIB),
        ("params.json", "more than 4000000 values", 480 * MIB),
        ("aliases.yaml", "once YAML aliases are expanded", 320 * MIB),
    ] {
        let (code, rss, took, err) = measured(&scratch, &["validate", name]);
        eprintln!("{name}: exit {code}, peak {} MiB, {took:?}", rss / MIB);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.starts_with(&format!("{name}:")), "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
        assert!(rss < peak, "{name}: peak {} MiB", rss / MIB);
        assert!(took < Duration::from_secs(60), "{name}: {took:?}");
    }
}

/// A run whose durations were accepted can always be reopened: the stored plan holds them in a
/// form that reads back within the same limit (366 days written as hours, say).
#[test]
fn the_longest_accepted_durations_survive_a_reopen() {
    let scratch = plan()
        .no_op("edge")
        .set("timeout", json!("365d23h59m59s"))
        .set(
            "retry",
            json!({"attempts": 2, "delay": "366d", "backoff": 10}),
        )
        .action("nap", "system.wait", Some(json!({"seconds": "8784h"})))
        .set("timeout", Value::from(366 * 86400))
        .when("false")
        .scratch();
    scratch.summary(&["run", "plan.json", "--run-id", "edge"], 0);
    let status = scratch.status("edge");
    assert_eq!(status["actions"]["edge"]["status"], "complete", "{status}");
    scratch.summary(&["resume", "edge"], 0);
}
