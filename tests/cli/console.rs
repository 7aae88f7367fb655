//! The console: state transitions of `update()` (no rendering), insta snapshots of the main
//! screens at two sizes, an exact buffer of the timeline widget, tiny-terminal renders, and one
//! real-terminal session in tmux.

use baton_core::testutil::edit;
use std::sync::Arc;
use std::time::Duration;

use baton::tui::app::{update, App, AppOptions, Effect, Focus, Msg, Overlay, Row, View};
use baton_core::scheduler::Reexecute;
use baton_core::state::{Level, LogEntry, Timestamp};
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
    let mut app = App::new(
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
    );
    app
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
fn snapshot_failure_with_reexecute_preview() {
    let mut app = failing_app();
    key(&mut app, KeyCode::Char('f'));
    key(&mut app, KeyCode::Char('r'));
    insta::assert_snapshot!(screen(&app, 120, 36));
}

#[test]
fn snapshot_help_overlay() {
    let mut app = demo_app();
    key(&mut app, KeyCode::Char('?'));
    insta::assert_snapshot!(screen(&app, 100, 30));
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
    wait_for(
        &session,
        "next running action",
        Duration::from_secs(5),
    );
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
