//! A console session: one terminal and one keyboard reader for every screen the operator
//! visits — the runs list, a run, another run — so nothing flickers and no key is read by a
//! screen that has closed.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use baton_core::{RunState, RunStore};
use chrono::Utc;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::DefaultTerminal;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::app::{App, AppOptions, Msg, Next};
use super::ui::{MIN_HEIGHT, MIN_WIDTH};
use crate::args::StoreArgs;
use crate::{locator, Failure};

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
    SETTINGS
        .get()
        .map_or_else(super::color_enabled, |s| s.color)
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
        super::terminal_taken();
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
        super::restore_terminal();
    }
}

/// The store a run's locator lives in: `<root>/runs/<id>` or `s3://…/<prefix>/runs/<id>`.
pub fn store_of(locator: &str) -> StoreArgs {
    let root = match locator.rsplit_once("/runs/") {
        Some(("", _)) => ".".to_string(),
        Some((root, _)) => root.to_string(),
        None => ".baton".to_string(),
    };
    StoreArgs {
        store: root,
        aws: crate::args::AwsArgs::default(),
    }
}

/// The session after its first screen: the runs list and the runs opened from it, until the
/// operator quits. Returns the locator and final state of the last run shown, if any.
pub async fn navigate(
    term: &mut Term,
    mut next: Next,
    store: &StoreArgs,
    read_only: bool,
) -> Result<Option<(String, RunState)>, Failure> {
    let mut last = None;
    let mut notice = None;
    loop {
        next = match next {
            Next::Exit => return Ok(last),
            Next::Runs => super::runs::show(term, store, notice.take()).await?,
            Next::Run(id) => match locator::open_without_logs(&id, store, None).await {
                Ok(opened) => {
                    let (next, locator, state) = watch_run(term, opened, read_only, true).await?;
                    last = Some((locator, state));
                    next
                }
                Err(e) => {
                    notice = Some(e.to_string());
                    Next::Runs
                }
            },
        };
    }
}

/// The console on a run it does not drive.
async fn watch_run(
    term: &mut Term,
    (run, state, version): (baton_core::Run<locator::AnyStore>, RunState, String),
    read_only: bool,
    from_runs: bool,
) -> Result<(Next, String, RunState), Failure> {
    let run = Arc::new(run);
    // As in `tui::console`, the first frame is drawn from the state without its log threads
    // (read with the plan, on two threads): they follow in the background.
    let options = AppOptions {
        read_only,
        color: color_wanted(),
        driving: false,
    };
    let locator = run.store.locator();
    let mut app = App::new(
        Arc::clone(&run.plan),
        state,
        version,
        locator.clone(),
        Utc::now(),
        options,
    );
    app.from_runs = from_runs;
    app.logs_pending = true;
    let (next, state) = super::run_console(term, run, app, None).await?;
    Ok((next, locator, state))
}

/// `baton watch [RUN]` in a terminal: the run, or the runs list without one.
pub async fn watch(
    run: Option<&str>,
    store: &StoreArgs,
    read_only: bool,
) -> Result<Option<(String, RunState)>, Failure> {
    // Open the run before the terminal, so a wrong locator is a plain error.
    let first = match run {
        Some(run) => Some(locator::open_without_logs(run, store, None).await?),
        None => None,
    };
    let mut term = Term::open()?;
    let result = async {
        match first {
            Some(run) => {
                let (next, locator, state) = watch_run(&mut term, run, read_only, false).await?;
                let later = navigate(&mut term, next, store, read_only).await?;
                Ok(later.or(Some((locator, state))))
            }
            None => navigate(&mut term, Next::Runs, store, read_only).await,
        }
    }
    .await;
    term.close();
    result
}
