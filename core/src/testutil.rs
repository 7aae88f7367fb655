//! Test doubles: an in-memory store and helpers to build plans quickly.

pub use crate::store::memory::MemoryStore;

use crate::load::{load_str, Format};
use crate::model::Plan;

/// Builds a plan from JSON text, panicking with the problems if it is invalid.
pub fn plan(json: &str) -> Plan {
    match load_str("test.json", json, Format::Json) {
        Ok(loaded) => loaded.plan,
        Err(problems) => panic!("invalid test plan:\n{problems}"),
    }
}
