//! Engine tests through the public API: scheduler properties on generated DAGs (sans-IO), and
//! the async driver with an in-memory store and a scripted executor.

mod bad_input;
mod journal;
mod store_contract;
use baton_core::testutil::edit;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use baton_core::driver::{tick, Silent, TickOptions};
use baton_core::graph::topological_order;
use baton_core::scheduler::{apply_reexecute, preview_reexecute, Reexecute, Step};
use baton_core::testutil::{plan, MemoryStore, ScriptedExecutor};
use baton_core::{
    ActionStatus, Next, Outcome, Plan, Run, RunState, RunStatus, RunStore, Scheduler,
};
use chrono::Utc;
use proptest::prelude::*;
use serde_json::{json, Map};

/// A DAG description: for each action, whether it is async (a `system.wait` stand-in) and its
/// dependencies among earlier actions.
#[derive(Debug, Clone)]
struct Dag {
    actions: Vec<(bool, Vec<usize>)>,
}

fn dag_strategy(max: usize) -> impl Strategy<Value = Dag> {
    (1..max).prop_flat_map(|n| {
        let per_action: Vec<_> = (0..n)
            .map(|i| {
                (
                    any::<bool>(),
                    proptest::collection::vec(0..i.max(1), 0..=i.min(3)),
                )
            })
            .collect();
        per_action.prop_map(move |actions| Dag {
            actions: actions
                .into_iter()
                .enumerate()
                .map(|(i, (is_async, deps))| {
                    (is_async, deps.into_iter().filter(|&d| d < i).collect())
                })
                .collect(),
        })
    })
}

fn dag_plan(dag: &Dag) -> Plan {
    let actions: Vec<_> = dag
        .actions
        .iter()
        .enumerate()
        .map(|(i, (is_async, deps))| {
            let mut action = json!({
                "label": format!("a{i}"),
                "type": if *is_async { "system.wait" } else { "system.no_op" },
                "depends_on": deps.iter().map(|d| format!("a{d}")).collect::<Vec<_>>(),
            });
            if *is_async {
                action["params"] = json!({"seconds": 1});
            }
            action
        })
        .collect();
    plan(&serde_json::Value::Array(actions).to_string())
}

/// Drives the scheduler by hand: outcomes of started actions are fed back in the order `pick`
/// chooses; actions in `failing` fail. Returns final statuses and the number of starts.
fn simulate(
    plan: &Plan,
    failing: &HashSet<usize>,
    mut pick: impl FnMut(usize) -> usize,
) -> (Vec<ActionStatus>, Vec<usize>) {
    let now = Utc::now();
    let mut state = RunState::new("sim", plan, "sha", Map::new(), now);
    let mut scheduler = Scheduler::new(plan, &mut state, now, None);
    let mut in_flight: Vec<u32> = Vec::new();
    let mut starts = vec![0usize; plan.len()];
    loop {
        for step in scheduler.next(&mut state, now, true) {
            match step {
                Step::Start { idx, .. } => {
                    for &dep in plan.deps(idx) {
                        assert!(
                            state.action(dep).status.satisfies_dependents(),
                            "a{idx} started before its dependency a{dep} finished"
                        );
                    }
                    starts[idx as usize] += 1;
                    in_flight.push(idx);
                }
                other => panic!("unexpected step {other:?}"),
            }
        }
        // Inline actions also must not run early: check every finished action.
        for idx in 0..plan.len() as u32 {
            if state.action(idx).status == ActionStatus::Complete {
                for &dep in plan.deps(idx) {
                    assert!(state.action(dep).status.satisfies_dependents());
                }
            }
        }
        if in_flight.is_empty() {
            break;
        }
        let idx = in_flight.swap_remove(pick(in_flight.len()));
        let outcome = if failing.contains(&(idx as usize)) {
            Outcome::failed("scripted failure")
        } else {
            Outcome::complete()
        };
        scheduler.apply(&mut state, idx, outcome, now);
    }
    let flow = scheduler.next_step(&state, now);
    let statuses: Vec<ActionStatus> = state.actions().iter().map(|a| a.status).collect();
    let any_failed = statuses.contains(&ActionStatus::Failed);
    assert_eq!(
        flow,
        if any_failed {
            Next::Failure
        } else {
            Next::Success
        }
    );
    (statuses, starts)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn scheduler_respects_dependencies_and_order_independence(
        dag in dag_strategy(40),
        failing_seed in proptest::collection::vec(any::<bool>(), 40),
        order_a in proptest::collection::vec(any::<u32>(), 64),
        order_b in proptest::collection::vec(any::<u32>(), 64),
    ) {
        let plan = dag_plan(&dag);
        let failing: HashSet<usize> = (0..dag.actions.len())
            .filter(|&i| dag.actions[i].0 && failing_seed[i] && i % 3 == 0)
            .collect();
        let mut ia = 0;
        let (statuses_a, starts_a) = simulate(&plan, &failing, |n| { ia += 1; order_a[ia % order_a.len()] as usize % n });
        let mut ib = 0;
        let (statuses_b, starts_b) = simulate(&plan, &failing, |n| { ib += 1; order_b[ib % order_b.len()] as usize % n });
        // The result does not depend on the order executors finish in.
        prop_assert_eq!(&statuses_a, &statuses_b);
        prop_assert_eq!(&starts_a, &starts_b);
        // Expected outcome, computed independently: blocked = has a failing ancestor.
        let mut doomed = vec![false; plan.len()];
        for (i, (_, deps)) in dag.actions.iter().enumerate() {
            doomed[i] = deps.iter().any(|&d| doomed[d] || failing.contains(&d));
            let expected = if doomed[i] {
                ActionStatus::Blocked
            } else if failing.contains(&i) {
                ActionStatus::Failed
            } else {
                ActionStatus::Complete
            };
            prop_assert_eq!(statuses_a[i], expected, "a{}", i);
            // Async actions start exactly once unless blocked; inline ones never via a step.
            let expected_starts = usize::from(dag.actions[i].0 && !doomed[i]);
            prop_assert_eq!(starts_a[i], expected_starts, "starts of a{}", i);
        }
    }

    #[test]
    fn cycle_detection_matches_reachability(
        n in 1usize..12,
        edges in proptest::collection::vec((0usize..12, 0usize..12), 0..30),
    ) {
        let mut deps = vec![Vec::new(); n];
        for (a, b) in edges {
            if a < n && b < n && !deps[a].contains(&(b as u32)) {
                deps[a].push(b as u32);
            }
        }
        // Independent check: transitive closure; a cycle exists iff some node reaches itself.
        let mut reach = vec![vec![false; n]; n];
        for (a, list) in deps.iter().enumerate() {
            for &b in list {
                reach[a][b as usize] = true;
            }
        }
        for k in 0..n {
            for i in 0..n {
                for j in 0..n {
                    if reach[i][k] && reach[k][j] {
                        reach[i][j] = true;
                    }
                }
            }
        }
        let cyclic = (0..n).any(|i| reach[i][i]);
        match topological_order(&deps.iter().collect()) {
            Ok(order) => {
                prop_assert!(!cyclic);
                let pos: Vec<usize> = {
                    let mut pos = vec![0; n];
                    for (p, &i) in order.iter().enumerate() { pos[i as usize] = p; }
                    pos
                };
                for (a, list) in deps.iter().enumerate() {
                    for &b in list {
                        prop_assert!(pos[b as usize] < pos[a], "dependency after dependent");
                    }
                }
            }
            Err(cycles) => {
                prop_assert!(cyclic);
                prop_assert!(!cycles.found.is_empty());
                for cycle in cycles.found {
                    for (i, &node) in cycle.iter().enumerate() {
                        let next = cycle[(i + 1) % cycle.len()];
                        prop_assert!(deps[next as usize].contains(&node), "not a real cycle");
                    }
                }
            }
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn new_run(json: &str) -> Run<MemoryStore> {
    let (run, _, _) = Run::create(
        MemoryStore::new(),
        plan(json),
        "run-1",
        Map::new(),
        Utc::now(),
    )
    .await
    .expect("create");
    run
}

fn chain(n: usize) -> String {
    let actions: Vec<_> = (0..n)
        .map(|i| {
            if i == 0 {
                json!({"label": "n0", "type": "system.no_op"})
            } else {
                json!({"label": format!("n{i}"), "type": "system.no_op", "depends_on": [format!("n{}", i - 1)]})
            }
        })
        .collect();
    serde_json::Value::Array(actions).to_string()
}

#[test]
fn a_chain_of_instant_actions_finishes_in_one_tick() {
    rt().block_on(async {
        let run = new_run(&chain(50)).await;
        let exec = Arc::new(ScriptedExecutor::new());
        let report = tick(&run, &exec, &TickOptions::default(), &Silent)
            .await
            .expect("tick");
        assert_eq!(report.next, Next::Success);
        assert_eq!(report.state.invocations(), 1);
        let (state, version) = run.load().await.expect("load");
        assert_eq!(state.status(), RunStatus::Succeeded);
        assert_eq!(state.count(ActionStatus::Complete), 50);
        assert_eq!(version, "2", "one save per tick");
    });
}

#[test]
fn async_actions_return_wait_then_complete_on_a_later_tick() {
    rt().block_on(async {
        let run = new_run(
            r#"[{"label": "w", "type": "system.wait", "params": {"seconds": 1}},
                             {"label": "after", "type": "system.no_op", "depends_on": ["w"]}]"#,
        )
        .await;
        let exec = Arc::new(
            ScriptedExecutor::new()
                .on_start(
                    "w",
                    [Outcome::Running {
                        handle: json!({"id": 1}),
                        check_after: Duration::from_millis(30),
                    }],
                )
                .on_check(
                    "w",
                    [Outcome::Running {
                        handle: json!({"id": 1}),
                        check_after: Duration::from_millis(30),
                    }],
                ),
        );
        let opts = TickOptions::default();
        let first = tick(&run, &exec, &opts, &Silent).await.expect("tick 1");
        let Next::Wait(wait) = first.next else {
            panic!("expected wait, got {:?}", first.next)
        };
        assert!(wait <= Duration::from_millis(30), "{wait:?}");
        assert_eq!(
            baton_core::Payload::new("memory".into(), &first, &run.plan).wait_seconds(),
            1,
            "rounded up to whole seconds"
        );
        // Not due yet: nothing is checked.
        let early = tick(&run, &exec, &opts, &Silent).await.expect("tick 2");
        assert!(matches!(early.next, Next::Wait(_)));
        assert_eq!(exec.count("w", "check"), 0);
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(matches!(
            tick(&run, &exec, &opts, &Silent)
                .await
                .expect("tick 3")
                .next,
            Next::Wait(_)
        ));
        tokio::time::sleep(Duration::from_millis(40)).await;
        let done = tick(&run, &exec, &opts, &Silent).await.expect("tick 4");
        assert_eq!(done.next, Next::Success);
        assert_eq!(exec.count("w", "start"), 1);
        assert_eq!(exec.count("w", "check"), 2);
        let (state, _) = run.load().await.expect("load");
        assert_eq!(state.action(0).handle, None);
    });
}

#[test]
fn failure_blocks_descendants_and_independent_branches_finish() {
    rt().block_on(async {
        let run = new_run(
            r#"[
            {"label": "bad", "type": "system.fail", "params": {"message": "no"}},
            {"label": "child", "type": "system.no_op", "depends_on": ["bad"]},
            {"label": "grandchild", "type": "system.no_op", "depends_on": ["child"]},
            {"label": "other", "type": "system.wait", "params": {"seconds": 1}},
            {"label": "other-next", "type": "system.no_op", "depends_on": ["other"]}]"#,
        )
        .await;
        let exec = Arc::new(ScriptedExecutor::new());
        let report = tick(&run, &exec, &TickOptions::default(), &Silent)
            .await
            .expect("tick");
        assert_eq!(report.next, Next::Failure);
        let (state, _) = run.load().await.expect("load");
        let status = |l: &str| state.action(run.plan.find(l).expect("label")).status;
        assert_eq!(status("bad"), ActionStatus::Failed);
        assert_eq!(status("child"), ActionStatus::Blocked);
        assert_eq!(status("grandchild"), ActionStatus::Blocked);
        assert_eq!(state.action(2).blocked_by.as_deref(), Some("bad"));
        assert_eq!(status("other-next"), ActionStatus::Complete);
        assert_eq!(state.status(), RunStatus::Failed);
    });
}

#[test]
fn retryable_failures_are_retried_with_backoff() {
    rt().block_on(async {
        let run = new_run(
            r#"[{"label": "flaky", "type": "system.wait", "params": {"seconds": 1},
                              "retry": {"attempts": 3, "delay": "20ms", "backoff": 2}}]"#,
        )
        .await;
        let fail = || Outcome::Failed {
            error: "throttled".into(),
            retryable: true,
        };
        let exec = Arc::new(
            ScriptedExecutor::new().on_start("flaky", [fail(), fail(), Outcome::complete()]),
        );
        let opts = TickOptions::default();
        let mut waits = Vec::new();
        loop {
            let report = tick(&run, &exec, &opts, &Silent).await.expect("tick");
            match report.next {
                Next::Wait(d) => {
                    waits.push(d);
                    tokio::time::sleep(d + Duration::from_millis(2)).await;
                }
                Next::Success => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        let attempts: Vec<u32> = exec.calls().iter().map(|c| c.2).collect();
        assert_eq!(attempts, vec![1, 2, 3]);
        // Second delay is twice the first (backoff 2).
        assert_eq!(waits.len(), 2);
        assert!(waits[1] > waits[0] + Duration::from_millis(10), "{waits:?}");
    });
}

#[test]
fn non_retryable_failures_are_not_retried() {
    rt().block_on(async {
        let run = new_run(
            r#"[{"label": "x", "type": "system.wait", "params": {"seconds": 1},
                              "retry": {"attempts": 3, "delay": "1ms"}}]"#,
        )
        .await;
        let exec =
            Arc::new(ScriptedExecutor::new().on_start("x", [Outcome::failed("bad template")]));
        let report = tick(&run, &exec, &TickOptions::default(), &Silent)
            .await
            .expect("tick");
        assert_eq!(report.next, Next::Failure);
        assert_eq!(exec.count("x", "start"), 1);
    });
}

#[test]
fn timeouts_cancel_and_fail() {
    rt().block_on(async {
        let run = new_run(r#"[{"label": "slow", "type": "system.wait", "params": {"seconds": 60}, "timeout": "50ms"}]"#).await;
        let running = || Outcome::Running { handle: json!({}), check_after: Duration::from_secs(10) };
        let exec = Arc::new(ScriptedExecutor::new().on_start("slow", [running()]));
        let opts = TickOptions::default();
        let first = tick(&run, &exec, &opts, &Silent).await.expect("tick");
        // The wait is bounded by the timeout, not the 10 s poll interval.
        let Next::Wait(wait) = first.next else { panic!("{:?}", first.next) };
        assert!(wait <= Duration::from_millis(50), "{wait:?}");
        tokio::time::sleep(Duration::from_millis(60)).await;
        let report = tick(&run, &exec, &opts, &Silent).await.expect("tick");
        assert_eq!(report.next, Next::Failure);
        assert_eq!(exec.count("slow", "cancel"), 1);
        let (state, _) = run.load().await.expect("load");
        assert!(state.action(0).error.as_deref().unwrap_or_default().starts_with("timed out after 50ms"));
    });
}

#[test]
fn abort_cancels_running_work_and_marks_the_rest_cancelled() {
    rt().block_on(async {
        let run = new_run(
            r#"[{"label": "w", "type": "system.wait", "params": {"seconds": 60}},
                             {"label": "after", "type": "system.no_op", "depends_on": ["w"]}]"#,
        )
        .await;
        let running = || Outcome::Running {
            handle: json!({}),
            check_after: Duration::from_secs(60),
        };
        let exec = Arc::new(ScriptedExecutor::new().on_start("w", [running()]));
        let opts = TickOptions::default();
        tick(&run, &exec, &opts, &Silent).await.expect("tick");
        run.update(|_, state| state.request_abort())
            .await
            .expect("request abort");
        let report = tick(&run, &exec, &opts, &Silent).await.expect("tick");
        assert_eq!(report.next, Next::Failure);
        assert_eq!(report.status(), RunStatus::Aborted);
        assert_eq!(exec.count("w", "cancel"), 1);
        let (state, _) = run.load().await.expect("load");
        assert_eq!(state.action(0).status, ActionStatus::Cancelled);
        assert_eq!(state.action(1).status, ActionStatus::Cancelled);
    });
}

#[test]
fn budget_exhaustion_returns_execute() {
    rt().block_on(async {
        let run =
            new_run(r#"[{"label": "w", "type": "system.wait", "params": {"seconds": 1}}]"#).await;
        let exec = Arc::new(ScriptedExecutor::new());
        let opts = TickOptions {
            budget: Duration::ZERO,
            ..TickOptions::default()
        };
        let report = tick(&run, &exec, &opts, &Silent).await.expect("tick");
        assert_eq!(report.next, Next::Execute);
        assert_eq!(exec.calls().len(), 0);
        let report = tick(&run, &exec, &TickOptions::default(), &Silent)
            .await
            .expect("tick");
        assert_eq!(report.next, Next::Success);
    });
}

#[test]
fn max_parallel_limits_concurrent_async_actions() {
    rt().block_on(async {
        let actions: Vec<_> = (0..5).map(|i| json!({"label": format!("w{i}"), "type": "system.wait", "params": {"seconds": 1}})).collect();
        let run = new_run(&serde_json::Value::Array(actions).to_string()).await;
        let running = || Outcome::Running { handle: json!({}), check_after: Duration::from_millis(1) };
        let mut exec = ScriptedExecutor::new();
        for i in 0..5 {
            exec = exec.on_start(&format!("w{i}"), [running()]);
        }
        let exec = Arc::new(exec);
        let opts = TickOptions { max_parallel: Some(2), ..TickOptions::default() };
        tick(&run, &exec, &opts, &Silent).await.expect("tick");
        assert_eq!(exec.calls().len(), 2, "only two start while two run");
        let (state, _) = run.load().await.expect("load");
        assert_eq!(state.count(ActionStatus::Running), 2);
    });
}

#[test]
fn conditions_skip_and_dependents_still_run() {
    rt().block_on(async {
        let run = new_run(r#"[
            {"label": "cfg", "type": "system.set_variables", "params": {"variables": {"env": "dev"}}},
            {"label": "prod-only", "type": "system.no_op", "depends_on": ["cfg"], "condition": "outputs['cfg'].env == 'prod'"},
            {"label": "after", "type": "system.set_variables", "depends_on": ["prod-only", "cfg"],
             "params": {"variables": {"msg": "env={{ outputs['cfg'].env }}"}}}]"#)
        .await;
        let exec = Arc::new(ScriptedExecutor::new());
        assert_eq!(tick(&run, &exec, &TickOptions::default(), &Silent).await.expect("tick").next, Next::Success);
        let (state, _) = run.load().await.expect("load");
        assert_eq!(state.action(1).status, ActionStatus::Skipped);
        assert_eq!(state.action(2).outputs["msg"], "env=dev");
    });
}

#[test]
fn concurrent_saves_conflict_and_lose_nothing() {
    rt().block_on(async {
        let run = new_run(&chain(3)).await;
        let (mut state, version) = run.load().await.expect("load");
        run.save(&mut state, &version).await.expect("first writer");
        let err = run
            .save(&mut state, &version)
            .await
            .expect_err("second writer");
        assert!(err.is_conflict());
        assert_eq!(
            run.store
                .list_versions()
                .await
                .map(|v| v.len())
                .unwrap_or(0),
            2
        );
    });
}

#[test]
fn reexecute_failed_resets_failed_and_blocked_and_reuses_outputs() {
    rt().block_on(async {
        let run = new_run(r#"[
            {"label": "cfg", "type": "system.set_variables", "params": {"variables": {"v": "1"}}},
            {"label": "gate", "type": "system.wait", "params": {"seconds": 1}},
            {"label": "deploy", "type": "system.set_variables", "depends_on": ["cfg", "gate"], "params": {"variables": {"v": "{{ outputs['cfg'].v }}"}}}]"#)
        .await;
        let exec = Arc::new(ScriptedExecutor::new().on_start("gate", [Outcome::failed("missing approval")]));
        assert_eq!(tick(&run, &exec, &TickOptions::default(), &Silent).await.expect("tick").next, Next::Failure);
        let (state, _) = run.load().await.expect("load");
        let preview = preview_reexecute(&run.plan, &state, Reexecute::Failed);
        assert_eq!(preview.will_run, vec![1, 2]);
        assert_eq!(preview.reused, vec![0]);
        run.update(|plan, state| apply_reexecute(plan, state, Reexecute::Failed, Utc::now())).await.expect("reset");
        let report = tick(&run, &exec, &TickOptions::default(), &Silent).await.expect("tick");
        assert_eq!(report.next, Next::Success);
        let (state, _) = run.load().await.expect("load");
        assert_eq!(state.action(1).attempt, 2, "attempts keep counting: a fresh idempotency token");
        assert_eq!(state.action(0).attempt, 1, "cfg was not re-run");
    });
}

#[test]
fn reexecute_from_resets_descendants_only() {
    let plan = plan(
        r#"[{"label": "a", "type": "system.no_op"}, {"label": "b", "type": "system.no_op", "depends_on": ["a"]},
                      {"label": "c", "type": "system.no_op", "depends_on": ["b"]}, {"label": "d", "type": "system.no_op"}]"#,
    );
    let now = Utc::now();
    let mut state = RunState::new("r", &plan, "sha", Map::new(), now);
    let mut scheduler = Scheduler::new(&plan, &mut state, now, None);
    assert!(scheduler.next(&mut state, now, true).is_empty());
    assert_eq!(state.count(ActionStatus::Complete), 4);
    let preview = preview_reexecute(&plan, &state, Reexecute::From(1));
    assert_eq!(preview.will_run, vec![1, 2]);
    assert_eq!(preview.reused, vec![0]);
    let only = preview_reexecute(&plan, &state, Reexecute::Only(2));
    assert_eq!(only.will_run, vec![2]);
    assert_eq!(only.reused, vec![1]);
}

#[test]
fn state_round_trips_and_stays_small() {
    let plan = plan(&chain(1000));
    let now = Utc::now();
    let mut state = RunState::new("r", &plan, "sha", Map::new(), now);
    let mut scheduler = Scheduler::new(&plan, &mut state, now, None);
    scheduler.next(&mut state, now, true);
    let bytes = state.to_json(&plan);
    assert!(
        bytes.len() / 1000 < 200,
        "{} bytes per action",
        bytes.len() / 1000
    );
    let back = RunState::from_json(&bytes, &plan).expect("parse");
    assert!(
        back.to_json(&plan) == bytes,
        "the state changed in a round trip"
    );
    // Damage is refused, never silently reset.
    assert!(RunState::from_json(&bytes[..bytes.len() / 2], &plan)
        .expect_err("truncated")
        .to_string()
        .contains("truncated"));
    let foreign = plan_of(&["x"]);
    assert!(RunState::from_json(&bytes, &foreign)
        .expect_err("foreign")
        .to_string()
        .contains("not in the run's plan"));
}

fn plan_of(labels: &[&str]) -> Plan {
    let actions: Vec<_> = labels
        .iter()
        .map(|l| json!({"label": l, "type": "system.no_op"}))
        .collect();
    plan(&serde_json::Value::Array(actions).to_string())
}

async fn leased_run(json: &str) -> Run<MemoryStore> {
    let (run, _, _) = Run::create(
        MemoryStore::with_leases(),
        plan(json),
        "run-leased",
        Map::new(),
        Utc::now(),
    )
    .await
    .expect("create");
    run
}

/// An operator's re-execute saved while a tick is busy (the console or `baton retry --no-run`
/// on an S3 run that a Lambda tick is driving) wins the compare-and-swap; the tick merges it
/// instead of failing, and neither the tick's work nor the reset is lost.
#[test]
fn a_reexecute_racing_a_tick_is_merged_and_both_changes_survive() {
    rt().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("ok");
        let plan_json = json!([
            {"label": "flaky", "type": "system.command",
             "params": {"command": format!("test -f {}", marker.display()), "shell": true}},
            {"label": "after-flaky", "type": "system.no_op", "depends_on": ["flaky"]},
            {"label": "slow", "type": "system.command",
             "params": {"command": ["sleep", "0.8"]}},
        ]);
        let run = Arc::new(leased_run(&plan_json.to_string()).await);
        let exec = Arc::new(baton_core::StandardExecutor::new());
        let ticking = tokio::spawn({
            let (run, exec) = (Arc::clone(&run), Arc::clone(&exec));
            async move { tick(&run, &exec, &TickOptions::default(), &Silent).await }
        });
        // Wait until the tick has saved flaky's failure while slow still runs.
        let flaky = run.plan.find("flaky").expect("flaky");
        loop {
            let (state, _) = run.load().await.expect("load");
            if state.action(flaky).status == ActionStatus::Failed {
                assert_eq!(
                    state.action(run.plan.find("slow").expect("slow")).status,
                    ActionStatus::Running
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::write(&marker, "").expect("marker");
        run.update(|plan, state| apply_reexecute(plan, state, Reexecute::Failed, Utc::now()))
            .await
            .expect("operator re-execute");

        let report = ticking
            .await
            .expect("join")
            .expect("the tick merges, not fails");
        assert_eq!(
            report.next,
            Next::Execute,
            "a fresh tick picks up the reset"
        );
        let (state, _) = run.load().await.expect("load");
        assert_eq!(state.action(flaky).status, ActionStatus::Pending);
        assert_eq!(
            state.action(run.plan.find("slow").expect("slow")).status,
            ActionStatus::Complete,
            "the tick's work survives"
        );
        assert!(state.driver().is_none(), "the lease is released");

        let report = tick(&run, &exec, &TickOptions::default(), &Silent)
            .await
            .expect("tick 2");
        assert_eq!(report.next, Next::Success);
        let (state, _) = run.load().await.expect("load");
        assert_eq!(state.count(ActionStatus::Complete), 3);
        let slow_log: Vec<_> = state
            .action(run.plan.find("slow").expect("slow"))
            .log
            .iter()
            .map(|e| e.msg.clone())
            .collect();
        assert!(
            !slow_log.iter().any(|m| m.contains("reset")),
            "slow ran once: {slow_log:?}"
        );
        assert!(state
            .log()
            .iter()
            .any(|e| e.msg.starts_with("merged an operator's change")));
    });
}

/// Two drivers on a store without locks (S3): the one that claims the lease works, the other
/// is refused while the lease holds; a dead driver's lease lapses or is taken over explicitly.
#[test]
fn leases_let_exactly_one_driver_work() {
    rt().block_on(async {
        let run = Arc::new(
            leased_run(r#"[{"label": "slow", "type": "system.command", "params": {"command": ["sleep", "0.5"]}}]"#)
                .await,
        );
        let exec = Arc::new(baton_core::StandardExecutor::new());
        let first = tokio::spawn({
            let (run, exec) = (Arc::clone(&run), Arc::clone(&exec));
            async move { tick(&run, &exec, &TickOptions::default(), &Silent).await }
        });
        loop {
            let (state, _) = run.load().await.expect("load");
            if state.driver().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let err = tick(&run, &exec, &TickOptions::default(), &Silent)
            .await
            .expect_err("the second driver is refused");
        assert!(
            matches!(err, baton_core::RunError::Store(baton_core::StoreError::Busy { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("--take-over"), "{err}");
        let report = first.await.expect("join").expect("the first driver finishes");
        assert_eq!(report.next, Next::Success);
        let (state, _) = run.load().await.expect("load");
        assert_eq!(state.count(ActionStatus::Complete), 1);
        assert!(state.driver().is_none());

        // A crashed driver's lease: refused until taken over, then the run proceeds.
        let crashed = leased_run(r#"[{"label": "a", "type": "system.no_op"}]"#).await;
        let (mut state, version) = crashed.load().await.expect("load");
        edit(&mut state).driver(Some(baton_core::state::Lease {
            holder: "baton pid 1 on elsewhere (dead)".into(),
            until: Utc::now() + chrono::Duration::minutes(10),
        }));
        crashed.save(&mut state, &version).await.expect("save");
        let crashed = Arc::new(crashed);
        let err = tick(&crashed, &exec, &TickOptions::default(), &Silent)
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("pid 1 on elsewhere"), "{err}");
        let take_over = TickOptions {
            take_over: true,
            ..TickOptions::default()
        };
        let report = tick(&crashed, &exec, &take_over, &Silent)
            .await
            .expect("taken over");
        assert_eq!(report.next, Next::Success);
        let (state, _) = crashed.load().await.expect("load");
        assert!(state
            .log()
            .iter()
            .any(|e| e.msg.contains("taking the run over from baton pid 1")));

        // A lapsed lease needs no take-over.
        let lapsed = leased_run(r#"[{"label": "a", "type": "system.no_op"}]"#).await;
        let (mut state, version) = lapsed.load().await.expect("load");
        edit(&mut state).driver(Some(baton_core::state::Lease {
            holder: "baton pid 1 on elsewhere (dead)".into(),
            until: Utc::now() - chrono::Duration::seconds(1),
        }));
        lapsed.save(&mut state, &version).await.expect("save");
        let report = tick(&Arc::new(lapsed), &exec, &TickOptions::default(), &Silent)
            .await
            .expect("lapsed lease");
        assert_eq!(report.next, Next::Success);
    });
}

/// A warm Lambda re-opens the same run every tick: the parsed plan is reused, and a different
/// plan replaces it.
#[test]
fn the_plan_cache_reuses_a_parsed_plan() {
    rt().block_on(async {
        let first = new_run(&chain(5)).await;
        let other = new_run(&chain(7)).await;
        let cache = baton_core::run::PlanCache::default();
        let a = Run::open_cached(first.store.clone(), &cache)
            .await
            .expect("open");
        let b = Run::open_cached(first.store.clone(), &cache)
            .await
            .expect("open");
        assert!(Arc::ptr_eq(&a.plan, &b.plan), "parsed once");
        let c = Run::open_cached(other.store.clone(), &cache)
            .await
            .expect("open");
        assert_eq!(c.plan.len(), 7);
        let d = Run::open_cached(first.store.clone(), &cache)
            .await
            .expect("open");
        assert_eq!(d.plan.len(), 5);
        assert!(!Arc::ptr_eq(&a.plan, &d.plan), "evicted by the other plan");
    });
}

/// Outputs nested near serde_json's depth limit would be saved and then never read back (they
/// sit 4 levels deep in the state document): the action fails instead, and the run stays
/// readable.
#[test]
fn outputs_nested_too_deeply_fail_the_action_and_the_state_stays_readable() {
    rt().block_on(async {
        let run = new_run(
            r#"[{"label": "deep", "type": "system.command", "params": {"command": ["true"]}},
                {"label": "ok", "type": "system.no_op"}]"#,
        )
        .await;
        let mut deep = json!("leaf");
        for _ in 0..125 {
            deep = json!([deep]);
        }
        let outputs = json!({"deep": deep}).as_object().cloned().expect("object");
        let exec =
            Arc::new(ScriptedExecutor::new().on_start("deep", [Outcome::Complete { outputs }]));
        let report = tick(&run, &exec, &TickOptions::default(), &Silent)
            .await
            .expect("tick");
        assert_eq!(report.next, Next::Failure);
        let (state, _) = run.load().await.expect("the state reads back");
        let deep = state.action(run.plan.find("deep").expect("deep"));
        assert_eq!(deep.status, ActionStatus::Failed);
        assert!(
            deep.error
                .as_deref()
                .is_some_and(|e| e.contains("nest more than 100 levels")),
            "{:?}",
            deep.error
        );
        assert_eq!(
            state.action(run.plan.find("ok").expect("ok")).status,
            ActionStatus::Complete
        );
    });
}

// ---- live log streams ----

/// A command printing a line (holding a secret) every 200 ms for three seconds.
fn chatty_plan(idempotent: bool) -> String {
    json!([{
        "label": "build/api:v1.2",
        "type": "system.command",
        "params": {
            "command": "for i in $(seq 1 15); do echo \"line $i token $API_TOKEN\"; sleep 0.2; done",
            "shell": true,
            "env": {"API_TOKEN": "hunter2-sekret"},
            "idempotent": idempotent,
        },
    }])
    .to_string()
}

/// What a watcher in another process saw while the tick ran.
struct Watched {
    /// How long after it was printed the watcher read each line, while the command ran.
    delays: Vec<Duration>,
    lines: Vec<String>,
    /// When the state first said the action was running, relative to the tick's start.
    running_seen: Option<Duration>,
}

/// Ticks `run` while a watcher that shares only the store follows the action's stream, as
/// `baton logs --follow` does: it learns from the stored state which attempt runs.
async fn tick_and_watch(run: &Run<MemoryStore>) -> Watched {
    use baton_core::log_stream::{read, LogStream};
    let store = run.store.clone();
    let exec = Arc::new(baton_core::StandardExecutor::new());
    let driver = {
        let run = Run::open(run.store.clone()).await.expect("open");
        tokio::spawn(async move {
            tick(&run, &exec, &TickOptions::default(), &Silent)
                .await
                .expect("tick")
        })
    };
    let started = std::time::Instant::now();
    let watcher = Run::open(store.clone()).await.expect("open");
    let mut watched = Watched {
        delays: Vec::new(),
        lines: Vec::new(),
        running_seen: None,
    };
    let mut position = 0;
    while !driver.is_finished() {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (state, _) = watcher.load().await.expect("load");
        let action = state.action(0);
        if action.status != ActionStatus::Running {
            continue;
        }
        watched.running_seen.get_or_insert(started.elapsed());
        let stream = LogStream::new("build/api:v1.2", action.attempt);
        let (entries, next) = read(&store, &stream, position, usize::MAX)
            .await
            .expect("read");
        position = next;
        for entry in entries {
            let delay = (Utc::now() - entry.t).to_std().unwrap_or_default();
            watched.delays.push(delay);
            watched.lines.push(entry.msg);
        }
    }
    driver.await.expect("driver");
    watched
}

#[test]
fn a_running_commands_lines_reach_its_stream_within_seconds_without_a_save_per_line() {
    rt().block_on(async {
        let run = new_run(&chatty_plan(false)).await;
        let watched = tick_and_watch(&run).await;
        assert!(
            watched.lines.len() >= 5,
            "a watcher saw {} lines while the command ran",
            watched.lines.len()
        );
        assert!(
            watched.delays.iter().all(|d| *d < Duration::from_secs(2)),
            "{:?}",
            watched.delays
        );
        assert!(watched.lines[0].starts_with("line 1 token "));
        // Masked before it was written anywhere.
        assert!(
            watched.lines.iter().all(|l| !l.contains("hunter2")),
            "{:?}",
            watched.lines
        );
        let (state, _) = run.load().await.expect("load");
        assert_eq!(state.action(0).status, ActionStatus::Complete);
        // The state's ring is the record of the finished attempt: the same 15 lines.
        let ring: Vec<&str> = state.action(0).log.iter().map(|e| e.msg.as_str()).collect();
        assert_eq!(ring.len(), 15, "{ring:?}");
        // The stream holds every line too, in order, and no secret.
        let stream = baton_core::log_stream::LogStream::new("build/api:v1.2", 1);
        let (bytes, _) = run
            .store
            .read_log(&stream, 0, usize::MAX)
            .await
            .expect("read");
        let streamed = baton_core::log_stream::decode(&bytes);
        assert_eq!(
            streamed.iter().map(|e| e.msg.as_str()).collect::<Vec<_>>(),
            ring
        );
        assert!(!String::from_utf8_lossy(&bytes).contains("hunter2"));
        // Created, the intent, the process record, the result, the tick's end: no version per
        // line.
        let versions = run.store.list_versions().await.expect("versions").len();
        assert!(versions <= 5, "{versions} state versions for 15 lines");
    });
}

#[test]
fn a_replay_safe_command_is_saved_running_before_its_stream_is_written() {
    rt().block_on(async {
        // An idempotent command starts without an intent save: the first append saves the
        // state once, so watchers know which stream to follow.
        let run = new_run(&chatty_plan(true)).await;
        let watched = tick_and_watch(&run).await;
        let seen = watched
            .running_seen
            .expect("the stored state showed it running");
        assert!(seen < Duration::from_millis(2500), "{seen:?}");
        assert!(watched.lines.len() >= 5, "{:?}", watched.lines);
        assert!(watched.delays.iter().all(|d| *d < Duration::from_secs(2)));
        let versions = run.store.list_versions().await.expect("versions").len();
        assert!(versions <= 4, "{versions} state versions for 15 lines");
    });
}

#[test]
fn a_quick_command_writes_no_stream() {
    rt().block_on(async {
        let run = new_run(r#"[{"label": "quick", "type": "system.command", "params": {"command": ["echo", "hello"]}}]"#).await;
        let exec = Arc::new(baton_core::StandardExecutor::new());
        tick(&run, &exec, &TickOptions::default(), &Silent).await.expect("tick");
        let (state, _) = run.load().await.expect("load");
        assert_eq!(state.action(0).log.back().map(|e| e.msg.as_str()), Some("hello"));
        let stream = baton_core::log_stream::LogStream::new("quick", 1);
        let (bytes, _) = run.store.read_log(&stream, 0, usize::MAX).await.expect("read");
        assert!(bytes.is_empty(), "its lines reach watchers with the state, sooner than a stream");
    });
}

/// What a stopped command becomes (the executor reports `Outcome::Stopped`): after a signal an
/// idempotent one is pending again as the same attempt (and, nothing stopping this tick, runs
/// again at once) and any other fails with an unknown outcome, blocking its dependents; after
/// an abort it is cancelled. Each keeps a stop record, and the run's stop report lists it.
#[test]
fn a_stopped_command_is_replayed_failed_or_cancelled_by_what_stopped_it() {
    use baton_core::state::{StopCause, StopFate};
    rt().block_on(async {
        let run = new_run(
            r#"[{"label": "again", "type": "system.command", "params": {"command": ["true"], "idempotent": true}},
                {"label": "once", "type": "system.command", "params": {"command": ["true"]}},
                {"label": "after", "type": "system.no_op", "depends_on": ["once"]},
                {"label": "aborted", "type": "system.command", "params": {"command": ["true"]}}]"#,
        )
        .await;
        let stopped = |cause| Outcome::Stopped {
            cause,
            detail: "SIGTERM to its process group; it ended after 1ms".into(),
        };
        let exec = Arc::new(
            ScriptedExecutor::new()
                .on_start("again", [stopped(StopCause::Terminate)])
                .on_start("once", [stopped(StopCause::Terminate)])
                .on_start("aborted", [stopped(StopCause::Abort)]),
        );
        let report = tick(&run, &exec, &TickOptions::default(), &Silent)
            .await
            .expect("tick");
        let state = &report.state;
        let find = |label| state.action(run.plan.find(label).expect("label"));
        // Nothing stopped this tick itself, so the replay runs at once, as the same attempt.
        assert_eq!(find("again").status, ActionStatus::Complete);
        let starts: Vec<_> = exec
            .calls()
            .into_iter()
            .filter(|(label, kind, _)| label == "again" && *kind == "start")
            .map(|(_, _, attempt)| attempt)
            .collect();
        assert_eq!(starts, vec![1, 1], "a replay keeps its attempt");
        assert!(find("again").log.iter().any(|e| e
            .msg
            .contains("was stopped by baton on SIGTERM (SIGTERM to its process group")));
        let once = find("once");
        assert_eq!(once.status, ActionStatus::Failed);
        assert!(
            once.error.as_deref().unwrap_or_default().starts_with(
                "stopped by baton (SIGTERM) before it finished; outcome unknown"
            ),
            "{:?}",
            once.error
        );
        assert_eq!(find("after").status, ActionStatus::Blocked);
        let aborted = find("aborted");
        assert_eq!(aborted.status, ActionStatus::Cancelled);
        assert_eq!(
            aborted.error.as_deref(),
            Some("aborted by an operator (stopped: SIGTERM to its process group; it ended after 1ms)")
        );
        let once_record = find("once").stop.as_deref().expect("stop record");
        assert_eq!(
            (once_record.cause, once_record.fate),
            (StopCause::Terminate, StopFate::Stopped)
        );
        let report = state.stop_report();
        assert_eq!(report.stopped.len(), 2);
        assert!(report.left_running.is_empty() && report.not_started.is_empty());
        // The stop records survive the state document.
        let (saved, _) = run.load().await.expect("load");
        for (saved, held) in saved.actions().iter().zip(state.actions()) {
            assert_eq!((saved.status, &saved.stop), (held.status, &held.stop));
        }
    });
}

/// Outputs are refused when they are produced if the state could not hold them: over 1 MiB for
/// one action, over 8 MiB for the run, or nested too deeply. The action fails saying so, and
/// every version written stays readable.
#[test]
fn outputs_too_big_for_the_state_fail_their_action() {
    use baton_core::scheduler::{MAX_ACTION_OUTPUTS, MAX_RUN_OUTPUTS};
    let big = |bytes: usize| {
        let mut outputs = Map::new();
        outputs.insert("blob".into(), serde_json::Value::String("x".repeat(bytes)));
        Outcome::Complete { outputs }
    };
    rt().block_on(async {
        // Nine actions of 0.9 MiB: the first eight fit the run's 8 MiB, the ninth does not.
        let labels: Vec<String> = (0..9).map(|i| format!("a{i}")).collect();
        let plan_json = serde_json::to_string(
            &labels
                .iter()
                .map(|l| json!({"label": l, "type": "system.command", "params": {"command": ["true"], "idempotent": true}}))
                .chain([json!({"label": "huge", "type": "system.command", "params": {"command": ["true"]}})])
                .collect::<Vec<_>>(),
        )
        .expect("json");
        let run = new_run(&plan_json).await;
        let mut exec = ScriptedExecutor::new().on_start("huge", [big(MAX_ACTION_OUTPUTS + 1)]);
        for l in &labels {
            exec = exec.on_start(l, [big(MAX_RUN_OUTPUTS / 9 + 4096)]);
        }
        let exec = Arc::new(exec);
        let report = tick(&run, &exec, &TickOptions::default(), &Silent)
            .await
            .expect("tick");
        let state = &report.state;
        let huge = state.action(run.plan.find("huge").expect("huge"));
        assert_eq!(huge.status, ActionStatus::Failed);
        assert!(
            huge.error.as_deref().unwrap_or_default().contains("over the 1048576-byte limit for one action"),
            "{huge:?}"
        );
        let failed: Vec<_> = labels
            .iter()
            .filter(|l| state.action(run.plan.find(l).expect("label")).status == ActionStatus::Failed)
            .collect();
        assert_eq!(failed.len(), 1, "exactly one small action passes the run's limit: {failed:?}");
        let error = state
            .action(run.plan.find(failed[0]).expect("label"))
            .error
            .clone()
            .unwrap_or_default();
        assert!(error.contains("limit for all actions together"), "{error}");
        // Every version stays readable, and the newest stays within what the run allows.
        for info in run.store.list_versions().await.expect("versions") {
            run.load_version(&info.version).await.expect("readable");
            assert!(info.size < (MAX_RUN_OUTPUTS + MAX_ACTION_OUTPUTS) as u64, "{info:?}");
        }
    });
}

/// States no run can reach are refused on load, naming what contradicts what; counters at
/// their maximum are refused instead of wrapping.
#[test]
fn impossible_states_are_refused_and_counters_never_wrap() {
    let plan = plan(
        r#"[{"label": "a", "type": "system.no_op"},
            {"label": "b", "type": "system.no_op", "depends_on": ["a"]}]"#,
    );
    let doc = |state: &RunState| state.to_json(&plan);
    let fresh = || RunState::new("r", &plan, "sha", Map::new(), Utc::now());
    // Succeeded with an action pending: `resume` would exit 0 and run nothing.
    let mut state = fresh();
    edit(&mut state).status(RunStatus::Succeeded);
    let err = RunState::from_json(&doc(&state), &plan).expect_err("succeeded with pending");
    assert!(
        err.to_string()
            .contains("the run is succeeded but action \"a\" is pending"),
        "{err}"
    );
    // Failed with an action running.
    let mut state = fresh();
    edit(&mut state)
        .status(RunStatus::Failed)
        .action_mut(0)
        .status = ActionStatus::Running;
    assert!(RunState::from_json(&doc(&state), &plan).is_err());
    // An action that ran before its dependency ever did.
    let mut state = fresh();
    let b = edit(&mut state).action_mut(1);
    b.status = ActionStatus::Complete;
    b.attempt = 1;
    let err = RunState::from_json(&doc(&state), &plan).expect_err("b before a");
    assert!(
        err.to_string()
            .contains("\"b\" ran (attempt 1) before its dependency \"a\""),
        "{err}"
    );

    rt().block_on(async {
        // The tick count at its maximum: the tick refuses rather than wrap to 0.
        let run = new_run(r#"[{"label": "a", "type": "system.no_op"}]"#).await;
        let (mut state, version) = run.load().await.expect("load");
        edit(&mut state).invocations(u64::MAX);
        run.save(&mut state, &version).await.expect("save");
        let exec = Arc::new(ScriptedExecutor::new());
        let err = tick(&run, &exec, &TickOptions::default(), &Silent)
            .await
            .expect_err("refused");
        assert!(
            err.to_string().contains("tick count is at its maximum"),
            "{err}"
        );
    });
    rt().block_on(async {
        // A local version file named u64::MAX: the next save refuses instead of writing 0.
        let dir = tempfile::tempdir().expect("tempdir");
        let store = baton_core::LocalStore::new(dir.path().join("run"));
        let plan = plan_of(&["a"]);
        let (run, mut state, _) = Run::create(store, plan, "run", Map::new(), Utc::now())
            .await
            .expect("create");
        let state_dir = dir.path().join("run/state");
        std::fs::rename(
            state_dir.join("00000001.json"),
            state_dir.join(format!("{}.json", u64::MAX)),
        )
        .expect("rename");
        let err = run
            .save(&mut state, &u64::MAX.to_string())
            .await
            .expect_err("no wrap");
        assert!(err.to_string().contains("last version number"), "{err}");
        assert_eq!(std::fs::read_dir(&state_dir).expect("dir").count(), 1);
    });
}
