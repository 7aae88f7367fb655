//! The function's log lines: flat JSON with the run, the tick, the action and its attempt on
//! every line about an action, command output and errors included (what the Logs Insights
//! queries in docs/deployment.md filter on).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton_core::store::memory::MemoryStore;
use baton_core::testutil::plan;
use baton_core::{Run, StandardExecutor};
use baton_lambda::{handle_run, Config, Input, JsonLines};
use serde_json::{json, Value};
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().expect("lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
            .collect()
    }
}

#[tokio::test]
async fn every_line_of_a_tick_names_the_run_tick_action_and_attempt() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(JsonLines::new(captured.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);

    let (run, _, _) = Run::create(
        MemoryStore::with_leases(),
        plan(
            r#"[{"label": "greet", "type": "system.command",
                 "params": {"command": ["sh", "-c", "echo hello from greet"]}},
                {"label": "boom", "type": "system.command", "depends_on": ["greet"],
                 "params": {"command": ["sh", "-c", "echo about to fail >&2; exit 3"]}}]"#,
        ),
        "run-1",
        Default::default(),
        chrono::Utc::now(),
    )
    .await
    .expect("create");
    let input = Input {
        run: "s3://bucket/baton/runs/run-1".into(),
        ..Input::default()
    };
    let out = handle_run(
        &run,
        &Arc::new(StandardExecutor::new()),
        input,
        Instant::now() + Duration::from_secs(60),
        &Config::default(),
    )
    .await
    .expect("tick");
    assert_eq!(out.flow_control(), "failure");

    let lines = captured.lines();
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"].as_str().is_some_and(|m| m.contains(message)))
            .unwrap_or_else(|| panic!("no line with {message:?} in {lines:#?}"))
    };
    let output = find("hello from greet");
    assert_eq!(output["run"], "run-1");
    assert_eq!(output["tick"], 1);
    assert_eq!(output["action"], "greet");
    assert_eq!(output["attempt"], 1);
    assert_eq!(output["level"], "INFO");
    let stderr = find("about to fail");
    assert_eq!(
        (&stderr["action"], &stderr["attempt"], &stderr["tick"]),
        (&json!("boom"), &json!(1), &json!(1))
    );
    let error = lines
        .iter()
        .find(|l| l["action"] == "boom" && l["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error line for boom in {lines:#?}"));
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("status 3")),
        "{error}"
    );
    assert_eq!(
        (&error["run"], &error["attempt"]),
        (&json!("run-1"), &json!(1))
    );
    // The tick's own lines carry the run and tick too.
    let finished = find("tick finished");
    assert_eq!(
        (&finished["run"], &finished["tick"]),
        (&json!("run-1"), &json!(1))
    );
}
