//! The console's state and its only mutator, [`update`]. Everything that happens — keys,
//! ticks, engine progress, store snapshots — arrives as a [`Msg`]; effects that need IO leave
//! as [`Effect`]s for the runtime to perform, and their results come back as messages.

use std::sync::Arc;

use baton_core::scheduler::{preview_reexecute, Preview, Reexecute};
use baton_core::state::{ActionState, LogEntry, Timestamp};
use baton_core::{ActionIdx, ActionStatus, Plan, RunState, RunStatus};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::keymap::{self, Command};
use crate::live::{is_news, Tail};
use crate::params::{shown_params, ShownParams};
pub use crate::remote::RemoteInfo;

#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
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
}

/// Step Functions' history limit per execution.
pub const HISTORY_LIMIT: u64 = 25_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Reexecute(Reexecute),
    Abort,
    /// Abort and stop the remote execution at once.
    AbortHard,
    Quit,
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

/// Re-execution choices in the order the dialog offers them.
pub const REEXECUTE_CHOICES: [&str; 3] = ["failed actions", "from here", "only this"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    Help,
    Reexecute {
        choice: usize,
        previews: Box<[Option<Preview>; 3]>,
    },
    ConfirmAbort,
    ConfirmQuit,
    /// What the abort that just ended the run stopped, left running, and never started.
    AbortReport,
}

#[derive(Debug, Clone, Default)]
pub struct LogView {
    /// Lines scrolled up from the tail; 0 follows the tail.
    pub back: usize,
    pub run_thread: bool,
    /// Remote runs: the execution's newest history events instead of a log thread.
    pub history: bool,
    pub timestamps: bool,
}

pub struct App {
    pub plan: Arc<Plan>,
    pub state: RunState,
    pub version: String,
    pub locator: String,
    /// This process drives the run (as opposed to watching it).
    pub driving: bool,
    /// The engine this process started is still running.
    pub driver_active: bool,
    pub read_only: bool,
    pub color: bool,
    pub now: Timestamp,
    pub last_updated: Timestamp,
    /// Engine progress shown since the newest stored version, which does not hold it yet.
    pub unsaved_progress: bool,
    pub layers: Vec<Vec<ActionIdx>>,
    pub collapsed: Vec<bool>,
    /// Visible rows of the DAG pane (derived from plan, filter, folds).
    pub rows: Vec<Row>,
    pub selected: Option<Row>,
    pub cursor: usize,
    pub offset: usize,
    /// Terminal size, for paging and keeping the cursor in view.
    pub size: (u16, u16),
    pub filter: String,
    pub filter_editing: bool,
    pub hide_complete: bool,
    pub focus: Focus,
    pub log: LogView,
    pub view: View,
    pub overlay: Option<Overlay>,
    pub flash: Option<String>,
    pub quit: bool,
    /// Remote runs: the execution driving the run.
    pub remote: Option<RemoteInfo>,
    /// Counts the changes to `state` that can change how params render.
    state_generation: u64,
    params: Option<ParamsCache>,
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

/// The selected action's params as the detail pane shows them. Rendering templates and
/// masking secrets is too much work for every frame: it is redone when the selection or the
/// state changes.
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
        let mut app = App {
            plan,
            state,
            version,
            locator,
            driving: options.driving,
            driver_active: options.driving,
            read_only: options.read_only,
            color: options.color,
            now,
            last_updated: now,
            unsaved_progress: false,
            layers,
            collapsed,
            rows: Vec::new(),
            selected: None,
            cursor: 0,
            offset: 0,
            size: (80, 24),
            filter: String::new(),
            filter_editing: false,
            hide_complete: false,
            focus: Focus::Dag,
            log: LogView::default(),
            view: View::Dag,
            overlay: None,
            flash: None,
            quit: false,
            remote: None,
            state_generation: 0,
            params: None,
        };
        app.rebuild_rows();
        if let Some(first) = app.rows.iter().position(|r| matches!(r, Row::Action(_))) {
            app.select_row(first);
        }
        app.refresh_params();
        app
    }

    /// The selected action's params, rendered and masked; `None` without params.
    pub fn selected_params(&self) -> Option<&ShownParams> {
        let cache = self.params.as_ref()?;
        if Some(cache.idx) != self.selected_action() {
            return None;
        }
        cache.shown.as_ref()
    }

    fn refresh_params(&mut self) {
        let Some(idx) = self.selected_action() else {
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

    /// Rows the DAG pane has room for (header 3 lines, borders, footer).
    pub fn dag_height(&self) -> usize {
        usize::from(self.size.1.saturating_sub(6)).max(1)
    }

    fn matches(&self, idx: ActionIdx) -> bool {
        let status = self.state.action(idx).status;
        if self.hide_complete && status.satisfies_dependents() {
            return false;
        }
        if self.filter.is_empty() {
            return true;
        }
        let needle = self.filter.to_lowercase();
        let action = self.plan.action(idx);
        action.label.to_lowercase().contains(&needle)
            || action.action_type.name().contains(&needle)
            || status.as_str() == needle
    }

    /// Recomputes the visible rows, keeping the selection on the same action (or the nearest
    /// row) so refreshes never move it.
    pub fn rebuild_rows(&mut self) {
        let mut rows = Vec::with_capacity(self.plan.len() + self.layers.len());
        for (depth, layer) in self.layers.iter().enumerate() {
            let members: Vec<ActionIdx> =
                layer.iter().copied().filter(|&i| self.matches(i)).collect();
            if members.is_empty() {
                continue;
            }
            rows.push(Row::Layer(depth));
            if !self.collapsed[depth] {
                rows.extend(members.into_iter().map(Row::Action));
            }
        }
        self.rows = rows;
        let position = self
            .selected
            .and_then(|sel| self.rows.iter().position(|r| *r == sel));
        match position {
            Some(p) => self.cursor = p,
            None => {
                // The selected row is gone (filtered or folded): prefer the next action row.
                let from = self.cursor.min(self.rows.len().saturating_sub(1));
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
            self.selected = None;
            self.cursor = 0;
            return;
        }
        self.cursor = row.min(self.rows.len() - 1);
        self.selected = Some(self.rows[self.cursor]);
        self.log.back = 0;
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

    /// Selects an action, expanding its layer and clearing a filter that hides it.
    pub fn reveal(&mut self, idx: ActionIdx) {
        if let Some(depth) = self.layers.iter().position(|l| l.contains(&idx)) {
            self.collapsed[depth] = false;
        }
        if !self.matches(idx) {
            self.filter.clear();
            self.hide_complete = false;
        }
        self.selected = Some(Row::Action(idx));
        self.rebuild_rows();
        self.log.back = 0;
        self.refresh_params();
    }

    /// The failure to look at first: the earliest failed action (blocked ones are consequences).
    pub fn root_failure(&self) -> Option<ActionIdx> {
        let failed = |s: ActionStatus| matches!(s, ActionStatus::Failed | ActionStatus::Cancelled);
        self.plan
            .order()
            .iter()
            .copied()
            .filter(|&i| failed(self.state.action(i).status))
            .min_by_key(|&i| (self.state.action(i).finished_at, i))
    }

    pub fn counts(&self) -> [usize; 7] {
        self.state.counts()
    }

    /// The log entries the log pane shows.
    pub fn log_entries(&self) -> impl DoubleEndedIterator<Item = &LogEntry> + ExactSizeIterator {
        match (self.log.run_thread, self.selected_action()) {
            (false, Some(idx)) => self.state.action(idx).log.iter(),
            _ => self.state.log().iter(),
        }
    }

    fn previews(&self) -> Box<[Option<Preview>; 3]> {
        let plan = &self.plan;
        let state = &self.state;
        let here = self.selected_action();
        Box::new([
            Some(preview_reexecute(plan, state, Reexecute::Failed)),
            here.map(|i| preview_reexecute(plan, state, Reexecute::From(i))),
            here.map(|i| preview_reexecute(plan, state, Reexecute::Only(i))),
        ])
    }
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
        Msg::Resize(w, h) => {
            app.size = (w, h);
            app.keep_cursor_visible();
        }
        Msg::Tick(now) => app.now = now,
        Msg::ActionChanged(idx, action) => on_action_changed(app, idx, *action),
        Msg::Log(idx, entry) => {
            app.state.mirror_log(idx, entry);
            app.last_updated = app.now;
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
            app.flash = Some(match result {
                Ok(status) => format!("run {status}"),
                Err(error) => format!("engine stopped: {error}"),
            });
        }
        Msg::Flash(text) => app.flash = Some(text),
        Msg::Remote(info) => app.remote = Some(*info),
        Msg::Stop(cause) => {
            app.flash = Some(format!("{cause}: closing"));
            app.quit = true;
            return vec![Effect::Quit];
        }
    }
    Vec::new()
}

fn on_snapshot(app: &mut App, mut state: RunState, version: String) {
    if is_stale(app, &state, &version) {
        return;
    }
    let kept = keep_shown_lines(&app.state, &mut state);
    app.state = state;
    app.version = version;
    app.last_updated = app.now;
    app.unsaved_progress = kept;
    app.state_generation += 1;
    app.rebuild_rows();
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
    let mut added = false;
    for entry in tail.entries {
        if is_news(app.state.action(tail.idx).log.iter(), &entry) {
            app.state.mirror_log(Some(tail.idx), entry);
            added = true;
        }
    }
    if added {
        app.last_updated = app.now;
        app.unsaved_progress = true;
    }
}

fn on_action_changed(app: &mut App, idx: ActionIdx, action: ActionState) {
    let before = app.state.action(idx);
    let status_changed = before.status != action.status;
    // Params render from statuses and outputs only.
    if status_changed || before.outputs != action.outputs {
        app.state_generation += 1;
    }
    app.state.mirror_action(idx, action);
    if status_changed && (app.hide_complete || !app.filter.is_empty()) {
        app.rebuild_rows();
    }
    app.last_updated = app.now;
    app.unsaved_progress = true;
}

fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    if app.filter_editing {
        on_filter_key(app, key);
        return Vec::new();
    }
    if let Some(overlay) = app.overlay.take() {
        return on_overlay_key(app, overlay, key);
    }
    if key.code == KeyCode::Esc {
        app.flash = None;
        if !app.filter.is_empty() {
            app.filter.clear();
            app.rebuild_rows();
        }
        return Vec::new();
    }
    match keymap::lookup(&key, app.read_only) {
        Some(command) => on_command(app, command),
        None => Vec::new(),
    }
}

fn on_filter_key(app: &mut App, key: KeyEvent) {
    match key.code {
        KeyCode::Esc => {
            app.filter.clear();
            app.filter_editing = false;
        }
        KeyCode::Enter => app.filter_editing = false,
        KeyCode::Backspace => {
            app.filter.pop();
        }
        KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => app.filter.push(c),
        _ => return,
    }
    app.rebuild_rows();
}

fn on_command(app: &mut App, command: Command) -> Vec<Effect> {
    match command {
        Command::Up
        | Command::Down
        | Command::PageUp
        | Command::PageDown
        | Command::Top
        | Command::Bottom => move_cursor(app, command),
        Command::Expand | Command::Collapse => fold(app, command),
        Command::Filter => {
            app.filter_editing = true;
            app.filter.clear();
            app.rebuild_rows();
        }
        Command::HideComplete => {
            app.hide_complete = !app.hide_complete;
            app.rebuild_rows();
        }
        Command::JumpFailure => jump_to_failure(app),
        Command::NextRunning => jump_to_running(app),
        Command::SwitchPane | Command::RunLog | Command::Timestamps | Command::Timeline => {
            switch_view(app, command)
        }
        Command::Help => app.overlay = Some(Overlay::Help),
        Command::Reexecute => open_reexecute(app),
        Command::Abort => {
            if app.state.status().is_finished() {
                app.flash = Some(format!("the run has already {}", app.state.status()));
            } else {
                app.overlay = Some(Overlay::ConfirmAbort);
            }
        }
        Command::Quit => {
            if !app.driver_active {
                app.quit = true;
                return vec![Effect::Quit];
            }
            app.overlay = Some(Overlay::ConfirmQuit);
        }
    }
    Vec::new()
}

/// Moves the DAG cursor, or scrolls the log while it has the focus.
fn move_cursor(app: &mut App, command: Command) {
    let page = app.dag_height().saturating_sub(1).max(1);
    if app.focus == Focus::Log {
        let log_max = app.log_entries().len().saturating_sub(1);
        let back = app.log.back;
        app.log.back = match command {
            Command::Up => (back + 1).min(log_max),
            Command::Down => back.saturating_sub(1),
            Command::PageUp => (back + page).min(log_max),
            Command::PageDown => back.saturating_sub(page),
            Command::Top => log_max,
            Command::Bottom => 0,
            _ => back,
        };
        return;
    }
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

fn jump_to_failure(app: &mut App) {
    match app.root_failure() {
        Some(idx) => {
            app.reveal(idx);
            app.flash = None;
        }
        None => app.flash = Some("no failures".into()),
    }
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
        Some(Row::Action(idx)) => app.reveal(idx),
        _ => app.flash = Some("nothing is running".into()),
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
        Command::RunLog => {
            // Cycles: the action's thread → the run's → (remote) the execution's history.
            (app.log.run_thread, app.log.history) = match (app.log.run_thread, app.log.history) {
                (false, _) => (true, false),
                (true, false) if app.remote.is_some() => (true, true),
                _ => (false, false),
            };
            app.log.back = 0;
        }
        Command::Timestamps => app.log.timestamps = !app.log.timestamps,
        Command::Timeline => {
            app.view = if app.view == View::Dag {
                View::Timeline
            } else {
                View::Dag
            }
        }
        _ => {}
    }
}

fn open_reexecute(app: &mut App) {
    if app.driver_active || app.state.count(ActionStatus::Running) > 0 {
        app.flash = Some("actions are still running: wait for them, or abort (a) first".into());
        return;
    }
    let previews = app.previews();
    let choice = previews
        .iter()
        .position(|p| p.as_ref().is_some_and(|p| !p.will_run.is_empty()))
        .unwrap_or(0);
    app.overlay = Some(Overlay::Reexecute { choice, previews });
}

fn on_overlay_key(app: &mut App, overlay: Overlay, key: KeyEvent) -> Vec<Effect> {
    let yes = matches!(key.code, KeyCode::Char('y') | KeyCode::Enter);
    let no = matches!(
        key.code,
        KeyCode::Char('n') | KeyCode::Esc | KeyCode::Char('q')
    );
    match overlay {
        Overlay::Help | Overlay::AbortReport => {}
        Overlay::ConfirmAbort if yes => return vec![Effect::Abort],
        Overlay::ConfirmAbort if key.code == KeyCode::Char('h') && app.remote.is_some() => {
            return vec![Effect::AbortHard]
        }
        Overlay::ConfirmQuit if yes => {
            app.quit = true;
            return vec![Effect::Quit];
        }
        Overlay::ConfirmAbort | Overlay::ConfirmQuit if no => {}
        Overlay::Reexecute { choice, previews } => {
            let chosen = previews[choice]
                .as_ref()
                .is_some_and(|p| !p.will_run.is_empty());
            match key.code {
                KeyCode::Left | KeyCode::Char('h') | KeyCode::BackTab => {
                    app.overlay = Some(Overlay::Reexecute {
                        choice: (choice + 2) % 3,
                        previews,
                    });
                }
                KeyCode::Right | KeyCode::Char('l') | KeyCode::Tab => {
                    app.overlay = Some(Overlay::Reexecute {
                        choice: (choice + 1) % 3,
                        previews,
                    });
                }
                KeyCode::Char(c @ '1'..='3') => {
                    let choice = c as usize - '1' as usize;
                    app.overlay = Some(Overlay::Reexecute { choice, previews });
                }
                _ if yes && chosen => {
                    let mode = match (choice, app.selected_action()) {
                        (1, Some(idx)) => Reexecute::From(idx),
                        (2, Some(idx)) => Reexecute::Only(idx),
                        _ => Reexecute::Failed,
                    };
                    return vec![Effect::Reexecute(mode)];
                }
                _ if no => {}
                _ => app.overlay = Some(Overlay::Reexecute { choice, previews }),
            }
        }
        // Any other key leaves a confirmation open: only y/n decide.
        other => app.overlay = Some(other),
    }
    Vec::new()
}
