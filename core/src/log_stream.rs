//! Live log streams: the lines of one action attempt, appended beside the state while the
//! attempt runs, so `baton logs --follow`, `baton watch` and other consoles see them within
//! seconds without a new state version per line. The state's bounded log ring stays the
//! durable record (it is what a finished attempt is remembered by); a stream is what
//! watchers read while it runs.
//!
//! Streams hold JSON Lines of [`LogEntry`], already redacted. The driver appends at most once
//! a second per stream (one write per batch, never one per line) and stops a stream at
//! [`STREAM_LIMIT`] with a marker line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::Utc;

use crate::log::{Level, LogEntry};
use crate::model::{ActionIdx, Plan};
use crate::state::{ActionStatus, RunState};
use crate::store::{RunStore, StoreError};

/// The most one attempt's stream holds. Past it the stream ends with a marker line; the
/// lines that follow reach only the state's log ring (its newest 200 lines).
pub const STREAM_LIMIT: u64 = 4 * 1024 * 1024;

/// How long a line waits in the driver before it is appended: the bound on both the delay a
/// watcher sees and the writes a chatty command costs (one per stream per second).
pub(crate) const FLUSH: Duration = Duration::from_secs(1);

/// How much of a stream a reader asks for at once: the newest lines within this many bytes.
pub const TAIL_BYTES: usize = 64 * 1024;

/// Encoded names longer than this are shortened and made unique with a hash of the label.
const MAX_KEY: usize = 120;

/// Names one action attempt's stream in a form that is safe as a file name and an S3 key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogStream {
    key: String,
}

impl LogStream {
    /// The stream of attempt `attempt` of the action labelled `label`.
    ///
    /// Labels may hold `/`, `:` and `.`; those, upper-case letters (file systems that ignore
    /// case would merge `Build` and `build`) and anything else beyond `a-z 0-9 _ -` become
    /// `~` and two hex digits. The attempt follows a `.`, which the label part never holds.
    pub fn new(label: &str, attempt: u32) -> Self {
        let mut encoded = String::with_capacity(label.len());
        let mut shortened = false;
        for byte in label.bytes() {
            if encoded.len() + 3 > MAX_KEY {
                shortened = true;
                break;
            }
            match byte {
                b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => encoded.push(char::from(byte)),
                _ => {
                    let _ = write!(encoded, "~{byte:02x}");
                }
            }
        }
        if shortened {
            let hash = crate::util::sha256_hex(label.as_bytes());
            let _ = write!(encoded, "~~{}", &hash[..16]);
        }
        LogStream {
            key: format!("{encoded}.{attempt}"),
        }
    }

    /// The stream's name inside the run: `[a-z0-9_~-]+` then `.` and the attempt.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Entries as stream bytes: one JSON object per line.
pub fn encode(entries: &[LogEntry]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in entries {
        if serde_json::to_writer(&mut bytes, entry).is_ok() {
            bytes.push(b'\n');
        }
    }
    bytes
}

/// Stream bytes as entries. A line that does not parse is skipped: a stream is a view for
/// watchers, and one damaged line must not hide the others.
pub fn decode(bytes: &[u8]) -> Vec<LogEntry> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect()
}

/// The entries of `stream` after position `from` (0: its start; at most about `limit` bytes,
/// the newest), and the position to read from next.
pub async fn read<S: RunStore>(
    store: &S,
    stream: &LogStream,
    from: u64,
    limit: usize,
) -> Result<(Vec<LogEntry>, u64), StoreError> {
    let (bytes, next) = store.read_log(stream, from, limit).await?;
    Ok((decode(&bytes), next))
}

/// The complete lines of a window of a stream, and the position after them.
///
/// `window` holds the stream's bytes from `window_start`; `from` is where the reader is. When
/// the window starts later than `from` (older lines were skipped to keep within a limit), it
/// must start one byte early, so a window that begins exactly at a line is recognised: the
/// partial line at its front is dropped. A partial line at its end (a write in progress) is
/// left for the next read.
pub(crate) fn complete_lines(window: &[u8], window_start: u64, from: u64) -> (Vec<u8>, u64) {
    let skip = if window_start < from {
        (from - window_start) as usize
    } else if window_start > from {
        match window.iter().position(|b| *b == b'\n') {
            Some(newline) => newline + 1,
            None => return (Vec::new(), from),
        }
    } else {
        0
    };
    let rest = window.get(skip..).unwrap_or_default();
    match rest.iter().rposition(|b| *b == b'\n') {
        Some(last) => (
            rest[..=last].to_vec(),
            window_start + (skip + last + 1) as u64,
        ),
        None => (Vec::new(), from.max(window_start + skip as u64)),
    }
}

/// Where a stream of `len` bytes is read from, for a reader at `from` wanting at most `limit`
/// bytes: one byte before the newest `limit` bytes when older lines are skipped (see
/// [`complete_lines`]).
pub(crate) fn window_start(len: u64, from: u64, limit: usize) -> u64 {
    let newest = len.saturating_sub(limit as u64);
    if newest > from {
        newest - 1
    } else {
        from
    }
}

/// The driver's side: redacted lines waiting to be appended, per running attempt.
#[derive(Default)]
pub(crate) struct StreamWriter {
    streams: BTreeMap<(ActionIdx, u32), Pending>,
    /// When the oldest waiting line is due to be appended.
    due: Option<tokio::time::Instant>,
}

struct Pending {
    stream: LogStream,
    lines: Vec<LogEntry>,
    /// Bytes appended to the stream in this tick.
    written: u64,
    /// Past [`STREAM_LIMIT`], or the store refused a write: nothing more is appended.
    stopped: bool,
}

impl StreamWriter {
    /// Queues a line of attempt `attempt` of action `idx`.
    pub(crate) fn push(&mut self, plan: &Plan, idx: ActionIdx, attempt: u32, entry: &LogEntry) {
        let pending = self
            .streams
            .entry((idx, attempt))
            .or_insert_with(|| Pending {
                stream: LogStream::new(plan.label(idx), attempt),
                lines: Vec::new(),
                written: 0,
                stopped: false,
            });
        if pending.stopped {
            return;
        }
        pending.lines.push(entry.clone());
        self.due
            .get_or_insert_with(|| tokio::time::Instant::now() + FLUSH);
    }

    /// When the next append is due, if any line waits.
    pub(crate) fn due(&self) -> Option<tokio::time::Instant> {
        self.due
    }

    /// Whether an attempt with waiting lines is running in `state` but no saved version says
    /// so yet (a replay-safe action starts without a save): watchers learn from the state
    /// which streams to follow, so it is saved before the stream is written.
    pub(crate) fn needs_announcing(&self, state: &RunState) -> bool {
        self.streams.iter().any(|(&(idx, attempt), pending)| {
            let action = state.action(idx);
            !pending.lines.is_empty()
                && pending.written == 0
                && live(state, idx, attempt)
                && action
                    .started_at
                    .is_some_and(|started| state.updated_at() < started)
        })
    }

    /// Appends every waiting line. An attempt that ended before anything of it was appended
    /// is not streamed at all (its lines reach the state at the next save, as fast as a
    /// watcher would read them); one that was streamed gets its tail. A failed write is
    /// logged and stops that stream: the state's ring still holds the lines.
    pub(crate) async fn flush<S: RunStore>(&mut self, store: &S, state: &RunState) {
        self.due = None;
        for (&(idx, attempt), pending) in &mut self.streams {
            let lines = std::mem::take(&mut pending.lines);
            let running = live(state, idx, attempt);
            if lines.is_empty() || pending.stopped || (!running && pending.written == 0) {
                continue;
            }
            let (bytes, full) = within_limit(&lines, pending.written);
            let len = bytes.len() as u64;
            match store.append_log(&pending.stream, bytes).await {
                Ok(()) => {
                    pending.written += len;
                    pending.stopped = full;
                }
                Err(error) => {
                    tracing::warn!(
                        stream = pending.stream.key(),
                        "live log stream not written ({error}); its lines are in the state"
                    );
                    pending.stopped = true;
                }
            }
        }
        self.streams
            .retain(|&(idx, attempt), _| live(state, idx, attempt));
    }
}

fn live(state: &RunState, idx: ActionIdx, attempt: u32) -> bool {
    let action = state.action(idx);
    action.attempt == attempt && action.status == ActionStatus::Running
}

/// The lines that fit in a stream holding `written` bytes, and whether it is now full (then
/// they end with a marker line saying so).
fn within_limit(lines: &[LogEntry], written: u64) -> (Vec<u8>, bool) {
    let marker = LogEntry {
        t: Utc::now(),
        level: Level::Warn,
        msg: format!(
            "the live log stops here ({} MiB); further lines are kept only in the state's log \
             (its newest 200 lines), shown by `baton logs` once saved",
            STREAM_LIMIT / (1024 * 1024)
        ),
    };
    let room =
        STREAM_LIMIT.saturating_sub(written + encode(std::slice::from_ref(&marker)).len() as u64);
    let mut bytes = Vec::new();
    for line in lines {
        let encoded = encode(std::slice::from_ref(line));
        if (bytes.len() + encoded.len()) as u64 > room {
            bytes.extend(encode(&[marker]));
            return (bytes, true);
        }
        bytes.extend(encoded);
    }
    (bytes, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_safe_distinct_and_bounded() {
        let labels = [
            "build",
            "Build",
            "deploy/api",
            "deploy:api",
            "deploy.api",
            "deploy~2fapi",
            "a.1",
        ];
        let keys: Vec<String> = labels
            .iter()
            .map(|l| LogStream::new(l, 1).key().to_string())
            .collect();
        assert_eq!(keys[0], "build.1");
        assert_eq!(keys[2], "deploy~2fapi.1");
        for key in &keys {
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-~.".contains(&b)),
                "{key}"
            );
        }
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "{keys:?}");
        assert_ne!(LogStream::new("a", 1), LogStream::new("a", 2));
        // The attempt is never confused with a label's own dots.
        assert_ne!(LogStream::new("a.1", 2), LogStream::new("a", 12));
        let long = "X".repeat(256);
        let key = LogStream::new(&long, 3);
        assert!(key.key().len() < 150, "{}", key.key());
        assert_ne!(key, LogStream::new(&format!("{long}Y"), 3));
    }

    #[test]
    fn complete_lines_skip_partial_ends() {
        let stream = b"one\ntwo\nthree\npart";
        // From the start: every complete line, not the line being written.
        assert_eq!(
            complete_lines(stream, 0, 0),
            (b"one\ntwo\nthree\n".to_vec(), 14)
        );
        // From a position inside the window.
        assert_eq!(complete_lines(stream, 0, 4), (b"two\nthree\n".to_vec(), 14));
        // A window that skipped older lines starts one byte early: exactly at a line...
        let start = window_start(stream.len() as u64, 0, 15);
        assert_eq!(start, 2);
        assert_eq!(
            complete_lines(&stream[start as usize..], start, 0),
            (b"two\nthree\n".to_vec(), 14)
        );
        // ...or inside one, which is dropped.
        let start = window_start(stream.len() as u64, 0, 13);
        assert_eq!(
            complete_lines(&stream[start as usize..], start, 0),
            (b"three\n".to_vec(), 14)
        );
        // Nothing complete yet: the position stays.
        assert_eq!(complete_lines(b"part", 14, 14), (Vec::new(), 14));
    }

    #[test]
    fn a_full_stream_ends_with_a_marker() {
        let line = LogEntry {
            t: Utc::now(),
            level: Level::Info,
            msg: "x".repeat(1000),
        };
        let lines = vec![line; 10];
        let (bytes, full) = within_limit(&lines, 0);
        assert!(!full);
        assert_eq!(decode(&bytes).len(), 10);
        let (bytes, full) = within_limit(&lines, STREAM_LIMIT - 2500);
        assert!(full);
        let entries = decode(&bytes);
        assert_eq!(entries.len(), 3, "two lines fit, then the marker");
        assert!(entries[2].msg.contains("live log stops here"));
        assert!(STREAM_LIMIT - 2500 + bytes.len() as u64 <= STREAM_LIMIT);
    }
}
