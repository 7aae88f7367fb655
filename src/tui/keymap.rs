//! The one keymap: `update()` looks keys up here, the `:` command line runs the same commands
//! by name, and the help overlay, the footer hints and the key table of the operator guide are
//! generated from it, so none of them can disagree.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where the operator is: each screen has its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// The runs list (the console's home).
    Runs,
    /// A run: the DAG with its detail and log panes, or the timeline.
    Main,
    /// One action, full screen.
    Inspect,
    /// A log thread, full screen.
    Log,
}

impl Context {
    pub const ALL: [Context; 4] = [Context::Runs, Context::Main, Context::Inspect, Context::Log];

    pub fn name(self) -> &'static str {
        match self {
            Context::Runs => "runs",
            Context::Main => "run",
            Context::Inspect => "inspect",
            Context::Log => "log",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// Enter: fold a layer, inspect an action, open the log full screen, open a run.
    Open,
    Expand,
    Collapse,
    Filter,
    HideComplete,
    NextFailure,
    PreviousFailure,
    NextRunning,
    SwitchPane,
    RunLog,
    Timestamps,
    Timeline,
    FullLog,
    Search,
    NextMatch,
    PreviousMatch,
    Wrap,
    Follow,
    CommandLine,
    Help,
    Back,
    Resume,
    Reexecute,
    Abort,
    Runs,
    OpenRun,
    Quit,
}

/// A key as the keymap knows it: a code, and whether Ctrl is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn key(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

const fn ch(c: char) -> Key {
    key(KeyCode::Char(c))
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

impl Key {
    pub fn of(event: &KeyEvent) -> Key {
        Key {
            code: event.code,
            ctrl: event.modifiers.contains(KeyModifiers::CONTROL),
        }
    }
}

const ALL: &[Context] = &Context::ALL;
const RUN: &[Context] = &[Context::Main, Context::Inspect, Context::Log];
const LISTS: &[Context] = &[Context::Runs, Context::Main, Context::Inspect, Context::Log];

pub struct Binding {
    pub keys: &'static [Key],
    /// How the keys are written in help.
    pub label: &'static str,
    pub command: Command,
    /// Its name on the `:` command line.
    pub name: &'static str,
    /// What the command takes on the command line, as help writes it.
    pub args: &'static str,
    pub help: &'static str,
    pub contexts: &'static [Context],
    /// Changes the run: answered "read-only" with `--read-only`, and hidden from its help.
    pub mutates: bool,
    /// The footer's hint: a priority (lower stays longer as the width shrinks) and a word.
    pub hint: Option<(u8, &'static str)>,
}

const fn binding(
    keys: &'static [Key],
    label: &'static str,
    command: Command,
    name: &'static str,
    help: &'static str,
    contexts: &'static [Context],
) -> Binding {
    Binding {
        keys,
        label,
        command,
        name,
        args: "",
        help,
        contexts,
        mutates: false,
        hint: None,
    }
}

impl Binding {
    const fn hint(mut self, priority: u8, word: &'static str) -> Self {
        self.hint = Some((priority, word));
        self
    }

    const fn mutating(mut self) -> Self {
        self.mutates = true;
        self
    }

    const fn args(mut self, args: &'static str) -> Self {
        self.args = args;
        self
    }
}

pub const KEYMAP: &[Binding] = &[
    binding(
        &[key(KeyCode::Up), ch('k')],
        "↑ k",
        Command::Up,
        "up",
        "previous row (scrolls the log when it has the focus)",
        LISTS,
    ),
    binding(
        &[key(KeyCode::Down), ch('j')],
        "↓ j",
        Command::Down,
        "down",
        "next row (scrolls the log when it has the focus)",
        LISTS,
    ),
    binding(
        &[key(KeyCode::PageUp), ctrl('u')],
        "PgUp ^U",
        Command::PageUp,
        "page-up",
        "a page up",
        LISTS,
    ),
    binding(
        &[key(KeyCode::PageDown), ctrl('d')],
        "PgDn ^D",
        Command::PageDown,
        "page-down",
        "a page down",
        LISTS,
    ),
    binding(
        &[key(KeyCode::Home), ch('g')],
        "Home g",
        Command::Top,
        "top",
        "first row (the log: its first line)",
        LISTS,
    ),
    binding(
        &[key(KeyCode::End), ch('G')],
        "End G",
        Command::Bottom,
        "bottom",
        "last row (the log: its newest line, following again)",
        LISTS,
    ),
    binding(
        &[key(KeyCode::Enter)],
        "⏎",
        Command::Open,
        "open",
        "open: a run, an action (inspect), a layer (fold), the log pane (full screen), a link",
        &[Context::Runs, Context::Main, Context::Inspect],
    )
    .hint(3, "open"),
    binding(
        &[key(KeyCode::Right), ch('l')],
        "→ l",
        Command::Expand,
        "expand",
        "expand a layer or a params/outputs node",
        &[Context::Main, Context::Inspect],
    ),
    binding(
        &[key(KeyCode::Left), ch('h')],
        "← h",
        Command::Collapse,
        "collapse",
        "collapse the layer or the params/outputs node",
        &[Context::Main, Context::Inspect],
    ),
    binding(
        &[ch('/')],
        "/",
        Command::Filter,
        "filter",
        "filter by a prefix of a label, type or status (/ again edits it)",
        &[Context::Runs, Context::Main],
    )
    .args("[<expr>]")
    .hint(2, "filter"),
    binding(
        &[ch('/')],
        "/",
        Command::Search,
        "search",
        "search the log (n / N: next / previous match)",
        &[Context::Log],
    )
    .args("[<text>]")
    .hint(2, "search"),
    binding(
        &[ch('n')],
        "n",
        Command::NextMatch,
        "next-match",
        "next match of the search",
        &[Context::Log],
    )
    .hint(4, "next"),
    binding(
        &[ch('N')],
        "N",
        Command::PreviousMatch,
        "previous-match",
        "previous match of the search",
        &[Context::Log],
    ),
    binding(
        &[ch('w')],
        "w",
        Command::Wrap,
        "wrap",
        "wrap long lines or cut them",
        &[Context::Log],
    )
    .hint(5, "wrap"),
    binding(
        &[ch('f')],
        "f",
        Command::Follow,
        "follow",
        "follow the newest line, or hold still",
        &[Context::Log],
    )
    .hint(3, "follow"),
    binding(
        &[ch('c')],
        "c",
        Command::HideComplete,
        "hide-done",
        "hide or show complete and skipped actions",
        &[Context::Main],
    )
    .hint(8, "hide done"),
    binding(
        &[ch('f')],
        "f",
        Command::NextFailure,
        "failure",
        "next failure, root cause first (centred)",
        &[Context::Main],
    )
    .hint(1, "failure"),
    binding(
        &[ch('F')],
        "F",
        Command::PreviousFailure,
        "previous-failure",
        "previous failure",
        &[Context::Main],
    ),
    binding(
        &[ch('n')],
        "n",
        Command::NextRunning,
        "running",
        "next running action",
        &[Context::Main],
    )
    .hint(6, "running"),
    binding(
        &[key(KeyCode::Tab)],
        "Tab",
        Command::SwitchPane,
        "pane",
        "focus the next pane (the DAG, the log; inspect: links, params, log)",
        &[Context::Main, Context::Inspect],
    ),
    binding(
        &[ch('v')],
        "v",
        Command::FullLog,
        "log",
        "the log thread, full screen",
        &[Context::Main, Context::Inspect],
    )
    .hint(5, "log"),
    binding(
        &[ch('L')],
        "L",
        Command::RunLog,
        "run-log",
        "log: the action's thread, the run's, the execution's history",
        &[Context::Main, Context::Log],
    ),
    binding(
        &[ch('T')],
        "T",
        Command::Timestamps,
        "timestamps",
        "show or hide log timestamps",
        &[Context::Main, Context::Log],
    ),
    binding(
        &[ch('t')],
        "t",
        Command::Timeline,
        "timeline",
        "timeline (Gantt) view with the critical path",
        &[Context::Main],
    )
    .hint(7, "timeline"),
    binding(
        &[ch('r')],
        "r",
        Command::Reexecute,
        "retry",
        "re-execute: preview what runs, is reused and stays blocked, then confirm",
        &[Context::Main, Context::Inspect],
    )
    .args("[failed | from <label> | only <label>]")
    .mutating()
    .hint(2, "re-execute"),
    binding(
        &[ch('R')],
        "R",
        Command::Resume,
        "resume",
        "drive an idle run again (here, or a new execution for a remote run)",
        &[Context::Main],
    )
    .mutating(),
    binding(
        &[ch('a')],
        "a",
        Command::Abort,
        "abort",
        "abort the run (asks first)",
        RUN,
    )
    .mutating()
    .hint(4, "abort"),
    binding(&[], "", Command::Runs, "runs", "the runs in the store", ALL),
    binding(&[], "", Command::OpenRun, "run", "open another run", ALL).args("<id>"),
    binding(
        &[ch(':')],
        ":",
        Command::CommandLine,
        "",
        "command line (Tab completes)",
        ALL,
    )
    .hint(1, "command"),
    binding(&[ch('?')], "?", Command::Help, "help", "this help", ALL).hint(0, "help"),
    binding(
        &[key(KeyCode::Esc)],
        "Esc",
        Command::Back,
        "back",
        "back one level: close, cancel, clear the filter, leave a view",
        ALL,
    )
    .hint(1, "back"),
    binding(
        &[ch('q'), ctrl('c')],
        "q ^C",
        Command::Quit,
        "quit",
        "quit (asks while this console drives the run; ^C again confirms)",
        ALL,
    )
    .hint(0, "quit"),
];

/// Other names the command line takes.
pub const ALIASES: &[(&str, &str)] = &[("q", "quit"), ("re-execute", "retry")];

/// The command for a key press in `context`. Mutating commands are found in read-only mode
/// too: the caller answers them with "read-only".
pub fn lookup(key: &KeyEvent, context: Context) -> Option<&'static Binding> {
    let key = Key::of(key);
    KEYMAP
        .iter()
        .filter(|b| b.contexts.contains(&context))
        .find(|b| b.keys.contains(&key))
}

/// The binding a command-line name stands for.
pub fn named(name: &str) -> Option<&'static Binding> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, full)| *full);
    KEYMAP.iter().find(|b| !b.name.is_empty() && b.name == name)
}

/// The bindings shown to the user in `context`.
pub fn visible(context: Context, read_only: bool) -> impl Iterator<Item = &'static Binding> {
    KEYMAP
        .iter()
        .filter(move |b| b.contexts.contains(&context) && !(read_only && b.mutates))
}

/// Command-line names for completion in `context`.
pub fn names(context: Context, read_only: bool) -> impl Iterator<Item = &'static str> {
    visible(context, read_only)
        .map(|b| b.name)
        .filter(|n| !n.is_empty())
}

/// The operator guide's key and command table, generated from the keymap.
pub fn markdown_table() -> String {
    let mut out = String::from("| keys | command | where | does |\n|---|---|---|---|\n");
    for b in KEYMAP {
        let keys = if b.label.is_empty() {
            "—".to_string()
        } else {
            format!("`{}`", b.label)
        };
        let command = match (b.name, b.args) {
            ("", _) => "—".to_string(),
            (name, "") => format!("`:{name}`"),
            (name, args) => format!("`:{name} {args}`"),
        };
        let places: Vec<&str> = b.contexts.iter().map(|c| c.name()).collect();
        let places = if b.contexts.len() == Context::ALL.len() {
            "everywhere".to_string()
        } else {
            places.join(", ")
        };
        let note = if b.mutates {
            " (not with `--read-only`)"
        } else {
            ""
        };
        let help = b.help.replace('|', "\\|");
        out.push_str(&format!(
            "| {keys} | {command} | {places} | {help}{note} |\n"
        ));
    }
    let aliases: Vec<String> = ALIASES
        .iter()
        .map(|(alias, full)| format!("`:{alias}` is `:{full}`"))
        .collect();
    out.push_str(&format!("\n{}.\n", aliases.join(", ")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice_in_a_context() {
        for context in Context::ALL {
            let mut seen = Vec::new();
            for binding in KEYMAP.iter().filter(|b| b.contexts.contains(&context)) {
                for key in binding.keys {
                    assert!(!seen.contains(key), "{key:?} bound twice in {context:?}");
                    seen.push(*key);
                }
            }
        }
    }

    #[test]
    fn command_names_are_unique() {
        let mut names: Vec<&str> = KEYMAP
            .iter()
            .map(|b| b.name)
            .filter(|n| !n.is_empty())
            .collect();
        let all = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all);
        for (alias, full) in ALIASES {
            assert!(named(alias).is_some_and(|b| b.name == *full));
        }
    }

    #[test]
    fn read_only_hides_mutating_commands() {
        let r = KeyEvent::from(KeyCode::Char('r'));
        assert_eq!(
            lookup(&r, Context::Main).map(|b| b.command),
            Some(Command::Reexecute)
        );
        assert!(visible(Context::Main, true).all(|b| !b.mutates));
    }
}
