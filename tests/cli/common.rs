//! Helpers shared by the CLI tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Map, Value};

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
            .env_remove("BATON_CONFIG")
            // The user's own config file must not change what a test sees.
            .env("XDG_CONFIG_HOME", self.path().join(".config"))
            .env("NO_COLOR", "1");
        cmd
    }

    pub fn baton(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run baton")
    }

    /// `baton ARGS`, which must exit `want`.
    #[track_caller]
    pub fn exits(&self, args: &[&str], want: i32) -> Output {
        let out = self.baton(args);
        assert_eq!(code(&out), want, "{}", describe(&out));
        out
    }

    /// `baton ARGS --json`, which must exit `want`: the summary it prints.
    #[track_caller]
    pub fn summary(&self, args: &[&str], want: i32) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        json(&self.exits(&args, want))
    }

    /// `baton run plan.json --run-id RUN_ID --json`, which must exit `want`: the summary.
    #[track_caller]
    pub fn run_plan(&self, run_id: &str, want: i32) -> Value {
        self.summary(&["run", "plan.json", "--run-id", run_id], want)
    }

    /// `baton status RUN --json`.
    #[track_caller]
    pub fn status(&self, run: &str) -> Value {
        self.summary(&["status", run], 0)
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

/// Everything a command said, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        code(out),
        stdout(out),
        stderr(out)
    )
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

/// A plan of `system.*` actions, one action per call; `after`, `when` and `set` shape the
/// action added last.
#[derive(Debug, Clone, Default)]
pub struct PlanBuilder {
    actions: Vec<Value>,
}

pub fn plan() -> PlanBuilder {
    PlanBuilder::default()
}

impl PlanBuilder {
    /// An action of any type (a misspelt one, say), with `params` when given.
    pub fn action(mut self, label: &str, action_type: &str, params: Option<Value>) -> Self {
        let mut action = json!({"label": label, "type": action_type});
        if let Some(params) = params {
            action["params"] = params;
        }
        self.actions.push(action);
        self
    }

    pub fn no_op(self, label: &str) -> Self {
        self.action(label, "system.no_op", None)
    }

    pub fn fail(self, label: &str, message: &str) -> Self {
        self.action(label, "system.fail", Some(json!({"message": message})))
    }

    pub fn wait(self, label: &str, seconds: f64) -> Self {
        self.action(label, "system.wait", Some(json!({"seconds": seconds})))
    }

    /// A `system.command` of an argument vector.
    pub fn command(self, label: &str, argv: &[&str]) -> Self {
        self.action(label, "system.command", Some(json!({"command": argv})))
    }

    /// A `system.command` run by the shell.
    pub fn shell(self, label: &str, script: &str) -> Self {
        self.action(
            label,
            "system.command",
            Some(json!({"command": script, "shell": true})),
        )
    }

    pub fn set_variables(self, label: &str, variables: Value) -> Self {
        self.action(
            label,
            "system.set_variables",
            Some(json!({"variables": variables})),
        )
    }

    /// The last action depends on `labels`.
    pub fn after(self, labels: &[&str]) -> Self {
        self.set("depends_on", json!(labels))
    }

    /// The last action runs only if `condition` holds.
    pub fn when(self, condition: &str) -> Self {
        self.set("condition", json!(condition))
    }

    /// Sets `field` of the last action (`retry`, `timeout`, …).
    pub fn set(mut self, field: &str, value: Value) -> Self {
        match self.actions.last_mut() {
            Some(action) => action[field] = value,
            None => panic!("no action to set {field} on"),
        }
        self
    }

    /// Sets `params.NAME` of the last action.
    pub fn param(mut self, name: &str, value: Value) -> Self {
        match self.actions.last_mut() {
            Some(action) => {
                if !action["params"].is_object() {
                    action["params"] = Value::Object(Map::new());
                }
                action["params"][name] = value;
            }
            None => panic!("no action to set params.{name} on"),
        }
        self
    }

    pub fn to_json(&self) -> Value {
        Value::Array(self.actions.clone())
    }

    /// Writes the plan as `name` in `scratch`.
    pub fn write(&self, scratch: &Scratch, name: &str) {
        scratch.write(
            name,
            &serde_json::to_string_pretty(&self.to_json()).expect("plan json"),
        );
    }

    /// A scratch folder holding this plan as `plan.json`.
    pub fn scratch(&self) -> Scratch {
        let scratch = Scratch::new();
        self.write(&scratch, "plan.json");
        scratch
    }
}
