//! The operator console. One message enum ([`app::Msg`]), one channel, one mutator
//! ([`app::update`]); rendering is `impl Widget for &App` ([`ui`]). Terminal input, the clock,
//! the engine and the store each run in the background and only send messages.

pub mod app;
pub mod keymap;
pub mod timeline;
pub mod ui;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::driver::{self, Observer, Silent, TickOptions};
use baton_core::scheduler::apply_reexecute;
use baton_core::state::{ActionState, LogEntry};
use baton_core::{ActionIdx, Plan, Run, RunState, RunStatus, RunStore};
use chrono::Utc;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use self::app::{update, App, Effect, Msg};
use crate::locator::AnyStore;
use crate::Failure;

/// At most ~30 frames a second, and only when something changed.
const FRAME: Duration = Duration::from_millis(33);

/// Whether the console should open: stdout is a terminal and no plain output was asked for.
pub fn wanted(plain: bool, json: bool) -> bool {
    !plain && !json && std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

/// Colour unless `NO_COLOR` is set (https://no-color.org).
pub fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Forwards engine progress into the console's channel.
struct ChannelObserver {
    tx: UnboundedSender<Msg>,
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
        let _ = self
            .tx
            .send(Msg::Snapshot(Box::new(state.clone()), version.to_string()));
    }
}

pub struct ConsoleOptions {
    /// Drive the run from this process (as `baton run` does), with these tick options.
    pub drive: Option<TickOptions>,
    pub read_only: bool,
}

/// Opens the console on `run` until the user quits. Returns the run's status at exit.
pub async fn console(
    run: Arc<Run<AnyStore>>,
    options: ConsoleOptions,
) -> Result<RunStatus, Failure> {
    let (state, version) = run.load().await?;
    let plan = Arc::clone(&run.plan);
    let mut app = App::new(plan, state, version, run.store.locator(), Utc::now());
    app.read_only = options.read_only;
    app.color = color_enabled();
    app.driving = options.drive.is_some();

    let (tx, mut rx) = unbounded_channel::<Msg>();
    let mut terminal = ratatui::try_init()
        .map_err(|e| Failure::Infra(format!("cannot open the terminal: {e}")))?;
    let size = terminal.size().unwrap_or_default();
    update(&mut app, Msg::Resize(size.width, size.height));

    let stop_input = Arc::new(AtomicBool::new(false));
    spawn_input(tx.clone(), Arc::clone(&stop_input));
    let clock = spawn_clock(tx.clone());
    let stop_engine = options.drive.as_ref().map(|o| Arc::clone(&o.stop));
    let mut engine = None;
    if let Some(tick_options) = options.drive.clone() {
        app.driver_active = true;
        engine = Some(spawn_driver(Arc::clone(&run), tick_options, tx.clone()));
    }
    let poller = spawn_poller(Arc::clone(&run), app.version.clone(), tx.clone());
    let remote = match (&app.state.state_machine, run.store.is_remote()) {
        (Some(state_machine), true) => Some(spawn_remote_poller(
            state_machine.clone(),
            app.state.run_id.clone(),
            tx.clone(),
        )),
        _ => None,
    };

    let mut last_draw = Instant::now() - FRAME;
    let mut dirty = true;
    let result = loop {
        if dirty {
            let wait = FRAME.saturating_sub(last_draw.elapsed());
            if wait.is_zero() {
                if let Err(e) = terminal.draw(|frame| frame.render_widget(&app, frame.area())) {
                    break Err(Failure::Infra(format!("drawing failed: {e}")));
                }
                last_draw = Instant::now();
                dirty = false;
            }
        }
        let msg = if dirty {
            match tokio::time::timeout(FRAME.saturating_sub(last_draw.elapsed()), rx.recv()).await {
                Ok(msg) => msg,
                Err(_) => continue,
            }
        } else {
            rx.recv().await
        };
        let Some(msg) = msg else { break Ok(()) };
        // Ticks only matter while something is running (elapsed times move).
        let redraw = !matches!(msg, Msg::Tick(_))
            || app.state.count(baton_core::ActionStatus::Running) > 0
            || !app.state.status.is_finished();
        for effect in update(&mut app, msg) {
            // `update` offers no controls in read-only mode; this is the second lock on the door.
            if app.read_only && effect != Effect::Quit {
                tracing::warn!(?effect, "read-only console: ignoring a change to the run");
                continue;
            }
            match effect {
                Effect::Quit => {}
                Effect::Abort => spawn_abort(Arc::clone(&run), app.driver_active, tx.clone()),
                Effect::AbortHard => spawn_abort_hard(
                    Arc::clone(&run),
                    app.state.state_machine.clone(),
                    tx.clone(),
                ),
                Effect::Reexecute(mode)
                    if run.store.is_remote() && app.state.state_machine.is_some() =>
                {
                    spawn_remote_reexecute(
                        Arc::clone(&run),
                        mode,
                        app.state.state_machine.clone().unwrap_or_default(),
                        tx.clone(),
                    );
                }
                Effect::Reexecute(mode) => {
                    if let Some(options) = options
                        .drive
                        .clone()
                        .or_else(|| Some(TickOptions::default()))
                    {
                        app.driving = true;
                        app.driver_active = true;
                        engine = Some(spawn_reexecute(Arc::clone(&run), mode, options, tx.clone()));
                    }
                }
            }
        }
        dirty |= redraw;
        if app.quit {
            break Ok(());
        }
    };

    stop_input.store(true, Ordering::Relaxed);
    if let Some(stop) = stop_engine {
        stop.store(true, Ordering::Relaxed);
    }
    clock.abort();
    poller.abort();
    if let Some(remote) = remote {
        remote.abort();
    }
    if let Some(engine) = engine {
        engine.abort();
    }
    ratatui::restore();
    result?;
    let (state, _) = run.load().await?;
    Ok(state.status)
}

fn spawn_input(tx: UnboundedSender<Msg>, stop: Arc<AtomicBool>) {
    // crossterm's reader blocks: give it a thread that polls so it can notice `stop`.
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => break,
            }
            let msg = match event::read() {
                Ok(Event::Key(key)) if key.kind != KeyEventKind::Release => Msg::Key(key),
                Ok(Event::Resize(w, h)) => Msg::Resize(w, h),
                Ok(_) => continue,
                Err(_) => break,
            };
            if tx.send(msg).is_err() {
                break;
            }
        }
    });
}

fn spawn_clock(tx: UnboundedSender<Msg>) -> tokio::task::JoinHandle<()> {
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

/// Watches the store for versions written by anyone (another driver, an abort).
fn spawn_poller(
    run: Arc<Run<AnyStore>>,
    mut seen: String,
    tx: UnboundedSender<Msg>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(500);
        loop {
            tokio::time::sleep(delay).await;
            match run.store.head().await {
                Ok(head) if head != seen => match run.load().await {
                    Ok((state, version)) => {
                        seen = version.clone();
                        delay = Duration::from_millis(500);
                        if tx.send(Msg::Snapshot(Box::new(state), version)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Msg::Flash(format!("cannot read the run: {e}")));
                    }
                },
                Ok(_) => {}
                Err(e) => {
                    // Back off while the store is unhappy, and say so.
                    delay = (delay * 2).min(Duration::from_secs(10));
                    if tx
                        .send(Msg::Flash(format!(
                            "store unavailable (retrying in {}s): {e}",
                            delay.as_secs()
                        )))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    })
}

fn spawn_driver(
    run: Arc<Run<AnyStore>>,
    options: TickOptions,
    tx: UnboundedSender<Msg>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let executor = Arc::new(crate::aws::executor(&run.plan).await);
        let observer = ChannelObserver { tx: tx.clone() };
        let result = driver::drive(&run, &executor, &options, &observer).await;
        let _ = tx.send(Msg::DriverDone(
            result.map(|r| r.status()).map_err(|e| e.to_string()),
        ));
    })
}

fn spawn_reexecute(
    run: Arc<Run<AnyStore>>,
    mode: baton_core::Reexecute,
    options: TickOptions,
    tx: UnboundedSender<Msg>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let reset = async {
            let _guard = run.store.lock_driver()?;
            run.update(|plan, state| apply_reexecute(plan, state, mode, Utc::now()))
                .await?;
            Ok::<_, baton_core::RunError>(())
        };
        if let Err(e) = reset.await {
            let _ = tx.send(Msg::DriverDone(Err(format!("re-execute failed: {e}"))));
            return;
        }
        let _ = tx.send(Msg::Flash("re-executing…".into()));
        let executor = Arc::new(crate::aws::executor(&run.plan).await);
        let observer = ChannelObserver { tx: tx.clone() };
        let result = driver::drive(&run, &executor, &options, &observer).await;
        let _ = tx.send(Msg::DriverDone(
            result.map(|r| r.status()).map_err(|e| e.to_string()),
        ));
    })
}

fn spawn_abort(run: Arc<Run<AnyStore>>, driven_here: bool, tx: UnboundedSender<Msg>) {
    tokio::spawn(async move {
        let result = async {
            run.update(|_, state| state.abort_requested = true).await?;
            if !driven_here {
                // Nobody may be driving it: settle the abort now if we can take the run.
                if let Ok(_guard) = run.store.lock_driver() {
                    crate::commands::retry::settle_abort(&run).await?;
                }
            }
            Ok::<_, baton_core::RunError>(())
        }
        .await;
        let _ = tx.send(Msg::Flash(match result {
            Ok(()) => "abort requested".into(),
            Err(e) => format!("abort failed: {e}"),
        }));
    });
}

/// Polls the run's newest execution: status, history events used (the newest event's id, read
/// newest-first with one small page), and the latest events. Backs off while throttled.
fn spawn_remote_poller(
    state_machine: String,
    run_id: String,
    tx: UnboundedSender<Msg>,
) -> tokio::task::JoinHandle<()> {
    use aws_sdk_sfn::types::HistoryEvent;
    tokio::spawn(async move {
        let client = crate::remote::client().await;
        let mut delay = Duration::from_secs(2);
        loop {
            let result = async {
                let executions = crate::remote::executions(&client, &state_machine, &run_id)
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let Some(newest) = executions.first() else {
                    return Ok(None);
                };
                let page = client
                    .get_execution_history()
                    .execution_arn(newest.execution_arn())
                    .reverse_order(true)
                    .max_results(100)
                    .send()
                    .await
                    .map_err(|e| baton_core::aws::describe(&e))?;
                // Newest first where the service honours reverseOrder; sort by id either way.
                let mut events: Vec<&HistoryEvent> = page.events().iter().collect();
                events.sort_by_key(|e| e.id());
                let recent = events
                    .iter()
                    .map(|e| {
                        let at = chrono::DateTime::from_timestamp(
                            e.timestamp().secs(),
                            e.timestamp().subsec_nanos(),
                        )
                        .unwrap_or_default();
                        (at, format!("#{} {}", e.id(), e.r#type().as_str()))
                    })
                    .collect();
                Ok::<_, String>(Some(app::RemoteInfo {
                    execution: newest.name().to_string(),
                    status: newest.status().as_str().to_string(),
                    events: events.last().map_or(0, |e| e.id() as u64),
                    executions: executions.len(),
                    recent,
                }))
            }
            .await;
            match result {
                Ok(Some(info)) => {
                    delay = Duration::from_secs(2);
                    if tx.send(Msg::Remote(Box::new(info))).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    delay = (delay * 2).min(Duration::from_secs(30));
                    if tx
                        .send(Msg::Flash(format!(
                            "Step Functions: {e} (retrying in {}s)",
                            delay.as_secs()
                        )))
                        .is_err()
                    {
                        return;
                    }
                }
            }
            tokio::time::sleep(delay).await;
        }
    })
}

fn spawn_remote_reexecute(
    run: Arc<Run<AnyStore>>,
    mode: baton_core::Reexecute,
    state_machine: String,
    tx: UnboundedSender<Msg>,
) {
    tokio::spawn(async move {
        let result = async {
            let ((), state, _) = run
                .update(|plan, state| drop(apply_reexecute(plan, state, mode, Utc::now())))
                .await
                .map_err(|e| e.to_string())?;
            let sfn = crate::remote::client().await;
            let existing = crate::remote::executions(&sfn, &state_machine, &state.run_id)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let name = crate::remote::retry_name(&state.run_id, &existing);
            crate::remote::start(&sfn, &state_machine, &run.store.locator(), &name)
                .await
                .map_err(|e| format!("{e:?}"))?;
            Ok::<_, String>(name)
        }
        .await;
        let _ = tx.send(Msg::Flash(match result {
            Ok(name) => format!("re-executing in execution {name}"),
            Err(e) => format!("re-execute failed: {e}"),
        }));
    });
}

fn spawn_abort_hard(
    run: Arc<Run<AnyStore>>,
    state_machine: Option<String>,
    tx: UnboundedSender<Msg>,
) {
    tokio::spawn(async move {
        let result = async {
            let ((), state, _) = run
                .update(|_, state| state.abort_requested = true)
                .await
                .map_err(|e| e.to_string())?;
            let mut stopped = 0;
            if let Some(state_machine) = state_machine {
                let sfn = crate::remote::client().await;
                let cause = format!(
                    "run {} aborted by an operator from the console",
                    state.run_id
                );
                stopped = crate::remote::stop_running(&sfn, &state_machine, &state.run_id, &cause)
                    .await
                    .map_err(|e| format!("{e:?}"))?;
            }
            // With the execution stopped nobody else will honour the abort: settle it here.
            let executor = Arc::new(crate::aws::executor(&run.plan).await);
            driver::tick(&run, &executor, &TickOptions::default(), &Silent)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(stopped)
        }
        .await;
        let _ = tx.send(Msg::Flash(match result {
            Ok(stopped) => format!("aborted; stopped {stopped} execution(s)"),
            Err(e) => format!("abort failed: {e}"),
        }));
    });
}
