//! Helpers shared by the CLI tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn baton_bin() -> &'static str {
    env!("CARGO_BIN_EXE_baton")
}

/// The repository root (for examples/ and tests/corpus/).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch folder that is also the working directory of the commands run in it, so the
/// default store `.baton` lands inside it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(baton_bin());
        cmd.current_dir(self.path())
            .env_remove("BATON_STORE")
            .env("NO_COLOR", "1");
        cmd
    }

    pub fn baton(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run baton")
    }

    /// Run folders under the default store.
    pub fn runs(&self) -> Vec<PathBuf> {
        let dir = self.path().join(".baton/runs");
        let mut runs: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        };
        runs.sort();
        runs
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

/// Parses the single JSON document a `--json` command prints.
pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(output),
            stderr(output)
        )
    })
}
