//! `baton watch [RUN]`: the console on a run, or on the list of runs. Where the console
//! cannot open (no terminal, `TERM=dumb`, a terminal below its minimum size) it says why and
//! prints plain lines instead: the list, or the run's status and its log until it ends.

use crate::args::StoreArgs;
use crate::tui::{session, term};
use crate::{locator, CommandResult};

pub async fn run(run: Option<&str>, store: &StoreArgs, read_only: bool) -> CommandResult {
    match term::console_possible() {
        Ok(()) => {
            if let Some((locator, state)) = session::watch(run, store, read_only).await? {
                crate::out!("run {locator} {}", state.status());
            }
            Ok(())
        }
        Err(why) => plain(run, store, &why).await,
    }
}

async fn plain(run: Option<&str>, store: &StoreArgs, why: &str) -> CommandResult {
    let Some(run) = run else {
        eprintln!("baton watch: {why}: listing the runs instead");
        return super::runs::run(store, false).await;
    };
    // Fail on a wrong locator before printing anything.
    let opened = locator::open(run, store).await?;
    eprintln!("baton watch: {why}: following the run in plain lines until it ends");
    let locator = baton_core::RunStore::locator(&opened.store);
    super::status::run(&locator, store, false, false).await?;
    super::logs::run(&locator, store, None, true).await?;
    let (state, _) = opened.load().await?;
    crate::out!("run {locator} {}", state.status());
    Ok(())
}
