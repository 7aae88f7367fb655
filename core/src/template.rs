//! Jinja templates (minijinja) in params and conditions. The context is
//! `outputs["<label>"]`, `vars.<name>` and `run.id`; a missing name is an error, never an empty
//! string, so a typo cannot deploy a stack with a blank parameter.

use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

use crate::actions::is_template;

/// Bounds template work so a hostile or careless plan cannot spin the engine.
const FUEL: u64 = 1_000_000;

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
});

/// What a template or expression reads from `outputs` and `vars`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OutputRefs {
    /// Labels read by name: `outputs["x"]`, `outputs['x']`, `outputs.x`.
    pub labels: Vec<String>,
    /// `outputs` was indexed by something other than a literal.
    pub dynamic: bool,
    /// Run variables read by name: `vars.x`, `vars["x"]`.
    pub vars: Vec<String>,
}

/// Checks a template's syntax and lists what it reads.
pub fn check_template(source: &str) -> Result<OutputRefs, String> {
    ENV.template_from_str(source).map_err(describe)?;
    Ok(scan_output_refs(source))
}

/// Checks a condition (bare expression, or wrapped in `{{ }}`).
pub fn check_expression(expression: &str) -> Result<OutputRefs, String> {
    ENV.compile_expression(unwrap_braces(expression))
        .map_err(describe)?;
    Ok(scan_output_refs(expression))
}

/// Walks every string in a params value, checking templates. Collects what each template
/// reads under its field path (`params.command[1]`); returns (path, message) problems.
pub fn check_params(
    params: &Value,
    found: &mut Vec<(String, OutputRefs)>,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    walk_strings(params, &mut String::new(), &mut |path, text| {
        if is_template(text) {
            match check_template(text) {
                Ok(refs) => found.push((format!("params.{path}"), refs)),
                Err(message) => problems.push((path.to_string(), message)),
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
pub fn render_params(params: &Value, context: &Context) -> Result<Value, String> {
    render_value(params, context, &mut String::new())
}

fn render_value(value: &Value, context: &Context, path: &mut String) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) if is_template(text) => {
            render_string(text, context).map_err(|e| format!("params.{path}: {e}"))?
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

fn render_string(text: &str, context: &Context) -> Result<Value, String> {
    if let Some(expression) = single_expression(text) {
        let compiled = ENV.compile_expression(expression).map_err(describe)?;
        let value = compiled.eval(&context.0).map_err(describe)?;
        if value.is_undefined() {
            return Err(format!(
                "undefined value: `{expression}` names nothing in the context"
            ));
        }
        return serde_json::to_value(&value).map_err(|e| e.to_string());
    }
    ENV.render_str(text, &context.0)
        .map(Value::String)
        .map_err(describe)
}

/// Evaluates a condition to a boolean (Jinja truthiness).
pub fn eval_condition(expression: &str, context: &Context) -> Result<bool, String> {
    let compiled = ENV
        .compile_expression(unwrap_braces(expression))
        .map_err(describe)?;
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

fn describe(err: minijinja::Error) -> String {
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
    text
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
        let err =
            render_params(&json!({"a": {"b": "{{ vars.nope }}"}}), &ctx()).expect_err("strict");
        assert!(err.starts_with("params.a.b: "), "{err}");
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn conditions_accept_bare_or_braced_expressions() {
        assert!(eval_condition("vars.env == 'prod'", &ctx()).expect("evaluates"));
        assert!(!eval_condition("{{ vars.count > 5 }}", &ctx()).expect("evaluates"));
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(check_template("{{ oops ").is_err());
        assert!(check_expression("a ==").is_err());
    }
}
