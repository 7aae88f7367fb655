//! Dialogs over the screen: the help (generated from the keymap), the re-execute preview and
//! the confirmations. Long dialogs scroll; their last line (what the keys do) always shows.

use baton_core::scheduler::Preview;
use baton_core::{ActionIdx, ActionStatus};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap};

use super::app::{App, Overlay, REEXECUTE_CHOICES};
use super::keymap::{self, Context};
use crate::output::symbol;

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

pub fn render(app: &App, overlay: &Overlay, area: Rect, buf: &mut Buffer) {
    let (title, lines, scroll, keys, width): (String, Vec<Line>, usize, &str, u16) = match overlay {
        Overlay::Help { scroll } => (
            format!(" keys · {} ", app.context().name()),
            help_lines(app.accent(), app.dim(), app.context(), app.read_only),
            *scroll,
            "↑/↓ PgUp/PgDn scroll · Esc closes",
            84,
        ),
        Overlay::ConfirmAbort => (
            " abort the run? ".into(),
            super::ui::confirm_abort_lines(app),
            0,
            "",
            84,
        ),
        Overlay::ConfirmQuit => (
            " quit? ".into(),
            super::ui::confirm_quit_lines(app),
            0,
            "",
            84,
        ),
        Overlay::AbortReport => (
            " run aborted ".into(),
            super::ui::abort_report_lines(app),
            0,
            "",
            92,
        ),
        Overlay::Reexecute {
            choice,
            action,
            previews,
            scroll,
        } => (
            " re-execute ".into(),
            reexecute_lines(app, *choice, *action, &previews[*choice]),
            *scroll,
            "←/→ 1-3 choose · ↑/↓ scroll · y/⏎ re-execute · n/Esc cancel",
            84,
        ),
    };
    dialog(
        app.accent(),
        app.dim(),
        &title,
        lines,
        scroll,
        keys,
        width,
        area,
        buf,
    );
}

/// A bordered dialog: `lines` scrolled by `scroll`, and `keys` pinned to the last row.
#[allow(clippy::too_many_arguments)]
pub fn dialog(
    accent: Style,
    dim: Style,
    title: &str,
    lines: Vec<Line<'static>>,
    scroll: usize,
    keys: &str,
    width: u16,
    area: Rect,
    buf: &mut Buffer,
) {
    let pinned = u16::from(!keys.is_empty());
    let wanted = lines.len() as u16 + 2 + pinned;
    let rect = centered(area, width, wanted);
    Clear.render(rect, buf);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(accent)
        .title(title.to_string());
    let inner = block.inner(rect);
    block.render(rect, buf);
    let room = inner.height.saturating_sub(pinned) as usize;
    let scroll = scroll.min(lines.len().saturating_sub(room));
    let more = lines.len() > room + scroll;
    let body = Rect {
        height: room as u16,
        ..inner
    };
    Paragraph::new(lines.into_iter().skip(scroll).collect::<Vec<_>>())
        .wrap(Wrap { trim: false })
        .render(body, buf);
    if pinned > 0 && inner.height > 0 {
        let mut spans = vec![Span::styled(keys.to_string(), accent)];
        if more || scroll > 0 {
            spans.push(Span::styled(
                format!(
                    "  ({}{})",
                    if scroll > 0 { "↑" } else { "" },
                    if more { "↓ more" } else { "" }
                ),
                dim,
            ));
        }
        buf.set_line(
            inner.x,
            inner.y + inner.height - 1,
            &Line::from(spans),
            inner.width,
        );
    }
}

/// Every key and command of `context`, then the commands that have no key.
pub fn help_lines(
    accent: Style,
    dim: Style,
    context: Context,
    read_only: bool,
) -> Vec<Line<'static>> {
    let mut lines: Vec<Line> = Vec::new();
    let mut keyless = Vec::new();
    for b in keymap::visible(context, read_only) {
        let command = match (b.name, b.args) {
            ("", _) => String::new(),
            (name, "") => format!(":{name}"),
            (name, args) => format!(":{name} {args}"),
        };
        if b.keys.is_empty() {
            keyless.push((command, b.help));
            continue;
        }
        lines.push(Line::from(vec![
            Span::styled(format!("{:<9}", b.label), accent),
            Span::styled(format!("{command:<18} "), dim),
            Span::raw(b.help),
        ]));
    }
    lines.push(Line::raw(""));
    for (command, help) in keyless {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<9}", ""), accent),
            Span::styled(format!("{command:<18} "), accent),
            Span::raw(help),
        ]));
    }
    lines.push(Line::styled(
        "the mouse: click selects, the wheel scrolls (--no-mouse turns it off)",
        dim,
    ));
    lines
}

/// The choices as tabs (naming the action), then what the chosen one would do.
fn reexecute_lines(
    app: &App,
    choice: usize,
    action: Option<ActionIdx>,
    preview: &Option<Preview>,
) -> Vec<Line<'static>> {
    let label = action.map_or("(no action selected)", |i| app.plan.label(i));
    let mut tabs = Vec::new();
    for (i, name) in REEXECUTE_CHOICES.iter().enumerate() {
        let style = if i == choice {
            app.accent().add_modifier(Modifier::REVERSED)
        } else {
            app.dim()
        };
        let text = if i == 0 {
            format!(" {} {name} ", i + 1)
        } else {
            format!(" {} {name} {label} ", i + 1)
        };
        tabs.push(Span::styled(text, style));
        tabs.push(Span::raw(" "));
    }
    let mut lines = vec![Line::from(tabs), Line::raw("")];
    match preview {
        None => lines.push(Line::raw("select an action first")),
        Some(p) => push_preview(app, choice, action, p, &mut lines),
    }
    lines
}

fn push_preview(
    app: &App,
    choice: usize,
    action: Option<ActionIdx>,
    p: &Preview,
    lines: &mut Vec<Line<'static>>,
) {
    if p.will_run.is_empty() {
        let why = match (choice, action) {
            (0, _) => "nothing failed, was blocked or was cancelled".to_string(),
            (_, Some(idx)) if !p.stays_blocked.is_empty() => format!(
                "{} would stay blocked by a failure this choice does not re-execute",
                app.plan.label(idx)
            ),
            _ => "this choice selects nothing".to_string(),
        };
        lines.push(Line::raw(format!("nothing to re-execute: {why}")));
    } else {
        section(app, lines, "will run", &p.will_run, ActionStatus::Running);
        section(
            app,
            lines,
            "reusing the outputs of",
            &p.reused,
            ActionStatus::Complete,
        );
    }
    if !p.stays_blocked.is_empty() {
        lines.push(Line::styled(
            format!("stays blocked ({}):", p.stays_blocked.len()),
            app.style(ActionStatus::Blocked),
        ));
        for &idx in &p.stays_blocked {
            lines.push(Line::from(vec![
                Span::styled(
                    format!("  ⊘ {}", app.plan.label(idx)),
                    app.style(ActionStatus::Blocked),
                ),
                Span::styled(format!("  {}", why_blocked(app, p, idx)), app.dim()),
            ]));
        }
    }
}

fn section(
    app: &App,
    lines: &mut Vec<Line<'static>>,
    title: &str,
    list: &[ActionIdx],
    style: ActionStatus,
) {
    lines.push(Line::styled(
        format!("{title} ({}):", list.len()),
        app.style(style),
    ));
    if list.is_empty() {
        lines.push(Line::raw("  -"));
    }
    for &idx in list {
        let status = app.state.action(idx).status;
        lines.push(Line::from(vec![
            Span::raw("  "),
            Span::styled(
                format!("{} {}", symbol(status), app.plan.label(idx)),
                app.style(status),
            ),
        ]));
    }
}

/// Why a re-executed action would stay blocked: the dependency in its way.
fn why_blocked(app: &App, p: &Preview, idx: ActionIdx) -> String {
    for &dep in app.plan.deps(idx) {
        let status = app.state.action(dep).status;
        if p.stays_blocked.contains(&dep) {
            return format!("needs {}, which stays blocked", app.plan.label(dep));
        }
        let reset = p.will_run.contains(&dep);
        if !reset
            && matches!(
                status,
                ActionStatus::Failed | ActionStatus::Blocked | ActionStatus::Cancelled
            )
        {
            return format!(
                "needs {}, which {status} and is not re-executed",
                app.plan.label(dep)
            );
        }
    }
    "a dependency does not run".to_string()
}
