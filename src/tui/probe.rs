//! Small background jobs of a run console: whether another process on this machine drives a
//! local run (every two seconds), the store's run ids for `:run` completion, and resuming a
//! remote run in a new execution.

use std::sync::Arc;
use std::time::Duration;

use baton_core::{Run, RunStore};
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::app::Msg;
use crate::locator::AnyStore;

/// How often the console looks at a local run's driver lock.
const LOCK_PROBE: Duration = Duration::from_secs(2);

/// Starts the jobs; the caller aborts them when the console closes.
pub fn start(run: &Arc<Run<AnyStore>>, tx: &UnboundedSender<Msg>) -> Vec<JoinHandle<()>> {
    let mut jobs = Vec::new();
    if let AnyStore::Local(local) = &run.store {
        let dir = local.dir().to_path_buf();
        let tx = tx.clone();
        jobs.push(tokio::spawn(async move {
            loop {
                let holder = crate::commands::runs::local_driver(&dir);
                if tx.send(Msg::LocalDriver(holder)).is_err() {
                    return;
                }
                tokio::time::sleep(LOCK_PROBE).await;
            }
        }));
    }
    let store = super::session::store_of(&run.store.locator());
    let tx = tx.clone();
    jobs.push(tokio::spawn(async move {
        if let Ok(ids) = crate::commands::runs::ids(&store).await {
            let _ = tx.send(Msg::RunIds(ids));
        }
    }));
    jobs
}

/// `R` on an idle remote run: a new execution drives it.
pub fn spawn_remote_resume(run: Arc<Run<AnyStore>>, tx: UnboundedSender<Msg>) {
    tokio::spawn(async move {
        let flash = match crate::ops::resume_remotely(&run, None).await {
            Ok(started) => format!("resumed in execution {}", started.name),
            Err(e) => format!("resume failed: {e}"),
        };
        let _ = tx.send(Msg::Flash(flash));
    });
}
