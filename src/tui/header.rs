//! The header: what the run is doing, how far it got (a bar with a segment per outcome), how
//! long it will take, where it lives, when it was last saved and who drives it.

use baton_core::{ActionStatus, RunStatus};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::app::{App, Driver, RemoteInfo, HISTORY_LIMIT};
use crate::output::{format_elapsed, symbol};

pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let lines = vec![run_line(app), counts_line(app, area.width), store_line(app)];
    Paragraph::new(lines).render(area, buf);
}

/// The run's status as a word: "running" while actions run, whatever the stored status.
pub fn status_word(app: &App) -> String {
    let status = app.state.status();
    let running = app.state.count(ActionStatus::Running) > 0;
    match status {
        RunStatus::Waiting if running => "running".to_string(),
        other => other.to_string(),
    }
}

/// ` baton <run id>  ▶ running  elapsed 9.0s  ETA ~3.0s`
fn run_line(app: &App) -> Line<'static> {
    let elapsed = app.run_elapsed();
    let eta = super::eta::eta(app)
        .map(|left| format!("  ETA ~{}", format_elapsed(left)))
        .unwrap_or_default();
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
            format!("{status_symbol} {}{abort}", status_word(app)),
            app.run_style(),
        ),
        Span::raw(format!("  elapsed {}{eta}", format_elapsed(elapsed))),
    ])
}

/// The order of the bar's segments, and how each looks without colour.
const SEGMENTS: [(ActionStatus, char); 6] = [
    (ActionStatus::Complete, '█'),
    (ActionStatus::Skipped, '▓'),
    (ActionStatus::Failed, '✖'),
    (ActionStatus::Blocked, '⊘'),
    (ActionStatus::Cancelled, '■'),
    (ActionStatus::Running, '▒'),
];

/// Counts per status, a bar with a segment per outcome, and the share done.
fn counts_line(app: &App, width: u16) -> Line<'static> {
    let counts = app.counts();
    let total = app.plan.len().max(1);
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
    let bar_width = if width < super::ui::COMPACT_BELOW {
        10
    } else {
        20
    };
    spans.push(Span::raw("["));
    let mut used = 0;
    for (status, fill) in SEGMENTS {
        let n = counts[status as usize];
        if n == 0 {
            continue;
        }
        // Every outcome that happened shows, however small.
        let cells = ((n * bar_width) as f64 / total as f64).round().max(1.0) as usize;
        let cells = cells.min(bar_width - used);
        let fill = if app.color { '█' } else { fill };
        spans.push(Span::styled(
            fill.to_string().repeat(cells),
            app.style(status),
        ));
        used += cells;
    }
    spans.push(Span::styled("░".repeat(bar_width - used), app.dim()));
    let done = counts[ActionStatus::Complete as usize] + counts[ActionStatus::Skipped as usize];
    spans.push(Span::raw(format!(
        "] {:>3.0}% done",
        done as f64 * 100.0 / total as f64
    )));
    Line::from(spans)
}

fn ago(app: &App, since: baton_core::state::Timestamp) -> String {
    (app.now - since)
        .to_std()
        .map(format_elapsed)
        .unwrap_or_else(|_| "0.0s".into())
}

/// Who drives the run, and for a run nobody drives, since when and the way out.
pub fn driver_text(app: &App) -> String {
    let since = app.state.updated_at();
    match app.driver() {
        Driver::Here => "driven here".to_string(),
        Driver::Process(Some(pid)) => format!("driven by pid {pid}"),
        Driver::Process(None) => "driven by another baton process".to_string(),
        Driver::Lease(holder) => format!("driven by {holder}"),
        Driver::Execution(name) => format!("driven by execution {name}"),
        Driver::Finished if app.driving => "driven here (stopped)".to_string(),
        Driver::Finished => format!("finished {}", since.format("%H:%M:%S")),
        Driver::Unknown => "watching".to_string(),
        Driver::Idle => {
            let way_out = if app.state.abort_requested() {
                format!("finish the abort: baton abort {}", app.locator)
            } else if app.read_only {
                format!("continue: baton resume {}", app.locator)
            } else {
                "R resumes it".to_string()
            };
            format!(
                "idle since {} ({} ago); nothing is driving it · {way_out}",
                since.format("%H:%M:%S"),
                ago(app, since)
            )
        }
    }
}

/// Where the run is, its version, when it was last saved, who drives it; the execution of a
/// remote run.
fn store_line(app: &App) -> Line<'static> {
    // S3 version ids are long; a prefix is enough to tell versions apart on screen.
    let version: String = app.version.chars().take(10).collect();
    let saved = ago(app, app.state.updated_at());
    let read_only = if app.read_only { " · read-only" } else { "" };
    let mut spans = vec![Span::styled(
        format!(" {}  v{version}  saved {saved} ago  ", app.locator),
        app.dim(),
    )];
    let driver = app.driver();
    if let (Some(remote), false) = (&app.remote, matches!(driver, Driver::Lease(_))) {
        spans.push(Span::styled(format!("watching{read_only}"), app.dim()));
        spans.push(execution_span(app, remote, driver == Driver::Idle));
    } else {
        let style = if driver == Driver::Idle {
            app.style(ActionStatus::Failed)
        } else {
            app.dim()
        };
        spans.push(Span::styled(
            format!("{}{read_only}", driver_text(app)),
            style,
        ));
    }
    Line::from(spans)
}

/// `│ <execution> RUNNING · history 212/25000 · 7 ticks · next tick in 3.0s`, in the failure
/// style once most of the history budget is used; for an unfinished run that no execution and
/// no tick drives, since when it is idle and how to continue it.
fn execution_span(app: &App, remote: &RemoteInfo, idle: bool) -> Span<'static> {
    if idle {
        let since = app.state.updated_at();
        let last = if remote.execution.is_empty() {
            "no execution".to_string()
        } else {
            format!("{} {}", remote.execution, remote.status)
        };
        let way_out = if app.state.abort_requested() {
            format!("finish the abort: baton abort {}", app.locator)
        } else if app.read_only {
            format!("continue: baton resume {} --remote", app.locator)
        } else {
            format!("R or baton resume {} --remote continues it", app.locator)
        };
        return Span::styled(
            format!(
                "  │ {last} · idle since {} ({} ago); nothing is driving it · {way_out}",
                since.format("%H:%M:%S"),
                ago(app, since)
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
    let share = remote.events as f64 / HISTORY_LIMIT as f64;
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
            HISTORY_LIMIT,
            app.state.invocations()
        ),
        style,
    )
}
