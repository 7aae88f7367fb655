//! The docs stand alone and match the binary: every `baton …` command line, flag, console key
//! and `:` command they name exists, and they cite nothing a reader of the project cannot see.

use std::collections::BTreeSet;
use std::path::PathBuf;

use baton::cli::Cli;
use clap::CommandFactory;

use crate::common::repo;

fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).expect("read doc")
}

fn name(path: &std::path::Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Inline code spans (`…`) and the lines of fenced blocks (marked `true`).
fn code_spans(text: &str) -> Vec<(String, bool)> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            spans.push((line.trim().to_string(), true));
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(code), Some(_)) = (parts.next(), parts.next()) {
            spans.push((code.to_string(), false));
        }
    }
    spans
}

/// The `baton SUBCOMMAND ARGS…` command lines in a code span: `baton` first (after an optional
/// `$ `), or after a shell operator, followed by a subcommand-shaped word.
fn invocations(span: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let span = span.trim().trim_start_matches("$ ");
    for piece in span.split(['|', ';', '&', '(']) {
        let words: Vec<&str> = piece.split_whitespace().collect();
        let start = match words.as_slice() {
            ["baton", ..] => 1,
            ["cargo", "run", ..] => match words.iter().position(|w| *w == "--") {
                Some(at) => at + 1,
                None => continue,
            },
            _ => continue,
        };
        let Some(first) = words.get(start) else {
            continue;
        };
        if first.is_empty() || !first.chars().all(|c| c.is_ascii_lowercase()) {
            continue;
        }
        found.push(
            words[start..]
                .iter()
                .take_while(|w| !matches!(**w, ">" | "2>&1" | "#"))
                .map(|w| w.to_string())
                .collect(),
        );
    }
    found
}

/// Every `baton SUBCOMMAND --flag …` in a doc names a subcommand baton has, with flags that
/// subcommand takes.
#[test]
fn every_command_line_in_the_docs_is_one_baton_accepts() {
    let cli = Cli::command();
    let flags_of = |sub: &clap::Command| -> BTreeSet<String> {
        let mut flags: BTreeSet<String> = sub
            .get_arguments()
            .chain(cli.get_arguments())
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        flags.extend(["--help", "--version"].map(String::from));
        flags
    };
    // Other tools' flags the docs explain next to baton's.
    let mut all_flags: BTreeSet<String> = [
        "--locked",
        "--release",
        "--no-build",
        "--s3",
        "--no-default-features",
    ]
    .map(String::from)
    .into();
    for sub in cli.get_subcommands() {
        all_flags.extend(flags_of(sub));
    }
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in doc_files() {
        for (span, fenced) in code_spans(&read(&file)) {
            for words in invocations(&span) {
                let first = words[0].as_str();
                let Some(sub) = cli.find_subcommand(first) else {
                    problems.push(format!("{}: `baton {first}`: no such command", name(&file)));
                    continue;
                };
                checked += 1;
                let known = flags_of(sub);
                for word in &words[1..] {
                    let flag = word
                        .split('=')
                        .next()
                        .unwrap_or(word)
                        .trim_end_matches([',', ')', ':', '.', ';']);
                    if flag.starts_with("--") && flag.len() > 2 && !known.contains(flag) {
                        problems.push(format!(
                            "{}: `baton {first} … {flag}`: {first} has no such flag",
                            name(&file)
                        ));
                    }
                }
            }
            // A flag named alone must be some command's.
            for word in span.split(|c: char| c.is_whitespace() || c == '`') {
                let flag = word.split('=').next().unwrap_or(word);
                let flag = flag.trim_end_matches([',', ')', ':', '.', ';']);
                let shaped = flag.len() > 2
                    && flag.starts_with("--")
                    && flag[2..]
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '-');
                let alone = span.trim() == word || span.trim().starts_with(&format!("{word} "));
                if shaped && alone && !fenced && !all_flags.contains(flag) {
                    problems.push(format!(
                        "{}: `{flag}`: no command has this flag",
                        name(&file)
                    ));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} command lines found: is the parser broken?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Keys and `:` commands the operator guide names are the console's (the key table itself is
/// generated from the keymap and compared elsewhere).
#[test]
fn every_console_key_and_command_in_the_docs_exists() {
    use baton::tui::keymap::KEYMAP;
    let mut keys: BTreeSet<String> = BTreeSet::new();
    let mut commands: BTreeSet<String> = BTreeSet::new();
    for binding in KEYMAP {
        keys.extend(binding.label.split([' ', '/']).map(str::to_string));
        commands.insert(binding.name.to_string());
    }
    commands.extend(
        baton::tui::keymap::ALIASES
            .iter()
            .map(|(alias, _)| alias.to_string()),
    );
    // The confirm dialogs' answers.
    keys.extend(["y", "n"].map(String::from));
    let guide = repo().join("docs/operator-guide.md");
    let mut problems = Vec::new();
    for (span, _) in code_spans(&read(&guide)) {
        let span = span.trim();
        if let Some(command) = span.strip_prefix(':') {
            let word = command.split_whitespace().next().unwrap_or("");
            if !word.is_empty()
                && word.chars().all(|c| c.is_ascii_lowercase())
                && !commands.contains(word)
            {
                problems.push(format!("`{span}`: no such console command"));
            }
        }
        let single = span.chars().count() == 1 && span.chars().all(|c| c.is_ascii_alphabetic());
        let ctrl = span.starts_with("Ctrl-") && span.len() == 6;
        if (single || ctrl) && !keys.contains(span) {
            problems.push(format!("`{span}`: no such console key"));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/operator-guide.md:\n{}",
        problems.join("\n")
    );
}

/// The docs never send a reader to material outside the project (a design document, issue
/// numbers, the shared folder) or promise the "to come".
#[test]
fn the_docs_stand_alone() {
    let banned = [
        "DESIGN.md",
        "DESIGN §",
        "../shared",
        "shared/sck",
        "issue ",
        "Issue ",
        "to come",
    ];
    let mut problems = Vec::new();
    for file in doc_files() {
        for (n, line) in read(&file).lines().enumerate() {
            for word in banned {
                if line.contains(word) {
                    problems.push(format!("{}:{}: names {word:?}: {line}", name(&file), n + 1));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
