//! Time-boxed fuzzing of everything baton reads from outside: action files (JSON and YAML,
//! built from a grammar of hostile pieces), templates (rendered for real, through the template
//! worker that `baton` itself serves) and state documents (valid ones, then damaged).
//!
//! Each target draws cases until its share of the budget is spent: `BATON_FUZZ_SECONDS` in all
//! (default 60, split evenly between the three), from the seed `BATON_FUZZ_SEED` (default: the
//! clock, printed on failure so a failure can be replayed). A failing case is shrunk before it
//! is reported. Run with `--nocapture` to see how many cases each target ran.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use baton_core::duration::MAX_DURATION;
use baton_core::load::{load_str, Format, Loaded, Problems};
use baton_core::state::{ActionState, ActionStatus, RunState};
use baton_core::template::{render_params, Context, MAX_RENDERED_BYTES};
use baton_core::testutil::{edit, plan, runs_the_same};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Map, Value};

/// This target's share of the budget.
fn budget() -> Duration {
    let total: f64 = std::env::var("BATON_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
        .unwrap_or(60.0);
    Duration::from_secs_f64(total / 3.0)
}

fn seed() -> u64 {
    std::env::var("BATON_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        })
}

/// Draws cases from `strategy` until the budget is spent, checking each; a failure is shrunk
/// and reported with the seed. Returns how many cases ran.
fn fuzz<S: Strategy>(
    name: &str,
    salt: u64,
    strategy: S,
    check: impl Fn(&S::Value) -> Result<(), String>,
) -> u64
where
    S::Value: std::fmt::Debug,
{
    let seed = seed().wrapping_add(salt);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let deadline = Instant::now() + budget();
    let mut cases = 0u64;
    while Instant::now() < deadline {
        let mut tree = match strategy.new_tree(&mut runner) {
            Ok(tree) => tree,
            Err(_) => continue,
        };
        cases += 1;
        let Err(first) = check(&tree.current()) else {
            continue;
        };
        let mut failure = (format!("{:?}", tree.current()), first);
        let mut steps = 0;
        while steps < 500 && tree.simplify() {
            steps += 1;
            match check(&tree.current()) {
                Err(why) => failure = (format!("{:?}", tree.current()), why),
                Ok(()) => {
                    if !tree.complicate() {
                        break;
                    }
                }
            }
        }
        panic!(
            "fuzz {name}: case {cases} failed (replay with BATON_FUZZ_SEED={seed}):\n{}\n\ninput: {}",
            failure.1, failure.0
        );
    }
    eprintln!(
        "fuzz {name}: {cases} cases in {:?}, seed {seed}, nothing found",
        budget()
    );
    cases
}

// ---------------------------------------------------------------------------------------------
// Documents: a tree emitted as JSON or YAML text, so keys can repeat and YAML-only pieces
// (tags, anchors, non-finite numbers) can appear.

#[derive(Debug, Clone)]
enum Node {
    Atom(String),
    Text(String),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    fn json(&self, out: &mut String) {
        match self {
            Node::Atom(a) => out.push_str(a),
            Node::Text(t) => out.push_str(&Value::String(t.clone()).to_string()),
            Node::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.json(out);
                }
                out.push(']');
            }
            Node::Map(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    value.json(out);
                }
                out.push('}');
            }
        }
    }
}

/// Scalars written the same in JSON and YAML flow style, plus YAML-only ones (which make a
/// JSON file invalid: also a case worth having).
fn atom() -> impl Strategy<Value = Node> {
    prop::sample::select(vec![
        "null",
        "true",
        "false",
        "0",
        "-1",
        "1.5",
        "1e308",
        "1e400",
        "18446744073709551616",
        ".nan",
        ".inf",
        "-.inf",
        "!!python/object:os.system x",
        "!custom 1",
        "!!str 5",
        "&a 1",
        "*a",
        "&b [1, 2]",
        "*b",
        "~",
    ])
    .prop_map(|a| Node::Atom(a.to_string()))
}

fn duration_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "366d", "200d", "1d", "23h", "59m", "30s", "500ms", "1.5h", "0s", "x", "-5s", "1e3s",
        ]),
        0..6,
    )
    .prop_map(|pieces| pieces.concat())
}

fn label_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "up", "deploy-1", "net/a"]).prop_map(String::from),
        1 => prop::sample::select(vec!["", "has space", "new\nline", "esc\u{1b}[31m", "rtl\u{202e}x", "*", "a*"]).prop_map(String::from),
        1 => "[a-z]{1,3}",
    ]
}

/// Template text from a grammar that reaches every kind of node: lookups, dynamic reads of
/// `outputs`, arithmetic, repetition by large constants, filters that iterate, loops, `set`.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        "vars.n",
        "vars.s",
        "vars.list",
        "vars.map",
        "(vars.n|int)",
        "outputs.up.x",
        "outputs['up'].list",
        "outputs",
        "1",
        "7",
        "1000000000000",
        "'x'",
        "'xxxxxxxxxx'",
        "[1]",
        "[1, 2, 3]",
        "range(10)",
        "range(1000000)",
        "none",
        "true",
        "vars.missing",
        "2",
        "3",
        "'ab'",
        "vars.s",
        "outputs.up.x",
        "[vars.s]",
    ])
    .prop_map(String::from);
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec![
                    "+", "-", "*", "/", "//", "%", "**", "~", "and", "or", "==", "!=", "<", "in"
                ]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (
                inner.clone(),
                prop::sample::select(vec![
                    "sum",
                    "join",
                    "list",
                    "length",
                    "first",
                    "last",
                    "unique",
                    "sort",
                    "reverse",
                    "upper",
                    "default('d')",
                    "int",
                    "string",
                    "tojson",
                    "map('string')",
                    "attr('x')",
                    "batch(3)",
                    "items",
                    "dictsort"
                ])
            )
                .prop_map(|(a, f)| format!("({a})|{f}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}[{b}]")),
            inner.clone().prop_map(|a| format!("{a}.x")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(a, b, c)| format!("({a} if {b} else {c})")),
            inner.clone().prop_map(|a| format!("not {a}")),
            inner.clone().prop_map(|a| format!("({a} is defined)")),
        ]
    })
}

fn template() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => expression().prop_map(|e| format!("{{{{ {e} }}}}")),
        1 => "[a-z -]{0,8}",
        1 => (expression(), "[a-z]{0,4}").prop_map(|(e, t)| format!("{{% if {e} %}}{t}{{% endif %}}")),
        1 => expression().prop_map(|e| format!("{{% for i in {e} %}}{{{{ i }}}}{{% endfor %}}")),
        1 => expression().prop_map(|e| format!("{{% set y = {e} %}}{{{{ y }}}}")),
        1 => Just("{% set ns = namespace(s='x' * 1000) %}{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}".to_string()),
    ];
    prop::collection::vec(piece, 1..4).prop_map(|pieces| pieces.concat())
}

fn value() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        3 => atom(),
        2 => template().prop_map(Node::Text),
        1 => duration_text().prop_map(Node::Text),
        1 => any::<String>().prop_map(Node::Text),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Node::List),
            prop::collection::vec(("[a-z]{1,2}", inner), 0..4).prop_map(Node::Map),
        ]
    })
}

/// One action: mostly sensible fields, sometimes repeated, odd or hostile.
fn action() -> impl Strategy<Value = Node> {
    let field = prop_oneof![
        3 => label_text().prop_map(|l| ("label".to_string(), Node::Text(l))),
        3 => prop::sample::select(vec!["system.no_op", "system.wait", "system.set_variables", "system.command", "system.fail"])
            .prop_map(|t| ("type".to_string(), Node::Text(t.to_string()))),
        2 => prop::collection::vec(label_text(), 0..3)
            .prop_map(|d| ("depends_on".to_string(), Node::List(d.into_iter().map(Node::Text).collect()))),
        2 => value().prop_map(|v| ("params".to_string(), Node::Map(vec![("variables".into(), Node::Map(vec![("x".into(), v)]))]))),
        1 => duration_text().prop_map(|d| ("params".to_string(), Node::Map(vec![("seconds".into(), Node::Text(d))]))),
        1 => template().prop_map(|t| ("params".to_string(), Node::Map(vec![("command".into(), Node::List(vec![Node::Text("echo".into()), Node::Text(t)]))]))),
        1 => expression().prop_map(|e| ("condition".to_string(), Node::Text(e))),
        1 => duration_text().prop_map(|d| ("timeout".to_string(), Node::Text(d))),
        1 => duration_text().prop_map(|d| ("retry".to_string(), Node::Map(vec![("attempts".into(), Node::Atom("3".into())), ("delay".into(), Node::Text(d))]))),
        1 => (prop::sample::select(vec!["Label", "Name", "description", "colour"]), value()).prop_map(|(k, v)| (k.to_string(), v)),
    ];
    prop::collection::vec(field, 0..7).prop_map(Node::Map)
}

fn document() -> impl Strategy<Value = (Vec<Node>, bool)> {
    (prop::collection::vec(action(), 0..6), any::<bool>())
}

/// Every problem names the file, and no line carries a raw control character.
fn check_problems(file: &str, problems: &Problems) -> Result<(), String> {
    if problems.errors.is_empty() {
        return Err("refused without a problem".into());
    }
    for problem in problems.errors.iter().chain(&problems.warnings) {
        let line = problem.to_string();
        if !line.starts_with(&format!("{file}:")) {
            return Err(format!("does not name the file: {line}"));
        }
        if line.chars().any(|c| c.is_control()) {
            return Err(format!("raw control character: {line:?}"));
        }
    }
    Ok(())
}

/// An accepted plan: durations within the limit, template reads are ancestors, and the stored
/// plan reads back to the same plan (what every reopen does).
fn check_plan(loaded: &Loaded) -> Result<(), String> {
    let plan = &loaded.plan;
    for (idx, action) in plan.actions().iter().enumerate() {
        if action.details().timeout.is_some_and(|t| t > MAX_DURATION) {
            return Err(format!("{}: timeout over the limit", action.label));
        }
        if action
            .details()
            .retry
            .as_ref()
            .is_some_and(|r| r.delay > MAX_DURATION)
        {
            return Err(format!("{}: delay over the limit", action.label));
        }
        let Some(reads) = &action.reads_outputs else {
            return Err(format!("{}: reads not known", action.label));
        };
        let ancestors = plan.ancestors(idx as u32);
        if let Some(read) = reads.iter().find(|r| !ancestors.contains(r)) {
            return Err(format!("{} reads a non-ancestor {read}", action.label));
        }
    }
    let stored = plan.to_json();
    match baton_core::load::read_stored("actions.json", &stored) {
        Ok(again) if runs_the_same(&again, plan) => Ok(()),
        Ok(_) => Err("the stored plan reads back differently".into()),
        Err(problem) => Err(format!(
            "the stored plan does not read back:\n{problem}\n{}",
            String::from_utf8_lossy(&stored)
        )),
    }
}

#[test]
fn fuzz_action_files() {
    let cases = fuzz("action files", 0, document(), |(actions, yaml)| {
        let mut text = String::new();
        Node::List(actions.clone()).json(&mut text);
        // JSON flow text is YAML too; as YAML, the YAML-only atoms are legal.
        let (file, format) = if *yaml {
            ("plan.yaml", Format::Yaml)
        } else {
            ("plan.json", Format::Json)
        };
        let started = Instant::now();
        let result = load_str(file, &text, format);
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("took {:?}", started.elapsed()));
        }
        match &result {
            Ok(loaded) => check_plan(loaded),
            Err(problems) => check_problems(file, problems),
        }
    });
    assert!(cases > 0);
}

fn context() -> Context {
    let vars = json!({"n": "1000000000000", "s": "abc", "list": [1, 2, 3], "map": {"a": 1}});
    let up = json!({"x": "1", "list": ["a", "b"]});
    Context::new(
        "fuzz",
        vars.as_object().expect("object"),
        [("up", up.as_object().expect("object"))].into_iter(),
    )
}

#[test]
fn fuzz_templates() {
    baton_core::template::worker::use_program(PathBuf::from(env!("CARGO_BIN_EXE_baton")));
    let context = context();
    let limit = baton_core::template::worker::WALL_LIMIT + Duration::from_secs(5);
    // Most cases that compute run a worker to one of its limits, seconds each: four at a time.
    let check = |template: &String| -> Result<(), String> {
        // Validated as an action that may read `up`, the way a plan would be.
        let doc = json!([
            {"label": "up", "type": "system.no_op"},
            {"label": "t", "type": "system.set_variables", "depends_on": ["up"],
             "params": {"variables": {"x": template}}},
        ]);
        if load_str("t.json", &doc.to_string(), Format::Json).is_err() {
            // Refused at validation: never rendered.
            return Ok(());
        }
        let params = json!({"x": template});
        let started = Instant::now();
        let rendered = render_params(&params, &context);
        let took = started.elapsed();
        if took > limit {
            return Err(format!("rendering took {took:?}"));
        }
        if let Ok(value) = &rendered {
            let size = value.to_string().len();
            if size > MAX_RENDERED_BYTES + 64 {
                return Err(format!("rendered {size} bytes"));
            }
        }
        Ok(())
    };
    let cases: u64 = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..4)
            .map(|salt| scope.spawn(move || fuzz("templates", salt, template(), check)))
            .collect();
        runs.into_iter().map(|run| run.join().unwrap_or(0)).sum()
    });
    assert!(cases > 0);
}

fn state_plan() -> baton_core::Plan {
    plan(
        r#"[
        {"label": "config", "type": "system.set_variables", "params": {"variables": {"env": "prod"}}},
        {"label": "build", "type": "system.command", "depends_on": ["config"], "params": {"command": ["make"]}},
        {"label": "nap", "type": "system.wait", "depends_on": ["build"], "params": {"seconds": 5}, "timeout": "366d"}
    ]"#,
    )
}

fn a_state(plan: &baton_core::Plan) -> Vec<u8> {
    let now = chrono::Utc::now();
    let mut vars = Map::new();
    vars.insert("env".into(), json!("prod"));
    let mut state = RunState::new("run-1", plan, "abc", vars, now);
    *edit(&mut state).action_mut(0) = ActionState {
        status: ActionStatus::Complete,
        attempt: 1,
        started_at: Some(now),
        finished_at: Some(now),
        outputs: baton_core::Outputs::from(
            json!({"env": "prod", "n": [1, 2.5]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ),
        ..ActionState::default()
    };
    *edit(&mut state).action_mut(2) = ActionState {
        status: ActionStatus::Running,
        attempt: 1,
        started_at: Some(now),
        next_check_at: Some(now),
        handle: Some(Box::new(json!({"until": "2100-01-01T00:00:00Z"}))),
        ..ActionState::default()
    };
    state.to_json(plan)
}

#[test]
fn fuzz_state_documents() {
    let plan = state_plan();
    let doc = a_state(&plan);
    let edits = prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            0usize..16,
            prop::sample::select(vec![
                "",
                "\"",
                "{",
                "}",
                "[",
                "]",
                ",",
                ":",
                "null",
                "0",
                "-1",
                "1e400",
                "18446744073709551615",
                "\"running\"",
                "\"complete\"",
                "\"x\":1",
                "\"2262-04-11T23:47:16Z\"",
                "\"-262144-01-01T00:00:00Z\"",
                "\\u0000",
                "\u{feff}",
                "\"format\":1",
                "\"actions\":{}",
                "[[[[[[[[[[",
            ]),
        ),
        1..5,
    );
    let cases = fuzz("state documents", 0, edits, |edits| {
        let mut bytes = doc.clone();
        for (at, cut, insert) in edits {
            let at = at.index(bytes.len() + 1);
            let end = (at + cut).min(bytes.len());
            bytes.splice(at..end, insert.bytes());
        }
        // What baton writes reads back the same. (An accepted damaged document may be
        // normalised on its first write: timestamps finer than a millisecond are truncated.)
        if let Ok(state) = RunState::from_json(&bytes, &plan) {
            let written = state.to_json(&plan);
            let again = RunState::from_json(&written, &plan).map_err(|e| e.to_string())?;
            if again.to_json(&plan) != written {
                return Err(format!("does not round-trip: {again:?}"));
            }
        }
        Ok(())
    });
    assert!(cases > 0);
}
