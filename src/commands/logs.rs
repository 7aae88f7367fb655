//! `baton logs RUN [LABEL] [--follow]`

use std::collections::HashMap;

use baton_core::redact::Secrets;
use baton_core::state::{ts, LogEntry};
use baton_core::{ActionIdx, Plan, Run, RunState, RunStore};

use crate::args::StoreArgs;
use crate::live::{self, Tails};
use crate::locator::AnyStore;
use crate::{locator, CommandResult, Failure};

/// What is read of a stream at once: with `--follow`, enough for a chatty command's half second.
const FOLLOW_BYTES: usize = 1024 * 1024;

pub async fn run(run: &str, store: &StoreArgs, label: Option<&str>, follow: bool) -> CommandResult {
    let run = locator::open(run, store).await?;
    let only = match label {
        Some(label) => Some(
            run.plan
                .find(label)
                .ok_or_else(|| unknown_label(&run.plan, label))?,
        ),
        None => None,
    };
    let (mut state, mut version) = load_shown(&run, only).await?;
    let mut printed = Printed::default();
    let mut tails = Tails::default();
    let mut new_state = true;
    loop {
        if new_state {
            printed.print_state(&run.plan, &state, only);
        }
        if state.status().is_finished() {
            super::drop_in_background((run, state));
            return Ok(());
        }
        // Running actions' newest lines are in their live streams; the state brings the rest
        // (and the lines of actions beyond the streams read at once) when it is saved.
        let running: Vec<(ActionIdx, u32)> = live::running(&run.plan, &state, only)
            .into_iter()
            .filter(|(idx, _)| only.is_none_or(|o| o == *idx))
            .collect();
        match tails
            .poll(&run.store, &run.plan, &running, FOLLOW_BYTES)
            .await
        {
            Ok(new) => {
                for tail in new {
                    printed.print(&run.plan, Some(tail.idx), tail.entries.iter());
                }
            }
            // Reading streams may need more rights than reading the state (listing the run's
            // objects on S3), or the store may be failing: lines still come with each save.
            Err(e) => eprintln!(
                "warning: live logs unavailable ({e}); lines show as the run is saved (trying \
                 again in {} s)",
                live::PAUSE_AFTER_FAILURE.as_secs()
            ),
        }
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(live::POLL).await;
        new_state = run.store.head().await? != version;
        if new_state {
            (state, version) = load_shown(&run, only).await?;
        }
    }
}

/// The newest state as operators may see it: for one action, only its log thread is read and
/// masked (at 100k actions, reading and masking every thread is most of the command's time).
async fn load_shown(
    run: &Run<AnyStore>,
    only: Option<ActionIdx>,
) -> Result<(RunState, String), Failure> {
    let Some(idx) = only else {
        let (state, version) = run.load().await?;
        return Ok((baton_core::redact::shown(&run.plan, &state), version));
    };
    let (mut state, version) = run.load_without_logs(Some(idx)).await?;
    let shown = Secrets::for_run(&run.plan, &state).shown_action(state.action(idx));
    state.mirror_action(idx, shown);
    Ok((state, version))
}

pub fn unknown_label(plan: &baton_core::Plan, label: &str) -> Failure {
    let hint = baton_core::hints::suggest(label, plan.actions().iter().map(|a| a.label.as_str()))
        .map(|s| format!(" (did you mean \"{s}\"?)"))
        .unwrap_or_else(|| "; `baton status RUN` lists its actions".to_string());
    Failure::Invalid(format!("no action labelled \"{label}\" in this run{hint}"))
}

/// The newest entries printed per thread (the run's: `None`), so `--follow` prints each entry
/// once whether it came from the state or from a live stream.
#[derive(Default)]
struct Printed {
    newest: HashMap<Option<ActionIdx>, Vec<LogEntry>>,
}

impl Printed {
    fn print_state(&mut self, plan: &Plan, state: &RunState, only: Option<ActionIdx>) {
        if only.is_none() {
            self.print(plan, None, state.log().iter());
        }
        for &idx in plan.order() {
            if only.is_none_or(|o| o == idx) {
                self.print(plan, Some(idx), state.action(idx).log.iter());
            }
        }
    }

    /// Prints the entries of a thread it has not printed yet.
    fn print<'a>(
        &mut self,
        plan: &Plan,
        thread: Option<ActionIdx>,
        entries: impl Iterator<Item = &'a LogEntry>,
    ) {
        let seen = self.newest.entry(thread).or_default();
        // Judged against what was printed before this batch: a batch is in time order.
        let fresh: Vec<&LogEntry> = entries.filter(|e| live::is_news(seen.iter(), e)).collect();
        let name = thread.map_or("run", |idx| plan.label(idx));
        for entry in &fresh {
            crate::out!(
                "{} {:<5} {:<24} {}",
                ts::format(&entry.t),
                entry.level.as_str(),
                name,
                entry.msg
            );
        }
        // Only the entries of the newest moment matter for what is news next time.
        if let Some(newest) = fresh.iter().map(|e| e.t).max() {
            seen.retain(|e| e.t == newest);
            seen.extend(fresh.into_iter().filter(|e| e.t == newest).cloned());
        }
    }
}
