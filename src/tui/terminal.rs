//! Who holds the terminal. A leaf: signal handling gives the terminal back through it without
//! depending on the console.

use std::sync::atomic::{AtomicBool, Ordering};

/// The console has the terminal (raw mode, alternate screen): whoever ends the process must
/// give it back.
static TERMINAL_TAKEN: AtomicBool = AtomicBool::new(false);

/// Records that the console has taken the terminal.
pub(super) fn terminal_taken() {
    TERMINAL_TAKEN.store(true, Ordering::SeqCst);
}

/// Gives the terminal back if the console has it (safe to call twice, and from a signal
/// handler's task): mouse reporting off, raw mode off, the main screen back.
pub fn restore_terminal() {
    if TERMINAL_TAKEN.swap(false, Ordering::SeqCst) {
        let _ = ratatui::crossterm::execute!(
            std::io::stdout(),
            ratatui::crossterm::event::DisableMouseCapture
        );
        ratatui::restore();
    }
}
