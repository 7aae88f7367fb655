//! SIGINT, SIGTERM and SIGHUP while this process drives a run (`run`, `resume`, `retry`, plain
//! or in the console) are handled one way. The first asks the driver to stop: nothing new
//! starts, running commands' process groups get SIGTERM and, after their grace period,
//! SIGKILL, the state is saved, and baton exits 1 saying how to continue. A signal that
//! arrives once a stop is under way (a second Ctrl-C, or one after quitting the console)
//! quits at once: every running command's process group gets SIGKILL, the terminal is
//! restored and baton exits 128 + the signal's number.

use std::io::Write;

use baton_core::driver::StopSwitch;
use baton_core::state::StopCause;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::task::JoinHandle;

/// Listens while it lives.
pub struct Signals {
    task: JoinHandle<()>,
}

impl Drop for Signals {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Handles the three signals for a driver stopped through `stop`; `on_first` tells the
/// operator (or the console) what the first one does.
/// `locator` names the run for the way to continue after quitting at once.
pub fn watch(
    stop: StopSwitch,
    locator: String,
    on_first: impl Fn(StopCause) + Send + 'static,
) -> Signals {
    let task = tokio::spawn(async move {
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            say("cannot listen for signals; Ctrl-C ends baton without stopping its commands");
            return;
        };
        loop {
            let (cause, number) = next(&mut int, &mut term, &mut hup).await;
            if stop.request(cause) {
                on_first(cause);
            } else {
                quit_now(cause, number, &locator);
            }
        }
    });
    Signals { task }
}

async fn next(int: &mut Signal, term: &mut Signal, hup: &mut Signal) -> (StopCause, i32) {
    tokio::select! {
        _ = int.recv() => (StopCause::Interrupt, 2),
        _ = term.recv() => (StopCause::Terminate, 15),
        _ = hup.recv() => (StopCause::Hangup, 1),
    }
}

/// A signal during a stop: kill what is left, give the terminal back, exit.
fn quit_now(cause: StopCause, number: i32, locator: &str) -> ! {
    let killed = baton_core::process::kill_all();
    crate::tui::restore_terminal();
    say(&format!(
        "{cause} during the stop: quitting at once; SIGKILL to {killed} running command \
         process group(s). Their ends are not saved: resume reports them interrupted.\n\
         continue with: baton resume {locator}"
    ));
    std::process::exit(128 + number)
}

/// A line on stderr that never panics: after SIGHUP the terminal may be gone.
pub fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}
