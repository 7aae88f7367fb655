//! Simple Cloud Kit (SCK) action files: telling them apart from baton's own, and mapping their
//! spelling onto baton's model (docs/action-files.md, "SCK files").
//!
//! An SCK action is rewritten into baton's field names before it is validated like any other:
//! `Label`/`Name`/`metadata` become `label`, `Type`/`Kind`/`kind` `type`, `Params`/`Spec`/`spec`
//! `params` (each PascalCase param becoming its snake_case name), `DependsOn` and `After` one
//! `depends_on`. What was written where is kept ([`Spelling`]), so every problem names the
//! field as the file spells it.

use serde_json::{Map, Value};

use crate::actions::ActionType;
use crate::hints::did_you_mean;
use crate::model::Dialect;
pub(crate) use crate::template::state::StateKey;

/// Action fields only SCK files have.
const SCK_ONLY: &[&str] = &[
    "LifecycleHooks",
    "SaveOutputs",
    "Scope",
    "Before",
    "After",
    "Metadata",
];

/// Action fields only the third version has (baton's own are `label`, `type`, `params`).
const V3_ONLY: &[&str] = &["kind", "metadata", "spec", "apiVersion"];

/// The dialect of a whole list of actions.
#[cfg(test)]
pub(crate) fn detect(file: &str, actions: &[Value], stored: Option<Dialect>) -> Dialect {
    let mut detector = Detector::new(file);
    actions.iter().for_each(|action| detector.observe(action));
    detector.dialect(stored)
}

/// Which dialect a file's actions are written in. A file is SCK's when any action uses what
/// only SCK has: V3's lowercase `kind`/`metadata`/`spec`, or an action spelled wholly in
/// PascalCase that also has an SCK-only field, PascalCase params, a `DependsOn` that is not a
/// list, or sits in a `.actions` file (SCK's own extension). An action spelled in PascalCase
/// with nothing else of SCK's (`Label`, `Type`, snake_case `Params`) is one of baton's older
/// files, and stays under baton's rules.
///
/// Actions are observed one at a time; what the ones seen so far say can still change with a
/// later one (only ever towards SCK, and from V1 to V2 or V3).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Detector {
    sck_file: bool,
    /// An action uses V3's own fields.
    v3: bool,
    /// An action speaks SCK: PascalCase with something only SCK has.
    speaks_sck: bool,
    /// An action has a field only the second version names so (`Name`, `Kind`, `Spec`).
    second: bool,
}

impl Detector {
    pub(crate) fn new(file: &str) -> Self {
        Detector {
            sck_file: file.ends_with(".actions"),
            v3: false,
            speaks_sck: false,
            second: false,
        }
    }

    pub(crate) fn observe(&mut self, action: &Value) {
        let Some(o) = action.as_object() else {
            return;
        };
        self.v3 = self.v3 || V3_ONLY.iter().any(|k| o.contains_key(*k));
        self.speaks_sck = self.speaks_sck || self.speaks_sck(o);
        self.second = self.second || ["Name", "Kind", "Spec"].iter().any(|k| o.contains_key(*k));
    }

    fn speaks_sck(&self, o: &Map<String, Value>) -> bool {
        let pascal = o
            .keys()
            .all(|k| k.starts_with(|c: char| c.is_ascii_uppercase()));
        if !pascal {
            return false;
        }
        let params = o.get("Params").or_else(|| o.get("Spec"));
        let pascal_params = params.and_then(Value::as_object).is_some_and(|p| {
            p.keys()
                .any(|k| k.starts_with(|c: char| c.is_ascii_uppercase()))
        });
        let loose_depends_on = o.get("DependsOn").is_some_and(|d| !d.is_array());
        self.sck_file
            || pascal_params
            || loose_depends_on
            || SCK_ONLY.iter().any(|k| o.contains_key(*k))
    }

    /// The dialect of the actions seen so far; a stored plan's own dialect wins.
    pub(crate) fn dialect(&self, stored: Option<Dialect>) -> Dialect {
        match stored {
            Some(dialect) => dialect,
            None if self.v3 => Dialect::SckV3,
            None if !self.speaks_sck => Dialect::Native,
            None if self.second => Dialect::SckV2,
            None => Dialect::SckV1,
        }
    }
}

/// Canonical fields of an SCK action and the spellings accepted for each. baton's own names
/// are accepted too (a stored plan is written in them), and baton's extras (`timeout`,
/// `retry`, `description`) may be added to an SCK action.
const FIELDS: &[(&str, &[&str])] = &[
    ("label", &["Label", "Name", "label", "name"]),
    ("type", &["Type", "Kind", "type", "kind"]),
    ("params", &["Params", "Spec", "params", "spec"]),
    ("depends_on", &["DependsOn", "depends_on"]),
    ("after", &["After", "after"]),
    ("before", &["Before", "before"]),
    ("condition", &["Condition", "condition"]),
    ("scope", &["Scope", "scope"]),
    ("save_outputs", &["SaveOutputs", "save_outputs"]),
    ("lifecycle_hooks", &["LifecycleHooks", "lifecycle_hooks"]),
    ("metadata", &["Metadata", "metadata"]),
    ("timeout", &["Timeout", "timeout"]),
    ("retry", &["Retry", "retry"]),
    ("description", &["Description", "description"]),
    // The document version of V3 actions: nothing to do with the run.
    (
        "version",
        &["version", "apiVersion", "ApiVersion", "Version"],
    ),
];

/// Where SCK keeps state: its four scopes.
pub(crate) const SCOPES: &[&str] = &["build", "branch", "app", "portfolio"];

/// How each field of an action was spelled in the file, so problems name it as written.
#[derive(Debug, Default, Clone)]
pub(super) struct Spelling {
    /// Canonical field → as written.
    fields: Vec<(&'static str, String)>,
    /// A param's baton name → its name as written.
    params: Vec<(String, String)>,
    /// Each `depends_on` entry's field as written (`DependsOn[0]`, `After[1]`).
    depends_on: Vec<String>,
    /// The action's type, to name params the file did not write (a missing one) as SCK would.
    type_name: Option<&'static str>,
}

impl Spelling {
    fn written(&self, canonical: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| *name == canonical)
            .map(|(_, written)| written.as_str())
    }

    /// A field path in baton's names (`params.stack_name`, `depends_on[3]`) as the file
    /// spells it (`Spec.StackName`, `After[0]`).
    pub(super) fn translate(&self, field: &str) -> String {
        let split = field.find(['.', '[']).unwrap_or(field.len());
        let (head, rest) = field.split_at(split);
        if head == "depends_on" {
            let entry = rest
                .strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .and_then(|(n, tail)| Some((n.parse::<usize>().ok()?, tail)));
            if let Some((j, tail)) = entry {
                if let Some(written) = self.depends_on.get(j) {
                    return format!("{written}{tail}");
                }
            }
        }
        let Some(written) = self.written(head) else {
            return field.to_string();
        };
        if head != "params" {
            return format!("{written}{rest}");
        }
        let Some(after) = rest.strip_prefix('.') else {
            return format!("{written}{rest}");
        };
        let split = after.find(['.', '[']).unwrap_or(after.len());
        let (key, tail) = after.split_at(split);
        let key = self
            .params
            .iter()
            .find(|(name, _)| name == key)
            .map_or_else(
                || sck_param_name(self.type_name, key),
                |(_, written)| written.clone(),
            );
        format!("{written}.{key}{tail}")
    }
}

/// An SCK action in baton's field names, and how it was spelled.
pub(super) struct Normalised {
    pub(super) fields: Map<String, Value>,
    pub(super) spelling: Spelling,
}

/// Rewrites one SCK action into baton's field names. Problems (field as written, message) are
/// pushed to `problems`; what cannot be read is left out, for the validator to report as
/// missing where it matters.
pub(super) fn normalise(
    object: Map<String, Value>,
    problems: &mut Vec<(String, String)>,
) -> Normalised {
    let mut fields = Map::new();
    let mut spelling = Spelling::default();
    for (key, value) in object {
        let Some(canonical) = canonical_field(&key) else {
            let names = FIELDS
                .iter()
                .flat_map(|(_, spellings)| spellings.iter().copied());
            let hint = did_you_mean(
                &key,
                names.filter(|n| n.starts_with(|c: char| c.is_ascii_uppercase())),
            )
            .unwrap_or_else(|| {
                " (allowed: Name, Kind, Spec, DependsOn, After, Before, Condition, Scope, \
                     SaveOutputs, LifecycleHooks, and baton's Timeout, Retry, Description)"
                    .to_string()
            });
            problems.push((key, format!("unknown field{hint}")));
            continue;
        };
        if let Some(previous) = spelling.written(canonical) {
            problems.push((
                key.clone(),
                format!(
                    "duplicates field \"{previous}\" (both mean {})",
                    written_meaning(canonical)
                ),
            ));
            continue;
        }
        spelling.fields.push((canonical, key));
        fields.insert(canonical.to_string(), value);
    }
    fields.remove("version");
    metadata(&mut fields, &mut spelling, problems);
    dependencies(&mut fields, &mut spelling, problems);
    if let Some(condition) = fields.get_mut("condition") {
        // SCK writes `Condition: True` as often as `"True"`; both are the text it renders.
        match condition {
            Value::Bool(b) => *condition = Value::String(if *b { "True" } else { "False" }.into()),
            Value::Number(n) => *condition = Value::String(n.to_string()),
            _ => {}
        }
    }
    let type_name = fields
        .get("type")
        .and_then(Value::as_str)
        .and_then(ActionType::from_name)
        .map(ActionType::name);
    spelling.type_name = type_name;
    match fields.remove("params") {
        Some(Value::Object(params)) => {
            let (params, names) = rename_params(type_name, params, problems, &spelling);
            spelling.params = names;
            fields.insert("params".into(), Value::Object(params));
        }
        // Not an object: left for the validator's own message.
        Some(other) => {
            fields.insert("params".into(), other);
        }
        None => {}
    }
    Normalised { fields, spelling }
}

/// What a duplicated field means, in SCK's words.
fn written_meaning(canonical: &str) -> &'static str {
    match canonical {
        "label" => "the action's name",
        "type" => "its kind",
        "params" => "its spec",
        "depends_on" => "what it waits for",
        _ => "the same field",
    }
}

fn canonical_field(key: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .find(|(_, spellings)| spellings.contains(&key))
        .map(|(name, _)| *name)
}

/// V3's `metadata {name, namespace}` names the action `<namespace>:action/<name>`, as SCK
/// does; its `description` and `SaveOutputs` count as the action's own.
fn metadata(
    fields: &mut Map<String, Value>,
    spelling: &mut Spelling,
    problems: &mut Vec<(String, String)>,
) {
    let Some(metadata) = fields.remove("metadata") else {
        return;
    };
    let written = spelling
        .written("metadata")
        .unwrap_or("metadata")
        .to_string();
    let Value::Object(metadata) = metadata else {
        problems.push((
            written,
            "must be an object like {name: deploy-db, namespace: core}".into(),
        ));
        return;
    };
    let text = |key: &str, other: &str| {
        metadata
            .get(key)
            .or_else(|| metadata.get(other))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let name = text("name", "Name");
    let namespace = text("namespace", "Namespace");
    match (name, fields.contains_key("label")) {
        (Some(_), true) => problems.push((
            format!("{written}.name"),
            format!(
                "the action is named twice (also by \"{}\"); give one name",
                spelling.written("label").unwrap_or("Name")
            ),
        )),
        (Some(name), false) => {
            let label = match namespace {
                Some(namespace) => format!("{namespace}:action/{name}"),
                None => name,
            };
            fields.insert("label".into(), Value::String(label));
            spelling.fields.push(("label", format!("{written}.name")));
        }
        (None, true) => {}
        (None, false) => {
            problems.push((format!("{written}.name"), "missing required field".into()))
        }
    }
    // Metadata fields the action itself does not give: (baton's field, spellings looked for,
    // the spelling problems name).
    for (field, spellings, shown) in [
        ("description", ["description", "Description"], "description"),
        (
            "save_outputs",
            ["SaveOutputs", "save_outputs"],
            "SaveOutputs",
        ),
    ] {
        let value = spellings.iter().find_map(|key| metadata.get(*key));
        if let (Some(value), false) = (value, fields.contains_key(field)) {
            fields.insert(field.into(), value.clone());
            spelling.fields.push((field, format!("{written}.{shown}")));
        }
    }
}

/// `DependsOn` and `After` (each a label, a list of them, or `"null"`) become one list, and
/// `Before` a list; each entry remembers the field it came from.
fn dependencies(
    fields: &mut Map<String, Value>,
    spelling: &mut Spelling,
    problems: &mut Vec<(String, String)>,
) {
    let mut depends_on = Vec::new();
    for canonical in ["depends_on", "after"] {
        let written = spelling.written(canonical).unwrap_or(canonical).to_string();
        for (j, entry) in label_list(fields.remove(canonical), &written, problems)
            .into_iter()
            .enumerate()
        {
            spelling.depends_on.push(format!("{written}[{j}]"));
            depends_on.push(entry);
        }
    }
    if !depends_on.is_empty() {
        fields.insert("depends_on".into(), Value::Array(depends_on));
    }
    let written = spelling.written("before").unwrap_or("before").to_string();
    let before = label_list(fields.remove("before"), &written, problems);
    if !before.is_empty() {
        fields.insert("before".into(), Value::Array(before));
    }
}

/// A label, a list of labels, nothing, or SCK's `"null"`, as a list (entries that are not text
/// are kept, for the validator to report where they stand).
fn label_list(
    value: Option<Value>,
    written: &str,
    problems: &mut Vec<(String, String)>,
) -> Vec<Value> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s == "null" || s.is_empty() => Vec::new(),
        Some(Value::String(s)) => vec![Value::String(s)],
        Some(Value::Array(items)) => items,
        Some(other) => {
            problems.push((
                written.to_string(),
                format!(
                    "must be a label or a list of labels, not {}",
                    super::describe_kind(&other)
                ),
            ));
            Vec::new()
        }
    }
}

/// Params whose baton name is not the snake_case of SCK's, by type: (type, SCK's name in
/// snake_case, baton's name).
const RENAMED_PARAMS: &[(&str, &str, &str)] = &[
    ("aws.create_stack", "stack_parameters", "parameters"),
    ("aws.empty_bucket", "bucket_name", "bucket"),
    ("aws.upload_context", "bucket_name", "bucket"),
];

/// SCK's `Prefix` of `UploadContext` is a folder; SCK writes `context.json` (and a YAML copy)
/// into it. baton writes the JSON file, to the same key.
const CONTEXT_FILE: &str = "context.json";

/// `StackName` → `stack_name`, `KmsKeyArn` → `kms_key_arn`, `DBInstanceId` → `db_instance_id`;
/// snake_case passes through unchanged.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let previous = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let starts_word = previous
                .is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                || (previous.is_some_and(|p| p.is_ascii_uppercase())
                    && next.is_some_and(|n| n.is_ascii_lowercase()));
            if starts_word && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `stack_name` → `StackName`: how an SCK file would spell one of baton's params.
pub(crate) fn pascal_case(name: &str) -> String {
    name.split('_')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The name an SCK file gives one of `type_name`'s params.
pub(super) fn sck_param_name(type_name: Option<&str>, baton: &str) -> String {
    RENAMED_PARAMS
        .iter()
        .find(|(t, _, to)| Some(*t) == type_name && *to == baton)
        .map_or_else(|| pascal_case(baton), |(_, from, _)| pascal_case(from))
}

/// Renames the top-level params (nested keys, such as a stack's parameters or tags, are the
/// user's own and stay as written). Returns the params and (baton name, written name) pairs.
fn rename_params(
    type_name: Option<&str>,
    params: Map<String, Value>,
    problems: &mut Vec<(String, String)>,
    spelling: &Spelling,
) -> (Map<String, Value>, Vec<(String, String)>) {
    let written_params = spelling.written("params").unwrap_or("params");
    let mut out = Map::new();
    let mut names = Vec::new();
    for (key, mut value) in params {
        let mut name = snake_case(&key);
        if let Some((_, _, to)) = RENAMED_PARAMS
            .iter()
            .find(|(t, from, _)| Some(*t) == type_name && *from == name)
        {
            name = to.to_string();
        }
        if type_name == Some("aws.upload_context") && name == "prefix" {
            name = "key".into();
            if let Value::String(prefix) = &value {
                value = Value::String(format!("{}/{CONTEXT_FILE}", prefix.trim_end_matches('/')));
            }
        }
        if out.contains_key(&name) {
            let first = names
                .iter()
                .find(|(n, _): &&(String, String)| *n == name)
                .map_or(name.clone(), |(_, w)| w.clone());
            problems.push((
                format!("{written_params}.{key}"),
                format!("duplicates \"{first}\" (both are baton's {name})"),
            ));
            continue;
        }
        names.push((name.clone(), key));
        out.insert(name, value);
    }
    // SCK's GetStackOutputs completes without outputs when the stack does not exist.
    if type_name == Some("aws.get_stack_outputs") && !out.contains_key("missing_ok") {
        out.insert("missing_ok".into(), Value::Bool(true));
    }
    (out, names)
}

/// Whether `label` matches `pattern` by SCK's rule: before the pattern's first `/`, `*` stays
/// within one `:`-separated segment (and does not cross a `/`); after it, `*` matches anything.
pub(crate) fn pattern_match(pattern: &str, label: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), label.as_bytes());
    let slash = p.iter().position(|&b| b == b'/').unwrap_or(p.len());
    // Iterative matching with backtracking to the last star, like `glob_match`, except that a
    // star before `slash` may not swallow `:` or `/`.
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
            let bounded = sp < slash;
            if bounded && matches!(t[st], b':' | b'/') {
                return false;
            }
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Where an action's state goes: `<namespace>:action/<path>` writes `<namespace>:var/<path>/…`
/// and `<namespace>:output/…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateName<'l> {
    pub(crate) namespace: &'l str,
    pub(crate) path: &'l str,
}

impl<'l> StateName<'l> {
    /// The state name of an action label, when it has SCK's form.
    pub(crate) fn of_label(label: &'l str) -> Option<Self> {
        let (namespace, path) = label.split_once(":action/")?;
        (!path.is_empty()).then_some(StateName { namespace, path })
    }

    /// The key of variable `name` of this action.
    pub(crate) fn var_key(&self, name: &str) -> String {
        format!("{}:var/{}/{name}", self.namespace, self.path)
    }

    /// The key of output `name` in this action's namespace.
    pub(crate) fn output_key(&self, name: &str) -> String {
        format!("{}:output/{name}", self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn snake_and_pascal_case() {
        for (pascal, snake) in [
            ("StackName", "stack_name"),
            ("TemplateUrl", "template_url"),
            ("TimeoutInMinutes", "timeout_in_minutes"),
            ("KmsKeyArn", "kms_key_arn"),
            ("DBInstanceId", "db_instance_id"),
            ("Account", "account"),
            ("stack_name", "stack_name"),
            ("Ec2Name", "ec2_name"),
        ] {
            assert_eq!(snake_case(pascal), snake, "{pascal}");
        }
        assert_eq!(pascal_case("stack_name"), "StackName");
        assert_eq!(
            sck_param_name(Some("aws.create_stack"), "parameters"),
            "StackParameters"
        );
    }

    #[test]
    fn sck_patterns_keep_stars_within_a_segment_before_the_first_slash() {
        let label = "prn:p:a:main:7:db:action/deploy/main/resources";
        assert!(pattern_match("prn:p:a:main:7:*:action/deploy/*", label));
        assert!(pattern_match("prn:p:a:main:7:db:action/deploy/*", label));
        assert!(pattern_match("prn:p:a:main:7:db:action/*/resources", label));
        // Before the slash a star is one segment, never two.
        assert!(!pattern_match("prn:p:*:action/deploy/*", label));
        assert!(!pattern_match("prn:p:a:main:7:action/*", label));
        assert!(!pattern_match("prn:*", label));
        // After it, anything.
        assert!(pattern_match("prn:p:a:main:7:db:action/*", label));
        assert!(!pattern_match("prn:p:a:main:7:*:action/teardown/*", label));
    }

    #[test]
    fn state_keys_name_their_producers() {
        assert_eq!(
            StateKey::parse("prn:p:a:db:var/deploy/gather-facts/persistence/Persist"),
            Some(StateKey::Var {
                action: "prn:p:a:db:action/deploy/gather-facts/persistence".into(),
                name: "Persist"
            })
        );
        assert_eq!(
            StateKey::parse("prn:p:a:output/KmsKeyArn"),
            Some(StateKey::Output {
                namespace: "prn:p:a",
                name: "KmsKeyArn"
            })
        );
        assert_eq!(StateKey::parse("plain-key"), None);
        let name = StateName::of_label("prn:p:a:db:action/deploy/main").expect("sck name");
        assert_eq!(name.var_key("X"), "prn:p:a:db:var/deploy/main/X");
        assert_eq!(name.output_key("X"), "prn:p:a:db:output/X");
    }

    #[test]
    fn detects_dialects() {
        let v2 = [json!({"Label": "a", "Type": "System::NoOp", "LifecycleHooks": []})];
        assert_eq!(detect("f.yaml", &v2, None), Dialect::SckV1);
        let spec = [json!({"Name": "a", "Kind": "AWS::CreateStack", "Spec": {"StackName": "s"}})];
        assert_eq!(detect("f.yaml", &spec, None), Dialect::SckV2);
        let v3 = [json!({"kind": "create_stack", "metadata": {"name": "a"}, "spec": {}})];
        assert_eq!(detect("f.yaml", &v3, None), Dialect::SckV3);
        let legacy =
            [json!({"Label": "a", "Type": "AWS::CreateStack", "Params": {"stack_name": "s"}})];
        assert_eq!(detect("f.json", &legacy, None), Dialect::Native);
        assert_eq!(detect("f.actions", &legacy, None), Dialect::SckV1);
        let native = [json!({"label": "a", "type": "system.no_op"})];
        assert_eq!(detect("f.actions", &native, None), Dialect::Native);
    }

    /// A stored SCK plan reads back to the same plan, under the same rules.
    #[test]
    fn stored_sck_plans_keep_their_dialect_and_read_back_the_same() {
        let text = r#"
- Name: ns:action/facts
  Kind: System::SetVariables
  Scope: build
  SaveOutputs: false
  Spec: { Variables: { Persist: "{{ 1 == 2 }}" } }
  LifecycleHooks:
    - Type: status
      States: [ Running, Complete ]
      Parameters:
        OnComplete: { Status: DEPLOY_IN_PROGRESS, Message: "Facts for {{ run.id }}" }
        Identity: prn:a:b
        Details: { Scope: build }
- Name: ns:action/deploy/a
  Kind: System::NoOp
  After: ns:action/facts
  Condition: "('ns:var/facts/Persist' | lookup('False')) == 'False'"
- Name: ns:action/first
  Kind: System::NoOp
  Before: [ "ns:action/deploy/*" ]
- apiVersion: v1
  kind: aws.upload_context
  metadata: { name: upload, namespace: ns, description: context }
  spec: { Bucket: b, Prefix: files/ctx/ }
"#;
        let loaded =
            crate::load::load_str("f.actions", text, crate::load::Format::Yaml).expect("valid");
        let plan = loaded.plan;
        assert_eq!(plan.dialect(), Dialect::SckV3);
        assert_eq!(plan.deps(1), &[0, 2]);
        let upload = plan.action(3);
        assert_eq!(upload.label, "ns:action/upload");
        assert_eq!(upload.params["key"], "files/ctx/context.json");
        assert_eq!(plan.action(0).details().hooks.len(), 1);
        assert!(!plan.action(0).save_outputs);
        let stored = plan.to_json();
        let text = String::from_utf8(stored.clone()).expect("utf-8");
        let again = crate::load::load_str("actions.json", &text, crate::load::Format::Json)
            .expect("stored plan reads back");
        assert_eq!(again.plan.dialect(), Dialect::SckV3);
        assert_eq!(again.plan.to_json(), stored);
        assert_eq!(
            again.plan.action(0).details().hooks,
            plan.action(0).details().hooks
        );
        assert_eq!(again.plan.action(1).details().reads_state, Some(vec![0]));
    }

    /// Which action writes a key is known from its name, so a computed key is refused, as a
    /// read of `outputs` that does not name its action is; a written-out key that no ancestor
    /// writes is a warning.
    #[test]
    fn lookup_keys_are_written_out_and_written_by_ancestors() {
        let text = r#"
- Name: ns:action/a
  Kind: System::SetVariables
  Spec: { Variables: { X: "1" } }
- Name: ns:action/b
  Kind: System::NoOp
  Condition: "('ns:var/' ~ 'a/X') | lookup == '1'"
  DependsOn: ns:action/a
"#;
        let problems = crate::load::load_str("f.actions", text, crate::load::Format::Yaml)
            .expect_err("computed key");
        let message = problems.errors[0].to_string();
        assert!(
            message.contains("Condition: lookup reads a key that is computed"),
            "{message}"
        );
        let text = r#"
- Name: ns:action/a
  Kind: System::SetVariables
  Spec: { Variables: { X: "1" } }
- Name: ns:action/b
  Kind: System::NoOp
  Condition: "'ns:var/a/Y' | lookup('') == '1' and 'ns:var/a/X' | lookup == '1'"
- Name: ns:action/c
  Kind: System::NoOp
  DependsOn: ns:action/a
  Condition: "'ns:var/a/Y' | lookup('') == '1'"
"#;
        let loaded = crate::load::load_str("f.actions", text, crate::load::Format::Yaml)
            .expect("warnings only");
        let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 3, "{warnings:#?}");
        assert!(
            warnings[0].contains("which this action does not depend on"),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[0].contains("it always renders its default"),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[1].contains("it fails when it renders"),
            "{}",
            warnings[1]
        );
        assert!(
            warnings[2].contains("\"ns:action/a\" sets no variable \"Y\""),
            "{}",
            warnings[2]
        );
        assert_eq!(loaded.plan.action(2).details().reads_state, Some(vec![0]));
    }

    #[test]
    fn problems_name_fields_as_written() {
        let mut problems = Vec::new();
        let action = json!({
            "Name": "x:action/a",
            "Kind": "AWS::CreateStack",
            "After": "x:action/b",
            "DependsOn": ["x:action/c"],
            "Spec": {"StackName": "s", "StackParameters": {"KeyName": "k"}}
        });
        let Value::Object(object) = action else {
            unreachable!()
        };
        let normalised = normalise(object, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            normalised.fields["params"],
            json!({"stack_name": "s", "parameters": {"KeyName": "k"}})
        );
        assert_eq!(
            normalised.fields["depends_on"],
            json!(["x:action/c", "x:action/b"])
        );
        let s = &normalised.spelling;
        assert_eq!(
            s.translate("params.parameters.KeyName"),
            "Spec.StackParameters.KeyName"
        );
        assert_eq!(s.translate("params"), "Spec");
        assert_eq!(s.translate("depends_on[1]"), "After[0]");
        assert_eq!(s.translate("type"), "Kind");
        assert_eq!(s.translate("condition"), "condition");
    }
}

impl super::Validator<'_> {
    /// An SCK action's fields in baton's names. Problems found on the way name the fields as
    /// written; later ones are translated back through the action's [`Spelling`].
    pub(super) fn sck_fields(
        &mut self,
        i: usize,
        object: Map<String, Value>,
    ) -> Map<String, Value> {
        let mut problems = Vec::new();
        let normalised = normalise(object, &mut problems);
        let label = normalised
            .fields
            .get("label")
            .and_then(Value::as_str)
            .filter(|l| super::label_problem(l).is_none())
            .map(str::to_string);
        // Reported before the spelling is known: these already name fields as written.
        for (field, message) in problems {
            self.error(i, label.as_deref(), &field, message);
        }
        if self.spellings.len() <= i {
            self.spellings.resize(i + 1, None);
        }
        self.spellings[i] = Some(normalised.spelling);
        normalised.fields
    }

    /// `before`, `scope`, `save_outputs` and `lifecycle_hooks` of an SCK action.
    pub(super) fn read_sck_fields(
        &mut self,
        i: usize,
        label: Option<&str>,
        mut fields: Map<String, Value>,
        draft: &mut super::Draft,
        details: &mut crate::model::ActionDetails,
    ) {
        details.before = self.read_depends_on(i, label, "before", fields.remove("before"));
        match fields.remove("scope") {
            None | Some(Value::Null) => {}
            Some(Value::String(scope)) if SCOPES.contains(&scope.as_str()) => {
                details.scope = Some(scope)
            }
            Some(other) => self.error(
                i,
                label,
                "scope",
                format!(
                    "must be one of {}, not {}",
                    SCOPES.join(", "),
                    match &other {
                        Value::String(s) => format!("\"{s}\""),
                        other => super::describe_kind(other).to_string(),
                    }
                ),
            ),
        }
        match fields.remove("save_outputs") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(save)) => draft.save_outputs = Some(save),
            Some(Value::String(text)) if text.eq_ignore_ascii_case("true") => {
                draft.save_outputs = Some(true)
            }
            Some(Value::String(text)) if text.eq_ignore_ascii_case("false") => {
                draft.save_outputs = Some(false)
            }
            Some(other) => self.error(
                i,
                label,
                "save_outputs",
                format!(
                    "must be true or false, not {}",
                    super::describe_kind(&other)
                ),
            ),
        }
        if let Some(hooks) = fields.remove("lifecycle_hooks") {
            details.hooks = self.read_hooks(i, label, hooks, &mut draft.refs);
        }
    }

    /// `LifecycleHooks`: each a status hook, its texts checked as templates.
    fn read_hooks(
        &mut self,
        i: usize,
        label: Option<&str>,
        value: Value,
        refs: &mut Vec<(String, crate::template::OutputRefs)>,
    ) -> Vec<LifecycleHook> {
        let items = match value {
            Value::Null => return Vec::new(),
            Value::Array(items) => items,
            other => {
                self.error(
                    i,
                    label,
                    "lifecycle_hooks",
                    format!(
                        "must be a list of hooks, not {}",
                        super::describe_kind(&other)
                    ),
                );
                return Vec::new();
            }
        };
        let mut hooks = Vec::new();
        for (k, item) in items.into_iter().enumerate() {
            let field = format!("lifecycle_hooks[{k}]");
            let mut found = HookProblems::default();
            let hook = parse_hook(&field, item, &mut found);
            for (path, message) in found.errors {
                self.error(i, label, &path, message);
            }
            for (path, message) in found.warnings {
                self.warning(i, label.unwrap_or("?"), &path, message);
            }
            let Some(hook) = hook else { continue };
            for (path, text) in hook_texts(&field, &hook) {
                if !crate::template::is_template(&text) {
                    continue;
                }
                match crate::template::check_template(&text) {
                    Ok(read) => refs.push((path, read)),
                    Err(error) => self.error(i, label, &path, format!("template error: {error}")),
                }
            }
            hooks.push(hook);
        }
        hooks
    }
}

use crate::model::{HookMessage, HookState, LifecycleHook};

/// Problems in one hook: errors, and warnings about parts that never fire.
#[derive(Default)]
struct HookProblems {
    errors: Vec<(String, String)>,
    warnings: Vec<(String, String)>,
}

/// A hook's fields as SCK spells them (baton's snake_case names are accepted too).
fn hook_field<'v>(map: &'v Map<String, Value>, name: &str) -> Option<(&'static str, &'v Value)> {
    const NAMES: &[(&str, &str)] = &[
        ("Type", "type"),
        ("States", "states"),
        ("Parameters", "parameters"),
        ("OnRunning", "on_running"),
        ("OnComplete", "on_complete"),
        ("OnFailed", "on_failed"),
        ("Identity", "identity"),
        ("Details", "details"),
        ("Status", "status"),
        ("Message", "message"),
    ];
    let (pascal, snake) = NAMES.iter().find(|(p, _)| *p == name)?;
    map.get(*pascal)
        .or_else(|| map.get(*snake))
        .map(|v| (*pascal, v))
}

/// Keys of `map` that are none of `allowed` (in either spelling), reported as unknown.
fn unknown_keys(map: &Map<String, Value>, allowed: &[&str], at: &str, found: &mut HookProblems) {
    for key in map.keys() {
        let known = allowed.iter().any(|a| a == key || snake_case(a) == *key);
        if !known {
            let hint = did_you_mean(key, allowed.iter().copied())
                .unwrap_or_else(|| format!(" (allowed: {})", allowed.join(", ")));
            found
                .errors
                .push((format!("{at}.{key}"), format!("unknown field{hint}")));
        }
    }
}

/// One `LifecycleHooks` entry; `None` when it is wrong, or can never fire (no `Identity`).
fn parse_hook(at: &str, item: Value, found: &mut HookProblems) -> Option<LifecycleHook> {
    let Value::Object(map) = item else {
        found.errors.push((
            at.into(),
            format!("must be a hook object, not {}", super::describe_kind(&item)),
        ));
        return None;
    };
    unknown_keys(&map, &["Type", "States", "Parameters"], at, found);
    match hook_field(&map, "Type").map(|(_, v)| v) {
        Some(Value::String(kind)) if kind == "status" => {}
        Some(Value::String(kind)) => found.errors.push((
            format!("{at}.Type"),
            format!(
                "unknown hook type \"{kind}\": SCK's runner has status hooks only (Type: status)"
            ),
        )),
        Some(other) => found.errors.push((
            format!("{at}.Type"),
            format!("must be \"status\", not {}", super::describe_kind(other)),
        )),
        None => found.errors.push((
            format!("{at}.Type"),
            "missing required field (Type: status)".into(),
        )),
    }
    let states = hook_states(at, hook_field(&map, "States").map(|(_, v)| v), found);
    let empty = Map::new();
    let parameters = match hook_field(&map, "Parameters").map(|(_, v)| v) {
        Some(Value::Object(p)) => p,
        Some(other) => {
            found.errors.push((
                format!("{at}.Parameters"),
                format!("must be an object, not {}", super::describe_kind(other)),
            ));
            &empty
        }
        None => &empty,
    };
    let at_parameters = format!("{at}.Parameters");
    unknown_keys(
        parameters,
        &["OnRunning", "OnComplete", "OnFailed", "Identity", "Details"],
        &at_parameters,
        found,
    );
    let message = |state: HookState, found: &mut HookProblems| {
        let key = format!("On{}", state.as_str());
        hook_message(
            &format!("{at_parameters}.{key}"),
            hook_field(parameters, &key).map(|(_, v)| v),
            found,
        )
    };
    let on_running = message(HookState::Running, found);
    let on_complete = message(HookState::Complete, found);
    let on_failed = message(HookState::Failed, found);
    let identity = match hook_field(parameters, "Identity").map(|(_, v)| v) {
        Some(Value::String(identity)) if !identity.is_empty() => Some(identity.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => None,
        Some(other) => {
            found.errors.push((
                format!("{at_parameters}.Identity"),
                format!("must be text (a PRN), not {}", super::describe_kind(other)),
            ));
            None
        }
    };
    let hook = LifecycleHook {
        states,
        on_running,
        on_complete,
        on_failed,
        identity: identity.clone().unwrap_or_default(),
        details: hook_field(parameters, "Details").map_or(Value::Null, |(_, v)| v.clone()),
    };
    for state in &hook.states {
        if hook.message(*state).is_none() {
            found.warnings.push((
                format!("{at_parameters}.On{}", state.as_str()),
                format!(
                    "the hook fires on {} but says no Status for it, so nothing is recorded then (as in SCK)",
                    state.as_str()
                ),
            ));
        }
    }
    if identity.is_none() {
        found.warnings.push((
            format!("{at_parameters}.Identity"),
            "no Identity: SCK's runner never fires a hook that does not say whose status it is, and neither does baton".into(),
        ));
        return None;
    }
    found.errors.is_empty().then_some(hook)
}

/// `States`: a list of `Running`, `Complete`, `Failed`.
fn hook_states(at: &str, value: Option<&Value>, found: &mut HookProblems) -> Vec<HookState> {
    let items = match value {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => {
            found.errors.push((
                format!("{at}.States"),
                format!(
                    "must be a list such as [Running, Complete, Failed], not {}",
                    super::describe_kind(other)
                ),
            ));
            return Vec::new();
        }
    };
    let mut states = Vec::new();
    for (j, item) in items.iter().enumerate() {
        let known = item
            .as_str()
            .and_then(|s| HookState::ALL.into_iter().find(|state| state.as_str() == s));
        match (known, item.as_str()) {
            (Some(state), _) => {
                if !states.contains(&state) {
                    states.push(state);
                }
            }
            (None, Some("Pending")) => found.warnings.push((
                format!("{at}.States[{j}]"),
                "SCK's runner never fires a hook on Pending; ignored".into(),
            )),
            (None, _) => {
                let shown = item.as_str().map_or_else(
                    || super::describe_kind(item).to_string(),
                    |s| format!("\"{s}\""),
                );
                found.errors.push((
                    format!("{at}.States[{j}]"),
                    format!("{shown} is not one of Running, Complete, Failed"),
                ));
            }
        }
    }
    states
}

/// `On<State>: {Status, Message}`.
fn hook_message(at: &str, value: Option<&Value>, found: &mut HookProblems) -> Option<HookMessage> {
    let map = match value? {
        Value::Object(map) => map,
        Value::Null => return None,
        other => {
            found.errors.push((
                at.into(),
                format!(
                    "must be an object like {{Status: DEPLOY_IN_PROGRESS, Message: …}}, not {}",
                    super::describe_kind(other)
                ),
            ));
            return None;
        }
    };
    unknown_keys(map, &["Status", "Message"], at, found);
    let text = |name: &str, found: &mut HookProblems| match hook_field(map, name).map(|(_, v)| v) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => {
            found.errors.push((
                format!("{at}.{name}"),
                format!("must be text, not {}", super::describe_kind(other)),
            ));
            None
        }
    };
    let status = text("Status", found);
    let message = text("Message", found);
    Some(HookMessage {
        status: status?,
        message,
    })
}

/// Every text of a hook that is rendered when it fires, with its field path.
fn hook_texts(at: &str, hook: &LifecycleHook) -> Vec<(String, String)> {
    let mut texts = vec![(format!("{at}.Parameters.Identity"), hook.identity.clone())];
    for state in HookState::ALL {
        let message = match state {
            HookState::Running => &hook.on_running,
            HookState::Complete => &hook.on_complete,
            HookState::Failed => &hook.on_failed,
        };
        if let Some(message) = message {
            let key = format!("{at}.Parameters.On{}", state.as_str());
            texts.push((format!("{key}.Status"), message.status.clone()));
            if let Some(text) = &message.message {
                texts.push((format!("{key}.Message"), text.clone()));
            }
        }
    }
    collect_strings(
        &hook.details,
        &mut format!("{at}.Parameters.Details"),
        &mut texts,
    );
    texts
}

fn collect_strings(value: &Value, path: &mut String, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(text) => out.push((path.clone(), text.clone())),
        Value::Array(items) => {
            for (j, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{j}]"));
                collect_strings(item, path, out);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                collect_strings(item, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// What an action's templates read with `lookup`.
#[derive(Default)]
pub(super) struct Lookups {
    /// (field, key, whether a default is given).
    keys: Vec<(String, String, bool)>,
    /// (field, the lookup as written) of each whose key is computed.
    dynamic: Vec<(String, String)>,
}

impl Lookups {
    pub(super) fn of(refs: &[(String, crate::template::OutputRefs)]) -> Self {
        let mut lookups = Lookups::default();
        for (field, read) in refs {
            for (key, has_default) in &read.lookups {
                lookups
                    .keys
                    .push((field.clone(), key.clone(), *has_default));
            }
            for written in &read.dynamic_lookups {
                lookups.dynamic.push((field.clone(), written.clone()));
            }
        }
        lookups
    }

    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.dynamic.is_empty()
    }
}

/// One `lookup` key and the actions that could write it.
struct KeyRead {
    field: String,
    key: String,
    has_default: bool,
    writers: Vec<ActionIdx>,
}

use crate::model::{ActionIdx, Plan};

impl super::Validator<'_> {
    /// Which actions each action's `lookup`s may read (`Action::reads_state`): the ancestors
    /// that write its keys, known from the keys' names. A key no ancestor writes is a warning:
    /// it renders its default, or fails without one.
    pub(super) fn check_state_reads(&mut self, plan: &mut Plan, lookups: Vec<Lookups>) {
        let mut namespaces: std::collections::HashMap<&str, Vec<ActionIdx>> = Default::default();
        for (i, action) in plan.actions.iter().enumerate() {
            if let (Some(name), true) = (StateName::of_label(&action.label), action.save_outputs) {
                namespaces
                    .entry(name.namespace)
                    .or_default()
                    .push(i as ActionIdx);
            }
        }
        let mut reads: Vec<(ActionIdx, Vec<KeyRead>)> = Vec::new();
        let mut queries = Vec::new();
        for (idx, found) in lookups.into_iter().enumerate() {
            if found.is_empty() {
                continue;
            }
            let idx = idx as ActionIdx;
            for (field, written) in found.dynamic {
                let label = plan.label(idx).to_string();
                self.error(
                    idx as usize,
                    Some(&label),
                    &field,
                    format!(
                        "lookup reads a key that is computed: `{written}`; write the key out \
                         ('<namespace>:var/<path>/<name>' or '<namespace>:output/<name>'), so \
                         that which action writes it is known and only actions that finished \
                         first can be read"
                    ),
                );
            }
            let mut keys = Vec::new();
            for (field, key, has_default) in found.keys {
                let writers = match StateKey::parse(&key) {
                    Some(StateKey::Var { action, .. }) => plan.find(&action).into_iter().collect(),
                    Some(StateKey::Output { namespace, .. }) => {
                        namespaces.get(namespace).cloned().unwrap_or_default()
                    }
                    None => Vec::new(),
                };
                queries.extend(writers.iter().map(|&w| (idx, w)));
                keys.push(KeyRead {
                    field,
                    key,
                    has_default,
                    writers,
                });
            }
            reads.push((idx, keys));
        }
        let answers = crate::graph::transitive_dependencies(&plan.deps, &plan.order, &queries);
        let mut answers = answers.into_iter();
        for (idx, keys) in reads {
            let mut readable: Vec<ActionIdx> = Vec::new();
            for read in keys {
                let ancestors: Vec<ActionIdx> = read
                    .writers
                    .iter()
                    .copied()
                    .filter(|_| answers.next().unwrap_or(false))
                    .collect();
                self.warn_unwritten(plan, idx, &read, &ancestors);
                readable.extend(ancestors);
            }
            readable.sort_unstable();
            readable.dedup();
            plan.actions[idx as usize].details_mut().reads_state = Some(readable);
        }
    }

    /// Warns when no ancestor of `idx` can write `read.key`.
    fn warn_unwritten(
        &mut self,
        plan: &Plan,
        idx: ActionIdx,
        read: &KeyRead,
        ancestors: &[ActionIdx],
    ) {
        let outcome = if read.has_default {
            "it always renders its default"
        } else {
            "it fails when it renders"
        };
        let key = &read.key;
        let problem = match StateKey::parse(key) {
            None => format!(
                "lookup reads \"{key}\", which no action writes (actions write \
                 <namespace>:var/<path>/<name> and <namespace>:output/<name>); {outcome}"
            ),
            Some(StateKey::Var { action, name }) => match (read.writers.first(), ancestors.first()) {
                (None, _) => format!(
                    "lookup reads \"{key}\", but no action is named \"{action}\"; {outcome}"
                ),
                (Some(_), None) => format!(
                    "lookup reads \"{key}\", written by \"{action}\", which this action does not \
                     depend on: an action reads only what finished before it; add it to \
                     DependsOn, or {outcome}"
                ),
                (_, Some(&writer)) if !writes_variable(plan, writer, name) => format!(
                    "lookup reads \"{key}\", but \"{action}\" sets no variable \"{name}\"; {outcome}"
                ),
                _ => return,
            },
            Some(StateKey::Output { namespace, name }) => {
                if ancestors.is_empty() {
                    format!(
                        "lookup reads \"{key}\", but no action of \"{namespace}\" that saves its \
                         outputs comes before this one; {outcome}"
                    )
                } else if !ancestors.iter().any(|&w| writes_variable(plan, w, name)) {
                    format!(
                        "lookup reads \"{key}\", but the actions before it that save outputs \
                         to \"{namespace}\" set no variable \"{name}\"; {outcome}"
                    )
                } else {
                    return;
                }
            }
        };
        let label = plan.label(idx).to_string();
        self.warning(idx as usize, &label, &read.field, problem);
    }
}

/// Whether action `writer` may write output `name`. Only `system.set_variables` says in its
/// params which outputs it has (its variables); any other type may write any.
fn writes_variable(plan: &Plan, writer: ActionIdx, name: &str) -> bool {
    let action = plan.action(writer);
    if action.action_type != ActionType::SetVariables {
        return true;
    }
    match action.params.get("variables") {
        Some(Value::Object(variables)) => {
            variables.contains_key(name)
                || variables.keys().any(|k| crate::template::is_template(k))
        }
        _ => true,
    }
}

/// A schema message in SCK's spelling: the params it suggests or lists (`did you mean
/// "stack_name"?`, `allowed: stack_name, region`) as an SCK file names them.
pub(super) fn in_sck_words(type_name: &str, message: &str) -> String {
    let rename = |name: &str| sck_param_name(Some(type_name), name);
    if let Some((before, rest)) = message.split_once("did you mean \"") {
        if let Some((name, after)) = rest.split_once('"') {
            return format!("{before}did you mean \"{}\"{after}", rename(name));
        }
    }
    if let Some((before, rest)) = message.split_once("(allowed: ") {
        if let Some((list, after)) = rest.split_once(')') {
            let names: Vec<String> = list.split(", ").map(rename).collect();
            return format!("{before}(allowed: {}){after}", names.join(", "));
        }
    }
    message.to_string()
}
