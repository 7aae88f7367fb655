//! `baton logs RUN [LABEL] [--follow]`

use std::time::Duration;

use baton_core::state::{ts, LogEntry};
use baton_core::{RunState, RunStore};

use crate::args::StoreArgs;
use crate::{locator, CommandResult, Failure};

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
    let (mut state, mut version) = run.load().await?;
    let mut printed = Printed::default();
    loop {
        printed.print(&run.plan, &state, only);
        if !follow || state.status().is_finished() {
            return Ok(());
        }
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let head = run.store.head().await?;
            if head != version {
                (state, version) = run.load().await?;
                break;
            }
        }
    }
}

pub fn unknown_label(plan: &baton_core::Plan, label: &str) -> Failure {
    let hint = baton_core::hints::suggest(label, plan.actions().iter().map(|a| a.label.as_str()))
        .map(|s| format!(" (did you mean \"{s}\"?)"))
        .unwrap_or_default();
    Failure::Invalid(format!("no action labelled \"{label}\" in this run{hint}"))
}

/// Remembers the newest timestamp printed per thread, so `--follow` prints only new entries.
#[derive(Default)]
struct Printed {
    last: std::collections::HashMap<Option<u32>, (String, usize)>,
}

impl Printed {
    fn print(&mut self, plan: &baton_core::Plan, state: &RunState, only: Option<u32>) {
        let mut threads: Vec<(Option<u32>, &str, Vec<&LogEntry>)> = Vec::new();
        if only.is_none() {
            threads.push((None, "run", state.log().iter().collect()));
        }
        for &idx in plan.order() {
            if only.is_some_and(|o| o != idx) {
                continue;
            }
            threads.push((
                Some(idx),
                plan.label(idx),
                state.action(idx).log.iter().collect(),
            ));
        }
        for (key, name, entries) in threads {
            let fresh: Vec<&LogEntry> = match self.last.get(&key) {
                // Entries are in time order; several may share a millisecond.
                Some((last, printed_at_last)) => {
                    let mut same = 0;
                    entries
                        .iter()
                        .copied()
                        .filter(|e| {
                            let stamp = ts::format(&e.t);
                            if stamp == *last {
                                same += 1;
                                same > *printed_at_last
                            } else {
                                stamp > *last
                            }
                        })
                        .collect()
                }
                None => entries.clone(),
            };
            if let Some(newest) = entries.last() {
                let stamp = ts::format(&newest.t);
                let count = entries.iter().filter(|e| ts::format(&e.t) == stamp).count();
                self.last.insert(key, (stamp, count));
            }
            for entry in fresh {
                crate::out!(
                    "{} {:<5} {:<24} {}",
                    ts::format(&entry.t),
                    entry.level.as_str(),
                    name,
                    entry.msg
                );
            }
        }
    }
}
