//! Hostile input (issue 6, "bad input"): the action-file parser and validator, and the
//! state-document parser, fed arbitrary bytes, valid documents that were then corrupted, and
//! oversized or deeply nested input. Nothing may panic or overflow the stack (these tests run on
//! the test harness's 2 MiB threads); every refusal names the file, and the action and field
//! when there is one.
//!
//! The CLI side (exit codes, the 50 MB file, `/dev/zero`) is in `tests/cli/corpus.rs`.

use baton_core::testutil::edit;
use std::collections::{BTreeSet, HashSet, VecDeque};

use baton_core::load::{
    load_bytes, load_path, load_str, Format, Loaded, Problem, Problems, MAX_DEPENDENCIES,
    MAX_FILE_BYTES, MAX_NESTING, MAX_PARAMS_BYTES, MAX_PROBLEMS, MAX_YAML_BYTES,
};
use baton_core::state::{
    ActionState, ActionStatus, Level, LogEntry, RunState, RunStatus, StateError,
};
use baton_core::template::{render_params, Context, MAX_TAG_OPERATORS};
use baton_core::testutil::{plan, runs_the_same};
use baton_core::Plan;
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------------
// Shared checks

/// The contract of every load: Ok with a sound plan, or Err with at least one problem, each
/// naming `file` and saying something. An accepted plan also survives being stored as
/// `actions.json` and read back (what `baton resume` and the Lambda do).
fn check_load(file: &str, result: &Result<Loaded, Problems>) -> Result<(), TestCaseError> {
    match result {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                check_problem(file, warning)?;
            }
            check_plan(&loaded.plan)?;
            let stored = loaded.plan.to_json();
            match baton_core::load::read_stored("actions.json", &stored) {
                Ok(again) => prop_assert!(
                    runs_the_same(&again, &loaded.plan),
                    "the stored plan reads back differently:\n{}",
                    String::from_utf8_lossy(&stored)
                ),
                Err(problem) => prop_assert!(
                    false,
                    "the stored plan does not load:\n{problem}\n{}",
                    String::from_utf8_lossy(&stored)
                ),
            }
        }
        Err(problems) => {
            prop_assert!(!problems.errors.is_empty(), "Err without errors");
            prop_assert!(problems.errors.len() <= MAX_PROBLEMS + 1);
            for problem in problems.errors.iter().chain(&problems.warnings) {
                check_problem(file, problem)?;
            }
        }
    }
    Ok(())
}

fn check_problem(file: &str, problem: &Problem) -> Result<(), TestCaseError> {
    prop_assert_eq!(&problem.file, file);
    prop_assert!(
        !problem.message.trim().is_empty(),
        "empty message: {problem:?}"
    );
    let line = problem.to_string();
    prop_assert!(line.starts_with(&format!("{file}:")), "{line}");
    if let Some(field) = &problem.field {
        prop_assert!(!field.is_empty(), "{line}");
    }
    Ok(())
}

/// Labels unique, dependencies resolved and ordered before their dependents.
fn check_plan(plan: &Plan) -> Result<(), TestCaseError> {
    let n = plan.len();
    prop_assert_eq!(plan.order().len(), n);
    prop_assert!((0..n as u32).all(|i| plan.deps(i).iter().all(|&d| (d as usize) < n)));
    let mut pos = vec![usize::MAX; n];
    for (p, &idx) in plan.order().iter().enumerate() {
        prop_assert_eq!(pos[idx as usize], usize::MAX, "{} twice in the order", idx);
        pos[idx as usize] = p;
    }
    let labels: HashSet<&str> = plan.actions().iter().map(|a| a.label.as_str()).collect();
    prop_assert_eq!(labels.len(), n, "duplicate labels");
    for idx in 0..n {
        for &dep in plan.deps(idx as u32) {
            prop_assert!(dep as usize != idx, "self dependency");
            prop_assert!(
                pos[dep as usize] < pos[idx],
                "dependency ordered after dependent"
            );
        }
        if let Some(reads) = &plan.actions()[idx].reads_outputs {
            let ancestors: HashSet<u32> = plan.ancestors(idx as u32).into_iter().collect();
            for read in reads {
                prop_assert!(ancestors.contains(read), "reads a non-ancestor");
            }
        }
    }
    Ok(())
}

fn refused(result: Result<Loaded, Problems>) -> Vec<Problem> {
    match result {
        Ok(loaded) => panic!("expected problems, got a plan of {}", loaded.plan.len()),
        Err(problems) => problems.errors,
    }
}

fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Action files: arbitrary bytes

/// Text made of JSON and YAML fragments that reach deeper into the validator than random bytes.
fn fragment_text() -> impl Strategy<Value = String> {
    let fragments = prop::sample::select(vec![
        "[",
        "]",
        "{",
        "}",
        ",",
        ":",
        "\"",
        " ",
        "\n",
        "- ",
        "  ",
        "\"label\"",
        "\"type\"",
        "\"depends_on\"",
        "\"params\"",
        "\"condition\"",
        "\"timeout\"",
        "\"retry\"",
        "\"a\"",
        "\"b\"",
        "\"a*\"",
        "\"*\"",
        "\"system.no_op\"",
        "\"system.wait\"",
        "\"system.command\"",
        "\"system.set_variables\"",
        "\"variables\"",
        "\"seconds\"",
        "\"command\"",
        "\"{{\"",
        "\"{{ outputs['a'].x }}\"",
        "\"{% if %}\"",
        "\"}}\"",
        "1",
        "-1",
        "1e308",
        "1e400",
        "18446744073709551616",
        "0.5",
        "true",
        "null",
        "\"10x\"",
        "\"1h\"",
        "&a",
        "*a",
        "!tag",
        "? ",
        "label: a",
        "type: system.no_op",
        "depends_on: [a]",
        "\u{feff}",
        "é",
        "😀",
        "\\u0000",
        "\\ud800",
        "#",
        "---",
        "...",
        "|",
        ">",
    ]);
    prop::collection::vec(fragments, 0..60).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_bytes_are_refused_or_loaded_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        format in prop::sample::select(vec![Format::Json, Format::Yaml, Format::Detect]),
    ) {
        check_load("fuzz.bin", &load_bytes("fuzz.bin", &bytes, format))?;
    }

    #[test]
    fn json_and_yaml_fragments_are_refused_or_loaded_never_panic(
        text in fragment_text(),
        format in prop::sample::select(vec![Format::Json, Format::Yaml, Format::Detect]),
    ) {
        check_load("fuzz.txt", &load_str("fuzz.txt", &text, format))?;
        // The same text wrapped as one action's params reaches the params and template checks.
        let wrapped = format!(
            "[{{\"label\": \"a\", \"type\": \"system.set_variables\", \"params\": {{\"variables\": {{\"x\": {text}}}}}}}]"
        );
        check_load("fuzz.json", &load_str("fuzz.json", &wrapped, Format::Json))?;
    }
}

// ---------------------------------------------------------------------------------------------
// Action files: valid plans, then corrupted

#[derive(Debug, Clone, Copy)]
enum Kind {
    NoOp,
    Wait,
    SetVariables,
    Command,
    Fail,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::NoOp => "system.no_op",
            Kind::Wait => "system.wait",
            Kind::SetVariables => "system.set_variables",
            Kind::Command => "system.command",
            Kind::Fail => "system.fail",
        }
    }

    fn legacy_name(self) -> &'static str {
        match self {
            Kind::NoOp => "SYSTEM::NoOp",
            Kind::Wait => "SYSTEM::Wait",
            Kind::SetVariables => "SYSTEM::SetVariables",
            Kind::Command => "SYSTEM::Command",
            Kind::Fail => "SYSTEM::Fail",
        }
    }
}

/// A valid plan: action `i` is labelled `a{i}`, depends on earlier actions only, and may read
/// the outputs of one of its dependencies in a template.
#[derive(Debug, Clone)]
struct BasePlan {
    actions: Vec<(Kind, Vec<usize>, Option<usize>, bool)>,
}

impl BasePlan {
    fn action(&self, i: usize) -> Value {
        let (kind, deps, reads, extras) = &self.actions[i];
        let mut action = json!({"label": format!("a{i}"), "type": kind.name()});
        if !deps.is_empty() {
            action["depends_on"] = json!(deps.iter().map(|d| format!("a{d}")).collect::<Vec<_>>());
        }
        let text = match reads {
            Some(k) => format!("{{{{ outputs['a{k}'].x }}}}-{i}"),
            None => format!("value {i}"),
        };
        match kind {
            Kind::NoOp => {}
            Kind::Wait => action["params"] = json!({"seconds": i + 1}),
            Kind::SetVariables => {
                action["params"] =
                    json!({"variables": {"x": text, "n": i, "list": [1, "two", null]}})
            }
            Kind::Command => action["params"] = json!({"command": ["echo", text]}),
            Kind::Fail => action["params"] = json!({"message": text, "retryable": true}),
        }
        if *extras {
            action["timeout"] = json!("1h30m");
            action["retry"] = json!({"attempts": 3, "delay": "10s", "backoff": 2});
            action["description"] = json!(format!("action number {i}"));
            action["condition"] = json!("vars.env is not defined or vars.env != 'prod'");
        }
        action
    }

    fn document(&self) -> Vec<Value> {
        (0..self.actions.len()).map(|i| self.action(i)).collect()
    }

    fn is_ancestor(&self, ancestor: usize, of: usize) -> bool {
        let mut stack = self.actions[of].1.clone();
        let mut seen = HashSet::new();
        while let Some(next) = stack.pop() {
            if next == ancestor {
                return true;
            }
            if seen.insert(next) {
                stack.extend(self.actions[next].1.iter().copied());
            }
        }
        false
    }
}

fn base_plan() -> impl Strategy<Value = BasePlan> {
    let kind = prop::sample::select(vec![
        Kind::NoOp,
        Kind::Wait,
        Kind::SetVariables,
        Kind::Command,
        Kind::Fail,
    ]);
    (2usize..9).prop_flat_map(move |n| {
        let per_action: Vec<_> = (0..n)
            .map(|i| {
                (
                    kind.clone(),
                    prop::collection::btree_set(0..i.max(1), 0..=i.min(3)),
                    any::<prop::sample::Index>(),
                    any::<bool>(),
                    any::<bool>(),
                )
            })
            .collect();
        per_action.prop_map(|actions| BasePlan {
            actions: actions
                .into_iter()
                .enumerate()
                .map(|(i, (kind, deps, pick, reads, extras))| {
                    let deps: Vec<usize> = deps.into_iter().filter(|&d| d < i).collect();
                    let reads = (reads && !deps.is_empty()).then(|| deps[pick.index(deps.len())]);
                    (kind, deps, reads, extras)
                })
                .collect(),
        })
    })
}

/// One corruption (or harmless change) of one action.
#[derive(Debug, Clone)]
enum Mutation {
    LabelOfType(Value),
    LabelText(String),
    TypeText(String),
    TypeOfType(Value),
    DependsOnOfType(Value),
    DependsOnEntry(Value),
    UnknownDependency,
    SelfDependency,
    ParamsOfType(Value),
    UnknownParam,
    BadTemplate(String),
    TooManyOperators,
    Timeout(Value),
    Retry(Value),
    Condition(Value),
    UnknownField(String),
    BothSpellings,
    NotAnObject(Value),
    HugeParams,
    DuplicateLabel,
    ReadsNonAncestor,
    Cycle,
    DeepParams(usize),
    // Harmless:
    UnicodeDescription(String),
    LegacySpellings,
    NullOptionals,
    UnmatchedPattern,
    GenerousButValid,
}

/// What a mutation must cause.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// A problem at this action (whatever else goes wrong, each action is read and reported).
    ErrorAt(usize),
    /// The plan is refused (cycles and template reads are checked only once the rest is valid).
    Refused,
    /// The file is refused as a whole with this text in the message.
    FileLevel(&'static str),
    /// Still valid.
    Nothing,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let odd_value = prop::sample::select(vec![
        json!(null),
        json!(true),
        json!(0),
        json!(-1),
        json!(1e308),
        json!(u64::MAX),
        json!(0.5),
        json!("text"),
        json!([]),
        json!([1, [2, [3]]]),
        json!({}),
        json!({"k": {"k": "v"}}),
    ]);
    let bad_label = prop::sample::select(vec![
        String::new(),
        "has space".into(),
        "x".repeat(300),
        "ünïcödé".into(),
        "tab\there".into(),
        "nul\u{0}byte".into(),
        "emoji😀".into(),
        "new\nline".into(),
        "\u{202e}rtl".into(),
        "a\"quote".into(),
    ]);
    let bad_type = prop::sample::select(vec![
        "system.nope".to_string(),
        "".into(),
        "SYSTEM::".into(),
        "::".into(),
        "aws.".into(),
        "system.no_op ".into(),
        "SYSTEM::NoOpExtra".into(),
        "ＳＹＳＴＥＭ::NoOp".into(),
        "x".repeat(5000),
    ]);
    let bad_template = prop::sample::select(vec![
        "{{".to_string(),
        "{{ oops ".into(),
        "{% if %}".into(),
        "{% for x in %}{% endfor %}".into(),
        "{{ outputs['nope'].x }}".into(),
        "{{ outputs[ }}".into(),
        "{{ 'unclosed }}".into(),
        "{% raw %}".into(),
        "{% endif %}".into(),
    ]);
    let bad_timeout = prop::sample::select(vec![
        json!("-5"),
        json!("10x"),
        json!(""),
        json!("1e400"),
        json!(1e308),
        json!(u64::MAX),
        json!(-1),
        json!(0),
        json!(true),
        json!([1]),
        json!("9999999999999999999999h"),
        json!("1h-5m"),
    ]);
    let bad_retry = prop::sample::select(vec![
        json!("3"),
        json!({"attempts": 0}),
        json!({"attempts": 1e10}),
        json!({"attempts": -1}),
        json!({"backoff": 11}),
        json!({"backoff": "x"}),
        json!({"delay": "forever"}),
        json!({"delay": 1e308}),
        json!({"extra": 1}),
        json!([]),
    ]);
    let bad_condition = prop::sample::select(vec![
        json!("a =="),
        json!("{{"),
        json!(5),
        json!([]),
        json!({"x": 1}),
        json!("outputs['nope'].x == 1"),
        json!("not ".repeat(10_000) + "x"),
    ]);
    let common = prop_oneof![
        odd_value
            .clone()
            .prop_filter("a string is a label", |v| !v.is_string())
            .prop_map(Mutation::LabelOfType),
        bad_label.prop_map(Mutation::LabelText),
        bad_type.prop_map(Mutation::TypeText),
        odd_value
            .clone()
            .prop_filter("a string is a type", |v| !v.is_string())
            .prop_map(Mutation::TypeOfType),
        odd_value
            .clone()
            .prop_filter("lists and null are fine", |v| !(v.is_array()
                || v.is_null()))
            .prop_map(Mutation::DependsOnOfType),
        odd_value
            .clone()
            .prop_filter("strings are labels", |v| !v.is_string())
            .prop_map(Mutation::DependsOnEntry),
        Just(Mutation::UnknownDependency),
        Just(Mutation::SelfDependency),
        odd_value
            .prop_filter("objects and null are fine", |v| !(v.is_object()
                || v.is_null()))
            .prop_map(Mutation::ParamsOfType),
        Just(Mutation::UnknownParam),
        bad_template.prop_map(Mutation::BadTemplate),
        Just(Mutation::TooManyOperators),
        bad_timeout.prop_map(Mutation::Timeout),
        bad_retry.prop_map(Mutation::Retry),
        bad_condition.prop_map(Mutation::Condition),
        "[a-z]{1,12}"
            .prop_filter("not a field", |k| ![
                "label",
                "type",
                "params",
                "condition",
                "timeout",
                "retry",
                "description",
                "name",
                "kind",
                "spec"
            ]
            .contains(&k.as_str()))
            .prop_map(Mutation::UnknownField),
        Just(Mutation::BothSpellings),
        prop::sample::select(vec![
            json!(null),
            json!(1),
            json!("a"),
            json!([]),
            json!([{"label": "x"}])
        ])
        .prop_map(Mutation::NotAnObject),
        Just(Mutation::DuplicateLabel),
        Just(Mutation::ReadsNonAncestor),
        Just(Mutation::Cycle),
        (MAX_NESTING..MAX_NESTING + 400).prop_map(Mutation::DeepParams),
        any::<String>().prop_map(Mutation::UnicodeDescription),
        Just(Mutation::LegacySpellings),
        Just(Mutation::NullOptionals),
        Just(Mutation::UnmatchedPattern),
        Just(Mutation::GenerousButValid),
    ];
    // A megabyte per case is slow to parse in a debug build: rarely.
    prop_oneof![60 => common, 1 => Just(Mutation::HugeParams)]
}

/// Applies `mutation` to action `i`, borrowing action `other` (which no mutation touches) where
/// it needs a second one. Returns what must follow, or `None` if it does not apply here.
fn apply(
    base: &BasePlan,
    doc: &mut [Value],
    i: usize,
    other: Option<usize>,
    mutation: &Mutation,
) -> Option<Expect> {
    let action = doc[i].as_object_mut()?;
    let kind = base.actions[i].0;
    let nest = |depth: usize| {
        (0..depth).fold(json!("bottom"), |inner, level| {
            if level % 2 == 0 {
                json!([inner])
            } else {
                json!({ "k": inner })
            }
        })
    };
    let expect = match mutation {
        Mutation::LabelOfType(v) => {
            action.insert("label".into(), v.clone());
            Expect::ErrorAt(i)
        }
        Mutation::LabelText(text) => {
            action.insert("label".into(), json!(text));
            Expect::ErrorAt(i)
        }
        Mutation::TypeText(text) => {
            action.insert("type".into(), json!(text));
            Expect::ErrorAt(i)
        }
        Mutation::TypeOfType(v) => {
            action.insert("type".into(), v.clone());
            Expect::ErrorAt(i)
        }
        Mutation::DependsOnOfType(v) => {
            action.insert("depends_on".into(), v.clone());
            Expect::ErrorAt(i)
        }
        Mutation::DependsOnEntry(v) => {
            let mut deps = action.get("depends_on").cloned().unwrap_or(json!([]));
            deps.as_array_mut()?.push(v.clone());
            action.insert("depends_on".into(), deps);
            Expect::ErrorAt(i)
        }
        Mutation::UnknownDependency | Mutation::SelfDependency => {
            let mut deps = action.get("depends_on").cloned().unwrap_or(json!([]));
            let name = if matches!(mutation, Mutation::SelfDependency) {
                format!("a{i}")
            } else {
                format!("no-such-action-{i}")
            };
            deps.as_array_mut()?.push(json!(name));
            action.insert("depends_on".into(), deps);
            Expect::ErrorAt(i)
        }
        Mutation::ParamsOfType(v) => {
            action.insert("params".into(), v.clone());
            Expect::ErrorAt(i)
        }
        Mutation::UnknownParam => {
            let mut params = action.get("params").cloned().unwrap_or(json!({}));
            params
                .as_object_mut()?
                .insert("zzz_unknown".into(), json!(1));
            action.insert("params".into(), params);
            Expect::ErrorAt(i)
        }
        Mutation::BadTemplate(text) => {
            let params = match kind {
                Kind::SetVariables => json!({"variables": {"x": text}}),
                Kind::Command => json!({"command": ["echo", text]}),
                Kind::Fail => json!({"message": text}),
                Kind::NoOp | Kind::Wait => return None,
            };
            action.insert("params".into(), params);
            // Reading an unknown action is caught with the other template reads, once the
            // rest of the plan is valid; syntax errors are caught with the action.
            if text.contains("nope") {
                Expect::Refused
            } else {
                Expect::ErrorAt(i)
            }
        }
        Mutation::TooManyOperators => {
            let text = format!("{{{{ vars{} }}}}", ".a".repeat(MAX_TAG_OPERATORS * 50));
            let params = match kind {
                Kind::SetVariables => json!({"variables": {"x": text}}),
                Kind::Command => json!({"command": ["echo", text]}),
                Kind::Fail => json!({"message": text}),
                Kind::Wait => json!({"seconds": text}),
                Kind::NoOp => {
                    action.insert("condition".into(), json!(text));
                    return Some(Expect::ErrorAt(i));
                }
            };
            action.insert("params".into(), params);
            Expect::ErrorAt(i)
        }
        Mutation::Timeout(v) => {
            action.insert("timeout".into(), v.clone());
            Expect::ErrorAt(i)
        }
        Mutation::Retry(v) => {
            action.insert("retry".into(), v.clone());
            Expect::ErrorAt(i)
        }
        Mutation::Condition(v) => {
            action.insert("condition".into(), v.clone());
            // A condition naming an unknown action is caught with the template reads.
            if v.as_str().is_some_and(|c| c.contains("nope")) {
                Expect::Refused
            } else {
                Expect::ErrorAt(i)
            }
        }
        Mutation::UnknownField(key) => {
            action.insert(key.clone(), json!("red"));
            Expect::ErrorAt(i)
        }
        Mutation::BothSpellings => {
            let label = action.get("label").cloned()?;
            action.insert("Label".into(), label);
            Expect::ErrorAt(i)
        }
        Mutation::NotAnObject(v) => {
            doc[i] = v.clone();
            Expect::ErrorAt(i)
        }
        Mutation::HugeParams => {
            let blob = "b".repeat(MAX_PARAMS_BYTES + 1);
            action.insert("params".into(), json!({"variables": {"blob": blob}}));
            action.insert("type".into(), json!("system.set_variables"));
            Expect::ErrorAt(i)
        }
        Mutation::DuplicateLabel => {
            let other = other?;
            action.insert("label".into(), json!(format!("a{other}")));
            Expect::ErrorAt(i.max(other))
        }
        Mutation::ReadsNonAncestor => {
            let other = other.filter(|&o| !base.is_ancestor(o, i))?;
            action.insert("type".into(), json!("system.set_variables"));
            action.insert(
                "params".into(),
                json!({"variables": {"x": format!("{{{{ outputs['a{other}'].x }}}}")}}),
            );
            Expect::Refused
        }
        Mutation::Cycle => {
            // `other` depends (transitively) on `i`: make `i` depend on `other` too.
            let other = other.filter(|&o| base.is_ancestor(i, o))?;
            let mut deps = action.get("depends_on").cloned().unwrap_or(json!([]));
            deps.as_array_mut()?.push(json!(format!("a{other}")));
            action.insert("depends_on".into(), deps);
            Expect::Refused
        }
        Mutation::DeepParams(depth) => {
            // The action sits 2 levels down and the value under params.variables.deep 3 more.
            action.insert("type".into(), json!("system.set_variables"));
            action.insert(
                "params".into(),
                json!({"variables": {"deep": nest(*depth)}}),
            );
            Expect::FileLevel("nested too deeply")
        }
        Mutation::UnicodeDescription(text) => {
            action.insert("description".into(), json!(text));
            Expect::Nothing
        }
        Mutation::LegacySpellings => {
            for (from, to) in [
                ("label", "Name"),
                ("type", "Kind"),
                ("depends_on", "DependsOn"),
                ("params", "Spec"),
            ] {
                if let Some(v) = action.remove(from) {
                    action.insert(to.into(), v);
                }
            }
            action.insert("Kind".into(), json!(kind.legacy_name()));
            Expect::Nothing
        }
        Mutation::NullOptionals => {
            for key in ["condition", "timeout", "retry", "description"] {
                action.insert(key.into(), Value::Null);
            }
            if !action.contains_key("depends_on") {
                action.insert("depends_on".into(), Value::Null);
            }
            Expect::Nothing
        }
        Mutation::UnmatchedPattern => {
            let mut deps = action.get("depends_on").cloned().unwrap_or(json!([]));
            deps.as_array_mut()?.push(json!("zz-*-nothing-*"));
            action.insert("depends_on".into(), deps);
            Expect::Nothing
        }
        Mutation::GenerousButValid => {
            action.insert("timeout".into(), json!("8760h"));
            action.insert(
                "retry".into(),
                json!({"attempts": 100, "delay": "1d", "backoff": 10}),
            );
            action.insert("condition".into(), json!(true));
            Expect::Nothing
        }
    };
    Some(expect)
}

fn check_expectations(
    result: &Result<Loaded, Problems>,
    expectations: &[(usize, Mutation, Expect)],
) -> Result<(), TestCaseError> {
    let file_level: Vec<&'static str> = expectations
        .iter()
        .filter_map(|(_, _, e)| match e {
            Expect::FileLevel(text) => Some(*text),
            _ => None,
        })
        .collect();
    let errors = match result {
        Ok(_) => {
            for (i, mutation, expect) in expectations {
                prop_assert_eq!(
                    expect,
                    &Expect::Nothing,
                    "accepted despite {:?} at {}",
                    mutation,
                    i
                );
            }
            return Ok(());
        }
        Err(problems) => &problems.errors,
    };
    let text = lines(errors);
    if let Some(wanted) = file_level.first() {
        prop_assert!(
            errors
                .iter()
                .any(|p| p.index.is_none() && p.message.contains(wanted)),
            "no file-level \"{wanted}\" in:\n{text}"
        );
        return Ok(());
    }
    for (i, mutation, expect) in expectations {
        if let Expect::ErrorAt(index) = expect {
            prop_assert!(
                errors.iter().any(|p| p.index == Some(*index)),
                "{mutation:?} at {i}: nothing reported for actions[{index}]:\n{text}"
            );
        }
    }
    prop_assert!(
        expectations.iter().any(|(_, _, e)| *e != Expect::Nothing),
        "refused although every change was harmless:\n{text}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn corrupted_plans_are_refused_at_the_corruption_and_never_panic(
        base in base_plan(),
        mutations in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..4),
        others in prop::collection::vec(any::<prop::sample::Index>(), 3),
        yaml in any::<bool>(),
        pretty in any::<bool>(),
        bom in any::<bool>(),
    ) {
        let n = base.actions.len();
        let mut doc = base.document();
        // Each mutation gets its own action; a second action it borrows is never mutated.
        let mut targets: Vec<(usize, Mutation)> = Vec::new();
        for (pick, mutation) in mutations {
            let i = pick.index(n);
            if targets.iter().all(|(t, _)| *t != i) {
                targets.push((i, mutation));
            }
        }
        let untouched: Vec<usize> = (0..n).filter(|k| targets.iter().all(|(t, _)| t != k)).collect();
        let mut expectations = Vec::new();
        for (m, (i, mutation)) in targets.into_iter().enumerate() {
            let other = (!untouched.is_empty())
                .then(|| untouched[others[m % others.len()].index(untouched.len())]);
            if let Some(expect) = apply(&base, &mut doc, i, other, &mutation) {
                expectations.push((i, mutation, expect));
            }
        }
        let (file, format, mut text) = if yaml {
            ("plan.yaml", Format::Yaml, serde_yaml::to_string(&doc).expect("yaml"))
        } else if pretty {
            ("plan.json", Format::Json, serde_json::to_string_pretty(&doc).expect("json"))
        } else {
            ("plan.json", Format::Json, serde_json::to_string(&doc).expect("json"))
        };
        if bom {
            text.insert(0, '\u{feff}');
        }
        let result = load_str(file, &text, format);
        check_load(file, &result)?;
        check_expectations(&result, &expectations)?;
    }
}

proptest! {
    // Each case loads every prefix of a plan: a thousand loads or more.
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn every_truncation_of_a_valid_json_plan_is_refused_with_a_position(base in base_plan()) {
        let text = serde_json::to_string_pretty(&base.document()).expect("json");
        prop_assert!(load_str("plan.json", &text, Format::Json).is_ok());
        let cuts: Vec<usize> = (0..text.len()).filter(|&c| text.is_char_boundary(c)).collect();
        for cut in cuts {
            let prefix = &text[..cut];
            let result = load_str("plan.json", prefix, Format::Json);
            check_load("plan.json", &result)?;
            let errors = match result {
                Ok(_) => {
                    return Err(TestCaseError::fail(format!("a truncated plan was accepted: {prefix}")))
                }
                Err(problems) => problems.errors,
            };
            prop_assert_eq!(errors.len(), 1, "{}", lines(&errors));
            if !prefix.trim().is_empty() {
                prop_assert!(errors[0].position.is_some(), "{}", errors[0]);
            }
        }
    }

    /// YAML prefixes cut at a line end can be valid shorter plans; the rest must not panic.
    #[test]
    fn every_truncation_of_a_yaml_plan_is_handled(base in base_plan()) {
        let text = serde_yaml::to_string(&base.document()).expect("yaml");
        for cut in (0..text.len()).filter(|&c| text.is_char_boundary(c)).step_by(5) {
            check_load("plan.yaml", &load_str("plan.yaml", &text[..cut], Format::Yaml))?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Action files: oversized and deeply nested input

fn set_variables(label: &str, value: Value) -> Value {
    json!({"label": label, "type": "system.set_variables", "params": {"variables": {"x": value}}})
}

#[test]
fn files_over_the_limit_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Sparse files: the size is what counts, and nothing is read.
    for (name, size, limit) in [
        ("big.json", 50 * 1024 * 1024, "32 MiB"),
        ("big.yaml", MAX_YAML_BYTES + 1, "8 MiB"),
        ("big", MAX_FILE_BYTES + 1, "32 MiB"),
    ] {
        let path = dir.path().join(name);
        std::fs::File::create(&path)
            .and_then(|f| f.set_len(size))
            .expect("sparse file");
        let errors = refused(load_path(&path));
        assert_eq!(errors.len(), 1, "{}", lines(&errors));
        let line = errors[0].to_string();
        assert!(
            line.starts_with(&format!("{}: the file is ", path.display())),
            "{line}"
        );
        assert!(line.contains(&format!("({size} bytes)")), "{line}");
        assert!(line.contains(&format!("limited to {limit}")), "{line}");
        assert!(line.contains("split the plan"), "{line}");
    }
    // At the limit the size is fine (and the zeros are what is wrong).
    let path = dir.path().join("at-limit.yaml");
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(MAX_YAML_BYTES))
        .expect("sparse file");
    let line = refused(load_path(&path))[0].to_string();
    assert!(!line.contains("limited to"), "{line}");
}

#[cfg(unix)]
#[test]
fn endless_input_is_read_only_up_to_the_limit() {
    let errors = refused(load_path(std::path::Path::new("/dev/zero")));
    assert_eq!(
        errors[0].to_string(),
        "/dev/zero: the file holds more than 32 MiB; action files are limited to 32 MiB: split \
         the plan into several, or move large values out of it (template_file, S3 objects)"
    );
}

#[test]
fn bytes_over_the_limit_and_invalid_utf8_are_refused() {
    let big = vec![b' '; MAX_FILE_BYTES as usize + 1];
    let line = refused(load_bytes("big.json", &big, Format::Json))[0].to_string();
    assert!(
        line.starts_with("big.json: the file is 32.0 MiB (33554433 bytes)"),
        "{line}"
    );

    let bytes = b"[\n  {\"label\": \"a\xff\", \"type\": \"system.no_op\"}\n]";
    let errors = refused(load_bytes("bin.json", bytes, Format::Json));
    assert_eq!(
        lines(&errors),
        "bin.json:2:15: the file is not UTF-8 text (byte 0xff is not valid here)"
    );
}

#[test]
fn oversized_params_name_the_action_and_the_field() {
    // One 10 MB value: the field is the value's path.
    let plan = json!([
        {"label": "first", "type": "system.no_op"},
        set_variables("payload", json!("x".repeat(10 * 1024 * 1024))),
    ]);
    let errors = refused(load_str("big.json", &plan.to_string(), Format::Json));
    assert_eq!(
        lines(&errors),
        "big.json: actions[1] \"payload\": params.variables.x: is 10.0 MiB of JSON; an action's \
         params may hold at most 1 MiB in all: put large content in a file (template_file) or an \
         S3 object and pass its name"
    );
    // Many medium values under one key: that key is the field.
    let many: Map<String, Value> = (0..30)
        .map(|k| (format!("v{k}"), json!("y".repeat(40_000))))
        .collect();
    let plan =
        json!([{"label": "many", "type": "system.set_variables", "params": {"variables": many}}]);
    let errors = refused(load_str("many.json", &plan.to_string(), Format::Json));
    assert_eq!(errors.len(), 1, "{}", lines(&errors));
    let line = errors[0].to_string();
    assert!(
        line.starts_with("many.json: actions[0] \"many\": params.variables: is 1.1 MiB of JSON"),
        "{line}"
    );
    // Two halves: no single culprit, so the field is params.
    let plan = json!([{"label": "halves", "type": "system.set_variables",
        "params": {"variables": {"a": "h".repeat(600_000)}, "b": "h".repeat(600_000)}}]);
    let errors = refused(load_str("halves.json", &plan.to_string(), Format::Json));
    assert_eq!(errors.len(), 1, "{}", lines(&errors));
    let line = errors[0].to_string();
    assert!(
        line.starts_with("halves.json: actions[0] \"halves\": params: hold 1.1 MiB of JSON"),
        "{line}"
    );

    // Exactly at the limit is accepted; one byte more is not.
    let params_at = |size: usize| {
        let overhead = json!({"variables": {"x": ""}}).to_string().len();
        json!({"variables": {"x": "z".repeat(size - overhead)}})
    };
    for (size, ok) in [(MAX_PARAMS_BYTES, true), (MAX_PARAMS_BYTES + 1, false)] {
        let params = params_at(size);
        assert_eq!(params.to_string().len(), size);
        let plan = json!([{"label": "edge", "type": "system.set_variables", "params": params}]);
        let result = load_str("edge.json", &plan.to_string(), Format::Json);
        assert_eq!(result.is_ok(), ok, "{size} bytes");
    }
}

#[test]
fn oversized_params_do_not_hide_the_actions_other_problems() {
    let plan = json!([{
        "label": "big", "type": "system.set_variables", "timeout": "10x",
        "params": {"variables": {"x": "q".repeat(MAX_PARAMS_BYTES)}}
    }]);
    let errors = refused(load_str("t.json", &plan.to_string(), Format::Json));
    let text = lines(&errors);
    assert_eq!(errors.len(), 2, "{text}");
    assert!(text.contains("params.variables.x: is 1.0 MiB"), "{text}");
    assert!(text.contains("actions[0] \"big\": timeout:"), "{text}");
}

fn nested_json(depth: usize, open: &str, close: &str) -> String {
    format!("{}1{}", open.repeat(depth), close.repeat(depth))
}

#[test]
fn deep_json_nesting_is_refused_with_a_position() {
    for (what, value) in [
        ("lists", nested_json(100_000, "[", "]")),
        ("objects", nested_json(100_000, "{\"a\":", "}")),
        ("unclosed", "[".repeat(100_000)),
    ] {
        let text = format!(
            "[{{\"label\": \"a\", \"type\": \"system.set_variables\", \"params\": {{\"variables\": {{\"x\": {value}}}}}}}]"
        );
        let errors = refused(load_str("deep.json", &text, Format::Json));
        assert_eq!(errors.len(), 1, "{what}");
        assert!(errors[0].position.is_some(), "{what}: {}", errors[0]);
        let line = errors[0].to_string();
        assert!(
            line.starts_with("deep.json:1:") && line.contains("invalid JSON: nested too deeply"),
            "{what}: {line}"
        );
        // The whole document nested, too (the streaming reader and the object reader).
        let top = errors_for(&format!("[{value}]"), Format::Json);
        assert!(top.contains("nested too deeply"), "{what}: {top}");
        let top = errors_for(&format!("{{\"a\": {value}}}"), Format::Detect);
        assert!(top.contains("nested too deeply"), "{what}: {top}");
    }
}

fn errors_for(text: &str, format: Format) -> String {
    lines(&refused(load_str("t.txt", text, format)))
}

#[test]
fn deep_yaml_nesting_is_refused() {
    // Flow style, 100k deep.
    let flow = format!(
        "- label: a\n  type: system.set_variables\n  params: {{variables: {{x: {}}}}}\n",
        nested_json(100_000, "[", "]")
    );
    let text = errors_for(&flow, Format::Yaml);
    assert!(
        text.starts_with("t.txt:3:") && text.contains("invalid YAML: nested too deeply"),
        "{text}"
    );
    // Block style, 300 deep.
    let mut block =
        String::from("- label: a\n  type: system.set_variables\n  params:\n    variables:\n");
    for level in 0..300 {
        block.push_str(&" ".repeat(6 + 2 * level));
        block.push_str("k:\n");
    }
    let text = errors_for(&block, Format::Yaml);
    assert!(text.contains("invalid YAML: nested too deeply"), "{text}");
}

/// The deepest document each format accepts is also one the stored `actions.json` can hold.
#[test]
fn the_nesting_limit_is_the_same_for_json_and_yaml() {
    // The list of actions, the action, params and variables are 4 levels.
    let ok = MAX_NESTING - 4;
    for (depth, accepted) in [(ok, true), (ok + 1, false)] {
        let value = nested_json(depth, "[", "]");
        let json_text = format!("[{}]", set_variables("a", Value::Null)).replace("null", &value);
        let yaml_text = format!(
            "- label: a\n  type: system.set_variables\n  params: {{variables: {{x: {value}}}}}\n"
        );
        for (text, format) in [(json_text, Format::Json), (yaml_text, Format::Yaml)] {
            let result = load_str("t", &text, format);
            assert_eq!(result.is_ok(), accepted, "{format:?} at depth {depth}");
            if let Ok(loaded) = result {
                check_load("t", &Ok(loaded)).expect("stored plan loads");
            }
        }
    }
}

#[test]
fn yaml_alias_bombs_are_refused() {
    let mut text =
        String::from("- label: a\n  type: system.set_variables\n  params:\n    variables:\n");
    text.push_str("      l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..10 {
        let refs = vec![format!("*l{}", level - 1); 10].join(", ");
        text.push_str(&format!("      l{level}: &l{level} [{refs}]\n"));
    }
    let text = errors_for(&text, Format::Yaml);
    assert!(
        text.contains("invalid YAML: aliases expand to too much data"),
        "{text}"
    );
}

fn chain(n: usize, extra: impl Fn(usize) -> Value) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut action = json!({"label": format!("a{i}"), "type": "system.no_op"});
            if i > 0 {
                action["depends_on"] = json!([format!("a{}", i - 1)]);
            }
            if let (Some(action), Value::Object(extra)) = (action.as_object_mut(), extra(i)) {
                action.extend(extra);
            }
            action
        })
        .collect()
}

/// No recursion anywhere in validation: a 100k-deep chain on a 2 MiB test thread.
#[test]
fn a_100k_deep_chain_validates_without_recursion() {
    let text = Value::Array(chain(100_000, |_| Value::Null)).to_string();
    let loaded = load_str("chain.json", &text, Format::Json).expect("valid chain");
    let plan = &loaded.plan;
    assert_eq!(plan.len(), 100_000);
    assert_eq!(plan.layers().len(), 100_000);
    assert_eq!(plan.ancestors(99_999).len(), 99_999);
    assert_eq!(plan.descendants(0).len(), 100_000);
    // A long chain closed into a cycle: one message, the middle elided.
    let mut actions = chain(20_000, |_| Value::Null);
    actions[0]["depends_on"] = json!(["a19999"]);
    let errors = refused(load_str(
        "cycle.json",
        &Value::Array(actions).to_string(),
        Format::Json,
    ));
    assert_eq!(
        lines(&errors),
        format!(
            "cycle.json: actions[0] \"a0\": depends_on: dependency cycle: {} → … 19980 more … → {} → a0",
            (0..10).map(|i| format!("a{i}")).collect::<Vec<_>>().join(" → "),
            (19_990..20_000).map(|i| format!("a{i}")).collect::<Vec<_>>().join(" → "),
        )
    );
}

/// Every action of a long chain reads the outputs of actions far up the chain: checked in one
/// pass (an ancestor walk per action took minutes at 100k; graph.rs tests the pass at 100k),
/// and a read of a non-ancestor at the far end is still caught.
#[test]
fn template_reads_along_a_long_chain_are_checked_in_linear_time() {
    let reads = |i: usize| {
        if i < 2 {
            return Value::Null;
        }
        json!({
            "type": "system.set_variables",
            "params": {"variables": {"x": format!("{{{{ outputs['a0'].x }}}}{{{{ outputs['a{}'].x }}}}", i / 2)}}
        })
    };
    let n = 10_000;
    let text = Value::Array(chain(n, reads)).to_string();
    let loaded = load_str("reads.json", &text, Format::Json).expect("valid");
    assert_eq!(
        loaded.plan.actions()[n - 1].reads_outputs,
        Some(vec![0, (n as u32 - 1) / 2])
    );
    // Near the end of a shorter chain, an action reads the one after it.
    let n = 1_000;
    let mut actions = chain(n, reads);
    actions[n - 2]["params"]["variables"]["x"] =
        json!(format!("{{{{ outputs['a{}'].x }}}}", n - 1));
    let errors = refused(load_str(
        "reads.json",
        &Value::Array(actions).to_string(),
        Format::Json,
    ));
    assert_eq!(
        lines(&errors),
        format!(
            "reads.json: actions[{}] \"a{}\": params.variables.x: template reads outputs[\"a{}\"] \
             but \"a{}\" is not a dependency; add it to depends_on so it finishes first",
            n - 2,
            n - 2,
            n - 1,
            n - 1
        )
    );
}

#[test]
fn hostile_graphs_stay_bounded() {
    // "*" in every action of 2,000: 4 million dependencies.
    let star: Vec<Value> = (0..2_000)
        .map(|i| json!({"label": format!("s{i}"), "type": "system.no_op", "depends_on": ["*"]}))
        .collect();
    let text = errors_for(&Value::Array(star).to_string(), Format::Json);
    assert!(
        text.contains(&format!("more than {MAX_DEPENDENCIES} dependencies")),
        "{text}"
    );

    // 3,000 distinct patterns that start with "*", against 4,000 labels.
    let patterns: Vec<Value> = (0..4_000)
        .map(|i| json!({"label": format!("p{i}"), "type": "system.no_op", "depends_on": [format!("*x{i}")]}))
        .collect();
    let text = errors_for(&Value::Array(patterns).to_string(), Format::Json);
    assert!(text.contains("label comparisons"), "{text}");

    // A pattern of a million stars, and one with more fixed text than any label.
    let stars = json!([
        {"label": "a", "type": "system.no_op"},
        {"label": "b", "type": "system.no_op", "depends_on": ["*".repeat(1_000_000), format!("{}*", "x".repeat(300))]}
    ]);
    let loaded = load_str("stars.json", &stars.to_string(), Format::Json).expect("valid");
    assert_eq!(loaded.plan.deps(1), [0]);
    assert_eq!(loaded.warnings.len(), 1);

    // One action closing 10,000 cycles: only the first few are reported.
    let n = 10_000;
    let mut actions: Vec<Value> = (0..n)
        .map(|i| json!({"label": format!("c{i}"), "type": "system.no_op", "depends_on": [format!("c{}", i + 1)]}))
        .collect();
    actions[n - 1]["depends_on"] = json!((0..n - 1).map(|i| format!("c{i}")).collect::<Vec<_>>());
    let errors = refused(load_str(
        "cycles.json",
        &Value::Array(actions).to_string(),
        Format::Json,
    ));
    // The first few are listed, and the rest counted: 9,999 in all, one per dependency of the
    // last action.
    let max = baton_core::graph::MAX_CYCLES;
    assert_eq!(errors.len(), max + 1, "{}", lines(&errors));
    assert!(errors[..max]
        .iter()
        .all(|p| p.message.starts_with("dependency cycle: ")));
    assert_eq!(
        errors[max].to_string(),
        format!(
            "cycles.json: {} more dependency cycles not listed (only the first {max} are); \
             break these and validate again",
            n - 1 - max
        )
    );
}

#[test]
fn problems_are_capped_with_a_count_of_the_rest() {
    let long_label = "l".repeat(256);
    let plan = json!([{
        "label": long_label,
        "type": "system.no_op",
        "depends_on": vec!["missing"; 50_000],
    }]);
    let problems = match load_str("many.json", &plan.to_string(), Format::Json) {
        Ok(_) => panic!("valid?"),
        Err(problems) => problems,
    };
    assert_eq!(problems.errors.len(), MAX_PROBLEMS + 1);
    assert_eq!(
        problems.errors[MAX_PROBLEMS].to_string(),
        format!(
            "many.json: {} more problems not listed (only the first {MAX_PROBLEMS} are)",
            50_000 - MAX_PROBLEMS
        )
    );
    // Unmatched patterns are warnings: capped the same way.
    let plan = json!([{"label": "w", "type": "system.no_op", "depends_on": vec!["none-*"; 5_000]}]);
    let loaded = load_str("warn.json", &plan.to_string(), Format::Json).expect("warnings only");
    assert_eq!(loaded.warnings.len(), MAX_PROBLEMS + 1);

    // An invalid (here: 1 MB) label is not repeated in the messages about its other fields.
    let mut action = json!({"label": "x".repeat(1_000_000), "type": "system.no_op"});
    for k in 0..100 {
        action[format!("unknown{k}")] = json!(1);
    }
    let errors = refused(load_str(
        "label.json",
        &Value::Array(vec![action]).to_string(),
        Format::Json,
    ));
    let total: usize = errors.iter().map(|p| p.to_string().len()).sum();
    assert!(total < 1_000_000 + 100 * 200, "{total} bytes of messages");
}

#[test]
fn hints_stay_cheap_with_many_unknown_names() {
    let actions: Vec<Value> = (0..20_000)
        .map(|i| json!({"label": format!("act{i:06}"), "type": "system.no_op", "depends_on": [format!("xct{i:06}")]}))
        .collect();
    let errors = refused(load_str(
        "hints.json",
        &Value::Array(actions).to_string(),
        Format::Json,
    ));
    assert_eq!(errors.len(), MAX_PROBLEMS + 1);
    assert_eq!(
        errors[0].to_string(),
        // Never the action itself, which it could not depend on.
        "hints.json: actions[0] \"act000000\": depends_on[0]: unknown action \"xct000000\" (did you mean \"act000001\"?)"
    );
}

/// The worst template the limits allow, nested blocks around the longest operator chain, is
/// validated and rendered on a 2 MiB thread; one operator more is refused before minijinja
/// sees it.
#[test]
fn templates_at_the_operator_limit_render_without_overflow() {
    // A left-deep sum inside 40 nested blocks, and a chain of filters, each at the limit.
    let sum = format!(
        "{}{{{{ 1{} }}}}{}",
        "{% if true %}".repeat(40),
        " + 1".repeat(MAX_TAG_OPERATORS),
        "{% endif %}".repeat(40)
    );
    let filters = format!("{{{{ vars.a{} }}}}", "|abs".repeat(MAX_TAG_OPERATORS - 1));
    let plan = json!([set_variables("t", json!({"sum": sum, "filters": filters}))]);
    let loaded = load_str("t.json", &plan.to_string(), Format::Json).expect("within the limits");
    let vars = json!({"a": -1});
    let context = Context::new("run", vars.as_object().expect("object"), std::iter::empty());
    let rendered = render_params(&loaded.plan.actions()[0].params, &context).expect("renders");
    let expected =
        json!({"variables": {"x": {"sum": (MAX_TAG_OPERATORS + 1).to_string(), "filters": 1}}});
    assert_eq!(rendered, expected);

    for value in [
        format!("{{{{ {}1 }}}}", "-".repeat(100_000)),
        format!("{{{{ {}x }}}}", "not ".repeat(100_000)),
        format!("{{{{ 1{} }}}}", "+1".repeat(100_000)),
        format!("{{{{ x{} }}}}", "|upper".repeat(100_000)),
        format!("{{{{ range{} }}}}", "(1)".repeat(100_000)),
    ] {
        let plan = json!([set_variables("t", json!(value))]);
        let text = errors_for(&plan.to_string(), Format::Json);
        assert!(
            text.contains("params.variables.x: template error: the expression is too complex"),
            "{text}"
        );
        // At run time as well, should a plan skip validation.
        let params = json!({"x": value});
        let err = render_params(&params, &context).expect_err("refused");
        assert!(err.to_string().contains("too complex"), "{err}");
    }
    let condition =
        json!([{"label": "c", "type": "system.no_op", "condition": "- ".repeat(100_000) + "1"}]);
    let text = errors_for(&condition.to_string(), Format::Json);
    assert!(
        text.contains("condition: expression error: the expression is too complex"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// State documents

fn state_plan() -> Plan {
    plan(
        r#"[
        {"label": "config", "type": "system.set_variables", "params": {"variables": {"env": "prod"}}},
        {"label": "build", "type": "system.command", "depends_on": ["config"], "params": {"command": ["make"]}},
        {"label": "deploy:eu/1", "type": "system.wait", "depends_on": ["build"], "params": {"seconds": 5}},
        {"label": "notify", "type": "system.no_op", "depends_on": ["deploy:eu/1"]},
        {"label": "never", "type": "system.no_op", "depends_on": ["notify"]}
    ]"#,
    )
}

/// A state with every kind of field filled in, including text that needs escaping.
fn rich_state(plan: &Plan) -> RunState {
    let t0 = Utc
        .with_ymd_and_hms(2026, 11, 28, 9, 4, 58)
        .single()
        .expect("time");
    let t1 = t0 + chrono::Duration::milliseconds(1234);
    let mut vars = Map::new();
    vars.insert("env".into(), json!("prod"));
    vars.insert(
        "nested".into(),
        json!({"list": [1, 2.5, -3, null, true], "ü": "😀"}),
    );
    let mut state = RunState::new("run-1", plan, "abc123", vars, t0);
    edit(&mut state)
        .status(RunStatus::Waiting)
        .invocations(7)
        .state_machine("arn:aws:states:eu-west-1:123:stateMachine:baton")
        .updated_at(t1);
    let entry = |msg: &str| LogEntry {
        t: t1,
        level: Level::Warn,
        msg: msg.into(),
    };
    *edit(&mut state).action_mut(0) = ActionState {
        status: ActionStatus::Complete,
        attempt: 1,
        started_at: Some(t0),
        finished_at: Some(t1),
        outputs: baton_core::Outputs::from(
            json!({"env": "prod", "deep": {"a": [{"b": "c"}]}})
                .as_object()
                .cloned()
                .expect("object"),
        ),
        log: VecDeque::from(vec![entry("done \"quoted\" \\ tab\t")]),
        ..ActionState::default()
    };
    *edit(&mut state).action_mut(1) = ActionState {
        status: ActionStatus::Failed,
        attempt: 3,
        started_at: Some(t0),
        finished_at: Some(t1),
        error: Some("exit 2: ünïcödé\nsecond line".into()),
        ..ActionState::default()
    };
    *edit(&mut state).action_mut(2) = ActionState {
        status: ActionStatus::Running,
        attempt: 1,
        started_at: Some(t0),
        next_check_at: Some(t1),
        handle: Some(Box::new(
            json!({"stack_id": "arn:x", "n": [1, {"m": null}]}),
        )),
        ..ActionState::default()
    };
    *edit(&mut state).action_mut(3) = ActionState {
        status: ActionStatus::Blocked,
        blocked_by: Some("build".into()),
        ..ActionState::default()
    };
    state.mirror_log(
        None,
        LogEntry {
            t: t1,
            level: Level::Error,
            msg: "something \u{0} odd".into(),
        },
    );
    state
}

fn is_state_error(result: &Result<RunState, StateError>) -> bool {
    match result {
        Ok(_) => false,
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.starts_with("the state document ") || message.starts_with("state format "),
                "{message}"
            );
            true
        }
    }
}

/// What an accepted document must satisfy: it was valid JSON, says what the state says, and
/// the state writes back to a document that reads the same.
fn check_accepted(bytes: &[u8], plan: &Plan, state: &RunState) -> Result<(), TestCaseError> {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "accepted a document that is not JSON ({e})"
            )))
        }
    };
    prop_assert_eq!(state.actions().len(), plan.len());
    prop_assert_eq!(&value["run_id"], &json!(state.run_id()));
    prop_assert_eq!(&value["plan_sha256"], &json!(state.plan_sha256()));
    prop_assert_eq!(&value["status"], &json!(state.status().as_str()));
    prop_assert_eq!(&value["invocations"], &json!(state.invocations()));
    prop_assert_eq!(&value["format"], &json!(state.format()));
    for (label, entry) in value["actions"].as_object().into_iter().flatten() {
        let idx = plan.find(label);
        prop_assert!(idx.is_some(), "accepted unknown label {label}");
        let idx = idx.unwrap_or_default();
        prop_assert_eq!(
            &entry["status"],
            &json!(state.actions()[idx as usize].status.as_str())
        );
    }
    let again = RunState::from_json(&state.to_json(plan), plan);
    prop_assert_eq!(again.as_ref(), Ok(state), "does not round-trip");
    Ok(())
}

#[test]
fn rich_state_round_trips() {
    let plan = state_plan();
    let state = rich_state(&plan);
    for bytes in [state.to_json(&plan), state.to_json_pretty(&plan)] {
        assert_eq!(RunState::from_json(&bytes, &plan), Ok(state.clone()));
    }
}

#[test]
fn every_truncation_of_a_state_document_is_refused_as_truncated() {
    let plan = state_plan();
    let state = rich_state(&plan);
    for bytes in [state.to_json(&plan), state.to_json_pretty(&plan)] {
        for cut in 0..bytes.len() {
            let result = RunState::from_json(&bytes[..cut], &plan);
            assert!(is_state_error(&result), "accepted a document cut at {cut}");
            let message = result.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(message.contains("truncated"), "cut at {cut}: {message}");
        }
        // Trailing garbage is refused too; trailing whitespace is not garbage.
        let mut extra = bytes.clone();
        extra.extend_from_slice(b"\n \t");
        assert!(RunState::from_json(&extra, &plan).is_ok());
        for tail in [&b"}"[..], b"x", b"{}", b",", b"\0"] {
            let mut extra = bytes.clone();
            extra.extend_from_slice(tail);
            assert!(
                is_state_error(&RunState::from_json(&extra, &plan)),
                "{tail:?}"
            );
        }
    }
}

/// JSON value kinds, finer than JSON's own types where the state's schema cares.
fn replacements() -> Vec<(&'static str, Value)> {
    vec![
        ("null", json!(null)),
        ("bool", json!(true)),
        ("uint", json!(7)),
        ("negative", json!(-1)),
        ("float", json!(1.5)),
        ("huge", json!(1e300)),
        ("string", json!("nonsense")),
        ("array", json!([])),
        ("object", json!({})),
    ]
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_u64() => "uint",
        Value::Number(n) if n.is_i64() => "negative",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every node of the document outside the free-form values (vars, outputs, handle), with its
/// key (or `[]` for a list element) and path.
fn schema_nodes(
    value: &Value,
    key: &str,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, String)>,
) {
    out.push((path.clone(), key.to_string()));
    if ["vars", "outputs", "handle"].contains(&key) {
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                path.push(k.clone());
                // Under "actions" the keys are labels: their values are action states.
                let key = if path.len() == 2 && path[0] == "actions" {
                    "<action>"
                } else {
                    k
                };
                schema_nodes(v, key, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(i.to_string());
                schema_nodes(v, "[]", path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(value, |v, step| match v {
        Value::Array(items) => &mut items[step.parse::<usize>().expect("index")],
        other => &mut other[step.as_str()],
    })
}

/// Whether the state's schema accepts `replacement` (of `kind`) at a node under `key`.
fn schema_accepts(key: &str, kind: &str) -> bool {
    const OPTIONAL: &[&str] = &[
        "state_machine",
        "started_at",
        "finished_at",
        "next_check_at",
        "error",
        "blocked_by",
    ];
    const UINT: &[&str] = &["format", "invocations", "attempt"];
    const FREE_TEXT: &[&str] = &[
        "run_id",
        "plan_sha256",
        "msg",
        "error",
        "blocked_by",
        "state_machine",
    ];
    match key {
        "handle" => true,
        "vars" | "outputs" => kind == "object",
        "abort_requested" => kind == "bool",
        k if UINT.contains(&k) => kind == "uint",
        k if OPTIONAL.contains(&k) && kind == "null" => true,
        k if FREE_TEXT.contains(&k) => kind == "string",
        // Statuses, levels and timestamps are strings, but not just any string.
        _ => false,
    }
}

/// Each node replaced by each other kind of value, each key removed, and an unknown key added
/// to each object: accepted exactly when the schema says so.
#[test]
fn every_field_of_the_wrong_type_is_refused() {
    let plan = state_plan();
    let state = rich_state(&plan);
    let doc: Value = serde_json::from_slice(&state.to_json(&plan)).expect("json");
    let mut nodes = Vec::new();
    schema_nodes(&doc, "", &mut Vec::new(), &mut nodes);
    assert!(nodes.len() > 40, "only {} nodes", nodes.len());
    let mut checked = 0;
    for (path, key) in &nodes {
        if path.is_empty() {
            continue;
        }
        let original = node_mut(&mut doc.clone(), path).clone();
        for (kind, replacement) in replacements() {
            if kind == kind_of(&original) {
                continue;
            }
            let mut tampered = doc.clone();
            *node_mut(&mut tampered, path) = replacement.clone();
            let bytes = serde_json::to_vec(&tampered).expect("json");
            let result = RunState::from_json(&bytes, &plan);
            let expected = schema_accepts(key, kind);
            assert_eq!(
                result.is_ok(),
                expected,
                "{path:?} ({key}) as {kind}: {result:?}"
            );
            if let Ok(state) = &result {
                check_accepted(&bytes, &plan, state).expect("consistent");
            }
            checked += 1;
        }
        // A string that is not a status, level or timestamp.
        if original.is_string() {
            let mut tampered = doc.clone();
            *node_mut(&mut tampered, path) = json!("2026-13-45T99:99:99Z");
            let bytes = serde_json::to_vec(&tampered).expect("json");
            let result = RunState::from_json(&bytes, &plan);
            assert_eq!(
                result.is_ok(),
                schema_accepts(key, "string"),
                "{path:?} ({key}): {result:?}"
            );
        }
    }
    assert!(checked > 300, "{checked}");

    const REQUIRED: &[&str] = &[
        "format",
        "run_id",
        "plan_sha256",
        "status",
        "invocations",
        "created_at",
        "updated_at",
        "actions",
        "t",
        "level",
        "msg",
    ];
    for (path, key) in &nodes {
        let Some((last, parent)) = path.split_last() else {
            continue;
        };
        if key == "[]"
            || key == "<action>"
            || parent
                .last()
                .is_some_and(|p| ["vars", "outputs"].contains(&p.as_str()))
        {
            continue;
        }
        let mut tampered = doc.clone();
        node_mut(&mut tampered, parent)
            .as_object_mut()
            .expect("object")
            .remove(last);
        let result = RunState::from_json(&serde_json::to_vec(&tampered).expect("json"), &plan);
        let required = REQUIRED.contains(&key.as_str());
        assert_eq!(result.is_err(), required, "without {path:?}: {result:?}");
    }
    // Unknown keys: refused everywhere outside the free-form values (log entries included).
    for (path, key) in &nodes {
        let node = node_mut(&mut doc.clone(), path).clone();
        if !node.is_object()
            || ["vars", "outputs", "handle"].contains(&key.as_str())
            || key == "actions"
        {
            continue;
        }
        let mut tampered = doc.clone();
        node_mut(&mut tampered, path)
            .as_object_mut()
            .expect("object")
            .insert("surprise".into(), json!(1));
        let result = RunState::from_json(&serde_json::to_vec(&tampered).expect("json"), &plan);
        assert!(result.is_err(), "surprise in {path:?}: {result:?}");
    }
    // A label the plan does not have.
    let mut tampered = doc.clone();
    tampered["actions"]["intruder"] = json!({"status": "complete"});
    let message = RunState::from_json(&serde_json::to_vec(&tampered).expect("json"), &plan)
        .expect_err("foreign")
        .to_string();
    assert!(
        message.contains("\"intruder\", which is not in the run's plan"),
        "{message}"
    );
    // Another format.
    let mut tampered = doc.clone();
    tampered["format"] = json!(2);
    let message = RunState::from_json(&serde_json::to_vec(&tampered).expect("json"), &plan)
        .expect_err("format")
        .to_string();
    assert!(
        message.starts_with("state format 2 is not supported"),
        "{message}"
    );
}

#[test]
fn deeply_nested_state_documents_are_refused_without_overflow() {
    let plan = state_plan();
    let doc = String::from_utf8(rich_state(&plan).to_json(&plan)).expect("utf-8");
    for nested in [
        nested_json(100_000, "[", "]"),
        nested_json(100_000, "{\"a\":", "}"),
        "[".repeat(100_000),
    ] {
        let tampered = doc.replacen("\"env\":\"prod\"", &format!("\"env\":{nested}"), 1);
        let message = RunState::from_json(tampered.as_bytes(), &plan)
            .expect_err("too deep")
            .to_string();
        assert!(
            message.contains("nested too deeply") && message.contains("line 1 column"),
            "{message}"
        );
    }
    let message = RunState::from_json("[".repeat(1_000_000).as_bytes(), &plan)
        .expect_err("not a state")
        .to_string();
    assert!(message.starts_with("the state document "), "{message}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_bytes_are_never_a_state(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let plan = state_plan();
        let result = RunState::from_json(&bytes, &plan);
        prop_assert!(is_state_error(&result), "random bytes accepted");
    }

    #[test]
    fn flipped_bytes_are_refused_unless_the_document_is_still_valid(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        pretty in any::<bool>(),
    ) {
        let plan = state_plan();
        let state = rich_state(&plan);
        let mut bytes = if pretty { state.to_json_pretty(&plan) } else { state.to_json(&plan) };
        for (at, mask) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        if let Ok(accepted) = RunState::from_json(&bytes, &plan) {
            check_accepted(&bytes, &plan, &accepted)?;
        }
    }

    #[test]
    fn spliced_state_documents_are_refused_unless_still_valid(
        cut in any::<prop::sample::Index>(),
        len in 0usize..40,
        insert in prop::sample::select(vec!["", "\"", "{", "}", "[", "]", ",", ":", "null", "1", "\"running\"", "\"actions\":{}", "\\u0000", "\u{feff}"]),
    ) {
        let plan = state_plan();
        let bytes = rich_state(&plan).to_json(&plan);
        let at = cut.index(bytes.len());
        let end = (at + len).min(bytes.len());
        let mut spliced = bytes[..at].to_vec();
        spliced.extend_from_slice(insert.as_bytes());
        spliced.extend_from_slice(&bytes[end..]);
        if let Ok(accepted) = RunState::from_json(&spliced, &plan) {
            check_accepted(&spliced, &plan, &accepted)?;
        }
    }
}

/// Labels in a state are matched exactly: near-misses are foreign labels, not typos to fix.
#[test]
fn state_labels_are_matched_exactly() {
    let plan = state_plan();
    let doc = String::from_utf8(rich_state(&plan).to_json(&plan)).expect("utf-8");
    let labels: BTreeSet<&str> = plan.actions().iter().map(|a| a.label.as_str()).collect();
    for near in [
        "Config",
        "config ",
        "build\u{0}",
        "deploy:eu/1/",
        "bui\u{200b}ld",
    ] {
        assert!(!labels.contains(near));
        let tampered = doc.replacen("\"config\":{", &format!("{}:{{", json!(near)), 1);
        assert!(
            is_state_error(&RunState::from_json(tampered.as_bytes(), &plan)),
            "{near:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What one file may hold (actions, values, text once YAML aliases expand), duplicate keys,
// durations, and reads of outputs that do not name their action.

use baton_core::duration::MAX_DURATION;
use baton_core::load::{MAX_ACTIONS, MAX_TEXT_BYTES, MAX_VALUES};

#[test]
fn files_past_the_counts_are_refused_with_the_limit() {
    let many = format!("[{}{{}}]", "{},".repeat(MAX_ACTIONS));
    for format in [Format::Json, Format::Yaml] {
        let errors = refused(load_str("many", &many, format));
        assert_eq!(errors.len(), 1, "{format:?}: {}", lines(&errors));
        assert!(errors[0].position.is_some(), "{format:?}: {}", errors[0]);
        assert!(
            errors[0]
                .message
                .starts_with(&format!("the file holds more than {MAX_ACTIONS} actions")),
            "{format:?}: {}",
            errors[0]
        );
    }
    // One action fewer is read (and refused for what the actions lack, not for their number).
    let fewer = format!("[{}{{}}]", "{},".repeat(MAX_ACTIONS - 1));
    let errors = refused(load_str("fewer", &fewer, Format::Json));
    assert!(
        errors.iter().all(|p| !p.message.contains("more than")),
        "{}",
        errors[0]
    );

    let values = format!(
        "[{{\"label\": \"a\", \"type\": \"system.set_variables\", \"params\": {{\"variables\": {{\"x\": [{}1]}}}}}}]",
        "1,".repeat(MAX_VALUES)
    );
    let text = errors_for(&values, Format::Json);
    assert!(
        text.contains(&format!("the file holds more than {MAX_VALUES} values")),
        "{text}"
    );

    // A YAML file of 2,000 aliases to a 100 kB string: 200 MB once expanded.
    let mut aliases = format!(
        "- label: a\n  type: system.set_variables\n  params:\n    variables:\n      big: &big \"{}\"\n      copies:\n",
        "x".repeat(100_000)
    );
    for _ in 0..2_000 {
        aliases.push_str("        - *big\n");
    }
    let text = errors_for(&aliases, Format::Yaml);
    assert!(
        text.contains(&format!(
            "more than {} once YAML aliases are expanded",
            if MAX_TEXT_BYTES == 64 * 1024 * 1024 {
                "64 MiB"
            } else {
                "?"
            }
        )),
        "{text}"
    );
}

/// A path to an object in a document, and the key of it to write twice.
fn with_duplicate(value: &Value, at: &[String], key: &str, out: &mut String) {
    match value {
        Value::Object(map) => {
            out.push('{');
            let mut first = true;
            for (k, v) in map {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(&json!(k).to_string());
                out.push(':');
                match at.split_first() {
                    Some((next, rest)) if next == k => with_duplicate(v, rest, key, out),
                    _ => out.push_str(&v.to_string()),
                }
            }
            if at.is_empty() {
                out.push_str(&format!(",{}:\"again\"", json!(key)));
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match at.split_first() {
                    Some((next, rest)) if *next == i.to_string() => {
                        with_duplicate(item, rest, key, out)
                    }
                    _ => out.push_str(&item.to_string()),
                }
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Every object in `value` with its path (list indices as numbers) and one of its keys.
fn objects(value: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    match value {
        Value::Object(map) => {
            if let Some(key) = map.keys().next() {
                out.push((path.clone(), key.clone()));
            }
            for (k, v) in map {
                path.push(k.clone());
                objects(v, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(i.to_string());
                objects(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// `params.variables.list[1].k` for the path inside an action.
fn field_of(path: &[String], key: &str) -> String {
    let mut field = String::new();
    for step in path.iter().map(String::as_str).chain([key]) {
        if step.parse::<usize>().is_ok() {
            field.push_str(&format!("[{step}]"));
        } else {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(step);
        }
    }
    field
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A key written twice in any object of any action, as JSON or YAML: refused with the
    /// action and the key's path, never read with one of the values silently dropped.
    #[test]
    fn duplicate_keys_anywhere_are_refused_with_the_action_and_field(
        base in base_plan(),
        pick in any::<prop::sample::Index>(),
        yaml in any::<bool>(),
    ) {
        let doc = Value::Array(base.document());
        let mut found = Vec::new();
        objects(&doc, &mut Vec::new(), &mut found);
        let (path, key) = &found[pick.index(found.len())];
        let mut text = String::new();
        with_duplicate(&doc, path, key, &mut text);
        let format = if yaml { Format::Yaml } else { Format::Json };
        let errors = refused(load_str("dup", &text, format));
        prop_assert_eq!(errors.len(), 1, "{}", lines(&errors));
        let problem = &errors[0];
        prop_assert!(problem.message.starts_with(&format!("duplicate key \"{key}\"")), "{}", problem);
        let action: usize = path[0].parse().unwrap_or(usize::MAX);
        prop_assert_eq!(problem.index, Some(action), "{}", problem);
        prop_assert_eq!(problem.field.clone(), Some(field_of(&path[1..], key)), "{}", problem);
    }

    /// Durations in timeouts, retry delays and waits: accepted exactly when their total is at
    /// most a year, however they are split into pieces; and what is accepted reads back from
    /// the stored plan (a run can always be reopened).
    #[test]
    fn durations_are_limited_on_their_total_at_validation_and_reopen_alike(
        pieces in prop::collection::vec(
            prop::sample::select(vec![("366d", 366.0 * 86400.0), ("200d", 200.0 * 86400.0), ("1d", 86400.0), ("23h", 82800.0), ("59m", 3540.0), ("30s", 30.0), ("500ms", 0.5), ("1.5h", 5400.0)]),
            1..6,
        ),
        field in 0usize..3,
    ) {
        let text: String = pieces.iter().map(|(p, _)| *p).collect();
        let total: f64 = pieces.iter().map(|(_, s)| s).sum();
        let action = match field {
            0 => json!({"label": "a", "type": "system.no_op", "timeout": text}),
            1 => json!({"label": "a", "type": "system.no_op", "retry": {"attempts": 2, "delay": text}}),
            _ => json!({"label": "a", "type": "system.wait", "params": {"seconds": text}}),
        };
        let doc = Value::Array(vec![action]).to_string();
        let result = load_str("d.json", &doc, Format::Json);
        check_load("d.json", &result)?;
        let within = total <= MAX_DURATION.as_secs_f64() && total > 0.0;
        prop_assert_eq!(result.is_ok(), within, "{} ({} s)", text, total);
        if let Err(problems) = &result {
            if total > 0.0 {
                prop_assert!(lines(&problems.errors).contains("is longer than a year"), "{}", problems);
            }
        }
    }

    /// A template may read an action's outputs only by naming it (`outputs.x`,
    /// `outputs["x"]`, `(outputs).x`), and only an ancestor's; every other use of `outputs`,
    /// in params or a condition, is refused naming the action, the field and what it read.
    #[test]
    fn reads_of_outputs_must_name_an_ancestor(
        form in prop::sample::select(vec![
            ("{{ outputs[vars.k].x }}", false),
            ("{{ outputs|attr('up') }}", false),
            ("{% set o = outputs %}{{ o.up.x }}", false),
            ("{% for k, v in outputs|items %}{{ v }}{% endfor %}", false),
            ("{{ outputs }}", false),
            ("{{ outputs['u' ~ 'p'].x }}", false),
            ("{{ debug(outputs) }}", false),
            ("{% with o = outputs %}{{ o.up.x }}{% endwith %}", false),
            ("{{ TARGET.x }}", true),
            ("{{ outputs['TARGET'].x }}", true),
            ("{{ (outputs).TARGET.x }}", true),
            ("{{ outputs.TARGET.x | default('none') }}", true),
        ]),
        target_is_ancestor in any::<bool>(),
        in_condition in any::<bool>(),
    ) {
        let (template, names) = form;
        let target = if target_is_ancestor { "up" } else { "side" };
        let template = template.replace("TARGET", target).replace("{{ up.x }}", "{{ outputs.up.x }}");
        let template = if template.starts_with("{{ up.") || template.starts_with("{{ side.") {
            template.replacen("{{ ", "{{ outputs.", 1)
        } else {
            template
        };
        let reader = if in_condition {
            let expression = template.trim_start_matches("{{ ").trim_end_matches(" }}").to_string();
            json!({"label": "reader", "type": "system.no_op", "depends_on": ["up"], "condition": format!("{expression} is defined")})
        } else {
            json!({"label": "reader", "type": "system.set_variables", "depends_on": ["up"], "params": {"variables": {"x": template}}})
        };
        let doc = json!([
            {"label": "up", "type": "system.set_variables", "params": {"variables": {"x": "1"}}},
            {"label": "side", "type": "system.set_variables", "params": {"variables": {"x": "2"}}},
            reader,
        ]);
        let result = load_str("reads.json", &doc.to_string(), Format::Json);
        check_load("reads.json", &result)?;
        let blocks = template.contains("{%");
        if in_condition && blocks {
            // Not an expression: refused as such.
            prop_assert!(result.is_err());
            return Ok(());
        }
        match (names, target_is_ancestor) {
            (true, true) => prop_assert!(result.is_ok(), "{:?}", result.err().map(|p| p.to_string())),
            (true, false) => {
                let errors = refused(result);
                prop_assert!(lines(&errors).contains("\"side\" is not a dependency"), "{}", lines(&errors));
            }
            (false, _) => {
                let errors = refused(result);
                let text = lines(&errors);
                prop_assert!(text.contains("actions[2] \"reader\""), "{}", text);
                prop_assert!(text.contains("template reads outputs without naming the action"), "{}", text);
            }
        }
    }
}

/// Found by the fuzz target: a number in outputs such as 118446744073709551615.5 was read back
/// one unit in the last place off (serde_json's fast float parsing), so each write of the state
/// changed it. Floats now read back exactly.
#[test]
fn large_floats_in_a_state_read_back_exactly() {
    let plan = state_plan();
    let state = rich_state(&plan);
    let doc = String::from_utf8(state.to_json(&plan)).expect("utf-8");
    let tampered = doc.replacen("2.5", "118446744073709551615.5", 1);
    assert_ne!(tampered, doc);
    let state = RunState::from_json(tampered.as_bytes(), &plan).expect("valid");
    let written = state.to_json(&plan);
    let again = RunState::from_json(&written, &plan).expect("valid");
    assert_eq!(again.to_json(&plan), written);
}
