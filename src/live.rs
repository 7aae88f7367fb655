//! Following running actions' live log streams, which the driver writes beside the state (see
//! `baton_core::log_stream`): what `baton logs --follow` and the console share. The stored
//! state says which attempts run; their streams carry the lines the state will hold only at
//! its next save.

use std::collections::HashMap;

use baton_core::log_stream::{self, LogStream};
use baton_core::state::LogEntry;
use baton_core::{ActionIdx, ActionStatus, Plan, RunState, RunStore, StoreError};

/// How often followers look for new lines. With the driver's one-second batching, a line
/// reaches a follower within about 1.5 s.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// The most streams one follower reads per poll (every read is a request on S3); the lines of
/// further running actions arrive with the state's next save.
pub const MAX_STREAMS: usize = 16;

/// New lines of one running attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Tail {
    pub idx: ActionIdx,
    pub attempt: u32,
    pub entries: Vec<LogEntry>,
}

/// How long a follower leaves the streams alone after a read failed (a store that refuses
/// to list the run's objects, an outage): meanwhile lines arrive with the state's saves.
pub const PAUSE_AFTER_FAILURE: std::time::Duration = std::time::Duration::from_secs(30);

/// Where a follower is in each running attempt's stream.
#[derive(Debug, Default)]
pub struct Tails {
    positions: HashMap<(ActionIdx, u32), u64>,
    paused_until: Option<std::time::Instant>,
}

impl Tails {
    /// Reads what is new in the streams of `attempts` (an attempt seen for the first time
    /// starts from its newest `limit` bytes); forgets the attempts not listed. After a failed
    /// read, reads nothing for [`PAUSE_AFTER_FAILURE`].
    pub async fn poll<S: RunStore>(
        &mut self,
        store: &S,
        plan: &Plan,
        attempts: &[(ActionIdx, u32)],
        limit: usize,
    ) -> Result<Vec<Tail>, StoreError> {
        self.positions.retain(|key, _| attempts.contains(key));
        if self
            .paused_until
            .is_some_and(|until| std::time::Instant::now() < until)
        {
            return Ok(Vec::new());
        }
        let mut tails = Vec::new();
        for &(idx, attempt) in attempts.iter().take(MAX_STREAMS) {
            let stream = LogStream::new(plan.label(idx), attempt);
            let from = self.positions.get(&(idx, attempt)).copied().unwrap_or(0);
            let (entries, next) = match log_stream::read(store, &stream, from, limit).await {
                Ok(read) => read,
                Err(e) => {
                    self.paused_until = Some(std::time::Instant::now() + PAUSE_AFTER_FAILURE);
                    return Err(e);
                }
            };
            self.positions.insert((idx, attempt), next);
            if !entries.is_empty() {
                tails.push(Tail {
                    idx,
                    attempt,
                    entries,
                });
            }
        }
        Ok(tails)
    }
}

/// The running attempts in `state`, `first` (if running) ahead of the others in plan order.
pub fn running(plan: &Plan, state: &RunState, first: Option<ActionIdx>) -> Vec<(ActionIdx, u32)> {
    let is_running = |idx: ActionIdx| {
        let action = state.action(idx);
        (action.status == ActionStatus::Running && action.attempt > 0)
            .then_some((idx, action.attempt))
    };
    first
        .and_then(is_running)
        .into_iter()
        .chain(
            plan.order()
                .iter()
                .copied()
                .filter(|&idx| Some(idx) != first)
                .filter_map(is_running),
        )
        .collect()
}

/// Whether `entry` is news to a log thread whose newest entries are `thread` (oldest first):
/// later than its newest entry, or as old but not among the entries of that moment. Lines
/// arrive in time order from the state and the stream alike, so this merges the two without
/// duplicates; an older line the thread does not hold was dropped from a full ring and stays
/// dropped.
pub fn is_news<'a>(
    thread: impl DoubleEndedIterator<Item = &'a LogEntry>,
    entry: &LogEntry,
) -> bool {
    let mut newest = thread.rev().peekable();
    match newest.peek() {
        None => true,
        Some(last) if entry.t > last.t => true,
        Some(last) if entry.t < last.t => false,
        Some(_) => !newest.take_while(|e| e.t == entry.t).any(|e| e == entry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::state::Level;
    use chrono::{TimeZone, Utc};

    fn entry(ms: i64, msg: &str) -> LogEntry {
        LogEntry {
            t: Utc
                .timestamp_millis_opt(1_800_000_000_000 + ms)
                .single()
                .expect("valid time"),
            level: Level::Info,
            msg: msg.into(),
        }
    }

    #[test]
    fn a_failed_read_pauses_the_streams_and_the_state_carries_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plan = baton_core::testutil::plan(r#"[{"label": "a", "type": "system.no_op"}]"#);
        let store = baton_core::LocalStore::new(dir.path());
        // A stream the store cannot read: its file is a folder.
        std::fs::create_dir_all(dir.path().join("logs").join("a.1.jsonl")).expect("mkdir");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut tails = Tails::default();
        let attempts = [(0, 1)];
        let first = runtime.block_on(tails.poll(&store, &plan, &attempts, 1024));
        assert!(first.is_err(), "{first:?}");
        let again = runtime.block_on(tails.poll(&store, &plan, &attempts, 1024));
        assert_eq!(again.expect("paused, not failing"), Vec::new());
    }

    #[test]
    fn news_is_newer_or_unseen_at_the_same_moment() {
        let thread = [entry(0, "a"), entry(5, "b"), entry(5, "c")];
        assert!(is_news([].iter(), &entry(0, "a")));
        assert!(is_news(thread.iter(), &entry(6, "d")));
        assert!(is_news(thread.iter(), &entry(5, "d")));
        assert!(!is_news(thread.iter(), &entry(5, "b")));
        assert!(!is_news(thread.iter(), &entry(5, "c")));
        assert!(!is_news(thread.iter(), &entry(0, "a")));
        assert!(!is_news(thread.iter(), &entry(1, "older, dropped")));
    }
}
