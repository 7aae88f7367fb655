//! A log thread, in the main screen's pane or full screen: it follows the newest line, or
//! holds still at an absolute line while new ones arrive (lines dropped from the front of a
//! full ring are counted, so a held position stays on the same line); `/` searches, `n`/`N`
//! step through the matches, `w` wraps, `f` follows.

use baton_core::state::{Level, LogEntry};
use baton_core::ActionStatus;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::app::{App, Effect, Screen};
use super::keymap::Command;

/// Entries a thread keeps (the store's ring); a full thread has dropped older lines.
pub const KEPT_PER_THREAD: usize = 200;

#[derive(Debug, Clone)]
pub struct LogView {
    /// The absolute number of the first line shown (counting dropped lines); `None` follows
    /// the newest line.
    pub top: Option<u64>,
    pub run_thread: bool,
    /// Remote runs: the execution's newest history events instead of a log thread.
    pub history: bool,
    pub timestamps: bool,
    pub wrap: bool,
    pub search: String,
    /// While the search is being typed: what it was before (Esc puts it back).
    pub search_editing: Option<String>,
}

impl Default for LogView {
    fn default() -> Self {
        LogView {
            top: None,
            run_thread: false,
            history: false,
            timestamps: false,
            wrap: true,
            search: String::new(),
            search_editing: None,
        }
    }
}

/// Commands the full-screen log answers itself.
pub fn handles(command: Command) -> bool {
    matches!(
        command,
        Command::Up
            | Command::Down
            | Command::PageUp
            | Command::PageDown
            | Command::Top
            | Command::Bottom
            | Command::Search
            | Command::NextMatch
            | Command::PreviousMatch
            | Command::Wrap
            | Command::Follow
    )
}

pub fn on_command(app: &mut App, command: Command, arg: Option<&str>) -> Vec<Effect> {
    let height = super::ui::log_screen_rows(app);
    match command {
        Command::Search => {
            app.screen = Screen::Log;
            match arg {
                Some(text) => {
                    app.log.search = text.trim().to_string();
                    jump_to_match(app, true, true);
                }
                None => app.log.search_editing = Some(app.log.search.clone()),
            }
        }
        Command::NextMatch => jump_to_match(app, true, false),
        Command::PreviousMatch => jump_to_match(app, false, false),
        Command::Wrap => app.log.wrap = !app.log.wrap,
        Command::Follow => {
            app.log.top = match app.log.top {
                Some(_) => None,
                None => Some(first_shown(app, height)),
            };
        }
        _ => scroll(app, command, height),
    }
    Vec::new()
}

/// The absolute number of the first line shown when following, on `height` rows.
fn first_shown(app: &App, height: usize) -> u64 {
    let base = app.log_dropped();
    base + (app.log_entries().len().saturating_sub(height)) as u64
}

/// Scrolls the log shown on `height` rows.
pub fn scroll(app: &mut App, command: Command, height: usize) {
    let base = app.log_dropped();
    let last_page = first_shown(app, height);
    let current = app.log.top.unwrap_or(last_page).max(base);
    let page = height.saturating_sub(1).max(1) as u64;
    app.log.top = match command {
        Command::Up => Some(current.saturating_sub(1).max(base)),
        Command::Down => Some((current + 1).min(last_page)),
        Command::PageUp => Some(current.saturating_sub(page).max(base)),
        Command::PageDown => Some((current + page).min(last_page)),
        Command::Top => Some(base),
        Command::Bottom => None,
        _ => app.log.top,
    };
}

/// Cycles the thread: the action's → the run's → (remote runs) the execution's history.
pub fn cycle_thread(app: &mut App) {
    (app.log.run_thread, app.log.history) = match (app.log.run_thread, app.log.history) {
        (false, _) => (true, false),
        (true, false) if app.remote.is_some() => (true, true),
        _ => (false, false),
    };
    app.log.top = None;
}

pub fn on_search_key(app: &mut App, key: KeyEvent) {
    match key.code {
        KeyCode::Esc => app.log.search = app.log.search_editing.take().unwrap_or_default(),
        KeyCode::Enter => {
            app.log.search_editing = None;
            jump_to_match(app, true, true);
        }
        KeyCode::Backspace => {
            app.log.search.pop();
        }
        KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
            app.log.search.push(c)
        }
        _ => {}
    }
}

fn is_match(entry: &LogEntry, needle: &str) -> bool {
    entry.msg.to_lowercase().contains(needle)
}

/// Moves to the next (or previous) line matching the search; `from_here` includes the line
/// at the top.
fn jump_to_match(app: &mut App, forward: bool, from_here: bool) {
    if app.log.search.is_empty() {
        app.say("no search: / searches the log");
        return;
    }
    let needle = app.log.search.to_lowercase();
    let height = super::ui::log_screen_rows(app);
    let base = app.log_dropped();
    let current = (app
        .log
        .top
        .unwrap_or_else(|| first_shown(app, height))
        .max(base)
        - base) as usize;
    let entries = app.log_entries();
    let found = if forward {
        let start = if from_here { current } else { current + 1 };
        entries
            .iter()
            .enumerate()
            .skip(start)
            .find(|(_, e)| is_match(e, &needle))
            .map(|(i, _)| i)
    } else {
        entries
            .iter()
            .enumerate()
            .take(current)
            .rev()
            .find(|(_, e)| is_match(e, &needle))
            .map(|(i, _)| i)
    };
    // Past the last (first) match, the search wraps around.
    let wrapped = if found.is_none() {
        let mut all = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| is_match(e, &needle));
        if forward {
            all.next().map(|(i, _)| i)
        } else {
            all.next_back().map(|(i, _)| i)
        }
    } else {
        None
    };
    let found = found.or(wrapped);
    let count = entries.iter().filter(|e| is_match(e, &needle)).count();
    let nth = found.map(|i| {
        entries
            .iter()
            .take(i + 1)
            .filter(|e| is_match(e, &needle))
            .count()
    });
    match (found, nth) {
        (Some(i), Some(nth)) => {
            app.log.top = Some(base + i as u64);
            let note = if wrapped.is_some() { " (wrapped)" } else { "" };
            app.say(format!(
                "match {nth} of {count} for \"{}\"{note}",
                app.log.search
            ));
        }
        _ => app.say(format!("no match for \"{}\"", app.log.search)),
    }
}

/// What the log's title says about its position.
pub fn position(app: &App, height: usize) -> String {
    let len = app.log_entries().len() as u64;
    let base = app.log_dropped();
    match app.log.top {
        None => "following".to_string(),
        Some(top) => {
            let first = top.max(base) - base + 1;
            let last = (first + height as u64 - 1).min(len);
            format!("lines {first}-{last} of {len} · End follows")
        }
    }
}

/// Renders the shown thread into `inner` (no borders).
pub fn render_lines(app: &App, inner: Rect, buf: &mut Buffer) {
    let height = inner.height as usize;
    let width = (inner.width as usize).max(1);
    if height == 0 {
        return;
    }
    let entries = app.log_entries();
    let base = app.log_dropped();
    let dropped_before = base > 0 || entries.len() >= KEPT_PER_THREAD;
    let needle = app.log.search.to_lowercase();
    let mut rows: Vec<Line> = Vec::with_capacity(height);
    let marker = Line::styled(
        format!(
            "⋯ earlier lines dropped: a thread keeps its newest {KEPT_PER_THREAD} (baton logs prints what is kept)"
        ),
        app.dim(),
    );
    match app.log.top {
        None => {
            // Fill from the newest line upwards.
            let mut all = true;
            for entry in entries.iter().rev() {
                if rows.len() >= height {
                    all = false;
                    break;
                }
                rows.extend(entry_rows(app, entry, width, &needle).into_iter().rev());
            }
            if all && dropped_before && rows.len() < height {
                rows.push(marker);
            }
            rows.truncate(height);
            rows.reverse();
        }
        Some(top) => {
            let start = (top.max(base) - base) as usize;
            if start == 0 && dropped_before {
                rows.push(marker);
            }
            for entry in entries.iter().skip(start) {
                if rows.len() >= height {
                    break;
                }
                rows.extend(entry_rows(app, entry, width, &needle));
            }
            rows.truncate(height);
        }
    }
    for (y, line) in rows.iter().enumerate() {
        buf.set_line(inner.x, inner.y + y as u16, line, inner.width);
    }
    if entries.is_empty() {
        ratatui::widgets::Paragraph::new(Line::styled("(no log entries yet)", app.dim()))
            .render(inner, buf);
    }
}

/// One entry as rows of `width`: its time and level (dimmed) first, search matches
/// highlighted; wrapped, or cut with `…`.
fn entry_rows(app: &App, entry: &LogEntry, width: usize, needle: &str) -> Vec<Line<'static>> {
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
    let prefix_len = prefix.chars().count();
    let text: Vec<char> = prefix.chars().chain(entry.msg.chars()).collect();
    let mut styles: Vec<Style> = (0..text.len())
        .map(|i| if i < prefix_len { app.dim() } else { style })
        .collect();
    if !needle.is_empty() {
        let lower: Vec<char> = entry.msg.to_lowercase().chars().collect();
        let needle: Vec<char> = needle.chars().collect();
        if lower.len() == entry.msg.chars().count() {
            let mut i = 0;
            while i + needle.len() <= lower.len() {
                if lower[i..i + needle.len()] == needle[..] {
                    for s in &mut styles[prefix_len + i..prefix_len + i + needle.len()] {
                        *s = s.add_modifier(Modifier::REVERSED);
                    }
                    i += needle.len();
                } else {
                    i += 1;
                }
            }
        }
    }
    let row = |from: usize, to: usize, cut: bool| {
        let mut spans: Vec<Span> = Vec::new();
        let mut start = from;
        while start < to {
            let s = styles[start];
            let end = (start..to).find(|&i| styles[i] != s).unwrap_or(to);
            spans.push(Span::styled(text[start..end].iter().collect::<String>(), s));
            start = end;
        }
        if cut {
            spans.push(Span::styled("…", app.dim()));
        }
        Line::from(spans)
    };
    if !app.log.wrap {
        let cut = text.len() > width;
        let end = if cut {
            width.saturating_sub(1)
        } else {
            text.len()
        };
        return vec![row(0, end, cut)];
    }
    if text.is_empty() {
        return vec![Line::raw("")];
    }
    (0..text.len())
        .step_by(width)
        .map(|from| row(from, (from + width).min(text.len()), false))
        .collect()
}
