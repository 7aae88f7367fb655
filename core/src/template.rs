//! Jinja templates (minijinja) in params and conditions. The context is
//! `outputs["<label>"]`, `vars.<name>` and `run.id`; a missing name is an error, never an empty
//! string, so a typo cannot deploy a stack with a blank parameter.

use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

/// True when a string would be rendered as a template.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Bounds template work so a hostile or careless plan cannot spin the engine.
const FUEL: u64 = 1_000_000;

/// The most operators (`.`, `[`, `(`, `|`, `+`, `-`, `not`, `and`, …) one `{{ }}` / `{% %}` tag or
/// one condition may hold. minijinja parses and evaluates chains of them recursively without a
/// depth limit (`{{ ------…1 }}` or `{{ a.b.b.b… }}` with 10,000 links overflows the stack), so
/// deeper expressions are refused before they reach it. Real templates use a handful.
pub const MAX_TAG_OPERATORS: usize = 200;

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
});

/// Why a template could not be checked, rendered or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// Jinja's own error: syntax, a missing name, a type mismatch, spent fuel.
    #[error("{0}")]
    Jinja(String),
    /// A whole-string expression that evaluates to nothing.
    #[error("undefined value: `{expression}` names nothing in the context")]
    Undefined {
        /// The expression, without braces.
        expression: String,
    },
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
    /// `outputs` was indexed by something other than a literal.
    pub dynamic: bool,
    /// Run variables read by name: `vars.x`, `vars["x"]`.
    pub vars: Vec<String>,
}

/// Checks a template's syntax and lists what it reads.
pub(crate) fn check_template(source: &str) -> Result<OutputRefs, TemplateError> {
    check_complexity(source, false)?;
    ENV.template_from_str(source).map_err(describe)?;
    Ok(scan_output_refs(source))
}

/// Checks a condition (bare expression, or wrapped in `{{ }}`).
pub(crate) fn check_expression(expression: &str) -> Result<OutputRefs, TemplateError> {
    let bare = unwrap_braces(expression);
    check_complexity(bare, true)?;
    ENV.compile_expression(bare).map_err(describe)?;
    Ok(scan_output_refs(expression))
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
pub struct Context(minijinja::Value);

impl Context {
    /// Templates see `run.id`, `vars.NAME` and `outputs.LABEL.NAME` for each `(label, outputs)`
    /// given (the finished actions whose outputs the template may read).
    pub fn new<'a>(
        run_id: &str,
        vars: &Map<String, Value>,
        outputs: impl Iterator<Item = (&'a str, &'a Map<String, Value>)>,
    ) -> Self {
        let outputs: Map<String, Value> = outputs
            .map(|(label, out)| (label.to_string(), Value::Object(out.clone())))
            .collect();
        Context(minijinja::context! {
            outputs => minijinja::Value::from_serialize(&outputs),
            vars => minijinja::Value::from_serialize(vars),
            run => minijinja::context! { id => run_id },
        })
    }
}

/// Renders every template string in `params`. A string that is exactly one `{{ expression }}`
/// keeps the expression's type (a number stays a number, an object stays an object).
pub fn render_params(params: &Value, context: &Context) -> Result<Value, TemplateError> {
    render_value(params, context, &mut String::new())
}

fn render_value(
    value: &Value,
    context: &Context,
    path: &mut String,
) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(text) if is_template(text) => {
            render_string(text, context).map_err(|e| TemplateError::InParam {
                path: path.clone(),
                source: Box::new(e),
            })?
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                out.push(render_value(item, context, path)?);
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
                out.insert(key.clone(), render_value(item, context, path)?);
                path.truncate(len);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn render_string(text: &str, context: &Context) -> Result<Value, TemplateError> {
    // Validation refused these already; a plan that skipped it must not crash the engine.
    check_complexity(text, false)?;
    if let Some(expression) = single_expression(text) {
        let compiled = ENV.compile_expression(expression).map_err(describe)?;
        let value = compiled.eval(&context.0).map_err(describe)?;
        if value.is_undefined() {
            return Err(TemplateError::Undefined {
                expression: expression.to_string(),
            });
        }
        return serde_json::to_value(&value).map_err(|e| TemplateError::NotJson(e.to_string()));
    }
    ENV.render_str(text, &context.0)
        .map(Value::String)
        .map_err(describe)
}

/// Evaluates a condition to a boolean (Jinja truthiness).
pub(crate) fn eval_condition(expression: &str, context: &Context) -> Result<bool, TemplateError> {
    let bare = unwrap_braces(expression);
    check_complexity(bare, true)?;
    let compiled = ENV.compile_expression(bare).map_err(describe)?;
    compiled
        .eval(&context.0)
        .map(|v| v.is_true())
        .map_err(describe)
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

/// Finds `outputs["label"]`, `outputs['label']` and `outputs.label` (and the same for `vars`)
/// in template text.
fn scan_output_refs(source: &str) -> OutputRefs {
    let (labels, dynamic) = scan_name(source, "outputs");
    // A template that tests for a variable (`is defined`, `| default(…)`) makes it optional.
    let optional = source.contains("defined") || source.contains("default");
    let vars = if optional {
        Vec::new()
    } else {
        scan_name(source, "vars").0
    };
    OutputRefs {
        labels,
        dynamic,
        vars,
    }
}

/// Names read from `name` by literal index or attribute; `true` if it is also used otherwise.
fn scan_name(source: &str, name: &str) -> (Vec<String>, bool) {
    let mut names = Vec::new();
    let mut dynamic = false;
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
            let quote = after.chars().next();
            if let Some(q @ ('"' | '\'')) = quote {
                if let Some(close) = after[1..].find(q) {
                    names.push(after[1..1 + close].to_string());
                    continue;
                }
            }
            dynamic = true;
        } else if let Some(after) = rest.strip_prefix('.') {
            let ident: String = after
                .bytes()
                .take_while(|&b| is_ident(b))
                .map(char::from)
                .collect();
            if !ident.is_empty() {
                names.push(ident);
            }
        } else {
            // Used whole (e.g. iterated): anything may be read.
            dynamic = true;
        }
    }
    (names, dynamic)
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
        let refs = scan_output_refs(
            r#"{{ outputs["net-work"].VpcId }}-{{ outputs['b'].x }}{{ outputs.c }}"#,
        );
        assert_eq!(refs.labels, vec!["net-work", "b", "c"]);
        assert!(!refs.dynamic);
        assert!(scan_output_refs("{{ outputs[vars.x] }}").dynamic);
        assert!(scan_output_refs("{{ myoutputs.x }}").labels.is_empty());
        assert_eq!(
            scan_output_refs("{{ vars.env }}-{{ vars['region'] }}").vars,
            vec!["env", "region"]
        );
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

    #[test]
    fn syntax_errors_are_reported() {
        assert!(check_template("{{ oops ").is_err());
        assert!(check_expression("a ==").is_err());
    }
}
