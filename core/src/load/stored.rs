//! The stored plan (`actions.json`): written once when a run is created, read every time the
//! run is opened again (`tick`, `resume`, `status`, `logs`, `inspect`, the console, the Lambda).
//!
//! The document holds the plan as validated, so opening a run costs one typed parse and checks
//! linear in actions and dependencies, not a second validation (templates compiled and analysed,
//! `*` patterns expanded, SCK spellings mapped):
//!
//! ```json
//! [{"plan_format": 2, "dialect": "baton",
//!   "resolved": [{}, {"deps": [0], "templated": true, "reads_outputs": [0]}, …],
//!   "order": [0, 1, …], "by_label": [0, 1, …]},
//!  {"label": "a", "type": "system.no_op"},
//!  {"label": "b", "type": "system.command", "depends_on": ["a"], "params": {…}},
//!  …]
//! ```
//!
//! A header, then the canonical actions (baton's own field names), so the document is still an
//! action file that validates to the same plan. The header's `resolved` holds, per action, what
//! validation computed (dependencies as indices, sorted; whether its params hold templates;
//! which outputs, variables and state its templates read; its durations to the nanosecond);
//! `order` is the topological order and `by_label` the actions sorted by label (what finding
//! an action by label searches). Fields at their default are left out.
//!
//! The state records the SHA-256 of these bytes, and a run refuses a state that names other
//! bytes; the reader still checks what a damaged or hand-edited file could break (indices in
//! range, `order` a topological permutation, labels unique, types known, retry numbers in
//! range) and names what is wrong rather than panic later. Plans stored by earlier versions
//! (the bare action list, or `{"format": …, "actions": […]}`) are recognised and validated in
//! full, as they always were.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use serde::de::{DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::actions::ActionType;
use crate::duration::MAX_DURATION;
use crate::model::{
    Action, ActionDetails, ActionIdx, Adjacency, Dialect, HookMessage, HookState, LifecycleHook,
    Plan, RetryPolicy,
};

use super::Problems;

/// The version of the document [`write`] produces. A reader refuses a higher one (written by a
/// newer baton) rather than misread it.
pub const PLAN_FORMAT: u32 = 2;

/// What a stored plan's bytes turned out to be.
#[derive(Debug)]
pub(crate) enum Stored {
    /// A plan in the current format, read without validating it again.
    Trusted(Box<Plan>),
    /// A plan stored by an earlier version: validate it in full.
    Legacy,
}

impl Plan {
    /// The stored form of the plan (what the store keeps as `actions.json`): the canonical
    /// action list with everything validation computed, so that opening the run again does
    /// not validate it again (see the module documentation).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        serde_json::to_vec(&Document(self)).unwrap_or_default()
    }
}

/// Why a stored plan could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StoredPlanError {
    /// The document is not what baton wrote: cut, edited, or written by a newer version.
    #[error(
        "actions.json is damaged: {0}; it is written once, when the run is created: restore it \
         from a copy, or start a new run from the action file"
    )]
    Damaged(String),
    /// A plan stored by an earlier version that this version does not accept.
    #[error("the stored plan no longer validates:\n{0}")]
    Invalid(Problems),
}

/// Reads a stored plan (`actions.json`); `source` names it in the plan and in messages. A plan
/// in the current format is checked for consistency but not validated again; one stored by an
/// earlier version is validated in full.
pub fn read_stored(source: &str, bytes: &[u8]) -> Result<Plan, StoredPlanError> {
    match read(source, bytes).map_err(StoredPlanError::Damaged)? {
        Stored::Trusted(plan) => Ok(*plan),
        Stored::Legacy => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| StoredPlanError::Damaged("it is not UTF-8 text".into()))?;
            super::load_str(source, text, super::Format::Json)
                .map(|loaded| loaded.plan)
                .map_err(StoredPlanError::Invalid)
        }
    }
}

/// Reads a stored plan; `source` names the file in the plan (for messages). `Err` says what is
/// wrong with the document, for a "damaged" error.
pub(crate) fn read(source: &str, bytes: &[u8]) -> Result<Stored, String> {
    if !is_current(bytes) {
        return Ok(Stored::Legacy);
    }
    let progress = Progress::default();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parts = DocumentSeed {
        progress: &progress,
    }
    .deserialize(&mut deserializer)
    .and_then(|parts| deserializer.end().map(|()| parts))
    .map_err(|e| {
        if let Some(problem) = progress.problem.take() {
            return problem;
        }
        let at = progress.describe();
        if e.is_eof() {
            format!("it ends early{at} (a cut or torn copy)")
        } else {
            format!("{e}{at}")
        }
    })?;
    parts
        .into_plan(source)
        .map(|plan| Stored::Trusted(Box::new(plan)))
}

/// Whether the document starts as the current format does: `[{"plan_format"`. The writer puts
/// that key first; anything else is an earlier version's plan (the action list, or
/// `{"format": …, "actions": […]}`), which full validation reads, or refuses in its own words.
fn is_current(bytes: &[u8]) -> bool {
    after(bytes, b'[')
        .and_then(|rest| after(rest, b'{'))
        .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"\"plan_format\""))
}

/// What follows `token`, when `text` starts with it (after white space).
fn after(text: &[u8], token: u8) -> Option<&[u8]> {
    match text.trim_ascii_start().split_first() {
        Some((&first, rest)) if first == token => Some(rest),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// `[header, action, action, …]`: the actions nest exactly as deep as in the file they came
/// from (a wrapping object would add a level, and the deepest file baton accepts would then no
/// longer read back within the JSON parser's nesting limit).
struct Document<'p>(&'p Plan);

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let plan = self.0;
        let mut seq = serializer.serialize_seq(Some(plan.actions.len() + 1))?;
        seq.serialize_element(&HeaderOf(plan))?;
        for idx in 0..plan.actions.len() {
            seq.serialize_element(&plan.canonical(idx as ActionIdx))?;
        }
        seq.end()
    }
}

/// The format first, so a reader knows it before anything else.
struct HeaderOf<'p>(&'p Plan);

impl Serialize for HeaderOf<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let plan = self.0;
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("plan_format", &PLAN_FORMAT)?;
        map.serialize_entry("dialect", plan.dialect.tag())?;
        map.serialize_entry("resolved", &ResolvedList(plan))?;
        map.serialize_entry("order", &plan.order)?;
        map.serialize_entry("by_label", &plan.by_label)?;
        map.end()
    }
}

struct ResolvedList<'p>(&'p Plan);

impl Serialize for ResolvedList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let plan = self.0;
        let mut seq = serializer.serialize_seq(Some(plan.actions.len()))?;
        for (action, deps) in plan.actions.iter().zip(plan.deps.iter()) {
            seq.serialize_element(&ResolvedEntry { action, deps })?;
        }
        seq.end()
    }
}

/// What validation computed for one action; defaults are left out (most entries are `{}` or
/// `{"deps": […]}`).
struct ResolvedEntry<'p> {
    action: &'p Action,
    deps: &'p [ActionIdx],
}

impl Serialize for ResolvedEntry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let a = self.action;
        let mut map = serializer.serialize_map(None)?;
        if !self.deps.is_empty() {
            map.serialize_entry("deps", self.deps)?;
        }
        if a.templated {
            map.serialize_entry("templated", &true)?;
        }
        match &a.reads_outputs {
            Some(reads) if reads.is_empty() => {}
            reads => map.serialize_entry("reads_outputs", reads)?,
        }
        if !a.details().reads_vars.is_empty() {
            map.serialize_entry("reads_vars", &a.details().reads_vars)?;
        }
        if let Some(reads) = &a.details().reads_state {
            map.serialize_entry("reads_state", reads)?;
        }
        // The action's text form rounds (to tenths of a second); the run keeps what was written.
        if let Some(timeout) = a.details().timeout {
            map.serialize_entry("timeout_ns", &nanos(timeout))?;
        }
        if let Some(retry) = &a.details().retry {
            map.serialize_entry("delay_ns", &nanos(retry.delay))?;
        }
        map.end()
    }
}

/// Every duration a plan holds is at most [`MAX_DURATION`], a year: it fits in u64 nanoseconds.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Where the reader is, so a syntax error deep in a 100k-action document names the action.
#[derive(Default)]
struct Progress {
    list: Cell<Option<&'static str>>,
    index: Cell<usize>,
    /// What is wrong with a part that parsed; the parser's error only stops the reading.
    problem: std::cell::RefCell<Option<String>>,
}

impl Progress {
    fn fail<E: serde::de::Error>(&self, what: String) -> E {
        self.problem.replace(Some(what));
        E::custom("stopped")
    }

    fn describe(&self) -> String {
        match self.list.get() {
            Some(list) => format!(" (in {list}[{}])", self.index.get()),
            None => String::new(),
        }
    }
}

/// The header as read: what the actions are checked against as they are read.
struct Header {
    dialect: Dialect,
    resolved: Vec<Resolved>,
    order: Vec<ActionIdx>,
    by_label: Vec<ActionIdx>,
}

/// The plan's parts, built while the actions are read.
struct Parts {
    dialect: Dialect,
    actions: Vec<Action>,
    deps: Adjacency,
    order: Vec<ActionIdx>,
    by_label: Vec<ActionIdx>,
}

struct DocumentSeed<'p> {
    progress: &'p Progress,
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = Parts;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Parts, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DocumentSeed<'_> {
    type Value = Parts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stored plan")
    }

    /// Each action becomes the plan's as soon as it is read, with its resolved entry: at 100k
    /// actions a list of the actions as read beside the plan's would double the memory.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parts, A::Error> {
        let progress = self.progress;
        let Some(mut header) = seq.next_element_seed(HeaderSeed { progress })? else {
            return Err(A::Error::custom("the list is empty"));
        };
        let n = header.resolved.len();
        if header.order.len() != n {
            return Err(progress.fail(format!(
                "it resolves {n} actions but orders {}",
                header.order.len()
            )));
        }
        let mut actions = Vec::with_capacity(n);
        let edges = header.resolved.iter().map(|r| r.deps.len()).sum();
        let mut deps = Adjacency::with_capacity(n, edges);
        progress.list.set(Some("actions"));
        loop {
            let i = actions.len();
            progress.index.set(i);
            let Some(action) = seq.next_element::<StoredAction>()? else {
                break;
            };
            let Some(resolved) = header.resolved.get_mut(i) else {
                return Err(progress.fail(format!("it resolves {n} actions but lists more")));
            };
            let (action, action_deps) = action
                .into_action(std::mem::take(resolved), i, n)
                .map_err(|what| progress.fail(what))?;
            actions.push(action);
            deps.push(action_deps);
        }
        progress.list.set(None);
        if actions.len() != n {
            return Err(progress.fail(format!(
                "it resolves {n} actions but lists {}",
                actions.len()
            )));
        }
        Ok(Parts {
            dialect: header.dialect,
            actions,
            deps,
            order: header.order,
            by_label: header.by_label,
        })
    }
}

/// The header: `plan_format` (checked as soon as it is read), `dialect`, `resolved`, `order`,
/// `by_label`.
struct HeaderSeed<'p> {
    progress: &'p Progress,
}

impl<'de> DeserializeSeed<'de> for HeaderSeed<'_> {
    type Value = Header;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Header, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for HeaderSeed<'_> {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stored plan's header")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let (mut format, mut dialect, mut resolved) = (None, None, None);
        let (mut order, mut by_label) = (None, None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "plan_format" => {
                    let found: u32 = map.next_value()?;
                    if found != PLAN_FORMAT {
                        return Err(A::Error::custom(format!(
                            "plan_format {found} is not one this baton reads (it reads \
                             {PLAN_FORMAT}): the run was created by a newer baton; open it \
                             with that version"
                        )));
                    }
                    format = Some(found);
                }
                "dialect" => {
                    let tag: Cow<'de, str> = map.next_value()?;
                    dialect = Some(Dialect::from_tag(&tag).ok_or_else(|| {
                        A::Error::custom(format!("unknown dialect \"{}\"", tag.escape_debug()))
                    })?);
                }
                "resolved" => {
                    resolved = Some(map.next_value_seed(ListSeed::new("resolved", self.progress))?)
                }
                "order" => order = Some(map.next_value()?),
                "by_label" => by_label = Some(map.next_value()?),
                other => {
                    return Err(A::Error::custom(format!(
                        "unknown field \"{}\" in the header",
                        other.escape_debug()
                    )))
                }
            }
        }
        format.ok_or_else(|| A::Error::missing_field("plan_format"))?;
        Ok(Header {
            dialect: dialect.ok_or_else(|| A::Error::missing_field("dialect"))?,
            resolved: resolved.ok_or_else(|| A::Error::missing_field("resolved"))?,
            order: order.ok_or_else(|| A::Error::missing_field("order"))?,
            by_label: by_label.ok_or_else(|| A::Error::missing_field("by_label"))?,
        })
    }
}

/// A list read element by element, recording which element is being read.
struct ListSeed<'p, T> {
    name: &'static str,
    progress: &'p Progress,
    item: std::marker::PhantomData<T>,
}

impl<'p, T> ListSeed<'p, T> {
    fn new(name: &'static str, progress: &'p Progress) -> Self {
        ListSeed {
            name,
            progress,
            item: std::marker::PhantomData,
        }
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for ListSeed<'_, T> {
    type Value = Vec<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<T>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ListSeed<'_, T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the list of {}", self.name)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        self.progress.list.set(Some(self.name));
        loop {
            self.progress.index.set(items.len());
            if items.len() >= super::MAX_ACTIONS {
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(A::Error::custom(format!(
                        "more than {} entries",
                        super::MAX_ACTIONS
                    )));
                }
                break;
            }
            match seq.next_element()? {
                Some(item) => items.push(item),
                None => break,
            }
        }
        self.progress.list.set(None);
        Ok(items)
    }
}

/// One action as the canonical list writes it (see `Serialize for Action`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredAction {
    label: String,
    #[serde(rename = "type")]
    action_type: TypeName,
    /// As written; what runs is the resolved `deps` (see `Action::depends_on`).
    #[serde(default, rename = "depends_on")]
    _depends_on: IgnoredAny,
    #[serde(default)]
    params: Value,
    condition: Option<String>,
    /// Its text form; the exact duration is in the action's resolved entry.
    #[serde(rename = "timeout")]
    timeout_text: Option<IgnoredAny>,
    retry: Option<StoredRetry>,
    description: Option<String>,
    #[serde(default, rename = "before")]
    _before: IgnoredAny,
    scope: Option<String>,
    #[serde(default = "yes")]
    save_outputs: bool,
    #[serde(default)]
    lifecycle_hooks: Vec<StoredHook>,
}

fn yes() -> bool {
    true
}

/// An action type by its canonical name.
struct TypeName(ActionType);

impl<'de> Deserialize<'de> for TypeName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = Cow::<'de, str>::deserialize(deserializer)?;
        let types = types_by_name();
        match types.binary_search_by(|(known, _)| (*known).cmp(name.as_ref())) {
            Ok(at) => Ok(TypeName(types[at].1)),
            Err(_) => Err(D::Error::custom(format!(
                "unknown action type \"{}\" (this baton does not have it: the run was created \
                 by another version)",
                name.escape_debug()
            ))),
        }
    }
}

/// The catalogue by canonical name, sorted: a plan names a type per action.
fn types_by_name() -> &'static [(&'static str, ActionType)] {
    static TYPES: std::sync::OnceLock<Vec<(&'static str, ActionType)>> = std::sync::OnceLock::new();
    TYPES.get_or_init(|| {
        let mut types: Vec<_> = ActionType::ALL.iter().map(|&t| (t.name(), t)).collect();
        types.sort_unstable_by_key(|&(name, _)| name);
        types
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredRetry {
    attempts: u32,
    /// Its text form; the exact duration is in the action's resolved entry.
    #[serde(rename = "delay")]
    _delay: IgnoredAny,
    backoff: f64,
}

/// A status hook as [`LifecycleHook::to_value`] writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredHook {
    #[serde(rename = "Type")]
    _kind: HookKind,
    #[serde(rename = "States")]
    states: Vec<StoredHookState>,
    #[serde(rename = "Parameters")]
    parameters: StoredHookParameters,
}

#[derive(Deserialize)]
enum HookKind {
    #[serde(rename = "status")]
    Status,
}

#[derive(Deserialize)]
enum StoredHookState {
    Running,
    Complete,
    Failed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredHookParameters {
    #[serde(rename = "OnRunning")]
    on_running: Option<StoredHookMessage>,
    #[serde(rename = "OnComplete")]
    on_complete: Option<StoredHookMessage>,
    #[serde(rename = "OnFailed")]
    on_failed: Option<StoredHookMessage>,
    #[serde(rename = "Identity")]
    identity: String,
    #[serde(rename = "Details", default)]
    details: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredHookMessage {
    #[serde(rename = "Status")]
    status: String,
    #[serde(rename = "Message")]
    message: Option<String>,
}

impl StoredHook {
    fn into_hook(self) -> LifecycleHook {
        let message = |m: Option<StoredHookMessage>| {
            m.map(|m| HookMessage {
                status: m.status,
                message: m.message,
            })
        };
        let p = self.parameters;
        LifecycleHook {
            states: self
                .states
                .into_iter()
                .map(|s| match s {
                    StoredHookState::Running => HookState::Running,
                    StoredHookState::Complete => HookState::Complete,
                    StoredHookState::Failed => HookState::Failed,
                })
                .collect(),
            on_running: message(p.on_running),
            on_complete: message(p.on_complete),
            on_failed: message(p.on_failed),
            identity: p.identity,
            details: p.details,
        }
    }
}

/// What validation computed for one action (see [`ResolvedEntry`]), kept small while the
/// whole list waits for the actions: what few actions have is boxed.
#[derive(Deserialize, Default)]
#[serde(from = "ResolvedFields")]
struct Resolved {
    deps: Vec<ActionIdx>,
    templated: bool,
    more: Option<Box<ResolvedMore>>,
}

/// A resolved entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolvedFields {
    #[serde(default)]
    deps: Vec<ActionIdx>,
    #[serde(default)]
    templated: bool,
    #[serde(default = "reads_nothing")]
    reads_outputs: Option<Vec<ActionIdx>>,
    #[serde(default)]
    reads_vars: Vec<(String, String)>,
    #[serde(default)]
    reads_state: Option<Vec<ActionIdx>>,
    timeout_ns: Option<u64>,
    delay_ns: Option<u64>,
}

/// The parts of a resolved entry most actions leave at their defaults.
#[derive(PartialEq)]
struct ResolvedMore {
    reads_outputs: Option<Vec<ActionIdx>>,
    reads_vars: Vec<(String, String)>,
    reads_state: Option<Vec<ActionIdx>>,
    timeout_ns: Option<u64>,
    delay_ns: Option<u64>,
}

impl Default for ResolvedMore {
    fn default() -> Self {
        ResolvedMore {
            reads_outputs: reads_nothing(),
            reads_vars: Vec::new(),
            reads_state: None,
            timeout_ns: None,
            delay_ns: None,
        }
    }
}

impl From<ResolvedFields> for Resolved {
    fn from(fields: ResolvedFields) -> Self {
        let more = ResolvedMore {
            reads_outputs: fields.reads_outputs,
            reads_vars: fields.reads_vars,
            reads_state: fields.reads_state,
            timeout_ns: fields.timeout_ns,
            delay_ns: fields.delay_ns,
        };
        Resolved {
            deps: fields.deps,
            templated: fields.templated,
            more: (more != ResolvedMore::default()).then(|| Box::new(more)),
        }
    }
}

fn reads_nothing() -> Option<Vec<ActionIdx>> {
    Some(Vec::new())
}

impl Parts {
    /// The plan, once the parts agree with each other: O(actions + dependencies).
    fn into_plan(self, source: &str) -> Result<Plan, String> {
        check_order(&self.actions, &self.deps, &self.order)?;
        Plan::trusted(
            source.to_string(),
            self.dialect,
            self.actions,
            self.deps,
            self.order,
            self.by_label,
        )
    }
}

impl StoredAction {
    /// The action and its dependencies, once checked on their own (label, indices in range,
    /// durations, retry numbers).
    fn into_action(
        self,
        resolved: Resolved,
        i: usize,
        n: usize,
    ) -> Result<(Action, Vec<ActionIdx>), String> {
        let more = resolved.more.map(|more| *more).unwrap_or_default();
        let (timeout, retry) = self
            .check(&resolved.deps, &more, i, n)
            .map_err(|what| format!("actions[{i}] \"{}\": {what}", self.label.escape_debug()))?;
        let action = Action {
            label: self.label,
            action_type: self.action_type.0,
            templated: resolved.templated,
            save_outputs: self.save_outputs,
            params: self.params,
            reads_outputs: more.reads_outputs,
            details: ActionDetails {
                condition: self.condition,
                timeout,
                retry,
                description: self.description,
                reads_vars: more.reads_vars,
                reads_state: more.reads_state,
                before: Vec::new(),
                scope: self.scope,
                hooks: self
                    .lifecycle_hooks
                    .into_iter()
                    .map(StoredHook::into_hook)
                    .collect(),
            }
            .boxed(),
        };
        Ok((action, resolved.deps))
    }

    /// Its timeout and retry policy, once what no validated plan holds is ruled out.
    fn check(
        &self,
        deps: &[ActionIdx],
        more: &ResolvedMore,
        i: usize,
        n: usize,
    ) -> Result<(Option<Duration>, Option<RetryPolicy>), String> {
        if let Some(problem) = super::label_problem(&self.label) {
            return Err(format!("label {problem}"));
        }
        check_indices("deps", deps, n)?;
        if deps.windows(2).any(|w| w[0] >= w[1]) {
            return Err("deps are not sorted and distinct".into());
        }
        if deps.binary_search(&(i as ActionIdx)).is_ok() {
            return Err("it depends on itself".into());
        }
        let reads_outputs = more.reads_outputs.as_deref().unwrap_or_default();
        check_indices("reads_outputs", reads_outputs, n)?;
        let reads_state = more.reads_state.as_deref().unwrap_or_default();
        check_indices("reads_state", reads_state, n)?;
        let timeout = exact("timeout", self.timeout_text.is_some(), more.timeout_ns)?;
        let delay = exact("retry.delay", self.retry.is_some(), more.delay_ns)?;
        let retry = match (&self.retry, delay) {
            (Some(retry), Some(delay)) => {
                if !(1..=100).contains(&retry.attempts) || !(1.0..=10.0).contains(&retry.backoff) {
                    return Err("retry: attempts must be 1 to 100 and backoff 1 to 10".into());
                }
                Some(RetryPolicy {
                    attempts: retry.attempts,
                    delay,
                    backoff: retry.backoff,
                })
            }
            _ => None,
        };
        Ok((timeout, retry))
    }
}

fn check_indices(field: &str, indices: &[ActionIdx], n: usize) -> Result<(), String> {
    match indices.iter().find(|&&k| k as usize >= n) {
        Some(k) => Err(format!(
            "{field} names action {k}, but the plan has {n} actions"
        )),
        None => Ok(()),
    }
}

/// A duration from its resolved nanoseconds, present exactly when the action writes it.
fn exact(field: &str, written: bool, nanos: Option<u64>) -> Result<Option<Duration>, String> {
    match (written, nanos) {
        (false, None) => Ok(None),
        (true, Some(nanos)) => {
            let d = Duration::from_nanos(nanos);
            if d > MAX_DURATION {
                Err(format!("{field} is longer than the limit (366 days)"))
            } else {
                Ok(Some(d))
            }
        }
        (true, None) => Err(format!("{field} has no resolved duration")),
        (false, Some(_)) => Err(format!("a resolved {field} for an action without one")),
    }
}

/// `order` holds every action once, each after all of its dependencies.
fn check_order(actions: &[Action], deps: &Adjacency, order: &[ActionIdx]) -> Result<(), String> {
    const UNPLACED: usize = usize::MAX;
    let n = actions.len();
    let mut position = vec![UNPLACED; n];
    for (at, &idx) in order.iter().enumerate() {
        let slot = position.get_mut(idx as usize).ok_or_else(|| {
            format!("order[{at}] names action {idx}, but the plan has {n} actions")
        })?;
        if *slot != UNPLACED {
            return Err(format!("order lists action {idx} twice"));
        }
        *slot = at;
    }
    for (idx, list) in deps.iter().enumerate() {
        if let Some(&dep) = list.iter().find(|&&d| position[d as usize] > position[idx]) {
            return Err(format!(
                "order puts \"{}\" before its dependency \"{}\" (not a topological order)",
                actions[idx].label.escape_debug(),
                actions[dep as usize].label.escape_debug()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{load_str, Format};
    use proptest::prelude::*;
    use serde_json::json;

    fn validated(file: &str, text: &str, format: Format) -> Plan {
        match load_str(file, text, format) {
            Ok(loaded) => loaded.plan,
            Err(problems) => panic!("invalid test plan:\n{problems}"),
        }
    }

    fn reopened(plan: &Plan) -> Plan {
        match read(plan.source(), &plan.to_json()) {
            Ok(Stored::Trusted(plan)) => *plan,
            other => panic!("not read back as trusted: {other:?}"),
        }
    }

    const NATIVE: &str = r#"[
        {"label": "net", "type": "system.set_variables",
         "params": {"variables": {"vpc": "v-1", "db_password": "hunter22"}},
         "timeout": "1.25s", "retry": {"attempts": 3, "delay": "0.3s", "backoff": 1.5},
         "description": "the network"},
        {"label": "app-a", "type": "system.no_op", "depends_on": ["net"], "condition": "{{ vars.go }}"},
        {"label": "app-b", "type": "system.command", "depends_on": ["net"],
         "params": {"command": ["echo", "{{ outputs['net'].vpc }}", "{{ vars.region }}"]},
         "timeout": "90m"},
        {"label": "done", "type": "system.no_op", "depends_on": ["app-*"], "condition": "true"}
    ]"#;

    const SCK: &str = r#"
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
"#;

    #[test]
    fn a_stored_plan_reads_back_as_validated() {
        let plan = validated("plan.json", NATIVE, Format::Json);
        assert_eq!(reopened(&plan), crate::testutil::as_read_back(&plan));
        // Durations are kept to the nanosecond, not as their text rounds them.
        assert_eq!(
            reopened(&plan).action(0).details().timeout,
            Some(Duration::from_millis(1250))
        );
        let sck = validated("f.actions", SCK, Format::Yaml);
        assert_eq!(sck.dialect(), Dialect::SckV2);
        let again = reopened(&sck);
        assert_eq!(again, crate::testutil::as_read_back(&sck));
        // Serialized again, its dependencies are spelled out, and read back the same.
        assert_eq!(reopened(&again), again);
        assert_eq!(again.action(1).details().reads_state, Some(vec![0]));
    }

    /// The document is still an action file: validating it in full gives the same plan (but
    /// for durations, which its text rounds).
    #[test]
    fn a_stored_plan_is_an_action_file() {
        for (file, text, format) in [
            ("plan.json", NATIVE, Format::Json),
            ("f.actions", SCK, Format::Yaml),
        ] {
            let plan = validated(file, text, format);
            let stored = String::from_utf8(plan.to_json()).expect("utf-8");
            let again = validated(file, &stored, Format::Json);
            assert_eq!(again.dialect(), plan.dialect());
            assert_eq!(again.deps, plan.deps);
            assert_eq!(again.order, plan.order);
            for (a, b) in again.actions().iter().zip(plan.actions()) {
                assert_eq!(
                    (&a.label, &a.params, &a.details().reads_state),
                    (&b.label, &b.params, &b.details().reads_state)
                );
            }
        }
    }

    /// What earlier versions stored: the action list, or SCK plans wrapped with their format.
    fn legacy_bytes(plan: &Plan) -> Vec<u8> {
        if plan.dialect().is_sck() {
            serde_json::to_vec(&json!({"format": plan.dialect().tag(), "actions": plan}))
        } else {
            serde_json::to_vec(plan)
        }
        .expect("json")
    }

    #[test]
    fn plans_stored_by_earlier_versions_are_validated_in_full() {
        for (file, text, format) in [
            ("plan.json", NATIVE, Format::Json),
            ("f.actions", SCK, Format::Yaml),
        ] {
            let plan = validated(file, text, format);
            let old = legacy_bytes(&plan);
            assert!(matches!(read("actions.json", &old), Ok(Stored::Legacy)));
            let again = read_stored("actions.json", &old).expect("opens");
            assert_eq!(again.dialect(), plan.dialect());
            assert_eq!(again.deps, plan.deps);
            assert_eq!(again.order, plan.order);
        }
        let problem = read_stored(
            "actions.json",
            b"[{\"label\": \"a\", \"type\": \"x.nope\"}]",
        )
        .expect_err("invalid");
        assert!(matches!(problem, StoredPlanError::Invalid(_)), "{problem}");
    }

    /// A run created by an earlier version opens, its state loads, and it runs to the end.
    #[test]
    fn a_run_stored_by_an_earlier_version_opens_and_runs() {
        use crate::store::RunStore;
        let plan = validated("plan.json", NATIVE, Format::Json);
        let old = legacy_bytes(&plan);
        let sha = crate::util::sha256_hex(&old);
        let mut vars = serde_json::Map::new();
        vars.insert("go".into(), json!(true));
        vars.insert("region".into(), json!("eu-west-1"));
        let state = crate::state::RunState::new("old", &plan, &sha, vars, chrono::Utc::now());
        let store = crate::testutil::MemoryStore::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            store
                .create(&old, &state.to_json(&plan))
                .await
                .expect("create");
            let run = crate::run::Run::open(store).await.expect("opens");
            assert_eq!(run.plan.order, plan.order);
            let (state, _) = run.load().await.expect("state loads");
            assert_eq!(state.actions().len(), plan.len());
        });
    }

    fn damaged(doc: &Value) -> String {
        let bytes = serde_json::to_vec(doc).expect("json");
        match read_stored("runs/x/actions.json", &bytes) {
            Err(StoredPlanError::Damaged(what)) => what,
            other => panic!("expected a damaged plan, got {other:?}"),
        }
    }

    fn stored_value(plan: &Plan) -> Value {
        serde_json::from_slice(&plan.to_json()).expect("json")
    }

    #[test]
    fn damaged_plans_are_refused_with_what_is_wrong() {
        let plan = validated("plan.json", NATIVE, Format::Json);
        let good = stored_value(&plan);
        type Edit = fn(&mut Value);
        let cases: [(Edit, &str); 15] = [
            (
                |d| d[0]["by_label"] = json!([0, 1, 2]),
                "it lists 4 actions but 3 by label",
            ),
            (
                |d| d[0]["by_label"] = json!([0, 1, 2, 9]),
                "by_label names action 9",
            ),
            (
                |d| d[0]["by_label"] = json!([3, 2, 1, 0]),
                "not list the actions in label order",
            ),
            (
                |d| d[0]["resolved"][1]["deps"] = json!([7]),
                "deps names action 7, but the plan has 4",
            ),
            (
                |d| d[0]["resolved"][1]["deps"] = json!([1]),
                "depends on itself",
            ),
            (
                |d| d[0]["resolved"][3]["deps"] = json!([2, 1]),
                "not sorted",
            ),
            (
                |d| d[0]["resolved"][2]["reads_outputs"] = json!([40]),
                "reads_outputs names action 40",
            ),
            (
                |d| d[0]["order"] = json!([1, 0, 2, 3]),
                "not a topological order",
            ),
            (
                |d| d[0]["order"] = json!([0, 0, 2, 3]),
                "order lists action 0 twice",
            ),
            (
                |d| d[0]["order"] = json!([0, 1, 2, 9]),
                "order[3] names action 9",
            ),
            (|d| d[0]["order"] = json!([0, 1, 2]), "orders 3"),
            (
                |d| d[3]["type"] = json!("system.nope"),
                "unknown action type \"system.nope\"",
            ),
            (
                |d| d[2]["label"] = json!("net"),
                "repeats the label \"net\"",
            ),
            (|d| d[0]["plan_format"] = json!(3), "newer baton"),
            (
                |d| d[1]["retry"]["backoff"] = json!(-2.0),
                "backoff 1 to 10",
            ),
        ];
        for (edit, expected) in cases {
            let mut doc = good.clone();
            edit(&mut doc);
            let what = damaged(&doc);
            assert!(what.contains(expected), "{expected:?} not in {what:?}");
        }
        let mut doc = good.clone();
        doc[0]["resolved"][0]
            .as_object_mut()
            .expect("object")
            .remove("timeout_ns");
        assert!(damaged(&doc).contains("timeout has no resolved duration"));
        let bytes = plan.to_json();
        let cut = &bytes[..bytes.len() / 2];
        let what = match read_stored("a.json", cut) {
            Err(StoredPlanError::Damaged(what)) => what,
            other => panic!("{other:?}"),
        };
        assert!(what.contains("ends early"), "{what}");
        let message = StoredPlanError::Damaged(what).to_string();
        assert!(
            message.starts_with("actions.json is damaged: it ends early (in actions["),
            "{message}"
        );
    }

    /// A plan of `n` actions with random dependencies (on earlier actions, or by pattern),
    /// types, templates, conditions, timeouts and retries.
    fn plan_text() -> impl Strategy<Value = String> {
        let action = (
            0usize..6,
            proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
            any::<bool>(),
            proptest::option::of(0u64..5000),
            proptest::option::of((1u32..5, 0u64..3000, 10u32..30)),
            any::<bool>(),
        );
        proptest::collection::vec(action, 1..25).prop_map(|actions| {
            let list: Vec<Value> = actions
                .iter()
                .enumerate()
                .map(|(i, (kind, deps, templated, timeout, retry, pattern))| {
                    let deps: Vec<usize> = if i == 0 {
                        Vec::new()
                    } else {
                        deps.iter().map(|d| d.index(i)).collect()
                    };
                    let mut depends_on: Vec<String> = deps.iter().map(|d| format!("a{d}")).collect();
                    if *pattern && i > 0 {
                        depends_on.push(format!("a{}*", i - 1));
                    }
                    let read = deps.first().map_or("x".to_string(), |d| {
                        format!("{{{{ outputs['a{d}'] | length }}}}")
                    });
                    let text = if *templated { read } else { "plain".into() };
                    let (kind, params) = match kind {
                        0 => ("system.no_op", Value::Null),
                        1 => ("system.command", json!({"command": ["echo", text]})),
                        2 => ("system.set_variables", json!({"variables": {"v": text}})),
                        3 => ("system.wait", json!({"seconds": 1})),
                        4 => ("system.fail", json!({"message": text})),
                        _ => ("system.command", json!({"command": ["true"], "env": {"A": "{{ vars.a }}"}})),
                    };
                    let mut action = json!({"label": format!("a{i}"), "type": kind, "depends_on": depends_on});
                    if !params.is_null() {
                        action["params"] = params;
                    }
                    if *templated {
                        action["condition"] = json!("{{ vars.go }}");
                    }
                    if let Some(ms) = timeout {
                        action["timeout"] = json!(format!("{}.{:03}s", ms / 1000 + 1, ms % 1000));
                    }
                    if let Some((attempts, delay, backoff)) = retry {
                        action["retry"] = json!({"attempts": attempts, "delay": format!("{delay}ms"), "backoff": f64::from(*backoff) / 10.0});
                    }
                    action
                })
                .collect();
            Value::Array(list).to_string()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn generated_plans_read_back_as_validated(text in plan_text()) {
            let loaded = load_str("gen.json", &text, Format::Json);
            // A condition or template a type refuses is fine: only valid plans are stored.
            if let Ok(loaded) = loaded {
                let plan = loaded.plan;
                let again = reopened(&plan);
                prop_assert_eq!(&again, &crate::testutil::as_read_back(&plan));
                prop_assert_eq!(&reopened(&again), &again);
                // What it writes is an action file that validates to the same plan.
                let text = String::from_utf8(again.to_json()).expect("utf-8");
                let validated = load_str("gen.json", &text, Format::Json).expect("validates").plan;
                prop_assert_eq!(validated.deps, again.deps.clone());
                prop_assert_eq!(validated.order, again.order.clone());
                // Found in file order, backwards, and not at all.
                for i in (0..plan.len()).chain((0..plan.len()).rev()) {
                    prop_assert_eq!(again.find(plan.label(i as ActionIdx)), Some(i as ActionIdx));
                }
                prop_assert_eq!(again.find("a"), None);
                prop_assert_eq!(again.find("zz"), None);
            }
        }

        /// Whatever a stored plan is cut or overwritten to, reading it never panics.
        #[test]
        fn damaged_bytes_never_panic(
            text in plan_text(),
            cut in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            if let Ok(loaded) = load_str("gen.json", &text, Format::Json) {
                let mut bytes = loaded.plan.to_json();
                let at = at.index(bytes.len());
                bytes[at] = byte;
                let _ = read_stored("a.json", &bytes);
                let _ = read_stored("a.json", &bytes[..cut.index(bytes.len())]);
            }
        }
    }
}
