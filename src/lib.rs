//! The `baton` command line: argument types ([`args`]), parsing and dispatch ([`cli`]), one
//! module per command ([`commands`]), the operations the command line and the console share
//! ([`ops`], with Step Functions calls in [`remote`]), following live logs ([`live`]), run
//! locators ([`locator`]) and progress output ([`output`]).

/// `println!` that ends the process quietly when stdout is closed (`baton status | head -1`)
/// instead of panicking.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

pub mod args;
pub mod aws;
pub mod cli;
pub mod commands;
pub mod config;
pub mod live;
pub mod locator;
pub mod ops;
pub mod output;
pub mod params;
pub mod remote;
pub mod signals;
pub mod templates;
pub mod tui;

/// How a command ended, mapped to the exit codes of the command-line contract.
#[derive(Debug)]
pub enum Failure {
    /// The run finished but did not succeed (exit 1).
    RunFailed,
    /// Bad input: invalid action file, unknown label, bad arguments (exit 2).
    Invalid(String),
    /// Store or infrastructure error (exit 3).
    Infra(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::RunFailed => 1,
            Failure::Invalid(_) => 2,
            Failure::Infra(_) => 3,
        }
    }
}

/// The message a failure carries (what `main` prints), for the console's status line.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::RunFailed => f.write_str("the run did not succeed"),
            Failure::Invalid(message) | Failure::Infra(message) => f.write_str(message),
        }
    }
}

impl From<baton_core::RunError> for Failure {
    fn from(err: baton_core::RunError) -> Self {
        Failure::Infra(err.to_string())
    }
}

impl From<baton_core::StoreError> for Failure {
    fn from(err: baton_core::StoreError) -> Self {
        Failure::Infra(err.to_string())
    }
}

pub type CommandResult = Result<(), Failure>;
