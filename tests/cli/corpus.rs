//! The action-file corpus: every file under `tests/corpus/bad/` must be refused with exactly the
//! messages in its sidecar `<file>.expected`, by `validate`, `plan` and `run` alike, without
//! anything written to the store; every file under `tests/corpus/good/` must validate, with
//! exactly the warnings in its sidecar.
//!
//! Each file is copied into a scratch folder that is also the working directory, and passed by
//! its bare name, so messages (which name the file as given) are stable.
//!
//! To regenerate the sidecars after a deliberate change of wording, run
//! `BATON_BLESS=1 cargo test --test cli corpus::` and review the diff line by line.

use std::path::PathBuf;

use crate::common::{code, repo, stderr, stdout, Scratch};

/// `.expected` files whose input deliberately does not exist (the "no such file" case).
const MISSING_INPUTS: &[&str] = &["nonexistent.json"];

/// The summary line `validate` adds after the problems of one invalid file.
const ONE_INVALID: &str = "1 of 1 files invalid\n";

struct Case {
    /// File name, as passed on the command line.
    name: String,
    /// The corpus file (absent for [`MISSING_INPUTS`]).
    input: Option<PathBuf>,
    expected: PathBuf,
}

impl Case {
    /// A scratch folder holding a copy of the input (if any) under its own name.
    fn scratch(&self) -> Scratch {
        let scratch = Scratch::new();
        if let Some(input) = &self.input {
            std::fs::copy(input, scratch.path().join(&self.name)).expect("copy corpus file");
        }
        scratch
    }

    fn expected(&self) -> String {
        std::fs::read_to_string(&self.expected)
            .unwrap_or_else(|e| panic!("{}: {e}", self.expected.display()))
    }
}

fn corpus(kind: &str) -> PathBuf {
    repo().join("tests/corpus").join(kind)
}

/// Every input file with its sidecar; panics if a sidecar or an input is missing.
fn cases(kind: &str) -> Vec<Case> {
    let dir = corpus(kind);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("read corpus entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    let mut cases = Vec::new();
    let mut orphans = Vec::new();
    for name in &names {
        if let Some(input) = name.strip_suffix(".expected") {
            let exists = names.iter().any(|n| n == input);
            let allowed_missing = kind == "bad" && MISSING_INPUTS.contains(&input);
            if !exists && !allowed_missing {
                orphans.push(format!("{name} has no input file {input}"));
            }
            if exists && allowed_missing {
                orphans.push(format!("{input} is listed as missing but exists"));
            }
            continue;
        }
        if name.starts_with('.') || name == "README.md" {
            continue;
        }
        let expected = dir.join(format!("{name}.expected"));
        if !expected.is_file() && std::env::var_os("BATON_BLESS").is_none() {
            orphans.push(format!("{name} has no sidecar {name}.expected"));
        }
        cases.push(Case {
            name: name.clone(),
            input: Some(dir.join(name)),
            expected,
        });
    }
    if kind == "bad" {
        for missing in MISSING_INPUTS {
            cases.push(Case {
                name: missing.to_string(),
                input: None,
                expected: dir.join(format!("{missing}.expected")),
            });
        }
    }
    assert!(
        orphans.is_empty(),
        "corpus/{kind} is inconsistent:\n{}",
        orphans.join("\n")
    );
    cases
}

fn bless() -> bool {
    std::env::var_os("BATON_BLESS").is_some()
}

fn no_store(scratch: &Scratch) -> bool {
    !scratch.path().join(".baton").exists()
}

/// A line-by-line comparison for failure messages; long texts show only the differing lines.
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let context = e.len().max(a.len()) <= 12;
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => {
                if context {
                    out.push_str(&format!("    {x}\n"));
                }
            }
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("  - {x}\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!("  + {y}\n"));
                }
            }
        }
    }
    out
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} corpus case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn bad_corpus_is_broad() {
    let cases = cases("bad");
    assert!(cases.len() >= 30, "only {} bad files", cases.len());
    let yaml = cases
        .iter()
        .filter(|c| c.name.ends_with(".yaml") || c.name.ends_with(".yml"))
        .count();
    assert!(yaml >= 3, "only {yaml} YAML files in the bad corpus");
}

#[test]
fn validate_refuses_every_bad_file_with_exact_messages() {
    let mut failures = Vec::new();
    for case in cases("bad") {
        let scratch = case.scratch();
        let out = scratch.baton(&["validate", &case.name]);
        let err = stderr(&out);
        if bless() {
            std::fs::write(&case.expected, &err).expect("bless");
            continue;
        }
        let expected = case.expected();
        let mut problems = Vec::new();
        if code(&out) != 2 {
            problems.push(format!("exit code {} (want 2)", code(&out)));
        }
        if err != expected {
            problems.push(format!("stderr differs:\n{}", diff(&expected, &err)));
        }
        if !stdout(&out).is_empty() {
            problems.push(format!("stdout not empty: {:?}", stdout(&out)));
        }
        if !no_store(&scratch) {
            problems.push("a .baton folder was created".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
    }
    report(failures);
}

/// Every line names the file it came from (warnings are prefixed `warning: `), and
/// action-level lines name the action (index, then label when it has a string one) before the
/// field and message.
#[test]
fn every_bad_message_names_its_file_and_action() {
    let mut failures = Vec::new();
    for case in cases("bad") {
        if bless() {
            continue;
        }
        let expected = case.expected();
        let mut lines: Vec<&str> = expected.lines().collect();
        if lines.pop() != Some(ONE_INVALID.trim_end()) {
            failures.push(format!("{}: the last line must be the summary", case.name));
        }
        if lines.is_empty() {
            failures.push(format!("{}: no problem reported", case.name));
        }
        for line in lines {
            let line = line.strip_prefix("warning: ").unwrap_or(line);
            let Some(rest) = line.strip_prefix(&format!("{}:", case.name)) else {
                failures.push(format!("{}: does not name the file: {line}", case.name));
                continue;
            };
            let Some(rest) = rest.strip_prefix(" actions[") else {
                continue; // a file-level problem: syntax, shape, empty, unreadable
            };
            let Some((index, rest)) = rest.split_once(']') else {
                failures.push(format!("{}: malformed action index: {line}", case.name));
                continue;
            };
            let rest = match rest.strip_prefix(" \"") {
                Some(labelled) => labelled.split_once("\":").map_or("", |(_, r)| r),
                None => rest.strip_prefix(':').unwrap_or(""),
            };
            if index.parse::<usize>().is_err() || rest.trim().is_empty() {
                failures.push(format!("{}: no action or message: {line}", case.name));
            }
        }
    }
    report(failures);
}

#[test]
fn run_and_plan_refuse_every_bad_file_without_writing_state() {
    let mut failures = Vec::new();
    for case in cases("bad") {
        if bless() {
            continue;
        }
        // `run` and `plan` print the same problems, without validate's summary line.
        let expected = case.expected();
        let expected = expected.strip_suffix(ONE_INVALID).unwrap_or(&expected);
        for args in [
            vec!["run", case.name.as_str()],
            vec!["run", case.name.as_str(), "--json"],
            vec!["plan", case.name.as_str()],
        ] {
            let scratch = case.scratch();
            let out = scratch.baton(&args);
            let mut problems = Vec::new();
            if code(&out) != 2 {
                problems.push(format!("exit code {} (want 2)", code(&out)));
            }
            if stderr(&out) != expected {
                problems.push(format!(
                    "stderr differs:\n{}",
                    diff(expected, &stderr(&out))
                ));
            }
            if !stdout(&out).is_empty() {
                problems.push(format!("stdout not empty: {:?}", stdout(&out)));
            }
            if !no_store(&scratch) {
                problems.push("the store was written (.baton exists)".into());
            }
            if !problems.is_empty() {
                failures.push(format!(
                    "{} ({}): {}",
                    case.name,
                    args.join(" "),
                    problems.join("; ")
                ));
            }
        }
    }
    report(failures);
}

/// One `validate` call over every bad file reports each file's problems and one summary.
#[test]
fn validate_reports_all_bad_files_in_one_call() {
    let cases = cases("bad");
    if bless() {
        return;
    }
    let scratch = Scratch::new();
    let mut args = vec!["validate".to_string()];
    let mut expected = String::new();
    for case in &cases {
        if let Some(input) = &case.input {
            std::fs::copy(input, scratch.path().join(&case.name)).expect("copy");
        }
        args.push(case.name.clone());
        let text = case.expected();
        expected.push_str(text.strip_suffix(ONE_INVALID).unwrap_or(&text));
    }
    expected.push_str(&format!("{0} of {0} files invalid\n", cases.len()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = scratch.baton(&args);
    assert_eq!(code(&out), 2);
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(
        stderr(&out) == expected,
        "{}",
        diff(&expected, &stderr(&out))
    );
    assert!(no_store(&scratch));
}

/// Good files validate (exit 0, `ok (N actions)`), print exactly the warnings in their
/// sidecar, and `plan` accepts them too.
#[test]
fn good_files_validate_with_exact_warnings() {
    let cases = cases("good");
    assert!(cases.len() >= 3, "only {} good files", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let scratch = case.scratch();
        let out = scratch.baton(&["validate", &case.name]);
        if bless() {
            std::fs::write(&case.expected, stderr(&out)).expect("bless");
            continue;
        }
        let expected = case.expected();
        let mut problems = Vec::new();
        if code(&out) != 0 {
            problems.push(format!("exit code {} (want 0)", code(&out)));
        }
        let ok_prefix = format!("{}: ok (", case.name);
        if !(stdout(&out).starts_with(&ok_prefix) && stdout(&out).ends_with(" actions)\n")) {
            problems.push(format!("stdout: {:?}", stdout(&out)));
        }
        if stderr(&out) != expected {
            problems.push(format!(
                "stderr differs:\n{}",
                diff(&expected, &stderr(&out))
            ));
        }
        let plan = scratch.baton(&["plan", &case.name, "--format", "json"]);
        if code(&plan) != 0 || stderr(&plan) != expected {
            problems.push(format!(
                "plan: exit {}, stderr {:?}",
                code(&plan),
                stderr(&plan)
            ));
        }
        if !no_store(&scratch) {
            problems.push("a .baton folder was created".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}", case.name, problems.join("; ")));
        }
    }
    report(failures);
}

fn plan_json(file: &str) -> serde_json::Value {
    let case = cases("good")
        .into_iter()
        .find(|c| c.name == file)
        .unwrap_or_else(|| panic!("no good file {file}"));
    let scratch = case.scratch();
    let out = scratch.baton(&["plan", file, "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    crate::common::json(&out)
}

fn deps_of<'a>(plan: &'a serde_json::Value, label: &str) -> Vec<&'a str> {
    plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .find(|a| a["label"] == label)
        .unwrap_or_else(|| panic!("no action {label}"))["depends_on"]
        .as_array()
        .expect("depends_on")
        .iter()
        .map(|d| d.as_str().expect("label"))
        .collect()
}

#[test]
fn legacy_spellings_map_to_canonical_types_and_fields() {
    let plan = plan_json("legacy_pascal_case.json");
    let types: Vec<&str> = plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| a["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "system.set_variables",
            "aws.create_stack",
            "aws.get_stack_outputs",
            "system.no_op"
        ]
    );
    assert_eq!(deps_of(&plan, "network"), ["config"]);
    assert_eq!(deps_of(&plan, "announce"), ["read-outputs"]);
}

#[test]
fn glob_dependencies_resolve_to_every_match() {
    let plan = plan_json("pipeline.yaml");
    assert_eq!(deps_of(&plan, "deploy"), ["test-unit", "test-integration"]);
    let layers = plan["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 4, "{plan}");
    // An unmatched pattern adds no dependency.
    let plan = plan_json("unmatched_pattern.json");
    assert_eq!(deps_of(&plan, "smoke"), ["build"]);
    assert!(deps_of(&plan, "report").is_empty());
}

/// The runnable good files (system types only) also run to success.
#[test]
fn runnable_good_files_run_to_success() {
    for file in ["all_system_types.yml", "pipeline.yaml"] {
        let case = cases("good")
            .into_iter()
            .find(|c| c.name == file)
            .expect("good file");
        let scratch = case.scratch();
        let out = scratch.baton(&["run", file, "--json"]);
        assert_eq!(code(&out), 0, "{file}: {}\n{}", stdout(&out), stderr(&out));
        let summary = crate::common::json(&out);
        assert_eq!(summary["status"], "succeeded", "{file}: {summary}");
    }
}

/// Guard against a sidecar accidentally holding a path from the machine that blessed it.
#[test]
fn expected_files_hold_no_absolute_paths() {
    for kind in ["bad", "good"] {
        for case in cases(kind) {
            if !case.expected.is_file() {
                continue;
            }
            let text = case.expected();
            assert!(
                !text.contains(&*repo().to_string_lossy()) && !text.contains("/tmp/"),
                "{}: {text}",
                case.expected.display()
            );
        }
    }
}
