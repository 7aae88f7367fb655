//! The validated, resolved plan the engine runs: actions in file order, dependencies resolved to
//! indices, a topological order, and what each action's templates read.

use std::time::Duration;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::actions::ActionType;
use crate::duration::format_duration;

/// Index of an action in [`Plan::actions`]. `u32` keeps the per-action graph data small.
pub type ActionIdx = u32;

/// How an action's retryable failures are retried (its `retry` field).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts, including the first.
    pub attempts: u32,
    /// Wait before the first retry.
    pub delay: Duration,
    /// Each further retry waits this many times longer than the one before (1 to 10).
    pub backoff: f64,
}

impl RetryPolicy {
    /// Delay before attempt `next_attempt` (2 = the first retry).
    pub(crate) fn delay_before(&self, next_attempt: u32) -> Duration {
        let exponent = next_attempt.saturating_sub(2) as i32;
        let seconds = self.delay.as_secs_f64() * self.backoff.powi(exponent);
        Duration::from_secs_f64(seconds.min(86400.0))
    }
}

/// One action of a plan, as written in the file once validated. What most actions leave out
/// is in [`ActionDetails`], allocated only for the actions that have some: inline it made an
/// action 368 B (37 MB of a 100k-action plan, the largest part of a Lambda tick's memory).
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Unique within the plan; how dependencies, outputs and operators name the action.
    pub label: String,
    /// What the action does, and how it runs (inline, synchronous or asynchronous).
    pub action_type: ActionType,
    /// Whether any param string is a template (only those are rendered).
    pub templated: bool,
    /// Whether its outputs are also written to its namespace's `output` keys for `lookup`
    /// (SCK's `SaveOutputs`, on unless turned off).
    pub save_outputs: bool,
    /// As written (templates unrendered); `Null` when absent.
    pub params: Value,
    /// Actions whose outputs the templates read by name; `None` when they index `outputs`
    /// dynamically, in which case every finished action's outputs are offered.
    pub reads_outputs: Option<Vec<ActionIdx>>,
    /// `None` when every detail is at its default.
    pub(crate) details: Option<Box<ActionDetails>>,
}

/// The parts of an [`Action`] most actions leave out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ActionDetails {
    /// Template expression evaluated when the action is ready; false skips it (and lets its
    /// dependents run). `None`: always runs.
    pub condition: Option<String>,
    /// Longest one attempt may run, from its start; past it the action fails without a retry
    /// (its work cancelled where the type can). `None`: no limit.
    pub timeout: Option<Duration>,
    /// `None`: the first failure fails the action.
    pub retry: Option<RetryPolicy>,
    /// Free text for operators (`inspect`, the console).
    pub description: Option<String>,
    /// Run variables its templates read, with the field that reads each (`params.command[1]`,
    /// `condition`), so a missing `--var` is caught before the run starts.
    pub reads_vars: Vec<(String, String)>,
    /// Actions whose state its `lookup`s may read (ancestors, by the keys' names); `None` when
    /// its templates use no `lookup`.
    pub reads_state: Option<Vec<ActionIdx>>,
    /// Actions that run after this one (`Before` in SCK files): each of them depends on it.
    /// As written: labels and patterns (empty in a plan read back, like `depends_on`).
    pub before: Vec<String>,
    /// Where SCK keeps the action's state (`build`, `branch`, `app`, `portfolio`); recorded and
    /// shown, it changes nothing in a run.
    pub scope: Option<String>,
    /// Status hooks to fire as the action runs, completes or fails (SCK's `LifecycleHooks`).
    pub hooks: Vec<LifecycleHook>,
}

/// What an action without details reads.
pub(crate) static NO_DETAILS: ActionDetails = ActionDetails {
    condition: None,
    timeout: None,
    retry: None,
    description: None,
    reads_vars: Vec::new(),
    reads_state: None,
    before: Vec::new(),
    scope: None,
    hooks: Vec::new(),
};

impl ActionDetails {
    /// Boxed when any detail is set; `None` (no allocation) otherwise.
    pub(crate) fn boxed(self) -> Option<Box<ActionDetails>> {
        (self != NO_DETAILS).then(|| Box::new(self))
    }
}

impl Action {
    /// The action's details (defaults when it has none).
    pub fn details(&self) -> &ActionDetails {
        self.details.as_deref().unwrap_or(&NO_DETAILS)
    }

    /// Its details, to change them (allocated on first use).
    pub(crate) fn details_mut(&mut self) -> &mut ActionDetails {
        self.details.get_or_insert_with(Box::default)
    }
}

/// The spelling an action file is written in, which also decides a few rules (see
/// docs/action-files.md, "SCK files").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// baton's own action files.
    #[default]
    Native,
    /// Simple Cloud Kit, first version: `Label`, `Type`, `Params`.
    SckV1,
    /// Simple Cloud Kit, second version: `Name`/`Label`, `Kind`/`Type`, `Spec`/`Params`.
    SckV2,
    /// Simple Cloud Kit, third version: `kind`, `metadata {name, namespace}`, `spec`.
    SckV3,
}

impl Dialect {
    /// Whether the file follows the Simple Cloud Kit runner's rules.
    pub fn is_sck(self) -> bool {
        self != Dialect::Native
    }

    /// How `plan` and `inspect` name it.
    pub fn describe(self) -> &'static str {
        match self {
            Dialect::Native => "baton",
            Dialect::SckV1 => "SCK V1 (Simple Cloud Kit)",
            Dialect::SckV2 => "SCK V2 (Simple Cloud Kit)",
            Dialect::SckV3 => "SCK V3 (Simple Cloud Kit)",
        }
    }

    /// Its name in a stored plan (`{"format": "sck-v2", "actions": [...]}`).
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Dialect::Native => "baton",
            Dialect::SckV1 => "sck-v1",
            Dialect::SckV2 => "sck-v2",
            Dialect::SckV3 => "sck-v3",
        }
    }

    pub(crate) fn from_tag(tag: &str) -> Option<Self> {
        [
            Dialect::Native,
            Dialect::SckV1,
            Dialect::SckV2,
            Dialect::SckV3,
        ]
        .into_iter()
        .find(|d| d.tag() == tag)
    }
}

/// A moment of an action's life a hook can fire on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookState {
    /// An attempt of the action started (an inline action passes through it on its way to
    /// Complete or Failed).
    Running,
    /// It completed.
    Complete,
    /// It failed for good.
    Failed,
}

impl HookState {
    /// Every state, in the order an action goes through them.
    pub const ALL: [HookState; 3] = [HookState::Running, HookState::Complete, HookState::Failed];

    /// As SCK writes it in `States` (`Running`).
    pub fn as_str(self) -> &'static str {
        match self {
            HookState::Running => "Running",
            HookState::Complete => "Complete",
            HookState::Failed => "Failed",
        }
    }
}

/// What a status hook says for one state: templates, rendered when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookMessage {
    /// The status to record (`DEPLOY_IN_PROGRESS`).
    pub status: String,
    /// Words for people; the action's own reason is appended when it fires.
    pub message: Option<String>,
}

/// One status hook (SCK's `LifecycleHooks` entry of `Type: status`). Its texts are templates,
/// rendered with the action's context when it fires; a hook's failure never fails the action.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleHook {
    /// The states it fires on (`States`).
    pub states: Vec<HookState>,
    /// `Parameters.OnRunning`.
    pub on_running: Option<HookMessage>,
    /// `Parameters.OnComplete`.
    pub on_complete: Option<HookMessage>,
    /// `Parameters.OnFailed`.
    pub on_failed: Option<HookMessage>,
    /// Whose status it is (`Parameters.Identity`, a PRN such as `prn:portfolio:app:branch:build`).
    pub identity: String,
    /// Anything else to record with it (`Parameters.Details`), as written.
    pub details: Value,
}

impl LifecycleHook {
    /// What the hook says when the action enters `state`: `None` when it does not fire then
    /// (not among its states, or no status for it).
    pub fn message(&self, state: HookState) -> Option<&HookMessage> {
        if !self.states.contains(&state) {
            return None;
        }
        match state {
            HookState::Running => self.on_running.as_ref(),
            HookState::Complete => self.on_complete.as_ref(),
            HookState::Failed => self.on_failed.as_ref(),
        }
    }

    /// The hook as an SCK file writes it (and as a stored plan keeps it).
    pub fn to_value(&self) -> Value {
        let mut parameters = Map::new();
        for (key, message) in [
            ("OnRunning", &self.on_running),
            ("OnComplete", &self.on_complete),
            ("OnFailed", &self.on_failed),
        ] {
            if let Some(message) = message {
                let mut words = Map::new();
                words.insert("Status".into(), Value::String(message.status.clone()));
                if let Some(text) = &message.message {
                    words.insert("Message".into(), Value::String(text.clone()));
                }
                parameters.insert(key.into(), Value::Object(words));
            }
        }
        parameters.insert("Identity".into(), Value::String(self.identity.clone()));
        if !self.details.is_null() {
            parameters.insert("Details".into(), self.details.clone());
        }
        serde_json::json!({
            "Type": "status",
            "States": self.states.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "Parameters": parameters,
        })
    }
}

/// One list of actions per action (what each depends on, or what depends on each), all kept in
/// two flat arrays: at 100k actions a `Vec` per action would cost about 6 MB more (its header
/// and an allocation of its own each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjacency {
    /// List `i` is `items[starts[i]..starts[i + 1]]`.
    starts: Vec<u32>,
    items: Vec<ActionIdx>,
}

impl Default for Adjacency {
    fn default() -> Self {
        Adjacency::with_capacity(0, 0)
    }
}

impl Adjacency {
    /// No lists yet, with room for `lists` of them holding `items` in all.
    pub fn with_capacity(lists: usize, items: usize) -> Self {
        let mut starts = Vec::with_capacity(lists + 1);
        starts.push(0);
        Adjacency {
            starts,
            items: Vec::with_capacity(items),
        }
    }

    /// Adds the next list.
    pub fn push(&mut self, list: impl IntoIterator<Item = ActionIdx>) {
        self.items.extend(list);
        // Fewer than 2^32 entries: a plan holds at most a few million values.
        self.starts.push(self.items.len() as u32);
    }

    /// How many lists.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// Whether there are no lists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries, over all the lists.
    pub fn total(&self) -> usize {
        self.items.len()
    }

    /// The lists in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[ActionIdx]> + '_ {
        self.starts
            .windows(2)
            .map(|w| &self.items[w[0] as usize..w[1] as usize])
    }

    /// The same edges the other way round: list `j` of the result holds every `i` whose list
    /// holds `j` (in ascending `i`); `n` lists, each entry below `n`.
    pub fn reversed(&self, n: usize) -> Adjacency {
        let mut starts = vec![0u32; n + 1];
        for &j in &self.items {
            starts[j as usize + 1] += 1;
        }
        for k in 0..n {
            starts[k + 1] += starts[k];
        }
        let mut next: Vec<u32> = starts[..n].to_vec();
        let mut items = vec![0; self.items.len()];
        for (i, list) in self.iter().enumerate() {
            for &j in list {
                items[next[j as usize] as usize] = i as ActionIdx;
                next[j as usize] += 1;
            }
        }
        Adjacency { starts, items }
    }
}

impl std::ops::Index<usize> for Adjacency {
    type Output = [ActionIdx];

    fn index(&self, i: usize) -> &[ActionIdx] {
        &self.items[self.starts[i] as usize..self.starts[i + 1] as usize]
    }
}

impl<L: AsRef<[ActionIdx]>> FromIterator<L> for Adjacency {
    fn from_iter<I: IntoIterator<Item = L>>(lists: I) -> Self {
        let mut adjacency = Adjacency::default();
        for list in lists {
            adjacency.push(list.as_ref().iter().copied());
        }
        adjacency
    }
}

/// Texts kept end to end in one buffer: one allocation for many short texts (labels) instead
/// of one each.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Texts {
    text: String,
    /// Text `k` ends at `ends[k]` in `text` (and starts where text `k - 1` ends).
    ends: Vec<usize>,
}

impl Texts {
    pub(crate) fn push(&mut self, entry: &str) {
        self.text.push_str(entry);
        self.ends.push(self.text.len());
    }

    /// How many texts.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Text `k`. Panics past the last.
    pub(crate) fn get(&self, k: usize) -> &str {
        let start = if k == 0 { 0 } else { self.ends[k - 1] };
        &self.text[start..self.ends[k]]
    }

    fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

/// Lists of texts, one list per action, in one buffer: the `depends_on` of 100k actions as
/// a `Vec<String>` each took about 30 MB (a box of details per action to hold it, and an
/// allocation per label), and about 4 MB here.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct TextLists {
    texts: Texts,
    /// List `i` is texts `firsts[i]..firsts[i + 1]`; empty before the first list.
    firsts: Vec<usize>,
}

impl TextLists {
    /// Adds the next list.
    pub(crate) fn push<'a>(&mut self, list: impl IntoIterator<Item = &'a str>) {
        if self.firsts.is_empty() {
            self.firsts.push(0);
        }
        for entry in list {
            self.texts.push(entry);
        }
        self.firsts.push(self.texts.len());
    }

    /// List `i` (empty past the last).
    pub(crate) fn list(&self, i: usize) -> impl ExactSizeIterator<Item = &str> + '_ {
        let (first, end) = match (self.firsts.get(i), self.firsts.get(i + 1)) {
            (Some(&first), Some(&end)) => (first, end),
            _ => (0, 0),
        };
        (first..end).map(move |k| self.texts.get(k))
    }

    /// Gives back memory reserved beyond what the lists hold.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.texts.shrink_to_fit();
        self.firsts.shrink_to_fit();
    }
}

/// A validated plan. Its parts stay consistent with each other (indices, dependents, order,
/// what templates read), so they are read through methods and changed only by the loader.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The file the plan came from, for messages.
    pub(crate) source: String,
    /// The spelling and rules of the file it came from.
    pub(crate) dialect: Dialect,
    pub(crate) actions: Vec<Action>,
    pub(crate) deps: Adjacency,
    pub(crate) dependents: Adjacency,
    /// A topological order (dependencies first), ties broken by file order.
    pub(crate) order: Vec<ActionIdx>,
    /// Every action, by label: what [`Plan::find`] searches. Labels are unique, so strictly
    /// ascending here.
    pub(crate) by_label: Vec<ActionIdx>,
    /// Each action's `depends_on` as written (labels and glob patterns) in a plan loaded from
    /// an action file; `None` in a plan read back from a run's store (which also leaves out
    /// `before`): what runs is the resolved [`Plan::deps`], and reading 100k actions' texts
    /// back cost a sixth of opening the run.
    pub(crate) depends_on: Option<Box<TextLists>>,
    find_hint: FindHint,
}

/// Where [`Plan::find`] looks first: just after the action it found last. Readers look actions
/// up in file order (a state document lists them so), and then each lookup is one comparison.
#[derive(Default)]
struct FindHint(std::sync::atomic::AtomicU32);

impl FindHint {
    fn get(&self) -> ActionIdx {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set(&self, next: ActionIdx) {
        self.0.store(next, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Only a guess: copies start afresh, and it plays no part in what a plan is.
impl Clone for FindHint {
    fn clone(&self) -> Self {
        FindHint::default()
    }
}

impl PartialEq for FindHint {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for FindHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FindHint")
    }
}

impl Plan {
    pub(crate) fn new(
        source: String,
        dialect: Dialect,
        actions: Vec<Action>,
        deps: Adjacency,
        order: Vec<ActionIdx>,
        mut depends_on: TextLists,
    ) -> Self {
        let mut by_label: Vec<ActionIdx> = (0..actions.len() as ActionIdx).collect();
        by_label
            .sort_unstable_by(|&a, &b| actions[a as usize].label.cmp(&actions[b as usize].label));
        depends_on.shrink_to_fit();
        let mut plan = Plan::new_indexed(source, dialect, actions, deps, order, by_label);
        plan.depends_on = Some(Box::new(depends_on));
        plan
    }

    fn new_indexed(
        source: String,
        dialect: Dialect,
        actions: Vec<Action>,
        deps: Adjacency,
        order: Vec<ActionIdx>,
        by_label: Vec<ActionIdx>,
    ) -> Self {
        let dependents = deps.reversed(actions.len());
        Plan {
            source,
            dialect,
            actions,
            deps,
            dependents,
            order,
            by_label,
            depends_on: None,
            find_hint: FindHint::default(),
        }
    }

    /// A plan read back from its stored form, whose parts were computed by validation when
    /// the run was created. The caller has checked indices and order; here `by_label` is
    /// checked to list the actions by strictly ascending label (which proves the labels unique
    /// and, with its length, that it lists each action once).
    pub(crate) fn trusted(
        source: String,
        dialect: Dialect,
        actions: Vec<Action>,
        deps: Adjacency,
        order: Vec<ActionIdx>,
        by_label: Vec<ActionIdx>,
    ) -> Result<Self, String> {
        let n = actions.len();
        if by_label.len() != n {
            return Err(format!(
                "it lists {n} actions but {} by label",
                by_label.len()
            ));
        }
        if let Some(&k) = by_label.iter().find(|&&k| k as usize >= n) {
            return Err(format!(
                "by_label names action {k}, but the plan has {n} actions"
            ));
        }
        let label = |i: ActionIdx| actions[i as usize].label.as_str();
        if by_label
            .windows(2)
            .any(|pair| label(pair[0]) >= label(pair[1]))
        {
            // Damaged: say whether a label is repeated (what would make lookups ambiguous).
            let mut sorted: Vec<ActionIdx> = (0..n as ActionIdx).collect();
            sorted.sort_unstable_by(|&a, &b| label(a).cmp(label(b)).then(a.cmp(&b)));
            return Err(
                match sorted.windows(2).find(|p| label(p[0]) == label(p[1])) {
                    Some(pair) => format!(
                        "actions[{}] repeats the label \"{}\" of actions[{}]",
                        pair[1],
                        label(pair[0]).escape_debug(),
                        pair[0]
                    ),
                    None => "by_label does not list the actions in label order".to_string(),
                },
            );
        }
        Ok(Plan::new_indexed(
            source, dialect, actions, deps, order, by_label,
        ))
    }

    /// Lets go of `depends_on` and `before` as written, which a plan read back from its store
    /// does not have either: what runs is the resolved dependencies. A run's creator does this
    /// once the plan is stored, so it holds the plan every other process reads back.
    pub(crate) fn forget_edges_as_written(&mut self) {
        self.depends_on = None;
        for action in &mut self.actions {
            if let Some(mut details) = action.details.take() {
                details.before.clear();
                action.details = details.boxed();
            }
        }
    }

    /// The file the plan came from, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The spelling and rules of the file the plan came from.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The actions in file order (indexed by [`ActionIdx`]).
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// What action `idx` depends on (resolved, deduplicated).
    pub fn deps(&self, idx: ActionIdx) -> &[ActionIdx] {
        &self.deps[idx as usize]
    }

    /// What depends on action `idx` directly.
    pub fn dependents(&self, idx: ActionIdx) -> &[ActionIdx] {
        &self.dependents[idx as usize]
    }

    /// A topological order (dependencies first), ties broken by file order.
    pub fn order(&self) -> &[ActionIdx] {
        &self.order
    }

    /// Replaces one param of action `idx` after validation (a `template_file` resolved to the
    /// uploaded `template_url` or an inline `template_body`). The new value is plain text,
    /// never a template, so what the action's templates read is unchanged.
    pub fn replace_param(&mut self, idx: ActionIdx, old: &str, new: &str, value: String) {
        if let Some(Value::Object(params)) =
            self.actions.get_mut(idx as usize).map(|a| &mut a.params)
        {
            params.remove(old);
            params.insert(new.to_string(), Value::String(value));
        }
    }

    /// How many actions.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether the plan has no actions.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The action labelled `label`, if any.
    pub fn find(&self, label: &str) -> Option<ActionIdx> {
        let hint = self.find_hint.get();
        let found = match self.actions.get(hint as usize) {
            Some(action) if action.label == label => Some(hint),
            _ => self
                .by_label
                .binary_search_by(|&i| self.actions[i as usize].label.as_str().cmp(label))
                .ok()
                .map(|at| self.by_label[at]),
        };
        if let Some(idx) = found {
            self.find_hint.set(idx + 1);
        }
        found
    }

    /// Action `idx`. Panics if `idx` is not an index of this plan.
    pub fn action(&self, idx: ActionIdx) -> &Action {
        &self.actions[idx as usize]
    }

    /// Action `idx`'s label. Panics if `idx` is not an index of this plan.
    pub fn label(&self, idx: ActionIdx) -> &str {
        &self.actions[idx as usize].label
    }

    /// `idx` and everything that depends on it, transitively, in topological order.
    pub fn descendants(&self, idx: ActionIdx) -> Vec<ActionIdx> {
        self.closure(idx, &self.dependents)
    }

    /// Everything `idx` depends on, transitively (excluding `idx`).
    pub fn ancestors(&self, idx: ActionIdx) -> Vec<ActionIdx> {
        let mut all = self.closure(idx, &self.deps);
        all.retain(|&a| a != idx);
        all
    }

    fn closure(&self, start: ActionIdx, edges: &Adjacency) -> Vec<ActionIdx> {
        let mut seen = vec![false; self.len()];
        let mut stack = vec![start];
        seen[start as usize] = true;
        while let Some(next) = stack.pop() {
            for &other in &edges[next as usize] {
                if !std::mem::replace(&mut seen[other as usize], true) {
                    stack.push(other);
                }
            }
        }
        self.order
            .iter()
            .copied()
            .filter(|&i| seen[i as usize])
            .collect()
    }

    /// Depth of each action: 0 for roots, else 1 + the deepest dependency.
    pub fn layers(&self) -> Vec<Vec<ActionIdx>> {
        let mut depth = vec![0usize; self.len()];
        let mut layers: Vec<Vec<ActionIdx>> = Vec::new();
        for &idx in &self.order {
            let d = self.deps[idx as usize]
                .iter()
                .map(|&dep| depth[dep as usize] + 1)
                .max()
                .unwrap_or(0);
            depth[idx as usize] = d;
            if layers.len() <= d {
                layers.resize_with(d + 1, Vec::new);
            }
            layers[d].push(idx);
        }
        for layer in &mut layers {
            layer.sort_unstable();
        }
        layers
    }
}

/// The canonical action list. A plan read back from a store no longer has its dependencies
/// as written: they are spelled out as the labels they resolved to, so the list is still an
/// action file that validates to the same plan.
impl Serialize for Plan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.actions.len()))?;
        for idx in 0..self.actions.len() {
            seq.serialize_element(&self.canonical(idx as ActionIdx))?;
        }
        seq.end()
    }
}

impl Plan {
    /// Action `idx` as the canonical list writes it.
    pub(crate) fn canonical(&self, idx: ActionIdx) -> CanonicalAction<'_> {
        let depends_on: Vec<&str> = match &self.depends_on {
            Some(written) => written.list(idx as usize).collect(),
            None => self.deps[idx as usize]
                .iter()
                .map(|&dep| self.label(dep))
                .collect(),
        };
        CanonicalAction {
            action: &self.actions[idx as usize],
            depends_on,
        }
    }
}

/// An action as the canonical list writes it; `depends_on`: as written, or (in a plan read
/// back, which left that out) its dependencies' labels.
pub(crate) struct CanonicalAction<'p> {
    action: &'p Action,
    depends_on: Vec<&'p str>,
}

impl Serialize for CanonicalAction<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let a = self.action;
        map.serialize_entry("label", &a.label)?;
        map.serialize_entry("type", a.action_type.name())?;
        if !self.depends_on.is_empty() {
            map.serialize_entry("depends_on", &self.depends_on)?;
        }
        a.serialize_rest(&mut map)?;
        map.end()
    }
}

impl Action {
    /// The fields after `label`, `type` and `depends_on`, in the canonical order.
    fn serialize_rest<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        if !self.params.is_null() {
            map.serialize_entry("params", &self.params)?;
        }
        if let Some(condition) = &self.details().condition {
            map.serialize_entry("condition", condition)?;
        }
        if let Some(timeout) = self.details().timeout {
            map.serialize_entry("timeout", &format_duration(timeout))?;
        }
        if let Some(retry) = &self.details().retry {
            map.serialize_entry(
                "retry",
                &serde_json::json!({
                    "attempts": retry.attempts,
                    "delay": format_duration(retry.delay),
                    "backoff": retry.backoff,
                }),
            )?;
        }
        if let Some(description) = &self.details().description {
            map.serialize_entry("description", description)?;
        }
        if !self.details().before.is_empty() {
            map.serialize_entry("before", &self.details().before)?;
        }
        if let Some(scope) = &self.details().scope {
            map.serialize_entry("scope", scope)?;
        }
        if !self.save_outputs {
            map.serialize_entry("save_outputs", &false)?;
        }
        if !self.details().hooks.is_empty() {
            let hooks: Vec<Value> = self
                .details()
                .hooks
                .iter()
                .map(LifecycleHook::to_value)
                .collect();
            map.serialize_entry("lifecycle_hooks", &hooks)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan holds one `Action` per action and a run one `ActionState`: at 100k actions every
    /// 8 bytes here are 0.8 MB of a Lambda tick's memory. Grow them knowingly.
    #[test]
    fn per_action_structs_stay_small() {
        assert!(
            std::mem::size_of::<Action>() <= 144,
            "Action is {} B",
            std::mem::size_of::<Action>()
        );
        assert!(
            std::mem::size_of::<crate::state::ActionState>() <= 160,
            "ActionState is {} B",
            std::mem::size_of::<crate::state::ActionState>()
        );
        assert_eq!(std::mem::size_of::<crate::state::Outputs>(), 8);
    }

    #[test]
    fn an_action_without_details_allocates_none() {
        assert!(ActionDetails::default().boxed().is_none());
        let some = ActionDetails {
            scope: Some("build".into()),
            ..ActionDetails::default()
        };
        assert_eq!(some.boxed().map(|d| d.scope), Some(Some("build".into())));
        // Dependencies as written are kept by the plan, not in a box of details per action.
        let plan = crate::testutil::plan(
            r#"[{"label": "a", "type": "system.no_op"},
                {"label": "b", "type": "system.no_op", "depends_on": ["a", "a*"]}]"#,
        );
        assert!(plan.actions().iter().all(|a| a.details.is_none()));
        let b = serde_json::to_value(plan.canonical(1)).expect("json");
        assert_eq!(b["depends_on"], serde_json::json!(["a", "a*"]));
    }

    #[test]
    fn text_lists_hand_back_each_list() {
        let mut lists = TextLists::default();
        lists.push(["a", "bc"]);
        lists.push([]);
        lists.push(["", "d"]);
        let all: Vec<Vec<&str>> = (0..4).map(|i| lists.list(i).collect()).collect();
        assert_eq!(all, [vec!["a", "bc"], vec![], vec!["", "d"], vec![]]);
        assert_eq!(TextLists::default().list(0).len(), 0);
    }
}
