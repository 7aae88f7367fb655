//! Jinja templates (minijinja) in params and conditions. The context is
//! `outputs["<label>"]`, `vars.<name>` and `run.id`; a missing name is an error, never an empty
//! string, so a typo cannot deploy a stack with a blank parameter.
//!
//! Rendering is bounded in time and memory whatever the template does. The engine's fuel counts
//! its instructions but not the work inside one (`([1] * 10**12)|sum` is one filter call that
//! never ends; `s ~ s` doubles a string per instruction), so templates are sorted by their
//! syntax tree (`analysis`): one that only looks values up renders in-process, its output
//! capped at [`MAX_RENDERED_BYTES`]; any other renders in a worker process with limits on its
//! memory, CPU time and wall-clock time ([`worker`]), when the program has enabled one.

use std::sync::{LazyLock, OnceLock};

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

pub(crate) mod analysis;
mod state;
pub mod worker;

pub use analysis::MAX_BUILT_ITEMS;

/// True when a string would be rendered as a template.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Bounds the engine's instructions per render (loops, tags), so a template cannot spin it.
const FUEL: u64 = 1_000_000;

/// The most one action's rendered params (or one rendered string) may hold, as JSON text. Params
/// as written are limited to 1 MiB; rendering may add the values it reads, within reason.
pub const MAX_RENDERED_BYTES: usize = 4 * 1024 * 1024;

/// The most operators (`.`, `[`, `(`, `|`, `+`, `-`, `not`, `and`, …) one `{{ }}` / `{% %}` tag or
/// one condition may hold. minijinja parses and evaluates chains of them recursively without a
/// depth limit (`{{ ------…1 }}` or `{{ a.b.b.b… }}` with 10,000 links overflows the stack), so
/// deeper expressions are refused before they reach it. Real templates use a handful.
pub const MAX_TAG_OPERATORS: usize = 200;

static ENV: LazyLock<Environment<'static>> = LazyLock::new(environment);

/// The environment SCK files render in: the same, except that values print as SCK's Python
/// runner prints them (`True`, `False`, `None`), so the text it compares is the text baton
/// compares (`'False' == 'False'`).
static SCK_ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = environment();
    env.set_formatter(|out, state, value| {
        use minijinja::value::ValueKind;
        match value.kind() {
            ValueKind::Bool => {
                let text = if value.is_true() { "True" } else { "False" };
                out.write_str(text).map_err(minijinja::Error::from)
            }
            ValueKind::None => out.write_str("None").map_err(minijinja::Error::from),
            _ => minijinja::escape_formatter(out, state, value),
        }
    });
    env
});

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.add_filter("lookup", state::lookup);
    env.add_filter("rstrip", state::rstrip);
    env
}

/// The environment a context renders in.
fn env_for(context: &Context) -> &'static Environment<'static> {
    if context.values.sck {
        &SCK_ENV
    } else {
        &ENV
    }
}

/// Why a template could not be checked, rendered or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum TemplateError {
    /// A tag with more operators than [`MAX_TAG_OPERATORS`].
    #[error(
        "the expression is too complex: one tag holds {count} or more operators, the limit is \
         {limit}; split it into smaller expressions",
        limit = MAX_TAG_OPERATORS
    )]
    TooComplex {
        /// Operators counted (at least).
        count: usize,
    },
    /// A constant expression that builds more than a template may (`[1] * 10**12`).
    #[error("{0}")]
    BuildsTooMuch(String),
    /// The rendered text or value is larger than [`MAX_RENDERED_BYTES`].
    #[error(
        "renders to more than {limit} bytes; an action's rendered params may hold at most that \
         much: pass large content by reference (a file, an S3 object)",
        limit = MAX_RENDERED_BYTES
    )]
    TooLarge,
    /// The worker rendering the template ran out of memory or time, or failed.
    #[error("{0}")]
    Limit(String),
    /// Jinja's own error: syntax, a missing name, a type mismatch, spent fuel.
    #[error("{0}")]
    Jinja(String),
    /// A whole-string expression that evaluates to nothing.
    #[error("undefined value: `{expression}` names nothing in the context{note}")]
    Undefined {
        /// The expression, without braces.
        expression: String,
        /// Why, when it is known (an action it reads was skipped).
        #[serde(default)]
        note: String,
    },
    /// A filter or test the template engine does not have.
    #[error("{0}")]
    Unknown(String),
    /// The rendered value cannot be JSON.
    #[error("{0}")]
    NotJson(String),
    /// An error in one param.
    #[error("params.{path}: {source}")]
    InParam {
        /// Where in `params`, e.g. `command[1]`.
        path: String,
        /// What went wrong there.
        source: Box<TemplateError>,
    },
}

/// What a template or expression reads from `outputs` and `vars`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct OutputRefs {
    /// Labels read by name: `outputs["x"]`, `outputs['x']`, `outputs.x`.
    pub labels: Vec<String>,
    /// Reads of `outputs` that do not name their action, as written (`outputs[vars.k]`).
    pub dynamic: Vec<String>,
    /// Run variables read by name: `vars.x`, `vars["x"]`.
    pub vars: Vec<String>,
    /// Keys read with `lookup`, and whether each has a default.
    pub lookups: Vec<(String, bool)>,
    /// `lookup`s whose key is computed, as written.
    pub dynamic_lookups: Vec<String>,
}

/// Checks a template's syntax and lists what it reads.
pub(crate) fn check_template(source: &str) -> Result<OutputRefs, TemplateError> {
    check_complexity(source, false)?;
    ENV.template_from_str(source).map_err(describe)?;
    refs(source, analysis::analyse_template(source)?)
}

/// Checks a condition (bare expression, or wrapped in `{{ }}`).
pub(crate) fn check_expression(expression: &str) -> Result<OutputRefs, TemplateError> {
    let bare = unwrap_braces(expression);
    check_complexity(bare, true)?;
    ENV.compile_expression(bare).map_err(describe)?;
    refs(expression, analysis::analyse_expression(bare)?)
}

fn refs(source: &str, analysis: analysis::Analysis) -> Result<OutputRefs, TemplateError> {
    if let Some(what) = analysis.too_big {
        return Err(TemplateError::BuildsTooMuch(what));
    }
    // An unknown filter or test fails only when the template renders; validation says so.
    for name in &analysis.filters {
        if !state::known(state::Kind::Filter, name) {
            return Err(TemplateError::Unknown(state::unknown_message(
                state::Kind::Filter,
                name,
            )));
        }
    }
    for name in &analysis.tests {
        if !state::known(state::Kind::Test, name) {
            return Err(TemplateError::Unknown(state::unknown_message(
                state::Kind::Test,
                name,
            )));
        }
    }
    Ok(OutputRefs {
        labels: analysis.labels,
        dynamic: analysis.dynamic,
        vars: scan_vars(source),
        lookups: analysis.lookups,
        dynamic_lookups: analysis.dynamic_lookups,
    })
}

/// Refuses a template (or, with `bare`, an expression) with a tag of more than
/// [`MAX_TAG_OPERATORS`] operators. The count errs on the high side (string literals are
/// skipped; everything else that could be an operator counts), in one pass over the text.
fn check_complexity(source: &str, bare: bool) -> Result<(), TemplateError> {
    let bytes = source.as_bytes();
    let too_many = |count: usize| TemplateError::TooComplex { count };
    if bare {
        let (count, _) = count_operators(bytes, 0, None);
        return if count > MAX_TAG_OPERATORS {
            Err(too_many(count))
        } else {
            Ok(())
        };
    }
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] != b'{' {
            i += 1;
            continue;
        }
        let close = match bytes[i + 1] {
            b'{' => b'}',
            b'%' => b'%',
            b'#' => {
                // A comment: nothing in it is parsed.
                i = find(bytes, i + 2, b"#}").map_or(bytes.len(), |end| end + 2);
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let (count, end) = count_operators(bytes, i + 2, Some(close));
        if count > MAX_TAG_OPERATORS {
            return Err(too_many(count));
        }
        i = end;
    }
    Ok(())
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// Counts operators from `start` to the end of the tag (`close` then `}`, outside strings and
/// braces; the whole text when `close` is `None`). Returns the count and the index after the
/// tag. Stops counting early once over the limit.
fn count_operators(bytes: &[u8], start: usize, close: Option<u8>) -> (usize, usize) {
    const WORDS: &[&[u8]] = &[b"not", b"and", b"or", b"is", b"in", b"if", b"else"];
    let mut count = 0;
    let mut braces = 0usize;
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(close) = close {
            if b == close && braces == 0 && bytes.get(i + 1) == Some(&b'}') {
                return (count, i + 2);
            }
        }
        match b {
            b'\'' | b'"' => {
                // A string literal: skip to its closing quote (backslash escapes included).
                i += 1;
                while i < bytes.len() && bytes[i] != b {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' => braces += 1,
            b'}' => braces = braces.saturating_sub(1),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'~' | b'|' | b'.' | b'[' | b'(' | b'<' | b'>'
            | b'=' | b'!' => count += 1,
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let word_end = bytes[i..]
                    .iter()
                    .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'))
                    .map_or(bytes.len(), |p| i + p);
                if WORDS.contains(&&bytes[i..word_end]) {
                    count += 1;
                }
                i = word_end;
                continue;
            }
            _ => {}
        }
        if count > MAX_TAG_OPERATORS {
            // Past the limit: the rest of the tag does not matter.
            return (count, bytes.len());
        }
        i += 1;
    }
    (count, bytes.len())
}

/// Walks every string in a params value, checking templates. Collects what each template
/// reads under its field path (`params.command[1]`); returns (path, message) problems.
pub(crate) fn check_params(
    params: &Value,
    found: &mut Vec<(String, OutputRefs)>,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    walk_strings(params, &mut String::new(), &mut |path, text| {
        if is_template(text) {
            match check_template(text) {
                Ok(refs) => found.push((format!("params.{path}"), refs)),
                Err(error) => problems.push((path.to_string(), error.to_string())),
            }
        }
    });
    problems
}

fn walk_strings(value: &Value, path: &mut String, visit: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::String(text) => visit(path, text),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk_strings(item, path, visit);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk_strings(item, path, visit);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The values a template can see.
pub struct Context {
    values: Values,
    /// The same, as the engine holds it; built on first use (a worker needs only the JSON).
    jinja: OnceLock<minijinja::Value>,
}

/// What a context holds, as it travels to a worker.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Values {
    run_id: String,
    vars: Map<String, Value>,
    outputs: Map<String, Value>,
    /// SCK's flat state, for `lookup`: `<namespace>:var/<path>/<name>` and
    /// `<namespace>:output/<name>` keys.
    #[serde(default)]
    state: Map<String, Value>,
    /// Actions it reads that were skipped (their condition was false), for messages.
    #[serde(default)]
    skipped: Vec<String>,
    /// Render as SCK's runner does: everything as text, Python's spelling of values, and a
    /// condition true only when it renders as `true` (any case).
    #[serde(default)]
    sck: bool,
}

impl Context {
    /// Templates see `run.id`, `vars.NAME` and `outputs.LABEL.NAME` for each `(label, outputs)`
    /// given (the finished actions whose outputs the template may read).
    pub fn new<'a>(
        run_id: &str,
        vars: &Map<String, Value>,
        outputs: impl Iterator<Item = (&'a str, &'a Map<String, Value>)>,
    ) -> Self {
        Context {
            values: Values {
                run_id: run_id.to_string(),
                vars: vars.clone(),
                outputs: outputs
                    .map(|(label, out)| (label.to_string(), Value::Object(out.clone())))
                    .collect(),
                ..Values::default()
            },
            jinja: OnceLock::new(),
        }
    }

    /// With SCK's flat state for `lookup`.
    pub fn with_state(mut self, state: Map<String, Value>) -> Self {
        self.values.state = state;
        self
    }

    /// With the labels of actions it reads that were skipped: their outputs are absent (an
    /// empty `outputs.LABEL`, so `default()` and `is defined` work), and messages say why.
    pub fn with_skipped(mut self, skipped: Vec<String>) -> Self {
        for label in &skipped {
            self.values
                .outputs
                .entry(label.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        self.values.skipped = skipped;
        self
    }

    /// Rendering as SCK's runner does (see docs/action-files.md, "SCK files").
    pub fn sck(mut self, sck: bool) -> Self {
        self.values.sck = sck;
        self
    }

    fn jinja(&self) -> &minijinja::Value {
        self.jinja.get_or_init(|| {
            let v = &self.values;
            minijinja::context! {
                outputs => minijinja::Value::from_serialize(&v.outputs),
                vars => minijinja::Value::from_serialize(&v.vars),
                run => minijinja::context! { id => v.run_id.as_str() },
                __baton_state__ => minijinja::Value::from_serialize(&v.state),
                __baton_skipped__ => minijinja::Value::from_serialize(&v.skipped),
            }
        })
    }

    /// `: "x" was skipped …` when `text` reads an action that was skipped.
    fn skipped_note(&self, text: &str) -> String {
        match self
            .values
            .skipped
            .iter()
            .find(|label| text.contains(label.as_str()))
        {
            Some(label) => format!(
                " (\"{label}\" was skipped: its condition was false, so it has no outputs; \
                 give a default with `| default(…)`, or test `is defined`)"
            ),
            None => String::new(),
        }
    }
}

/// Where a render runs.
enum Route {
    /// In this process: every template only looks values up (or cannot be parsed, which fails
    /// as fast here as anywhere), or no worker is enabled.
    Here,
    /// In a worker process, under its limits.
    Worker(&'static std::path::Path),
}

fn route<'t>(templates: impl IntoIterator<Item = &'t str>, bare: bool) -> Route {
    let Some(program) = worker::program() else {
        return Route::Here;
    };
    let needs_worker = |text: &str| {
        let analysis = if bare {
            analysis::analyse_expression(unwrap_braces(text))
        } else if let Some(expression) = single_expression(text) {
            analysis::analyse_expression(expression)
        } else {
            analysis::analyse_template(text)
        };
        check_complexity(text, bare).is_ok() && analysis.is_ok_and(|a| !a.plain)
    };
    if templates.into_iter().any(needs_worker) {
        Route::Worker(program)
    } else {
        Route::Here
    }
}

/// Renders every template string in `params`. A string that is exactly one `{{ expression }}`
/// keeps the expression's type (a number stays a number, an object stays an object).
pub fn render_params(params: &Value, context: &Context) -> Result<Value, TemplateError> {
    let mut templates = Vec::new();
    walk_strings(params, &mut String::new(), &mut |_, text| {
        if is_template(text) {
            templates.push(text.to_string());
        }
    });
    match route(templates.iter().map(String::as_str), false) {
        Route::Here => render_params_here(params, context),
        Route::Worker(program) => {
            worker::render(program, worker::Job::Params(params.clone()), context)
        }
    }
}

/// [`render_params`] in this process.
fn render_params_here(params: &Value, context: &Context) -> Result<Value, TemplateError> {
    let mut left = MAX_RENDERED_BYTES;
    render_value(params, context, &mut String::new(), &mut left)
}

fn render_value(
    value: &Value,
    context: &Context,
    path: &mut String,
    left: &mut usize,
) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(text) if is_template(text) => {
            render_string(text, context, left).map_err(|e| TemplateError::InParam {
                path: path.clone(),
                source: Box::new(e),
            })?
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                out.push(render_value(item, context, path, left)?);
                path.truncate(len);
            }
            Value::Array(out)
        }
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                out.insert(key.clone(), render_value(item, context, path, left)?);
                path.truncate(len);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn render_string(text: &str, context: &Context, left: &mut usize) -> Result<Value, TemplateError> {
    // Validation refused these already; a plan that skipped it must not crash the engine.
    check_complexity(text, false)?;
    let explain = |e: minijinja::Error| explained(e, text, context);
    // SCK's runner renders every template to text; baton keeps a lone expression's type.
    let typed = single_expression(text).filter(|_| !context.values.sck);
    if let Some(expression) = typed {
        let compiled = ENV.compile_expression(expression).map_err(explain)?;
        let value = compiled.eval(context.jinja()).map_err(explain)?;
        if value.is_undefined() {
            return Err(TemplateError::Undefined {
                expression: expression.to_string(),
                note: context.skipped_note(expression),
            });
        }
        // Measured before it is copied: a value read from the context may be large.
        let mut size = Capped::counting(left);
        if serde_json::to_writer(&mut size, &value).is_err() && size.over {
            return Err(TemplateError::TooLarge);
        }
        return serde_json::to_value(&value).map_err(|e| TemplateError::NotJson(e.to_string()));
    }
    let template = env_for(context).template_from_str(text).map_err(explain)?;
    let mut out = Capped::collecting(left);
    let rendered = template.render_captured_to(context.jinja(), &mut out);
    if out.over {
        return Err(TemplateError::TooLarge);
    }
    rendered.map_err(explain)?;
    Ok(Value::String(
        String::from_utf8_lossy(&out.bytes).into_owned(),
    ))
}

/// A writer that stops once `left` bytes are spent, remembering that it did; it keeps what it
/// was given, or only counts.
struct Capped<'l> {
    bytes: Vec<u8>,
    keep: bool,
    left: &'l mut usize,
    over: bool,
}

impl<'l> Capped<'l> {
    fn collecting(left: &'l mut usize) -> Self {
        Capped {
            bytes: Vec::new(),
            keep: true,
            left,
            over: false,
        }
    }

    fn counting(left: &'l mut usize) -> Self {
        Capped {
            keep: false,
            ..Capped::collecting(left)
        }
    }
}

impl std::io::Write for Capped<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > *self.left {
            self.over = true;
            return Err(std::io::Error::other("the rendered text is too large"));
        }
        *self.left -= buf.len();
        if self.keep {
            self.bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Evaluates a condition to a boolean (Jinja truthiness).
pub(crate) fn eval_condition(expression: &str, context: &Context) -> Result<bool, TemplateError> {
    match route([expression], true) {
        Route::Here => eval_condition_here(expression, context),
        Route::Worker(program) => {
            let job = worker::Job::Condition(expression.to_string());
            worker::render(program, job, context).map(|v| v.as_bool().unwrap_or(false))
        }
    }
}

/// [`eval_condition`] in this process.
fn eval_condition_here(expression: &str, context: &Context) -> Result<bool, TemplateError> {
    let bare = unwrap_braces(expression);
    check_complexity(bare, true)?;
    let explain = |e: minijinja::Error| explained(e, bare, context);
    if context.values.sck {
        // SCK's runner renders `{{ condition }}` to text and runs the action only when that
        // text is `true`, in any case.
        let source = format!("{{{{ {bare} }}}}");
        let template = SCK_ENV.template_from_str(&source).map_err(explain)?;
        let mut left = MAX_RENDERED_BYTES;
        let mut out = Capped::collecting(&mut left);
        let rendered = template.render_captured_to(context.jinja(), &mut out);
        if out.over {
            return Err(TemplateError::TooLarge);
        }
        rendered.map_err(explain)?;
        return Ok(String::from_utf8_lossy(&out.bytes).eq_ignore_ascii_case("true"));
    }
    let compiled = ENV.compile_expression(bare).map_err(explain)?;
    compiled
        .eval(context.jinja())
        .map(|v| v.is_true())
        .map_err(explain)
}

/// minijinja's error in baton's words, with why a value is missing when an action it reads
/// was skipped.
fn explained(err: minijinja::Error, text: &str, context: &Context) -> TemplateError {
    let undefined = err.kind() == minijinja::ErrorKind::UndefinedError;
    match describe(err) {
        TemplateError::Jinja(message) if undefined => {
            TemplateError::Jinja(format!("{message}{}", context.skipped_note(text)))
        }
        other => other,
    }
}

fn unwrap_braces(expression: &str) -> &str {
    single_expression(expression).unwrap_or(expression)
}

/// `"{{ a.b }}"` → `Some("a.b")`; anything with text or blocks around it → `None`.
fn single_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner.trim())
}

fn describe(err: minijinja::Error) -> TemplateError {
    let mut text = err.kind().to_string();
    if let Some(detail) = err.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    if let Some(line) = err.line() {
        if line > 1 {
            text.push_str(&format!(" (line {line})"));
        }
    }
    TemplateError::Jinja(text)
}

/// Run variables read by name: `vars.x`, `vars["x"]`, `vars['x']`. A template that tests for a
/// variable (`is defined`, `| default(…)`) makes it optional, so then none are listed.
fn scan_vars(source: &str) -> Vec<String> {
    if source.contains("defined") || source.contains("default") {
        return Vec::new();
    }
    let name = "vars";
    let mut names = Vec::new();
    let bytes = source.as_bytes();
    let mut from = 0;
    while let Some(pos) = source[from..].find(name) {
        let start = from + pos;
        let end = start + name.len();
        from = end;
        let preceded = start > 0 && (is_ident(bytes[start - 1]) || bytes[start - 1] == b'.');
        if preceded || bytes.get(end).is_some_and(|&b| is_ident(b)) {
            continue;
        }
        let rest = source[end..].trim_start();
        if let Some(after) = rest.strip_prefix('[') {
            let after = after.trim_start();
            if let Some(q @ ('"' | '\'')) = after.chars().next() {
                if let Some(close) = after[1..].find(q) {
                    names.push(after[1..1 + close].to_string());
                }
            }
        } else if let Some(after) = rest.strip_prefix('.') {
            let ident: String = after
                .bytes()
                .take_while(|&b| is_ident(b))
                .map(char::from)
                .collect();
            if !ident.is_empty() {
                names.push(ident);
            }
        }
    }
    names
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Context {
        let vars = json!({"env": "prod", "count": 3});
        let net = json!({"VpcId": "vpc-123", "Port": 8080});
        Context::new(
            "run-1",
            vars.as_object().expect("object"),
            [("network", net.as_object().expect("object"))].into_iter(),
        )
    }

    #[test]
    fn finds_output_references() {
        let refs = check_template(
            r#"{{ outputs["net-work"].VpcId }}-{{ outputs['b'].x }}{{ outputs.c }}{{ (outputs).d }}"#,
        )
        .expect("valid");
        assert_eq!(refs.labels, vec!["net-work", "b", "c", "d"]);
        assert!(refs.dynamic.is_empty());
        assert!(check_template("{{ myoutputs.x }}")
            .expect("valid")
            .labels
            .is_empty());
        assert!(check_template("{{ 'outputs.x' }}")
            .expect("valid")
            .labels
            .is_empty());
        assert_eq!(
            check_template("{{ vars.env }}-{{ vars['region'] }}")
                .expect("valid")
                .vars,
            vec!["env", "region"]
        );
    }

    #[test]
    fn reads_of_outputs_that_do_not_name_the_action_are_found() {
        for (template, shown) in [
            ("{{ outputs[vars.x] }}", "outputs[vars.x]"),
            ("{{ outputs|attr('x') }}", "outputs"),
            ("{% set o = outputs %}{{ o.x }}", "set o = outputs"),
            ("{% for k in outputs %}{{ k }}{% endfor %}", "outputs"),
            ("{{ outputs }}", "outputs"),
            ("{{ outputs[1] }}", "outputs[1]"),
            (
                "{% with o = outputs %}{{ o.x }}{% endwith %}",
                "with o = outputs",
            ),
            ("{{ debug(outputs) }}", "outputs"),
        ] {
            let refs = check_template(template).expect(template);
            assert_eq!(refs.dynamic.len(), 1, "{template}: {refs:?}");
            assert!(refs.dynamic[0].contains(shown), "{template}: {refs:?}");
        }
        let refs = check_expression("outputs[vars.k].x == 1").expect("valid");
        assert_eq!(refs.dynamic, vec!["outputs[vars.k]"]);
    }

    #[test]
    fn constant_expressions_that_build_too_much_are_refused() {
        for template in [
            "{{ ([1] * 1000000000000)|sum }}",
            "{{ (['xxxxxxxxxx'] * 1000000000)|join }}",
            "{{ 'x' * 100000000 }}",
            "{% set s = 'ab' * 10000000 %}{{ s }}",
            "{{ ([1, 2] * 1000) * 1000 }}",
        ] {
            let err = check_template(template).expect_err(template).to_string();
            assert!(err.contains("builds"), "{template}: {err}");
        }
        let err = check_expression("([1] * 1000000000000)|sum > 0")
            .expect_err("too big")
            .to_string();
        assert!(err.contains("a list of 1000000000000 items"), "{err}");
        for fine in [
            "{{ [1] * 1000 }}",
            "{{ 'ab' * 1000 }}",
            "{{ vars.n * 1000000000 }}",
        ] {
            check_template(fine).expect(fine);
        }
    }

    #[test]
    fn plain_templates_are_told_apart_from_computing_ones() {
        let plain = |t: &str| analysis::analyse_template(t).expect(t).plain;
        for t in [
            "x-{{ vars.env }}-{{ outputs.net.VpcId }}",
            "{{ outputs['a-b'].x | default('none') }}",
            "{% if vars.env == 'prod' and vars.x is defined %}a{% else %}b{% endif %}",
            "{{ vars.a if vars.b else [vars.c, {'k': vars.d}] }}",
            "{{ vars.env in ['a', 'b'] }}",
            "{{ not vars.x }}",
        ] {
            assert!(plain(t), "{t}");
        }
        for t in [
            "{{ vars.a ~ vars.b }}",
            "{{ vars.a + 1 }}",
            "{{ vars.list|join(',') }}",
            "{{ range(10) }}",
            "{% for x in vars.l %}{{ x }}{% endfor %}",
            "{% set y = 1 %}{{ y }}",
            "{{ vars.a == vars.b }}",
            "{{ 'x' in vars.s }}",
            "{{ vars.s[1:] }}",
            "{{ vars.x is divisibleby(3) }}",
        ] {
            assert!(!plain(t), "{t}");
        }
    }

    #[test]
    fn rendered_output_is_capped() {
        let big = "y".repeat(MAX_RENDERED_BYTES / 4 + 1);
        let vars = json!({ "big": big });
        let context = Context::new(
            "run-1",
            vars.as_object().expect("object"),
            std::iter::empty(),
        );
        // Four copies of a value a quarter of the limit, by lookups alone.
        let err = render_params(
            &json!({"x": "{{ vars.big }}{{ vars.big }}{{ vars.big }}{{ vars.big }}"}),
            &context,
        )
        .expect_err("too large");
        assert!(err.to_string().contains("renders to more than"), "{err}");
        // The limit is per action: four params of one copy each.
        let each = json!({"a": "{{ vars.big }}", "b": "{{ vars.big }}", "c": "{{ vars.big }}", "d": "x{{ vars.big }}"});
        assert!(render_params(&each, &context).is_err());
        let fine = json!({"a": "{{ vars.big }}", "b": "{{ vars.big }}"});
        assert!(render_params(&fine, &context).is_ok());
    }

    #[test]
    fn renders_text_and_keeps_types_of_single_expressions() {
        let params = json!({
            "name": "app-{{ vars.env }}-{{ run.id }}",
            "vpc": "{{ outputs['network'].VpcId }}",
            "port": "{{ outputs['network'].Port }}",
            "plain": 5,
        });
        let rendered = render_params(&params, &ctx()).expect("renders");
        assert_eq!(
            rendered,
            json!({"name": "app-prod-run-1", "vpc": "vpc-123", "port": 8080, "plain": 5})
        );
    }

    #[test]
    fn missing_names_are_errors_with_the_param_path() {
        let err = render_params(&json!({"a": {"b": "{{ vars.nope }}"}}), &ctx())
            .expect_err("strict")
            .to_string();
        assert!(err.starts_with("params.a.b: "), "{err}");
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn conditions_accept_bare_or_braced_expressions() {
        assert!(eval_condition("vars.env == 'prod'", &ctx()).expect("evaluates"));
        assert!(!eval_condition("{{ vars.count > 5 }}", &ctx()).expect("evaluates"));
    }

    #[test]
    fn operator_chains_are_refused_before_minijinja_recurses_on_them() {
        for chain in [
            format!("{{{{ {}1 }}}}", "-".repeat(10_000)),
            format!("{{{{ {}x }}}}", "not ".repeat(10_000)),
            format!("{{{{ vars{} }}}}", ".a".repeat(10_000)),
            format!("{{{{ vars{} }}}}", "|upper".repeat(10_000)),
            format!("x {{% set y = 1{} %}}", "+1".repeat(10_000)),
        ] {
            let err = check_template(&chain).expect_err("too complex").to_string();
            assert!(err.contains("too complex"), "{err}");
        }
        let err = check_expression(&"not ".repeat(10_000))
            .expect_err("too complex")
            .to_string();
        assert!(err.contains("too complex"), "{err}");
        // At the limit it is fine; operators inside string literals and comments do not count.
        let at_limit = format!("{{{{ vars{} }}}}", ".a".repeat(MAX_TAG_OPERATORS));
        assert!(check_template(&at_limit).is_ok());
        let quoted = format!(
            "{{{{ '{}' ~ \"{}\" }}}}{{# {} #}}",
            "-".repeat(999),
            ".".repeat(999),
            "+".repeat(999)
        );
        assert!(check_template(&quoted).is_ok(), "{quoted}");
        // Many small tags are fine: the limit is per tag.
        assert!(check_template(&"{{ vars.a.b }}".repeat(10_000)).is_ok());
        // A dict literal's closing braces do not end the tag early.
        let dict = format!(
            "{{{{ {{'a': {{'b': 1}}}} }}}} {{{{ 1{} }}}}",
            "+1".repeat(300)
        );
        assert!(check_template(&dict).is_err());
    }

    fn sck_ctx(state: Value) -> Context {
        Context::new("run-1", &Map::new(), std::iter::empty())
            .with_state(state.as_object().cloned().unwrap_or_default())
            .sck(true)
    }

    #[test]
    fn lookup_reads_the_state_with_or_without_a_default() {
        let context = sck_ctx(json!({"ns:var/a/Persist": "False", "ns:output/N": 0}));
        let rendered = render_params(
            &json!({
                "found": "{{ 'ns:var/a/Persist' | lookup }}",
                "default": "{{ 'ns:var/a/Missing' | lookup('dflt') }}",
                "number": "{{ 'ns:output/N' | lookup == 0 }}",
            }),
            &context,
        )
        .expect("renders");
        assert_eq!(
            rendered,
            json!({"found": "False", "default": "dflt", "number": "True"})
        );
        let err = render_params(&json!({"x": "{{ 'ns:var/a/Missing' | lookup }}"}), &context)
            .expect_err("no default")
            .to_string();
        assert!(err.starts_with("params.x: "), "{err}");
        assert!(err.contains("\"ns:var/a/Missing\""), "{err}");
        assert!(err.contains("give a default"), "{err}");
    }

    #[test]
    fn sck_values_compare_as_the_text_sck_renders() {
        // A set_variables value rendered from a comparison is the text "False", and a later
        // condition compares it with 'False', as in SCK's runner.
        let context = sck_ctx(json!({}));
        let persist =
            render_params(&json!({"Persist": "{{ '' != '' }}"}), &context).expect("renders");
        assert_eq!(persist, json!({"Persist": "False"}));
        let context = sck_ctx(json!({"ns:var/g/Persist": "False"}));
        for (condition, runs) in [
            ("('ns:var/g/Persist' | lookup) == 'False'", true),
            ("('ns:var/g/Persist' | lookup) == 'True'", false),
            ("True", true),
            ("False", false),
            ("False and ('ns:var/g/Persist' | lookup) == 'False'", false),
            ("'TRUE'", true),
            ("'yes'", false),
        ] {
            assert_eq!(
                eval_condition(condition, &context).expect(condition),
                runs,
                "{condition}"
            );
        }
        // baton's own files keep types: the same comparison is a boolean.
        let native = Context::new("run-1", &Map::new(), std::iter::empty());
        assert_eq!(
            render_params(&json!({"p": "{{ '' != '' }}"}), &native).expect("renders"),
            json!({"p": false})
        );
    }

    #[test]
    fn a_skipped_action_reads_as_absent_outputs() {
        let context = Context::new("run-1", &Map::new(), std::iter::empty())
            .with_skipped(vec!["gather".into()]);
        let rendered = render_params(
            &json!({
                "d": "{{ outputs.gather.Name | default('none') }}",
                "t": "{{ outputs.gather.Name is defined }}",
            }),
            &context,
        )
        .expect("renders");
        assert_eq!(rendered, json!({"d": "none", "t": false}));
        let err = render_params(&json!({"x": "{{ outputs.gather.Name }}"}), &context)
            .expect_err("absent")
            .to_string();
        assert!(err.contains("\"gather\" was skipped"), "{err}");
        let context = sck_ctx(json!({})).with_skipped(vec!["ns:action/g".into()]);
        let err = render_params(&json!({"x": "{{ 'ns:var/g/V' | lookup }}"}), &context)
            .expect_err("absent")
            .to_string();
        assert!(err.contains("\"ns:action/g\" was skipped"), "{err}");
    }

    #[test]
    fn unknown_filters_and_tests_are_refused_when_checked() {
        let err = check_template("{{ 'k' | lookpu('x') }}")
            .expect_err("unknown")
            .to_string();
        assert!(
            err.contains("unknown filter \"lookpu\" (did you mean \"lookup\"?)"),
            "{err}"
        );
        let err = check_expression("vars.x is definde")
            .expect_err("unknown")
            .to_string();
        assert!(err.contains("unknown test \"definde\""), "{err}");
        let refs = check_template("{{ 'a:var/b/C' | lookup('') }}{{ 'a:output/D' | lookup }}")
            .expect("known");
        assert_eq!(
            refs.lookups,
            vec![
                ("a:var/b/C".to_string(), true),
                ("a:output/D".to_string(), false)
            ]
        );
        for known in [
            "{{ 'x' | rstrip('.') }}",
            "{{ [1] | join(',') }}",
            "{{ 1 is odd }}",
        ] {
            check_template(known).expect(known);
        }
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(check_template("{{ oops ").is_err());
        assert!(check_expression("a ==").is_err());
    }
}
