//! Process groups of running commands. Every `system.command` runs in its own process group, and
//! baton stops the whole group — the command and everything it started — rather than its first
//! process alone. This module signals groups, tells whether a group still has live members,
//! records where a group runs so that a later baton process can find it again, and keeps the
//! list of groups this process started so that a second Ctrl-C can kill them all at once.
//!
//! Liveness ignores zombies: a finished background process whose parent is gone waits for the
//! system's init to reap it, and an init that never does (as in many containers) would
//! otherwise keep a finished group "alive" for ever.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};
use serde::{Deserialize, Serialize};

/// Why baton stopped running work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StopCause {
    /// An operator's abort.
    #[serde(rename = "abort")]
    Abort,
    /// The operator quit the console that was driving the run.
    #[serde(rename = "quit")]
    Quit,
    /// baton received SIGINT (Ctrl-C).
    #[serde(rename = "SIGINT")]
    Interrupt,
    /// baton received SIGTERM.
    #[serde(rename = "SIGTERM")]
    Terminate,
    /// baton received SIGHUP (its terminal went away).
    #[serde(rename = "SIGHUP")]
    Hangup,
}

impl StopCause {
    /// As operators read it: "an operator's abort", "SIGTERM".
    pub fn describe(self) -> &'static str {
        match self {
            StopCause::Abort => "an operator's abort",
            StopCause::Quit => "quitting the console",
            StopCause::Interrupt => "SIGINT",
            StopCause::Terminate => "SIGTERM",
            StopCause::Hangup => "SIGHUP",
        }
    }
}

impl std::fmt::Display for StopCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// How long a stopped command's process group has between SIGTERM and SIGKILL, unless the
/// command's `grace` param or [`GRACE_ENV`] says otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// The environment variable that sets the grace period of commands without a `grace` param
/// (`"3s"`, `"500ms"` or seconds).
pub const GRACE_ENV: &str = "BATON_KILL_GRACE";

/// How often a group is looked at while baton stops it.
const STOP_POLL: Duration = Duration::from_millis(20);

/// How often a group is looked at while baton waits for it to end by itself: each look reads
/// every process's `/proc/PID/stat`.
pub(crate) const IDLE_POLL: Duration = Duration::from_millis(100);

/// How long SIGKILL may take to empty a group before baton reports it could not.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Where a running command's processes are: saved in the action's state as soon as the command
/// has started, so that a baton process resuming the run after a crash can tell whether that
/// attempt still runs on this host, and wait for it or stop it instead of starting a second
/// copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessRecord {
    /// The command's first process.
    pub pid: u32,
    /// Its process group (the first process leads it).
    pub pgid: u32,
    /// The host it runs on.
    pub host: String,
    /// The host's boot (Linux `boot_id`): no process survives a reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// When the first process started, in clock ticks since boot (`/proc/PID/stat`): a
    /// process with the same pid and another start time is someone else's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
    /// Milliseconds between SIGTERM and SIGKILL when baton stops the group.
    pub grace_ms: u64,
}

impl ProcessRecord {
    /// The record of a group led by `pid`, started on this host just now.
    pub(crate) fn new(pid: u32, grace: Duration) -> Self {
        let here = host();
        ProcessRecord {
            pid,
            pgid: pid,
            host: here.name.clone(),
            boot_id: here.boot_id.clone(),
            start_ticks: stat(pid).map(|s| s.start_ticks),
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The grace period recorded for the group.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms)
    }

    /// Whether the recorded group still has live processes, looked at from this host.
    pub(crate) fn whereabouts(&self) -> Whereabouts {
        let here = host();
        if self.host != here.name {
            return Whereabouts::Elsewhere;
        }
        if self.boot_id.is_some() && here.boot_id.is_some() && self.boot_id != here.boot_id {
            return Whereabouts::Gone;
        }
        let recorded_start = self.start_ticks;
        if let (Some(leader), Some(start)) = (stat(self.pid), recorded_start) {
            // A live process under the recorded pid that started at another time means the
            // pid was reused, which the kernel does only once the old group is empty.
            if !leader.is_zombie() && leader.start_ticks != start {
                return Whereabouts::Gone;
            }
        }
        let alive = match live_members(self.pgid) {
            Some(members) => members
                .iter()
                .any(|m| recorded_start.is_none_or(|start| m.start_ticks >= start)),
            None => group_exists(self.pgid),
        };
        if alive {
            Whereabouts::Alive
        } else {
            Whereabouts::Gone
        }
    }
}

/// Where a recorded process group is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Whereabouts {
    /// Still running on this host.
    Alive,
    /// Ended (or this host rebooted since).
    Gone,
    /// On another host: baton cannot tell.
    Elsewhere,
}

struct Host {
    name: String,
    boot_id: Option<String>,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .ok()
                .map(|text| text.trim().to_string())
                .filter(|text| !text.is_empty())
        };
        Host {
            name: read("/proc/sys/kernel/hostname")
                .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
                .or_else(|| read("/etc/hostname"))
                .unwrap_or_else(|| "unknown host".into()),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
        }
    })
}

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    state: char,
    pgrp: u32,
    start_ticks: u64,
}

impl Stat {
    /// Finished, waiting to be reaped: it runs nothing and holds nothing open.
    fn is_zombie(self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `PID (COMM) STATE PPID PGRP … STARTTIME …`; COMM may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

#[derive(Debug, Clone, Copy)]
struct Member {
    start_ticks: u64,
}

/// The group's processes that are not zombies; `None` where `/proc` cannot be read (then only
/// `kill(-pgid, 0)` can tell, zombies included).
fn live_members(pgid: u32) -> Option<Vec<Member>> {
    let entries = std::fs::read_dir("/proc").ok()?;
    let members = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .filter(|s| s.pgrp == pgid && !s.is_zombie())
        .map(|s| Member {
            start_ticks: s.start_ticks,
        })
        .collect();
    Some(members)
}

/// Whether any process (zombies included) is in the group.
fn group_exists(pgid: u32) -> bool {
    match group_pid(pgid) {
        // EPERM: it exists but belongs to someone else.
        Some(pid) => !matches!(test_kill_process_group(pid), Err(Errno::SRCH)),
        None => false,
    }
}

/// Whether the group still has a live process.
pub(crate) fn group_alive(pgid: u32) -> bool {
    if !group_exists(pgid) {
        return false;
    }
    live_members(pgid).is_none_or(|members| !members.is_empty())
}

/// The group as a signal target; `None` for ids that would reach far more than one command's
/// group (`kill(-1)` signals every process baton may signal; its own group is baton).
fn group_pid(pgid: u32) -> Option<Pid> {
    let raw = i32::try_from(pgid).ok().filter(|&p| p > 1)?;
    let pid = Pid::from_raw(raw)?;
    (pid != rustix::process::getpgrp()).then_some(pid)
}

fn signal(pgid: u32, sig: Signal) {
    if let Some(pid) = group_pid(pgid) {
        // ESRCH: the group ended in the meantime, which is what the signal was for.
        let _ = kill_process_group(pid, sig);
    }
}

/// How stopping a group went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StopResult {
    /// SIGKILL was needed: the group outlived its grace period after SIGTERM.
    pub(crate) killed: bool,
    /// No live process is left in the group.
    pub(crate) gone: bool,
    /// From SIGTERM to the end (or to giving up).
    pub(crate) took: Duration,
    pub(crate) grace: Duration,
}

impl StopResult {
    /// In words, for the action's log and the abort report.
    pub(crate) fn describe(&self) -> String {
        let took = crate::duration::format_duration(self.took);
        let grace = crate::duration::format_duration(self.grace);
        match (self.killed, self.gone) {
            (false, _) => format!("SIGTERM to its process group; it ended after {took}"),
            (true, true) => {
                format!("SIGTERM to its process group, then SIGKILL after the {grace} grace period")
            }
            (true, false) => format!(
                "SIGTERM, then SIGKILL after the {grace} grace period, but some of its \
                 processes were still there after {took} (not stoppable by baton's user?)"
            ),
        }
    }
}

/// Stops a group: SIGTERM to every member, up to `grace` for them to exit, then SIGKILL.
pub(crate) async fn stop_group(pgid: u32, grace: Duration) -> StopResult {
    let started = Instant::now();
    signal(pgid, Signal::TERM);
    let gone = wait_until_gone(pgid, grace, STOP_POLL).await;
    if gone {
        return StopResult {
            killed: false,
            gone,
            took: started.elapsed(),
            grace,
        };
    }
    signal(pgid, Signal::KILL);
    let gone = wait_until_gone(pgid, KILL_WAIT, STOP_POLL).await;
    StopResult {
        killed: true,
        gone,
        took: started.elapsed(),
        grace,
    }
}

/// Waits up to `limit` for the group to have no live process; whether it got there.
pub(crate) async fn wait_until_gone(pgid: u32, limit: Duration, poll: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if !group_alive(pgid) {
            return true;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        tokio::time::sleep(left.min(poll)).await;
    }
}

fn registry() -> &'static Mutex<BTreeSet<u32>> {
    static GROUPS: OnceLock<Mutex<BTreeSet<u32>>> = OnceLock::new();
    GROUPS.get_or_init(Mutex::default)
}

/// A group this process looks after, listed for [`kill_all`] while it lives. One that belongs
/// to a command this process started is killed when the guard goes away with it still
/// running (the tick driving it failed or was dropped): nothing is left behind unwatched.
#[derive(Debug)]
pub(crate) struct GroupGuard {
    pgid: u32,
    kill_on_drop: bool,
}

impl GroupGuard {
    pub(crate) fn new(pgid: u32, kill_on_drop: bool) -> Self {
        if let Ok(mut groups) = registry().lock() {
            groups.insert(pgid);
        }
        GroupGuard { pgid, kill_on_drop }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.kill_on_drop && group_alive(self.pgid) {
            signal(self.pgid, Signal::KILL);
        }
        if let Ok(mut groups) = registry().lock() {
            groups.remove(&self.pgid);
        }
    }
}

/// Sends SIGKILL to the process group of every command this process is running or watching
/// (a second Ctrl-C: quit at once, leaving nothing running). Returns how many groups it
/// signalled.
pub fn kill_all() -> usize {
    let groups: Vec<u32> = match registry().lock() {
        Ok(groups) => groups.iter().copied().collect(),
        Err(_) => return 0,
    };
    let mut killed = 0;
    for pgid in groups {
        if group_alive(pgid) {
            signal(pgid, Signal::KILL);
            killed += 1;
        }
    }
    killed
}

/// The grace period `BATON_KILL_GRACE` sets, or the default; an unreadable value is an error
/// naming it.
pub(crate) fn grace_from_env() -> Result<Duration, String> {
    match std::env::var(GRACE_ENV) {
        Ok(text) if !text.trim().is_empty() => crate::duration::parse_duration(text.trim())
            .map_err(|e| format!("{GRACE_ENV}={text:?}: {e}")),
        _ => Ok(DEFAULT_GRACE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let text = "4242 (odd) name (x)) S 1 4240 4240 0 -1 4194560 97 0 0 0 0 0 0 0 20 0 1 0 \
                    987654 2273280 131 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                state: 'S',
                pgrp: 4240,
                start_ticks: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn dangerous_group_ids_are_never_signalled() {
        assert_eq!(group_pid(0), None);
        assert_eq!(group_pid(1), None);
        assert_eq!(
            group_pid(rustix::process::getpgrp().as_raw_nonzero().get() as u32),
            None
        );
        assert!(!group_exists(1));
    }

    /// A shell in its own process group with a child, both ignoring SIGTERM; the pids of the
    /// shell and its child.
    fn stubborn_tree() -> (std::process::Child, u32) {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 30 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the sleeper's pid");
        let sleeper = line.trim().parse().expect("pid");
        (child, sleeper)
    }

    fn running(pid: u32) -> bool {
        stat(pid).is_some_and(|s| !s.is_zombie())
    }

    #[tokio::test]
    async fn a_group_that_ignores_sigterm_is_killed_after_its_grace_period() {
        let (mut child, sleeper) = stubborn_tree();
        let pgid = child.id();
        let record = ProcessRecord::new(pgid, Duration::from_millis(200));
        assert_eq!(record.whereabouts(), Whereabouts::Alive);
        assert!(group_alive(pgid) && running(sleeper));
        let result = stop_group(pgid, record.grace()).await;
        let _ = child.wait();
        assert!(result.killed && result.gone, "{result:?}");
        assert!(result.took >= Duration::from_millis(200), "{result:?}");
        assert!(!running(sleeper), "the grandchild survived");
        assert!(!group_alive(pgid));
        assert_eq!(record.whereabouts(), Whereabouts::Gone);
        assert!(result
            .describe()
            .contains("SIGKILL after the 200ms grace period"));
    }

    #[tokio::test]
    async fn a_group_that_obeys_sigterm_ends_without_sigkill() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let pgid = child.id();
        let result = stop_group(pgid, Duration::from_secs(5)).await;
        let _ = child.wait();
        assert!(!result.killed && result.gone, "{result:?}");
        assert!(result.took < Duration::from_secs(2), "{result:?}");
    }

    #[tokio::test]
    async fn kill_all_kills_every_listed_group_at_once() {
        let (mut child, sleeper) = stubborn_tree();
        let guard = GroupGuard::new(child.id(), false);
        assert!(kill_all() >= 1);
        assert!(wait_until_gone(child.id(), Duration::from_secs(2), STOP_POLL).await);
        let _ = child.wait();
        assert!(!running(sleeper));
        drop(guard);
    }

    #[test]
    fn this_process_is_found_alive_and_a_made_up_record_is_not() {
        let own = std::process::id();
        let record = ProcessRecord::new(own, DEFAULT_GRACE);
        assert!(record.start_ticks.is_some());
        let mut elsewhere = record.clone();
        elsewhere.host = "some-other-host".into();
        assert_eq!(elsewhere.whereabouts(), Whereabouts::Elsewhere);
        let mut reused = record.clone();
        reused.start_ticks = record.start_ticks.map(|t| t + 1);
        assert_eq!(reused.whereabouts(), Whereabouts::Gone);
        let mut rebooted = record;
        rebooted.boot_id = Some("another-boot".into());
        assert_eq!(rebooted.whereabouts(), Whereabouts::Gone);
    }
}
