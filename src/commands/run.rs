//! `baton run`, `baton resume` and `baton tick`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use baton_core::driver::{Observer, Silent, TickOptions};
use baton_core::run::new_run_id;
use baton_core::state::StopCause;
use baton_core::{Run, RunState, RunStatus, RunStore, StoreError};
use chrono::Utc;
use serde_json::{Map, Value};

use crate::args::{DriveArgs, RunArgs, StoreArgs};
use crate::locator::{self, AnyStore};
use crate::ops;
use crate::output::{format_elapsed, plural, PlainPrinter};
use crate::remote::{self, RemoteRun};
use crate::templates::TemplateReach;
use crate::tui::ConsoleOptions;
use crate::{CommandResult, Failure};

pub async fn run(args: RunArgs) -> CommandResult {
    // Everything the user typed is checked before the run exists.
    tick_options(&args.drive)?;
    let new_run = NewRun {
        file: &args.file,
        vars: &args.vars,
        run_id: args.run_id.clone(),
        hooks: args.hooks.as_deref(),
        reach: args.templates.reach(),
    };
    let (run, state, version) = create(new_run, &args.store).await?;
    drive_from(run, Some((state, version)), &args.drive).await
}

/// What `run` and `submit` create a run from, as typed.
pub struct NewRun<'a> {
    pub file: &'a std::path::Path,
    pub vars: &'a [String],
    pub run_id: Option<String>,
    /// `--hooks`: where status hooks are published.
    pub hooks: Option<&'a str>,
    pub reach: TemplateReach,
}

/// Validates the file and the variables, then creates the run (uploading or inlining
/// `template_file`s). Nothing is written if anything is wrong.
pub async fn create(
    new_run: NewRun<'_>,
    store: &StoreArgs,
) -> Result<(Run<AnyStore>, RunState, String), Failure> {
    let NewRun {
        file,
        vars: var_args,
        run_id,
        hooks,
        reach,
    } = new_run;
    let hook_sink = hooks
        .map(baton_core::hooks::HookSink::parse)
        .transpose()
        .map_err(|why| Failure::Invalid(format!("--hooks {why}")))?;
    let loaded = super::load_plan(file)?;
    let vars = parse_vars(var_args)?;
    let now = Utc::now();
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("run");
    let run_id = match run_id {
        Some(id) => {
            let valid = !id.is_empty()
                && id.len() <= 64
                && !id.starts_with('.')
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid {
                return Err(Failure::Invalid(format!(
                    "--run-id {id:?}: use up to 64 letters, digits, '-', '_' and '.'"
                )));
            }
            id
        }
        None => new_run_id(stem, now),
    };
    check_vars(&loaded.plan, &vars)?;
    let store = locator::for_new_run(store, &run_id).await?;
    refuse_existing(&store).await?;
    let mut plan = loaded.plan;
    let base_dir = file.parent().unwrap_or(std::path::Path::new("."));
    crate::templates::resolve(&mut plan, base_dir, &store, reach).await?;
    Ok(Run::create_with_hooks(store, plan, &run_id, vars, now, hook_sink).await?)
}

/// A run id already taken in S3 is refused before its template files are uploaded (they would
/// land beside the existing run's). Creating the run refuses it again, atomically.
async fn refuse_existing(store: &AnyStore) -> Result<(), Failure> {
    if !store.is_remote() {
        return Ok(());
    }
    match store.head().await {
        Ok(_) => Err(StoreError::AlreadyExists {
            locator: store.locator(),
        }
        .into()),
        Err(StoreError::NotFound { .. }) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

/// `baton submit`: check the state machine, create the run in S3 and start a Step Functions
/// execution to drive it. Nothing is written when the state machine cannot be found.
pub async fn submit(new_run: NewRun<'_>, store: &StoreArgs, state_machine: &str) -> CommandResult {
    if !store.store.starts_with("s3://") {
        return Err(Failure::Invalid(format!(
            "--store {}: a submitted run lives in S3 where the runner can reach it; give --store s3://bucket/prefix",
            store.store
        )));
    }
    let sfn = remote::client().await;
    let state_machine = remote::check_state_machine(&sfn, state_machine).await?;
    if let Some(commands) = remote::runner_commands(&sfn, &state_machine).await {
        // A file that does not load is reported by `create`, once.
        if let Ok(loaded) = baton_core::load_path(new_run.file) {
            remote::refuse_commands_it_cannot_run(&loaded.plan, &commands, &state_machine)?;
        }
    }
    let (run, _, _) = create(new_run, store).await?;
    let locator = run.store.locator();
    let arn = state_machine.clone();
    let ((), state, _) = run
        .update(|_, state| state.set_state_machine(Some(arn.clone())))
        .await?;
    let remote = RemoteRun::new(sfn, &state_machine, &locator, state.run_id());
    let started = remote.start().await.map_err(|e| {
        Failure::Infra(format!(
            "{e}\nrun {locator} is created, but no execution drives it: start one with `baton resume {locator} --remote`"
        ))
    })?;
    crate::out!("run {locator} submitted");
    crate::out!("execution {}", started.execution_arn);
    crate::out!("watch it: baton watch {locator}");
    Ok(())
}

/// `baton resume RUN --remote`: a new Step Functions execution drives the run.
pub async fn resume_remotely(
    run: &str,
    store: &StoreArgs,
    state_machine: Option<&str>,
) -> CommandResult {
    let run = locator::open(run, store).await?;
    let (state, _) = run.load().await?;
    if state.status().is_finished() {
        eprintln!(
            "run {} has already finished ({}); re-execute actions with `baton retry {} --failed` (or --from/--only)",
            state.run_id(),
            state.status(),
            run.store.locator()
        );
        return Err(Failure::RunFailed);
    }
    let started = ops::resume_remotely(&run, state_machine).await?;
    crate::out!("resumed in a new execution: {}", started.execution_arn);
    crate::out!("watch it: baton watch {}", run.store.locator());
    Ok(())
}

pub async fn resume(run: &str, store: &StoreArgs, drive_args: &DriveArgs) -> CommandResult {
    let run = locator::open(run, store).await?;
    drive(run, drive_args).await
}

/// Drives a run to its end in the console (on a terminal), with plain progress, or with a JSON
/// summary; exit 1 unless it succeeded.
pub async fn drive(run: Run<AnyStore>, args: &DriveArgs) -> CommandResult {
    drive_from(run, None, args).await
}

/// [`drive`], for a caller that already holds the run's newest state and version.
async fn drive_from(
    run: Run<AnyStore>,
    known: Option<(RunState, String)>,
    args: &DriveArgs,
) -> CommandResult {
    let started = Instant::now();
    let options = tick_options(args)?;
    if crate::tui::wanted(args.plain, args.json) {
        return drive_in_console(run, known, options, args.read_only, started).await;
    }
    // The driver's first tick reads the state itself; a second copy held meanwhile is 16 MB
    // at 100k actions.
    drop(known);
    let printer = PlainPrinter::new(&run.plan);
    let observer: &dyn Observer = if args.json { &Silent } else { &printer };
    // Refuse a run another process drives before announcing it (the tick would refuse it
    // too, after the header had promised a run).
    if !run.store.needs_lease() {
        drop(run.store.lock_driver()?);
    }
    if !args.json {
        crate::out!(
            "run {} ({}) in {}",
            run_id_of(&run),
            crate::output::plural(run.plan.len(), "action"),
            run.store.locator()
        );
    }
    let signals = crate::signals::watch(options.stop.clone(), run.store.locator(), announce_stop);
    let report = ops::drive(&run, &options, observer).await;
    drop(signals);
    let state = report?.state;
    let status = state.status();
    if let Some(cause) = options
        .stop
        .requested()
        .filter(|_| status != RunStatus::Succeeded)
    {
        print_stopped(&run, &state, cause);
        return Err(Failure::RunFailed);
    }
    if args.json {
        crate::output::Summary {
            plan: &run.plan,
            state: &state,
            locator: &run.store.locator(),
            duration_ms: started.elapsed().as_millis(),
        }
        .print()?;
    } else {
        crate::out!(
            "run {} {} in {} ({}; {})",
            state.run_id(),
            state.status(),
            format_elapsed(started.elapsed()),
            state.count_summary(),
            plural(state.invocations() as usize, "invocation")
        );
        if state.status() != RunStatus::Succeeded {
            crate::output::print_next_steps(&run.plan, &state, &run.store.locator());
        }
    }
    succeeded(status)
}

async fn drive_in_console(
    run: Run<AnyStore>,
    known: Option<(RunState, String)>,
    options: TickOptions,
    read_only: bool,
    started: Instant,
) -> CommandResult {
    let run = Arc::new(run);
    let stop = options.stop.clone();
    let console = ConsoleOptions {
        drive: Some(options),
        read_only,
        known,
    };
    let state = crate::tui::console(Arc::clone(&run), console).await?;
    if let Some(cause) = stop
        .requested()
        .filter(|_| state.status() != RunStatus::Succeeded)
    {
        print_stopped(&run, &state, cause);
        return Err(Failure::RunFailed);
    }
    crate::output::print_console_outcome(&run.plan, &state, &run.store.locator(), started);
    succeeded(state.status())
}

/// What the first signal does, said as it happens.
fn announce_stop(cause: StopCause) {
    crate::signals::say(&format!(
        "\n{cause}: stopping; no new actions start, running commands get SIGTERM (their whole \
         process group), then SIGKILL after their grace period, and the state is saved. \
         Send it again to quit at once."
    ));
}

/// After a stop: what was stopped and how to continue (on stderr: stdout may be a pipe
/// expecting a summary, and the terminal may be gone).
pub(crate) fn print_stopped(run: &Run<AnyStore>, state: &RunState, cause: StopCause) {
    let say = crate::signals::say;
    let locator = run.store.locator();
    for (idx, how) in state.stop_report().stopped {
        let action = state.action(idx);
        let then = match action.status {
            baton_core::ActionStatus::Pending => "it runs again on resume (idempotent)",
            _ => "outcome unknown: it is marked failed",
        };
        if action.stop.as_ref().is_some_and(|s| s.cause == cause) {
            say(&format!(
                "  ■ {}: stopped ({how}); {then}",
                run.plan.label(idx)
            ));
        }
    }
    let status = state.status();
    if status.is_finished() {
        say(&format!(
            "run {} {status} (stopped by {cause}); re-run what did not finish: baton retry {locator} --failed",
            state.run_id()
        ));
    } else {
        say(&format!(
            "run paused ({status}, stopped by {cause}); continue it with: baton resume {locator}"
        ));
    }
}

/// Exit 1 unless the run succeeded.
fn succeeded(status: RunStatus) -> CommandResult {
    match status {
        RunStatus::Succeeded => Ok(()),
        _ => Err(Failure::RunFailed),
    }
}

fn run_id_of(run: &Run<AnyStore>) -> String {
    let locator = run.store.locator();
    locator.rsplit('/').next().unwrap_or(&locator).to_string()
}

pub fn tick_options(args: &DriveArgs) -> Result<TickOptions, Failure> {
    // A day is far more than any tick needs; bigger numbers would overflow the deadline.
    if !(args.budget.is_finite() && args.budget > 0.0 && args.budget <= 86_400.0) {
        return Err(Failure::Invalid(format!(
            "--budget {}: must be a positive number of seconds, at most 86400 (a day)",
            args.budget
        )));
    }
    if args.max_parallel == Some(0) {
        return Err(Failure::Invalid(
            "--max-parallel 0: must be at least 1".into(),
        ));
    }
    Ok(TickOptions {
        budget: Duration::from_secs_f64(args.budget),
        max_parallel: args.max_parallel,
        take_over: args.take_over,
        ..TickOptions::default()
    })
}

/// Every `vars.NAME` a template reads must be given with `--var`.
fn check_vars(plan: &baton_core::Plan, vars: &Map<String, Value>) -> Result<(), Failure> {
    let mut problems = Vec::new();
    for (i, action) in plan.actions().iter().enumerate() {
        for (field, name) in &action.details().reads_vars {
            if !vars.contains_key(name) {
                problems.push(format!(
                    "{}: actions[{i}] \"{}\": {field}: template reads vars.{name}, but no --var {name}=VALUE was given",
                    plan.source(), action.label
                ));
            }
        }
    }
    problems.dedup();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::Invalid(problems.join("\n")))
    }
}

fn parse_vars(pairs: &[String]) -> Result<Map<String, Value>, Failure> {
    let mut vars = Map::new();
    // Messages name the variable, never its value: it may be a secret.
    for (i, pair) in pairs.iter().enumerate() {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(Failure::Invalid(format!(
                "--var (the {} one): write NAME=VALUE (there is no '='; its text is not shown, \
                 in case it is a secret)",
                ordinal(i + 1)
            )));
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Failure::Invalid(format!(
                "--var {}=…: the name must be letters, digits and '_' (it is read as vars.NAME)",
                name.escape_debug()
            )));
        }
        if value.len() > MAX_VAR_BYTES {
            return Err(Failure::Invalid(format!(
                "--var {name}=…: the value is {} bytes, over the {MAX_VAR_BYTES}-byte limit \
                 (run variables live in the run's state, written whole on every save; pass a file \
                 path or an S3 location instead)",
                value.len()
            )));
        }
        vars.insert(name.to_string(), Value::String(value.to_string()));
    }
    Ok(vars)
}

/// The most one `--var` value may weigh.
const MAX_VAR_BYTES: usize = 64 * 1024;

/// `1st`, `2nd`, `3rd`, `4th`, … `11th`, `21st`.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

pub async fn tick(run: &str, store: &StoreArgs) -> CommandResult {
    let run = locator::open(run, store).await?;
    let _guard = run.store.lock_driver()?;
    let report = ops::tick(&run).await?;
    let payload = baton_core::Payload::new(run.store.locator(), &report, &run.plan);
    crate::output::write_json(&payload, crate::output::JsonStyle::Compact)
}
