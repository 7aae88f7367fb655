//! Rendering: a pure function of [`App`]. No IO, no mutation.

use baton_core::state::ActionState;
use baton_core::{Action, ActionIdx, ActionStatus, RunStatus};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Paragraph, Scrollbar, ScrollbarOrientation, ScrollbarState, StatefulWidget,
    Widget, Wrap,
};

use super::app::{App, Focus, RemoteInfo, Row, Screen, View};
use super::keymap::{self, Context};
use super::timeline::Timeline;
use crate::output::{format_elapsed, plural, symbol};

/// The smallest terminal the console draws in; below it, it says so (and a new console
/// prints plain lines instead).
pub const MIN_WIDTH: u16 = 40;
pub const MIN_HEIGHT: u16 = 10;

/// Below this width the main screen shows one pane at a time.
pub const COMPACT_BELOW: u16 = 100;

impl App {
    pub fn style(&self, status: ActionStatus) -> Style {
        if !self.color {
            return match status {
                ActionStatus::Failed => Style::new().add_modifier(Modifier::BOLD),
                _ => Style::new(),
            };
        }
        let color = match status {
            ActionStatus::Pending => Color::Gray,
            ActionStatus::Running => Color::Yellow,
            ActionStatus::Complete => Color::Green,
            ActionStatus::Failed => Color::Red,
            ActionStatus::Skipped => Color::DarkGray,
            ActionStatus::Blocked => Color::Magenta,
            ActionStatus::Cancelled => Color::DarkGray,
        };
        Style::new().fg(color)
    }

    pub fn run_style(&self) -> Style {
        let status = match self.state.status() {
            RunStatus::Running | RunStatus::Waiting => ActionStatus::Running,
            RunStatus::Succeeded => ActionStatus::Complete,
            RunStatus::Failed => ActionStatus::Failed,
            RunStatus::Aborted => ActionStatus::Cancelled,
        };
        self.style(status).add_modifier(Modifier::BOLD)
    }

    pub fn accent(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Cyan)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    pub fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    /// Elapsed time of an action: finished, or so far (until the run's clock stopped).
    pub fn action_elapsed(&self, idx: ActionIdx) -> Option<std::time::Duration> {
        let a = self.state.action(idx);
        let end = match a.status {
            ActionStatus::Running => Some(self.clock()),
            _ => a.finished_at,
        };
        (end? - a.started_at?).to_std().ok()
    }

    /// How long the run has taken: from its creation to its last save once finished (or
    /// while nothing drives it), to now while it runs.
    pub fn run_elapsed(&self) -> std::time::Duration {
        let end = if self.state.status().is_finished() {
            self.state.updated_at()
        } else {
            self.clock()
        };
        (end - self.state.created_at()).to_std().unwrap_or_default()
    }
}

/// Where the main screen's parts are, for rendering and for mouse clicks.
#[derive(Debug, Clone, Copy)]
pub struct MainAreas {
    pub header: Rect,
    pub body: Rect,
    /// The DAG pane (with borders), when shown.
    pub dag: Option<Rect>,
    pub detail: Option<Rect>,
    pub log: Option<Rect>,
    pub status: Option<Rect>,
    pub footer: Rect,
}

impl MainAreas {
    pub fn dag_rows(&self) -> usize {
        self.dag
            .map(|r| usize::from(r.height.saturating_sub(2)))
            .unwrap_or(1)
            .max(1)
    }

    pub fn log_rows(&self) -> usize {
        self.log
            .map(|r| usize::from(r.height.saturating_sub(2)))
            .unwrap_or(1)
            .max(1)
    }
}

/// The main screen's layout for the app's terminal size.
pub fn main_areas(app: &App) -> MainAreas {
    layout(app, Rect::new(0, 0, app.size.0, app.size.1))
}

/// The main screen's layout in `area`.
pub fn layout(app: &App, area: Rect) -> MainAreas {
    let status_rows = u16::from(app.flash.is_some());
    let [header, body, status, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(1),
        Constraint::Length(status_rows),
        Constraint::Length(1),
    ])
    .areas(area);
    let status = (status_rows > 0).then_some(status);
    let (mut dag, mut detail, mut log) = (None, None, None);
    if app.screen == Screen::Main && app.view == View::Dag {
        if area.width < COMPACT_BELOW {
            if app.focus == Focus::Log {
                log = Some(body);
            } else {
                dag = Some(body);
            }
        } else {
            let [left, right] =
                Layout::horizontal([Constraint::Percentage(42), Constraint::Percentage(58)])
                    .areas(body);
            let [top, bottom] =
                Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                    .areas(right);
            dag = Some(left);
            detail = Some(top);
            log = Some(bottom);
        }
    }
    MainAreas {
        header,
        body,
        dag,
        detail,
        log,
        status,
        footer,
    }
}

/// Rows of the full-screen log.
pub fn log_screen_rows(app: &App) -> usize {
    match app.screen {
        Screen::Log => usize::from(main_areas(app).body.height.saturating_sub(2)).max(1),
        _ => main_areas(app).log_rows(),
    }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            Paragraph::new(format!(
                "terminal too small: baton needs at least {MIN_WIDTH}x{MIN_HEIGHT} (this one is {}x{}); enlarge it",
                area.width, area.height
            ))
            .wrap(Wrap { trim: true })
            .render(area, buf);
            return;
        }
        let areas = layout(self, area);
        super::header::render(self, areas.header, buf);
        match (self.screen, self.view) {
            (Screen::Inspect, _) => super::inspect::render(self, areas.body, buf),
            (Screen::Log, _) => render_log(self, areas.body, buf, true),
            (Screen::Main, View::Timeline) => Timeline { app: self }.render(areas.body, buf),
            (Screen::Main, View::Dag) => {
                if let Some(dag) = areas.dag {
                    render_dag(self, dag, buf);
                }
                if let Some(detail) = areas.detail {
                    render_detail(self, detail, buf);
                }
                if let Some(log) = areas.log {
                    render_log(self, log, buf, false);
                }
            }
        }
        if let (Some(status), Some(flash)) = (areas.status, &self.flash) {
            buf.set_line(
                status.x,
                status.y,
                &Line::styled(format!(" {flash}"), self.accent()),
                status.width,
            );
        }
        render_footer(self, areas.footer, buf);
        if let Some(overlay) = &self.overlay {
            super::overlay::render(self, overlay, area, buf);
        }
    }
}

pub fn pane_block(app: &App, title: String, focused: bool) -> Block<'static> {
    let style = if focused { app.accent() } else { app.dim() };
    Block::new()
        .borders(Borders::ALL)
        .border_style(style)
        .title(Span::styled(title, style))
}

fn dag_title(app: &App) -> String {
    let mut title = format!(" DAG · {} ", plural(app.plan.len(), "action"));
    if !app.filter.is_empty() || app.filter_editing.is_some() {
        let matched = if app.matched == 0 {
            "no matches".to_string()
        } else {
            format!("{} of {}", app.matched, app.plan.len())
        };
        title.push_str(&format!("· /{} {matched} ", app.filter));
    }
    if app.hide_complete {
        title.push_str("· hiding done ");
    }
    title
}

fn render_dag(app: &App, area: Rect, buf: &mut Buffer) {
    let block = pane_block(app, dag_title(app), app.focus == Focus::Dag);
    let inner = block.inner(area);
    let height = inner.height as usize;
    let total = app.rows.len();
    let block = if total > height {
        let last = (app.offset + height).min(total);
        block.title_bottom(Span::styled(
            format!(" {}-{last} of {total} ", app.offset + 1),
            app.dim(),
        ))
    } else {
        block
    };
    block.render(area, buf);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    if app.rows.is_empty() {
        let text = if app.filter.is_empty() {
            "nothing to show (c shows complete actions again)".to_string()
        } else {
            format!("no matches for /{} (Esc clears the filter)", app.filter)
        };
        Paragraph::new(Line::styled(text, app.dim()))
            .wrap(Wrap { trim: true })
            .render(inner, buf);
        return;
    }
    // The cursor stays in view even when the pane just shrank.
    let offset = app
        .offset
        .max((app.cursor + 1).saturating_sub(height))
        .min(app.cursor)
        .min(total.saturating_sub(height));
    let width = inner.width as usize;
    for (line, row) in app.rows.iter().enumerate().skip(offset).take(height) {
        let y = inner.y + (line - offset) as u16;
        let spans = match *row {
            Row::Layer(depth) => layer_spans(app, depth),
            Row::Action(idx) => action_spans(app, idx, width),
        };
        buf.set_line(inner.x, y, &Line::from(spans), inner.width);
        if line == app.cursor {
            buf.set_style(
                Rect::new(inner.x, y, inner.width, 1),
                Style::new().add_modifier(Modifier::REVERSED),
            );
        }
    }
    if total > height {
        let mut state = ScrollbarState::new(total.saturating_sub(height)).position(offset);
        Scrollbar::new(ScrollbarOrientation::VerticalRight)
            .begin_symbol(None)
            .end_symbol(None)
            .render(
                area.inner(ratatui::layout::Margin::new(0, 1)),
                buf,
                &mut state,
            );
    }
}

/// `▾ layer 2 · 4 ✔3 ▶1`: the fold, how many it shows (of how many, under a filter), and how
/// many of those are in each status but pending.
fn layer_spans(app: &App, depth: usize) -> Vec<Span<'static>> {
    let members = &app.layers[depth];
    let fold = if app.collapsed[depth] { "▸" } else { "▾" };
    let filtered = !app.filter.is_empty() || app.hide_complete;
    let size = if filtered {
        format!("{} of {}", app.layer_shown[depth], members.len())
    } else {
        members.len().to_string()
    };
    let mut spans = vec![Span::styled(
        format!("{fold} layer {depth} · {size} "),
        app.dim(),
    )];
    let mut per = [0usize; 7];
    for &i in members {
        if !filtered || app.matches(i) {
            per[app.state.action(i).status as usize] += 1;
        }
    }
    for status in ActionStatus::ALL {
        if per[status as usize] > 0 && status != ActionStatus::Pending {
            spans.push(Span::styled(
                format!("{}{} ", symbol(status), per[status as usize]),
                app.style(status),
            ));
        }
    }
    spans
}

/// `  ✔ build-api        4.0s`, the label shortened in its middle to fit `width`.
fn action_spans(app: &App, idx: ActionIdx, width: usize) -> Vec<Span<'static>> {
    let a = app.state.action(idx);
    let timed = width >= 24;
    let elapsed = if timed {
        app.action_elapsed(idx)
            .map(format_elapsed)
            .unwrap_or_default()
    } else {
        String::new()
    };
    let label_room = width.saturating_sub(4 + if timed { 8 } else { 0 }).max(4);
    let label = shorten(app.plan.label(idx), label_room);
    let mut spans = vec![
        Span::raw("  "),
        Span::styled(format!("{} ", symbol(a.status)), app.style(a.status)),
        Span::styled(format!("{label:<label_room$}"), app.style(a.status)),
    ];
    if timed {
        spans.push(Span::styled(format!("{elapsed:>7}"), app.dim()));
    }
    spans
}

/// `text` cut to `width` in its middle, so labels that differ only at the end stay apart.
pub fn shorten(text: &str, width: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= width {
        return text.to_string();
    }
    if width < 2 {
        return chars.iter().take(width).collect();
    }
    let tail = (width - 1) / 2;
    let head = width - 1 - tail;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

fn layer_text(app: &App, depth: usize) -> String {
    let n = plural(app.layers[depth].len(), "action");
    if depth == 0 {
        format!("layer 0: {n} that need nothing; they start first, in parallel")
    } else {
        format!(
            "layer {depth}: {n} that can run in parallel once what they need (in layers 0-{}) is done",
            depth - 1
        )
    }
}

fn render_detail(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(idx) = app.selected_action().filter(|_| !app.rows.is_empty()) else {
        let block = pane_block(app, " detail ".into(), false);
        let text = match app.selected {
            Some(Row::Layer(depth)) if !app.rows.is_empty() => layer_text(app, depth),
            _ => "nothing selected".into(),
        };
        Paragraph::new(text)
            .block(block)
            .wrap(Wrap { trim: false })
            .render(area, buf);
        return;
    };
    let def = app.plan.action(idx);
    let a = app.state.action(idx);
    let block = pane_block(
        app,
        format!(" {} · {} · ⏎ inspect ", def.label, def.action_type.name()),
        false,
    );
    let mut lines = Vec::new();
    push_progress(app, idx, a, &mut lines);
    push_neighbours(app, idx, &mut lines);
    push_definition(app, def, &mut lines);
    if let Some(description) = &def.details().description {
        lines.push(Line::from(description.clone()));
    }
    if let Some(params) = app.selected_params() {
        lines.push(Line::from(detail_key(app, "params")));
        push_json(&mut lines, &params.value);
    }
    if !a.outputs.is_empty() {
        lines.push(Line::from(detail_key(app, "outputs")));
        push_json(
            &mut lines,
            &app.secrets
                .redact_value(&serde_json::Value::Object((*a.outputs).clone())),
        );
    }
    Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false })
        .render(area, buf);
}

fn detail_key(app: &App, key: &str) -> Span<'static> {
    Span::styled(format!("{key:<11}"), app.dim())
}

/// Its error first (a long description must not push it out of view), what blocks it, its
/// status and attempt, and its times.
fn push_progress(app: &App, idx: ActionIdx, a: &ActionState, lines: &mut Vec<Line<'static>>) {
    let key = |k: &str| detail_key(app, k);
    if let Some(error) = &a.error {
        lines.push(Line::from(vec![
            key("error"),
            Span::styled(error.clone(), app.style(ActionStatus::Failed)),
        ]));
    }
    if let Some(by) = &a.blocked_by {
        lines.push(Line::from(vec![
            key("blocked by"),
            Span::styled(
                format!("{by} (failed or cancelled upstream)"),
                app.style(ActionStatus::Blocked),
            ),
        ]));
    }
    let attempts = if a.attempt > 1 {
        format!("  attempt {}", a.attempt)
    } else {
        String::new()
    };
    lines.push(Line::from(vec![
        key("status"),
        Span::styled(
            format!("{} {}{attempts}", symbol(a.status), a.status),
            app.style(a.status),
        ),
        Span::raw(
            app.action_elapsed(idx)
                .map(|d| format!("  {}", format_elapsed(d)))
                .unwrap_or_default(),
        ),
    ]));
    let time =
        |t: &Option<baton_core::state::Timestamp>| t.map(|t| t.format("%H:%M:%S%.3f").to_string());
    if let Some(started) = time(&a.started_at) {
        let finished = time(&a.finished_at)
            .map(|f| format!("  finished {f}"))
            .unwrap_or_default();
        lines.push(Line::from(vec![
            key("started"),
            Span::raw(format!("{started}{finished}")),
        ]));
    }
    if let Some(next) = time(&a.next_check_at) {
        lines.push(Line::from(vec![key("next check"), Span::raw(next)]));
    }
}

/// What the action needs and what needs it, each with its status.
fn push_neighbours(app: &App, idx: ActionIdx, lines: &mut Vec<Line<'static>>) {
    let list = |items: &[ActionIdx]| -> Vec<Span<'static>> {
        if items.is_empty() {
            return vec![Span::raw("-")];
        }
        let mut spans = Vec::new();
        for (n, &i) in items.iter().enumerate() {
            if n > 0 {
                spans.push(Span::raw(", "));
            }
            let status = app.state.action(i).status;
            spans.push(Span::styled(
                format!("{} {}", symbol(status), app.plan.label(i)),
                app.style(status),
            ));
        }
        spans
    };
    let mut needs = vec![detail_key(app, "needs")];
    needs.extend(list(app.plan.deps(idx)));
    lines.push(Line::from(needs));
    let mut needed_by = vec![detail_key(app, "needed by")];
    needed_by.extend(list(app.plan.dependents(idx)));
    lines.push(Line::from(needed_by));
}

/// The action's condition and timeout, as written.
pub fn push_definition(app: &App, def: &Action, lines: &mut Vec<Line<'static>>) {
    if let Some(condition) = &def.details().condition {
        lines.push(Line::from(vec![
            detail_key(app, "condition"),
            Span::raw(condition.clone()),
        ]));
    }
    if let Some(timeout) = def.details().timeout {
        lines.push(Line::from(vec![
            detail_key(app, "timeout"),
            Span::raw(baton_core::duration::format_duration(timeout)),
        ]));
    }
}

fn push_json(lines: &mut Vec<Line<'static>>, value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    let total = text.lines().count();
    for line in text.lines().take(40) {
        lines.push(Line::from(format!("  {line}")));
    }
    if total > 40 {
        lines.push(Line::from(format!(
            "  … {} more lines: ⏎ inspects",
            total - 40
        )));
    }
}

fn render_log(app: &App, area: Rect, buf: &mut Buffer, full: bool) {
    if let (true, Some(remote)) = (app.log.history, &app.remote) {
        render_history(app, remote, area, buf);
        return;
    }
    let thread = match app.log_thread() {
        Some(idx) => app.plan.label(idx).to_string(),
        None => "run".to_string(),
    };
    let height = usize::from(area.height.saturating_sub(2));
    let mut title = format!(
        " log · {thread} · {} ",
        super::logview::position(app, height)
    );
    if full {
        if !app.log.search.is_empty() {
            title.push_str(&format!("· /{} ", app.log.search));
        }
        title.push_str(if app.log.wrap { "· wrap " } else { "· cut " });
    } else if app.focus == Focus::Log {
        title.push_str("· ⏎ full screen ");
    }
    let block = pane_block(app, title, full || app.focus == Focus::Log);
    let inner = block.inner(area);
    block.render(area, buf);
    super::logview::render_lines(app, inner, buf);
}

/// A remote run's execution history: the events of the shown action's ticks (from a second
/// before it started until it finished, or now), or with no action shown the newest events.
fn render_history(app: &App, remote: &RemoteInfo, area: Rect, buf: &mut Buffer) {
    let window = app.shown_action().and_then(|idx| {
        let a = app.state.action(idx);
        let start = a.started_at? - chrono::Duration::seconds(1);
        let end = match a.status {
            ActionStatus::Running => app.now,
            _ => a.finished_at.unwrap_or(app.now),
        } + chrono::Duration::seconds(1);
        Some((app.plan.label(idx), start, end))
    });
    let event_line = |(t, e): &(baton_core::state::Timestamp, String)| {
        Line::raw(format!("{} {e}", t.format("%H:%M:%S")))
    };
    let (title, lines): (String, Vec<Line>) = match window {
        Some((label, start, end)) => (
            format!(
                " execution {} · events during {label}'s ticks ",
                remote.execution
            ),
            remote
                .recent
                .iter()
                .filter(|(t, _)| *t >= start && *t <= end)
                .map(event_line)
                .collect(),
        ),
        None => (
            format!(" execution {} · newest history events ", remote.execution),
            remote.recent.iter().map(event_line).collect(),
        ),
    };
    let height = area.height.saturating_sub(2) as usize;
    let skip = lines.len().saturating_sub(height);
    let block = pane_block(app, title, app.focus == Focus::Log);
    Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>())
        .block(block)
        .render(area, buf);
}

/// The key hints that fit `width`, by priority (`? help` and `q quit` always), in keymap order.
pub fn hints(context: Context, read_only: bool, width: usize) -> Vec<(&'static str, &'static str)> {
    let mut offered: Vec<(u8, usize, &'static str, &'static str)> =
        keymap::visible(context, read_only)
            .enumerate()
            .filter_map(|(order, b)| {
                let (priority, word) = b.hint?;
                let key = b.label.split(' ').next().unwrap_or(b.label);
                Some((priority, order, key, word))
            })
            .collect();
    offered.sort_by_key(|&(priority, order, _, _)| (priority, order));
    let mut used = 0;
    let mut kept = Vec::new();
    for (priority, order, key, word) in offered {
        let cost = key.chars().count() + word.chars().count() + 3;
        if priority > 0 && used + cost > width {
            continue;
        }
        used += cost;
        kept.push((order, key, word));
    }
    kept.sort_by_key(|&(order, _, _)| order);
    kept.into_iter().map(|(_, key, word)| (key, word)).collect()
}

fn render_footer(app: &App, area: Rect, buf: &mut Buffer) {
    let line = if let Some(command_line) = &app.command_line {
        command_line.line(app.accent(), app.dim())
    } else if app.filter_editing.is_some() {
        Line::from(vec![
            Span::styled("/", app.accent()),
            Span::raw(format!("{}█", app.filter)),
            Span::styled(
                format!(
                    "   {} · Enter keeps · Esc restores",
                    if app.matched == 0 {
                        "no matches".to_string()
                    } else {
                        plural(app.matched, "match").replace("matchs", "matches")
                    }
                ),
                app.dim(),
            ),
        ])
    } else if app.log.search_editing.is_some() {
        Line::from(vec![
            Span::styled("search /", app.accent()),
            Span::raw(format!("{}█", app.log.search)),
            Span::styled("   Enter finds · Esc restores", app.dim()),
        ])
    } else {
        hint_line(
            app,
            hints(app.context(), app.read_only, area.width as usize),
        )
    };
    buf.set_line(area.x, area.y, &line, area.width);
}

pub fn hint_line(app: &App, hints: Vec<(&str, &str)>) -> Line<'static> {
    let mut spans = Vec::new();
    for (key, word) in hints {
        spans.push(Span::styled(
            format!(" {key} "),
            app.accent().add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::raw(format!("{word} ")));
    }
    Line::from(spans)
}

pub(super) fn confirm_abort_lines(app: &App) -> Vec<Line<'static>> {
    vec![
        Line::raw(format!("Abort run {}?", app.state.run_id())),
        Line::raw("Running actions are cancelled where their type can cancel (a stack"),
        Line::raw("that is being created cannot be); nothing else will start."),
        Line::raw(""),
        Line::styled(
            if app.remote.is_some() {
                "y abort (on the next tick) · h abort and stop the execution now · n keep running"
            } else {
                "y abort · n keep running"
            },
            app.accent(),
        ),
    ]
}
pub(super) fn confirm_quit_lines(app: &App) -> Vec<Line<'static>> {
    vec![
        Line::raw("This console is driving the run. If you quit now, nothing new starts and:"),
        Line::raw(" · commands get SIGTERM (their whole process group), then SIGKILL after"),
        Line::raw("   their grace period; an idempotent one runs again on resume, any other"),
        Line::raw("   is marked failed (outcome unknown) for you to re-execute"),
        Line::raw(" · waits and stacks carry on (a wait is a deadline; a stack keeps going"),
        Line::raw("   in AWS); resume checks on them"),
        Line::raw(format!("Continue later with: baton resume {}", app.locator)),
        Line::raw(""),
        Line::styled("y quit · n stay", app.accent()),
    ]
}

/// What the abort stopped, left running and never started (from the actions' stop records).
pub(super) fn abort_report_lines(app: &App) -> Vec<Line<'static>> {
    const SHOWN: usize = 12;
    let report = app.state.stop_report();
    let label = |idx| app.plan.label(idx).to_string();
    let mut lines = Vec::new();
    for (title, entries) in [
        ("stopped", &report.stopped),
        ("left running", &report.left_running),
    ] {
        if entries.is_empty() {
            continue;
        }
        lines.push(Line::styled(
            format!("{title} ({})", entries.len()),
            app.accent(),
        ));
        for (idx, detail) in entries.iter().take(SHOWN) {
            lines.push(Line::raw(format!("  {}: {detail}", label(*idx))));
        }
        if entries.len() > SHOWN {
            lines.push(Line::raw(format!("  … and {} more", entries.len() - SHOWN)));
        }
    }
    if !report.not_started.is_empty() {
        let names: Vec<String> = report
            .not_started
            .iter()
            .take(SHOWN)
            .map(|&i| label(i))
            .collect();
        let more = report.not_started.len().saturating_sub(SHOWN);
        let more = if more > 0 {
            format!(", … and {more} more")
        } else {
            String::new()
        };
        lines.push(Line::styled(
            format!("not started ({})", report.not_started.len()),
            app.accent(),
        ));
        lines.push(Line::raw(format!("  {}{more}", names.join(", "))));
    }
    if report.is_empty() {
        lines.push(Line::raw("nothing was running or waiting to start"));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("any key closes this report", app.dim()));
    lines
}
