//! One module per command.

pub mod inspect;
pub mod logs;
pub mod plan;
pub mod retry;
pub mod run;
pub mod runs;
pub mod status;
pub mod validate;
pub mod watch;

use std::path::Path;

use baton_core::{load_path, Loaded};

use crate::Failure;

/// Loads an action file, printing warnings; problems become an exit-2 failure.
pub fn load_plan(file: &Path) -> Result<Loaded, Failure> {
    match load_path(file) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            Ok(loaded)
        }
        Err(problems) => {
            for warning in &problems.warnings {
                eprintln!("warning: {warning}");
            }
            Err(Failure::Invalid(problems.to_string()))
        }
    }
}

/// Frees a large value (a 100k-action plan or state: a few hundred thousand allocations, tens
/// of milliseconds) on another thread, so a command that has printed its answer exits at once.
pub fn drop_in_background<T: Send + 'static>(value: T) {
    std::thread::spawn(move || drop(value));
}
