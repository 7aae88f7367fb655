//! The console's state and its only mutator, [`update`]. Everything that happens — keys,
//! mouse, ticks, engine progress, store snapshots — arrives as a [`Msg`]; effects that need IO
//! leave as [`Effect`]s for the runtime to perform, and their results come back as messages.
//! Each screen's keys live beside it: [`super::inspect`], [`super::logview`],
//! [`super::cmdline`]; this module owns the main screen and the dialogs.

use std::cell::RefCell;
use std::sync::Arc;

use baton_core::redact::Secrets;
use baton_core::scheduler::{preview_reexecute, Preview, Reexecute};
use baton_core::state::{ActionState, LogEntry, Timestamp};
use baton_core::{ActionIdx, ActionStatus, Plan, RunState, RunStatus};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent};

use super::cmdline::CommandLine;
use super::eta::EtaCache;
use super::inspect::Inspect;
use super::keymap::{self, Command, Context};
use super::logview::{self, LogView};
use crate::live::{is_news, Tail};
use crate::params::{shown_params, ShownParams};
pub use crate::remote::RemoteInfo;

#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    /// The terminal's new size (columns, rows).
    Resize(u16, u16),
    /// The clock moved (drives elapsed times).
    Tick(Timestamp),
    ActionChanged(ActionIdx, Box<ActionState>),
    Log(Option<ActionIdx>, LogEntry),
    /// A state version from the store (or the engine, as it saved it). One older than the
    /// state the console shows is ignored.
    Snapshot(Box<RunState>, String),
    /// New lines of a running attempt, read from its live log stream.
    Tail(Tail),
    /// This process started driving the run (a re-execute from the console).
    DriverStarted,
    /// The engine driving the run in this process stopped.
    DriverDone(Result<RunStatus, String>),
    /// A message for the status line (e.g. the result of an effect).
    Flash(String),
    /// The Step Functions execution driving a remote run, polled in the background.
    Remote(Box<RemoteInfo>),
    /// baton got a signal (SIGTERM, SIGHUP, …): close the console; the engine, if this
    /// process runs one, is already stopping.
    Stop(baton_core::state::StopCause),
    /// Whether another process on this machine drives the (local) run: `Some(pid)` when it
    /// does (`Some(None)`: its pid is unknown), `None` when nothing does.
    LocalDriver(Option<Option<u32>>),
    /// The ids of the runs in the store, for the command line's completion.
    RunIds(Vec<String>),
}

/// Step Functions' history limit per execution.
pub const HISTORY_LIMIT: u64 = 25_000;

/// How long a status message stays.
pub const FLASH_SECONDS: i64 = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Reexecute(Reexecute),
    Abort,
    /// Abort and stop the remote execution at once.
    AbortHard,
    /// Drive an idle run again: here, or in a new execution for a remote run.
    Resume,
    /// Close this console; [`App::next`] says what the session shows next.
    Quit,
}

/// What the session shows once this console closes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Next {
    #[default]
    Exit,
    Runs,
    Run(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    Layer(usize),
    Action(ActionIdx),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Dag,
    Log,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Dag,
    Timeline,
}

/// The full-screen views over the main screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Main,
    Inspect,
    Log,
}

/// Re-execution choices in the order the dialog offers them.
pub const REEXECUTE_CHOICES: [&str; 3] = ["failed actions", "from", "only"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    Help {
        scroll: usize,
    },
    Reexecute {
        choice: usize,
        /// The action "from" and "only" start at.
        action: Option<ActionIdx>,
        previews: Box<[Option<Preview>; 3]>,
        scroll: usize,
    },
    ConfirmAbort,
    ConfirmQuit,
    /// What the abort that just ended the run stopped, left running, and never started.
    AbortReport,
}

/// Who drives the run, as the header says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driver {
    /// The engine in this process.
    Here,
    /// Another process on this machine holds the run's lock.
    Process(Option<u32>),
    /// A tick holds the run's lease (S3 stores).
    Lease(String),
    /// A Step Functions execution, between ticks.
    Execution(String),
    /// Nothing drives the unfinished run.
    Idle,
    /// The run has finished.
    Finished,
    /// Not known yet.
    Unknown,
}

pub struct App {
    pub plan: Arc<Plan>,
    pub state: RunState,
    /// The secret values the run knows of, masked wherever the console shows a value (an
    /// output with an ordinary name can hold one).
    pub secrets: Secrets,
    pub version: String,
    pub locator: String,
    /// This process drives the run (as opposed to watching it).
    pub driving: bool,
    /// The engine this process started is still running.
    pub driver_active: bool,
    pub read_only: bool,
    pub color: bool,
    pub now: Timestamp,
    /// Engine progress shown since the newest stored version, which does not hold it yet.
    pub unsaved_progress: bool,
    /// The state was read without its log threads (for a fast first frame); a snapshot of
    /// the whole state is on its way.
    pub logs_pending: bool,
    pub layers: Vec<Vec<ActionIdx>>,
    pub collapsed: Vec<bool>,
    /// Visible rows of the DAG pane (derived from plan, filter, folds).
    pub rows: Vec<Row>,
    /// Per layer, how many of its actions the filter lets through.
    pub layer_shown: Vec<usize>,
    /// Actions the filter lets through.
    pub matched: usize,
    pub selected: Option<Row>,
    pub cursor: usize,
    pub offset: usize,
    /// Terminal size, for paging and keeping the cursor in view.
    pub size: (u16, u16),
    pub filter: String,
    /// While the filter is being edited: what it was before (Esc puts it back).
    pub filter_editing: Option<String>,
    pub hide_complete: bool,
    pub focus: Focus,
    pub log: LogView,
    pub view: View,
    pub screen: Screen,
    pub inspect: Inspect,
    pub overlay: Option<Overlay>,
    pub command_line: Option<CommandLine>,
    pub flash: Option<String>,
    pub flash_at: Timestamp,
    pub quit: bool,
    pub next: Next,
    /// Opened from the runs list: Esc on the main screen goes back to it.
    pub from_runs: bool,
    /// Run ids in the store, for completing `:run`.
    pub run_ids: Vec<String>,
    /// Remote runs: the execution driving the run.
    pub remote: Option<RemoteInfo>,
    /// Local runs watched from here: whether another process drives them.
    pub local_driver: Option<Option<Option<u32>>>,
    /// Per log thread (actions, then the run's), lines dropped from its ring while shown.
    pub dropped: Vec<u64>,
    /// Counts the changes to `state` that can change how params render.
    state_generation: u64,
    /// Counts every change to `state` (for the ETA's cache).
    pub(super) progress_generation: u64,
    params: Option<ParamsCache>,
    pub(super) eta: RefCell<Option<EtaCache>>,
}

/// How the console is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppOptions {
    /// Hide every control that changes the run.
    pub read_only: bool,
    pub color: bool,
    /// This process drives the run (as opposed to watching it).
    pub driving: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            read_only: false,
            color: true,
            driving: false,
        }
    }
}

/// The selected action's params as the panes show them. Rendering templates and masking
/// secrets is too much work for every frame: it is redone when the action or the state
/// changes.
struct ParamsCache {
    idx: ActionIdx,
    state_generation: u64,
    /// `None` for an action without params.
    shown: Option<ShownParams>,
}

impl App {
    pub fn new(
        plan: Arc<Plan>,
        state: RunState,
        version: String,
        locator: String,
        now: Timestamp,
        options: AppOptions,
    ) -> Self {
        let layers = plan.layers();
        let collapsed = vec![false; layers.len()];
        let threads = plan.len() + 1;
        let secrets = Secrets::for_run(&plan, &state);
        let mut app = App {
            secrets,
            plan,
            state,
            version,
            locator,
            driving: options.driving,
            driver_active: options.driving,
            read_only: options.read_only,
            color: options.color,
            now,
            unsaved_progress: false,
            logs_pending: false,
            layer_shown: vec![0; layers.len()],
            layers,
            collapsed,
            rows: Vec::new(),
            matched: 0,
            selected: None,
            cursor: 0,
            offset: 0,
            size: (80, 24),
            filter: String::new(),
            filter_editing: None,
            hide_complete: false,
            focus: Focus::Dag,
            log: LogView::default(),
            view: View::Dag,
            screen: Screen::Main,
            inspect: Inspect::default(),
            overlay: None,
            command_line: None,
            flash: None,
            flash_at: now,
            quit: false,
            next: Next::Exit,
            from_runs: false,
            run_ids: Vec::new(),
            remote: None,
            local_driver: None,
            dropped: vec![0; threads],
            state_generation: 0,
            progress_generation: 0,
            params: None,
            eta: RefCell::new(None),
        };
        app.rebuild_rows();
        if let Some(first) = app.rows.iter().position(|r| matches!(r, Row::Action(_))) {
            app.select_row(first);
        }
        app.refresh_params();
        app
    }

    /// Where the operator is, for the keymap.
    pub fn context(&self) -> Context {
        match self.screen {
            Screen::Main => Context::Main,
            Screen::Inspect => Context::Inspect,
            Screen::Log => Context::Log,
        }
    }

    /// Shows a message on the status line; it goes after [`FLASH_SECONDS`].
    pub fn say(&mut self, text: impl Into<String>) {
        self.flash = Some(text.into());
        self.flash_at = self.now;
    }

    /// The params of the action the panes show, rendered and masked; `None` without params.
    pub fn selected_params(&self) -> Option<&ShownParams> {
        let cache = self.params.as_ref()?;
        if Some(cache.idx) != self.shown_action() {
            return None;
        }
        cache.shown.as_ref()
    }

    fn refresh_params(&mut self) {
        let Some(idx) = self.shown_action() else {
            self.params = None;
            return;
        };
        let fresh = self
            .params
            .as_ref()
            .is_some_and(|c| c.idx == idx && c.state_generation == self.state_generation);
        if fresh {
            return;
        }
        let shown = (!self.plan.action(idx).params.is_null())
            .then(|| shown_params(&self.plan, &self.state, idx));
        self.params = Some(ParamsCache {
            idx,
            state_generation: self.state_generation,
            shown,
        });
    }

    pub fn selected_action(&self) -> Option<ActionIdx> {
        match self.selected {
            Some(Row::Action(idx)) => Some(idx),
            _ => None,
        }
    }

    /// The action the panes and views are about: the inspected one, or the selected one.
    pub fn shown_action(&self) -> Option<ActionIdx> {
        match self.screen {
            Screen::Inspect => Some(self.inspect.idx),
            _ => self.selected_action(),
        }
    }

    /// Rows the DAG pane has room for.
    pub fn dag_height(&self) -> usize {
        super::ui::main_areas(self).dag_rows()
    }

    /// Whether action `idx` passes the filter: a prefix of its label (or of a word in it), of
    /// its type (or the type's last part), or of its status.
    pub fn matches(&self, idx: ActionIdx) -> bool {
        let status = self.state.action(idx).status;
        if self.hide_complete && status.satisfies_dependents() {
            return false;
        }
        if self.filter.is_empty() {
            return true;
        }
        let needle = self.filter.to_lowercase();
        let action = self.plan.action(idx);
        let type_name = action.action_type.name();
        word_prefix(&action.label.to_lowercase(), &needle)
            || word_prefix(type_name, &needle)
            || status.as_str().starts_with(&needle)
    }

    /// Recomputes the visible rows, keeping the selection on the same action (or the nearest
    /// row) so refreshes never move it.
    pub fn rebuild_rows(&mut self) {
        let mut rows = Vec::with_capacity(self.plan.len() + self.layers.len());
        let mut matched = 0;
        for depth in 0..self.layers.len() {
            let members: Vec<ActionIdx> = self.layers[depth]
                .iter()
                .copied()
                .filter(|&i| self.matches(i))
                .collect();
            self.layer_shown[depth] = members.len();
            matched += members.len();
            if members.is_empty() {
                continue;
            }
            rows.push(Row::Layer(depth));
            if !self.collapsed[depth] {
                rows.extend(members.into_iter().map(Row::Action));
            }
        }
        self.matched = matched;
        self.rows = rows;
        let position = self
            .selected
            .and_then(|sel| self.rows.iter().position(|r| *r == sel));
        match position {
            Some(p) => self.cursor = p,
            None if self.rows.is_empty() => {
                // "no matches": keep the selection for when the filter lets it through again.
                self.cursor = 0;
            }
            None => {
                // The selected row is gone (filtered or folded): prefer the next action row.
                let from = self.cursor.min(self.rows.len() - 1);
                let action_row = |r: &Row| matches!(r, Row::Action(_));
                self.cursor = self.rows[from..]
                    .iter()
                    .position(action_row)
                    .map(|p| p + from)
                    .or_else(|| self.rows[..from].iter().rposition(action_row))
                    .unwrap_or(from);
                self.selected = self.rows.get(self.cursor).copied();
            }
        }
        self.keep_cursor_visible();
    }

    fn select_row(&mut self, row: usize) {
        if self.rows.is_empty() {
            return;
        }
        self.cursor = row.min(self.rows.len() - 1);
        let before = self.selected;
        self.selected = Some(self.rows[self.cursor]);
        if before != self.selected {
            self.log.top = None;
        }
        self.keep_cursor_visible();
    }

    fn keep_cursor_visible(&mut self) {
        let height = self.dag_height();
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + height {
            self.offset = self.cursor + 1 - height;
        }
        self.offset = self.offset.min(self.rows.len().saturating_sub(height));
    }

    /// Scrolls the DAG so the cursor sits in the middle of the pane.
    fn center_cursor(&mut self) {
        let height = self.dag_height();
        self.offset = self
            .cursor
            .saturating_sub(height / 2)
            .min(self.rows.len().saturating_sub(height));
    }

    /// Selects an action, expanding its layer and clearing a filter that hides it.
    pub fn reveal(&mut self, idx: ActionIdx) {
        if let Some(depth) = self.layers.iter().position(|l| l.contains(&idx)) {
            self.collapsed[depth] = false;
        }
        if !self.matches(idx) {
            self.filter.clear();
            self.hide_complete = false;
        }
        if self.selected != Some(Row::Action(idx)) {
            self.log.top = None;
        }
        self.selected = Some(Row::Action(idx));
        self.rebuild_rows();
        self.refresh_params();
    }

    /// Failures in the order `f` visits them: the root cause (the earliest failed action)
    /// first. Blocked and cancelled actions are consequences (of a failure, of an abort), not
    /// causes.
    pub fn failures(&self) -> Vec<ActionIdx> {
        let mut failed: Vec<ActionIdx> = self
            .plan
            .order()
            .iter()
            .copied()
            .filter(|&i| self.state.action(i).status == ActionStatus::Failed)
            .collect();
        failed.sort_by_key(|&i| (self.state.action(i).finished_at, i));
        failed
    }

    /// The failure to look at first.
    pub fn root_failure(&self) -> Option<ActionIdx> {
        self.failures().first().copied()
    }

    pub fn counts(&self) -> [usize; 7] {
        self.state.counts()
    }

    /// The thread the log shows: an action's, or the run's (`None`).
    pub fn log_thread(&self) -> Option<ActionIdx> {
        match (self.log.run_thread, self.shown_action()) {
            (false, Some(idx)) => Some(idx),
            _ => None,
        }
    }

    /// The log entries the log shows.
    pub fn log_entries(&self) -> &std::collections::VecDeque<LogEntry> {
        match self.log_thread() {
            Some(idx) => &self.state.action(idx).log,
            None => self.state.log(),
        }
    }

    /// Lines dropped from the front of the shown thread since the console opened.
    pub fn log_dropped(&self) -> u64 {
        let slot = self.log_thread().map_or(self.plan.len(), |i| i as usize);
        self.dropped[slot]
    }

    fn previews(&self, here: Option<ActionIdx>) -> Box<[Option<Preview>; 3]> {
        let plan = &self.plan;
        let state = &self.state;
        Box::new([
            Some(preview_reexecute(plan, state, Reexecute::Failed)),
            here.map(|i| preview_reexecute(plan, state, Reexecute::From(i))),
            here.map(|i| preview_reexecute(plan, state, Reexecute::Only(i))),
        ])
    }

    /// Who drives the run.
    pub fn driver(&self) -> Driver {
        if self.state.status().is_finished() && !self.driver_active {
            return Driver::Finished;
        }
        if let Some(lease) = self.state.driver().filter(|lease| lease.until > self.now) {
            return Driver::Lease(lease.holder.clone());
        }
        // A remote run's executions drive it, never this console.
        if let Some(remote) = &self.remote {
            return if remote.running() {
                Driver::Execution(remote.execution.clone())
            } else {
                Driver::Idle
            };
        }
        if self.driver_active {
            return Driver::Here;
        }
        match self.local_driver {
            Some(Some(pid)) => Driver::Process(pid),
            Some(None) => Driver::Idle,
            None if self.driving => Driver::Idle,
            None => Driver::Unknown,
        }
    }

    /// The time the run's clocks stop at: now while someone may drive it, its last save
    /// otherwise (a run nobody drives must not look alive).
    pub fn clock(&self) -> Timestamp {
        match self.driver() {
            Driver::Idle | Driver::Finished => self.state.updated_at().max(
                self.state
                    .actions()
                    .iter()
                    .filter_map(|a| a.finished_at)
                    .max()
                    .unwrap_or_else(|| self.state.updated_at()),
            ),
            _ => self.now,
        }
    }
}

/// Whether `needle` starts `text` or one of its words (after `-`, `_`, `.`, `/`, a space).
fn word_prefix(text: &str, needle: &str) -> bool {
    text.starts_with(needle)
        || text
            .match_indices(['-', '_', '.', '/', ' '])
            .any(|(i, sep)| text[i + sep.len()..].starts_with(needle))
}

/// The only place app state changes.
pub fn update(app: &mut App, msg: Msg) -> Vec<Effect> {
    let was_finished = app.state.status().is_finished();
    let effects = on_message(app, msg);
    // An abort that ends the run while the console watches (from here or from anywhere) is
    // followed by its report.
    if !was_finished && app.state.status() == RunStatus::Aborted && app.overlay.is_none() {
        app.overlay = Some(Overlay::AbortReport);
    }
    app.refresh_params();
    effects
}

fn on_message(app: &mut App, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Key(key) => return on_key(app, key),
        Msg::Mouse(mouse) => return super::mouse::on_mouse(app, mouse),
        Msg::Resize(w, h) => {
            app.size = (w, h);
            app.keep_cursor_visible();
        }
        Msg::Tick(now) => {
            app.now = now;
            if (now - app.flash_at).num_seconds() >= FLASH_SECONDS {
                app.flash = None;
            }
        }
        Msg::ActionChanged(idx, action) => on_action_changed(app, idx, *action),
        Msg::Log(idx, entry) => {
            mirror_line(app, idx, entry);
            app.unsaved_progress = true;
        }
        Msg::Snapshot(state, version) => on_snapshot(app, *state, version),
        Msg::Tail(tail) => on_tail(app, tail),
        Msg::DriverStarted => {
            app.driving = true;
            app.driver_active = true;
        }
        Msg::DriverDone(result) => {
            app.driver_active = false;
            app.say(match result {
                Ok(status) => format!("run {status}"),
                Err(error) => format!("engine stopped: {error}"),
            });
        }
        Msg::Flash(text) => app.say(text),
        Msg::Remote(info) => app.remote = Some(*info),
        Msg::Stop(cause) => {
            app.flash = Some(format!("{cause}: closing"));
            app.quit = true;
            return vec![Effect::Quit];
        }
        Msg::LocalDriver(holder) => app.local_driver = Some(holder),
        Msg::RunIds(ids) => app.run_ids = ids,
    }
    Vec::new()
}

/// Adds a line to a thread, counting the line its ring drops.
fn mirror_line(app: &mut App, idx: Option<ActionIdx>, entry: LogEntry) {
    let thread = |state: &RunState| match idx {
        Some(i) => state.action(i).log.len(),
        None => state.log().len(),
    };
    let before = thread(&app.state);
    app.state.mirror_log(idx, entry);
    if thread(&app.state) == before {
        let slot = idx.map_or(app.plan.len(), |i| i as usize);
        app.dropped[slot] += 1;
    }
}

fn on_snapshot(app: &mut App, mut state: RunState, version: String) {
    if is_stale(app, &state, &version) {
        return;
    }
    let kept = keep_shown_lines(&app.state, &mut state);
    count_dropped(app, &state);
    app.secrets = Secrets::for_run(&app.plan, &state);
    app.state = state;
    app.version = version;
    app.unsaved_progress = kept;
    app.logs_pending = false;
    app.state_generation += 1;
    app.progress_generation += 1;
    app.rebuild_rows();
}

/// Lines a snapshot no longer holds at the front of a thread were dropped from its ring (a
/// new attempt starts its count again).
fn count_dropped(app: &mut App, next: &RunState) {
    let threads = app
        .state
        .actions()
        .iter()
        .zip(next.actions())
        .map(|(before, after)| (&before.log, &after.log, before.attempt == after.attempt))
        .chain(std::iter::once((app.state.log(), next.log(), true)));
    for (slot, (before, after, same_attempt)) in threads.enumerate() {
        if !same_attempt {
            app.dropped[slot] = 0;
            continue;
        }
        let Some(first) = after.front() else { continue };
        if before.front() == Some(first) {
            continue;
        }
        let gone = before
            .iter()
            .position(|e| e == first)
            .unwrap_or(before.len());
        app.dropped[slot] += gone as u64;
    }
}

/// Whether a snapshot is older than what the console shows. The store poller can load a
/// version just before the engine in this process hands over a newer one (and its lines), and
/// deliver it after. Local versions are numbered; S3's are opaque, but every tick counts an
/// invocation and stamps each save, and an operator's change keeps the stamp of the version it
/// changed, so (invocations, saved at) never goes back along a run's versions.
fn is_stale(app: &App, state: &RunState, version: &str) -> bool {
    if version == app.version {
        // The same version again: the console has it, and maybe progress since.
        return app.unsaved_progress;
    }
    match (version.parse::<u64>(), app.version.parse::<u64>()) {
        (Ok(new), Ok(shown)) => new < shown,
        _ => {
            (state.invocations(), state.updated_at())
                < (app.state.invocations(), app.state.updated_at())
        }
    }
}

/// Lines the console shows that a newer snapshot does not hold yet (the engine's or a live
/// stream's, newer than that save) stay shown. Returns whether any did.
fn keep_shown_lines(shown: &RunState, next: &mut RunState) -> bool {
    let mut kept = Vec::new();
    for (idx, (before, after)) in shown.actions().iter().zip(next.actions()).enumerate() {
        if before.attempt != after.attempt {
            continue;
        }
        let news = before
            .log
            .iter()
            .rev()
            .take_while(|entry| is_news(after.log.iter(), entry))
            .count();
        let from = before.log.len() - news;
        kept.extend(
            before
                .log
                .range(from..)
                .map(|entry| (idx as ActionIdx, entry.clone())),
        );
    }
    let any = !kept.is_empty();
    for (idx, entry) in kept {
        next.mirror_log(Some(idx), entry);
    }
    any
}

/// Lines from a live stream join the action's thread unless it holds them already (a save
/// brought them) or the action has moved on to another attempt.
fn on_tail(app: &mut App, tail: Tail) {
    if app.state.action(tail.idx).attempt != tail.attempt {
        return;
    }
    for entry in tail.entries {
        if is_news(app.state.action(tail.idx).log.iter(), &entry) {
            mirror_line(app, Some(tail.idx), entry);
            app.unsaved_progress = true;
        }
    }
}

fn on_action_changed(app: &mut App, idx: ActionIdx, action: ActionState) {
    let before = app.state.action(idx);
    let status_changed = before.status != action.status;
    // Params render from statuses and outputs only.
    if status_changed || before.outputs != action.outputs {
        app.state_generation += 1;
        app.secrets.learn_map(&action.outputs);
    }
    if before.attempt != action.attempt {
        app.dropped[idx as usize] = 0;
    }
    app.progress_generation += 1;
    app.state.mirror_action(idx, action);
    if status_changed && (app.hide_complete || !app.filter.is_empty()) {
        app.rebuild_rows();
    }
    app.unsaved_progress = true;
}

fn is_ctrl_c(key: &KeyEvent) -> bool {
    key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL)
}

fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    if app.command_line.is_some() {
        return super::cmdline::on_key(app, key);
    }
    if app.filter_editing.is_some() {
        if is_ctrl_c(&key) {
            app.filter_editing = None;
            return run_command(app, Command::Quit, None);
        }
        on_filter_key(app, key);
        return Vec::new();
    }
    if app.log.search_editing.is_some() {
        if is_ctrl_c(&key) {
            app.log.search_editing = None;
            return run_command(app, Command::Quit, None);
        }
        logview::on_search_key(app, key);
        return Vec::new();
    }
    if let Some(overlay) = app.overlay.take() {
        return on_overlay_key(app, overlay, key);
    }
    match keymap::lookup(&key, app.context()) {
        Some(binding) => run_command(app, binding.command, None),
        None => Vec::new(),
    }
}

fn on_filter_key(app: &mut App, key: KeyEvent) {
    match key.code {
        KeyCode::Esc => {
            app.filter = app.filter_editing.take().unwrap_or_default();
        }
        KeyCode::Enter => app.filter_editing = None,
        KeyCode::Backspace => {
            app.filter.pop();
        }
        KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => app.filter.clear(),
        KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => app.filter.push(c),
        _ => return,
    }
    app.rebuild_rows();
}

/// Runs a command, from a key or the command line (`arg` is what followed its name).
pub fn run_command(app: &mut App, command: Command, arg: Option<&str>) -> Vec<Effect> {
    let mutates = keymap::KEYMAP
        .iter()
        .any(|b| b.command == command && b.mutates);
    if mutates && app.read_only {
        app.say("read-only: this console cannot change the run");
        return Vec::new();
    }
    match app.screen {
        Screen::Inspect if super::inspect::handles(command) => {
            return super::inspect::on_command(app, command)
        }
        Screen::Log if logview::handles(command) => return logview::on_command(app, command, arg),
        _ => {}
    }
    match command {
        Command::Up
        | Command::Down
        | Command::PageUp
        | Command::PageDown
        | Command::Top
        | Command::Bottom => move_cursor(app, command),
        Command::Open => open(app),
        Command::Expand | Command::Collapse => fold(app, command),
        Command::Filter => start_filter(app, arg),
        Command::HideComplete => {
            app.hide_complete = !app.hide_complete;
            app.rebuild_rows();
        }
        Command::NextFailure => jump_to_failure(app, true),
        Command::PreviousFailure => jump_to_failure(app, false),
        Command::NextRunning => jump_to_running(app),
        Command::SwitchPane
        | Command::RunLog
        | Command::Timestamps
        | Command::Timeline
        | Command::FullLog => switch_view(app, command),
        Command::Search
        | Command::NextMatch
        | Command::PreviousMatch
        | Command::Wrap
        | Command::Follow => return logview::on_command(app, command, arg),
        Command::CommandLine => app.command_line = Some(CommandLine::default()),
        Command::Help => app.overlay = Some(Overlay::Help { scroll: 0 }),
        Command::Back => return back(app),
        Command::Reexecute => open_reexecute(app, arg),
        Command::Resume => return resume(app),
        Command::Abort => {
            if app.state.status().is_finished() {
                app.say(format!("the run has already {}", app.state.status()));
            } else {
                app.overlay = Some(Overlay::ConfirmAbort);
            }
        }
        Command::Runs => return leave(app, Next::Runs),
        Command::OpenRun => match arg.map(str::trim).filter(|a| !a.is_empty()) {
            Some(id) => return leave(app, Next::Run(id.to_string())),
            None => app.say("which run? :run <id> (Tab completes)"),
        },
        Command::Quit => return quit(app),
    }
    Vec::new()
}

fn quit(app: &mut App) -> Vec<Effect> {
    app.next = Next::Exit;
    if !app.driver_active {
        app.quit = true;
        return vec![Effect::Quit];
    }
    app.overlay = Some(Overlay::ConfirmQuit);
    Vec::new()
}

/// Closes this console for another screen of the session.
fn leave(app: &mut App, next: Next) -> Vec<Effect> {
    if app.driver_active {
        app.say("this console drives the run: wait for it to end, or quit (q)");
        return Vec::new();
    }
    app.next = next;
    app.quit = true;
    vec![Effect::Quit]
}

/// Esc: back out one level.
fn back(app: &mut App) -> Vec<Effect> {
    match app.screen {
        Screen::Inspect | Screen::Log => {
            app.screen = super::inspect::back_from(app);
            return Vec::new();
        }
        Screen::Main => {}
    }
    if app.view == View::Timeline {
        app.view = View::Dag;
    } else if app.focus == Focus::Log {
        app.focus = Focus::Dag;
    } else if !app.filter.is_empty() || app.hide_complete {
        app.filter.clear();
        app.hide_complete = false;
        app.rebuild_rows();
    } else if app.flash.is_some() {
        app.flash = None;
    } else if app.from_runs {
        return leave(app, Next::Runs);
    }
    Vec::new()
}

fn start_filter(app: &mut App, arg: Option<&str>) {
    match arg {
        Some(expr) => {
            app.filter = expr.trim().to_string();
            app.filter_editing = None;
        }
        None => app.filter_editing = Some(app.filter.clone()),
    }
    app.rebuild_rows();
}

/// Enter on the main screen: fold a layer, inspect an action, or open the log full screen.
fn open(app: &mut App) {
    if app.focus == Focus::Log {
        app.screen = Screen::Log;
        return;
    }
    match app.selected {
        Some(Row::Layer(depth)) => {
            app.collapsed[depth] = !app.collapsed[depth];
            app.rebuild_rows();
        }
        Some(Row::Action(idx)) if !app.rows.is_empty() => super::inspect::open(app, idx),
        _ => {}
    }
}

/// Moves the DAG cursor, or scrolls the log while it has the focus.
fn move_cursor(app: &mut App, command: Command) {
    if app.focus == Focus::Log && app.view == View::Dag {
        let height = super::ui::main_areas(app).log_rows();
        logview::scroll(app, command, height);
        return;
    }
    let page = app.dag_height().saturating_sub(1).max(1);
    let row = match command {
        Command::Up => app.cursor.saturating_sub(1),
        Command::Down => app.cursor + 1,
        Command::PageUp => app.cursor.saturating_sub(page),
        Command::PageDown => app.cursor + page,
        Command::Top => 0,
        Command::Bottom => usize::MAX,
        _ => app.cursor,
    };
    app.select_row(row);
}

/// Expands the selected layer, or collapses the layer of the selected row.
fn fold(app: &mut App, command: Command) {
    if command == Command::Expand {
        if let Some(Row::Layer(depth)) = app.selected {
            app.collapsed[depth] = false;
            app.rebuild_rows();
        }
        return;
    }
    let depth = match app.selected {
        Some(Row::Layer(depth)) => Some(depth),
        Some(Row::Action(idx)) => app.layers.iter().position(|l| l.contains(&idx)),
        None => None,
    };
    if let Some(depth) = depth {
        app.collapsed[depth] = true;
        app.selected = Some(Row::Layer(depth));
        app.rebuild_rows();
    }
}

/// `f` / `F`: the next (previous) failure after the selected one, root cause first, centred.
fn jump_to_failure(app: &mut App, forward: bool) {
    let failures = app.failures();
    if failures.is_empty() {
        let cancelled = app.state.count(ActionStatus::Cancelled);
        app.say(if cancelled > 0 {
            format!("no failures ({cancelled} cancelled by the abort)")
        } else {
            "no failures".to_string()
        });
        return;
    }
    let at = app
        .selected_action()
        .and_then(|s| failures.iter().position(|&f| f == s));
    let n = failures.len();
    let next = match (at, forward) {
        (None, true) => 0,
        (None, false) => n - 1,
        (Some(i), true) => (i + 1) % n,
        (Some(i), false) => (i + n - 1) % n,
    };
    let target = failures[next];
    app.reveal(target);
    app.center_cursor();
    app.say(format!("failure {} of {n}", next + 1));
}

/// Selects the next running action after the cursor, wrapping around.
fn jump_to_running(app: &mut App) {
    let is_running = |row: &Row| match row {
        Row::Action(i) => app.state.action(*i).status == ActionStatus::Running,
        Row::Layer(_) => false,
    };
    let after = app.rows.iter().skip(app.cursor + 1).find(|r| is_running(r));
    match after
        .or_else(|| app.rows.iter().find(|r| is_running(r)))
        .copied()
    {
        Some(Row::Action(idx)) => {
            app.reveal(idx);
            app.center_cursor();
        }
        _ => app.say("nothing is running"),
    }
}

fn switch_view(app: &mut App, command: Command) {
    match command {
        Command::SwitchPane => {
            app.focus = if app.focus == Focus::Dag {
                Focus::Log
            } else {
                Focus::Dag
            };
        }
        Command::RunLog => logview::cycle_thread(app),
        Command::Timestamps => app.log.timestamps = !app.log.timestamps,
        Command::Timeline => {
            app.view = if app.view == View::Dag {
                View::Timeline
            } else {
                View::Dag
            }
        }
        Command::FullLog => app.screen = Screen::Log,
        _ => {}
    }
}

/// `R`: drive an idle run again.
fn resume(app: &mut App) -> Vec<Effect> {
    match app.driver() {
        Driver::Idle => {
            app.say("resuming…");
            vec![Effect::Resume]
        }
        Driver::Finished => {
            app.say(format!(
                "the run has already {}: re-execute with r",
                app.state.status()
            ));
            Vec::new()
        }
        _ => {
            app.say("the run is being driven: nothing to resume");
            Vec::new()
        }
    }
}

/// `r` or `:retry [failed | from LABEL | only LABEL]`: the preview dialog.
fn open_reexecute(app: &mut App, arg: Option<&str>) {
    if app.driver_active || app.state.count(ActionStatus::Running) > 0 {
        app.say("actions are still running: wait for them, or abort (a) first");
        return;
    }
    let mut action = app.shown_action();
    let mut choice = None;
    let words: Vec<&str> = arg.unwrap_or_default().split_whitespace().collect();
    match words.as_slice() {
        [] => {}
        ["failed"] => choice = Some(0),
        [mode @ ("from" | "only"), label] => match app.plan.find(label) {
            Some(idx) => {
                action = Some(idx);
                choice = Some(if *mode == "from" { 1 } else { 2 });
            }
            None => {
                app.say(format!("no action labelled \"{label}\""));
                return;
            }
        },
        _ => {
            app.say(":retry failed | from <label> | only <label>");
            return;
        }
    }
    let previews = app.previews(action);
    let choice = choice.unwrap_or_else(|| {
        previews
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| !p.will_run.is_empty()))
            .unwrap_or(0)
    });
    app.overlay = Some(Overlay::Reexecute {
        choice,
        action,
        previews,
        scroll: 0,
    });
}

fn on_overlay_key(app: &mut App, overlay: Overlay, key: KeyEvent) -> Vec<Effect> {
    let ctrl_c = is_ctrl_c(&key);
    let yes = matches!(key.code, KeyCode::Char('y') | KeyCode::Enter);
    let no = !ctrl_c
        && matches!(
            key.code,
            KeyCode::Char('n') | KeyCode::Esc | KeyCode::Char('q')
        );
    match overlay {
        Overlay::Help { scroll } => {
            if let Some(scroll) = scrolled(scroll, &key) {
                app.overlay = Some(Overlay::Help { scroll });
            } else if ctrl_c {
                return quit(app);
            }
        }
        Overlay::ConfirmQuit if yes || ctrl_c => {
            app.quit = true;
            return vec![Effect::Quit];
        }
        Overlay::AbortReport => {}
        Overlay::ConfirmAbort if yes => return vec![Effect::Abort],
        Overlay::ConfirmAbort if key.code == KeyCode::Char('h') && app.remote.is_some() => {
            return vec![Effect::AbortHard]
        }
        Overlay::ConfirmAbort if ctrl_c => return quit(app),
        Overlay::ConfirmAbort | Overlay::ConfirmQuit if no => {}
        Overlay::Reexecute {
            choice,
            action,
            previews,
            scroll,
        } => {
            if ctrl_c {
                return quit(app);
            }
            return on_reexecute_key(app, choice, action, previews, scroll, key);
        }
        // Any other key leaves a confirmation open: only y/n decide.
        other => app.overlay = Some(other),
    }
    Vec::new()
}

/// The new scroll position for a scrolling key, or `None` for any other key.
fn scrolled(scroll: usize, key: &KeyEvent) -> Option<usize> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::Up | KeyCode::Char('k') => scroll.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => scroll + 1,
        KeyCode::PageUp => scroll.saturating_sub(10),
        KeyCode::Char('u') if ctrl => scroll.saturating_sub(10),
        KeyCode::PageDown => scroll + 10,
        KeyCode::Char('d') if ctrl => scroll + 10,
        KeyCode::Home | KeyCode::Char('g') => 0,
        _ => return None,
    })
}

fn on_reexecute_key(
    app: &mut App,
    choice: usize,
    action: Option<ActionIdx>,
    previews: Box<[Option<Preview>; 3]>,
    scroll: usize,
    key: KeyEvent,
) -> Vec<Effect> {
    let yes = matches!(key.code, KeyCode::Char('y') | KeyCode::Enter);
    let no = matches!(
        key.code,
        KeyCode::Char('n') | KeyCode::Esc | KeyCode::Char('q')
    );
    let chosen = previews[choice]
        .as_ref()
        .is_some_and(|p| !p.will_run.is_empty());
    let reopen = |choice: usize, scroll: usize| {
        Some(Overlay::Reexecute {
            choice,
            action,
            previews: previews.clone(),
            scroll,
        })
    };
    app.overlay = match key.code {
        KeyCode::Left | KeyCode::Char('h') | KeyCode::BackTab => reopen((choice + 2) % 3, 0),
        KeyCode::Right | KeyCode::Char('l') | KeyCode::Tab => reopen((choice + 1) % 3, 0),
        KeyCode::Char(c @ '1'..='3') => reopen(c as usize - '1' as usize, 0),
        _ if yes && chosen => {
            let mode = match (choice, action) {
                (1, Some(idx)) => Reexecute::From(idx),
                (2, Some(idx)) => Reexecute::Only(idx),
                _ => Reexecute::Failed,
            };
            return vec![Effect::Reexecute(mode)];
        }
        _ if no => None,
        _ => reopen(choice, scrolled(scroll, &key).unwrap_or(scroll)),
    };
    Vec::new()
}
