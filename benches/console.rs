//! Console frame time: rendering a 10,000-action run (layered DAG, mixed statuses, log
//! threads) into a 160x48 `TestBackend` — the main screen (with its header's ETA over the
//! remaining critical path), the timeline, the inspect view and the full-screen log — plus the
//! `update()` work behind a status change. Target: under 2 ms per frame.

use std::sync::Arc;

use baton::tui::app::{update, App, AppOptions, Msg};
use baton_core::state::{Level, LogEntry};
use baton_core::{load_str, ActionStatus, Format, RunState};
use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::Terminal;
use serde_json::json;

fn layered(n: usize, width: usize) -> String {
    let actions: Vec<_> = (0..n)
        .map(|i| {
            let layer = i / width;
            let deps: Vec<String> = if layer == 0 {
                Vec::new()
            } else {
                let base = (layer - 1) * width;
                vec![
                    format!("n{:06}", base + (i * 7) % width),
                    format!("n{:06}", base + (i * 13 + 5) % width),
                ]
            };
            json!({"label": format!("n{i:06}"), "type": "system.no_op", "depends_on": deps})
        })
        .collect();
    serde_json::Value::Array(actions).to_string()
}

fn app(n: usize) -> App {
    let plan = load_str("bench.json", &layered(n, 100), Format::Json)
        .expect("valid")
        .plan;
    let now = Utc::now();
    let mut state = RunState::new("bench", &plan, "sha", Default::default(), now);
    for i in 0..plan.len() {
        let action = baton_core::testutil::edit(&mut state).action_mut(i as u32);
        action.attempt = 1;
        action.started_at = Some(now);
        action.status = match i % 10 {
            0..=5 => ActionStatus::Complete,
            6 => ActionStatus::Running,
            7 => ActionStatus::Failed,
            8 => ActionStatus::Blocked,
            _ => ActionStatus::Pending,
        };
        if action.status != ActionStatus::Running {
            action.finished_at = Some(now);
        }
        for k in 0..20 {
            action.push_log(LogEntry {
                t: now,
                level: Level::Info,
                msg: format!("log line {k} of action {i}"),
            });
        }
    }
    let mut app = App::new(
        Arc::new(plan),
        state,
        "1".into(),
        ".baton/runs/bench".into(),
        now,
        AppOptions::default(),
    );
    update(&mut app, Msg::Resize(160, 48));
    // Select something in the middle so the pane renders a scrolled window.
    for _ in 0..5_000 {
        update(&mut app, Msg::Key(KeyEvent::from(KeyCode::Down)));
    }
    app
}

fn bench(c: &mut Criterion) {
    let mut app = app(10_000);
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).expect("terminal");
    c.bench_function("console frame, 10k actions, 160x48", |b| {
        b.iter(|| {
            terminal
                .draw(|frame| frame.render_widget(&app, frame.area()))
                .expect("draw");
        })
    });
    c.bench_function(
        "console frame, 10k actions, a status changed (ETA recomputed)",
        |b| {
            let idx = 4_322;
            let mut changed = app.state.action(idx).clone();
            b.iter(|| {
                changed.attempt += 1;
                update(&mut app, Msg::ActionChanged(idx, Box::new(changed.clone())));
                terminal
                    .draw(|frame| frame.render_widget(&app, frame.area()))
                    .expect("draw");
            })
        },
    );
    c.bench_function("console inspect frame, 10k actions", |b| {
        update(&mut app, Msg::Key(KeyEvent::from(KeyCode::Enter)));
        b.iter(|| {
            terminal
                .draw(|frame| frame.render_widget(&app, frame.area()))
                .expect("draw");
        });
        update(&mut app, Msg::Key(KeyEvent::from(KeyCode::Esc)));
    });
    c.bench_function("console full-screen log frame, 10k actions", |b| {
        update(&mut app, Msg::Key(KeyEvent::from(KeyCode::Char('v'))));
        b.iter(|| {
            terminal
                .draw(|frame| frame.render_widget(&app, frame.area()))
                .expect("draw");
        });
        update(&mut app, Msg::Key(KeyEvent::from(KeyCode::Esc)));
    });
    c.bench_function("console timeline frame, 10k actions", |b| {
        update(&mut app, Msg::Key(KeyEvent::from(KeyCode::Char('t'))));
        b.iter(|| {
            terminal
                .draw(|frame| frame.render_widget(&app, frame.area()))
                .expect("draw");
        });
        update(&mut app, Msg::Key(KeyEvent::from(KeyCode::Char('t'))));
    });
    let idx = 4_321;
    let mut changed = app.state.action(idx).clone();
    c.bench_function(
        "update: one action changes status, 10k actions, filter on",
        |b| {
            update(&mut app, Msg::Key(KeyEvent::from(KeyCode::Char('c'))));
            b.iter(|| {
                changed.status = if changed.status == ActionStatus::Complete {
                    ActionStatus::Running
                } else {
                    ActionStatus::Complete
                };
                update(&mut app, Msg::ActionChanged(idx, Box::new(changed.clone())));
            })
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
