//! The terminal a console session draws in, the keyboard reader beside it, and the console's
//! settings (colour, mouse).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::DefaultTerminal;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::app::Msg;
use super::terminal::{restore_terminal, terminal_taken};
use super::ui::{MIN_HEIGHT, MIN_WIDTH};
use crate::Failure;

/// Colour unless `NO_COLOR` is set (<https://no-color.org>).
pub fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Console settings from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Clicks and the wheel (`--no-mouse` turns them off).
    pub mouse: bool,
    /// Colour (`NO_COLOR` or the config file turn it off).
    pub color: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Records the console settings (called once, at start-up).
pub fn configure(settings: Settings) {
    let _ = SETTINGS.set(settings);
}

fn mouse_wanted() -> bool {
    SETTINGS.get().is_none_or(|s| s.mouse)
}

/// Whether the console draws in colour.
pub(super) fn color_wanted() -> bool {
    SETTINGS.get().map_or_else(color_enabled, |s| s.color)
}

/// Why this terminal cannot show the console (`TERM=dumb`, or smaller than the console's
/// minimum), said once on stderr; `None` when it can.
pub fn unusable_terminal() -> Option<String> {
    static SAID: std::sync::Once = std::sync::Once::new();
    let why = if std::env::var("TERM").is_ok_and(|t| t == "dumb") {
        Some("TERM=dumb: this terminal cannot draw the console".to_string())
    } else {
        match ratatui::crossterm::terminal::size() {
            Ok((w, h)) if w < MIN_WIDTH || h < MIN_HEIGHT => Some(format!(
                "the terminal is {w}x{h}; the console needs at least {MIN_WIDTH}x{MIN_HEIGHT}"
            )),
            _ => None,
        }
    }?;
    SAID.call_once(|| eprintln!("baton: {why}: printing plain lines instead"));
    Some(why)
}

/// Whether `baton watch` can open the console; why not otherwise.
pub fn console_possible() -> Result<(), String> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err("not a terminal".to_string());
    }
    match unusable_terminal() {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// The keyboard, mouse and resizes, read on one thread for the whole session and handed to
/// the screen that is open.
pub struct Input {
    target: Arc<Mutex<UnboundedSender<Msg>>>,
    stop: Arc<AtomicBool>,
}

impl Input {
    fn start(mouse: bool) -> Input {
        let (nowhere, _) = unbounded_channel();
        let target = Arc::new(Mutex::new(nowhere));
        let stop = Arc::new(AtomicBool::new(false));
        let (to, stopped) = (Arc::clone(&target), Arc::clone(&stop));
        // crossterm's reader blocks: give it a thread that polls so it can notice `stop`.
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match event::poll(Duration::from_millis(50)) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(_) => break,
                }
                let msg = match event::read() {
                    Ok(Event::Key(key)) if key.kind != KeyEventKind::Release => Msg::Key(key),
                    Ok(Event::Mouse(m)) if mouse => Msg::Mouse(m),
                    Ok(Event::Resize(w, h)) => Msg::Resize(w, h),
                    Ok(_) => continue,
                    Err(_) => break,
                };
                if let Ok(tx) = to.lock() {
                    let _ = tx.send(msg);
                }
            }
        });
        Input { target, stop }
    }

    /// Sends what is read from now on to `tx`.
    pub fn attach(&self, tx: UnboundedSender<Msg>) {
        if let Ok(mut target) = self.target.lock() {
            *target = tx;
        }
    }
}

/// The terminal a session draws in.
pub struct Term {
    pub terminal: DefaultTerminal,
    pub input: Input,
    mouse: bool,
}

impl Term {
    pub fn open() -> Result<Term, Failure> {
        let terminal = ratatui::try_init()
            .map_err(|e| Failure::Infra(format!("cannot open the terminal: {e}")))?;
        terminal_taken();
        let mouse = mouse_wanted();
        if mouse {
            let _ = ratatui::crossterm::execute!(
                std::io::stdout(),
                ratatui::crossterm::event::EnableMouseCapture
            );
            // A panic restores the terminal (ratatui's hook); the mouse too.
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let _ = ratatui::crossterm::execute!(
                    std::io::stdout(),
                    ratatui::crossterm::event::DisableMouseCapture
                );
                previous(info);
            }));
        }
        Ok(Term {
            terminal,
            input: Input::start(mouse),
            mouse,
        })
    }

    pub fn close(self) {
        self.input.stop.store(true, Ordering::Relaxed);
        if self.mouse {
            let _ = ratatui::crossterm::execute!(
                std::io::stdout(),
                ratatui::crossterm::event::DisableMouseCapture
            );
        }
        restore_terminal();
    }
}
