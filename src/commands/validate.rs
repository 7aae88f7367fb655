//! `baton validate FILE…`

use std::path::PathBuf;

use crate::{CommandResult, Failure};

pub fn run(files: &[PathBuf]) -> CommandResult {
    let mut invalid = 0;
    for file in files {
        match super::load_plan(file) {
            Ok(loaded) => crate::out!(
                "{}: ok ({})",
                file.display(),
                crate::output::plural(loaded.plan.len(), "action")
            ),
            Err(Failure::Invalid(message)) => {
                eprintln!("{message}");
                invalid += 1;
            }
            Err(other) => return Err(other),
        }
    }
    if invalid > 0 {
        // Problems are already printed; the summary keeps the exit code meaningful.
        return Err(Failure::Invalid(format!(
            "{invalid} of {} files invalid",
            files.len()
        )));
    }
    Ok(())
}
