//! Secrets stay out of logs, state log threads, the console and `--json`: params whose names
//! look like passwords, secrets or tokens are masked, and so are `name=value` pairs in log text.

use serde_json::Value;

pub const MASK: &str = "********";

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

pub fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// A copy of `value` with every value under a secret-looking key masked (recursively; also
/// CloudFormation-style `{"ParameterKey": "DbPassword", "ParameterValue": …}` pairs).
pub fn redact_value(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let named_secret = ["ParameterKey", "Key", "Name"]
                .iter()
                .filter_map(|k| map.get(*k).and_then(Value::as_str))
                .any(is_secret_name);
            Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let hide = is_secret_name(k)
                            || (named_secret && matches!(k.as_str(), "ParameterValue" | "Value"));
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

/// Masks the value in `secret_name=value` and `secret_name: value` inside free text.
pub fn redact_text(text: &str) -> String {
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
        if is_secret_name(key) {
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
