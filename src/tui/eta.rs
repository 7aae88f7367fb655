//! The header's ETA: the longest chain of work still to do (the remaining critical path),
//! each action's length estimated from the measured durations of finished actions of its type
//! in this run (of any type when none of its own has finished). No estimate before anything
//! finished, while a running action is past its estimate, for a finished run, or during an
//! abort.

use std::collections::HashMap;
use std::time::Duration;

use baton_core::ActionStatus;

use super::app::App;

/// Per action, the measured median duration of its type (seconds), recomputed only when the
/// state changes.
pub struct EtaCache {
    generation: u64,
    estimate: Vec<Option<f64>>,
}

fn estimates(app: &App) -> Vec<Option<f64>> {
    let mut by_type: HashMap<&str, Vec<f64>> = HashMap::new();
    for (def, a) in app.plan.actions().iter().zip(app.state.actions()) {
        if a.status != ActionStatus::Complete {
            continue;
        }
        if let (Some(start), Some(end)) = (a.started_at, a.finished_at) {
            let seconds = (end - start).num_milliseconds().max(0) as f64 / 1000.0;
            by_type
                .entry(def.action_type.name())
                .or_default()
                .push(seconds);
        }
    }
    let median = |list: &mut Vec<f64>| {
        list.sort_by(f64::total_cmp);
        list[list.len() / 2]
    };
    let mut all: Vec<f64> = by_type.values().flatten().copied().collect();
    // A type nothing has measured yet counts as the run's typical action.
    let overall = (!all.is_empty()).then(|| median(&mut all));
    let medians: HashMap<&str, f64> = by_type
        .into_iter()
        .map(|(name, mut list)| (name, median(&mut list)))
        .collect();
    app.plan
        .actions()
        .iter()
        .map(|def| medians.get(def.action_type.name()).copied().or(overall))
        .collect()
}

/// How long until the run ends, if that can be estimated.
pub fn eta(app: &App) -> Option<Duration> {
    if app.state.status().is_finished() || app.state.abort_requested() {
        return None;
    }
    let mut cache = app.eta.borrow_mut();
    if cache
        .as_ref()
        .is_none_or(|c| c.generation != app.progress_generation)
    {
        *cache = Some(EtaCache {
            generation: app.progress_generation,
            estimate: estimates(app),
        });
    }
    let estimate = &cache.as_ref()?.estimate;
    let now = app.now;
    // Seconds from now until each action is done; `None` once it will never run.
    let mut done_in: Vec<Option<f64>> = vec![Some(0.0); app.plan.len()];
    let mut longest = 0.0f64;
    let mut any_left = false;
    for &idx in app.plan.order() {
        let i = idx as usize;
        let a = app.state.action(idx);
        let after_deps = app
            .plan
            .deps(idx)
            .iter()
            .map(|&d| done_in[d as usize])
            .try_fold(0.0f64, |acc, d| d.map(|d| acc.max(d)));
        let left = match a.status {
            ActionStatus::Complete | ActionStatus::Skipped => Some(0.0),
            ActionStatus::Failed | ActionStatus::Blocked | ActionStatus::Cancelled => None,
            ActionStatus::Running => {
                let ran = a
                    .started_at
                    .map(|s| (now - s).num_milliseconds().max(0) as f64 / 1000.0)
                    .unwrap_or(0.0);
                let left = estimate[i]? - ran;
                if left <= 0.0 {
                    return None;
                }
                any_left = true;
                Some(left)
            }
            ActionStatus::Pending => match after_deps {
                Some(_) => {
                    any_left = true;
                    Some(estimate[i]?)
                }
                None => None,
            },
        };
        done_in[i] = match (after_deps, left) {
            (Some(deps), Some(left)) => Some(deps + left),
            _ => None,
        };
        if let Some(d) = done_in[i] {
            longest = longest.max(d);
        }
    }
    any_left.then(|| Duration::from_secs_f64(longest))
}
