//! Command-line definitions and dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::args::{
    AwsArgs, DriveArgs, PlanFormat, RetryArgs, RunArgs, S3StoreArgs, StoreArgs, TemplateArgs,
    FILE_HELP, RUN_HELP,
};
use crate::{commands, Failure};

#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    about = "Run action lists (JSON/YAML DAGs) and watch them run"
)]
pub struct Cli {
    /// The console ignores the mouse (clicks and the wheel are the terminal's again).
    #[arg(long, global = true, help_heading = "Console")]
    pub no_mouse: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check action files; print every problem, one per line.
    Validate {
        #[arg(required = true, value_name = "FILE", help = FILE_HELP)]
        files: Vec<PathBuf>,
    },
    /// Show the order actions will run in.
    Plan {
        #[arg(help = FILE_HELP)]
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
    },
    /// Create a run from an action file and drive it to the end.
    Run(RunArgs),
    /// Drive an existing run (after a crash, or after `retry --no-run`).
    Resume {
        #[arg(help = RUN_HELP)]
        run: String,
        /// Start a new Step Functions execution to drive it (a submitted run that nothing
        /// drives) instead of driving it here.
        #[arg(long)]
        remote: bool,
        /// With --remote: the runner's state machine (default: the one it was submitted to).
        #[arg(long, requires = "remote", value_name = "ARN")]
        state_machine: Option<String>,
        #[command(flatten)]
        drive: DriveArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Perform exactly one engine tick and print the payload it returns.
    Tick {
        #[arg(help = RUN_HELP)]
        run: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Summarise a run: counts per status and each action's status.
    Status {
        #[arg(help = RUN_HELP)]
        run: String,
        /// Print the run's state as JSON (secrets masked) instead of the summary.
        #[arg(long)]
        json: bool,
        /// List the stored state versions.
        #[arg(long)]
        versions: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print log threads: the run's and each action's, or one action's.
    Logs {
        #[arg(help = RUN_HELP)]
        run: String,
        /// Only this action's log thread (default: the run's and every action's).
        label: Option<String>,
        /// Keep printing new entries until the run finishes.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show one action: rendered params, outputs, error, timings, log.
    Inspect {
        #[arg(help = RUN_HELP)]
        run: String,
        /// The action's label.
        label: String,
        /// Print the action as JSON (secrets masked).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Re-execute actions: reset them to pending, then drive the run again.
    Retry(RetryArgs),
    /// Create a run in S3 and start a Step Functions execution that drives it.
    Submit {
        #[arg(help = FILE_HELP)]
        file: PathBuf,
        /// A run variable, readable as `vars.NAME` in templates (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
        /// Use this run id instead of a generated one (submitting it again is refused).
        #[arg(long)]
        run_id: Option<String>,
        #[arg(long, value_name = "SINK", help = crate::args::HOOKS_HELP)]
        hooks: Option<String>,
        /// The runner's state machine (output StateMachineArn of cloudformation/runner.yaml).
        #[arg(long, env = "BATON_STATE_MACHINE")]
        state_machine: String,
        #[command(flatten)]
        templates: TemplateArgs,
        #[command(flatten)]
        store: S3StoreArgs,
    },
    /// List the runs in the store: status, start, duration, counts, who drives each.
    Runs {
        /// One JSON list of the runs on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Open the console on an existing run (it keeps running wherever it runs), or without
    /// RUN on the list of runs.
    Watch {
        #[arg(help = RUN_HELP)]
        run: Option<String>,
        /// Hide every control that changes the run.
        #[arg(long)]
        read_only: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Ask a run to stop: running actions are cancelled where their type can cancel.
    Abort {
        #[arg(help = RUN_HELP)]
        run: String,
        /// Also stop the Step Functions execution (remote runs).
        #[arg(long)]
        hard: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print a shell completion script (e.g. `baton completions bash > /etc/bash_completion.d/baton`).
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print baton's manual page (roff) on stdout, e.g. `baton man > baton.1`.
    Man,
}

impl Command {
    /// The AWS options of a command that can reach AWS.
    fn aws(&mut self) -> Option<&AwsArgs> {
        match self {
            Command::Submit { store, .. } => Some(&store.aws),
            other => other.store_mut().map(|store| &store.aws),
        }
    }

    /// The store and AWS options of a command that takes them.
    fn store_mut(&mut self) -> Option<&mut StoreArgs> {
        match self {
            Command::Run(args) => Some(&mut args.store),
            Command::Retry(args) => Some(&mut args.store),
            Command::Resume { store, .. }
            | Command::Tick { store, .. }
            | Command::Status { store, .. }
            | Command::Logs { store, .. }
            | Command::Inspect { store, .. }
            | Command::Runs { store, .. }
            | Command::Watch { store, .. }
            | Command::Abort { store, .. } => Some(store),
            Command::Validate { .. }
            | Command::Plan { .. }
            | Command::Submit { .. }
            | Command::Completions { .. }
            | Command::Man => None,
        }
    }
}

pub fn main() -> ExitCode {
    let mut cli = match parse() {
        Ok(cli) => cli,
        Err(failure) => {
            eprintln!("baton: error: {failure}");
            return ExitCode::from(failure.exit_code());
        }
    };
    let aws = cli.command.aws().cloned().unwrap_or_default();
    crate::aws::configure(baton_core::aws::AwsSettings {
        profile: aws.profile,
        region: aws.region,
        endpoint_url: aws.endpoint_url,
        role_name: Some(aws.role_name).filter(|name| !name.is_empty()),
    });
    // Readable panic reports; the console adds its own hook that restores the terminal first.
    let _ = color_eyre::install();
    init_tracing(&cli.command);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("baton: error: cannot start the async runtime: {err}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            match &failure {
                Failure::RunFailed => {}
                Failure::Invalid(message) | Failure::Infra(message) => {
                    for line in message.lines() {
                        eprintln!("{line}");
                    }
                }
            }
            ExitCode::from(failure.exit_code())
        }
    }
}

/// The command line, with what the config file fills in where flags and the environment left
/// defaults. Bad arguments exit 2 through clap; a bad config file is invalid input too.
fn parse() -> Result<Cli, Failure> {
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let config = crate::config::load()?;
    if let Some((_, sub)) = matches.subcommand() {
        if let Command::Submit { store, .. } = &mut cli.command {
            config.apply_to_s3_store(store, sub);
        } else if let Some(store) = cli.command.store_mut() {
            config.apply_to_store(store, sub);
        }
    }
    crate::tui::term::configure(crate::tui::term::Settings {
        mouse: config.mouse(cli.no_mouse),
        color: config.color(),
    });
    Ok(cli)
}

/// Diagnostics go to stderr, except while the console owns the terminal: then to
/// `<store>/baton.log` (or `BATON_LOG_FILE`). `BATON_LOG` sets the filter (default `warn`).
fn init_tracing(command: &Command) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("BATON_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let console_store = match command {
        Command::Run(args) if crate::tui::wanted(args.drive.plain, args.drive.json) => {
            Some(&args.store)
        }
        Command::Resume {
            drive,
            store,
            remote: false,
            ..
        } if crate::tui::wanted(drive.plain, drive.json) => Some(store),
        Command::Retry(args) if crate::tui::wanted(args.drive.plain, args.drive.json) => {
            Some(&args.store)
        }
        Command::Watch { store, .. } if crate::tui::wanted(false, false) => Some(store),
        _ => None,
    };
    let file = std::env::var_os("BATON_LOG_FILE")
        .map(std::path::PathBuf::from)
        .or_else(|| console_store.map(console_log_file));
    let file = file.and_then(|path| {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match file {
        Some(file) => builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}

/// Where a console's diagnostics go: `<store>/baton.log` for a local store; for an S3 store
/// (there is no folder to write into) `.baton/baton.log` here.
fn console_log_file(store: &StoreArgs) -> std::path::PathBuf {
    if store.store.starts_with("s3://") {
        return std::path::Path::new(".baton").join("baton.log");
    }
    std::path::Path::new(&store.store).join("baton.log")
}

async fn dispatch(command: Command) -> crate::CommandResult {
    match command {
        Command::Validate { files } => commands::validate::run(&files),
        Command::Plan { file, format } => commands::plan::run(&file, format),
        Command::Submit {
            file,
            vars,
            run_id,
            hooks,
            state_machine,
            templates,
            store,
        } => {
            let reach = templates.reach();
            let store = store.as_store_args()?;
            let new_run = commands::run::NewRun {
                file: &file,
                vars: &vars,
                run_id,
                hooks: hooks.as_deref(),
                reach,
            };
            commands::run::submit(new_run, &store, &state_machine).await
        }
        Command::Run(args) => commands::run::run(args).await,
        Command::Resume {
            run,
            remote: true,
            state_machine,
            store,
            ..
        } => commands::run::resume_remotely(&run, &store, state_machine.as_deref()).await,
        Command::Resume {
            run, drive, store, ..
        } => commands::run::resume(&run, &store, &drive).await,
        Command::Tick { run, store } => commands::run::tick(&run, &store).await,
        Command::Status {
            run,
            json,
            versions,
            store,
        } => commands::status::run(&run, &store, json, versions).await,
        Command::Logs {
            run,
            label,
            follow,
            store,
        } => commands::logs::run(&run, &store, label.as_deref(), follow).await,
        Command::Inspect {
            run,
            label,
            json,
            store,
        } => commands::inspect::run(&run, &store, &label, json).await,
        Command::Retry(args) => commands::retry::run(args).await,
        Command::Runs { json, store } => commands::runs::run(&store, json).await,
        Command::Watch {
            run,
            read_only,
            store,
        } => commands::watch::run(run.as_deref(), &store, read_only).await,
        Command::Abort { run, hard, store } => commands::retry::abort(&run, &store, hard).await,
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "baton", &mut script);
            print_bytes(&script)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|err| Failure::Infra(format!("cannot render the manual page: {err}")))?;
            print_bytes(&page)
        }
    }
}

/// Writes generated text to stdout; a reader that stops early (`| head`) is not an error.
fn print_bytes(bytes: &[u8]) -> crate::CommandResult {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => Err(Failure::Infra(format!("cannot write to stdout: {err}"))),
    }
}
