//! Three-way merge of a tick's state with an operator's change saved meanwhile.
//!
//! A tick holds the run for a while (a long command, a slow stack). Operators still act on it:
//! `baton abort`, `baton retry --no-run`, the console's re-execute. Their saves win the
//! compare-and-swap, and the tick's next save conflicts. Rather than throwing away what the tick
//! did (or the operator's change), the tick merges: every field the operator changed since the
//! version the tick last saved (`base`) is taken from theirs, as long as the tick did not change
//! it too. Another driver's tick, or both sides changing one action, stays a conflict.

use crate::state::{ActionState, RunState, RunStatus, LOG_RING};

/// What a merge took from the other side.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Merged {
    /// Action states changed (reset for re-execution): the tick's scheduler no longer matches
    /// the state, so it must start nothing more and hand over to a fresh tick.
    pub actions: bool,
    pub abort: bool,
}

/// Why two changes to a run cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MergeConflict {
    /// Not an operator's change: another driver ticked.
    #[error("another driver ticked the run meanwhile")]
    AnotherDriver,
    /// The versions do not belong to one plan.
    #[error("the versions describe different plans")]
    DifferentPlans,
    /// Both sides changed one action.
    #[error("both this tick and another process changed action #{0}")]
    SameAction(usize),
}

/// Merges `theirs` (the newest version) into `ours` (the tick's state, derived from `base`).
/// On a conflict, returns why and leaves `ours` unchanged.
pub(crate) fn merge_operator_change(
    ours: &mut RunState,
    base: &RunState,
    theirs: &RunState,
) -> Result<Merged, MergeConflict> {
    if theirs.invocations != base.invocations || theirs.driver != base.driver {
        return Err(MergeConflict::AnotherDriver);
    }
    if theirs.actions.len() != ours.actions.len() || base.actions.len() != ours.actions.len() {
        return Err(MergeConflict::DifferentPlans);
    }
    let mut changed = Vec::new();
    for (idx, (mine, (old, new))) in ours
        .actions
        .iter()
        .zip(base.actions.iter().zip(&theirs.actions))
        .enumerate()
    {
        if old != new {
            if !same_as_stored(mine, old) {
                return Err(MergeConflict::SameAction(idx));
            }
            changed.push(idx);
        }
    }
    let merged = Merged {
        actions: !changed.is_empty(),
        abort: theirs.abort_requested && !base.abort_requested,
    };
    for idx in changed {
        *ours.action_mut(idx as crate::model::ActionIdx) = theirs.actions[idx].clone();
    }
    if theirs.abort_requested != base.abort_requested {
        ours.abort_requested = theirs.abort_requested;
    }
    if theirs.state_machine != base.state_machine {
        ours.state_machine.clone_from(&theirs.state_machine);
    }
    if theirs.vars != base.vars {
        ours.replace_vars(theirs.vars.clone());
    }
    // Run-level entries they added, interleaved with ours by time.
    let added: Vec<_> = theirs
        .log
        .iter()
        .filter(|entry| !base.log.contains(entry))
        .cloned()
        .collect();
    if !added.is_empty() {
        let mut log: Vec<_> = ours.log.drain(..).chain(added).collect();
        log.sort_by_key(|entry| entry.t);
        let skip = log.len().saturating_sub(LOG_RING);
        ours.replace_log(log.into_iter().skip(skip).collect());
    }
    if merged.actions {
        ours.status = RunStatus::Running;
    }
    ours.updated_at = ours.updated_at.max(theirs.updated_at);
    Ok(merged)
}

/// `stored` was read back from the store, which keeps timestamps to the millisecond; compare
/// `mine` as it would be stored.
fn same_as_stored(mine: &ActionState, stored: &ActionState) -> bool {
    mine == stored
        || serde_json::to_vec(mine).ok().is_some_and(|bytes| {
            serde_json::to_vec(stored).is_ok_and(|stored_bytes| stored_bytes == bytes)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{apply_reexecute, Reexecute};
    use crate::state::{ActionStatus, Level};
    use crate::testutil::plan;
    use chrono::{Duration, Utc};
    use serde_json::Map;

    fn states() -> (crate::model::Plan, RunState) {
        let plan = plan(
            r#"[{"label":"a","type":"system.no_op"},
                {"label":"b","type":"system.no_op"},
                {"label":"c","type":"system.no_op","depends_on":["b"]}]"#,
        );
        let mut base = RunState::new("r", &plan, "sha", Map::new(), Utc::now());
        base.actions[1].status = ActionStatus::Failed;
        base.actions[2].status = ActionStatus::Blocked;
        base.actions[0].status = ActionStatus::Running;
        base.status = RunStatus::Running;
        (plan, base)
    }

    #[test]
    fn a_reexecute_and_a_tick_both_survive() {
        let (plan, base) = states();
        let mut ours = base.clone();
        ours.actions[0].status = ActionStatus::Complete;
        ours.log_run(Utc::now(), Level::Info, "tick work");
        let mut theirs = base.clone();
        theirs.log_run(
            Utc::now() - Duration::milliseconds(5),
            Level::Info,
            "operator",
        );
        apply_reexecute(&plan, &mut theirs, Reexecute::Failed, Utc::now());

        let merged = merge_operator_change(&mut ours, &base, &theirs).expect("merges");
        assert_eq!(
            merged,
            Merged {
                actions: true,
                abort: false
            }
        );
        assert_eq!(ours.actions[0].status, ActionStatus::Complete);
        assert_eq!(ours.actions[1].status, ActionStatus::Pending);
        assert_eq!(ours.actions[2].status, ActionStatus::Pending);
        assert_eq!(ours.status, RunStatus::Running);
        let messages: Vec<_> = ours.log.iter().map(|e| e.msg.as_str()).collect();
        let operator = messages.iter().position(|m| *m == "operator");
        let tick = messages.iter().position(|m| *m == "tick work");
        assert!(operator < tick, "{messages:?}");
        assert!(messages.iter().any(|m| m.starts_with("re-execute failed")));
    }

    #[test]
    fn an_abort_is_merged() {
        let (_, base) = states();
        let mut ours = base.clone();
        ours.actions[0].status = ActionStatus::Complete;
        let mut theirs = base.clone();
        theirs.abort_requested = true;
        let merged = merge_operator_change(&mut ours, &base, &theirs).expect("merges");
        assert!(merged.abort && !merged.actions);
        assert!(ours.abort_requested);
        assert_eq!(ours.actions[0].status, ActionStatus::Complete);
    }

    #[test]
    fn another_driver_or_the_same_action_is_a_conflict() {
        let (_, base) = states();
        let mut ours = base.clone();
        ours.actions[1].status = ActionStatus::Pending;
        let mut theirs = base.clone();
        theirs.actions[1].attempt = 9;
        let before = ours.clone();
        assert!(merge_operator_change(&mut ours, &base, &theirs).is_err());
        assert_eq!(ours, before, "a refused merge changes nothing");

        let mut theirs = base.clone();
        theirs.invocations += 1;
        assert!(merge_operator_change(&mut ours, &base, &theirs).is_err());
    }
}
