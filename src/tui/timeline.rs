//! The timeline (Gantt) view: one bar per action over the run's wall-clock time, with the
//! critical path — the chain of actions that decided when the run finished — marked.

use baton_core::state::Timestamp;
use baton_core::{ActionIdx, ActionStatus, Plan, RunState};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};

use super::app::{App, Row};
use crate::output::{format_elapsed, symbol};

/// The chain ending at the action that finished last, following at each step the dependency
/// that finished last (the one that actually gated it). Earliest first.
pub fn critical_path(plan: &Plan, state: &RunState, now: Timestamp) -> Vec<ActionIdx> {
    let end = |i: ActionIdx| {
        let a = state.action(i);
        match a.status {
            ActionStatus::Running => a.started_at.map(|_| now),
            _ => a.finished_at.filter(|_| a.started_at.is_some()),
        }
    };
    let Some(mut current) = (0..plan.len() as ActionIdx)
        .filter(|&i| end(i).is_some())
        .max_by_key(|&i| (end(i), i))
    else {
        return Vec::new();
    };
    let mut path = vec![current];
    while let Some(gate) = plan
        .deps(current)
        .iter()
        .copied()
        .filter(|&d| end(d).is_some())
        .max_by_key(|&d| (end(d), d))
    {
        path.push(gate);
        current = gate;
    }
    path.reverse();
    path
}

pub struct Timeline<'a> {
    pub app: &'a App,
}

impl Widget for Timeline<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.app;
        let path = critical_path(&app.plan, &app.state, app.now);
        let mut critical = vec![false; app.plan.len()];
        for &i in &path {
            critical[i as usize] = true;
        }
        let title = format!(
            " timeline · critical path {} actions {} · █ critical ▒ other ",
            path.len(),
            path_duration(app, &path)
        );
        let block = Block::new().borders(Borders::ALL).title(title);
        let inner = block.inner(area);
        block.render(area, buf);
        if inner.width < 20 || inner.height == 0 {
            return;
        }
        let label_width = (inner.width as usize / 3).clamp(8, 28);
        let scale = Scale::new(app, (inner.width as usize).saturating_sub(label_width + 11));
        let (actions, first) = visible_actions(app, inner.height as usize);
        for (line, &idx) in actions
            .iter()
            .enumerate()
            .skip(first)
            .take(inner.height as usize)
        {
            let y = inner.y + (line - first) as u16;
            let row = TimelineRow {
                app,
                scale: &scale,
                label_width,
                critical: critical[idx as usize],
            };
            buf.set_line(inner.x, y, &row.line(idx), inner.width);
        }
    }
}

/// How long the critical path took (so far).
fn path_duration(app: &App, path: &[ActionIdx]) -> String {
    path.first()
        .zip(path.last())
        .and_then(|(&a, &b)| {
            let start = app.state.action(a).started_at?;
            let end = if app.state.action(b).status == ActionStatus::Running {
                app.now
            } else {
                app.state.action(b).finished_at?
            };
            (end - start).to_std().ok()
        })
        .map(format_elapsed)
        .unwrap_or_default()
}

/// The actions of the DAG pane's rows, and the first one that fits in `height` rows with the
/// selected action in view.
fn visible_actions(app: &App, height: usize) -> (Vec<ActionIdx>, usize) {
    let actions: Vec<ActionIdx> = app
        .rows
        .iter()
        .filter_map(|r| match r {
            Row::Action(i) => Some(*i),
            Row::Layer(_) => None,
        })
        .collect();
    let selected_pos = app
        .selected_action()
        .and_then(|s| actions.iter().position(|&i| i == s))
        .unwrap_or(0);
    let first = selected_pos
        .saturating_sub(height.saturating_sub(1))
        .min(actions.len().saturating_sub(height));
    (actions, first)
}

/// Maps times onto the bar's columns: the run's start to the first, its end (or now) past
/// the last.
struct Scale {
    t0: Timestamp,
    total_ms: f64,
    width: usize,
}

impl Scale {
    fn new(app: &App, width: usize) -> Self {
        let t0 = app.state.created_at();
        let t1 = if app.state.status().is_finished() {
            app.state.updated_at()
        } else {
            app.now
        };
        Scale {
            t0,
            total_ms: (t1 - t0).num_milliseconds().max(1) as f64,
            width: width.max(1),
        }
    }

    fn column(&self, t: Timestamp) -> usize {
        let share = (t - self.t0).num_milliseconds().max(0) as f64 / self.total_ms;
        ((share * self.width as f64) as usize).min(self.width - 1)
    }
}

struct TimelineRow<'a> {
    app: &'a App,
    scale: &'a Scale,
    label_width: usize,
    critical: bool,
}

impl TimelineRow<'_> {
    /// `✔ label   ▒▒▒▒▒   1.0s`: the bar spans the action's start to its end (or now).
    fn line(&self, idx: ActionIdx) -> Line<'static> {
        let app = self.app;
        let a = app.state.action(idx);
        let mut bar = vec![' '; self.scale.width];
        if let Some(start) = a.started_at {
            let end = if a.status == ActionStatus::Running {
                app.now
            } else {
                a.finished_at.unwrap_or(app.now)
            };
            let (from, to) = (self.scale.column(start), self.scale.column(end));
            let fill = if self.critical { '█' } else { '▒' };
            for cell in bar.iter_mut().take(to + 1).skip(from) {
                *cell = fill;
            }
        }
        let label_width = self.label_width;
        let label: String = app.plan.label(idx).chars().take(label_width).collect();
        let elapsed = app
            .action_elapsed(idx)
            .map(format_elapsed)
            .unwrap_or_default();
        let mut style = app.style(a.status);
        if self.critical {
            style = style.add_modifier(Modifier::BOLD);
        }
        let mut row_style = ratatui::style::Style::new();
        if app.selected == Some(Row::Action(idx)) {
            row_style = row_style.add_modifier(Modifier::REVERSED);
        }
        Line::from(vec![
            Span::styled(
                format!("{} {label:<label_width$} ", symbol(a.status)),
                style,
            ),
            Span::styled(bar.into_iter().collect::<String>(), style),
            Span::raw(format!(" {elapsed:>7}")),
        ])
        .style(row_style)
    }
}
