//! The `baton` command line: argument parsing ([`cli`]), one module per command
//! ([`commands`]), run locators ([`locator`]) and progress output ([`output`]).

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

pub mod aws;
pub mod cli;
pub mod commands;
pub mod locator;
pub mod output;
pub mod remote;
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
