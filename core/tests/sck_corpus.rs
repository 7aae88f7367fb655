//! The Simple Cloud Kit (SCK) corpus: real action files that SCK's compile stage rendered from
//! its public templates and samples, read in place (they are GPL-3.0 test inputs: never copied
//! into this repository). The folder is `$BATON_SCK_CORPUS`, or `shared/sck` beside the
//! workspace; a machine without it (CI) skips this test, saying why.
//!
//! Every file under `per-app/` and `per-consumable/` must validate, except:
//!
//! - files that fail only because they use a kind listed in [`NOT_YET_KNOWN_KINDS`] (kinds
//!   being added to the catalogue separately): counted and printed. Empty the list once the
//!   catalogue has them, and every such file must then validate too;
//! - the genuinely invalid files in [`GENUINELY_INVALID`], each with its reason.
//!
//! For every file that loads (with not-yet-known kinds shimmed as no-ops), the plan a run stores
//! must read back (without validating again) as the same plan, and baton's expanded
//! dependencies must equal SCK's, computed here from the raw YAML with SCK's rules and none of
//! baton's code: `DependsOn` (a label, a list or `"null"`) and `After` are waited for; `Before:
//! [X]` on A makes X wait for A; in a pattern, `*` stays within one `:`-segment before the
//! first `/` and matches anything after it; an exact label that is not in the file is ignored.
//!
//! Figures (per-app 45 files, per-consumable 125): before SCK files were understood, 0 of them
//! validated; now 124 validate as they are, 44 fail only on a kind not yet in this branch's
//! catalogue (`AWS::KMS::CreateGrants` in every compiled deploy, the image kinds, …), and 2 are
//! genuinely invalid. Run with `--nocapture` to see the current figures.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use baton_core::{load_str, Format, Loaded};

/// Kinds the catalogue of this branch does not have yet; files that fail only on them are
/// counted, not failed.
const NOT_YET_KNOWN_KINDS: &[&str] = &[];

/// Files SCK's compiler rendered wrong, relative to the corpus folder, and why.
const GENUINELY_INVALID: &[(&str, &str)] = &[
    (
        "per-consumable/AWS/Image/teardown.actions",
        "two actions are named …:mycomponent:action/teardown/main/log-groups (the template \
         renders that action twice); SCK's runner keeps the second under the name and runs it \
         twice, so which dependencies hold is an accident",
    ),
    (
        "per-consumable/AWS/UnencryptedImage/teardown.actions",
        "the same duplicated log-groups action as AWS/Image",
    ),
];

fn corpus() -> Option<PathBuf> {
    let dir = match std::env::var_os("BATON_SCK_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/sck"),
    };
    dir.join("per-app").is_dir().then_some(dir)
}

fn action_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            action_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "actions") {
            out.push(path);
        }
    }
}

// ---- SCK's graph, from the raw YAML ----------------------------------------------------------

fn text_list(value: Option<&serde_yaml::Value>) -> Vec<String> {
    match value {
        Some(serde_yaml::Value::String(s)) if s == "null" => Vec::new(),
        Some(serde_yaml::Value::String(s)) => vec![s.clone()],
        Some(serde_yaml::Value::Sequence(items)) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn sck_name(action: &serde_yaml::Value) -> Option<String> {
    for key in ["Name", "Label", "name", "label"] {
        if let Some(name) = action.get(key).and_then(|v| v.as_str()) {
            return Some(name.to_string());
        }
    }
    let metadata = action.get("metadata").or_else(|| action.get("Metadata"))?;
    let name = metadata.get("name")?.as_str()?;
    Some(match metadata.get("namespace").and_then(|n| n.as_str()) {
        Some(namespace) => format!("{namespace}:action/{name}"),
        None => name.to_string(),
    })
}

/// `*` matches any run of characters of `text` (which holds no separator of the level).
fn star_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| star_match(rest, &tail[i..]))
        }
    }
}

/// SCK's rule, as segments: the parts before the first `/` pair up `:`-segment by segment, and
/// the rest is matched as a whole.
fn sck_match(pattern: &str, label: &str) -> bool {
    let (p_head, p_tail) = pattern.split_once('/').unwrap_or((pattern, ""));
    let (l_head, l_tail) = label.split_once('/').unwrap_or((label, ""));
    if pattern.contains('/') != label.contains('/') {
        return false;
    }
    let p_segments: Vec<&str> = p_head.split(':').collect();
    let l_segments: Vec<&str> = l_head.split(':').collect();
    p_segments.len() == l_segments.len()
        && p_segments
            .iter()
            .zip(&l_segments)
            .all(|(p, l)| star_match(p, l))
        && star_match(p_tail, l_tail)
}

/// Each action's dependencies by SCK's rules.
fn sck_graph(actions: &[serde_yaml::Value]) -> BTreeMap<String, BTreeSet<String>> {
    let names: Vec<String> = actions.iter().filter_map(sck_name).collect();
    let resolve = |entry: &str, own: &str| -> Vec<String> {
        if entry.contains('*') {
            names
                .iter()
                .filter(|n| n.as_str() != own && sck_match(entry, n))
                .cloned()
                .collect()
        } else if names.iter().any(|n| n == entry) {
            vec![entry.to_string()]
        } else {
            Vec::new()
        }
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> =
        names.iter().map(|n| (n.clone(), BTreeSet::new())).collect();
    for action in actions {
        let Some(own) = sck_name(action) else {
            continue;
        };
        let mut waits = text_list(action.get("DependsOn").or_else(|| action.get("depends_on")));
        waits.extend(text_list(action.get("After")));
        for entry in waits {
            let found = resolve(&entry, &own);
            graph.entry(own.clone()).or_default().extend(found);
        }
        for entry in text_list(action.get("Before")) {
            for target in resolve(&entry, &own) {
                graph.entry(target).or_default().insert(own.clone());
            }
        }
    }
    graph
}

fn baton_graph(loaded: &Loaded) -> BTreeMap<String, BTreeSet<String>> {
    let plan = &loaded.plan;
    (0..plan.len() as u32)
        .map(|i| {
            let deps = plan
                .deps(i)
                .iter()
                .map(|&d| plan.label(d).to_string())
                .collect();
            (plan.label(i).to_string(), deps)
        })
        .collect()
}

/// What is wrong with the plan as a run stores it and reads it back (`tick`, `resume`, the
/// Lambda): it must run as the validated plan does, without validating again.
fn stored_problem(name: &str, plan: &baton_core::Plan) -> Option<String> {
    let stored = plan.to_json();
    let again = match baton_core::load::read_stored("actions.json", &stored) {
        Ok(again) => again,
        Err(e) => return Some(format!("{name}: the stored plan does not read back: {e}")),
    };
    let same = baton_core::testutil::runs_the_same(&again, plan);
    (!same).then(|| format!("{name}: the stored plan reads back as a different plan"))
}

// ---- The verdicts -----------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
enum Verdict {
    Valid,
    PendingKinds(BTreeSet<String>),
    Invalid(Vec<String>),
}

/// The kind an "unknown action type" problem names, when it is one of the not-yet-known.
fn pending_kind(problem: &baton_core::Problem) -> Option<String> {
    let field = problem.field.as_deref()?;
    if !["Type", "Kind", "kind"].contains(&field) {
        return None;
    }
    let rest = problem.message.strip_prefix("unknown action type \"")?;
    let kind = rest.split('"').next()?;
    NOT_YET_KNOWN_KINDS
        .contains(&kind)
        .then(|| kind.to_string())
}

/// The file with not-yet-known kinds replaced by no-ops, as JSON.
fn shimmed(actions: &[serde_yaml::Value]) -> String {
    let mut actions = actions.to_vec();
    for action in &mut actions {
        let Some(map) = action.as_mapping_mut() else {
            continue;
        };
        let kind_key = ["Type", "Kind", "kind"]
            .into_iter()
            .find(|k| map.contains_key(*k));
        let Some(kind_key) = kind_key else { continue };
        let pending = map
            .get(kind_key)
            .and_then(|k| k.as_str())
            .is_some_and(|k| NOT_YET_KNOWN_KINDS.contains(&k));
        if pending {
            map.insert(kind_key.into(), "System::NoOp".into());
            for spec in ["Spec", "Params", "spec", "params"] {
                map.remove(spec);
            }
        }
    }
    serde_json::to_string(&actions).unwrap_or_default()
}

struct Checked {
    verdict: Verdict,
    graph_problems: Vec<String>,
}

fn check(root: &Path, file: &Path) -> Checked {
    let name = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let raw: Vec<serde_yaml::Value> = serde_yaml::from_str(&text).unwrap_or_default();
    let (verdict, loaded) = match load_str(&name, &text, Format::Yaml) {
        Ok(loaded) => (Verdict::Valid, Some(loaded)),
        Err(problems) => {
            let pending: Option<BTreeSet<String>> =
                problems.errors.iter().map(pending_kind).collect();
            match pending {
                Some(kinds) => {
                    let again = load_str(&name, &shimmed(&raw), Format::Json);
                    match again {
                        Ok(loaded) => (Verdict::PendingKinds(kinds), Some(loaded)),
                        Err(more) => (
                            Verdict::Invalid(more.errors.iter().map(ToString::to_string).collect()),
                            None,
                        ),
                    }
                }
                None => (
                    Verdict::Invalid(problems.errors.iter().map(ToString::to_string).collect()),
                    None,
                ),
            }
        }
    };
    let mut graph_problems = Vec::new();
    if let Some(loaded) = loaded {
        graph_problems.extend(stored_problem(&name, &loaded.plan));
        let ours = baton_graph(&loaded);
        for (label, sck) in sck_graph(&raw) {
            let baton = ours.get(&label).cloned().unwrap_or_default();
            if baton != sck {
                graph_problems.push(format!(
                    "{name}: {label}: baton waits for {baton:?}, SCK for {sck:?}"
                ));
            }
        }
    }
    Checked {
        verdict,
        graph_problems,
    }
}

#[test]
fn every_sck_file_validates_and_its_graph_is_sck_s() {
    let Some(root) = corpus() else {
        eprintln!(
            "skipped: no SCK corpus (set BATON_SCK_CORPUS to the folder holding per-app/ and \
             per-consumable/, or put it at shared/sck beside the workspace)"
        );
        return;
    };
    let mut failures = Vec::new();
    let mut figures = Vec::new();
    for folder in ["per-app", "per-consumable", "other"] {
        let mut files = Vec::new();
        action_files(&root.join(folder), &mut files);
        files.sort();
        let (mut valid, mut pending, mut invalid) = (0, 0, 0);
        let mut kinds = BTreeSet::new();
        for file in &files {
            let name = file
                .strip_prefix(&root)
                .unwrap_or(file)
                .display()
                .to_string();
            let checked = check(&root, file);
            match checked.verdict {
                Verdict::Valid => valid += 1,
                Verdict::PendingKinds(k) => {
                    pending += 1;
                    kinds.extend(k);
                }
                Verdict::Invalid(errors) => {
                    invalid += 1;
                    let listed = GENUINELY_INVALID.iter().any(|(f, _)| *f == name);
                    // Files outside per-app/ and per-consumable/ are informative only.
                    if !listed && folder != "other" {
                        failures.push(format!(
                            "{name} does not validate:\n  {}",
                            errors.join("\n  ")
                        ));
                    }
                }
            }
            if folder != "other" {
                failures.extend(checked.graph_problems);
            }
        }
        figures.push(format!(
            "{folder}: {} files: {valid} validate, {pending} fail only on kinds not yet known ({}), {invalid} invalid",
            files.len(),
            kinds.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    eprintln!(
        "SCK corpus at {}:\n  {}",
        root.display(),
        figures.join("\n  ")
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_independent_pattern_rule_agrees_on_examples() {
    let label = "prn:p:a:main:7:db:action/deploy/main/resources";
    assert!(sck_match("prn:p:a:main:7:*:action/deploy/*", label));
    assert!(!sck_match("prn:p:*:action/deploy/*", label));
    assert!(!sck_match("prn:p:a:main:7:*:action/teardown/*", label));
    assert!(sck_match("prn:p:a:main:7:db:action/*", label));
}
