//! Secrets stay out of logs, state log threads, the console and `--json`: params whose names
//! look like passwords, secrets or tokens are masked, and so are `name=value` pairs in log text.

use serde_json::Value;

/// What a masked value is replaced with.
pub(crate) const MASK: &str = "********";

const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "private_key",
    "credential",
];

/// Whether a param or output named `name` holds a secret (`DbPassword`, `api_token`).
pub(crate) fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// Which keys of `map` hold secrets: secret-looking names, and the value of a
/// CloudFormation-style `{"ParameterKey": "DbPassword", "ParameterValue": …}` pair.
fn secret_keys(map: &serde_json::Map<String, Value>) -> impl Fn(&str) -> bool {
    let named_secret = ["ParameterKey", "Key", "Name"]
        .iter()
        .filter_map(|k| map.get(*k).and_then(Value::as_str))
        .any(is_secret_name);
    move |key| is_secret_name(key) || (named_secret && matches!(key, "ParameterValue" | "Value"))
}

/// A copy of `value` with every value under a secret-looking key masked (recursively; also
/// CloudFormation-style `{"ParameterKey": "DbPassword", "ParameterValue": …}` pairs).
pub fn redact_value(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let hides = secret_keys(map);
            Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let hide = hides(k);
                        (
                            k.clone(),
                            if hide && !v.is_null() {
                                Value::String(MASK.into())
                            } else {
                                redact_value(v)
                            },
                        )
                    })
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(redact_value).collect()),
        other => other.clone(),
    }
}

/// A plural such as "credentials" before a colon is prose ("error loading credentials:
/// dispatch failure"), not a name with its value: masking the word after it hides the cause
/// and protects nothing. (`credentials=…` is still masked.)
fn is_prose(key: &str) -> bool {
    const PLURALS: &[&str] = &["credentials", "secrets", "tokens", "passwords"];
    PLURALS.iter().any(|p| key.eq_ignore_ascii_case(p))
}

/// Masks the value in `secret_name=value` and `secret_name: value` inside free text.
pub(crate) fn redact_text(text: &str) -> String {
    if !SECRET_WORDS
        .iter()
        .any(|w| text.to_ascii_lowercase().contains(w))
    {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(['=', ':']) {
        let (before, after) = rest.split_at(pos);
        let key_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '"'))
            .map_or(0, |i| i + 1);
        let key = before[key_start..].trim_matches('"');
        out.push_str(before);
        out.push_str(&after[..1]);
        rest = &after[1..];
        if is_secret_name(key) && !(after.starts_with(':') && is_prose(key)) {
            let trimmed = rest.trim_start();
            out.push_str(&rest[..rest.len() - trimmed.len()]);
            let quoted = trimmed.starts_with('"');
            let body = if quoted { &trimmed[1..] } else { trimmed };
            let end = if quoted {
                body.find('"').unwrap_or(body.len())
            } else {
                body.find(|c: char| c.is_whitespace() || c == ',' || c == '}' || c == '&')
                    .unwrap_or(body.len())
            };
            if quoted {
                out.push('"');
            }
            out.push_str(MASK);
            rest = &body[end..];
        }
    }
    out.push_str(rest);
    out
}

/// Values known to be secret (found under secret-looking names in params, vars and outputs),
/// masked wherever they turn up in text: a command that prints `$DB_PASSWORD` with no
/// `name=` in front of it still cannot leak it into a log thread.
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    values: Vec<String>,
}

/// Shorter values are too likely to be ordinary words or numbers to mask everywhere.
const MIN_SECRET_LEN: usize = 4;

impl Secrets {
    /// Learns the secret values inside `value` (see [`redact_value`] for what counts).
    pub(crate) fn learn(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                let hides = secret_keys(map);
                for (k, v) in map {
                    if hides(k) {
                        self.learn_all(v);
                    } else {
                        self.learn(v);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| self.learn(v)),
            _ => {}
        }
    }

    /// Every scalar inside `value` is secret.
    fn learn_all(&mut self, value: &Value) {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Array(items) => return items.iter().for_each(|v| self.learn_all(v)),
            Value::Object(map) => return map.values().for_each(|v| self.learn_all(v)),
            _ => return,
        };
        // A template is not the secret; its rendering is learnt when the action starts.
        if text.len() >= MIN_SECRET_LEN && !text.contains("{{") && !self.values.contains(&text) {
            self.values.push(text);
        }
    }

    /// Learns the secret values in a map such as an action's outputs (see [`redact_value`]
    /// for what counts).
    pub fn learn_map(&mut self, map: &serde_json::Map<String, Value>) {
        for (k, v) in map {
            if is_secret_name(k) {
                self.learn_all(v);
            } else {
                self.learn(v);
            }
        }
    }

    /// Masks what the engine writes into an action's state itself — its error (the message of
    /// an inline `system.fail`, a template or condition error), its log lines and its stop
    /// record — so no version ever stores a secret there. Outputs stay as they are: later
    /// templates read them.
    pub(crate) fn mask_written(&self, action: &mut crate::state::ActionState) {
        if let Some(error) = &mut action.error {
            *error = self.redact(error);
        }
        for entry in &mut action.log {
            entry.msg = self.redact(&entry.msg);
        }
        if let Some(stop) = &mut action.stop {
            stop.detail = self.redact(&stop.detail);
        }
    }

    /// A copy of `action` as operators may see it: its error, log lines and stop record masked, and
    /// its outputs and handle too.
    pub fn shown_action(&self, action: &crate::state::ActionState) -> crate::state::ActionState {
        let mut shown = action.clone();
        self.mask_written(&mut shown);
        if let Value::Object(outputs) = self.redact_value(&Value::Object((*action.outputs).clone()))
        {
            *shown.outputs = outputs;
        }
        if let Some(handle) = &action.handle {
            shown.handle = Some(Box::new(self.redact_value(handle)));
        }
        shown
    }

    /// Every secret a run knows of so far: in params as written, vars and outputs. (Params
    /// rendered from templates are learnt as their actions start.)
    pub fn for_run(plan: &crate::model::Plan, state: &crate::state::RunState) -> Self {
        let mut secrets = Secrets::default();
        secrets.learn_map(&state.vars);
        for (action, def) in state.actions.iter().zip(&plan.actions) {
            secrets.learn_map(&action.outputs);
            secrets.learn(&def.params);
        }
        secrets
    }

    /// The secrets an action's rendered params can contain: its own, the run's vars, and the
    /// outputs of the actions it reads.
    pub fn for_action(
        plan: &crate::model::Plan,
        state: &crate::state::RunState,
        idx: crate::model::ActionIdx,
    ) -> Self {
        let mut secrets = Secrets::default();
        let action = plan.action(idx);
        secrets.learn(&action.params);
        secrets.learn_map(&state.vars);
        match &action.reads_outputs {
            Some(reads) => reads
                .iter()
                .chain(action.details().reads_state.iter().flatten())
                .for_each(|&i| secrets.learn_map(&state.action(i).outputs)),
            None => state
                .actions
                .iter()
                .for_each(|a| secrets.learn_map(&a.outputs)),
        }
        secrets
    }

    /// [`redact_value`], then every string holding a known secret value masked.
    pub fn redact_value(&self, value: &Value) -> Value {
        self.mask_strings(redact_value(value))
    }

    fn mask_strings(&self, value: Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.redact(&s)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.mask_strings(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, self.mask_strings(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    /// `text` with the values of `secret_name=value` pairs masked, then every known secret
    /// value wherever it appears.
    pub fn redact(&self, text: &str) -> String {
        let mut out = redact_text(text);
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), MASK);
            }
        }
        out
    }
}

/// The run's state as operators may see it, for every command and view that shows one: each
/// known secret value (under a secret-looking name in params, vars or outputs) masked wherever
/// it ended up — errors, log threads, stop records, outputs under ordinary names, handles,
/// vars, the run's own log. The stored state keeps outputs as they are (later templates read
/// them); this copy is for display only.
pub fn shown(plan: &crate::model::Plan, state: &crate::state::RunState) -> crate::state::RunState {
    let secrets = Secrets::for_run(plan, state);
    let mut shown = state.clone();
    for action in &mut shown.actions {
        *action = secrets.shown_action(action);
    }
    if let Value::Object(vars) = secrets.redact_value(&Value::Object(state.vars.clone())) {
        shown.vars = vars;
    }
    for entry in &mut shown.log {
        entry.msg = secrets.redact(&entry.msg);
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_secret_params() {
        let params = json!({"env": {"DB_PASSWORD": "hunter2", "HOME": "/root"},
                            "parameters": [{"ParameterKey": "ApiToken", "ParameterValue": "abc"}]});
        let redacted = redact_value(&params);
        assert_eq!(redacted["env"]["DB_PASSWORD"], MASK);
        assert_eq!(redacted["env"]["HOME"], "/root");
        assert_eq!(redacted["parameters"][0]["ParameterValue"], MASK);
    }

    #[test]
    fn masks_known_secret_values_anywhere() {
        let mut secrets = Secrets::default();
        secrets.learn(&json!({"env": {"DB_PASSWORD": "hunter2", "HOME": "/root"},
                              "note": "{{ vars.api_token }}",
                              "parameters": [{"ParameterKey": "ApiToken", "ParameterValue": "abc123"}]}));
        secrets.learn_map(
            json!({"db_secret": 98765, "pin": "1"})
                .as_object()
                .expect("map"),
        );
        assert_eq!(
            secrets.redact("connecting with hunter2 and abc123 (98765) from /root"),
            format!("connecting with {MASK} and {MASK} ({MASK}) from /root")
        );
        assert_eq!(
            secrets.redact("pin 1"),
            "pin 1",
            "short values are not masked"
        );
    }

    #[test]
    fn prose_about_credentials_is_not_masked() {
        assert_eq!(
            redact_text("an error occurred while loading credentials: dispatch failure"),
            "an error occurred while loading credentials: dispatch failure"
        );
        assert_eq!(redact_text("credentials=abcd1234"), "credentials=********");
        assert_eq!(
            redact_text("db_password: hunter22"),
            "db_password: ********"
        );
    }

    #[test]
    fn masks_pairs_in_text() {
        assert_eq!(
            redact_text("login password=hunter2 ok"),
            format!("login password={MASK} ok")
        );
        assert_eq!(
            redact_text(r#"{"api_token": "xyz", "a": 1}"#),
            format!(r#"{{"api_token": "{MASK}", "a": 1}}"#)
        );
        assert_eq!(redact_text("nothing to see"), "nothing to see");
    }
}
