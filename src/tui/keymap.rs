//! The one keymap: `update()` looks keys up here and the help overlay is generated from it, so
//! the two can never disagree.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Expand,
    Collapse,
    Filter,
    HideComplete,
    JumpFailure,
    NextRunning,
    SwitchPane,
    RunLog,
    Timestamps,
    Timeline,
    Help,
    Reexecute,
    Abort,
    Quit,
}

pub struct Binding {
    pub keys: &'static [KeyCode],
    /// How the keys are written in help.
    pub label: &'static str,
    pub command: Command,
    pub help: &'static str,
    /// Changes the run: hidden and disabled with `--read-only`.
    pub mutates: bool,
}

pub const KEYMAP: &[Binding] = &[
    Binding {
        keys: &[KeyCode::Up, KeyCode::Char('k')],
        label: "↑ k",
        command: Command::Up,
        help: "previous row (or scroll the log up)",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::Down, KeyCode::Char('j')],
        label: "↓ j",
        command: Command::Down,
        help: "next row (or scroll the log down)",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::PageUp],
        label: "PgUp",
        command: Command::PageUp,
        help: "page up",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::PageDown],
        label: "PgDn",
        command: Command::PageDown,
        help: "page down",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::Home, KeyCode::Char('g')],
        label: "Home g",
        command: Command::Top,
        help: "first row",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::End, KeyCode::Char('G')],
        label: "End G",
        command: Command::Bottom,
        help: "last row (the log: follow the tail again)",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::Right, KeyCode::Char('l'), KeyCode::Enter],
        label: "→ l ⏎",
        command: Command::Expand,
        help: "expand a layer",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::Left, KeyCode::Char('h')],
        label: "← h",
        command: Command::Collapse,
        help: "collapse the layer",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::Char('/')],
        label: "/",
        command: Command::Filter,
        help: "filter by label, type or status (Esc clears)",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::Char('c')],
        label: "c",
        command: Command::HideComplete,
        help: "hide or show complete and skipped actions",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::Char('f')],
        label: "f",
        command: Command::JumpFailure,
        help: "jump to the first (root-cause) failure",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::Char('n')],
        label: "n",
        command: Command::NextRunning,
        help: "jump to the next running action",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::Tab],
        label: "Tab",
        command: Command::SwitchPane,
        help: "switch focus between the DAG and the log",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::Char('L')],
        label: "L",
        command: Command::RunLog,
        help: "log pane: the action's thread, the run's, the execution's history",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::Char('T')],
        label: "T",
        command: Command::Timestamps,
        help: "show or hide log timestamps",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::Char('t')],
        label: "t",
        command: Command::Timeline,
        help: "timeline (Gantt) view with the critical path",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::Char('?')],
        label: "?",
        command: Command::Help,
        help: "this help",
        mutates: false,
    },
    Binding {
        keys: &[KeyCode::Char('r')],
        label: "r",
        command: Command::Reexecute,
        help: "re-execute: preview what will run, then confirm",
        mutates: true,
    },
    Binding {
        keys: &[KeyCode::Char('a')],
        label: "a",
        command: Command::Abort,
        help: "abort the run (asks first)",
        mutates: true,
    },
    Binding {
        keys: &[KeyCode::Char('q')],
        label: "q",
        command: Command::Quit,
        help: "quit (asks if this console is driving the run)",
        mutates: false,
    },
];

/// The command for a key press, honouring read-only mode.
pub fn lookup(key: &KeyEvent, read_only: bool) -> Option<Command> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return match key.code {
            KeyCode::Char('c') => Some(Command::Quit),
            KeyCode::Char('d') => Some(Command::PageDown),
            KeyCode::Char('u') => Some(Command::PageUp),
            _ => None,
        };
    }
    KEYMAP
        .iter()
        .filter(|b| !(read_only && b.mutates))
        .find(|b| b.keys.contains(&key.code))
        .map(|b| b.command)
}

/// The bindings shown to the user.
pub fn visible(read_only: bool) -> impl Iterator<Item = &'static Binding> {
    KEYMAP.iter().filter(move |b| !(read_only && b.mutates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice() {
        let mut seen = Vec::new();
        for binding in KEYMAP {
            for key in binding.keys {
                assert!(!seen.contains(key), "{key:?} bound twice");
                seen.push(*key);
            }
        }
    }

    #[test]
    fn read_only_drops_mutating_commands() {
        let r = KeyEvent::from(KeyCode::Char('r'));
        assert_eq!(lookup(&r, false), Some(Command::Reexecute));
        assert_eq!(lookup(&r, true), None);
        assert!(visible(true).all(|b| !b.mutates));
    }
}
