//! The `:` command line: every key's command by name (`:failure`, `:timeline`), and the ones
//! that take words (`:run <id>`, `:retry from <label>`, `:filter <expr>`). Tab completes names,
//! run ids and labels.

use baton_core::ActionStatus;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::text::{Line, Span};

use super::app::{run_command, App, Effect};
use super::keymap::{self, Command, Context};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandLine {
    pub text: String,
    /// What Tab offered last, and which of them it shows.
    pub offered: Vec<String>,
    pub choice: Option<usize>,
}

/// What a key did to the command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Editing,
    Cancelled,
    /// Enter: run this.
    Run(String),
    Quit,
}

/// What completion draws on.
pub struct Words<'a> {
    pub context: Context,
    pub read_only: bool,
    pub run_ids: &'a [String],
    pub labels: Vec<&'a str>,
}

impl CommandLine {
    pub fn on_key(&mut self, key: KeyEvent, words: &Words) -> Outcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c') if ctrl => return Outcome::Quit,
            KeyCode::Char('u') if ctrl => self.text.clear(),
            KeyCode::Esc => return Outcome::Cancelled,
            KeyCode::Enter => return Outcome::Run(self.text.trim().to_string()),
            KeyCode::Backspace if self.text.is_empty() => return Outcome::Cancelled,
            KeyCode::Backspace => {
                self.text.pop();
            }
            KeyCode::Tab => {
                self.complete(words);
                return Outcome::Editing;
            }
            KeyCode::Char(c) if !ctrl => self.text.push(c),
            _ => return Outcome::Editing,
        }
        self.offered.clear();
        self.choice = None;
        Outcome::Editing
    }

    /// Tab: completes what is typed to the longest common start of what fits; again, cycles
    /// through them.
    fn complete(&mut self, words: &Words) {
        if let (Some(i), false) = (self.choice, self.offered.is_empty()) {
            let next = (i + 1) % self.offered.len();
            let (head, _) = split_last_word(&self.text);
            self.text = format!("{head}{}", self.offered[next]);
            self.choice = Some(next);
            return;
        }
        let offered = candidates(&self.text, words);
        let (head, last) = split_last_word(&self.text);
        match offered.as_slice() {
            [] => {}
            [only] => {
                self.text = format!("{head}{only}");
                if takes_more(&self.text) {
                    self.text.push(' ');
                }
            }
            many => {
                let common = common_prefix(many);
                if common.len() > last.len() {
                    self.text = format!("{head}{common}");
                } else {
                    self.choice = Some(0);
                    self.text = format!("{head}{}", many[0]);
                }
                self.offered = many.to_vec();
            }
        }
    }

    /// The command line as the footer shows it: what is typed, and what Tab offers.
    pub fn line(&self, accent: ratatui::style::Style, dim: ratatui::style::Style) -> Line<'static> {
        let mut spans = vec![
            Span::styled(":", accent),
            Span::raw(format!("{}█", self.text)),
        ];
        if self.offered.is_empty() {
            spans.push(Span::styled(
                "   Tab completes · Enter runs · Esc cancels",
                dim,
            ));
        } else {
            spans.push(Span::styled(format!("   {}", self.offered.join("  ")), dim));
        }
        Line::from(spans)
    }
}

fn split_last_word(text: &str) -> (&str, &str) {
    match text.rfind(' ') {
        Some(i) => (&text[..=i], &text[i + 1..]),
        None => ("", text),
    }
}

fn takes_more(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [name] => keymap::named(name).is_some_and(|b| !b.args.is_empty()),
        ["retry", "from" | "only"] => true,
        _ => false,
    }
}

fn common_prefix(words: &[String]) -> String {
    let first = &words[0];
    let mut end = first.len();
    for w in &words[1..] {
        end = end.min(
            first
                .char_indices()
                .zip(w.chars())
                .take_while(|((_, a), b)| a == b)
                .map(|((i, a), _)| i + a.len_utf8())
                .last()
                .unwrap_or(0),
        );
    }
    first[..end].to_string()
}

/// What the last word typed can become.
pub fn candidates(text: &str, words: &Words) -> Vec<String> {
    let (head, last) = split_last_word(text);
    let head_words: Vec<&str> = head.split_whitespace().collect();
    let pool: Vec<String> = match head_words.as_slice() {
        [] => {
            let mut names: Vec<String> = keymap::names(words.context, words.read_only)
                .chain(["runs", "run"])
                .map(String::from)
                .collect();
            names.extend(keymap::ALIASES.iter().map(|(alias, _)| alias.to_string()));
            names.sort();
            names.dedup();
            names
        }
        ["run"] => words.run_ids.to_vec(),
        ["retry"] => vec!["failed".into(), "from".into(), "only".into()],
        ["retry", "from" | "only"] => words.labels.iter().map(|l| l.to_string()).collect(),
        ["filter"] => ActionStatus::ALL
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        _ => Vec::new(),
    };
    pool.into_iter().filter(|w| w.starts_with(last)).collect()
}

/// Splits `name rest` and finds the command.
pub fn parse(text: &str) -> Result<(Command, Option<&str>), String> {
    let text = text.trim().trim_start_matches(':');
    let (name, rest) = match text.split_once(' ') {
        Some((name, rest)) => (name, Some(rest.trim()).filter(|r| !r.is_empty())),
        None => (text, None),
    };
    match keymap::named(name) {
        Some(binding) => Ok((binding.command, rest)),
        None => Err(format!("unknown command :{name} (Tab completes)")),
    }
}

/// A key while the run console's command line is open.
pub fn on_key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let Some(mut line) = app.command_line.take() else {
        return Vec::new();
    };
    let words = Words {
        context: app.context(),
        read_only: app.read_only,
        run_ids: &app.run_ids,
        labels: app
            .plan
            .actions()
            .iter()
            .map(|a| a.label.as_str())
            .collect(),
    };
    match line.on_key(key, &words) {
        Outcome::Editing => app.command_line = Some(line),
        Outcome::Cancelled => {}
        Outcome::Quit => return run_command(app, Command::Quit, None),
        Outcome::Run(text) if text.is_empty() => {}
        Outcome::Run(text) => match parse(&text) {
            Ok((command, arg)) => return run_command(app, command, arg),
            Err(message) => app.say(message),
        },
    }
    Vec::new()
}
