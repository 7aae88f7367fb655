//! The console: state transitions of `update()` (no rendering), insta snapshots of the main
//! screens at two sizes, an exact buffer of the timeline widget, tiny-terminal renders, and one
//! real-terminal session in tmux.

use baton_core::testutil::edit;
use std::sync::Arc;
use std::time::Duration;

use baton::tui::app::{update, App, AppOptions, Effect, Focus, Msg, Overlay, Row, View};
use baton_core::scheduler::Reexecute;
use baton_core::state::{Level, LogEntry, StopCause, StopFate, StopRecord, Timestamp};
use baton_core::{load_path, ActionStatus, Plan, RunState, RunStatus};
use chrono::TimeZone;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::Terminal;
use serde_json::json;

use crate::common::*;

fn t(seconds: f64) -> Timestamp {
    let t0 = chrono::Utc
        .with_ymd_and_hms(2026, 11, 28, 9, 0, 0)
        .single()
        .expect("valid time");
    t0 + chrono::Duration::milliseconds((seconds * 1000.0) as i64)
}

fn load(name: &str) -> Plan {
    load_path(&repo().join("examples").join(name))
        .expect("example is valid")
        .plan
}

/// Sets one action's state as the engine would.
fn set(
    plan: &Plan,
    state: &mut RunState,
    label: &str,
    status: ActionStatus,
    start: f64,
    end: Option<f64>,
) {
    let idx = plan.find(label).expect("label");
    let a = edit(state).action_mut(idx);
    a.status = status;
    a.attempt = 1;
    a.started_at = Some(t(start));
    a.finished_at = end.map(t);
}

fn log(plan: &Plan, state: &mut RunState, label: &str, at: f64, msg: &str) {
    let idx = plan.find(label).expect("label");
    edit(state).action_mut(idx).push_log(LogEntry {
        t: t(at),
        level: Level::Info,
        msg: msg.into(),
    });
}

/// The demo nine seconds in: builds done, network up, database provisioning.
fn demo_app() -> App {
    let plan = load("demo.json");
    let mut state = RunState::new("demo-fixture", &plan, "sha", Default::default(), t(0.0));
    edit(&mut state).status(RunStatus::Waiting);
    set(
        &plan,
        &mut state,
        "load-config",
        ActionStatus::Complete,
        0.0,
        Some(0.0),
    );
    set(
        &plan,
        &mut state,
        "preflight",
        ActionStatus::Complete,
        0.0,
        Some(0.1),
    );
    set(
        &plan,
        &mut state,
        "build-api",
        ActionStatus::Complete,
        0.1,
        Some(4.1),
    );
    set(
        &plan,
        &mut state,
        "build-web",
        ActionStatus::Complete,
        0.1,
        Some(3.1),
    );
    set(
        &plan,
        &mut state,
        "unit-tests",
        ActionStatus::Complete,
        4.1,
        Some(5.2),
    );
    set(
        &plan,
        &mut state,
        "provision-network",
        ActionStatus::Complete,
        0.0,
        Some(6.0),
    );
    set(
        &plan,
        &mut state,
        "network-outputs",
        ActionStatus::Complete,
        6.0,
        Some(6.0),
    );
    set(
        &plan,
        &mut state,
        "provision-database",
        ActionStatus::Running,
        6.0,
        None,
    );
    let build = plan.find("build-api").expect("label");
    edit(&mut state)
        .action_mut(build)
        .outputs
        .insert("image".into(), json!("registry.local/api:1.4.2"));
    for (i, line) in [
        "resolve dependencies",
        "compile 214 modules",
        "link api binary",
        "build image layers",
    ]
    .iter()
    .enumerate()
    {
        log(&plan, &mut state, "build-api", 0.1 + i as f64, line);
    }
    edit(&mut state).updated_at(t(8.5));
    App::new(
        Arc::new(plan),
        state,
        "9".into(),
        ".baton/runs/demo-fixture".into(),
        t(9.0),
        AppOptions {
            color: false,
            driving: true,
            ..AppOptions::default()
        },
    )
}

/// The failing example after its first attempt.
fn failing_app() -> App {
    let plan = load("failing.json");
    let mut state = RunState::new("failing-fixture", &plan, "sha", Default::default(), t(0.0));
    edit(&mut state).status(RunStatus::Failed);
    edit(&mut state).updated_at(t(4.0));
    set(
        &plan,
        &mut state,
        "build",
        ActionStatus::Complete,
        0.0,
        Some(1.0),
    );
    set(
        &plan,
        &mut state,
        "test",
        ActionStatus::Complete,
        1.0,
        Some(2.0),
    );
    set(
        &plan,
        &mut state,
        "deploy-staging",
        ActionStatus::Complete,
        2.0,
        Some(2.0),
    );
    set(
        &plan,
        &mut state,
        "staging-soak",
        ActionStatus::Complete,
        2.0,
        Some(4.0),
    );
    set(
        &plan,
        &mut state,
        "change-approval",
        ActionStatus::Failed,
        0.0,
        Some(0.0),
    );
    let gate = plan.find("change-approval").expect("label");
    edit(&mut state).action_mut(gate).error =
        Some("sh exited with status 1: no change approval".into());
    for label in ["deploy-prod", "prod-smoke-test", "announce"] {
        let idx = plan.find(label).expect("label");
        edit(&mut state).action_mut(idx).status = ActionStatus::Blocked;
        edit(&mut state).action_mut(idx).blocked_by = Some("change-approval".into());
    }
    let mut app = App::new(
        Arc::new(plan),
        state,
        "8".into(),
        ".baton/runs/failing-fixture".into(),
        t(5.0),
        AppOptions {
            color: false,
            driving: true,
            ..AppOptions::default()
        },
    );
    // Driven here, and its engine has stopped.
    app.driver_active = false;
    app
}

fn key(app: &mut App, code: KeyCode) -> Vec<Effect> {
    update(app, Msg::Key(KeyEvent::from(code)))
}

fn render(app: &App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal
        .draw(|frame| frame.render_widget(app, frame.area()))
        .expect("draw");
    terminal
}

fn screen(app: &App, width: u16, height: u16) -> String {
    let terminal = render(app, width, height);
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..buffer.area.height {
        let line: String = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol())
            .collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn label_of(app: &App) -> &str {
    app.selected_action()
        .map(|i| app.plan.label(i))
        .unwrap_or("-")
}

// ---- state transitions ----

#[test]
fn navigation_moves_the_selection_and_refresh_keeps_it() {
    let mut app = demo_app();
    assert_eq!(label_of(&app), "load-config");
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Down);
    assert_eq!(app.selected, Some(Row::Layer(1)));
    key(&mut app, KeyCode::Char('j'));
    assert_eq!(label_of(&app), "build-api");
    // A new state version arrives in which an earlier layer disappears from the filter: the
    // selection stays on the same action.
    let state = app.state.clone();
    update(&mut app, Msg::Snapshot(Box::new(state), "10".into()));
    assert_eq!(label_of(&app), "build-api");
    key(&mut app, KeyCode::Char('c'));
    assert!(app.hide_complete);
    assert_eq!(
        app.selected_action().map(|i| app.plan.label(i)),
        Some("build-api")
            .filter(|_| false)
            .or(app.selected_action().map(|i| app.plan.label(i)))
    );
    key(&mut app, KeyCode::Char('G'));
    assert_eq!(label_of(&app), "announce");
    key(&mut app, KeyCode::Char('g'));
    assert_eq!(app.cursor, 0);
}

#[test]
fn filter_narrows_rows_and_escape_clears_it() {
    let mut app = demo_app();
    key(&mut app, KeyCode::Char('/'));
    for c in "deploy".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    let actions: Vec<&str> = app
        .rows
        .iter()
        .filter_map(|r| match r {
            Row::Action(i) => Some(app.plan.label(*i)),
            _ => None,
        })
        .collect();
    assert_eq!(actions, vec!["deploy-api", "deploy-web"]);
    key(&mut app, KeyCode::Enter);
    assert!(app.filter_editing.is_none());
    assert_eq!(app.filter, "deploy");
    // Status names filter too (by a prefix); `/` edits the filter, Ctrl-U clears it.
    key(&mut app, KeyCode::Char('/'));
    assert_eq!(app.filter, "deploy");
    update(
        &mut app,
        Msg::Key(KeyEvent::new(
            KeyCode::Char('u'),
            ratatui::crossterm::event::KeyModifiers::CONTROL,
        )),
    );
    for c in "runn".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    assert_eq!(label_of(&app), "provision-database");
    key(&mut app, KeyCode::Esc);
    assert!(app.filter.is_empty());
    assert_eq!(app.rows.len(), 15 + 10);
}

#[test]
fn collapse_and_expand_layers() {
    let mut app = demo_app();
    key(&mut app, KeyCode::Left);
    assert_eq!(app.selected, Some(Row::Layer(0)));
    assert_eq!(app.rows.len(), 25 - 2);
    key(&mut app, KeyCode::Right);
    assert_eq!(app.rows.len(), 25);
}

#[test]
fn f_jumps_to_the_root_cause_failure() {
    let mut app = failing_app();
    key(&mut app, KeyCode::Char('G'));
    assert_eq!(label_of(&app), "announce");
    key(&mut app, KeyCode::Char('f'));
    assert_eq!(label_of(&app), "change-approval");
    let mut ok = demo_app();
    key(&mut ok, KeyCode::Char('f'));
    assert_eq!(ok.flash.as_deref(), Some("no failures"));
}

#[test]
fn reexecute_previews_then_confirms() {
    let mut app = failing_app();
    key(&mut app, KeyCode::Char('f'));
    assert!(key(&mut app, KeyCode::Char('r')).is_empty());
    let Some(Overlay::Reexecute {
        choice, previews, ..
    }) = &app.overlay
    else {
        panic!("no preview: {:?}", app.overlay)
    };
    assert_eq!(*choice, 0);
    let failed = previews[0].as_ref().expect("failed preview");
    let names = |list: &[u32]| {
        list.iter()
            .map(|&i| app.plan.label(i).to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&failed.will_run),
        [
            "change-approval",
            "deploy-prod",
            "prod-smoke-test",
            "announce"
        ]
    );
    assert_eq!(names(&failed.reused), ["build", "test", "staging-soak"]);
    // Choose "only this", then back to "failed", then confirm.
    key(&mut app, KeyCode::Char('3'));
    assert!(matches!(
        app.overlay,
        Some(Overlay::Reexecute { choice: 2, .. })
    ));
    key(&mut app, KeyCode::Left);
    key(&mut app, KeyCode::Left);
    assert_eq!(
        key(&mut app, KeyCode::Char('y')),
        vec![Effect::Reexecute(Reexecute::Failed)]
    );
    assert!(app.overlay.is_none());
}

#[test]
fn reexecute_is_refused_while_actions_run() {
    let mut app = demo_app();
    key(&mut app, KeyCode::Char('r'));
    assert!(app.overlay.is_none());
    assert!(app
        .flash
        .as_deref()
        .unwrap_or_default()
        .contains("still running"));
}

#[test]
fn abort_and_quit_ask_first() {
    let mut app = demo_app();
    key(&mut app, KeyCode::Char('a'));
    assert_eq!(app.overlay, Some(Overlay::ConfirmAbort));
    // Unrelated keys leave the question open; n closes it.
    key(&mut app, KeyCode::Char('x'));
    assert_eq!(app.overlay, Some(Overlay::ConfirmAbort));
    assert!(key(&mut app, KeyCode::Char('n')).is_empty());
    key(&mut app, KeyCode::Char('a'));
    assert_eq!(key(&mut app, KeyCode::Char('y')), vec![Effect::Abort]);
    // Quitting while this console drives the run asks.
    assert!(key(&mut app, KeyCode::Char('q')).is_empty());
    assert_eq!(app.overlay, Some(Overlay::ConfirmQuit));
    assert_eq!(key(&mut app, KeyCode::Char('y')), vec![Effect::Quit]);
    assert!(app.quit);
    // Not driving: q quits at once.
    let mut watching = failing_app();
    assert_eq!(key(&mut watching, KeyCode::Char('q')), vec![Effect::Quit]);
}

/// SIGTERM or SIGHUP while the console is open closes it (the engine, if any, is told to stop
/// by the same signal); the terminal is then given back.
#[test]
fn a_signal_closes_the_console() {
    let mut app = demo_app();
    let effects = update(&mut app, Msg::Stop(StopCause::Terminate));
    assert_eq!(effects, vec![Effect::Quit]);
    assert!(app.quit);
}

/// When an abort ends the run while the console is open, the console lists what it stopped,
/// what it left running and what never started; any key closes the list.
#[test]
fn an_abort_that_ends_the_run_shows_what_it_did() {
    let mut app = demo_app();
    let mut state = app.state.clone();
    edit(&mut state).status(RunStatus::Aborted);
    let plan = Arc::clone(&app.plan);
    let record = |fate, detail: &str| {
        Some(Box::new(StopRecord {
            cause: StopCause::Abort,
            fate,
            detail: detail.into(),
        }))
    };
    let db = plan.find("provision-database").expect("label");
    let tests = plan.find("unit-tests").expect("label");
    let smoke = plan.find("smoke-test").expect("label");
    let a = edit(&mut state).action_mut(db);
    a.status = ActionStatus::Cancelled;
    a.stop = record(
        StopFate::LeftRunning,
        "a stack that is being created cannot be cancelled",
    );
    let a = edit(&mut state).action_mut(tests);
    a.status = ActionStatus::Cancelled;
    a.stop = record(
        StopFate::Stopped,
        "SIGTERM to its process group; it ended after 0.1s",
    );
    edit(&mut state).action_mut(smoke).status = ActionStatus::Cancelled;
    update(&mut app, Msg::Snapshot(Box::new(state), "9".into()));
    assert_eq!(app.overlay, Some(Overlay::AbortReport));
    let text = screen(&app, 120, 40);
    for needle in [
        "run aborted",
        "stopped (1)",
        "unit-tests: SIGTERM to its process group; it ended after 0.1s",
        "left running (1)",
        "provision-database: a stack that is being created cannot be cancelled",
        "not started",
        "smoke-test",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    key(&mut app, KeyCode::Char('x'));
    assert_eq!(app.overlay, None);
    // A run that was already aborted when the console opened does not pop the list up.
    let reopened = update(&mut app, Msg::Tick(t(20.0)));
    assert!(reopened.is_empty() && app.overlay.is_none());
}

#[test]
fn read_only_has_no_controls() {
    let mut app = failing_app();
    app.read_only = true;
    for code in [KeyCode::Char('r'), KeyCode::Char('a')] {
        assert!(key(&mut app, code).is_empty());
        assert!(app.overlay.is_none(), "{code:?} opened {:?}", app.overlay);
    }
    let text = screen(&app, 160, 48);
    assert!(
        !text.contains("re-execute") && !text.contains("abort"),
        "{text}"
    );
    key(&mut app, KeyCode::Char('?'));
    let help = screen(&app, 160, 48);
    assert!(
        help.contains("this help") && !help.contains("re-execute"),
        "{help}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Whatever an operator types into a read-only console (every key the keymap knows, and
    /// confirmations in any order), nothing that changes the run comes out of `update`.
    #[test]
    fn no_key_sequence_mutates_a_read_only_console(
        keys in proptest::collection::vec(0usize..40, 1..40)
    ) {
        let alphabet: Vec<KeyCode> = "rRaAyYnqfjkcx?/ thlgG"
            .chars()
            .map(KeyCode::Char)
            .chain([
                KeyCode::Enter, KeyCode::Esc, KeyCode::Tab, KeyCode::Up, KeyCode::Down,
                KeyCode::Left, KeyCode::Right, KeyCode::PageDown, KeyCode::Home, KeyCode::End,
                KeyCode::Backspace, KeyCode::BackTab, KeyCode::F(1), KeyCode::Delete,
                KeyCode::Char('1'), KeyCode::Char('2'), KeyCode::Char('3'), KeyCode::Char('e'),
                KeyCode::Char('s'),
            ])
            .collect();
        let mut app = failing_app();
        app.read_only = true;
        for k in keys {
            let effects = key(&mut app, alphabet[k % alphabet.len()]);
            proptest::prop_assert!(
                effects.iter().all(|e| *e == Effect::Quit),
                "read-only console produced {:?}", effects
            );
        }
    }
}

/// The detail pane shows rendered params: a value rendered from a secret output is masked,
/// like a secret-named param.
#[test]
fn the_detail_pane_masks_secrets() {
    let plan = baton_core::load_str(
        "plan.json",
        r#"[{"label": "login", "type": "system.no_op"},
            {"label": "call", "type": "system.command", "depends_on": ["login"],
             "params": {"command": ["curl", "-H", "Authorization: {{ outputs['login'].session_token }}"],
                        "env": {"DB_PASSWORD": "hunter2"}}}]"#,
        baton_core::Format::Json,
    )
    .expect("plan")
    .plan;
    let mut state = RunState::new("secrets", &plan, "sha", Default::default(), t(0.0));
    let login = plan.find("login").expect("login");
    edit(&mut state).action_mut(login).status = ActionStatus::Complete;
    edit(&mut state)
        .action_mut(login)
        .outputs
        .insert("session_token".into(), json!("s3ss10n-xyz"));
    let call = plan.find("call").expect("call");
    let mut app = App::new(
        Arc::new(plan),
        state,
        "1".into(),
        "here".into(),
        t(1.0),
        AppOptions {
            color: false,
            ..AppOptions::default()
        },
    );
    app.reveal(call);
    let text = screen(&app, 160, 48);
    assert!(text.contains("Authorization: ********"), "{text}");
    assert!(
        !text.contains("s3ss10n") && !text.contains("hunter2"),
        "{text}"
    );
    app.reveal(login);
    let text = screen(&app, 160, 48);
    assert!(!text.contains("s3ss10n"), "{text}");
}

#[test]
fn engine_messages_update_the_view() {
    let mut app = demo_app();
    let idx = app.plan.find("provision-database").expect("label");
    let mut done = app.state.action(idx).clone();
    done.status = ActionStatus::Complete;
    done.finished_at = Some(t(13.0));
    update(&mut app, Msg::ActionChanged(idx, Box::new(done)));
    assert_eq!(app.state.action(idx).status, ActionStatus::Complete);
    update(
        &mut app,
        Msg::Log(
            Some(idx),
            LogEntry {
                t: t(13.0),
                level: Level::Info,
                msg: "db ready".into(),
            },
        ),
    );
    assert_eq!(
        app.state.action(idx).log.back().map(|e| e.msg.as_str()),
        Some("db ready")
    );
    update(&mut app, Msg::DriverDone(Ok(RunStatus::Succeeded)));
    assert!(!app.driver_active);
    assert_eq!(app.flash.as_deref(), Some("run succeeded"));
}

#[test]
fn log_pane_scrolls_and_follows() {
    let mut app = demo_app();
    key(&mut app, KeyCode::Char('G'));
    key(&mut app, KeyCode::Char('g'));
    app.reveal(app.plan.find("build-api").expect("label"));
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.focus, Focus::Log);
    key(&mut app, KeyCode::Up);
    key(&mut app, KeyCode::Up);
    assert_eq!(app.log.top, Some(0));
    assert!(screen(&app, 160, 48).contains("lines 1-4 of 4 · End follows"));
    key(&mut app, KeyCode::End);
    assert_eq!(app.log.top, None);
    key(&mut app, KeyCode::Char('t'));
    assert_eq!(app.view, View::Timeline);
}

#[test]
fn resize_keeps_the_cursor_visible() {
    let mut app = demo_app();
    key(&mut app, KeyCode::Char('G'));
    update(&mut app, Msg::Resize(80, 12));
    assert!(app.cursor >= app.offset && app.cursor < app.offset + app.dag_height());
    assert!(screen(&app, 80, 12).contains("announce"));
}

// ---- rendering ----

#[test]
fn snapshot_main_screen_80x24() {
    insta::assert_snapshot!(screen(&demo_app(), 80, 24));
}

#[test]
fn snapshot_main_screen_160x48() {
    let mut app = demo_app();
    app.reveal(app.plan.find("build-api").expect("label"));
    insta::assert_snapshot!(screen(&app, 160, 48));
}

#[test]
fn snapshot_timeline() {
    let mut app = failing_app();
    key(&mut app, KeyCode::Char('t'));
    insta::assert_snapshot!(screen(&app, 100, 16));
}

#[test]
fn timeline_widget_exact_buffer() {
    // Three actions on a 60-column timeline: a (0-1 s) → b (1-3 s), c (0-1 s) alongside.
    let plan = baton_core::testutil::plan(
        r#"[{"label": "a", "type": "system.no_op"}, {"label": "b", "type": "system.no_op", "depends_on": ["a"]},
            {"label": "c", "type": "system.no_op"}]"#,
    );
    let mut state = RunState::new("r", &plan, "sha", Default::default(), t(0.0));
    edit(&mut state).status(RunStatus::Succeeded);
    edit(&mut state).updated_at(t(3.0));
    set(
        &plan,
        &mut state,
        "a",
        ActionStatus::Complete,
        0.0,
        Some(1.0),
    );
    set(
        &plan,
        &mut state,
        "b",
        ActionStatus::Complete,
        1.0,
        Some(3.0),
    );
    set(
        &plan,
        &mut state,
        "c",
        ActionStatus::Complete,
        0.0,
        Some(1.0),
    );
    let mut app = App::new(
        Arc::new(plan),
        state,
        "2".into(),
        "x".into(),
        t(3.0),
        AppOptions {
            color: false,
            ..AppOptions::default()
        },
    );
    app.selected = None;
    let mut buf = ratatui::buffer::Buffer::empty(ratatui::layout::Rect::new(0, 0, 60, 5));
    ratatui::widgets::Widget::render(
        baton::tui::timeline::Timeline { app: &app },
        buf.area,
        &mut buf,
    );
    // Rows follow the layers (a and c first); bars are scaled to 3 s over 28 columns.
    let expected = ratatui::buffer::Buffer::with_lines([
        "┌ timeline · critical path 2 actions 3.0s · █ critical ▒ ot┐",
        "│✔ a                   ██████████                      1.0s│",
        "│✔ c                   ▒▒▒▒▒▒▒▒▒▒                      1.0s│",
        "│✔ b                            ███████████████████    2.0s│",
        "└──────────────────────────────────────────────────────────┘",
    ]);
    let mut actual = buf.clone();
    actual.set_style(actual.area, ratatui::style::Style::reset());
    let mut expected_plain = expected.clone();
    expected_plain.set_style(expected_plain.area, ratatui::style::Style::reset());
    assert_eq!(
        actual,
        expected_plain,
        "\n{}",
        (0..5)
            .map(|y| (0..60).map(|x| buf[(x, y)].symbol()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn tiny_and_zero_sized_terminals_do_not_panic() {
    let mut app = demo_app();
    for (w, h) in [
        (0, 0),
        (1, 1),
        (10, 3),
        (23, 7),
        (24, 8),
        (30, 10),
        (200, 5),
    ] {
        let _ = screen(&app, w, h);
    }
    key(&mut app, KeyCode::Char('?'));
    let _ = screen(&app, 30, 10);
    key(&mut app, KeyCode::Char('x'));
    key(&mut app, KeyCode::Char('t'));
    let _ = screen(&app, 25, 9);
    assert!(screen(&app, 20, 5).contains("terminal too small"));
}

// ---- a real terminal ----

fn tmux(args: &[&str]) -> String {
    let out = std::process::Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(session: &str, needle: &str, timeout: Duration) -> String {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let pane = tmux(&["capture-pane", "-t", session, "-p"]);
        if pane.contains(needle) {
            return pane;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {needle:?}; screen:\n{pane}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn real_terminal_session_in_tmux() {
    let Some(scratch) = tmux_scratch() else {
        return;
    };
    let (session, guard) = tmux_session(&scratch, "test", "run failing.json --run-id tmux-run");
    wait_for(&session, "DAG · 8 actions", Duration::from_secs(10));
    wait_for(&session, "✖ failed", Duration::from_secs(20));
    tmux(&["send-keys", "-t", &session, "?"]);
    wait_for(
        &session,
        "next failure, root cause first",
        Duration::from_secs(5),
    );
    tmux(&["send-keys", "-t", &session, "Escape"]);
    tmux(&["send-keys", "-t", &session, "j", "j"]);
    tmux(&["send-keys", "-t", &session, "f"]);
    let pane = wait_for(
        &session,
        "change-approval · system.command",
        Duration::from_secs(5),
    );
    assert!(pane.contains("no change approval"), "{pane}");
    tmux(&["send-keys", "-t", &session, "r"]);
    wait_for(&session, "will run (4)", Duration::from_secs(5));
    std::fs::write(scratch.path().join("release-approved.txt"), "alice\n").expect("approve");
    tmux(&["send-keys", "-t", &session, "y"]);
    wait_for(&session, "✔ succeeded", Duration::from_secs(20));
    tmux(&["send-keys", "-t", &session, "q"]);
    let pane = wait_for(&session, "EXITED", Duration::from_secs(10));
    assert!(pane.contains("run tmux-run succeeded"), "{pane}");
    assert!(pane.contains("EXITED 0"), "{pane}");
    drop(guard);
}

/// `watch --read-only` in a real terminal: the operator presses every control key and
/// confirms; the run's stored versions are exactly what they were.
#[test]
fn read_only_watch_in_tmux_changes_nothing() {
    let Some(scratch) = tmux_scratch() else {
        return;
    };
    let out = scratch.baton(&["run", "failing.json", "--run-id", "ro", "--json"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let versions = || stdout(&scratch.baton(&["status", "ro", "--versions"]));
    let before = versions();
    let (session, guard) = tmux_session(&scratch, "ro", "watch ro --read-only");
    wait_for(&session, "read-only", Duration::from_secs(10));
    for keys in [
        ["r", "y"],
        ["R", "y"],
        ["a", "y"],
        ["A", "y"],
        ["f", "r"],
        ["Enter", "y"],
    ] {
        tmux(&["send-keys", "-t", &session, keys[0], keys[1]]);
        std::thread::sleep(Duration::from_millis(150));
    }
    let pane = tmux(&["capture-pane", "-t", &session, "-p"]);
    assert!(
        !pane.contains("will run"),
        "a re-execute preview opened:\n{pane}"
    );
    assert!(!pane.contains("abort requested"), "{pane}");
    tmux(&["send-keys", "-t", &session, "q"]);
    wait_for(&session, "EXITED", Duration::from_secs(10));
    drop(guard);
    assert_eq!(versions(), before, "the read-only console changed the run");
}

/// A plan whose one command runs until stopped, writing its background child's pid.
const LONG_COMMAND: &str = r#"[
  {"label": "long", "type": "system.command",
   "params": {"command": "sleep 30 & echo $! > sleeper; wait", "shell": true}},
  {"label": "after", "type": "system.no_op", "depends_on": ["long"]}
]"#;

fn sleeper(scratch: &Scratch) -> u32 {
    let path = scratch.path().join("sleeper");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(std::time::Instant::now() < deadline, "no sleeper pid");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next());
        !matches!(state, Some("Z" | "X"))
    })
}

/// Quitting a console that drives the run stops the running command's process group, gives
/// the terminal back and says how to continue.
#[test]
fn quitting_a_driving_console_stops_its_commands_and_restores_the_terminal() {
    let Some(scratch) = tmux_scratch() else {
        return;
    };
    scratch.write("long.json", LONG_COMMAND);
    let (session, guard) = tmux_session(&scratch, "quit", "run long.json --run-id quit");
    wait_for(&session, "DAG · 2 actions", Duration::from_secs(10));
    let sleeper = sleeper(&scratch);
    tmux(&["send-keys", "-t", &session, "q"]);
    wait_for(
        &session,
        "SIGTERM (their whole process group)",
        Duration::from_secs(5),
    );
    tmux(&["send-keys", "-t", &session, "y"]);
    let pane = wait_for(&session, "EXITED", Duration::from_secs(10));
    drop(guard);
    assert!(pane.contains("EXITED 1"), "{pane}");
    assert!(pane.contains("stopping (quitting the console)"), "{pane}");
    assert!(
        pane.contains("long: stopped (SIGTERM to its process group"),
        "{pane}"
    );
    assert!(
        !pane.contains("DAG ·"),
        "the console's screen is still up:\n{pane}"
    );
    assert!(!running(sleeper), "the command outlived the quit");
}

/// SIGTERM to a console that drives a run: the same stop as quitting, and the terminal is
/// given back (not left in the alternate screen).
#[test]
fn sigterm_to_a_driving_console_stops_its_commands_and_restores_the_terminal() {
    let Some(scratch) = tmux_scratch() else {
        return;
    };
    scratch.write("long.json", LONG_COMMAND);
    let (session, guard) = tmux_session(&scratch, "term", "run long.json --run-id term");
    wait_for(&session, "DAG · 2 actions", Duration::from_secs(10));
    let sleeper = sleeper(&scratch);
    let lock = scratch.path().join(".baton/runs/term/driver.lock");
    let pid = std::fs::read_to_string(lock).expect("driver.lock");
    let status = std::process::Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .expect("kill");
    assert!(status.success());
    let pane = wait_for(&session, "EXITED", Duration::from_secs(10));
    drop(guard);
    assert!(pane.contains("EXITED 1"), "{pane}");
    assert!(
        pane.contains("run paused") || pane.contains("baton retry"),
        "{pane}"
    );
    assert!(
        !pane.contains("DAG ·"),
        "the console's screen is still up:\n{pane}"
    );
    assert!(!running(sleeper), "the command outlived baton's stop");
}

/// A scratch folder holding examples/failing.json, or `None` (skip) without tmux outside CI.
fn tmux_scratch() -> Option<Scratch> {
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_err()
    {
        assert!(std::env::var("CI").is_err(), "tmux is required in CI");
        eprintln!("skipping: tmux is not installed");
        return None;
    }
    let scratch = Scratch::new();
    std::fs::copy(
        repo().join("examples/failing.json"),
        scratch.path().join("failing.json"),
    )
    .expect("copy");
    Some(scratch)
}

/// A detached 120x36 tmux session running `baton ARGS` in `scratch`, then `EXITED <code>`.
fn tmux_session(scratch: &Scratch, name: &str, args: &str) -> (String, KillSession) {
    let session = format!("baton-{name}-{}", std::process::id());
    let command = format!(
        "cd {} && NO_COLOR=1 {} {args}; echo EXITED $?; sleep 30",
        scratch.path().display(),
        baton_bin()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "120",
        "-y",
        "36",
        &command,
    ]);
    let guard = KillSession(session.clone());
    (session, guard)
}

struct KillSession(String);

impl Drop for KillSession {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

#[test]
fn long_log_lines_wrap_instead_of_being_cut() {
    let mut app = demo_app();
    let idx = app.plan.find("build-api").expect("label");
    let long = format!("error detail: {} END", "x".repeat(150));
    update(
        &mut app,
        Msg::Log(
            Some(idx),
            LogEntry {
                t: t(4.2),
                level: Level::Error,
                msg: long,
            },
        ),
    );
    app.reveal(idx);
    let text = screen(&app, 120, 40);
    assert!(
        text.contains("END"),
        "the end of a long line must be visible:\n{text}"
    );
    assert!(text.contains("error error detail: xxx"), "{text}");
}

#[test]
fn real_terminal_demo_help_navigation_and_quit() {
    if std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_err()
    {
        assert!(std::env::var("CI").is_err(), "tmux is required in CI");
        return;
    }
    let scratch = Scratch::new();
    let session = format!("baton-demo-{}", std::process::id());
    let command = format!(
        "cd {} && NO_COLOR=1 {} run {} --run-id demo-tmux; echo EXITED $?; sleep 30",
        scratch.path().display(),
        baton_bin(),
        repo().join("examples/demo.json").display()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "120",
        "-y",
        "36",
        &command,
    ]);
    let _guard = KillSession(session.clone());
    let pane = wait_for(&session, "DAG · 15 actions", Duration::from_secs(10));
    // The whole plan is visible from the first frame, pending actions included.
    assert!(
        pane.contains("announce") && pane.contains("page-on-call"),
        "{pane}"
    );
    tmux(&["send-keys", "-t", &session, "?"]);
    wait_for(&session, "next running action", Duration::from_secs(5));
    tmux(&["send-keys", "-t", &session, "q"]);
    tmux(&["send-keys", "-t", &session, "j", "j", "j"]);
    wait_for(
        &session,
        "build-api · system.command",
        Duration::from_secs(5),
    );
    tmux(&["send-keys", "-t", &session, "f"]);
    wait_for(&session, "no failures", Duration::from_secs(5));
    tmux(&["send-keys", "-t", &session, "q"]);
    wait_for(
        &session,
        "This console is driving the run",
        Duration::from_secs(5),
    );
    tmux(&["send-keys", "-t", &session, "y"]);
    let pane = wait_for(&session, "EXITED", Duration::from_secs(10));
    assert!(pane.contains("continue it with: baton resume"), "{pane}");
    assert!(
        pane.contains("EXITED 1"),
        "an unfinished run exits 1:\n{pane}"
    );
}

#[test]
fn remote_runs_show_the_execution_and_its_history_budget() {
    let mut app = demo_app();
    edit(&mut app.state).state_machine("arn:aws:states:us-east-1:1:stateMachine:baton-runner");
    edit(&mut app.state).invocations(7);
    let info = baton::tui::app::RemoteInfo {
        execution: "demo-fixture".into(),
        status: "RUNNING".into(),
        events: 212,
        recent: vec![
            (t(2.0), "#40 TaskSucceeded".into()),
            (t(8.0), "#211 WaitStateEntered".into()),
            (t(8.5), "#212 WaitStateExited".into()),
        ],
    };
    update(&mut app, Msg::Remote(Box::new(info)));
    let text = screen(&app, 160, 48);
    assert!(
        text.contains("demo-fixture RUNNING · history 212/25000 · 7 ticks"),
        "{text}"
    );
    // L cycles the log pane: action → run → the execution's history.
    key(&mut app, KeyCode::Char('L'));
    key(&mut app, KeyCode::Char('L'));
    // The selected action (load-config, which ran at 0 s) sees only the events of its ticks.
    let text = screen(&app, 160, 48);
    assert!(text.contains("events during load-config's ticks"), "{text}");
    assert!(!text.contains("#212 WaitStateExited"), "{text}");
    let db = app.plan.find("provision-database").expect("label");
    app.reveal(db);
    let text = screen(&app, 160, 48);
    assert!(
        text.contains("#212 WaitStateExited") && !text.contains("#40 TaskSucceeded"),
        "{text}"
    );
    // Abort offers to stop the execution at once.
    key(&mut app, KeyCode::Char('a'));
    assert!(screen(&app, 160, 48).contains("h abort and stop the execution now"));
    assert_eq!(key(&mut app, KeyCode::Char('h')), vec![Effect::AbortHard]);
}

// ---- live logs and snapshots ----

fn line(at: f64, msg: &str) -> LogEntry {
    LogEntry {
        t: t(at),
        level: Level::Info,
        msg: msg.into(),
    }
}

fn thread(app: &App, label: &str) -> Vec<String> {
    let idx = app.plan.find(label).expect("label");
    app.state
        .action(idx)
        .log
        .iter()
        .map(|e| e.msg.clone())
        .collect()
}

/// The race behind first lines vanishing: the store poller loads a version just before the
/// engine in this process saves a newer one and hands over lines, and delivers it after.
#[test]
fn a_stale_snapshot_never_replaces_newer_state_or_lines_shown() {
    let mut app = demo_app();
    let db = app.plan.find("provision-database").expect("label");
    let stored_at_9 = app.state.clone();
    // The engine saves version 10 and streams two lines.
    update(
        &mut app,
        Msg::Snapshot(Box::new(stored_at_9.clone()), "10".into()),
    );
    update(&mut app, Msg::Log(Some(db), line(9.1, "first line")));
    update(&mut app, Msg::Log(Some(db), line(9.2, "second line")));
    // The poller's version 9 arrives late: ignored.
    update(
        &mut app,
        Msg::Snapshot(Box::new(stored_at_9.clone()), "9".into()),
    );
    assert_eq!(app.version, "10");
    assert_eq!(
        thread(&app, "provision-database"),
        vec!["first line", "second line"]
    );
    // Version 10 again (the poller saw it before the engine said so): nothing is lost.
    update(
        &mut app,
        Msg::Snapshot(Box::new(stored_at_9.clone()), "10".into()),
    );
    assert_eq!(thread(&app, "provision-database").len(), 2);
    // A newer version saved with the first line only (an operator's change, say): taken, and
    // the line it does not hold yet stays.
    let mut v11 = stored_at_9.clone();
    edit(&mut v11)
        .action_mut(db)
        .push_log(line(9.1, "first line"));
    edit(&mut v11).status(RunStatus::Running);
    update(&mut app, Msg::Snapshot(Box::new(v11), "11".into()));
    assert_eq!(app.version, "11");
    assert_eq!(app.state.status(), RunStatus::Running);
    assert_eq!(
        thread(&app, "provision-database"),
        vec!["first line", "second line"]
    );
    assert!(app.unsaved_progress, "a line no stored version holds");
}

/// S3 versions are opaque: a tick counts an invocation and stamps every save, and an
/// operator's change keeps the stamp of the version it changed.
#[test]
fn opaque_versions_are_ordered_by_tick_and_save_time() {
    let mut app = demo_app();
    let at = |invocations: u64, seconds: f64| {
        let mut state = app.state.clone();
        edit(&mut state)
            .invocations(invocations)
            .updated_at(t(seconds));
        state
    };
    let (older, newer, operator, next_tick) = (at(3, 8.0), at(3, 9.0), at(3, 9.0), at(4, 2.0));
    update(&mut app, Msg::Snapshot(Box::new(newer), "Yb2c".into()));
    update(&mut app, Msg::Snapshot(Box::new(older), "Xa1b".into()));
    assert_eq!(
        app.version, "Yb2c",
        "an earlier save of the same tick is older"
    );
    update(&mut app, Msg::Snapshot(Box::new(operator), "Zabort".into()));
    assert_eq!(
        app.version, "Zabort",
        "an operator's change on top is newer"
    );
    // A later tick on a machine whose clock is behind is still newer.
    update(&mut app, Msg::Snapshot(Box::new(next_tick), "Q9".into()));
    assert_eq!(app.version, "Q9");
}

/// A console watching a run driven elsewhere merges lines read from the live stream with the
/// lines stored versions bring, each once.
#[test]
fn live_stream_lines_merge_with_snapshots_without_duplicates() {
    let mut app = demo_app();
    let db = app.plan.find("provision-database").expect("label");
    let attempt = app.state.action(db).attempt;
    let stored = app.state.clone();
    let tail = |from: usize, to: usize| {
        Msg::Tail(baton::live::Tail {
            idx: db,
            attempt,
            entries: (from..=to)
                .map(|i| line(9.0 + i as f64 / 10.0, &format!("line {i}")))
                .collect(),
        })
    };
    update(&mut app, tail(1, 3));
    update(&mut app, tail(2, 5));
    let five: Vec<String> = (1..=5).map(|i| format!("line {i}")).collect();
    assert_eq!(thread(&app, "provision-database"), five);
    // A save that holds lines 1-4: the fifth stays, nothing is doubled.
    let mut saved = stored.clone();
    for i in 1..=4 {
        edit(&mut saved)
            .action_mut(db)
            .push_log(line(9.0 + f64::from(i) / 10.0, &format!("line {i}")));
    }
    update(&mut app, Msg::Snapshot(Box::new(saved), "10".into()));
    assert_eq!(thread(&app, "provision-database"), five);
    // Lines of another attempt are not this one's.
    update(
        &mut app,
        Msg::Tail(baton::live::Tail {
            idx: db,
            attempt: attempt + 1,
            entries: vec![line(9.9, "next attempt")],
        }),
    );
    assert_eq!(thread(&app, "provision-database"), five);
    // A re-execution resets the action: lines of the attempt before are not carried over.
    let mut reset = stored;
    edit(&mut reset)
        .action_mut(db)
        .push_log(line(9.8, "reset for re-execution"));
    edit(&mut reset).action_mut(db).status = ActionStatus::Pending;
    update(&mut app, Msg::Snapshot(Box::new(reset), "11".into()));
    assert_eq!(
        thread(&app, "provision-database"),
        vec!["reset for re-execution"]
    );
}

/// `baton watch` in a real terminal beside a `baton run --plain` driving a command that prints
/// a line every 200 ms: the watcher's log pane shows each line within 2 s of its printing,
/// while the command still runs (not at the state's next save).
#[test]
fn a_watching_console_shows_a_running_commands_lines_within_two_seconds() {
    let Some(scratch) = tmux_scratch() else {
        return;
    };
    let plan = json!([{
        "label": "chatty",
        "type": "system.command",
        "params": {
            "command": "for i in $(seq 1 25); do echo \"line $i at $(date +%s%3N)\"; sleep 0.2; done",
            "shell": true,
        },
    }]);
    scratch.write("chatty.json", &plan.to_string());
    let mut driver = scratch
        .cmd()
        .args(["run", "chatty.json", "--run-id", "live", "--plain"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the driver");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while code(&scratch.baton(&["status", "live"])) != 0 {
        assert!(std::time::Instant::now() < deadline, "no run");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (session, guard) = tmux_session(&scratch, "live", "watch live --read-only");
    let mut samples = Vec::new();
    let mut first_shown = None;
    while driver.try_wait().expect("driver").is_none() {
        assert!(std::time::Instant::now() < deadline, "the run never ended");
        let pane = tmux(&["capture-pane", "-t", &session, "-p"]);
        let now = chrono::Utc::now().timestamp_millis();
        let newest = pane
            .lines()
            .filter_map(|l| l.split(" at ").nth(1))
            .filter_map(|rest| rest.trim().get(..13)?.parse::<i64>().ok())
            .max();
        if let Some(newest) = newest {
            let first = *first_shown.get_or_insert(newest);
            // Once lines flow, the newest one shown was printed less than 2 s ago (plus the
            // 200 ms between lines).
            if now - first > 2500 {
                samples.push(now - newest);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(guard);
    assert!(
        samples.len() >= 5,
        "lines showed only after the command ended ({samples:?})"
    );
    assert!(
        samples.iter().all(|lag| *lag < 2200),
        "the watcher lagged: {samples:?} ms"
    );
}

#[test]
fn a_remote_run_that_nothing_drives_says_idle_and_how_to_continue() {
    let mut app = demo_app();
    edit(&mut app.state).state_machine("arn:aws:states:us-east-1:1:stateMachine:baton-runner");
    let stopped = baton::tui::app::RemoteInfo {
        execution: "demo-fixture".into(),
        status: "FAILED".into(),
        events: 40,
        recent: vec![],
    };
    update(&mut app, Msg::Remote(Box::new(stopped)));
    let text = screen(&app, 200, 48);
    assert!(
        text.contains("demo-fixture FAILED · idle since")
            && text.contains("nothing is driving it")
            && text.contains("--remote"),
        "{text}"
    );
    // A run with no execution at all (its start failed) is idle too.
    update(&mut app, Msg::Remote(Box::default()));
    let text = screen(&app, 200, 48);
    assert!(text.contains("no execution · idle since"), "{text}");
    // While a tick holds the lease, someone drives it; a watching console names it.
    app.driving = false;
    app.driver_active = false;
    edit(&mut app.state).driver(Some(baton_core::state::Lease {
        holder: "baton pid 9 on ops-box tick 3".into(),
        until: app.now + chrono::Duration::seconds(20),
    }));
    let text = screen(&app, 200, 48);
    assert!(!text.contains("idle since"), "{text}");
    assert!(text.contains("driven by baton pid 9 on ops-box"), "{text}");
}

// ---- the views at 80x24 and 160x48 ----

/// Renders at a size the app knows about (layout and paging follow it).
fn sized(app: &mut App, width: u16, height: u16) -> String {
    update(app, Msg::Resize(width, height));
    screen(app, width, height)
}

fn runs_view() -> baton::tui::runs::RunsView {
    use baton::commands::runs::RunRow;
    let row = |id: &str,
               status: RunStatus,
               start: f64,
               took: f64,
               counts: [usize; 7],
               driver: Option<&str>| RunRow {
        id: id.into(),
        run: format!(".baton/runs/{id}"),
        status,
        started: t(start),
        updated: t(start + took),
        duration: Duration::from_secs_f64(took),
        counts,
        actions: counts.iter().sum(),
        driver: driver.map(String::from),
    };
    let mut view = baton::tui::runs::RunsView::new(".baton", false, None);
    view.listed(baton::tui::runs::Listed::Rows(
        vec![
            row(
                "demo-20261128-094203-f962",
                RunStatus::Running,
                600.0,
                9.8,
                [7, 1, 7, 0, 0, 0, 0],
                Some("pid 4242"),
            ),
            row(
                "failing-20261128-094216-ce4e",
                RunStatus::Failed,
                300.0,
                4.0,
                [0, 0, 4, 1, 0, 3, 0],
                None,
            ),
            row(
                "deploy-20261127-170002-1a2b",
                RunStatus::Waiting,
                100.0,
                3600.0,
                [2, 0, 5, 0, 1, 0, 0],
                Some("idle"),
            ),
            row(
                "demo-20261127-120000-0001",
                RunStatus::Succeeded,
                0.0,
                21.7,
                [0, 0, 15, 0, 0, 0, 0],
                None,
            ),
        ],
        Vec::new(),
    ));
    view
}

fn runs_screen(view: &mut baton::tui::runs::RunsView, width: u16, height: u16) -> String {
    view.update(Msg::Resize(width, height));
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal
        .draw(|frame| frame.render_widget(&*view, frame.area()))
        .expect("draw");
    let buffer = terminal.backend().buffer();
    (0..buffer.area.height)
        .map(|y| {
            let line: String = (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect();
            format!("{}\n", line.trim_end())
        })
        .collect()
}

#[test]
fn snapshot_runs_view() {
    let mut view = runs_view();
    insta::assert_snapshot!("runs_view_80x24", runs_screen(&mut view, 80, 24));
    insta::assert_snapshot!("runs_view_160x48", runs_screen(&mut view, 160, 48));
}

#[test]
fn snapshot_inspect_view() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = failing_app();
        key(&mut app, KeyCode::Char('f'));
        key(&mut app, KeyCode::Enter);
        insta::assert_snapshot!(format!("inspect_view_{w}x{h}"), sized(&mut app, w, h));
    }
}

#[test]
fn snapshot_full_screen_log() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = demo_app();
        app.reveal(app.plan.find("build-api").expect("label"));
        key(&mut app, KeyCode::Char('v'));
        insta::assert_snapshot!(format!("full_screen_log_{w}x{h}"), sized(&mut app, w, h));
    }
}

#[test]
fn snapshot_reexecute_dialog() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = failing_app();
        key(&mut app, KeyCode::Char('f'));
        key(&mut app, KeyCode::Char('r'));
        insta::assert_snapshot!(format!("reexecute_dialog_{w}x{h}"), sized(&mut app, w, h));
    }
}

#[test]
fn snapshot_help() {
    for (w, h) in [(80, 24), (160, 48)] {
        let mut app = demo_app();
        key(&mut app, KeyCode::Char('?'));
        insta::assert_snapshot!(format!("help_{w}x{h}"), sized(&mut app, w, h));
    }
}

// ---- the views' behaviour ----

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(
        KeyCode::Char(c),
        ratatui::crossterm::event::KeyModifiers::CONTROL,
    )
}

fn is_main(app: &App) -> bool {
    app.screen == baton::tui::app::Screen::Main
        && app.view == View::Dag
        && app.overlay.is_none()
        && app.command_line.is_none()
        && app.filter_editing.is_none()
        && app.log.search_editing.is_none()
        && app.focus == Focus::Dag
}

#[test]
fn inspect_follows_links_and_esc_backs_out_one_level_at_a_time() {
    let mut app = failing_app();
    key(&mut app, KeyCode::Char('f'));
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.screen, baton::tui::app::Screen::Inspect);
    let text = sized(&mut app, 160, 48);
    // The error comes first, before the (long) description.
    let error = text.find("no change approval").expect("error shown");
    let description = text.find("Production needs").expect("description shown");
    assert!(error < description, "{text}");
    // Follow "needed by → deploy-prod".
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.plan.label(app.inspect.idx), "deploy-prod");
    assert_eq!(label_of(&app), "deploy-prod");
    // The params tree folds.
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Left);
    assert!(!app.inspect.opened.contains(&vec!["params".to_string()]));
    key(&mut app, KeyCode::Right);
    assert!(app.inspect.opened.contains(&vec!["params".to_string()]));
    // v: its log full screen; Esc back to inspect, Esc back to the main screen.
    key(&mut app, KeyCode::Char('v'));
    assert_eq!(app.screen, baton::tui::app::Screen::Log);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.screen, baton::tui::app::Screen::Inspect);
    key(&mut app, KeyCode::Esc);
    assert!(is_main(&app));
    assert_eq!(label_of(&app), "deploy-prod");
}

fn push_lines(app: &mut App, label: &str, from: usize, to: usize) {
    let idx = app.plan.find(label).expect("label");
    for i in from..to {
        update(
            app,
            Msg::Log(
                Some(idx),
                line(10.0 + i as f64 / 1000.0, &format!("line {i}")),
            ),
        );
    }
}

#[test]
fn a_held_log_stays_on_its_line_while_lines_arrive_and_marks_dropped_ones() {
    let mut app = demo_app();
    app.reveal(app.plan.find("provision-database").expect("label"));
    push_lines(&mut app, "provision-database", 0, 150);
    key(&mut app, KeyCode::Char('v'));
    update(&mut app, Msg::Resize(80, 24));
    key(&mut app, KeyCode::Char('g'));
    // g shows the first line at the top and a full page below it.
    let text = screen(&app, 80, 24);
    assert!(
        text.contains("│line 0 ") && text.contains("│line 10 "),
        "{text}"
    );
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Down);
    let top = app.log.top;
    let before = screen(&app, 80, 24);
    push_lines(&mut app, "provision-database", 150, 180);
    assert_eq!(screen(&app, 80, 24), before.replace("of 150", "of 180"));
    // Past the ring's 200 lines the first ones go: the view stays on the same line until
    // it is dropped, then shows the marker.
    push_lines(&mut app, "provision-database", 180, 260);
    assert_eq!(app.log.top, top);
    let text = screen(&app, 80, 24);
    assert!(text.contains("earlier lines dropped"), "{text}");
    assert!(text.contains("│line 60 "), "{text}");
    // f follows the newest line; f again holds.
    key(&mut app, KeyCode::Char('f'));
    assert!(screen(&app, 80, 24).contains("line 259"));
    assert_eq!(app.log.top, None);
}

#[test]
fn log_search_wrap_and_follow() {
    let mut app = demo_app();
    app.reveal(app.plan.find("provision-database").expect("label"));
    push_lines(&mut app, "provision-database", 0, 100);
    key(&mut app, KeyCode::Char('v'));
    update(&mut app, Msg::Resize(80, 24));
    key(&mut app, KeyCode::Char('g'));
    key(&mut app, KeyCode::Char('/'));
    for c in "line 4".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.flash.as_deref(), Some("match 1 of 11 for \"line 4\""));
    key(&mut app, KeyCode::Char('n'));
    assert_eq!(app.flash.as_deref(), Some("match 2 of 11 for \"line 4\""));
    key(&mut app, KeyCode::Char('N'));
    assert_eq!(app.flash.as_deref(), Some("match 1 of 11 for \"line 4\""));
    let idx = app.plan.find("provision-database").expect("label");
    update(
        &mut app,
        Msg::Log(
            Some(idx),
            line(20.0, &format!("long {} END", "x".repeat(200))),
        ),
    );
    key(&mut app, KeyCode::Char('G'));
    assert!(screen(&app, 80, 24).contains("END"));
    key(&mut app, KeyCode::Char('w'));
    let cut = screen(&app, 80, 24);
    assert!(!cut.contains("END") && cut.contains("xxx…"), "{cut}");
}

#[test]
fn the_command_line_runs_every_command_and_completes() {
    let mut app = failing_app();
    let type_line = |app: &mut App, text: &str| {
        key(app, KeyCode::Char(':'));
        for c in text.chars() {
            key(app, KeyCode::Char(c));
        }
    };
    type_line(&mut app, "time");
    key(&mut app, KeyCode::Tab);
    assert_eq!(
        app.command_line.as_ref().map(|l| l.text.as_str()),
        Some("timeline")
    );
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Timeline);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.view, View::Dag);
    type_line(&mut app, "filter fail");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.matched, 1);
    assert!(sized(&mut app, 160, 48).contains("/fail 1 of 8"));
    type_line(&mut app, "retry from te");
    key(&mut app, KeyCode::Tab);
    assert_eq!(
        app.command_line.as_ref().map(|l| l.text.as_str()),
        Some("retry from test")
    );
    key(&mut app, KeyCode::Enter);
    let Some(Overlay::Reexecute { choice, action, .. }) = &app.overlay else {
        panic!("no dialog: {:?}", app.overlay)
    };
    assert_eq!(
        (*choice, action.map(|i| app.plan.label(i))),
        (1, Some("test"))
    );
    assert!(sized(&mut app, 160, 48).contains("2 from test"));
    key(&mut app, KeyCode::Esc);
    type_line(&mut app, "nonsense");
    key(&mut app, KeyCode::Enter);
    assert!(app
        .flash
        .as_deref()
        .unwrap_or_default()
        .contains("unknown command :nonsense"));
    type_line(&mut app, "q");
    assert_eq!(key(&mut app, KeyCode::Enter), vec![Effect::Quit]);
}

#[test]
fn filters_match_prefixes_count_and_say_no_matches() {
    let mut app = failing_app();
    key(&mut app, KeyCode::Char('/'));
    for c in "bl".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    assert_eq!(app.matched, 3, "blocked, by a prefix of the status");
    let text = sized(&mut app, 160, 48);
    assert!(
        text.contains("/bl 3 of 8") && text.contains("3 matches"),
        "{text}"
    );
    assert!(
        text.contains("layer 2 · 1 of 2"),
        "layer counts are filtered: {text}"
    );
    key(&mut app, KeyCode::Char('z'));
    let text = sized(&mut app, 160, 48);
    assert!(text.contains("no matches for /blz"), "{text}");
    // Esc while editing puts back the filter as it was.
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.filter, "");
    // Ctrl-C while typing a filter quits.
    key(&mut app, KeyCode::Char('/'));
    assert_eq!(update(&mut app, Msg::Key(ctrl('c'))), vec![Effect::Quit]);
}

#[test]
fn esc_leaves_the_timeline_and_the_log_pane_and_ctrl_c_twice_quits_a_driving_console() {
    let mut app = demo_app();
    key(&mut app, KeyCode::Char('t'));
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.view, View::Dag);
    key(&mut app, KeyCode::Tab);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.focus, Focus::Dag);
    assert!(update(&mut app, Msg::Key(ctrl('c'))).is_empty());
    assert_eq!(app.overlay, Some(Overlay::ConfirmQuit));
    assert_eq!(update(&mut app, Msg::Key(ctrl('c'))), vec![Effect::Quit]);
}

#[test]
fn f_and_shift_f_cycle_failures_centred_and_an_aborted_run_has_none() {
    let mut app = failing_app();
    key(&mut app, KeyCode::Char('f'));
    assert_eq!(label_of(&app), "change-approval");
    assert_eq!(app.flash.as_deref(), Some("failure 1 of 1"));
    let mut aborted = demo_app();
    let db = aborted.plan.find("provision-database").expect("label");
    edit(&mut aborted.state).action_mut(db).status = ActionStatus::Cancelled;
    edit(&mut aborted.state).status(RunStatus::Aborted);
    key(&mut aborted, KeyCode::Char('f'));
    assert_eq!(
        aborted.flash.as_deref(),
        Some("no failures (1 cancelled by the abort)")
    );
    assert_eq!(label_of(&aborted), "load-config");
}

#[test]
fn read_only_answers_mutating_keys() {
    let mut app = failing_app();
    app.read_only = true;
    key(&mut app, KeyCode::Char('r'));
    assert!(app.overlay.is_none());
    assert_eq!(
        app.flash.as_deref(),
        Some("read-only: this console cannot change the run")
    );
}

#[test]
fn the_header_tells_who_drives_and_stops_the_clock_of_an_idle_run() {
    let mut app = demo_app();
    app.driving = false;
    app.driver_active = false;
    update(&mut app, Msg::LocalDriver(Some(Some(4242))));
    let text = sized(&mut app, 160, 48);
    assert!(text.contains("driven by pid 4242"), "{text}");
    assert!(text.contains("saved 0.5s ago"), "{text}");
    // Nobody holds the lock: idle, the way out, and the clocks stop at the last save.
    update(&mut app, Msg::LocalDriver(None));
    update(&mut app, Msg::Tick(t(60.0)));
    let text = sized(&mut app, 160, 48);
    assert!(
        text.contains("idle since 09:00:08") && text.contains("R resumes it"),
        "{text}"
    );
    assert!(text.contains("elapsed 8.5s"), "{text}");
    assert!(text.contains("saved 51.5s ago"), "{text}");
    assert_eq!(key(&mut app, KeyCode::Char('R')), vec![Effect::Resume]);
}

#[test]
fn progress_counts_only_what_is_done_and_the_eta_follows_the_remaining_path() {
    let mut app = demo_app();
    let text = sized(&mut app, 160, 48);
    assert!(text.contains("47% done"), "{text}");
    assert!(text.contains("ETA ~"), "{text}");
    app.state.request_abort();
    let text = sized(&mut app, 160, 48);
    assert!(!text.contains("ETA"), "no ETA during an abort: {text}");
    let failing = sized(&mut failing_app(), 160, 48);
    assert!(
        failing.contains("50% done") && !failing.contains("ETA"),
        "{failing}"
    );
}

#[test]
fn footer_hints_keep_help_and_quit_at_any_width_and_messages_take_their_own_line() {
    for width in [40u16, 60, 80, 120, 160] {
        let mut app = demo_app();
        key(&mut app, KeyCode::Char('f'));
        let text = sized(&mut app, width, 24);
        let footer = text.lines().last().unwrap_or_default();
        assert!(
            footer.contains("? help") && footer.contains("q quit"),
            "{width}: {footer}"
        );
        assert!(text.contains("no failures"), "{text}");
        // The message goes after a few seconds.
        update(&mut app, Msg::Tick(t(30.0)));
        assert!(app.flash.is_none());
    }
}

#[test]
fn narrow_terminals_get_one_pane_and_distinct_labels() {
    let mut app = demo_app();
    app.reveal(app.plan.find("build-api").expect("label"));
    let text = sized(&mut app, 40, 10);
    assert!(!text.contains("too small"), "{text}");
    assert!(
        text.contains("✔ build-api") && !text.contains("detail"),
        "{text}"
    );
    assert_eq!(baton::tui::ui::shorten("build-api", 7), "bui…api");
    assert_eq!(baton::tui::ui::shorten("build-web", 7), "bui…web");
    let small = screen(&app, 30, 8);
    assert!(small.contains("at least 40x10"), "{small}");
}

#[test]
fn mouse_clicks_select_and_the_wheel_scrolls() {
    use ratatui::crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
    let mut app = demo_app();
    update(&mut app, Msg::Resize(160, 48));
    let click = |row| MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: 5,
        row,
        modifiers: KeyModifiers::NONE,
    };
    // Row 4 is the DAG's first row (header 3, border 1): layer 0; row 6 is preflight.
    update(&mut app, Msg::Mouse(click(6)));
    assert_eq!(label_of(&app), "preflight");
    update(&mut app, Msg::Mouse(click(6)));
    assert_eq!(
        app.screen,
        baton::tui::app::Screen::Inspect,
        "a second click opens it"
    );
    key(&mut app, KeyCode::Esc);
    let wheel = MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: 5,
        row: 10,
        modifiers: KeyModifiers::NONE,
    };
    update(&mut app, Msg::Mouse(wheel));
    assert_eq!(app.cursor, 5);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Whatever keys an operator presses (in any view, at any size), nothing panics, and Esc
    /// always leads back to the main screen (one level at a time) and stays there.
    #[test]
    fn esc_always_returns_to_the_main_screen(
        keys in proptest::collection::vec(0usize..64, 1..60),
        size in (0usize..4),
    ) {
        let alphabet: Vec<KeyEvent> = "rRaAyYnNqfFjkcvwxhlgGtTL?/: 123e"
            .chars()
            .map(|c| KeyEvent::from(KeyCode::Char(c)))
            .chain([
                KeyCode::Enter, KeyCode::Esc, KeyCode::Tab, KeyCode::Up, KeyCode::Down,
                KeyCode::Left, KeyCode::Right, KeyCode::PageDown, KeyCode::PageUp, KeyCode::Home,
                KeyCode::End, KeyCode::Backspace, KeyCode::BackTab,
            ].map(KeyEvent::from))
            .chain([ctrl('u'), ctrl('d')])
            .collect();
        let (w, h) = [(80, 24), (160, 48), (40, 10), (100, 30)][size];
        let mut app = failing_app();
        update(&mut app, Msg::Resize(w, h));
        for k in &keys {
            update(&mut app, Msg::Key(alphabet[k % alphabet.len()]));
            let _ = screen(&app, w, h);
        }
        if app.quit {
            return Ok(());
        }
        for _ in 0..8 {
            if is_main(&app) { break; }
            update(&mut app, Msg::Key(KeyEvent::from(KeyCode::Esc)));
        }
        proptest::prop_assert!(is_main(&app), "not back on the main screen: {:?} {:?} {:?}", app.screen, app.overlay, app.view);
        update(&mut app, Msg::Key(KeyEvent::from(KeyCode::Esc)));
        proptest::prop_assert!(is_main(&app));
    }
}

// ---- `baton runs` ----

#[test]
fn runs_lists_the_store_plain_and_as_json() {
    let scratch = Scratch::new();
    std::fs::copy(
        repo().join("examples/failing.json"),
        scratch.path().join("failing.json"),
    )
    .expect("copy");
    let out = scratch.baton(&["run", "failing.json", "--run-id", "one", "--plain"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let out = scratch.baton(&["runs"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ID "), "{text}");
    assert!(
        text.contains("one  ") && text.contains("failed") && text.contains("8 ✔4 ✖1 ⊘3"),
        "{text}"
    );
    let out = scratch.baton(&["runs", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(list[0]["id"], "one");
    assert_eq!(list[0]["status"], "failed");
    assert_eq!(list[0]["counts"]["blocked"], 3);
    assert_eq!(list[0]["driver"], serde_json::Value::Null);
    // An unfinished run nobody drives is idle.
    let out = scratch.baton(&["retry", "one", "--failed", "--no-run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let list: serde_json::Value =
        serde_json::from_str(&stdout(&scratch.baton(&["runs", "--json"]))).expect("json");
    assert_eq!(list[0]["driver"], "idle");
    // Outside a terminal, a bare watch lists the runs and says why.
    let out = scratch.baton(&["watch"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("one"), "{}", stdout(&out));
    assert!(stderr(&out).contains("not a terminal"), "{}", stderr(&out));
}

// ---- real terminals: the runs view, commands, the filter, TERM=dumb ----

/// A tmux session of `width` x `height` running `command` in `scratch`.
fn tmux_sized(
    scratch: &Scratch,
    name: &str,
    command: &str,
    width: u16,
    height: u16,
) -> (String, KillSession) {
    let session = format!("baton-{name}-{}", std::process::id());
    let command = format!(
        "cd {} && NO_COLOR=1 {command}; echo EXITED $?; sleep 30",
        scratch.path().display()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        &width.to_string(),
        "-y",
        &height.to_string(),
        &command,
    ]);
    let guard = KillSession(session.clone());
    (session, guard)
}

/// Esc alone: a key right after it would read as Alt+key.
fn escape(session: &str) {
    tmux(&["send-keys", "-t", session, "Escape"]);
    std::thread::sleep(Duration::from_millis(150));
}

#[test]
fn the_runs_view_commands_and_the_filter_in_tmux() {
    let Some(scratch) = tmux_scratch() else {
        return;
    };
    for id in ["first", "second"] {
        let out = scratch.baton(&["run", "failing.json", "--run-id", id, "--plain"]);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
    }
    let command = format!("{} watch", baton_bin());
    let (session, guard) = tmux_sized(&scratch, "runs", &command, 120, 36);
    wait_for(&session, "runs in .baton", Duration::from_secs(10));
    wait_for(&session, "second", Duration::from_secs(10));
    // The filter narrows the list; Enter opens the run; Esc comes back.
    tmux(&["send-keys", "-t", &session, "/", "s", "e", "c", "Enter"]);
    wait_for(&session, "/sec 1 of 2 runs", Duration::from_secs(5));
    tmux(&["send-keys", "-t", &session, "Enter"]);
    wait_for(&session, "baton second", Duration::from_secs(10));
    escape(&session);
    wait_for(&session, "runs in .baton", Duration::from_secs(5));
    // :run opens another; :timeline, :filter act on it; :runs goes home.
    for keys in [":run first", "Enter"] {
        tmux(&["send-keys", "-t", &session, keys]);
    }
    wait_for(&session, "baton first", Duration::from_secs(10));
    tmux(&["send-keys", "-t", &session, ":timeline", "Enter"]);
    wait_for(&session, "critical path", Duration::from_secs(5));
    escape(&session);
    tmux(&["send-keys", "-t", &session, ":filter blo", "Enter"]);
    wait_for(&session, "/blo 3 of 8", Duration::from_secs(5));
    tmux(&["send-keys", "-t", &session, "Enter"]);
    wait_for(&session, "inspect · ", Duration::from_secs(5));
    escape(&session);
    tmux(&["send-keys", "-t", &session, ":runs", "Enter"]);
    wait_for(&session, "runs in .baton", Duration::from_secs(5));
    tmux(&["send-keys", "-t", &session, "q"]);
    let pane = wait_for(&session, "EXITED", Duration::from_secs(10));
    assert!(pane.contains("EXITED 0"), "{pane}");
    drop(guard);
}

#[test]
fn term_dumb_and_tiny_terminals_print_plain_lines_and_say_why() {
    let Some(scratch) = tmux_scratch() else {
        return;
    };
    let command = format!("TERM=dumb {} run failing.json --run-id dumb", baton_bin());
    let (session, guard) = tmux_sized(&scratch, "dumb", &command, 120, 36);
    let pane = wait_for(&session, "EXITED", Duration::from_secs(30));
    assert!(
        pane.contains("TERM=dumb: this terminal cannot draw the console"),
        "{pane}"
    );
    assert!(pane.contains("run dumb failed in"), "{pane}");
    assert!(pane.contains("EXITED 1"), "{pane}");
    drop(guard);
    let command = format!("{} watch dumb", baton_bin());
    let (session, guard) = tmux_sized(&scratch, "tiny", &command, 30, 8);
    let pane = wait_for(&session, "EXITED", Duration::from_secs(30));
    let wide = tmux(&["capture-pane", "-t", &session, "-p", "-J", "-S", "-100"]);
    assert!(
        wide.contains("the console needs at least 40x10"),
        "{pane}\n{wide}"
    );
    assert!(wide.contains("EXITED 0"), "{wide}");
    drop(guard);
}

/// Key-to-screen in a real terminal: how long after a key the screen shows its effect.
#[test]
fn key_to_screen_latency_in_tmux() {
    let Some(scratch) = tmux_scratch() else {
        return;
    };
    let out = scratch.baton(&["run", "failing.json", "--run-id", "lat", "--plain"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let command = format!("{} watch lat --read-only", baton_bin());
    let (session, guard) = tmux_sized(&scratch, "lat", &command, 160, 48);
    wait_for(&session, "DAG · 8 actions", Duration::from_secs(10));
    let mut samples = Vec::new();
    for i in 0..20 {
        let needle = if i % 2 == 0 {
            "critical path"
        } else {
            "DAG · 8"
        };
        let sent = std::time::Instant::now();
        tmux(&["send-keys", "-t", &session, "t"]);
        // Polls every 2 ms (wait_for's 100 ms would hide the figure).
        while !tmux(&["capture-pane", "-t", &session, "-p"]).contains(needle) {
            assert!(sent.elapsed() < Duration::from_secs(5), "no {needle}");
            std::thread::sleep(Duration::from_millis(2));
        }
        samples.push(sent.elapsed().as_millis());
    }
    drop(guard);
    samples.sort_unstable();
    let median = samples[samples.len() / 2];
    eprintln!("key-to-screen in tmux, ms (sorted): {samples:?}; median {median}");
    assert!(
        median < 100,
        "key-to-screen median {median} ms: {samples:?}"
    );
}

// ---- the operator guide ----

/// The screens the operator guide shows, by name.
fn guide_captures() -> Vec<(&'static str, String)> {
    let mut main = demo_app();
    main.reveal(main.plan.find("build-api").expect("label"));
    let mut compact = demo_app();
    let mut inspect = failing_app();
    key(&mut inspect, KeyCode::Char('f'));
    key(&mut inspect, KeyCode::Enter);
    inspect.flash = None;
    let mut log = demo_app();
    log.reveal(log.plan.find("provision-database").expect("label"));
    push_lines(&mut log, "provision-database", 0, 40);
    key(&mut log, KeyCode::Char('v'));
    update(&mut log, Msg::Resize(120, 24));
    key(&mut log, KeyCode::Char('g'));
    key(&mut log, KeyCode::Char('/'));
    for c in "line 1".chars() {
        key(&mut log, KeyCode::Char(c));
    }
    key(&mut log, KeyCode::Enter);
    let mut reexecute = failing_app();
    key(&mut reexecute, KeyCode::Char('f'));
    key(&mut reexecute, KeyCode::Char('r'));
    reexecute.flash = None;
    let mut timeline = failing_app();
    key(&mut timeline, KeyCode::Char('t'));
    let mut help = demo_app();
    key(&mut help, KeyCode::Char('?'));
    vec![
        ("runs", runs_screen(&mut runs_view(), 120, 10)),
        ("main", sized(&mut main, 120, 30)),
        ("main-80x24", sized(&mut compact, 80, 24)),
        ("inspect", sized(&mut inspect, 120, 30)),
        ("log", screen(&log, 120, 24)),
        ("reexecute", sized(&mut reexecute, 120, 30)),
        ("timeline", sized(&mut timeline, 120, 16)),
        ("help", sized(&mut help, 120, 40)),
    ]
}

/// Replaces what follows `start` up to `end` in `doc`.
fn fill(doc: &str, start: &str, end: &str, with: &str) -> String {
    let Some(from) = doc.find(start).map(|i| i + start.len()) else {
        panic!("the guide has no {start:?}");
    };
    let to = from + doc[from..].find(end).expect("end marker");
    format!("{}{with}{}", &doc[..from], &doc[to..])
}

/// docs/operator-guide.md shows each view as the console draws it and the full key table
/// from the keymap. `BATON_UPDATE_DOCS=1` rewrites them.
#[test]
fn the_operator_guide_matches_the_console() {
    let path = repo().join("docs/operator-guide.md");
    let doc = std::fs::read_to_string(&path).expect("guide");
    let mut expected = fill(
        &doc,
        "<!-- keys:begin -->\n",
        "<!-- keys:end -->",
        &baton::tui::keymap::markdown_table(),
    );
    for (name, capture) in guide_captures() {
        let start = format!("<!-- capture:{name} -->\n```\n");
        expected = fill(&expected, &start, "```\n", &capture);
    }
    if std::env::var_os("BATON_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &expected).expect("write the guide");
        return;
    }
    assert!(
        doc == expected,
        "docs/operator-guide.md is out of date: run BATON_UPDATE_DOCS=1 cargo test -p baton --test cli operator_guide"
    );
}
