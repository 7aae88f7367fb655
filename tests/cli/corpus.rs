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

// ---------------------------------------------------------------------------------------------
// Oversized, endless and deeply nested input (issue 6, "bad input"). The files are generated in
// the scratch folder; nothing big is committed. Each is refused by `validate`, `plan` and `run`
// with exit 2, nothing on stdout and nothing written, and every line names the file.

/// Runs `validate`, `plan` and `run` on `name` in `scratch`; all must refuse it the same way.
/// Returns `validate`'s stderr without the summary line.
fn refused_everywhere(scratch: &Scratch, name: &str) -> String {
    let mut problems = None;
    for args in [
        vec!["validate", name],
        vec!["plan", name],
        vec!["run", name, "--json"],
    ] {
        let out = scratch.baton(&args);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{args:?}: exit code; stderr:\n{err}");
        assert!(
            stdout(&out).is_empty(),
            "{args:?}: stdout {:?}",
            stdout(&out)
        );
        assert!(no_store(scratch), "{args:?}: the store was written");
        let err = err.strip_suffix(ONE_INVALID).unwrap_or(&err).to_string();
        for line in err.lines() {
            assert!(line.starts_with(&format!("{name}:")), "{args:?}: {line}");
        }
        match &problems {
            None => problems = Some(err),
            Some(first) => assert_eq!(first, &err, "{args:?} differs from validate"),
        }
    }
    problems.unwrap_or_default()
}

/// A JSON array of `system.command` actions, each depending on the one before, padded with
/// whitespace to exactly `size` bytes.
fn write_plan_of_size(path: &std::path::Path, size: u64) {
    use std::io::Write;
    let file = std::fs::File::create(path).expect("create");
    let mut out = std::io::BufWriter::new(file);
    let mut written = 1u64;
    out.write_all(b"[").expect("write");
    let mut i = 0u64;
    while written + 400 < size {
        let dep = if i == 0 {
            String::new()
        } else {
            format!(r#""depends_on": ["act-{}"], "#, i - 1)
        };
        let action = format!(
            r#"{}{{"label": "act-{i}", "type": "system.command", {dep}"params": {{"command": ["echo", "hello from action {i}"]}}}}"#,
            if i == 0 { "" } else { ",\n" }
        );
        out.write_all(action.as_bytes()).expect("write");
        written += action.len() as u64;
        i += 1;
    }
    out.write_all(b"]").expect("write");
    written += 1;
    out.write_all(&vec![b' '; (size - written) as usize])
        .expect("pad");
    out.flush().expect("flush");
    assert_eq!(std::fs::metadata(path).expect("size").len(), size);
}

#[test]
fn a_50_mb_action_file_is_refused_before_it_is_read() {
    let scratch = Scratch::new();
    let size = 50 * 1024 * 1024;
    write_plan_of_size(&scratch.path().join("big.json"), size);
    assert_eq!(
        refused_everywhere(&scratch, "big.json"),
        format!(
            "big.json: the file is 50 MiB ({size} bytes); action files are limited to 32 MiB: \
             split the plan into several, or move large values out of it (template_file, S3 \
             objects)\n"
        )
    );
}

#[test]
fn a_yaml_file_over_its_limit_is_refused() {
    let scratch = Scratch::new();
    let mut text = String::new();
    let mut i = 0;
    while text.len() <= 9 * 1024 * 1024 {
        text.push_str(&format!(
            "- label: act-{i}\n  type: system.no_op\n  description: {}\n",
            "x".repeat(200)
        ));
        i += 1;
    }
    scratch.write("big.yaml", &text);
    let err = refused_everywhere(&scratch, "big.yaml");
    assert!(
        err.starts_with("big.yaml: the file is 9.0 MiB (")
            && err.ends_with("YAML action files are limited to 8 MiB (JSON files to 32 MiB): convert it to JSON, or split the plan into several\n"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn endless_input_is_read_only_up_to_the_limit() {
    let scratch = Scratch::new();
    let out = scratch.baton(&["validate", "/dev/zero"]);
    assert_eq!(code(&out), 2);
    assert_eq!(
        stderr(&out),
        "/dev/zero: the file holds more than 32 MiB; action files are limited to 32 MiB: split \
         the plan into several, or move large values out of it (template_file, S3 objects)\n\
         1 of 1 files invalid\n"
    );
    assert!(no_store(&scratch));
}

#[test]
fn a_10_mb_param_value_names_the_file_the_action_and_the_field() {
    let scratch = Scratch::new();
    let plan = serde_json::json!([
        {"label": "config", "type": "system.no_op"},
        {"label": "upload", "type": "system.set_variables", "depends_on": ["config"],
         "params": {"variables": {"small": "ok", "blob": "b".repeat(10 * 1024 * 1024)}}},
    ]);
    scratch.write("payload.json", &plan.to_string());
    assert_eq!(
        refused_everywhere(&scratch, "payload.json"),
        "payload.json: actions[1] \"upload\": params.variables.blob: is 10.0 MiB of JSON; an \
         action's params may hold at most 1 MiB in all: put large content in a file \
         (template_file) or an S3 object and pass its name\n"
    );
}

/// A chain a1 <- a2 <- … <- a100000: validation uses no recursion (the main thread's stack
/// would overflow long before), and every action reading the first one's outputs is checked
/// in one pass.
#[test]
fn a_100k_deep_dependency_chain_validates() {
    let scratch = Scratch::new();
    let actions: Vec<serde_json::Value> = (1..=100_000)
        .map(|i| {
            let mut action = serde_json::json!({"label": format!("a{i}"), "type": "system.no_op"});
            if i > 1 {
                action["depends_on"] = serde_json::json!([format!("a{}", i - 1)]);
            }
            action
        })
        .collect();
    scratch.write("chain.json", &serde_json::Value::Array(actions).to_string());
    let out = scratch.baton(&["validate", "chain.json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "chain.json: ok (100000 actions)\n");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

#[test]
fn deep_nesting_is_refused_with_its_position() {
    let scratch = Scratch::new();
    let deep = 100_000;
    let wrap = |value: String| {
        format!(
            r#"[{{"label": "a", "type": "system.set_variables", "params": {{"variables": {{"x": {value}}}}}}}]"#
        )
    };
    scratch.write(
        "lists.json",
        &wrap(format!("{}1{}", "[".repeat(deep), "]".repeat(deep))),
    );
    scratch.write(
        "objects.json",
        &wrap(format!("{}1{}", r#"{"a":"#.repeat(deep), "}".repeat(deep))),
    );
    scratch.write(
        "flow.yaml",
        &format!(
            "- label: a\n  type: system.set_variables\n  params: {{variables: {{x: {}{}}}}}\n",
            "[".repeat(deep),
            "]".repeat(deep)
        ),
    );
    let mut block =
        String::from("- label: a\n  type: system.set_variables\n  params:\n    variables:\n");
    for level in 0..300 {
        block.push_str(&format!("{}k:\n", " ".repeat(6 + 2 * level)));
    }
    scratch.write("block.yaml", &block);
    for (name, expected) in [
        (
            "lists.json",
            "lists.json:1:202: invalid JSON: nested too deeply",
        ),
        ("objects.json", "objects.json:1:"),
        (
            "flow.yaml",
            "flow.yaml:3:150: invalid YAML: nested too deeply",
        ),
        ("block.yaml", "block.yaml:"),
    ] {
        let err = refused_everywhere(&scratch, name);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(expected), "{err}");
        assert!(
            err.ends_with(
                "nested too deeply: lists and objects may be nested at most 127 levels deep\n"
            ),
            "{err}"
        );
    }
}

/// Input that used to crash the process (a stack overflow is an abort, not exit 2) or hang it.
#[test]
fn hostile_templates_patterns_and_bytes_are_refused_not_crashed() {
    let scratch = Scratch::new();
    let chain = format!("{{{{ {}1 }}}}", "-".repeat(100_000));
    let plan = serde_json::json!([
        {"label": "t", "type": "system.set_variables", "params": {"variables": {"x": chain}}},
    ]);
    scratch.write("template.json", &plan.to_string());
    assert_eq!(
        refused_everywhere(&scratch, "template.json"),
        "template.json: actions[0] \"t\": params.variables.x: template error: the expression is \
         too complex: one tag holds 201 or more operators, the limit is 200; split it into \
         smaller expressions\n"
    );

    let star: Vec<serde_json::Value> = (0..3_000)
        .map(|i| serde_json::json!({"label": format!("s{i}"), "type": "system.no_op", "depends_on": ["*"]}))
        .collect();
    scratch.write("star.json", &serde_json::Value::Array(star).to_string());
    let err = refused_everywhere(&scratch, "star.json");
    assert!(
        err.contains("depends_on[0]: the plan has more than 2000000 dependencies"),
        "{err}"
    );

    std::fs::write(
        scratch.path().join("binary.json"),
        b"[{\"label\": \"\xff\xfe\"}]",
    )
    .expect("write");
    assert_eq!(
        refused_everywhere(&scratch, "binary.json"),
        "binary.json:1:13: the file is not UTF-8 text (byte 0xff is not valid here)\n"
    );
}
