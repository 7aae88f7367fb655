//! One action, full screen (Enter on it): its error first, status and timings, what it needs
//! and what needs it as links to follow, its rendered params and outputs as a collapsible
//! JSON tree, and the newest lines of its log (`v` opens the log full screen).

use std::collections::HashSet;

use baton_core::{ActionIdx, ActionStatus};
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, StatefulWidget, Widget, Wrap};
use serde_json::Value;
use tui_tree_widget::{Tree, TreeItem, TreeState};

use super::app::{App, Effect, Screen};
use super::keymap::Command;
use crate::output::{format_elapsed, symbol};

/// The part of the inspect view that has the focus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Section {
    #[default]
    Links,
    Tree,
}

#[derive(Debug, Clone, Default)]
pub struct Inspect {
    pub idx: ActionIdx,
    pub section: Section,
    /// The selected link, counting the needs first, then the needed-by.
    pub link: usize,
    /// Open nodes of the params/outputs tree, as paths.
    pub opened: HashSet<Vec<String>>,
    pub selected: Vec<String>,
    /// The full-screen log was opened from here (Esc comes back here).
    pub log_back: bool,
}

/// Opens the inspect view on `idx`.
pub fn open(app: &mut App, idx: ActionIdx) {
    let mut opened = HashSet::new();
    opened.insert(vec!["params".to_string()]);
    opened.insert(vec!["outputs".to_string()]);
    app.inspect = Inspect {
        idx,
        section: if links(app, idx).is_empty() {
            Section::Tree
        } else {
            Section::Links
        },
        link: 0,
        opened,
        selected: vec!["params".to_string()],
        log_back: false,
    };
    app.screen = Screen::Inspect;
    app.log.top = None;
}

/// Where Esc goes from a full-screen view.
pub fn back_from(app: &mut App) -> Screen {
    match app.screen {
        Screen::Log if app.inspect.log_back => {
            app.inspect.log_back = false;
            Screen::Inspect
        }
        _ => Screen::Main,
    }
}

/// Commands the inspect view answers itself.
pub fn handles(command: Command) -> bool {
    matches!(
        command,
        Command::Up
            | Command::Down
            | Command::PageUp
            | Command::PageDown
            | Command::Top
            | Command::Bottom
            | Command::Open
            | Command::Expand
            | Command::Collapse
            | Command::SwitchPane
            | Command::FullLog
    )
}

/// The links: what the action needs, then what needs it.
pub fn links(app: &App, idx: ActionIdx) -> Vec<ActionIdx> {
    app.plan
        .deps(idx)
        .iter()
        .chain(app.plan.dependents(idx))
        .copied()
        .collect()
}

pub fn on_command(app: &mut App, command: Command) -> Vec<Effect> {
    let idx = app.inspect.idx;
    match command {
        Command::SwitchPane => {
            app.inspect.section = match app.inspect.section {
                Section::Links => Section::Tree,
                Section::Tree => Section::Links,
            }
        }
        Command::FullLog => {
            app.inspect.log_back = true;
            app.screen = Screen::Log;
        }
        _ if app.inspect.section == Section::Links => {
            let links = links(app, idx);
            let last = links.len().saturating_sub(1);
            let at = app.inspect.link;
            match command {
                Command::Up => app.inspect.link = at.saturating_sub(1),
                Command::Down => app.inspect.link = (at + 1).min(last),
                Command::PageUp | Command::Top => app.inspect.link = 0,
                Command::PageDown | Command::Bottom => app.inspect.link = last,
                Command::Open | Command::Expand => {
                    if let Some(&target) = links.get(at) {
                        app.reveal(target);
                        open(app, target);
                    }
                }
                _ => {}
            }
        }
        _ => on_tree_command(app, command),
    }
    Vec::new()
}

fn on_tree_command(app: &mut App, command: Command) {
    let items = tree_items(app, app.inspect.idx);
    let mut state = tree_state(app);
    let visible: Vec<Vec<String>> = state
        .flatten(&items)
        .into_iter()
        .map(|f| f.identifier)
        .collect();
    let at = visible
        .iter()
        .position(|id| *id == app.inspect.selected)
        .unwrap_or(0);
    let last = visible.len().saturating_sub(1);
    let target = match command {
        Command::Up => Some(at.saturating_sub(1)),
        Command::Down => Some((at + 1).min(last)),
        Command::PageUp => Some(at.saturating_sub(10)),
        Command::PageDown => Some((at + 10).min(last)),
        Command::Top => Some(0),
        Command::Bottom => Some(last),
        _ => None,
    };
    if let Some(target) = target {
        if let Some(id) = visible.get(target) {
            app.inspect.selected = id.clone();
        }
        return;
    }
    let selected = app.inspect.selected.clone();
    match command {
        Command::Open => {
            state.toggle(selected);
        }
        Command::Expand => {
            state.open(selected);
        }
        Command::Collapse if !state.close(&selected) && selected.len() > 1 => {
            app.inspect.selected.pop();
        }
        _ => {}
    }
    app.inspect.opened = state.opened().clone();
}

fn tree_state(app: &App) -> TreeState<String> {
    let mut state = TreeState::default();
    for path in &app.inspect.opened {
        state.open(path.clone());
    }
    state.select(app.inspect.selected.clone());
    state
}

/// The params (rendered, secrets masked) and outputs as tree items.
fn tree_items(app: &App, idx: ActionIdx) -> Vec<TreeItem<'static, String>> {
    let mut items = Vec::new();
    let params = app
        .selected_params()
        .map(|p| p.value.clone())
        .unwrap_or(Value::Null);
    items.push(json_item("params".into(), "params", &params));
    let outputs = &app.state.action(idx).outputs;
    let outputs = if outputs.is_empty() {
        Value::Null
    } else {
        app.secrets
            .redact_value(&Value::Object((**outputs).clone()))
    };
    items.push(json_item("outputs".into(), "outputs", &outputs));
    items
}

fn json_item(id: String, key: &str, value: &Value) -> TreeItem<'static, String> {
    let children: Vec<TreeItem<'static, String>> = match value {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| json_item(k.clone(), k, v))
            .collect(),
        Value::Array(list) => list
            .iter()
            .enumerate()
            .map(|(i, v)| json_item(i.to_string(), &format!("[{i}]"), v))
            .collect(),
        _ => Vec::new(),
    };
    let text = match value {
        Value::Object(map) => format!("{key} {{{}}}", map.len()),
        Value::Array(list) => format!("{key} [{}]", list.len()),
        Value::Null if key == "params" || key == "outputs" => format!("{key}: -"),
        other => format!("{key}: {other}"),
    };
    if children.is_empty() {
        return TreeItem::new_leaf(id, text);
    }
    let fallback = TreeItem::new_leaf(id.clone(), text.clone());
    TreeItem::new(id, text, children).unwrap_or(fallback)
}

/// The inspect view, in the body area.
pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let idx = app.inspect.idx;
    let def = app.plan.action(idx);
    let title = format!(
        " inspect · {} · {} · Esc back ",
        def.label,
        def.action_type.name()
    );
    let block = super::ui::pane_block(app, title, true);
    let inner = block.inner(area);
    block.render(area, buf);
    let wide = inner.width >= 100;
    let [top, log] =
        Layout::vertical([Constraint::Percentage(70), Constraint::Percentage(30)]).areas(inner);
    let (facts, tree) = if wide {
        let [a, b] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
        (a, b)
    } else {
        let [a, b] =
            Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
        (a, b)
    };
    Paragraph::new(fact_lines(app, idx))
        .wrap(Wrap { trim: false })
        .render(facts, buf);
    render_tree(app, idx, tree, buf);
    let log_block = Block::new()
        .borders(Borders::TOP)
        .border_style(app.dim())
        .title(Span::styled(" log · v full screen ", app.dim()));
    let log_inner = log_block.inner(log);
    log_block.render(log, buf);
    super::logview::render_lines(app, log_inner, buf);
}

fn render_tree(app: &App, idx: ActionIdx, area: Rect, buf: &mut Buffer) {
    let focused = app.inspect.section == super::inspect::Section::Tree;
    let block = Block::new()
        .borders(Borders::LEFT | Borders::TOP)
        .border_style(if focused { app.accent() } else { app.dim() })
        .title(Span::styled(
            " params & outputs · ←/→ fold ",
            if focused { app.accent() } else { app.dim() },
        ));
    let items = tree_items(app, idx);
    let highlight = if focused {
        Style::new().add_modifier(Modifier::REVERSED)
    } else {
        Style::new().add_modifier(Modifier::BOLD)
    };
    match Tree::new(&items) {
        Ok(tree) => {
            let tree = tree
                .block(block)
                .highlight_style(highlight)
                .node_closed_symbol("▸ ")
                .node_open_symbol("▾ ")
                .node_no_children_symbol("  ");
            StatefulWidget::render(tree, area, buf, &mut tree_state(app));
        }
        Err(_) => {
            let text = serde_json::to_string_pretty(&app.selected_params().map(|p| &p.value))
                .unwrap_or_default();
            Paragraph::new(text).block(block).render(area, buf);
        }
    }
}

/// The error first, then what blocks it, status and timings, the links, the definition.
fn fact_lines(app: &App, idx: ActionIdx) -> Vec<Line<'static>> {
    let def = app.plan.action(idx);
    let a = app.state.action(idx);
    let key = |k: &str| Span::styled(format!("{k:<11}"), app.dim());
    let mut lines = Vec::new();
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
    lines.push(Line::from(vec![
        key("status"),
        Span::styled(
            format!("{} {}  attempt {}", symbol(a.status), a.status, a.attempt),
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
    for (name, at) in [
        ("started", &a.started_at),
        ("finished", &a.finished_at),
        ("next check", &a.next_check_at),
    ] {
        if let Some(at) = time(at) {
            lines.push(Line::from(vec![key(name), Span::raw(at)]));
        }
    }
    super::ui::push_definition(app, def, &mut lines);
    if let Some(reason) = app.selected_params().and_then(|p| p.not_rendered.clone()) {
        lines.push(Line::from(vec![
            key("params"),
            Span::styled(format!("as written: {reason}"), app.dim()),
        ]));
    }
    push_links(app, idx, &mut lines);
    if let Some(description) = &def.details().description {
        lines.push(Line::raw(""));
        lines.push(Line::from(description.clone()));
    }
    lines
}

/// `needs` and `needed by`, one link a line; the selected one marked while links have focus.
fn push_links(app: &App, idx: ActionIdx, lines: &mut Vec<Line<'static>>) {
    let focused = app.inspect.section == Section::Links;
    let needs = app.plan.deps(idx);
    let mut n = 0;
    for (title, list) in [("needs", needs), ("needed by", app.plan.dependents(idx))] {
        let mut first = true;
        if list.is_empty() {
            lines.push(Line::from(vec![
                Span::styled(format!("{title:<11}"), app.dim()),
                Span::raw("-"),
            ]));
        }
        for &i in list {
            let head = if first { title } else { "" };
            first = false;
            let status = app.state.action(i).status;
            let mut style = app.style(status);
            if focused && n == app.inspect.link {
                style = style.add_modifier(Modifier::REVERSED);
            }
            lines.push(Line::from(vec![
                Span::styled(format!("{head:<11}"), app.dim()),
                Span::styled(format!("→ {} {}", symbol(status), app.plan.label(i)), style),
            ]));
            n += 1;
        }
    }
}
