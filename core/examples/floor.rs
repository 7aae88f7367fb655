//! The floor a tick is measured against: the least a program can do to rewrite a run's state
//! document durably. It reads the state file, parses it into its own typed serde structs (not
//! baton's), serializes them, writes the bytes to a new file and fsyncs it. Nothing else: no
//! plan, no scheduling, no lock, no validation.
//!
//!     cargo run --release -p baton-core --example floor -- STATE.json OUT.json
//!
//! Prints the bytes read and written (`read 1221034 wrote 1221034`). `scripts/bench` reports each whole `baton tick` process
//! as a multiple of this whole process on the same file; criterion (`floor/…` in
//! benches/engine.rs) runs the same function in-process.
//!
//! The structs mirror the state document's fields; a field this program does not know is
//! dropped on the way through, so the bench checks that what it writes is as large as what it
//! read (a smaller output means the floor did less work than a tick and the document grew).

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

#[derive(Serialize, Deserialize)]
struct StateDoc {
    format: u32,
    run_id: String,
    plan_sha256: String,
    status: String,
    invocations: u64,
    #[serde(default)]
    abort_requested: bool,
    #[serde(default)]
    vars: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state_machine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hooks: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    driver: Option<Lease>,
    created_at: String,
    updated_at: String,
    #[serde(default)]
    actions: Actions,
    #[serde(default)]
    log: Vec<LogEntry>,
}

#[derive(Serialize, Deserialize)]
struct Lease {
    holder: String,
    until: String,
}

#[derive(Serialize, Deserialize)]
struct LogEntry {
    t: String,
    level: Level,
    msg: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Serialize, Deserialize)]
struct ActionDoc {
    status: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_check_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    handle: Option<Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    outputs: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blocked_by: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    log: Vec<LogEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    process: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stop: Option<Value>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The actions by label, in the document's order (a JSON object read into a vector: no hashing).
#[derive(Default)]
struct Actions(Vec<(String, ActionDoc)>);

impl<'de> Deserialize<'de> for Actions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Actions;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of action states by label")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Actions, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Actions(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

impl Serialize for Actions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (label, action) in &self.0 {
            map.serialize_entry(label, action)?;
        }
        map.end()
    }
}

/// Reads, parses, serializes, writes and fsyncs: returns (bytes read, bytes written).
pub fn floor(input: &Path, output: &Path) -> std::io::Result<(usize, usize)> {
    let bytes = std::fs::read(input)?;
    let doc: StateDoc = serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", input.display())))?;
    let out = serde_json::to_vec(&doc).map_err(std::io::Error::other)?;
    let mut file = File::create(output)?;
    file.write_all(&out)?;
    file.sync_all()?;
    Ok((bytes.len(), out.len()))
}

#[allow(dead_code)] // criterion includes this file for `floor` alone
fn main() -> std::process::ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: floor STATE.json OUT.json");
        return std::process::ExitCode::from(2);
    };
    match floor(input, output) {
        Ok((read, wrote)) => {
            println!("read {read} wrote {wrote}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("floor: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
