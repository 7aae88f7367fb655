//! Fault injection for crash tests: `BATON_FAULT=<point>[@<n>]` kills the process (as SIGKILL
//! would: no destructors, no flush) the n-th time (default first) execution reaches `<point>`.
//! Compiled only into debug builds; release builds ignore it.

#[cfg(debug_assertions)]
pub(crate) fn point(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Ok(spec) = std::env::var("BATON_FAULT") else {
        return;
    };
    let (target, nth) = match spec.split_once('@') {
        Some((target, n)) => (target.to_string(), n.parse().unwrap_or(1)),
        None => (spec, 1),
    };
    if target == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth {
        eprintln!("baton: fault injection: killing the process at {name}");
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub(crate) fn point(_name: &str) {}
