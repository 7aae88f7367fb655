//! Engine benchmarks: plan parsing and validation, the sans-IO scheduler,
//! state serialization, and whole ticks on a local store.
//!
//! Run with `cargo bench -p baton-core`; `scripts/bench` measures whole `baton run` processes.
//! Plans are generated here in the shapes of `scripts/gen_plan.py` (no-op actions labelled
//! `n000123`): `independent`, `chain`, and `layered` (layers of min(ceil(sqrt(N)), 100) actions,
//! each depending on 2 pseudo-randomly chosen actions of the layer before).

use std::sync::Arc;
use std::time::Duration;

use baton_core::driver::{tick, Silent, TickOptions};
use baton_core::{
    load_str, Format, LocalStore, Plan, Run, RunState, RunStatus, Scheduler, StandardExecutor,
};
use chrono::{TimeZone, Utc};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use serde_json::Map;

#[derive(Clone, Copy)]
enum Shape {
    Independent,
    Chain,
    Layered,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Independent => "independent",
            Shape::Chain => "chain",
            Shape::Layered => "layered",
        }
    }
}

/// A deterministic generator (SplitMix64), so every run benchmarks the same plan.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The action file (JSON) of `n` no-ops in `shape`.
fn plan_text(shape: Shape, n: usize) -> String {
    let label = |i: usize| format!("n{i:06}");
    let width = ((n as f64).sqrt().ceil() as usize).clamp(1, 100);
    let mut rng = SplitMix(20_261_128);
    let mut out = String::from("[\n");
    for i in 0..n {
        let deps: Vec<usize> = match shape {
            Shape::Independent => Vec::new(),
            Shape::Chain if i > 0 => vec![i - 1],
            Shape::Chain => Vec::new(),
            Shape::Layered if i >= width => {
                let start = (i / width - 1) * width;
                let first = rng.below(width);
                let mut second = rng.below(width.max(2) - 1);
                if second >= first {
                    second += 1;
                }
                let mut picks: Vec<usize> = [first, second]
                    .into_iter()
                    .filter(|&p| p < width)
                    .map(|p| start + p)
                    .collect();
                picks.sort_unstable();
                picks
            }
            Shape::Layered => Vec::new(),
        };
        out.push_str(&format!(
            "{{\"label\":\"{}\",\"type\":\"system.no_op\"",
            label(i)
        ));
        if !deps.is_empty() {
            let names: Vec<String> = deps.iter().map(|&d| format!("\"{}\"", label(d))).collect();
            out.push_str(&format!(",\"depends_on\":[{}]", names.join(",")));
        }
        out.push_str(if i + 1 < n { "},\n" } else { "}\n" });
    }
    out.push(']');
    out
}

fn load(shape: Shape, n: usize) -> Plan {
    let name = format!("{}-{n}.json", shape.name());
    load_str(&name, &plan_text(shape, n), Format::Json)
        .expect("generated plans are valid")
        .plan
}

fn now() -> baton_core::state::Timestamp {
    Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0)
        .single()
        .expect("a valid time")
}

fn fresh_state(plan: &Plan) -> RunState {
    RunState::new("bench", plan, "0".repeat(64).as_str(), Map::new(), now())
}

/// Runs the scheduler until it has nothing left to do (no-ops all settle inline).
fn schedule_to_completion(plan: &Plan, mut state: RunState) -> RunState {
    let now = now();
    let mut scheduler = Scheduler::new(plan, &mut state, now, None);
    loop {
        let steps = scheduler.next(&mut state, now, true);
        assert!(steps.is_empty(), "no-ops never leave the scheduler");
        if scheduler.next_step(&state, now) != baton_core::Next::Execute {
            break;
        }
    }
    state
}

fn parse_and_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("load_str");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for n in [1_000, 10_000] {
        let text = plan_text(Shape::Layered, n);
        group.bench_with_input(BenchmarkId::new("layered", n), &text, |b, text| {
            b.iter(|| load_str("plan.json", black_box(text), Format::Json).expect("valid"));
        });
    }
    group.finish();
}

fn scheduler(c: &mut Criterion) {
    let mut group = c.benchmark_group("scheduler");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (shape, n) in [
        (Shape::Independent, 1_000),
        (Shape::Chain, 50),
        (Shape::Layered, 10_000),
    ] {
        let plan = load(shape, n);
        group.bench_with_input(BenchmarkId::new(shape.name(), n), &plan, |b, plan| {
            b.iter_batched(
                || fresh_state(plan),
                |state| schedule_to_completion(plan, state),
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn state_json(c: &mut Criterion) {
    let mut group = c.benchmark_group("state");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let plan = load(Shape::Layered, 10_000);
    let state = schedule_to_completion(&plan, fresh_state(&plan));
    assert_eq!(
        state.count(baton_core::ActionStatus::Complete),
        plan.len(),
        "the run finished"
    );
    let bytes = state.to_json(&plan);
    group.bench_function(BenchmarkId::new("to_json", "layered/10000"), |b| {
        b.iter(|| black_box(&state).to_json(&plan));
    });
    group.bench_function(BenchmarkId::new("from_json", "layered/10000"), |b| {
        b.iter(|| RunState::from_json(black_box(&bytes), &plan).expect("parses"));
    });
    group.finish();
}

/// A created run in its own temporary folder (removed, untimed, when dropped).
struct FreshRun {
    run: Run<LocalStore>,
    _dir: tempfile::TempDir,
}

fn tick_local_store(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick_local");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let executor = Arc::new(StandardExecutor::new());
    let options = TickOptions::default();
    for (shape, n) in [(Shape::Chain, 50), (Shape::Layered, 10_000)] {
        let plan = load(shape, n);
        let create = || {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let store = LocalStore::in_root(dir.path(), "bench");
            let (run, _, _) = runtime
                .block_on(Run::create(store, plan.clone(), "bench", Map::new(), now()))
                .expect("run created");
            FreshRun { run, _dir: dir }
        };
        group.bench_function(BenchmarkId::new(shape.name(), n), |b| {
            b.iter_batched(
                create,
                |fresh| {
                    let report = runtime
                        .block_on(tick(&fresh.run, &executor, &options, &Silent))
                        .expect("tick");
                    assert_eq!(report.status(), RunStatus::Succeeded);
                    fresh
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

/// Opening a run as a Lambda tick does: cold (parse and validate `actions.json`) and warm
/// (the plan cache recognises the bytes).
fn open_run(c: &mut Criterion) {
    let mut group = c.benchmark_group("open_run");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = || LocalStore::in_root(dir.path(), "bench");
    runtime
        .block_on(Run::create(
            store(),
            load(Shape::Layered, 10_000),
            "bench",
            Map::new(),
            now(),
        ))
        .expect("run created");
    group.bench_function("cold/10000", |b| {
        b.iter(|| runtime.block_on(Run::open(store())).expect("open"))
    });
    let cache = baton_core::run::PlanCache::default();
    group.bench_function("warm/10000", |b| {
        b.iter(|| {
            runtime
                .block_on(Run::open_cached(store(), &cache))
                .expect("open")
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    parse_and_validate,
    scheduler,
    state_json,
    tick_local_store,
    open_run
);
criterion_main!(benches);
