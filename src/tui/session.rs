//! A console session: one terminal and one keyboard reader for every screen the operator
//! visits — the runs list, a run, another run — so nothing flickers and no key is read by a
//! screen that has closed.

use std::sync::Arc;

use baton_core::{RunState, RunStore};
use chrono::Utc;

use super::app::{App, AppOptions, Next};
use super::term::{color_wanted, Term};
use crate::args::StoreArgs;
use crate::{locator, Failure};

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
