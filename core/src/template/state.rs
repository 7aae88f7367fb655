//! SCK's state as templates read it: the `lookup` filter, and which filters and tests the
//! engine has (so validation, not a run, finds a misspelt one).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use minijinja::{Error, ErrorKind, State, Value};

use crate::load::sck::StateKey;

/// The context's name for SCK's flat state (`Context::with_state`).
pub(super) const STATE: &str = "__baton_state__";
/// The context's name for the labels of skipped actions it reads.
pub(super) const SKIPPED: &str = "__baton_skipped__";

/// `{{ '<key>' | lookup }}`, `{{ '<key>' | lookup('<default>') }}`: the value an earlier
/// action wrote to `<key>` (`<namespace>:var/<path>/<name>`, `<namespace>:output/<name>`), the
/// default when nothing did, and an error naming the key without one.
pub(super) fn lookup(state: &State, key: &Value, default: Option<Value>) -> Result<Value, Error> {
    let Some(name) = key.as_str() else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("lookup: the key must be text, not {}", key.kind()),
        ));
    };
    let found = state
        .lookup(STATE)
        .and_then(|table| table.get_item(key).ok())
        .filter(|value| !value.is_undefined());
    if let Some(value) = found {
        return Ok(value);
    }
    if let Some(default) = default {
        return Ok(default);
    }
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "lookup: nothing wrote \"{name}\"{}; give a default (`| lookup('…')`) where it may be \
             absent",
            why_missing(state, name)
        ),
    ))
}

/// ` (its action "x" was skipped …)` when the action that would write `key` was skipped.
fn why_missing(state: &State, key: &str) -> String {
    let skipped: Vec<String> = state
        .lookup(SKIPPED)
        .and_then(|list| list.try_iter().ok())
        .map(|items| {
            items
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let skipped_writer = match StateKey::parse(key) {
        Some(StateKey::Var { action, .. }) => skipped.iter().find(|label| **label == action),
        Some(StateKey::Output { namespace, .. }) => skipped
            .iter()
            .find(|label| label.starts_with(&format!("{namespace}:action/"))),
        None => None,
    };
    match skipped_writer {
        Some(label) => format!(" (\"{label}\" was skipped: its condition was false)"),
        None => " (no action it depends on wrote it)".to_string(),
    }
}

/// `{{ text | rstrip('.') }}`: the text without trailing characters of the set given (white
/// space when none is), as SCK's renderer has it.
pub(super) fn rstrip(value: &str, chars: Option<&str>) -> String {
    match chars {
        Some(chars) => value.trim_end_matches(|c| chars.contains(c)).to_string(),
        None => value.trim_end().to_string(),
    }
}

/// What a name in a template is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Filter,
    Test,
}

/// Known answers, so each name is probed once (bounded: a hostile file can hold a million
/// distinct names).
static KNOWN: LazyLock<Mutex<HashMap<(Kind, String), bool>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const MAX_REMEMBERED: usize = 4096;

/// Whether the engine has a filter or test called `name`: the engine is asked (`none | name`),
/// so this stays true to it whatever it gains.
pub(super) fn known(kind: Kind, name: &str) -> bool {
    let key = (kind, name.to_string());
    if let Some(&answer) = KNOWN.lock().ok().as_ref().and_then(|m| m.get(&key)) {
        return answer;
    }
    let probe = match kind {
        Kind::Filter => format!("none | {name}"),
        Kind::Test => format!("none is {name}"),
    };
    let missing = match kind {
        Kind::Filter => ErrorKind::UnknownFilter,
        Kind::Test => ErrorKind::UnknownTest,
    };
    let answer = match super::ENV.compile_expression(&probe) {
        Ok(expression) => !matches!(expression.eval(()), Err(e) if e.kind() == missing),
        // Not a name the parser takes: the template's own parse reports it.
        Err(_) => true,
    };
    if let Ok(mut known) = KNOWN.lock() {
        if known.len() < MAX_REMEMBERED {
            known.insert(key, answer);
        }
    }
    answer
}

/// Names for "did you mean" hints: the engine's filters and tests, and baton's `lookup`.
const FILTERS: &[&str] = &[
    "lookup",
    "rstrip",
    "default",
    "d",
    "lower",
    "upper",
    "title",
    "capitalize",
    "replace",
    "length",
    "count",
    "dictsort",
    "items",
    "reverse",
    "trim",
    "join",
    "split",
    "lines",
    "round",
    "abs",
    "int",
    "float",
    "attr",
    "first",
    "last",
    "min",
    "max",
    "sort",
    "list",
    "string",
    "bool",
    "batch",
    "slice",
    "sum",
    "indent",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "map",
    "groupby",
    "unique",
    "chain",
    "zip",
    "pprint",
    "format",
    "tojson",
    "safe",
    "escape",
    "e",
];
const TESTS: &[&str] = &[
    "defined",
    "undefined",
    "none",
    "boolean",
    "odd",
    "even",
    "divisibleby",
    "number",
    "integer",
    "float",
    "string",
    "sequence",
    "iterable",
    "mapping",
    "startingwith",
    "endingwith",
    "lower",
    "upper",
    "sameas",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "in",
    "true",
    "false",
    "filter",
    "test",
    "safe",
    "escaped",
];

/// `unknown filter "lookpu" (did you mean "lookup"?)`.
pub(super) fn unknown_message(kind: Kind, name: &str) -> String {
    let (what, names) = match kind {
        Kind::Filter => ("filter", FILTERS),
        Kind::Test => ("test", TESTS),
    };
    let hint = crate::hints::did_you_mean(name, names.iter().copied()).unwrap_or_default();
    format!("unknown {what} \"{name}\"{hint}: the template would fail when it renders")
}
