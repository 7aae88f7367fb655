//! The operator console. One message enum ([`app::Msg`]), one channel, one mutator
//! ([`app::update`]); rendering is `impl Widget for &App` ([`ui`]). Terminal input, the clock,
//! the engine and the store each run in the background and only send messages.

pub mod app;
pub mod cmdline;
pub mod eta;
pub mod header;
pub mod inspect;
pub mod keymap;
pub mod logview;
pub mod mouse;
pub mod overlay;
pub mod probe;
pub mod runs;
pub mod session;
pub mod term;
pub mod terminal;
pub mod timeline;
pub mod ui;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::driver::{Observer, StopSwitch, TickOptions};
use baton_core::scheduler::Reexecute;
use baton_core::state::{ActionState, LogEntry, StopCause};
use baton_core::{ActionIdx, Plan, Run, RunState, RunStore};
use chrono::Utc;
use ratatui::DefaultTerminal;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::app::{update, App, AppOptions, Effect, Msg};
use crate::live::{self, Tails};
use crate::locator::AnyStore;
use crate::ops::{self, Aborted, Stopped};
use crate::Failure;
pub use term::color_enabled;
pub use terminal::restore_terminal;

/// At most ~30 frames a second, and only when something changed.
const FRAME: Duration = Duration::from_millis(33);

/// Whether the console should open: stdout is a terminal, no plain output was asked for, and
/// the terminal can show it (when it cannot, says why once on stderr).
pub fn wanted(plain: bool, json: bool) -> bool {
    let terminal =
        !plain && !json && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    terminal && term::unusable_terminal().is_none()
}

/// Forwards engine progress into the console's channel, and tells the store poller which
/// versions the console has already been handed.
struct ChannelObserver {
    tx: UnboundedSender<Msg>,
    seen: watch::Sender<String>,
}

impl Observer for ChannelObserver {
    fn action_changed(&self, _plan: &Plan, idx: ActionIdx, state: &ActionState) {
        let _ = self
            .tx
            .send(Msg::ActionChanged(idx, Box::new(state.clone())));
    }

    fn log(&self, _plan: &Plan, idx: Option<ActionIdx>, entry: &LogEntry) {
        let _ = self.tx.send(Msg::Log(idx, entry.clone()));
    }

    fn saved(&self, _plan: &Plan, state: &RunState, version: &str) {
        self.seen.send_replace(version.to_string());
        let _ = self
            .tx
            .send(Msg::Snapshot(Box::new(state.clone()), version.to_string()));
    }
}

pub struct ConsoleOptions {
    /// Drive the run from this process (as `baton run` does), with these tick options.
    pub drive: Option<TickOptions>,
    pub read_only: bool,
    /// The run's newest state and version, when the caller just wrote them (a new run).
    pub known: Option<(RunState, String)>,
}

/// Opens the console on `run` until the user quits. Returns the run's state at exit.
pub async fn console(
    run: Arc<Run<AnyStore>>,
    options: ConsoleOptions,
) -> Result<RunState, Failure> {
    // The first frame shows no log thread's contents beyond the selected action's, which
    // start empty: the threads are read after it (a third of reading a large run's state).
    let (state, version, logs_later) = match options.known {
        Some((state, version)) => (state, version, false),
        None => {
            let (state, version) = run.load_without_logs(None).await?;
            (state, version, true)
        }
    };
    let app_options = AppOptions {
        read_only: options.read_only,
        color: term::color_wanted(),
        driving: options.drive.is_some(),
    };
    let locator = run.store.locator();
    let store = session::store_of(&locator);
    let plan = Arc::clone(&run.plan);
    let mut app = App::new(plan, state, version, locator, Utc::now(), app_options);
    app.logs_pending = logs_later;
    let mut term = term::Term::open()?;
    let result = run_console(&mut term, run, app, options.drive).await;
    let result = match result {
        Ok((next, state)) => session::navigate(&mut term, next, &store, options.read_only)
            .await
            .map(|_| state),
        Err(e) => Err(e),
    };
    term.close();
    result
}

/// The console on one run, in a terminal the session holds, until it closes. Returns what
/// the session shows next and the run's state as it closed. A signal closes it (and stops the
/// engine this process runs); an engine still running as it closes is stopped the documented
/// way, with the terminal already given back so what stopping says is plain text.
async fn run_console(
    term: &mut term::Term,
    run: Arc<Run<AnyStore>>,
    mut app: App,
    drive: Option<TickOptions>,
) -> Result<(app::Next, RunState), Failure> {
    let size = term.terminal.size().unwrap_or_default();
    update(&mut app, Msg::Resize(size.width, size.height));
    let (tx, mut rx) = unbounded_channel::<Msg>();
    term.input.attach(tx.clone());
    // A console that only watches has nothing to stop, but a signal must still give the
    // terminal back.
    let stop = drive.as_ref().map(|o| o.stop.clone()).unwrap_or_default();
    let signals = crate::signals::watch(stop.clone(), run.store.locator(), {
        let tx = tx.clone();
        move |cause| {
            let _ = tx.send(Msg::Stop(cause));
        }
    });
    let mut extra = probe::start(&run, &tx);
    if app.logs_pending {
        extra.push(spawn_log_threads(
            Arc::clone(&run),
            app.version.clone(),
            tx.clone(),
        ));
    }
    let mut tasks = Tasks::start(run, drive, stop, &app, tx);
    let result = event_loop(&mut term.terminal, &mut app, &mut rx, &mut tasks).await;
    for task in extra {
        task.abort();
    }
    tasks.stop_watching();
    if tasks.engine_running() {
        restore_terminal();
        app.next = app::Next::Exit;
    }
    let run = tasks.stop_engine(&app).await;
    drop(signals);
    result?;
    let next = std::mem::take(&mut app.next);
    Ok((next, final_state(&run, app).await?))
}

/// Reads the version the console opened on again, whole, and hands it over: the first frame
/// was drawn without the log threads.
fn spawn_log_threads(
    run: Arc<Run<AnyStore>>,
    version: String,
    tx: UnboundedSender<Msg>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match run.load_version(&version).await {
            Ok(state) => {
                let _ = tx.send(Msg::Snapshot(Box::new(state), version));
            }
            Err(error) => {
                let _ = tx.send(Msg::Flash(format!(
                    "reading the log threads failed: {error}"
                )));
            }
        }
    })
}

/// The run's state as the console closes: the console's own unless the store holds a newer
/// version, the console shows engine progress no stored version holds, or its log threads
/// were never read.
async fn final_state(run: &Run<AnyStore>, app: App) -> Result<RunState, Failure> {
    if !app.unsaved_progress && !app.logs_pending && run.store.head().await? == app.version {
        return Ok(app.state);
    }
    Ok(run.load().await?.0)
}

/// Draws at most one frame per [`FRAME`], and only when something changed, until the app
/// quits or every sender is gone.
async fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    rx: &mut UnboundedReceiver<Msg>,
    tasks: &mut Tasks,
) -> Result<(), Failure> {
    let mut last_draw = Instant::now() - FRAME;
    let mut dirty = true;
    loop {
        if dirty && FRAME.saturating_sub(last_draw.elapsed()).is_zero() {
            terminal
                .draw(|frame| frame.render_widget(&*app, frame.area()))
                .map_err(|e| Failure::Infra(format!("drawing failed: {e}")))?;
            last_draw = Instant::now();
            dirty = false;
        }
        let msg = if dirty {
            match tokio::time::timeout(FRAME.saturating_sub(last_draw.elapsed()), rx.recv()).await {
                Ok(msg) => msg,
                Err(_) => continue,
            }
        } else {
            rx.recv().await
        };
        let Some(msg) = msg else { return Ok(()) };
        // Ticks only matter while something is running (elapsed times move).
        dirty |= !matches!(msg, Msg::Tick(_))
            || app.state.count(baton_core::ActionStatus::Running) > 0
            || !app.state.status().is_finished();
        apply(app, tasks, msg);
        tasks.show(app);
        if app.quit {
            return Ok(());
        }
    }
}

/// Updates the app with `msg` and starts the effects it asks for.
fn apply(app: &mut App, tasks: &mut Tasks, msg: Msg) {
    for effect in update(app, msg) {
        // `update` offers no controls in read-only mode; this is the second lock on the door.
        if app.read_only && effect != Effect::Quit {
            tracing::warn!(?effect, "read-only console: ignoring a change to the run");
            continue;
        }
        // A driver started here counts at once, so a second re-execute cannot slip in before
        // a queued message would say so.
        if let Some(now) = tasks.perform(effect, app) {
            apply(app, tasks, now);
        }
    }
}

/// What runs beside the console: terminal input, the clock, the store poller, the engine
/// when this process drives the run, and the Step Functions poller for remote runs.
struct Tasks {
    run: Arc<Run<AnyStore>>,
    tx: UnboundedSender<Msg>,
    /// The newest state version the console has been handed.
    seen: watch::Sender<String>,
    /// What the console shows, for the store poller to follow its live log.
    shown: watch::Sender<Shown>,
    drive: Option<TickOptions>,
    /// Stops whatever engine this process runs (the one it was opened with, or a re-execute's).
    stop: StopSwitch,
    clock: JoinHandle<()>,
    poller: JoinHandle<()>,
    remote: Option<JoinHandle<()>>,
    engine: Option<JoinHandle<()>>,
}

impl Tasks {
    fn start(
        run: Arc<Run<AnyStore>>,
        drive: Option<TickOptions>,
        stop: StopSwitch,
        app: &App,
        tx: UnboundedSender<Msg>,
    ) -> Self {
        let (seen, _) = watch::channel(app.version.clone());
        let (shown, shown_rx) = watch::channel(Shown::of(app));
        let engine = drive.clone().map(|options| {
            let observer = ChannelObserver {
                tx: tx.clone(),
                seen: seen.clone(),
            };
            tokio::spawn(drive_into_console(Arc::clone(&run), options, observer))
        });
        let remote = ops::remote_driver(&run, &app.state).map(|state_machine| {
            spawn_remote_poller(
                state_machine.to_string(),
                run.store.locator(),
                app.state.run_id().to_string(),
                tx.clone(),
            )
        });
        Tasks {
            clock: spawn_clock(tx.clone()),
            poller: spawn_poller(
                Arc::clone(&run),
                seen.clone(),
                Follow::new(&run.plan, &app.state, shown_rx),
                tx.clone(),
            ),
            run,
            tx,
            seen,
            shown,
            drive,
            stop,
            remote,
            engine,
        }
    }

    /// Starts what an effect asks for. Returns the message that takes effect at once, if any.
    fn perform(&mut self, effect: Effect, app: &App) -> Option<Msg> {
        let run = Arc::clone(&self.run);
        let tx = self.tx.clone();
        match effect {
            Effect::Quit => {}
            Effect::Abort => spawn_abort(run, app.driver_active, tx),
            Effect::AbortHard => spawn_abort_hard(run, tx),
            Effect::Resume if ops::remote_driver(&run, &app.state).is_some() => {
                probe::spawn_remote_resume(run, tx);
            }
            Effect::Resume => {
                let options = self.drive.clone().unwrap_or_default();
                let observer = ChannelObserver {
                    tx,
                    seen: self.seen.clone(),
                };
                self.engine = Some(tokio::spawn(drive_into_console(run, options, observer)));
                return Some(Msg::DriverStarted);
            }
            Effect::Reexecute(mode) => match ops::remote_driver(&run, &app.state) {
                Some(state_machine) => {
                    spawn_remote_reexecute(run, mode, state_machine.to_string(), tx);
                }
                None => {
                    let mut options = self.drive.clone().unwrap_or_default();
                    options.stop = self.stop.clone();
                    let observer = ChannelObserver {
                        tx,
                        seen: self.seen.clone(),
                    };
                    self.engine = Some(spawn_reexecute(run, mode, options, observer));
                    return Some(Msg::DriverStarted);
                }
            },
        }
        None
    }

    /// Tells the store poller what the console shows now.
    fn show(&self, app: &App) {
        let now = Shown::of(app);
        self.shown.send_if_modified(|shown| {
            let changed = *shown != now;
            *shown = now;
            changed
        });
    }

    /// Stops what only served the console: clock, pollers.
    fn stop_watching(&mut self) {
        self.clock.abort();
        self.poller.abort();
        if let Some(remote) = self.remote.take() {
            remote.abort();
        }
    }

    /// Whether an engine this process runs is still at work.
    fn engine_running(&self) -> bool {
        self.engine
            .as_ref()
            .is_some_and(|engine| !engine.is_finished())
    }

    /// Stops the engine this process runs, if any, the documented way (no new starts; running
    /// commands' process groups get SIGTERM, then SIGKILL after their grace period; the state
    /// is saved) and waits for it; hands back the run. Called with the terminal restored, so
    /// what it says is plain text, and a Ctrl-C now quits at once (see [`crate::signals`]).
    async fn stop_engine(self, app: &App) -> Arc<Run<AnyStore>> {
        let Some(engine) = self.engine else {
            return self.run;
        };
        if !engine.is_finished() {
            self.stop.request(StopCause::Quit);
        }
        let running = app.state.count(baton_core::ActionStatus::Running);
        if running > 0 && !engine.is_finished() {
            let cause = self.stop.requested().unwrap_or(StopCause::Quit);
            crate::signals::say(&format!(
                "stopping ({cause}): {running} running action(s); commands get SIGTERM (their \
                 whole process group), then SIGKILL after their grace period; waits and stacks \
                 carry on. Ctrl-C to kill the commands at once."
            ));
        }
        let _ = engine.await;
        self.run
    }
}

fn spawn_clock(tx: UnboundedSender<Msg>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(250));
        loop {
            interval.tick().await;
            if tx.send(Msg::Tick(Utc::now())).is_err() {
                return;
            }
        }
    })
}

/// What the console shows, as far as following live logs goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shown {
    selected: Option<ActionIdx>,
    /// The engine in this process hands over every line itself.
    driving: bool,
}

impl Shown {
    fn of(app: &App) -> Self {
        Shown {
            selected: app.selected_action(),
            driving: app.driver_active,
        }
    }
}

/// The live streams the poller reads for a console that watches a run driven elsewhere: the
/// selected action's first, then a few other running ones (every read is a request on S3).
struct Follow {
    tails: Tails,
    /// Running attempts in the newest state the poller knows.
    running: Vec<(ActionIdx, u32)>,
    shown: watch::Receiver<Shown>,
}

/// Streams a console follows at once.
const CONSOLE_STREAMS: usize = 4;

impl Follow {
    fn new(plan: &Plan, state: &RunState, shown: watch::Receiver<Shown>) -> Self {
        Follow {
            tails: Tails::default(),
            running: live::running(plan, state, None),
            shown,
        }
    }

    async fn poll(&mut self, run: &Run<AnyStore>, tx: &UnboundedSender<Msg>) {
        let shown = *self.shown.borrow();
        if shown.driving || self.running.is_empty() {
            return;
        }
        let mut attempts = self.running.clone();
        if let Some(first) = attempts
            .iter()
            .position(|(idx, _)| Some(*idx) == shown.selected)
        {
            attempts[..=first].rotate_right(1);
        }
        attempts.truncate(CONSOLE_STREAMS);
        let limit = baton_core::log_stream::TAIL_BYTES;
        match self
            .tails
            .poll(&run.store, &run.plan, &attempts, limit)
            .await
        {
            Ok(tails) => {
                for tail in tails {
                    let _ = tx.send(Msg::Tail(tail));
                }
            }
            // The state still brings the lines at its next save; `Tails` pauses a while.
            Err(e) => tracing::warn!("live logs unavailable: {e}"),
        }
    }
}

/// Watches the store for versions written by anyone else (another driver, an abort); the
/// versions this process's engine saved reach the console without a second read. For a run
/// driven elsewhere it also reads running actions' live logs.
fn spawn_poller(
    run: Arc<Run<AnyStore>>,
    seen: watch::Sender<String>,
    mut follow: Follow,
    tx: UnboundedSender<Msg>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = live::POLL;
        loop {
            tokio::time::sleep(delay).await;
            // Streams first: a state that ends an attempt holds its last lines anyway.
            follow.poll(&run, &tx).await;
            match run.store.head().await {
                Ok(head) if *seen.borrow() == head => {}
                Ok(_) => match run.load().await {
                    Ok((state, version)) => {
                        follow.running = live::running(&run.plan, &state, None);
                        seen.send_replace(version.clone());
                        delay = live::POLL;
                        if tx.send(Msg::Snapshot(Box::new(state), version)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Msg::Flash(format!("cannot read the run: {e}")));
                    }
                },
                Err(e) => {
                    // Back off while the store is unhappy, and say so.
                    delay = (delay * 2).min(Duration::from_secs(10));
                    let retrying =
                        format!("store unavailable (retrying in {}s): {e}", delay.as_secs());
                    if tx.send(Msg::Flash(retrying)).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// Drives the run here, reporting progress and the end to the console.
async fn drive_into_console(
    run: Arc<Run<AnyStore>>,
    options: TickOptions,
    observer: ChannelObserver,
) {
    let result = ops::drive(&run, &options, &observer).await;
    let _ = observer.tx.send(Msg::DriverDone(
        result.map(|r| r.status()).map_err(|e| e.to_string()),
    ));
}

fn spawn_reexecute(
    run: Arc<Run<AnyStore>>,
    mode: Reexecute,
    options: TickOptions,
    observer: ChannelObserver,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = ops::reset(&run, mode).await {
            let failed = Msg::DriverDone(Err(format!("re-execute failed: {e}")));
            let _ = observer.tx.send(failed);
            return;
        }
        let _ = observer.tx.send(Msg::Flash("re-executing…".into()));
        drive_into_console(run, options, observer).await;
    })
}

fn spawn_remote_reexecute(
    run: Arc<Run<AnyStore>>,
    mode: Reexecute,
    state_machine: String,
    tx: UnboundedSender<Msg>,
) {
    tokio::spawn(async move {
        let flash = match ops::reexecute_remotely(&run, mode, &state_machine).await {
            Ok(started) => format!("re-executing in execution {}", started.name),
            Err(e) => format!("re-execute failed: {e}"),
        };
        let _ = tx.send(Msg::Flash(flash));
    });
}

fn spawn_abort(run: Arc<Run<AnyStore>>, driven_here: bool, tx: UnboundedSender<Msg>) {
    tokio::spawn(async move {
        let flash = match ops::abort(&run, driven_here).await {
            Ok(Aborted::AlreadyFinished { status, .. }) => format!("the run has already {status}"),
            Ok(Aborted::Requested { .. }) => "abort requested".into(),
            Err(e) => format!("abort failed: {e}"),
        };
        let _ = tx.send(Msg::Flash(flash));
    });
}

fn spawn_abort_hard(run: Arc<Run<AnyStore>>, tx: UnboundedSender<Msg>) {
    tokio::spawn(async move {
        let flash = match ops::abort_hard(&run, "from the console").await {
            Ok(Aborted::AlreadyFinished { status, .. }) => format!("the run has already {status}"),
            Ok(Aborted::Requested {
                stopped, honoured, ..
            }) => {
                let stopped = match stopped {
                    Stopped::Executions(n) => n,
                    Stopped::NotAsked | Stopped::NoExecution => 0,
                };
                match honoured {
                    ops::Honoured::StillHeld { holder, until } => format!(
                        "stopped {stopped} execution(s); its last tick ({holder}) still holds the run until {}: abort again once it lets go",
                        baton_core::state::ts::format(&until)
                    ),
                    _ => format!("aborted; stopped {stopped} execution(s)"),
                }
            }
            Err(e) => format!("abort failed: {e}"),
        };
        let _ = tx.send(Msg::Flash(flash));
    });
}

/// Polls the run's newest execution; backs off while Step Functions throttles or fails.
fn spawn_remote_poller(
    state_machine: String,
    locator: String,
    run_id: String,
    tx: UnboundedSender<Msg>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let remote = crate::remote::RemoteRun::connect(&state_machine, &locator, &run_id).await;
        let mut delay = Duration::from_secs(2);
        loop {
            match remote.newest().await {
                Ok(Some(info)) => {
                    delay = Duration::from_secs(2);
                    if tx.send(Msg::Remote(Box::new(info))).is_err() {
                        return;
                    }
                }
                // No execution at all (its start failed): the header says the run is idle.
                Ok(None) => {
                    delay = Duration::from_secs(2);
                    if tx.send(Msg::Remote(Box::default())).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    delay = (delay * 2).min(Duration::from_secs(30));
                    let retrying =
                        format!("Step Functions: {e} (retrying in {}s)", delay.as_secs());
                    if tx.send(Msg::Flash(retrying)).is_err() {
                        return;
                    }
                }
            }
            tokio::time::sleep(delay).await;
        }
    })
}
