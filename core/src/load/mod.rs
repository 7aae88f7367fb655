//! Reading and validating action files. Everything is checked before any state is written, and
//! every problem is reported at once, each naming the file, the action and the field.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::actions::ActionType;
use crate::duration::{parse_duration, seconds_to_duration, DurationError};
use crate::graph::{topological_order, transitive_dependencies};
use crate::hints::did_you_mean;
use crate::model::{
    Action, ActionDetails, ActionIdx, Adjacency, Dialect, Plan, RetryPolicy, TextLists,
};
use crate::template::{self, OutputRefs};

mod read;
pub(crate) mod sck;
pub(crate) mod stored;

pub use read::{MAX_ACTIONS, MAX_TEXT_BYTES, MAX_VALUES};
pub use stored::{read_stored, StoredPlanError, PLAN_FORMAT};

// Limits (docs/action-files.md, "Limits"). Each keeps memory and time bounded on hostile
// input, and each refusal names the file, the action and the field, and says what to do.

/// Action files larger than this are refused before they are read. 32 MiB holds 100,000
/// realistic actions (~300 bytes each, the largest plan baton is built for). What reading one
/// may cost in memory is bounded by the counts in `read` ([`MAX_ACTIONS`], [`MAX_VALUES`],
/// [`MAX_TEXT_BYTES`]), whatever the file is made of.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// YAML files have a lower limit: the YAML parser is several times slower than JSON's, and
/// larger plans are generated, so they belong in JSON.
pub const MAX_YAML_BYTES: u64 = 8 * 1024 * 1024;
/// One action's params, measured as compact JSON. Params are rendered into requests, outputs
/// and state documents that every tick reads and writes (a Lambda has 128 MB); large content
/// belongs in a file (`template_file`) or an S3 object.
pub const MAX_PARAMS_BYTES: usize = 1024 * 1024;
/// Dependencies in a plan once `*` patterns are expanded (a `"*"` in each of 100k actions would
/// be 10 billion).
pub const MAX_DEPENDENCIES: usize = 2_000_000;
/// (pattern, label) comparisons spent expanding `*` patterns in one file. Patterns are
/// expanded once each, and a literal prefix (`deploy-*`) only looks at labels with that prefix,
/// so only many distinct patterns that start with `*` against many labels come near it.
pub(crate) const MAX_PATTERN_COMPARISONS: usize = 10_000_000;
/// Problems listed per file (errors, and warnings, each): the first ones, then a count.
pub const MAX_PROBLEMS: usize = 1000;
/// Labels compared for "did you mean" hints in one file; past it, hints are left out.
const HINT_COMPARISONS: usize = 200_000;
/// Labels shown in one cycle message; longer cycles are elided in the middle.
const MAX_CYCLE_LABELS: usize = 20;
const MAX_LABEL: usize = 256;

/// One problem in an action file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file as the user named it (or `<store>/actions.json` for a stored plan).
    pub file: String,
    /// 1-based line and column, for syntax errors.
    pub position: Option<(usize, usize)>,
    /// 0-based position of the action in the file's list; `None` for file-level problems.
    pub index: Option<usize>,
    /// The action's label, when it has a readable one.
    pub label: Option<String>,
    /// Path of the offending field within the action (`depends_on[2]`, `params.stack_name`);
    /// `None` when the action as a whole is wrong.
    pub field: Option<String>,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

/// Text from the file as it may be printed on a terminal: control characters (a newline, an
/// escape sequence) and the marks that reorder text are written as escapes, so a hostile label
/// can neither forge a line of the report nor repaint the terminal.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let hostile =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(hostile) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hostile(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `"text"` with what a terminal would act on escaped (see [`printable`]).
fn quoted(text: &str) -> String {
    format!("\"{}\"", printable(text))
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", printable(&self.file))?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ":")?;
        if let Some(index) = self.index {
            write!(f, " actions[{index}]")?;
            if let Some(label) = &self.label {
                write!(f, " {}", quoted(label))?;
            }
            write!(f, ":")?;
        }
        if let Some(field) = &self.field {
            write!(f, " {}:", printable(field))?;
        }
        write!(f, " {}", printable(&self.message))
    }
}

/// Everything wrong with a file (errors), plus warnings that do not stop it.
#[derive(Debug, Clone, Default)]
pub struct Problems {
    /// Each stops the file from loading. Past [`MAX_PROBLEMS`], the last one counts the rest.
    pub errors: Vec<Problem>,
    /// Worth a look, but the plan is valid (capped like `errors`).
    pub warnings: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// A valid plan and the warnings found while loading it.
#[derive(Debug)]
pub struct Loaded {
    /// The validated plan.
    pub plan: Plan,
    /// Problems that did not stop the file from loading, for the user to see.
    pub warnings: Vec<Problem>,
}

/// How to parse an action file's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON (also the form of a stored plan).
    Json,
    /// YAML, with the lower size limit [`MAX_YAML_BYTES`].
    Yaml,
    /// JSON when the text starts like JSON, otherwise YAML.
    Detect,
}

/// Reads and validates an action file; `.yaml`, `.yml` and `.actions` files are read as YAML,
/// `.json` files as JSON, and any other as JSON or, if it is not JSON, as YAML.
///
/// A regular file over the size limit is refused before anything is read; anything else (a
/// pipe, `/dev/zero`) is read only up to the limit.
pub fn load_path(path: &Path) -> Result<Loaded, Problems> {
    let file = path.display().to_string();
    let fail = |message: String| one_problem(Problem::file_level(&file, message));
    let format = match path.extension().and_then(|e| e.to_str()) {
        // `.actions` is the Simple Cloud Kit's extension, whose files are YAML.
        Some("yaml" | "yml" | "actions") => Format::Yaml,
        Some("json") => Format::Json,
        _ => Format::Detect,
    };
    let limit = if format == Format::Yaml {
        MAX_YAML_BYTES
    } else {
        MAX_FILE_BYTES
    };
    let unreadable = |e: std::io::Error| fail(format!("cannot read the action file: {e}"));
    let handle = std::fs::File::open(path).map_err(unreadable)?;
    let metadata = handle.metadata().map_err(unreadable)?;
    if metadata.is_file() && metadata.len() > limit {
        return Err(fail(too_large(Some(metadata.len()), limit)));
    }
    let mut bytes = Vec::new();
    handle
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(fail(too_large(None, limit)));
    }
    let read = read_bytes(&file, &bytes, format)?;
    // The text is not needed to put the plan together (at 100k actions, 8 MB less at the peak).
    drop(bytes);
    read.finish()
}

/// The message for a file over `limit` (`size` when known).
fn too_large(size: Option<u64>, limit: u64) -> String {
    let size = match size {
        Some(size) => format!("is {} ({size} bytes)", human_size(size)),
        None => format!("holds more than {}", human_size(limit)),
    };
    if limit == MAX_YAML_BYTES {
        format!(
            "the file {size}; YAML action files are limited to {} (JSON files to {}): convert it \
             to JSON, or split the plan into several",
            human_size(MAX_YAML_BYTES),
            human_size(MAX_FILE_BYTES)
        )
    } else {
        format!(
            "the file {size}; action files are limited to {}: split the plan into several, or \
             move large values out of it (template_file, S3 objects)",
            human_size(limit)
        )
    }
}

/// `512 bytes`, `12.3 KiB`, `50.0 MiB`.
fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} bytes")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if bytes.is_multiple_of(1024 * 1024) {
        format!("{} MiB", bytes / (1024 * 1024))
    } else {
        format!("{:.1} MiB", b / (KIB * KIB))
    }
}

fn one_problem(problem: Problem) -> Problems {
    Problems {
        errors: vec![problem],
        warnings: Vec::new(),
    }
}

/// Parses and validates the bytes of an action file (refusing more than [`MAX_FILE_BYTES`] and
/// anything that is not UTF-8); `file` names it in messages.
pub fn load_bytes(file: &str, bytes: &[u8], format: Format) -> Result<Loaded, Problems> {
    read_bytes(file, bytes, format)?.finish()
}

fn read_bytes<'f>(file: &'f str, bytes: &[u8], format: Format) -> Result<ReadFile<'f>, Problems> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(one_problem(Problem::file_level(
            file,
            too_large(Some(bytes.len() as u64), MAX_FILE_BYTES),
        )));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => read_str(file, text, format),
        Err(err) => {
            let valid = &bytes[..err.valid_up_to()];
            let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count()
                + 1;
            let byte = bytes.get(err.valid_up_to()).copied().unwrap_or_default();
            Err(one_problem(Problem {
                position: Some((line, column)),
                ..Problem::file_level(
                    file,
                    format!("the file is not UTF-8 text (byte 0x{byte:02x} is not valid here)"),
                )
            }))
        }
    }
}

/// Parses and validates action-file text; `file` names it in messages.
pub fn load_str(file: &str, text: &str, format: Format) -> Result<Loaded, Problems> {
    read_str(file, text, format)?.finish()
}

/// An action file read, each action validated on its own: what is left is putting the plan
/// together, which needs the file's text no more.
struct ReadFile<'f> {
    validator: Validator<'f>,
    drafts: Vec<Draft>,
}

impl ReadFile<'_> {
    fn finish(self) -> Result<Loaded, Problems> {
        self.validator.finish_drafts(self.drafts)
    }
}

fn read_str<'f>(file: &'f str, text: &str, format: Format) -> Result<ReadFile<'f>, Problems> {
    // Editors on Windows like to start files with a byte-order mark; it carries no meaning.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut validating = Validating::new(file, None);
    let mut read = read::read_actions(file, text, format, &mut validating)
        .map_err(|problem| one_problem(compile_stage_note(problem, text)))?;
    let stored = match read.format.as_deref() {
        None => None,
        Some(tag) => Some(Dialect::from_tag(tag).ok_or_else(|| {
            one_problem(Problem::file_level(
                file,
                format!(
                    "unknown format \"{}\" (this baton reads baton, sck-v1, sck-v2 and \
                     sck-v3): the plan was stored by a newer baton; open the run with that version",
                    printable(tag)
                ),
            ))
        })?),
    };
    let dialect = validating.detector.dialect(stored);
    if validating.validator.as_ref().map(|v| v.dialect) != Some(dialect) {
        if validating.validator.is_some() {
            // The file's first actions looked like another dialect than the whole file is:
            // read it again under the right rules (rare, and the same reading again).
            validating = Validating::new(file, Some(dialect));
            read = read::read_actions(file, text, format, &mut validating)
                .map_err(|problem| one_problem(compile_stage_note(problem, text)))?;
        } else {
            validating.validator = Some(Validator::new(file, dialect));
        }
    }
    let Validating {
        validator, drafts, ..
    } = validating;
    let mut validator = validator.unwrap_or_else(|| Validator::new(file, dialect));
    for (index, field, message) in read.findings {
        let label = drafts.get(index).and_then(|d| d.label.clone());
        validator.error(index, label.as_deref(), &field, message);
    }
    Ok(ReadFile { validator, drafts })
}

/// Validates each action as the reader hands it over, under the dialect the actions read so
/// far say (or the one given, on a second reading), so an action's parsed tree is dropped as
/// soon as it is validated.
struct Validating<'f> {
    file: &'f str,
    dialect: Option<Dialect>,
    detector: sck::Detector,
    /// Made at the first action, under the dialect known then.
    validator: Option<Validator<'f>>,
    drafts: Vec<Draft>,
}

impl<'f> Validating<'f> {
    fn new(file: &'f str, dialect: Option<Dialect>) -> Self {
        Validating {
            file,
            dialect,
            detector: sck::Detector::new(file),
            validator: None,
            drafts: Vec::new(),
        }
    }
}

impl read::ActionSink for Validating<'_> {
    fn restart(&mut self) {
        *self = Validating::new(self.file, self.dialect);
    }

    fn action(&mut self, index: usize, action: Value, format: Option<&str>) {
        self.detector.observe(&action);
        let validator = self.validator.get_or_insert_with(|| {
            let stored = format.and_then(Dialect::from_tag);
            let dialect = self.dialect.unwrap_or(self.detector.dialect(stored));
            Validator::new(self.file, dialect)
        });
        self.drafts.push(validator.read_action(index, action));
    }
}

/// A file that does not parse and holds Jinja tags at the start of a line is an SCK action
/// template that SCK's compile stage renders before its runner reads it; the parser's words
/// alone ("did not find expected node content") would not say so.
fn compile_stage_note(mut problem: Problem, text: &str) -> Problem {
    let syntax =
        problem.message.starts_with("invalid YAML") || problem.message.starts_with("invalid JSON");
    if !syntax {
        return problem;
    }
    let tag = text.lines().enumerate().find(|(_, line)| {
        let line = line.trim_start().trim_start_matches("- ");
        line.starts_with("{%") || line.starts_with("{{")
    });
    if let Some((n, line)) = tag {
        let line = line.trim();
        let mut shown: String = line.chars().take(60).collect();
        if shown.len() < line.len() {
            shown.push('…');
        }
        problem.message = format!(
            "{}; line {} holds an unrendered template tag (`{}`): this is an SCK action \
             template, which SCK's compile stage renders before the runner reads it; give baton \
             the compiled action file",
            problem.message,
            n + 1,
            printable(&shown)
        );
    }
    problem
}

/// How deeply lists and objects may nest in an action file: serde_json's limit, which YAML
/// files are held to as well so every accepted plan can be stored and read back as JSON.
pub const MAX_NESTING: usize = 127;

fn nested_too_deeply() -> String {
    format!("nested too deeply: lists and objects may be nested at most {MAX_NESTING} levels deep")
}

/// Levels of lists and objects (a scalar is 0). Recursion is bounded by the parser's limit.
pub(crate) fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

impl Problem {
    fn file_level(file: &str, message: impl Into<String>) -> Self {
        Problem {
            file: file.to_string(),
            position: None,
            index: None,
            label: None,
            field: None,
            message: message.into(),
        }
    }
}

/// Canonical field names and the aliases accepted for older action files.
const FIELDS: &[(&str, &[&str])] = &[
    ("label", &["Label", "Name"]),
    ("type", &["Type", "Kind"]),
    ("depends_on", &["DependsOn"]),
    ("params", &["Params", "Spec"]),
    ("condition", &["Condition"]),
    ("timeout", &["Timeout"]),
    ("retry", &["Retry"]),
    ("description", &["Description"]),
];

fn canonical_field(key: &str) -> Option<&'static str> {
    FIELDS
        .iter()
        .find(|(name, aliases)| *name == key || aliases.contains(&key))
        .map(|(name, _)| *name)
}

/// One action as read, before dependencies are resolved.
#[derive(Default)]
struct Draft {
    label: Option<String>,
    action_type: Option<ActionType>,
    params: Value,
    /// What each template reads, by field.
    refs: Vec<(String, OutputRefs)>,
    templated: bool,
    /// `None`: not said (on).
    save_outputs: Option<bool>,
    /// SCK's `before` as written and what few actions have, boxed as the plan's action keeps
    /// them: every action's draft is held until the whole file is read (`depends_on` as
    /// written is kept by the validator, every action's in one buffer).
    details: Option<Box<ActionDetails>>,
}

impl Draft {
    fn details(&self) -> &ActionDetails {
        self.details.as_deref().unwrap_or(&crate::model::NO_DETAILS)
    }
}

struct Validator<'f> {
    file: &'f str,
    /// The file's spelling and rules.
    dialect: Dialect,
    /// How each SCK action spelled its fields, by index, so problems name them as written.
    spellings: Vec<Option<sck::Spelling>>,
    /// Each action's `depends_on` as written, by index.
    depends_on: TextLists,
    problems: Problems,
    /// Problems past [`MAX_PROBLEMS`], counted but not kept.
    unlisted_errors: usize,
    unlisted_warnings: usize,
    /// Cycles past [`crate::graph::MAX_CYCLES`], counted but not listed.
    unlisted_cycles: usize,
    /// What is left of [`HINT_COMPARISONS`].
    hint_budget: usize,
}

impl<'f> Validator<'f> {
    fn new(file: &'f str, dialect: Dialect) -> Self {
        Validator {
            file,
            dialect,
            spellings: Vec::new(),
            depends_on: TextLists::default(),
            problems: Problems::default(),
            unlisted_errors: 0,
            unlisted_warnings: 0,
            unlisted_cycles: 0,
            hint_budget: HINT_COMPARISONS,
        }
    }

    /// ` (did you mean "x"?)` for a label-like name among `count` candidates, while the file's
    /// hint budget lasts (each hint compares the name with every candidate).
    fn hint<'a>(
        &mut self,
        word: &str,
        count: usize,
        candidates: impl Iterator<Item = &'a str>,
    ) -> String {
        // Past the listed problems a hint would not be shown.
        if count > self.hint_budget || self.problems.errors.len() >= MAX_PROBLEMS {
            self.hint_budget = self.hint_budget.saturating_sub(count);
            return String::new();
        }
        self.hint_budget -= count;
        did_you_mean(word, candidates).unwrap_or_default()
    }

    fn error(
        &mut self,
        index: usize,
        label: Option<&str>,
        field: &str,
        message: impl Into<String>,
    ) {
        if self.problems.errors.len() >= MAX_PROBLEMS {
            self.unlisted_errors += 1;
            return;
        }
        let field = self.written_field(index, field);
        self.problems.errors.push(Problem {
            file: self.file.to_string(),
            position: None,
            index: Some(index),
            label: label.map(str::to_string),
            field: (!field.is_empty()).then_some(field),
            message: message.into(),
        });
    }

    fn warning(&mut self, index: usize, label: &str, field: &str, message: impl Into<String>) {
        if self.problems.warnings.len() >= MAX_PROBLEMS {
            self.unlisted_warnings += 1;
            return;
        }
        let field = self.written_field(index, field);
        self.problems.warnings.push(Problem {
            file: self.file.to_string(),
            position: None,
            index: Some(index),
            label: Some(label.to_string()),
            field: Some(field),
            message: message.into(),
        });
    }

    /// A field path in baton's names as action `index` spells it.
    fn written_field(&self, index: usize, field: &str) -> String {
        match self.spellings.get(index) {
            Some(Some(spelling)) => spelling.translate(field),
            _ => field.to_string(),
        }
    }

    /// Everything after reading each action: labels, dependencies, cycles, template reads.
    fn finish_drafts(mut self, mut drafts: Vec<Draft>) -> Result<Loaded, Problems> {
        if drafts.is_empty() {
            self.problems
                .warnings
                .push(Problem::file_level(self.file, "the plan has no actions"));
        }

        let index = self.index_labels(&drafts);
        let deps: Adjacency = self.resolve_dependencies(&drafts, &index).iter().collect();
        if !self.problems.errors.is_empty() {
            return Err(self.finish());
        }
        let order = match topological_order(&deps) {
            Ok(order) => order,
            Err(cycles) => {
                let more = cycles.more;
                for mut cycle in cycles.found {
                    // Start at the first action in file order, so the message is stable.
                    let start = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
                    cycle.rotate_left(start);
                    let path = cycle_path(&drafts, &cycle);
                    let first = cycle[0] as usize;
                    self.error(
                        first,
                        drafts[first].label.as_deref(),
                        "depends_on",
                        format!("dependency cycle: {path}"),
                    );
                }
                self.unlisted_cycles = more;
                return Err(self.finish());
            }
        };

        // Every draft has a label and type here: a missing one was an error above.
        let complete = |d: &Draft| d.label.is_some() && d.action_type.is_some();
        let mut read_labels = Vec::with_capacity(drafts.len());
        for draft in drafts.iter_mut().filter(|d| complete(d)) {
            let refs = std::mem::take(&mut draft.refs);
            let reads_vars: Vec<(String, String)> = refs
                .iter()
                .flat_map(|(field, refs)| refs.vars.iter().map(|v| (field.clone(), v.clone())))
                .collect();
            if !reads_vars.is_empty() {
                draft.details.get_or_insert_with(Box::default).reads_vars = reads_vars;
            }
            read_labels.push(refs);
        }
        // A draft is the size of an action, so the actions take the drafts' place (collected
        // in place: at 100k actions both lists at once were 14 MB more at the peak).
        let actions: Vec<Action> = drafts
            .into_iter()
            .filter_map(|draft| {
                let (Some(label), Some(action_type)) = (draft.label, draft.action_type) else {
                    return None;
                };
                Some(Action {
                    label,
                    action_type,
                    templated: draft.templated,
                    save_outputs: draft.save_outputs.unwrap_or(true),
                    params: draft.params,
                    reads_outputs: None,
                    details: draft.details,
                })
            })
            .collect();
        let depends_on = std::mem::take(&mut self.depends_on);
        let mut plan = Plan::new(
            self.file.to_string(),
            self.dialect,
            actions,
            deps,
            order,
            depends_on,
        );
        let lookups: Vec<sck::Lookups> = read_labels
            .iter()
            .map(|refs| sck::Lookups::of(refs))
            .collect();
        self.check_output_refs(&mut plan, read_labels);
        self.check_state_reads(&mut plan, lookups);
        if self.problems.errors.is_empty() {
            Ok(Loaded {
                plan,
                warnings: self.finish().warnings,
            })
        } else {
            Err(self.finish())
        }
    }

    /// Each label's first action. Duplicate labels make every later reference ambiguous, so
    /// they are errors and resolution stops after them.
    fn index_labels<'d>(&mut self, drafts: &'d [Draft]) -> HashMap<&'d str, usize> {
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(drafts.len());
        let mut duplicates = Vec::new();
        for (i, draft) in drafts.iter().enumerate() {
            if let Some(label) = &draft.label {
                if let Some(&first) = index.get(label.as_str()) {
                    duplicates.push((i, label.clone(), first));
                } else {
                    index.insert(label, i);
                }
            }
        }
        for (i, label, first) in duplicates {
            self.error(
                i,
                Some(&label),
                "label",
                format!("duplicate label (first used by actions[{first}])"),
            );
        }
        index
    }

    /// Problems in file order (stable: within an action, in the order they were found), then a
    /// count of those not listed.
    fn finish(mut self) -> Problems {
        self.problems.errors.sort_by_key(|p| p.index);
        self.problems.warnings.sort_by_key(|p| p.index);
        let unlisted = |n: usize, what: &str| {
            Problem::file_level(
                self.file,
                format!("{n} more {what} not listed (only the first {MAX_PROBLEMS} are)"),
            )
        };
        if self.unlisted_cycles > 0 {
            let note = Problem::file_level(
                self.file,
                format!(
                    "{} more dependency cycles not listed (only the first {} are); break these \
                     and validate again",
                    self.unlisted_cycles,
                    crate::graph::MAX_CYCLES
                ),
            );
            self.problems.errors.push(note);
        }
        if self.unlisted_errors > 0 {
            let note = unlisted(self.unlisted_errors, "problems");
            self.problems.errors.push(note);
        }
        if self.unlisted_warnings > 0 {
            let note = unlisted(self.unlisted_warnings, "warnings");
            self.problems.warnings.push(note);
        }
        self.problems
    }

    /// Reads action `i` (the actions are read in order).
    fn read_action(&mut self, i: usize, item: Value) -> Draft {
        let (draft, depends_on) = self.read_action_fields(i, item);
        self.depends_on.push(depends_on.iter().map(String::as_str));
        draft
    }

    /// The action's draft, and its `depends_on` as written.
    fn read_action_fields(&mut self, i: usize, item: Value) -> (Draft, Vec<String>) {
        let mut draft = Draft::default();
        let Value::Object(object) = item else {
            self.error(
                i,
                None,
                "",
                format!(
                    "expected an action object with label and type, found {}",
                    describe_kind(&item)
                ),
            );
            return (draft, Vec::new());
        };
        let mut fields = if self.dialect.is_sck() {
            self.sck_fields(i, object)
        } else {
            self.canonical_fields(i, object)
        };
        draft.label = self.read_label(i, fields.remove("label"));
        let label = draft.label.clone();
        let label = label.as_deref();
        draft.action_type = self.read_type(i, label, fields.remove("type"));
        let depends_on = self.read_depends_on(i, label, "depends_on", fields.remove("depends_on"));
        let mut details = ActionDetails::default();
        // Oversized params are neither kept nor checked further: that error is the one worth reading.
        if let Some(params) = self.read_params(i, label, fields.remove("params")) {
            draft.params = params;
            self.check_params(i, label, &mut draft);
        }
        details.condition =
            self.read_condition(i, label, fields.remove("condition"), &mut draft.refs);
        details.timeout = self.read_timeout(i, label, fields.remove("timeout"));
        details.retry = self.read_retry(i, label, fields.remove("retry"));
        details.description = self.read_description(i, label, fields.remove("description"));
        if self.dialect.is_sck() {
            self.read_sck_fields(i, label, fields, &mut draft, &mut details);
        }
        draft.details = details.boxed();
        (draft, depends_on)
    }

    /// The action's fields under their canonical names; duplicate spellings and unknown fields
    /// are reported.
    fn canonical_fields(&mut self, i: usize, object: Map<String, Value>) -> Map<String, Value> {
        let mut fields: Map<String, Value> = Map::new();
        let mut spelled: HashMap<&'static str, String> = HashMap::new();
        // Only a valid label is repeated in messages (an invalid one could be megabytes long,
        // and would be repeated once per unknown field).
        let label_hint = object
            .get("label")
            .or_else(|| object.get("Label"))
            .or_else(|| object.get("Name"))
            .and_then(Value::as_str)
            .filter(|label| label_problem(label).is_none())
            .map(str::to_string);
        let label_hint = label_hint.as_deref();
        for (key, value) in object {
            match canonical_field(&key) {
                Some(name) => {
                    if let Some(previous) = spelled.insert(name, key.clone()) {
                        self.error(
                            i,
                            label_hint,
                            &key,
                            format!("duplicates field \"{previous}\" (both mean {name})"),
                        );
                    }
                    fields.insert(name.to_string(), value);
                }
                None => {
                    let names = FIELDS.iter().map(|(name, _)| *name);
                    let hint = did_you_mean(&key, names).unwrap_or_else(|| {
                        " (allowed: label, type, depends_on, params, condition, timeout, retry, description)"
                            .to_string()
                    });
                    self.error(i, label_hint, &key, format!("unknown field{hint}"));
                }
            }
        }
        fields
    }

    fn read_label(&mut self, i: usize, value: Option<Value>) -> Option<String> {
        match value {
            Some(Value::String(label)) => match label_problem(&label) {
                Some(message) => self.error(i, Some(&label), "label", message),
                None => return Some(label),
            },
            Some(other) => self.error(
                i,
                None,
                "label",
                format!("must be a string, not {}", describe_kind(&other)),
            ),
            None => self.error(i, None, "label", "missing required field"),
        }
        None
    }

    fn read_type(
        &mut self,
        i: usize,
        label: Option<&str>,
        value: Option<Value>,
    ) -> Option<ActionType> {
        match value {
            Some(Value::String(name)) => match ActionType::from_name(&name) {
                Some(t) => return Some(t),
                None if template::is_template(&name) => {
                    let message = unrendered_template(&name).unwrap_or_default();
                    self.error(i, label, "type", format!("\"{name}\" {message}"));
                }
                None => {
                    let canonical = crate::actions::canonical_type_name(&name);
                    let hint = did_you_mean(&canonical, ActionType::ALL.iter().map(|t| t.name()))
                        .unwrap_or_else(|| format!(" (known types: {})", type_list()));
                    self.error(
                        i,
                        label,
                        "type",
                        format!("unknown action type \"{name}\"{hint}"),
                    );
                }
            },
            Some(other) => self.error(
                i,
                label,
                "type",
                format!("must be a string, not {}", describe_kind(&other)),
            ),
            None => self.error(i, label, "type", "missing required field"),
        }
        None
    }

    /// A list of labels and patterns: `depends_on`, or (SCK) `before`.
    fn read_depends_on(
        &mut self,
        i: usize,
        label: Option<&str>,
        field: &str,
        value: Option<Value>,
    ) -> Vec<String> {
        let mut depends_on = Vec::new();
        match value {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (j, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(dep) if !dep.is_empty() => depends_on.push(dep),
                        Value::String(_) => self.error(
                            i,
                            label,
                            &format!("{field}[{j}]"),
                            "empty label: name an action, or a pattern such as \"build-*\"",
                        ),
                        other => self.error(
                            i,
                            label,
                            &format!("{field}[{j}]"),
                            format!("must be a label or pattern, not {}", describe_kind(&other)),
                        ),
                    }
                }
            }
            Some(other) => self.error(
                i,
                label,
                field,
                format!("must be a list of labels, not {}", describe_kind(&other)),
            ),
        }
        depends_on
    }

    /// The params to keep (`Null` when absent or not an object), or `None` when they are too
    /// large to keep.
    fn read_params(
        &mut self,
        i: usize,
        label: Option<&str>,
        value: Option<Value>,
    ) -> Option<Value> {
        match value {
            None | Some(Value::Null) => {}
            Some(params @ Value::Object(_)) => {
                let (size, heaviest, part) = size_and_heaviest(&params);
                if size <= MAX_PARAMS_BYTES {
                    return Some(params);
                }
                self.error(
                    i,
                    label,
                    &format!("params{heaviest}"),
                    format!(
                        "{} {} of JSON; an action's params may hold at most {} in all: put \
                         large content in a file (template_file) or an S3 object and pass \
                         its name",
                        if heaviest.is_empty() { "hold" } else { "is" },
                        human_size(part as u64),
                        human_size(MAX_PARAMS_BYTES as u64)
                    ),
                );
                return None;
            }
            Some(other) => self.error(
                i,
                label,
                "params",
                format!("must be an object, not {}", describe_kind(&other)),
            ),
        }
        Some(Value::Null)
    }

    /// The draft's params against its action type and as templates.
    fn check_params(&mut self, i: usize, label: Option<&str>, draft: &mut Draft) {
        if let Some(action_type) = draft.action_type {
            for problem in schema_problems(action_type, &draft.params) {
                let field = if problem.path.is_empty() {
                    "params".to_string()
                } else {
                    format!("params.{}", problem.path)
                };
                let message = if self.dialect.is_sck() {
                    sck::in_sck_words(action_type.name(), &problem.message)
                } else {
                    problem.message
                };
                self.error(i, label, &field, message);
            }
        }
        for (path, message) in template::check_params(&draft.params, &mut draft.refs) {
            self.error(
                i,
                label,
                &format!("params.{path}"),
                format!("template error: {message}"),
            );
        }
        draft.templated = params_have_templates(&draft.params);
    }

    fn read_condition(
        &mut self,
        i: usize,
        label: Option<&str>,
        value: Option<Value>,
        refs: &mut Vec<(String, OutputRefs)>,
    ) -> Option<String> {
        match value {
            None | Some(Value::Null) => {}
            Some(Value::String(expression)) => match template::check_expression(&expression) {
                Ok(read) => {
                    refs.push(("condition".into(), read));
                    return Some(expression);
                }
                Err(message) => self.error(
                    i,
                    label,
                    "condition",
                    format!("expression error: {message}"),
                ),
            },
            Some(Value::Bool(value)) => return Some(value.to_string()),
            Some(other) => self.error(
                i,
                label,
                "condition",
                format!(
                    "must be an expression string, not {}",
                    describe_kind(&other)
                ),
            ),
        }
        None
    }

    fn read_timeout(
        &mut self,
        i: usize,
        label: Option<&str>,
        value: Option<Value>,
    ) -> Option<Duration> {
        match duration_value(value.as_ref().filter(|v| !v.is_null())?) {
            Ok(d) if d.is_zero() => self.error(i, label, "timeout", "must be longer than zero"),
            Ok(d) => return Some(d),
            Err(message) => self.error(i, label, "timeout", message.to_string()),
        }
        None
    }

    fn read_retry(
        &mut self,
        i: usize,
        label: Option<&str>,
        value: Option<Value>,
    ) -> Option<RetryPolicy> {
        match retry_policy(value.as_ref().filter(|v| !v.is_null())?) {
            Ok(policy) => return Some(policy),
            Err((field, message)) => self.error(i, label, &field, message),
        }
        None
    }

    fn read_description(
        &mut self,
        i: usize,
        label: Option<&str>,
        value: Option<Value>,
    ) -> Option<String> {
        match value {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => return Some(text),
            Some(other) => self.error(
                i,
                label,
                "description",
                format!("must be a string, not {}", describe_kind(&other)),
            ),
        }
        None
    }

    /// Each action's dependencies as indices: its `depends_on` entries, and the actions whose
    /// `before` names it (A before X: X waits for A). Patterns are expanded by the file's rule.
    fn resolve_dependencies(
        &mut self,
        drafts: &[Draft],
        index: &HashMap<&str, usize>,
    ) -> Vec<Vec<ActionIdx>> {
        let mut resolver = Resolver::new(drafts, index);
        let mut all: Vec<Vec<ActionIdx>> = Vec::with_capacity(drafts.len());
        // Taken out while entries are resolved (which reports problems through `self`).
        let written = std::mem::take(&mut self.depends_on);
        for i in 0..drafts.len() {
            let depends_on = written.list(i);
            let mut deps: Vec<ActionIdx> = Vec::with_capacity(depends_on.len());
            for (j, dep) in depends_on.enumerate() {
                if resolver.stopped {
                    break;
                }
                let field = format!("depends_on[{j}]");
                self.resolve_entry(&mut resolver, drafts, i, &field, dep, &mut deps);
            }
            all.push(deps);
        }
        for (i, draft) in drafts.iter().enumerate() {
            for (j, entry) in draft.details().before.iter().enumerate() {
                if resolver.stopped {
                    break;
                }
                let mut targets = Vec::new();
                let field = format!("before[{j}]");
                self.resolve_entry(&mut resolver, drafts, i, &field, entry, &mut targets);
                for target in targets {
                    all[target as usize].push(i as ActionIdx);
                }
            }
        }
        self.depends_on = written;
        for deps in &mut all {
            deps.sort_unstable();
            deps.dedup();
        }
        all
    }

    /// Resolves one entry (a label or a pattern) of action `i`'s `field` into `out`.
    fn resolve_entry(
        &mut self,
        resolver: &mut Resolver<'_>,
        drafts: &[Draft],
        i: usize,
        field: &str,
        entry: &str,
        out: &mut Vec<ActionIdx>,
    ) {
        let label = drafts[i].label.as_deref();
        if entry.contains('*') {
            let edges = resolver.edges;
            let Some(matches) = resolver.expand(entry, self.dialect) else {
                self.error(
                    i,
                    label,
                    field,
                    format!(
                        "expanding the plan's depends_on patterns takes more than \
                         {MAX_PATTERN_COMPARISONS} label comparisons; use fewer distinct \
                         patterns, patterns that start with a fixed prefix (\"deploy-*\" rather \
                         than \"*-deploy\"), or exact labels"
                    ),
                );
                resolver.stopped = true;
                return;
            };
            let before = out.len();
            let too_many = edges + matches.len() > MAX_DEPENDENCIES;
            if !too_many {
                out.extend(matches.iter().filter(|&&k| k as usize != i));
            }
            if too_many {
                self.error(i, label, field, too_many_dependencies());
                resolver.stopped = true;
                return;
            }
            resolver.edges += out.len() - before;
            if out.len() == before {
                self.warning(
                    i,
                    label.unwrap_or("?"),
                    field,
                    format!("pattern \"{entry}\" matches no action"),
                );
            }
            return;
        }
        match resolver.index.get(entry) {
            Some(&k) if k == i => {
                let message = if field.starts_with("before") {
                    "an action cannot come before itself"
                } else {
                    "an action cannot depend on itself"
                };
                self.error(i, label, field, message);
            }
            Some(&k) => {
                if resolver.edges >= MAX_DEPENDENCIES {
                    self.error(i, label, field, too_many_dependencies());
                    resolver.stopped = true;
                    return;
                }
                resolver.edges += 1;
                out.push(k as ActionIdx);
            }
            None => {
                // Candidates in file order, so ties go to the earlier action; never the
                // action itself, which it could not depend on anyway.
                let hint = self.hint(
                    entry,
                    resolver.labels.len(),
                    drafts
                        .iter()
                        .filter_map(|d| d.label.as_deref())
                        .filter(|&l| Some(l) != label),
                );
                if self.dialect.is_sck() {
                    self.warning(
                        i,
                        label.unwrap_or("?"),
                        field,
                        format!(
                            "no action is named \"{entry}\"{hint}; SCK ignores a dependency on an \
                             action that is not in the file (optional parts rely on it), and so \
                             does baton for SCK files"
                        ),
                    );
                } else {
                    self.error(i, label, field, format!("unknown action \"{entry}\"{hint}"));
                }
            }
        }
    }

    /// A template may read only outputs of actions that are guaranteed to have finished first.
    /// Every (reader, target) pair is answered in one batched pass over the graph (an ancestor
    /// walk per reader was quadratic: minutes for a 100k chain that reads outputs).
    fn check_output_refs(&mut self, plan: &mut Plan, read_labels: Vec<Vec<(String, OutputRefs)>>) {
        enum Read {
            Unknown {
                field: String,
                name: String,
            },
            Known {
                field: String,
                name: String,
                target: ActionIdx,
            },
        }
        let mut reads: Vec<Vec<Read>> = Vec::with_capacity(read_labels.len());
        let mut queries = Vec::new();
        for (idx, refs) in read_labels.into_iter().enumerate() {
            let mut found = Vec::new();
            for (field, refs) in refs {
                for read in refs.dynamic {
                    let label = plan.actions[idx].label.clone();
                    self.error(
                        idx,
                        Some(&label),
                        &field,
                        format!(
                            "template reads outputs without naming the action: `{read}`; read \
                             each action's outputs as outputs.LABEL or outputs[\"LABEL\"], so \
                             that only actions that finished first can be read"
                        ),
                    );
                }
                for name in refs.labels {
                    match plan.find(&name) {
                        Some(target) => {
                            queries.push((idx as ActionIdx, target));
                            found.push(Read::Known {
                                field: field.clone(),
                                name,
                                target,
                            });
                        }
                        None => found.push(Read::Unknown {
                            field: field.clone(),
                            name,
                        }),
                    }
                }
            }
            reads.push(found);
        }
        let answers = transitive_dependencies(&plan.deps, &plan.order, &queries);
        let mut answers = answers.into_iter();
        for (idx, found) in reads.into_iter().enumerate() {
            let label = plan.actions[idx].label.clone();
            let mut targets = Vec::new();
            for read in found {
                match read {
                    Read::Unknown { field, name } => {
                        let hint = self.hint(
                            &name,
                            plan.len(),
                            plan.actions
                                .iter()
                                .map(|a| a.label.as_str())
                                .filter(|&l| l != label),
                        );
                        self.error(
                            idx,
                            Some(&label),
                            &field,
                            format!(
                                "template reads outputs[\"{name}\"] but no action has that label{hint}"
                            ),
                        );
                    }
                    Read::Known {
                        field,
                        name,
                        target,
                    } => {
                        if answers.next().unwrap_or(false) {
                            targets.push(target);
                        } else {
                            self.error(
                                idx,
                                Some(&label),
                                &field,
                                format!(
                                    "template reads outputs[\"{name}\"] but \"{name}\" is not a \
                                     dependency; add it to depends_on so it finishes first"
                                ),
                            );
                        }
                    }
                }
            }
            targets.sort_unstable();
            targets.dedup();
            plan.actions[idx].reads_outputs = Some(targets);
        }
    }
}

/// `a → b → a`, shortened in the middle when the cycle is long.
fn cycle_path(drafts: &[Draft], cycle: &[ActionIdx]) -> String {
    let name = |i: &ActionIdx| drafts[*i as usize].label.as_deref().unwrap_or("?");
    if cycle.len() <= MAX_CYCLE_LABELS {
        cycle
            .iter()
            .chain(cycle.first())
            .map(name)
            .collect::<Vec<_>>()
            .join(" → ")
    } else {
        // A cycle through 100k actions is not read label by label.
        let half = MAX_CYCLE_LABELS / 2;
        let head: Vec<&str> = cycle[..half].iter().map(name).collect();
        let tail: Vec<&str> = cycle[cycle.len() - half..]
            .iter()
            .chain(cycle.first())
            .map(name)
            .collect();
        format!(
            "{} → … {} more … → {}",
            head.join(" → "),
            cycle.len() - 2 * half,
            tail.join(" → ")
        )
    }
}

fn too_many_dependencies() -> String {
    format!(
        "the plan has more than {MAX_DEPENDENCIES} dependencies once patterns are expanded; \
         join wide fan-ins through a system.no_op action, or split the plan"
    )
}

/// `a**b` → `a*b`: the same pattern, and no quadratic walk over runs of stars.
fn collapse_stars(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        if !(c == '*' && out.ends_with('*')) {
            out.push(c);
        }
    }
    out
}

/// What resolving one file's dependencies has spent, and the patterns it expanded.
struct Resolver<'d> {
    labels: LabelIndex<'d>,
    index: &'d HashMap<&'d str, usize>,
    /// Each distinct pattern's matches, in file order.
    patterns: HashMap<String, Vec<ActionIdx>>,
    comparisons: usize,
    edges: usize,
    /// A budget ran out: nothing more is resolved.
    stopped: bool,
}

impl<'d> Resolver<'d> {
    fn new(drafts: &'d [Draft], index: &'d HashMap<&'d str, usize>) -> Self {
        Resolver {
            labels: LabelIndex::new(drafts),
            index,
            patterns: HashMap::new(),
            comparisons: 0,
            edges: 0,
            stopped: false,
        }
    }

    /// The actions `pattern` matches (by SCK's rule in SCK files), or `None` once expanding
    /// patterns has cost more than [`MAX_PATTERN_COMPARISONS`].
    fn expand(&mut self, pattern: &str, dialect: Dialect) -> Option<&[ActionIdx]> {
        let pattern = collapse_stars(pattern);
        if !self.patterns.contains_key(&pattern) {
            let candidates = self.labels.with_prefix(&pattern);
            self.comparisons += candidates.len();
            if self.comparisons > MAX_PATTERN_COMPARISONS {
                return None;
            }
            let matches_label = |label: &str| {
                if dialect.is_sck() {
                    sck::pattern_match(&pattern, label)
                } else {
                    glob_match(&pattern, label)
                }
            };
            let mut matches: Vec<ActionIdx> = candidates
                .iter()
                .filter(|&&(l, _)| matches_label(l))
                .map(|&(_, k)| k as ActionIdx)
                .collect();
            matches.sort_unstable();
            self.patterns.insert(pattern.clone(), matches);
        }
        self.patterns.get(&pattern).map(Vec::as_slice)
    }
}

/// Labels sorted, so a pattern with a fixed prefix looks only at the labels that share it.
struct LabelIndex<'d> {
    sorted: Vec<(&'d str, usize)>,
}

impl<'d> LabelIndex<'d> {
    fn new(drafts: &'d [Draft]) -> Self {
        let mut sorted: Vec<(&str, usize)> = drafts
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.label.as_deref().map(|l| (l, i)))
            .collect();
        sorted.sort_unstable();
        LabelIndex { sorted }
    }

    fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Labels that start with the pattern's text before its first `*`. A pattern with more
    /// fixed text than a label can hold matches nothing.
    fn with_prefix(&self, pattern: &str) -> &[(&'d str, usize)] {
        if pattern.len() - pattern.matches('*').count() > MAX_LABEL {
            return &[];
        }
        let prefix = pattern.split('*').next().unwrap_or_default();
        let start = self.sorted.partition_point(|&(l, _)| l < prefix);
        let len = self.sorted[start..].partition_point(|&(l, _)| l.starts_with(prefix));
        &self.sorted[start..start + len]
    }
}

/// Counts bytes written; compact JSON sizes without building the text.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn json_len(value: &impl serde::Serialize) -> usize {
    let mut count = ByteCount(0);
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// The compact-JSON size of `value`, and the part that makes it big: the path (`.a.b[2]`,
/// empty for the whole value), followed for as long as one child holds more than half of its
/// parent, and that part's size. One pass; recursion is bounded by the parsers' nesting limit.
fn size_and_heaviest(value: &Value) -> (usize, String, usize) {
    let (size, mut segments, part) = weigh(value);
    segments.reverse();
    (size, segments.concat(), part)
}

/// A child of a value: its size, which child it is (index or key), the path segments below it
/// and the size of the part they lead to.
type Heaviest<'v> = (usize, Result<usize, &'v str>, Vec<String>, usize);

/// (size, path segments innermost first, size of the part they lead to).
fn weigh<'v>(value: &'v Value) -> (usize, Vec<String>, usize) {
    let mut total = 2;
    let mut count = 0usize;
    // (size, which child, its segments, its part)
    let mut heaviest: Option<Heaviest<'v>> = None;
    let mut visit = |which: Result<usize, &'v str>, child: &'v Value| {
        let (size, segments, part) = weigh(child);
        total += size + which.err().map_or(0, |key| json_len(&key) + 1);
        count += 1;
        if heaviest.as_ref().is_none_or(|h| size > h.0) {
            heaviest = Some((size, which, segments, part));
        }
    };
    match value {
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| visit(Ok(i), v)),
        Value::Object(map) => map.iter().for_each(|(k, v)| visit(Err(k.as_str()), v)),
        leaf => {
            let size = json_len(leaf);
            return (size, Vec::new(), size);
        }
    }
    total += count.saturating_sub(1);
    match heaviest {
        Some((size, which, mut segments, part)) if size * 2 > total => {
            segments.push(match which {
                Ok(i) => format!("[{i}]"),
                Err(key) => format!(".{key}"),
            });
            (total, segments, part)
        }
        _ => (total, Vec::new(), total),
    }
}

/// The most problems one action's params report; past them the first ones are worth fixing.
const MAX_PARAMS_PROBLEMS: usize = 20;

/// Every problem a type's schema finds in `params`, not only the first one the parser stops
/// at: after each, the top-level param it is about is left out and the rest is checked again.
fn schema_problems(action_type: ActionType, params: &Value) -> Vec<crate::actions::ParamsProblem> {
    let first = match action_type.check_params(params) {
        Ok(()) => return Vec::new(),
        Err(problem) => problem,
    };
    let Value::Object(map) = params else {
        return vec![first];
    };
    let mut rest = map.clone();
    let mut problems = Vec::new();
    // Params left out because their value was wrong (not because they are unknown): a check of
    // the params as a whole, or a "missing" one of them, would then blame what is not so.
    let mut left_out: Vec<String> = Vec::new();
    let mut next = Some(first);
    while let Some(problem) = next.take() {
        let top =
            problem.path[..problem.path.find(['.', '[']).unwrap_or(problem.path.len())].to_string();
        let spurious = (problem.message == "missing required field" && left_out.contains(&top))
            || (top.is_empty() && !left_out.is_empty());
        if spurious {
            break;
        }
        let unknown = problem.message.starts_with("unknown field");
        problems.push(problem);
        if top.is_empty() || !rest.contains_key(&top) || problems.len() >= MAX_PARAMS_PROBLEMS {
            break;
        }
        rest.remove(&top);
        if !unknown {
            left_out.push(top);
        }
        next = action_type.check_params(&Value::Object(rest.clone())).err();
    }
    problems
}

fn params_have_templates(value: &Value) -> bool {
    match value {
        Value::String(s) => crate::template::is_template(s),
        Value::Array(items) => items.iter().any(params_have_templates),
        Value::Object(map) => map.values().any(params_have_templates),
        _ => false,
    }
}

fn label_problem(label: &str) -> Option<String> {
    if label.is_empty() {
        return Some("must not be empty".into());
    }
    if label.len() > MAX_LABEL {
        return Some(format!(
            "is {} characters long; the limit is {MAX_LABEL}",
            label.len()
        ));
    }
    if let Some(tag) = unrendered_template(label) {
        return Some(tag);
    }
    label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.:/-".contains(*c)))
        .map(|c| format!("contains {c:?}; labels may use only A-Z a-z 0-9 _ . : / -"))
}

/// Labels and types are never rendered: a template there is one a compile stage (SCK's, or
/// a generator's) should have rendered before baton reads the file.
fn unrendered_template(text: &str) -> Option<String> {
    template::is_template(text).then(|| {
        "is an unrendered template (`{{ … }}` or `{% … %}`): labels and types are not \
         rendered; render the file first (an SCK action template is rendered by SCK's compile \
         stage), or write the value out"
            .to_string()
    })
}

fn duration_value(value: &Value) -> Result<Duration, DurationError> {
    match value {
        Value::String(text) => parse_duration(text),
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| DurationError::Malformed("is not a number".into()))
            .and_then(seconds_to_duration),
        other => Err(DurationError::Malformed(format!(
            "must be a duration such as \"45m\", not {}",
            describe_kind(other)
        ))),
    }
}

fn retry_policy(value: &Value) -> Result<RetryPolicy, (String, String)> {
    let Value::Object(map) = value else {
        return Err((
            "retry".into(),
            format!(
                "must be an object like {{\"attempts\": 3, \"delay\": \"10s\"}}, not {}",
                describe_kind(value)
            ),
        ));
    };
    let mut policy = RetryPolicy {
        attempts: 1,
        delay: Duration::from_secs(10),
        backoff: 2.0,
    };
    for (key, item) in map {
        match key.as_str() {
            "attempts" => match item.as_u64() {
                Some(n @ 1..=100) => policy.attempts = n as u32,
                _ => {
                    return Err((
                        "retry.attempts".into(),
                        "must be a whole number from 1 to 100".into(),
                    ))
                }
            },
            "delay" => {
                policy.delay =
                    duration_value(item).map_err(|m| ("retry.delay".to_string(), m.to_string()))?
            }
            "backoff" => match item.as_f64() {
                Some(b) if (1.0..=10.0).contains(&b) => policy.backoff = b,
                _ => {
                    return Err((
                        "retry.backoff".into(),
                        "must be a number from 1 to 10".into(),
                    ))
                }
            },
            other => {
                return Err((
                    format!("retry.{other}"),
                    "unknown field (allowed: attempts, delay, backoff)".into(),
                ))
            }
        }
    }
    Ok(policy)
}

fn describe_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn type_list() -> String {
    ActionType::ALL
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `*` matches any run of characters (including none); everything else is literal.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded, Problems> {
        load_str("t.json", text, Format::Json)
    }

    /// Putting the plan together turns the drafts into actions in place, which needs them to
    /// be the same size (see `finish_drafts`).
    #[test]
    fn a_draft_is_the_size_of_an_action() {
        assert_eq!(std::mem::size_of::<Draft>(), std::mem::size_of::<Action>());
        assert_eq!(
            std::mem::align_of::<Draft>(),
            std::mem::align_of::<Action>()
        );
    }

    /// Actions are validated as they are read, under the dialect the first ones show; a file
    /// whose later actions show another is read again under that one's rules.
    #[test]
    fn a_dialect_shown_late_is_read_again_under_its_rules() {
        let first_looks_native = r#"[
            {"Label": "a", "Type": "System::NoOp"},
            {"Label": "b", "Type": "System::NoOp", "DependsOn": "a"}
        ]"#;
        let loaded = load(first_looks_native).expect("loads as SCK V1");
        assert_eq!(loaded.plan.dialect(), Dialect::SckV1);
        assert_eq!(loaded.plan.deps(1), &[0]);
        // A stored plan's wrapper may name its format after its actions.
        let wrapped = format!(
            r#"{{"actions": [{{"Label": "a", "Type": "System::NoOp"}}], "format": "{}"}}"#,
            Dialect::SckV1.tag()
        );
        let loaded = load(&wrapped).expect("loads as SCK V1");
        assert_eq!(loaded.plan.dialect(), Dialect::SckV1);
        // Alone, the same first action is one of baton's own older files.
        let alone = load(r#"[{"Label": "a", "Type": "System::NoOp"}]"#).expect("loads");
        assert_eq!(alone.plan.dialect(), Dialect::Native);
    }

    fn errors(text: &str) -> Vec<String> {
        match load(text) {
            Ok(_) => panic!("expected errors for {text}"),
            Err(problems) => problems.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match("deploy-*", "deploy-app"));
        assert!(glob_match("*-app", "deploy-app"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b", "ac"));
        assert!(!glob_match("deploy-*", "build"));
    }

    #[test]
    fn valid_plan_with_aliases_patterns_and_templates() {
        let loaded = load(
            r#"[
            {"Label": "net", "Kind": "SYSTEM::SetVariables", "Spec": {"variables": {"vpc": "v-1"}}},
            {"label": "app-a", "type": "system.no_op", "depends_on": ["net"]},
            {"label": "app-b", "type": "system.command", "depends_on": ["net"],
             "params": {"command": ["echo", "{{ outputs['net'].vpc }}"]}},
            {"label": "done", "type": "system.no_op", "depends_on": ["app-*"], "condition": "true"}
        ]"#,
        )
        .expect("valid");
        let plan = loaded.plan;
        assert_eq!(plan.len(), 4);
        assert_eq!(plan.deps[3], vec![1, 2]);
        assert_eq!(plan.actions[2].reads_outputs, Some(vec![0]));
        assert!(plan.actions[2].templated);
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn reports_every_problem_at_once() {
        let errs = errors(
            r#"[
            {"label": "a", "type": "system.nope"},
            {"label": "b", "type": "system.no_op", "depends_on": ["c"], "colour": "red"},
            {"type": "system.no_op"}
        ]"#,
        );
        assert_eq!(errs.len(), 4, "{errs:#?}");
        assert!(errs[0].contains("actions[0] \"a\": type: unknown action type \"system.nope\""));
    }

    #[test]
    fn cycle_is_printed_as_a_path() {
        let errs = errors(
            r#"[{"label": "a", "type": "system.no_op", "depends_on": ["c"]},
                {"label": "b", "type": "system.no_op", "depends_on": ["a"]},
                {"label": "c", "type": "system.no_op", "depends_on": ["b"]}]"#,
        );
        assert_eq!(
            errs,
            vec!["t.json: actions[0] \"a\": depends_on: dependency cycle: a → b → c → a"]
        );
    }

    #[test]
    fn template_reading_a_non_ancestor_is_an_error() {
        let errs = errors(
            r#"[{"label": "a", "type": "system.set_variables", "params": {"variables": {"x": "1"}}},
                {"label": "b", "type": "system.command", "params": {"command": ["echo", "{{ outputs['a'].x }}"]}}]"#,
        );
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("\"a\" is not a dependency"), "{}", errs[0]);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let errs = errors("[\n  {\"label\": \"a\",}\n]");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("t.json:2:"), "{}", errs[0]);
    }

    #[test]
    fn yaml_is_accepted() {
        let loaded = load_str(
            "t.yaml",
            "- label: a\n  type: system.no_op\n- label: b\n  type: system.wait\n  params: {seconds: 2}\n  depends_on: [a]\n",
            Format::Yaml,
        )
        .expect("valid yaml");
        assert_eq!(loaded.plan.len(), 2);
    }

    /// Valid YAML lines whose brackets are not flow collections: quoted, commented, in block
    /// scalars, plain scalars (also continued on a line that starts with a quote), tags and
    /// anchors. A reader that counted them would refuse good files; one that took a quote
    /// where the parser sees none would miss the deep nesting after it.
    const YAML_NOISE: &[&str] = &[
        "q1: \"]]]}}\\\"[[ \\\" ]\"\n",
        "q2: ']]'']] [[ '''\n",
        "p1: it's [not flow] {either\n",
        "p2: a]b}c,d\n",
        "c1: 1 # ]]]] '\" comment\n",
        "# ]]]] '\n",
        "b1: |\n  ]]]] '\n  \"[[\n\n    }}}\n",
        "b2: >-\n  [[[[\n  ]]\n",
        "b3: |2+\n   ]]] '\n",
        "m1: foo\n  'bar ]]]\n  baz\"\n",
        "t1: !!str \"]]]\"\n",
        "a1: &x \"]]\"\na2: *x\n",
        "f1: {\"k]\": [']', \"]\"], k2: [1, [2, [3]]]}\n",
        "l1:\n  - \"]]\"\n  - [a, 'b]']\n  - it's\n",
        "? complex ]]\n: value\n",
    ];

    /// Put between the opening brackets of the deep value.
    const YAML_INNER: &[&str] = &[
        "",
        "\"]]\", ",
        "']]', ",
        " # ]]] '\n",
        "!!str \"]\", ",
        "&y ']]', ",
        "{\"]\": 1}, ",
    ];

    fn deep_yaml(noise: &[&str], inner: &[&str], depth: usize) -> String {
        let mut text: String = noise.concat();
        text.push_str("deep: ");
        for level in 0..depth {
            text.push('[');
            text.push_str(inner[level % inner.len().max(1)]);
        }
        text.push_str(&"]".repeat(depth));
        text.push('\n');
        text
    }

    /// The one problem a YAML document that is a mapping gets: what it is, or why it could not
    /// be read.
    fn yaml_verdict(text: &str) -> String {
        match load_str("t.yaml", text, Format::Yaml) {
            Ok(_) => "accepted".into(),
            Err(problems) => problems.errors[0].message.clone(),
        }
    }

    const A_MAPPING: &str = "expected a list of actions (an array), found an object";

    #[test]
    fn yaml_noise_is_valid_and_not_flow() {
        for noise in YAML_NOISE {
            assert_eq!(
                yaml_verdict(&format!("{noise}z: 1\n")),
                A_MAPPING,
                "{noise:?}"
            );
        }
        for inner in YAML_INNER {
            let text = deep_yaml(&[], &[inner], 20);
            assert_eq!(yaml_verdict(&text), A_MAPPING, "{text:?}");
        }
        let text = format!("a: 1\nb: {}{}", "[".repeat(200), "]".repeat(200));
        assert!(yaml_verdict(&text).contains("nested too deeply"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        #[test]
        fn yaml_flow_depth_is_found_behind_any_noise(
            noise in proptest::strategy::Strategy::prop_shuffle(
                proptest::sample::subsequence(YAML_NOISE.to_vec(), 0..8)
            ),
            inner in proptest::collection::vec(proptest::sample::select(YAML_INNER), 1..4),
            depth in 90usize..200,
        ) {
            let text = deep_yaml(&noise, &inner, depth);
            // A flow mapping put between the brackets nests one level deeper where it stands;
            // the document's own mapping is one level more.
            let deepest = (0..depth)
                .map(|level| level + 2 + usize::from(inner[level % inner.len()].contains('{')))
                .max()
                .unwrap_or(0);
            let verdict = yaml_verdict(&text);
            if deepest > MAX_NESTING {
                proptest::prop_assert!(verdict.contains("nested too deeply"), "{}\n{}", verdict, text);
            } else {
                proptest::prop_assert_eq!(verdict, A_MAPPING, "{}", text);
            }
        }
    }

    #[test]
    fn unmatched_pattern_is_a_warning() {
        let loaded = load(r#"[{"label": "a", "type": "system.no_op", "depends_on": ["x-*"]}]"#)
            .expect("valid");
        assert_eq!(loaded.warnings.len(), 1);
        assert!(loaded.warnings[0].to_string().contains("matches no action"));
    }
}
