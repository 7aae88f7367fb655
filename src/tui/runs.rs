//! The runs view, the console's home (bare `baton watch`, `:runs`): the store's runs, newest
//! first, refreshed in the background; Enter opens one, `/` filters, `:` takes commands.

use std::time::{Duration, Instant};

use baton_core::state::Timestamp;
use baton_core::{ActionStatus, RunStatus};
use chrono::Utc;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::app::{Msg, Next};
use super::cmdline::{self, CommandLine, Outcome, Words};
use super::keymap::{self, Command, Context};
use super::term::Term;
use crate::args::StoreArgs;
use crate::commands::runs::RunRow;
use crate::output::{format_elapsed, plural, symbol};
use crate::Failure;

/// How often the list is read again.
const REFRESH: Duration = Duration::from_secs(2);

/// What the runs view receives besides input.
#[derive(Debug)]
pub enum Listed {
    Rows(Vec<RunRow>, Vec<String>),
    Failed(String),
}

pub struct RunsView {
    /// The store, as the operator named it.
    pub store: String,
    pub rows: Vec<RunRow>,
    /// Runs that could not be read.
    pub problems: Vec<String>,
    pub loaded: bool,
    pub error: Option<String>,
    pub filter: String,
    pub filter_editing: Option<String>,
    /// The selected run's id (kept across refreshes).
    pub selected: Option<String>,
    pub offset: usize,
    pub size: (u16, u16),
    pub color: bool,
    pub now: Timestamp,
    pub flash: Option<String>,
    pub command_line: Option<CommandLine>,
    pub help: Option<usize>,
}

impl RunsView {
    pub fn new(store: &str, color: bool, notice: Option<String>) -> Self {
        RunsView {
            store: store.to_string(),
            rows: Vec::new(),
            problems: Vec::new(),
            loaded: false,
            error: None,
            filter: String::new(),
            filter_editing: None,
            selected: None,
            offset: 0,
            size: (80, 24),
            color,
            now: Utc::now(),
            flash: notice,
            command_line: None,
            help: None,
        }
    }

    /// The rows the filter lets through: a prefix of the id (or a word in it), the status or
    /// the driver.
    pub fn shown(&self) -> Vec<&RunRow> {
        let needle = self.filter.to_lowercase();
        self.rows
            .iter()
            .filter(|r| {
                needle.is_empty()
                    || r.id.to_lowercase().starts_with(&needle)
                    || r.id.split(['-', '_', '.']).any(|w| w.starts_with(&needle))
                    || r.status.as_str().starts_with(&needle)
                    || r.driver_text().starts_with(&needle)
            })
            .collect()
    }

    fn cursor(&self) -> usize {
        let shown = self.shown();
        self.selected
            .as_ref()
            .and_then(|id| shown.iter().position(|r| &r.id == id))
            .unwrap_or(0)
    }

    fn rows_room(&self) -> usize {
        usize::from(self.size.1.saturating_sub(5)).max(1)
    }

    fn select(&mut self, at: usize) {
        let shown = self.shown();
        if shown.is_empty() {
            return;
        }
        let at = at.min(shown.len() - 1);
        self.selected = Some(shown[at].id.clone());
        let room = self.rows_room();
        if at < self.offset {
            self.offset = at;
        } else if at >= self.offset + room {
            self.offset = at + 1 - room;
        }
    }

    fn style(&self, status: RunStatus) -> Style {
        if !self.color {
            return Style::new();
        }
        Style::new().fg(match status {
            RunStatus::Running | RunStatus::Waiting => Color::Yellow,
            RunStatus::Succeeded => Color::Green,
            RunStatus::Failed => Color::Red,
            RunStatus::Aborted => Color::DarkGray,
        })
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

    /// Handles a message; `Some` once the view closes.
    pub fn update(&mut self, msg: Msg) -> Option<Next> {
        match msg {
            Msg::Key(key) => self.on_key(key),
            Msg::Resize(w, h) => {
                self.size = (w, h);
                None
            }
            Msg::Tick(now) => {
                self.now = now;
                None
            }
            Msg::Mouse(mouse) => {
                use ratatui::crossterm::event::MouseEventKind;
                match mouse.kind {
                    MouseEventKind::ScrollUp => self.run(Command::Up, None),
                    MouseEventKind::ScrollDown => self.run(Command::Down, None),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    pub fn listed(&mut self, listed: Listed) {
        self.loaded = true;
        match listed {
            Listed::Rows(rows, problems) => {
                self.rows = rows;
                self.problems = problems;
                self.error = None;
                if self.selected.is_none() {
                    self.selected = self.shown().first().map(|r| r.id.clone());
                }
            }
            Listed::Failed(error) => self.error = Some(error),
        }
    }

    fn on_key(&mut self, key: KeyEvent) -> Option<Next> {
        let ctrl_c =
            key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        if let Some(mut line) = self.command_line.take() {
            let ids: Vec<String> = self.rows.iter().map(|r| r.id.clone()).collect();
            let words = Words {
                context: Context::Runs,
                read_only: true,
                run_ids: &ids,
                labels: Vec::new(),
            };
            return match line.on_key(key, &words) {
                Outcome::Editing => {
                    self.command_line = Some(line);
                    None
                }
                Outcome::Cancelled => None,
                Outcome::Quit => Some(Next::Exit),
                Outcome::Run(text) if text.is_empty() => None,
                Outcome::Run(text) => match cmdline::parse(&text) {
                    Ok((command, arg)) => self.run(command, arg),
                    Err(message) => {
                        self.flash = Some(message);
                        None
                    }
                },
            };
        }
        if ctrl_c {
            return Some(Next::Exit);
        }
        if self.filter_editing.is_some() {
            match key.code {
                KeyCode::Esc => self.filter = self.filter_editing.take().unwrap_or_default(),
                KeyCode::Enter => self.filter_editing = None,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            }
            self.offset = 0;
            self.select(0);
            return None;
        }
        if let Some(scroll) = self.help {
            self.help = match key.code {
                KeyCode::Down | KeyCode::Char('j') => Some(scroll + 1),
                KeyCode::Up | KeyCode::Char('k') => Some(scroll.saturating_sub(1)),
                _ => None,
            };
            return None;
        }
        let command = keymap::lookup(&key, Context::Runs)?.command;
        self.run(command, None)
    }

    /// Runs a command from a key or the command line.
    pub fn run(&mut self, command: Command, arg: Option<&str>) -> Option<Next> {
        let at = self.cursor();
        let page = self.rows_room().saturating_sub(1).max(1);
        match command {
            Command::Up => self.select(at.saturating_sub(1)),
            Command::Down => self.select(at + 1),
            Command::PageUp => self.select(at.saturating_sub(page)),
            Command::PageDown => self.select(at + page),
            Command::Top => self.select(0),
            Command::Bottom => self.select(usize::MAX),
            Command::Open => return self.shown().get(at).map(|r| Next::Run(r.run.clone())),
            Command::OpenRun => match arg {
                Some(id) => return Some(Next::Run(id.trim().to_string())),
                None => self.flash = Some("which run? :run <id> (Tab completes)".into()),
            },
            Command::Filter => match arg {
                Some(expr) => self.filter = expr.trim().to_string(),
                None => self.filter_editing = Some(self.filter.clone()),
            },
            Command::CommandLine => self.command_line = Some(CommandLine::default()),
            Command::Help => self.help = Some(0),
            Command::Back => {
                self.filter.clear();
                self.flash = None;
            }
            Command::Quit => return Some(Next::Exit),
            Command::Runs => {}
            _ => self.flash = Some("that command works on a run: open one first".into()),
        }
        None
    }
}

/// Shows the runs view until the operator opens a run or quits.
pub async fn show(
    term: &mut Term,
    store: &StoreArgs,
    notice: Option<String>,
) -> Result<Next, Failure> {
    let (tx, mut rx) = unbounded_channel::<Msg>();
    let (list_tx, mut list_rx) = unbounded_channel::<Listed>();
    term.input.attach(tx.clone());
    let lister = spawn_lister(store.clone(), list_tx);
    let clock = spawn_clock(tx);
    let mut view = RunsView::new(&store.store, super::term::color_wanted(), notice);
    let size = term.terminal.size().unwrap_or_default();
    view.update(Msg::Resize(size.width, size.height));
    let mut last_draw = Instant::now() - super::FRAME;
    let mut dirty = true;
    let next = loop {
        if dirty && last_draw.elapsed() >= super::FRAME {
            term.terminal
                .draw(|frame| frame.render_widget(&view, frame.area()))
                .map_err(|e| Failure::Infra(format!("drawing failed: {e}")))?;
            last_draw = Instant::now();
            dirty = false;
        }
        let wait = super::FRAME.saturating_sub(last_draw.elapsed());
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(msg) => {
                    dirty = true;
                    if let Some(next) = view.update(msg) {
                        break next;
                    }
                }
                None => break Next::Exit,
            },
            listed = list_rx.recv() => {
                if let Some(listed) = listed {
                    view.listed(listed);
                    dirty = true;
                }
            }
            _ = tokio::time::sleep(wait), if dirty => {}
        }
    };
    lister.abort();
    clock.abort();
    Ok(next)
}

fn spawn_lister(store: StoreArgs, tx: UnboundedSender<Listed>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let listed = match crate::commands::runs::list(&store).await {
                Ok((rows, problems)) => Listed::Rows(rows, problems),
                Err(e) => Listed::Failed(e.to_string()),
            };
            if tx.send(listed).is_err() {
                return;
            }
            tokio::time::sleep(REFRESH).await;
        }
    })
}

fn spawn_clock(tx: UnboundedSender<Msg>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if tx.send(Msg::Tick(Utc::now())).is_err() {
                return;
            }
        }
    })
}

impl Widget for &RunsView {
    fn render(self, area: Rect, buf: &mut Buffer) {
        use super::ui::{MIN_HEIGHT, MIN_WIDTH};
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            Paragraph::new(format!(
                "terminal too small: baton needs at least {MIN_WIDTH}x{MIN_HEIGHT} (this one is {}x{}); enlarge it",
                area.width, area.height
            ))
            .wrap(Wrap { trim: true })
            .render(area, buf);
            return;
        }
        let status_rows = u16::from(self.flash.is_some() || self.error.is_some());
        let [header, body, status, footer] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Min(1),
            Constraint::Length(status_rows),
            Constraint::Length(1),
        ])
        .areas(area);
        render_header(self, header, buf);
        render_table(self, body, buf);
        if let Some(text) = self.error.as_ref().or(self.flash.as_ref()) {
            buf.set_line(
                status.x,
                status.y,
                &Line::styled(format!(" {text}"), self.accent()),
                status.width,
            );
        }
        render_footer(self, footer, buf);
        if let Some(scroll) = self.help {
            render_help(self, scroll, area, buf);
        }
    }
}

fn render_header(view: &RunsView, area: Rect, buf: &mut Buffer) {
    let shown = view.shown().len();
    let mut count = plural(view.rows.len(), "run");
    if !view.filter.is_empty() || view.filter_editing.is_some() {
        count = if shown == 0 {
            format!("/{} no matches of {count}", view.filter)
        } else {
            format!("/{} {shown} of {count}", view.filter)
        };
    }
    if !view.problems.is_empty() {
        count.push_str(&format!(" · {} unreadable", view.problems.len()));
    }
    let lines = vec![
        Line::from(vec![
            Span::styled(" baton ", view.accent().add_modifier(Modifier::BOLD)),
            Span::raw(format!("runs in {}  ", view.store)),
            Span::styled(count, view.dim()),
        ]),
        Line::styled(
            if area.width < super::ui::COMPACT_BELOW {
                format!(
                    " {:<28} {:<11} {:>8}  {:<14} DRIVER",
                    "RUN", "STATUS", "DURATION", "ACTIONS"
                )
            } else {
                format!(
                    " {:<32} {:<11} {:<19} {:>8}  {:<22} DRIVER",
                    "RUN", "STATUS", "STARTED", "DURATION", "ACTIONS"
                )
            },
            view.dim(),
        ),
    ];
    Paragraph::new(lines).render(area, buf);
}

fn render_table(view: &RunsView, area: Rect, buf: &mut Buffer) {
    let shown = view.shown();
    if shown.is_empty() {
        let text = if !view.loaded {
            "reading the runs…".to_string()
        } else if view.rows.is_empty() {
            format!(
                "no runs in {} yet (start one with `baton run FILE`)",
                view.store
            )
        } else {
            format!("no matches for /{} (Esc clears the filter)", view.filter)
        };
        Paragraph::new(Line::styled(text, view.dim()))
            .wrap(Wrap { trim: true })
            .render(area, buf);
        return;
    }
    let cursor = view.cursor();
    let height = area.height as usize;
    let offset = view
        .offset
        .max((cursor + 1).saturating_sub(height))
        .min(cursor);
    for (i, row) in shown.iter().enumerate().skip(offset).take(height) {
        let y = area.y + (i - offset) as u16;
        let status = row.status;
        let symbol = match status {
            RunStatus::Running | RunStatus::Waiting => symbol(ActionStatus::Running),
            RunStatus::Succeeded => symbol(ActionStatus::Complete),
            RunStatus::Failed => symbol(ActionStatus::Failed),
            RunStatus::Aborted => symbol(ActionStatus::Cancelled),
        };
        let compact = area.width < super::ui::COMPACT_BELOW;
        let (id_width, counts_width) = if compact { (28, 14) } else { (32, 22) };
        let started = if compact {
            String::new()
        } else {
            format!("{} ", row.started.format("%Y-%m-%d %H:%M:%S"))
        };
        let line = Line::from(vec![
            Span::raw(format!(
                " {:<id_width$} ",
                super::ui::shorten(&row.id, id_width)
            )),
            Span::styled(
                format!("{symbol} {:<9} ", status.as_str()),
                view.style(status),
            ),
            Span::raw(format!(
                "{started}{:>8}  {:<counts_width$} {}",
                format_elapsed(row.duration),
                super::ui::shorten(
                    &format!("{} {}", row.actions, row.counts_text()),
                    counts_width
                ),
                row.driver_text()
            )),
        ]);
        buf.set_line(area.x, y, &line, area.width);
        if i == cursor {
            buf.set_style(
                Rect::new(area.x, y, area.width, 1),
                Style::new().add_modifier(Modifier::REVERSED),
            );
        }
    }
}

fn render_footer(view: &RunsView, area: Rect, buf: &mut Buffer) {
    let line = if let Some(line) = &view.command_line {
        line.line(view.accent(), view.dim())
    } else if view.filter_editing.is_some() {
        Line::from(vec![
            Span::styled("/", view.accent()),
            Span::raw(format!("{}█", view.filter)),
            Span::styled("   Enter keeps · Esc restores", view.dim()),
        ])
    } else {
        let mut spans = Vec::new();
        for (key, word) in super::ui::hints(Context::Runs, true, area.width as usize) {
            spans.push(Span::styled(
                format!(" {key} "),
                view.accent().add_modifier(Modifier::BOLD),
            ));
            spans.push(Span::raw(format!("{word} ")));
        }
        Line::from(spans)
    };
    buf.set_line(area.x, area.y, &line, area.width);
}

fn render_help(view: &RunsView, scroll: usize, area: Rect, buf: &mut Buffer) {
    let lines = super::overlay::help_lines(view.accent(), view.dim(), Context::Runs, true);
    super::overlay::dialog(
        view.accent(),
        view.dim(),
        " keys · runs ",
        lines,
        scroll,
        "↑/↓ scroll · any other key closes",
        84,
        area,
        buf,
    );
}
