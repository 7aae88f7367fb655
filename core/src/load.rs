//! Reading and validating action files. Everything is checked before any state is written, and
//! every problem is reported at once, each naming the file, the action and the field.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::actions::ActionType;
use crate::duration::{parse_duration, seconds_to_duration};
use crate::graph::topological_order;
use crate::model::{Action, ActionIdx, Plan, RetryPolicy};
use crate::template::{self, OutputRefs};

/// Action files larger than this are refused before parsing, so memory stays bounded.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
const MAX_LABEL: usize = 256;

/// One problem in an action file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// 1-based line and column, for syntax errors.
    pub position: Option<(usize, usize)>,
    pub index: Option<usize>,
    pub label: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ":")?;
        if let Some(index) = self.index {
            write!(f, " actions[{index}]")?;
            if let Some(label) = &self.label {
                write!(f, " \"{label}\"")?;
            }
            write!(f, ":")?;
        }
        if let Some(field) = &self.field {
            write!(f, " {field}:")?;
        }
        write!(f, " {}", self.message)
    }
}

/// Everything wrong with a file (errors), plus warnings that do not stop it.
#[derive(Debug, Clone, Default)]
pub struct Problems {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// A valid plan and the warnings found while loading it.
#[derive(Debug)]
pub struct Loaded {
    pub plan: Plan,
    pub warnings: Vec<Problem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    /// JSON when the text starts like JSON, otherwise YAML.
    Detect,
}

/// Reads and validates an action file; `.yaml`/`.yml` files are read as YAML.
pub fn load_path(path: &Path) -> Result<Loaded, Problems> {
    let file = path.display().to_string();
    let fail = |message: String| Problems {
        errors: vec![Problem::file_level(&file, message)],
        warnings: Vec::new(),
    };
    let size = std::fs::metadata(path)
        .map_err(|e| fail(format!("cannot read the action file: {e}")))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(fail(format!(
            "the file is {} MiB; action files are limited to {} MiB (split the plan or move large \
             values into template files)",
            size / (1024 * 1024),
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(format!("cannot read the action file: {e}")))?;
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => Format::Yaml,
        Some("json") => Format::Json,
        _ => Format::Detect,
    };
    load_str(&file, &text, format)
}

/// Parses and validates action-file text; `file` names it in messages.
pub fn load_str(file: &str, text: &str, format: Format) -> Result<Loaded, Problems> {
    // Editors on Windows like to start files with a byte-order mark; it carries no meaning.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let streamable = format != Format::Yaml && text.trim_start().starts_with('[');
    if streamable {
        return stream_json(file, text);
    }
    let document = parse_document(file, text, format).map_err(|p| Problems {
        errors: vec![p],
        warnings: Vec::new(),
    })?;
    let items = match document {
        Value::Array(items) => items,
        other => {
            return Err(Problems {
                errors: vec![Problem::file_level(
                    file,
                    format!(
                        "expected a list of actions (an array), found {}",
                        describe_kind(&other)
                    ),
                )],
                warnings: Vec::new(),
            })
        }
    };
    Validator::new(file).run(items)
}

/// A parser's message without its " at line L column C" tail (the position is reported apart).
fn without_position(message: &str) -> String {
    message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .to_string()
}

/// A JSON syntax error with its 1-based position (serde_json reports column 0 at the very start
/// of a line).
fn json_problem(file: &str, err: &serde_json::Error) -> Problem {
    Problem {
        position: Some((err.line(), err.column().max(1))),
        ..Problem::file_level(
            file,
            format!("invalid JSON: {}", without_position(&err.to_string())),
        )
    }
}

/// Reads a JSON array one action at a time, so only the current action's JSON tree is held in
/// memory (at 100k actions the whole tree was ~77 MB).
fn stream_json(file: &str, text: &str) -> Result<Loaded, Problems> {
    use serde::de::{DeserializeSeed, SeqAccess, Visitor};

    struct Actions<'v, 'f> {
        validator: &'v mut Validator<'f>,
        drafts: Vec<Draft>,
    }

    impl<'de> Visitor<'de> for &mut Actions<'_, '_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of actions")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(item) = seq.next_element::<Value>()? {
                let index = self.drafts.len();
                let draft = self.validator.read_action(index, item);
                self.drafts.push(draft);
            }
            Ok(())
        }
    }

    impl<'de> DeserializeSeed<'de> for &mut Actions<'_, '_> {
        type Value = ();

        fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_seq(self)
        }
    }

    let mut validator = Validator::new(file);
    let mut actions = Actions {
        validator: &mut validator,
        drafts: Vec::new(),
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = (&mut actions)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    let drafts = std::mem::take(&mut actions.drafts);
    if let Err(err) = parsed {
        return Err(Problems {
            errors: vec![json_problem(file, &err)],
            warnings: Vec::new(),
        });
    }
    validator.finish_drafts(drafts)
}

// A cold path that runs once per file: the large error costs nothing worth boxing for.
#[allow(clippy::result_large_err)]
fn parse_document(file: &str, text: &str, format: Format) -> Result<Value, Problem> {
    let looks_like_json = text.trim_start().starts_with(['[', '{']);
    let use_json = match format {
        Format::Json => true,
        Format::Yaml => false,
        Format::Detect => looks_like_json,
    };
    if text.trim().is_empty() {
        return Err(Problem::file_level(
            file,
            "the file is empty; expected a list of actions",
        ));
    }
    if use_json {
        serde_json::from_str(text).map_err(|err| json_problem(file, &err))
    } else {
        serde_yaml::from_str(text).map_err(|err| {
            let position = err.location().map(|l| (l.line(), l.column()));
            Problem {
                position,
                ..Problem::file_level(
                    file,
                    format!("invalid YAML: {}", without_position(&err.to_string())),
                )
            }
        })
    }
}

impl Problem {
    fn file_level(file: &str, message: impl Into<String>) -> Self {
        Problem {
            file: file.to_string(),
            position: None,
            index: None,
            label: None,
            field: None,
            message: message.into(),
        }
    }
}

/// Canonical field names and the aliases accepted for older action files.
const FIELDS: &[(&str, &[&str])] = &[
    ("label", &["Label", "Name"]),
    ("type", &["Type", "Kind"]),
    ("depends_on", &["DependsOn"]),
    ("params", &["Params", "Spec"]),
    ("condition", &["Condition"]),
    ("timeout", &["Timeout"]),
    ("retry", &["Retry"]),
    ("description", &["Description"]),
];

fn canonical_field(key: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .find(|(name, aliases)| *name == key || aliases.contains(&key))
        .map(|(name, _)| *name)
}

/// One action as read, before dependencies are resolved.
struct Draft {
    label: Option<String>,
    action_type: Option<ActionType>,
    depends_on: Vec<String>,
    params: Value,
    condition: Option<String>,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    description: Option<String>,
    /// What each template reads, by field.
    refs: Vec<(String, OutputRefs)>,
    templated: bool,
}

struct Validator<'f> {
    file: &'f str,
    problems: Problems,
}

impl<'f> Validator<'f> {
    fn new(file: &'f str) -> Self {
        Validator {
            file,
            problems: Problems::default(),
        }
    }

    fn error(
        &mut self,
        index: usize,
        label: Option<&str>,
        field: &str,
        message: impl Into<String>,
    ) {
        self.problems.errors.push(Problem {
            file: self.file.to_string(),
            position: None,
            index: Some(index),
            label: label.map(str::to_string),
            field: (!field.is_empty()).then(|| field.to_string()),
            message: message.into(),
        });
    }

    fn warning(&mut self, index: usize, label: &str, field: &str, message: impl Into<String>) {
        self.problems.warnings.push(Problem {
            file: self.file.to_string(),
            position: None,
            index: Some(index),
            label: Some(label.to_string()),
            field: Some(field.to_string()),
            message: message.into(),
        });
    }

    fn run(mut self, items: Vec<Value>) -> Result<Loaded, Problems> {
        let drafts: Vec<Draft> = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| self.read_action(i, item))
            .collect();
        self.finish_drafts(drafts)
    }

    /// Everything after reading each action: labels, dependencies, cycles, template reads.
    fn finish_drafts(mut self, drafts: Vec<Draft>) -> Result<Loaded, Problems> {
        if drafts.is_empty() {
            self.problems
                .warnings
                .push(Problem::file_level(self.file, "the plan has no actions"));
        }

        // Duplicate labels make every later reference ambiguous, so resolution stops there.
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(drafts.len());
        let mut duplicates = Vec::new();
        for (i, draft) in drafts.iter().enumerate() {
            if let Some(label) = &draft.label {
                if let Some(&first) = index.get(label.as_str()) {
                    duplicates.push((i, label.clone(), first));
                } else {
                    index.insert(label, i);
                }
            }
        }
        for (i, label, first) in duplicates {
            self.error(
                i,
                Some(&label),
                "label",
                format!("duplicate label (first used by actions[{first}])"),
            );
        }

        let deps = self.resolve_dependencies(&drafts, &index);
        if !self.problems.errors.is_empty() {
            return Err(self.finish());
        }
        let order = match topological_order(&deps) {
            Ok(order) => order,
            Err(cycles) => {
                for mut cycle in cycles {
                    // Start at the first action in file order, so the message is stable.
                    let start = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
                    cycle.rotate_left(start);
                    let names: Vec<&str> = cycle
                        .iter()
                        .chain(cycle.first())
                        .map(|&i| drafts[i as usize].label.as_deref().unwrap_or("?"))
                        .collect();
                    let first = cycle[0] as usize;
                    self.error(
                        first,
                        drafts[first].label.as_deref(),
                        "depends_on",
                        format!("dependency cycle: {}", names.join(" → ")),
                    );
                }
                return Err(self.finish());
            }
        };

        let mut actions = Vec::with_capacity(drafts.len());
        let mut read_labels = Vec::with_capacity(drafts.len());
        for draft in drafts {
            // Every draft has a label and type here: a missing one was an error above.
            let (Some(label), Some(action_type)) = (draft.label, draft.action_type) else {
                continue;
            };
            actions.push(Action {
                label,
                action_type,
                depends_on: draft.depends_on,
                params: draft.params,
                condition: draft.condition,
                timeout: draft.timeout,
                retry: draft.retry,
                description: draft.description,
                templated: draft.templated,
                reads_outputs: None,
                reads_vars: draft
                    .refs
                    .iter()
                    .flat_map(|(field, refs)| refs.vars.iter().map(|v| (field.clone(), v.clone())))
                    .collect(),
            });
            read_labels.push(draft.refs);
        }
        let mut plan = Plan::new(self.file.to_string(), actions, deps, order);
        self.check_output_refs(&mut plan, read_labels);
        if self.problems.errors.is_empty() {
            Ok(Loaded {
                plan,
                warnings: self.problems.warnings,
            })
        } else {
            Err(self.finish())
        }
    }

    /// Problems in file order (stable: within an action, in the order they were found).
    fn finish(mut self) -> Problems {
        self.problems.errors.sort_by_key(|p| p.index);
        self.problems.warnings.sort_by_key(|p| p.index);
        self.problems
    }

    fn read_action(&mut self, i: usize, item: Value) -> Draft {
        let mut draft = Draft {
            label: None,
            action_type: None,
            depends_on: Vec::new(),
            params: Value::Null,
            condition: None,
            timeout: None,
            retry: None,
            description: None,
            refs: Vec::new(),
            templated: false,
        };
        let Value::Object(object) = item else {
            self.error(
                i,
                None,
                "",
                format!(
                    "expected an action object with label and type, found {}",
                    describe_kind(&item)
                ),
            );
            return draft;
        };
        let mut fields: Map<String, Value> = Map::new();
        let mut spelled: HashMap<&'static str, String> = HashMap::new();
        let label_hint = object
            .get("label")
            .or_else(|| object.get("Label"))
            .or_else(|| object.get("Name"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let label_hint = label_hint.as_deref();
        for (key, value) in object {
            match canonical_field(&key) {
                Some(name) => {
                    if let Some(previous) = spelled.insert(name, key.clone()) {
                        self.error(
                            i,
                            label_hint,
                            &key,
                            format!("duplicates field \"{previous}\" (both mean {name})"),
                        );
                    }
                    fields.insert(name.to_string(), value);
                }
                None => {
                    let names = FIELDS.iter().map(|(name, _)| *name);
                    let hint = suggest(&key, names)
                        .map(|s| format!(" (did you mean \"{s}\"?)"))
                        .unwrap_or_else(|| {
                            " (allowed: label, type, depends_on, params, condition, timeout, retry, description)"
                                .to_string()
                        });
                    self.error(i, label_hint, &key, format!("unknown field{hint}"));
                }
            }
        }

        match fields.remove("label") {
            Some(Value::String(label)) => match label_problem(&label) {
                Some(message) => self.error(i, Some(&label), "label", message),
                None => draft.label = Some(label),
            },
            Some(other) => self.error(
                i,
                None,
                "label",
                format!("must be a string, not {}", describe_kind(&other)),
            ),
            None => self.error(i, None, "label", "missing required field"),
        }
        let label = draft.label.clone();
        let label = label.as_deref();

        match fields.remove("type") {
            Some(Value::String(name)) => match ActionType::from_name(&name) {
                Some(t) => draft.action_type = Some(t),
                None => {
                    let canonical = crate::actions::canonical_type_name(&name);
                    let hint = suggest(&canonical, ActionType::ALL.iter().map(|t| t.name()))
                        .map(|s| format!(" (did you mean \"{s}\"?)"))
                        .unwrap_or_else(|| format!(" (known types: {})", type_list()));
                    self.error(
                        i,
                        label,
                        "type",
                        format!("unknown action type \"{name}\"{hint}"),
                    );
                }
            },
            Some(other) => self.error(
                i,
                label,
                "type",
                format!("must be a string, not {}", describe_kind(&other)),
            ),
            None => self.error(i, label, "type", "missing required field"),
        }

        match fields.remove("depends_on") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (j, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(dep) if !dep.is_empty() => draft.depends_on.push(dep),
                        other => self.error(
                            i,
                            label,
                            &format!("depends_on[{j}]"),
                            format!("must be a label or pattern, not {}", describe_kind(&other)),
                        ),
                    }
                }
            }
            Some(other) => self.error(
                i,
                label,
                "depends_on",
                format!("must be a list of labels, not {}", describe_kind(&other)),
            ),
        }

        match fields.remove("params") {
            None | Some(Value::Null) => {}
            Some(params @ Value::Object(_)) => draft.params = params,
            Some(other) => self.error(
                i,
                label,
                "params",
                format!("must be an object, not {}", describe_kind(&other)),
            ),
        }
        if let Some(action_type) = draft.action_type {
            if let Err(problem) = action_type.check_params(&draft.params) {
                let field = if problem.path.is_empty() {
                    "params".to_string()
                } else {
                    format!("params.{}", problem.path)
                };
                self.error(i, label, &field, problem.message);
            }
        }
        for (path, message) in template::check_params(&draft.params, &mut draft.refs) {
            self.error(
                i,
                label,
                &format!("params.{path}"),
                format!("template error: {message}"),
            );
        }
        draft.templated = params_have_templates(&draft.params);

        match fields.remove("condition") {
            None | Some(Value::Null) => {}
            Some(Value::String(expression)) => match template::check_expression(&expression) {
                Ok(refs) => {
                    draft.refs.push(("condition".into(), refs));
                    draft.condition = Some(expression);
                }
                Err(message) => self.error(
                    i,
                    label,
                    "condition",
                    format!("expression error: {message}"),
                ),
            },
            Some(Value::Bool(value)) => draft.condition = Some(value.to_string()),
            Some(other) => self.error(
                i,
                label,
                "condition",
                format!(
                    "must be an expression string, not {}",
                    describe_kind(&other)
                ),
            ),
        }

        match fields.remove("timeout") {
            None | Some(Value::Null) => {}
            Some(value) => match duration_value(&value) {
                Ok(d) if d.is_zero() => self.error(i, label, "timeout", "must be longer than zero"),
                Ok(d) => draft.timeout = Some(d),
                Err(message) => self.error(i, label, "timeout", message),
            },
        }

        match fields.remove("retry") {
            None | Some(Value::Null) => {}
            Some(value) => match retry_policy(&value) {
                Ok(policy) => draft.retry = Some(policy),
                Err((field, message)) => self.error(i, label, &field, message),
            },
        }

        match fields.remove("description") {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => draft.description = Some(text),
            Some(other) => self.error(
                i,
                label,
                "description",
                format!("must be a string, not {}", describe_kind(&other)),
            ),
        }
        draft
    }

    fn resolve_dependencies(
        &mut self,
        drafts: &[Draft],
        index: &HashMap<&str, usize>,
    ) -> Vec<Vec<ActionIdx>> {
        // Patterns are matched against labels in file order; only drafts with a label count.
        let labelled: Vec<(usize, &str)> = drafts
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.label.as_deref().map(|l| (i, l)))
            .collect();
        let mut all = Vec::with_capacity(drafts.len());
        for (i, draft) in drafts.iter().enumerate() {
            let label = draft.label.as_deref();
            let mut deps: Vec<ActionIdx> = Vec::with_capacity(draft.depends_on.len());
            for (j, dep) in draft.depends_on.iter().enumerate() {
                let field = format!("depends_on[{j}]");
                if dep.contains('*') {
                    let before = deps.len();
                    deps.extend(
                        labelled
                            .iter()
                            .filter(|&&(k, l)| k != i && glob_match(dep, l))
                            .map(|&(k, _)| k as ActionIdx),
                    );
                    if deps.len() == before {
                        self.warning(
                            i,
                            label.unwrap_or("?"),
                            &field,
                            format!("pattern \"{dep}\" matches no action"),
                        );
                    }
                    continue;
                }
                match index.get(dep.as_str()) {
                    Some(&k) if k == i => {
                        self.error(i, label, &field, "an action cannot depend on itself")
                    }
                    Some(&k) => deps.push(k as ActionIdx),
                    None => {
                        let hint = suggest(dep, labelled.iter().map(|&(_, l)| l))
                            .map(|s| format!(" (did you mean \"{s}\"?)"))
                            .unwrap_or_default();
                        self.error(i, label, &field, format!("unknown action \"{dep}\"{hint}"));
                    }
                }
            }
            deps.sort_unstable();
            deps.dedup();
            all.push(deps);
        }
        all
    }

    /// A template may read only outputs of actions that are guaranteed to have finished first.
    fn check_output_refs(&mut self, plan: &mut Plan, read_labels: Vec<Vec<(String, OutputRefs)>>) {
        for (idx, refs) in read_labels.into_iter().enumerate() {
            let label = plan.actions[idx].label.clone();
            let mut reads = Vec::new();
            let mut dynamic = false;
            let mut ancestors: Option<Vec<bool>> = None;
            for (field, found) in refs {
                dynamic |= found.dynamic;
                for name in found.labels {
                    let Some(target) = plan.find(&name) else {
                        let hint = suggest(&name, plan.actions.iter().map(|a| a.label.as_str()))
                            .map(|s| format!(" (did you mean \"{s}\"?)"))
                            .unwrap_or_default();
                        self.error(idx, Some(&label), &field, format!("template reads outputs[\"{name}\"] but no action has that label{hint}"));
                        continue;
                    };
                    let ancestors = ancestors.get_or_insert_with(|| {
                        let mut mask = vec![false; plan.len()];
                        for a in plan.ancestors(idx as ActionIdx) {
                            mask[a as usize] = true;
                        }
                        mask
                    });
                    if !ancestors[target as usize] {
                        self.error(
                            idx,
                            Some(&label),
                            &field,
                            format!(
                                "template reads outputs[\"{name}\"] but \"{name}\" is not a dependency; \
                                 add it to depends_on so it finishes first"
                            ),
                        );
                        continue;
                    }
                    reads.push(target);
                }
            }
            reads.sort_unstable();
            reads.dedup();
            plan.actions[idx].reads_outputs = (!dynamic).then_some(reads);
        }
    }
}

fn params_have_templates(value: &Value) -> bool {
    match value {
        Value::String(s) => crate::actions::is_template(s),
        Value::Array(items) => items.iter().any(params_have_templates),
        Value::Object(map) => map.values().any(params_have_templates),
        _ => false,
    }
}

fn label_problem(label: &str) -> Option<String> {
    if label.is_empty() {
        return Some("must not be empty".into());
    }
    if label.len() > MAX_LABEL {
        return Some(format!(
            "is {} characters long; the limit is {MAX_LABEL}",
            label.len()
        ));
    }
    label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.:/-".contains(*c)))
        .map(|c| format!("contains {c:?}; labels may use only A-Z a-z 0-9 _ . : / -"))
}

fn duration_value(value: &Value) -> Result<Duration, String> {
    match value {
        Value::String(text) => parse_duration(text),
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| "is not a number".to_string())
            .and_then(seconds_to_duration),
        other => Err(format!(
            "must be a duration such as \"45m\", not {}",
            describe_kind(other)
        )),
    }
}

fn retry_policy(value: &Value) -> Result<RetryPolicy, (String, String)> {
    let Value::Object(map) = value else {
        return Err((
            "retry".into(),
            format!(
                "must be an object like {{\"attempts\": 3, \"delay\": \"10s\"}}, not {}",
                describe_kind(value)
            ),
        ));
    };
    let mut policy = RetryPolicy {
        attempts: 1,
        delay: Duration::from_secs(10),
        backoff: 2.0,
    };
    for (key, item) in map {
        match key.as_str() {
            "attempts" => match item.as_u64() {
                Some(n @ 1..=100) => policy.attempts = n as u32,
                _ => {
                    return Err((
                        "retry.attempts".into(),
                        "must be a whole number from 1 to 100".into(),
                    ))
                }
            },
            "delay" => {
                policy.delay = duration_value(item).map_err(|m| ("retry.delay".to_string(), m))?
            }
            "backoff" => match item.as_f64() {
                Some(b) if (1.0..=10.0).contains(&b) => policy.backoff = b,
                _ => {
                    return Err((
                        "retry.backoff".into(),
                        "must be a number from 1 to 10".into(),
                    ))
                }
            },
            other => {
                return Err((
                    format!("retry.{other}"),
                    "unknown field (allowed: attempts, delay, backoff)".into(),
                ))
            }
        }
    }
    Ok(policy)
}

fn describe_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn type_list() -> String {
    ActionType::ALL
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `*` matches any run of characters (including none); everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// The closest candidate within a small edit distance, for "did you mean" hints.
pub fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .filter(|c| c.len().abs_diff(word.len()) <= limit)
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Optimal-string-alignment distance: edits plus adjacent transpositions ("biuld" → "build"
/// is one).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded, Problems> {
        load_str("t.json", text, Format::Json)
    }

    fn errors(text: &str) -> Vec<String> {
        match load(text) {
            Ok(_) => panic!("expected errors for {text}"),
            Err(problems) => problems.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match("deploy-*", "deploy-app"));
        assert!(glob_match("*-app", "deploy-app"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b", "ac"));
        assert!(!glob_match("deploy-*", "build"));
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("biuld", ["build", "test"].into_iter()),
            Some("build")
        );
        assert_eq!(suggest("zzzzz", ["build", "test"].into_iter()), None);
    }

    #[test]
    fn valid_plan_with_aliases_patterns_and_templates() {
        let loaded = load(
            r#"[
            {"Label": "net", "Kind": "SYSTEM::SetVariables", "Spec": {"variables": {"vpc": "v-1"}}},
            {"label": "app-a", "type": "system.no_op", "depends_on": ["net"]},
            {"label": "app-b", "type": "system.command", "depends_on": ["net"],
             "params": {"command": ["echo", "{{ outputs['net'].vpc }}"]}},
            {"label": "done", "type": "system.no_op", "depends_on": ["app-*"], "condition": "true"}
        ]"#,
        )
        .expect("valid");
        let plan = loaded.plan;
        assert_eq!(plan.len(), 4);
        assert_eq!(plan.deps[3], vec![1, 2]);
        assert_eq!(plan.actions[2].reads_outputs, Some(vec![0]));
        assert!(plan.actions[2].templated);
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn reports_every_problem_at_once() {
        let errs = errors(
            r#"[
            {"label": "a", "type": "system.nope"},
            {"label": "b", "type": "system.no_op", "depends_on": ["c"], "colour": "red"},
            {"type": "system.no_op"}
        ]"#,
        );
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(errs[0].contains("actions[0] \"a\": type: unknown action type \"system.nope\""));
    }

    #[test]
    fn cycle_is_printed_as_a_path() {
        let errs = errors(
            r#"[{"label": "a", "type": "system.no_op", "depends_on": ["c"]},
                {"label": "b", "type": "system.no_op", "depends_on": ["a"]},
                {"label": "c", "type": "system.no_op", "depends_on": ["b"]}]"#,
        );
        assert_eq!(
            errs,
            vec!["t.json: actions[0] \"a\": depends_on: dependency cycle: a → b → c → a"]
        );
    }

    #[test]
    fn template_reading_a_non_ancestor_is_an_error() {
        let errs = errors(
            r#"[{"label": "a", "type": "system.set_variables", "params": {"variables": {"x": "1"}}},
                {"label": "b", "type": "system.command", "params": {"command": ["echo", "{{ outputs['a'].x }}"]}}]"#,
        );
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("\"a\" is not a dependency"), "{}", errs[0]);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let errs = errors("[\n  {\"label\": \"a\",}\n]");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("t.json:2:"), "{}", errs[0]);
    }

    #[test]
    fn yaml_is_accepted() {
        let loaded = load_str(
            "t.yaml",
            "- label: a\n  type: system.no_op\n- label: b\n  type: system.wait\n  params: {seconds: 2}\n  depends_on: [a]\n",
            Format::Yaml,
        )
        .expect("valid yaml");
        assert_eq!(loaded.plan.len(), 2);
    }

    #[test]
    fn unmatched_pattern_is_a_warning() {
        let loaded = load(r#"[{"label": "a", "type": "system.no_op", "depends_on": ["x-*"]}]"#)
            .expect("valid");
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].to_string().contains("matches no action"));
    }
}
