//! Rendering: a pure function of [`App`]. No IO, no mutation.

use baton_core::redact::redact_value;
use baton_core::scheduler::Preview;
use baton_core::state::{ActionState, Level, LogEntry, Timestamp};
use baton_core::{Action, ActionIdx, ActionStatus, RunStatus};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};

use super::app::{App, Focus, Overlay, RemoteInfo, Row, View, REEXECUTE_CHOICES};
use super::keymap;
use super::timeline::Timeline;
use crate::output::{format_elapsed, symbol};

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

    fn run_style(&self) -> Style {
        let status = match self.state.status() {
            RunStatus::Running | RunStatus::Waiting => ActionStatus::Running,
            RunStatus::Succeeded => ActionStatus::Complete,
            RunStatus::Failed => ActionStatus::Failed,
            RunStatus::Aborted => ActionStatus::Cancelled,
        };
        self.style(status).add_modifier(Modifier::BOLD)
    }

    fn accent(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Cyan)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }

    /// Elapsed time of an action: finished, or so far.
    pub fn action_elapsed(&self, idx: ActionIdx) -> Option<std::time::Duration> {
        let a = self.state.action(idx);
        let end = match a.status {
            ActionStatus::Running => Some(self.now),
            _ => a.finished_at,
        };
        (end? - a.started_at?).to_std().ok()
    }

    pub fn run_elapsed(&self) -> std::time::Duration {
        let end = if self.state.status().is_finished() {
            self.state.updated_at()
        } else {
            self.now
        };
        (end - self.state.created_at()).to_std().unwrap_or_default()
    }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width < 24 || area.height < 8 {
            Paragraph::new("terminal too small for baton; enlarge it")
                .wrap(Wrap { trim: true })
                .render(area, buf);
            return;
        }
        let [header, body, footer] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(area);
        render_header(self, header, buf);
        match self.view {
            View::Dag => {
                let [left, right] =
                    Layout::horizontal([Constraint::Percentage(42), Constraint::Percentage(58)])
                        .areas(body);
                render_dag(self, left, buf);
                let [detail, log] =
                    Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)])
                        .areas(right);
                render_detail(self, detail, buf);
                render_log(self, log, buf);
            }
            View::Timeline => Timeline { app: self }.render(body, buf),
        }
        render_footer(self, footer, buf);
        if let Some(overlay) = &self.overlay {
            render_overlay(self, overlay, area, buf);
        }
    }
}

fn render_header(app: &App, area: Rect, buf: &mut Buffer) {
    let counts = app.counts();
    let done = counts[ActionStatus::Complete as usize]
        + counts[ActionStatus::Skipped as usize]
        + counts[ActionStatus::Failed as usize]
        + counts[ActionStatus::Blocked as usize]
        + counts[ActionStatus::Cancelled as usize];
    let fraction = done as f64 / app.plan.len().max(1) as f64;
    let lines = vec![
        run_line(app, done, fraction),
        counts_line(app, &counts, fraction),
        store_line(app),
    ];
    Paragraph::new(lines).render(area, buf);
}

/// ` baton <run id>  ▶ running  elapsed 9.0s  ETA ~3.0s`
fn run_line(app: &App, done: usize, fraction: f64) -> Line<'static> {
    let elapsed = app.run_elapsed();
    let eta = if !app.state.status().is_finished() && done > 0 && fraction < 1.0 {
        let left = elapsed.as_secs_f64() / fraction - elapsed.as_secs_f64();
        format!(
            "  ETA ~{}",
            format_elapsed(std::time::Duration::from_secs_f64(left))
        )
    } else {
        String::new()
    };
    let status_symbol = match app.state.status() {
        RunStatus::Running | RunStatus::Waiting => "▶",
        RunStatus::Succeeded => "✔",
        RunStatus::Failed => "✖",
        RunStatus::Aborted => "■",
    };
    let abort = if app.state.abort_requested() && !app.state.status().is_finished() {
        "  (abort requested)"
    } else {
        ""
    };
    Line::from(vec![
        Span::styled(" baton ", app.accent().add_modifier(Modifier::BOLD)),
        Span::raw(app.state.run_id().to_string()),
        Span::raw("  "),
        Span::styled(
            format!("{status_symbol} {}{abort}", app.state.status()),
            app.run_style(),
        ),
        Span::raw(format!("  elapsed {}{eta}", format_elapsed(elapsed))),
    ])
}

/// Counts per status and a progress bar.
fn counts_line(app: &App, counts: &[usize; 7], fraction: f64) -> Line<'static> {
    let mut spans = vec![Span::raw(" ")];
    for status in ActionStatus::ALL {
        let n = counts[status as usize];
        if n > 0 {
            spans.push(Span::styled(
                format!("{} {n} {status}", symbol(status)),
                app.style(status),
            ));
            spans.push(Span::raw("  "));
        }
    }
    let bar_width = 20usize;
    let filled = ((fraction * bar_width as f64).round() as usize).min(bar_width);
    spans.push(Span::styled(
        format!(
            "[{}{}] {:>3.0}%",
            "█".repeat(filled),
            "░".repeat(bar_width - filled),
            fraction * 100.0
        ),
        app.accent(),
    ));
    Line::from(spans)
}

/// Where the run is, how fresh the view is, who drives it; the execution of a remote run.
fn store_line(app: &App) -> Line<'static> {
    let ago = (app.now - app.last_updated)
        .to_std()
        .map(format_elapsed)
        .unwrap_or_else(|_| "0.0s".into());
    let lease = live_lease(app);
    let mode = match (app.driving, app.driver_active, app.read_only) {
        (_, _, true) => "read-only".to_string(),
        (true, true, _) => "driving".to_string(),
        (true, false, _) => "driven here (stopped)".to_string(),
        (false, _, _) => match &lease {
            Some(holder) => format!("watching · driven by {holder}"),
            None => "watching".to_string(),
        },
    };
    // S3 version ids are long; a prefix is enough to tell versions apart on screen.
    let version: String = app.version.chars().take(10).collect();
    let mut spans = vec![Span::styled(
        format!(" {}  v{version}  updated {ago} ago  {mode}", app.locator),
        app.dim(),
    )];
    if let Some(remote) = &app.remote {
        spans.push(execution_span(app, remote, lease.is_some()));
    }
    Line::from(spans)
}

/// The holder of the run's lease while it is live (a tick at work on an S3 run).
fn live_lease(app: &App) -> Option<String> {
    app.state
        .driver()
        .filter(|lease| lease.until > app.now)
        .map(|lease| lease.holder.clone())
}

/// `│ <execution> RUNNING · history 212/25000 · 7 ticks · next tick in 3.0s`, in the failure
/// style once most of the history budget is used; for an unfinished run that no execution and
/// no tick drives, since when it is idle and how to continue it.
fn execution_span(app: &App, remote: &RemoteInfo, leased: bool) -> Span<'static> {
    let finished = app.state.status().is_finished();
    if !remote.running() && !leased && !finished {
        let since = app.state.updated_at();
        let ago = (app.now - since)
            .to_std()
            .map(format_elapsed)
            .unwrap_or_else(|_| "0.0s".into());
        let last = if remote.execution.is_empty() {
            "no execution".to_string()
        } else {
            format!("{} {}", remote.execution, remote.status)
        };
        let way_out = if app.state.abort_requested() {
            format!("finish the abort: baton abort {}", app.locator)
        } else {
            format!("continue: baton resume {} --remote", app.locator)
        };
        return Span::styled(
            format!(
                "  │ {last} · idle since {} ({ago} ago); nothing is driving it · {way_out}",
                since.format("%H:%M:%S")
            ),
            app.style(ActionStatus::Failed),
        );
    }
    let next = app
        .state
        .actions()
        .iter()
        .filter_map(|a| a.next_check_at)
        .min()
        .and_then(|t| (t - app.now).to_std().ok())
        .map(|d| format!(" · next tick in {}", format_elapsed(d)))
        .unwrap_or_default();
    let share = remote.events as f64 / super::app::HISTORY_LIMIT as f64;
    let style = if share > 0.8 {
        app.style(ActionStatus::Failed)
    } else {
        app.accent()
    };
    Span::styled(
        format!(
            "  │ {} {} · history {}/{} · {} ticks{next}",
            remote.execution,
            remote.status,
            remote.events,
            super::app::HISTORY_LIMIT,
            app.state.invocations()
        ),
        style,
    )
}

fn pane_block(app: &App, title: String, focused: bool) -> Block<'static> {
    let style = if focused { app.accent() } else { app.dim() };
    Block::new()
        .borders(Borders::ALL)
        .border_style(style)
        .title(Span::styled(title, style))
}

fn render_dag(app: &App, area: Rect, buf: &mut Buffer) {
    let mut title = format!(" DAG · {} actions ", app.plan.len());
    if !app.filter.is_empty() {
        title.push_str(&format!("· /{} ", app.filter));
    }
    if app.hide_complete {
        title.push_str("· hiding complete ");
    }
    let block = pane_block(app, title, app.focus == Focus::Dag);
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 || inner.width == 0 {
        return;
    }
    let height = inner.height as usize;
    let offset = app.offset.min(app.rows.len().saturating_sub(height));
    let width = inner.width as usize;
    for (line, row) in app.rows.iter().enumerate().skip(offset).take(height) {
        let y = inner.y + (line - offset) as u16;
        let selected = line == app.cursor;
        let spans = match *row {
            Row::Layer(depth) => layer_spans(app, depth),
            Row::Action(idx) => action_spans(app, idx, width),
        };
        let mut style = Style::new();
        if selected {
            style = style.add_modifier(Modifier::REVERSED);
        }
        buf.set_line(inner.x, y, &Line::from(spans).style(style), inner.width);
        if selected {
            buf.set_style(
                Rect {
                    x: inner.x,
                    y,
                    width: inner.width,
                    height: 1,
                },
                Style::new().add_modifier(Modifier::REVERSED),
            );
        }
    }
}

/// `▾ layer 2 · 4 ✔3 ▶1`: the fold, the size, and how many are in each status but pending.
fn layer_spans(app: &App, depth: usize) -> Vec<Span<'static>> {
    let members = &app.layers[depth];
    let fold = if app.collapsed[depth] { "▸" } else { "▾" };
    let mut spans = vec![Span::styled(
        format!("{fold} layer {depth} · {} ", members.len()),
        app.dim(),
    )];
    let mut per = [0usize; 7];
    for &i in members {
        per[app.state.action(i).status as usize] += 1;
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

/// `  ✔ build-api        4.0s`, the label cut to the pane's `width`.
fn action_spans(app: &App, idx: ActionIdx, width: usize) -> Vec<Span<'static>> {
    let a = app.state.action(idx);
    let elapsed = app
        .action_elapsed(idx)
        .map(format_elapsed)
        .unwrap_or_default();
    let label_room = width.saturating_sub(4 + 8).max(4);
    let label = truncate(app.plan.label(idx), label_room);
    vec![
        Span::raw("  "),
        Span::styled(format!("{} ", symbol(a.status)), app.style(a.status)),
        Span::styled(format!("{label:<label_room$}"), app.style(a.status)),
        Span::styled(format!("{elapsed:>7}"), app.dim()),
    ]
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn render_detail(app: &App, area: Rect, buf: &mut Buffer) {
    let Some(idx) = app.selected_action() else {
        let block = pane_block(app, " detail ".into(), false);
        let text = match app.selected {
            Some(Row::Layer(depth)) => format!(
                "layer {depth}: {} actions that can run in parallel once layer {} is done",
                app.layers[depth].len(),
                depth.saturating_sub(1)
            ),
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
        format!(" {} · {} ", def.label, def.action_type.name()),
        false,
    );
    let mut lines = Vec::new();
    if let Some(description) = &def.description {
        lines.push(Line::from(description.clone()));
    }
    push_progress(app, idx, a, &mut lines);
    push_neighbours(app, idx, &mut lines);
    push_definition(app, def, &mut lines);
    if let Some(params) = app.selected_params() {
        lines.push(Line::from(detail_key(app, "params")));
        push_json(&mut lines, &params.value);
    }
    if !a.outputs.is_empty() {
        lines.push(Line::from(detail_key(app, "outputs")));
        push_json(
            &mut lines,
            &redact_value(&serde_json::Value::Object((*a.outputs).clone())),
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

/// Status, attempt, what blocks it, its error and its times.
fn push_progress(app: &App, idx: ActionIdx, a: &ActionState, lines: &mut Vec<Line<'static>>) {
    let key = |k: &str| detail_key(app, k);
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
    if let Some(by) = &a.blocked_by {
        lines.push(Line::from(vec![
            key("blocked by"),
            Span::styled(
                format!("{by} (failed or cancelled upstream)"),
                app.style(ActionStatus::Blocked),
            ),
        ]));
    }
    if let Some(error) = &a.error {
        lines.push(Line::from(vec![
            key("error"),
            Span::styled(error.clone(), app.style(ActionStatus::Failed)),
        ]));
    }
    let time = |t: &Option<Timestamp>| t.map(|t| t.format("%H:%M:%S%.3f").to_string());
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
fn push_definition(app: &App, def: &Action, lines: &mut Vec<Line<'static>>) {
    if let Some(condition) = &def.condition {
        lines.push(Line::from(vec![
            detail_key(app, "condition"),
            Span::raw(condition.clone()),
        ]));
    }
    if let Some(timeout) = def.timeout {
        lines.push(Line::from(vec![
            detail_key(app, "timeout"),
            Span::raw(baton_core::duration::format_duration(timeout)),
        ]));
    }
}

fn push_json(lines: &mut Vec<Line<'static>>, value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    for line in text.lines().take(40) {
        lines.push(Line::from(format!("  {line}")));
    }
}

fn render_log(app: &App, area: Rect, buf: &mut Buffer) {
    if let (true, Some(remote)) = (app.log.history, &app.remote) {
        render_history(app, remote, area, buf);
        return;
    }
    let thread = match (app.log.run_thread, app.selected_action()) {
        (false, Some(idx)) => app.plan.label(idx).to_string(),
        _ => "run".to_string(),
    };
    let mode = if app.log.back == 0 {
        "following".to_string()
    } else {
        format!("{} back · End follows", app.log.back)
    };
    let block = pane_block(
        app,
        format!(" log · {thread} · {mode} "),
        app.focus == Focus::Log,
    );
    let inner = block.inner(area);
    block.render(area, buf);
    let height = inner.height as usize;
    let width = (inner.width as usize).max(1);
    let entries: Vec<_> = app.log_entries().collect();
    let end = entries.len().saturating_sub(app.log.back);
    // Long lines wrap (errors are often long); fill the pane from the newest entry upwards.
    let mut rows: Vec<Line> = Vec::with_capacity(height);
    for entry in entries[..end].iter().rev() {
        rows.extend(log_rows(app, entry, width).into_iter().rev());
        if rows.len() >= height {
            break;
        }
    }
    rows.truncate(height);
    rows.reverse();
    for (y, line) in rows.iter().enumerate() {
        buf.set_line(inner.x, inner.y + y as u16, line, inner.width);
    }
    if entries.is_empty() && inner.height > 0 {
        buf.set_line(
            inner.x,
            inner.y,
            &Line::styled("(no log entries yet)", app.dim()),
            inner.width,
        );
    }
}

/// A remote run's execution history: the events of the selected action's ticks (from a second
/// before it started until it finished, or now), or with no action selected the newest events.
fn render_history(app: &App, remote: &RemoteInfo, area: Rect, buf: &mut Buffer) {
    let window = app.selected_action().and_then(|idx| {
        let a = app.state.action(idx);
        let start = a.started_at? - chrono::Duration::seconds(1);
        let end = match a.status {
            ActionStatus::Running => app.now,
            _ => a.finished_at.unwrap_or(app.now),
        } + chrono::Duration::seconds(1);
        Some((app.plan.label(idx), start, end))
    });
    let event_line =
        |(t, e): &(Timestamp, String)| Line::raw(format!("{} {e}", t.format("%H:%M:%S")));
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

/// One log entry wrapped to `width`: its time and level (dimmed) lead the first row.
fn log_rows(app: &App, entry: &LogEntry, width: usize) -> Vec<Line<'static>> {
    let style = match entry.level {
        Level::Error => app.style(ActionStatus::Failed),
        Level::Warn => app.style(ActionStatus::Running),
        _ => Style::new(),
    };
    let mut prefix = String::new();
    if app.log.timestamps {
        prefix.push_str(&format!("{} ", entry.t.format("%H:%M:%S%.3f")));
    }
    if matches!(entry.level, Level::Warn | Level::Error) {
        prefix.push_str(entry.level.as_str());
        prefix.push(' ');
    }
    let text: Vec<char> = prefix.chars().chain(entry.msg.chars()).collect();
    let prefix_len = prefix.chars().count();
    text.chunks(width)
        .enumerate()
        .map(|(i, chunk)| {
            let chunk: String = chunk.iter().collect();
            if i == 0 && prefix_len > 0 && prefix_len <= chunk.chars().count() {
                let (head, tail) = chunk.split_at(
                    chunk
                        .char_indices()
                        .nth(prefix_len)
                        .map_or(chunk.len(), |(b, _)| b),
                );
                Line::from(vec![
                    Span::styled(head.to_string(), app.dim()),
                    Span::styled(tail.to_string(), style),
                ])
            } else {
                Line::styled(chunk, style)
            }
        })
        .collect()
}

fn render_footer(app: &App, area: Rect, buf: &mut Buffer) {
    let line = if app.filter_editing {
        Line::from(vec![
            Span::styled("/", app.accent()),
            Span::raw(format!("{}█", app.filter)),
            Span::styled("   Enter keeps the filter · Esc clears it", app.dim()),
        ])
    } else if let Some(flash) = &app.flash {
        Line::from(Span::styled(format!(" {flash}"), app.accent()))
    } else {
        // The footer names the most used keys; `?` lists them all.
        let footer: [(&str, &str); 9] = [
            ("?", "help"),
            ("/", "filter"),
            ("f", "failure"),
            ("n", "running"),
            ("r", "re-execute"),
            ("a", "abort"),
            ("t", "timeline"),
            ("c", "hide done"),
            ("q", "quit"),
        ];
        let mut spans = Vec::new();
        for binding in keymap::visible(app.read_only) {
            if let Some((label, short)) = footer.iter().find(|(label, _)| *label == binding.label) {
                spans.push(Span::styled(
                    format!(" {label} "),
                    app.accent().add_modifier(Modifier::BOLD),
                ));
                spans.push(Span::raw(format!("{short} ")));
            }
        }
        Line::from(spans)
    };
    buf.set_line(area.x, area.y, &line, area.width);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn render_overlay(app: &App, overlay: &Overlay, area: Rect, buf: &mut Buffer) {
    let (title, lines, width, height): (&str, Vec<Line>, u16, u16) = match overlay {
        Overlay::Help => {
            let lines = help_lines(app);
            let height = lines.len() as u16 + 2;
            (" keys ", lines, 76, height)
        }
        Overlay::ConfirmAbort => (" abort the run? ", confirm_abort_lines(app), 72, 7),
        Overlay::ConfirmQuit => {
            let lines = confirm_quit_lines(app);
            let height = lines.len() as u16 + 2;
            (" quit? ", lines, 80, height)
        }
        Overlay::AbortReport => {
            let lines = abort_report_lines(app);
            let height = lines.len() as u16 + 2;
            (" run aborted ", lines, 90, height)
        }
        Overlay::Reexecute { choice, previews } => {
            let lines = reexecute_lines(app, *choice, &previews[*choice]);
            let height = lines.len() as u16 + 4;
            (" re-execute ", lines, 80, height)
        }
    };
    let rect = centered(area, width, height);
    Clear.render(rect, buf);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(app.accent())
        .title(title);
    Paragraph::new(lines)
        .block(block)
        .wrap(Wrap { trim: false })
        .render(rect, buf);
}

fn help_lines(app: &App) -> Vec<Line<'static>> {
    let mut lines: Vec<Line> = keymap::visible(app.read_only)
        .map(|b| {
            Line::from(vec![
                Span::styled(format!("{:<8}", b.label), app.accent()),
                Span::raw(b.help),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::styled("any key closes this help", app.dim()));
    lines
}

fn confirm_abort_lines(app: &App) -> Vec<Line<'static>> {
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

fn confirm_quit_lines(app: &App) -> Vec<Line<'static>> {
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
fn abort_report_lines(app: &App) -> Vec<Line<'static>> {
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

/// The choices as tabs, then what the chosen one would do.
fn reexecute_lines(app: &App, choice: usize, preview: &Option<Preview>) -> Vec<Line<'static>> {
    let mut tabs = Vec::new();
    for (i, name) in REEXECUTE_CHOICES.iter().enumerate() {
        let style = if i == choice {
            app.accent().add_modifier(Modifier::REVERSED)
        } else {
            app.dim()
        };
        tabs.push(Span::styled(format!(" {} {name} ", i + 1), style));
        tabs.push(Span::raw(" "));
    }
    let mut lines = vec![Line::from(tabs), Line::raw("")];
    match preview {
        None => lines.push(Line::raw("select an action first")),
        Some(p) if p.will_run.is_empty() => {
            lines.push(Line::raw("nothing to re-execute with this choice"))
        }
        Some(p) => push_preview(app, p, &mut lines),
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "←/→ or 1-3 choose · y/Enter re-execute · n/Esc cancel",
        app.accent(),
    ));
    lines
}

fn push_preview(app: &App, p: &Preview, lines: &mut Vec<Line<'static>>) {
    let names = |list: &[ActionIdx]| {
        let shown: Vec<&str> = list.iter().take(12).map(|&i| app.plan.label(i)).collect();
        let more = if list.len() > 12 {
            format!(" … and {} more", list.len() - 12)
        } else {
            String::new()
        };
        format!("{}{more}", shown.join(", "))
    };
    lines.push(Line::styled(
        format!("will run ({}):", p.will_run.len()),
        app.style(ActionStatus::Running),
    ));
    lines.push(Line::raw(format!("  {}", names(&p.will_run))));
    lines.push(Line::styled(
        format!("reusing outputs of ({}):", p.reused.len()),
        app.style(ActionStatus::Complete),
    ));
    lines.push(Line::raw(format!(
        "  {}",
        if p.reused.is_empty() {
            "-".into()
        } else {
            names(&p.reused)
        }
    )));
    if !p.stays_blocked.is_empty() {
        lines.push(Line::styled(
            format!("still blocked ({}):", p.stays_blocked.len()),
            app.style(ActionStatus::Blocked),
        ));
        lines.push(Line::raw(format!("  {}", names(&p.stays_blocked))));
    }
}
