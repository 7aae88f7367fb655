//! The action catalogue: one file per type with its params schema and behaviour, and this thin
//! registry that maps type names to them.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub mod aws;
pub mod command;
pub mod fail;
pub mod no_op;
pub mod set_variables;
pub mod wait;

/// How an action type runs, which decides what the engine must persist around it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Pure and instant: evaluated by the scheduler itself, no IO.
    Inline,
    /// Does IO and finishes within the tick (bounded by the time budget).
    Sync,
    /// Starts work elsewhere and is checked again on later ticks.
    Async,
}

/// What the engine needs to know about a type without running it.
#[derive(Debug)]
pub struct TypeSpec {
    pub name: &'static str,
    pub mode: Mode,
    /// How long to wait before checking a running action again.
    pub poll_interval: Duration,
    /// Whether a running action can be cancelled (abort, timeout).
    pub can_cancel: bool,
    /// Whether running it again after an interruption is harmless regardless of params
    /// (reads, or writes of identical content).
    pub replay_safe: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionType {
    NoOp,
    Wait,
    SetVariables,
    Command,
    Fail,
    CreateStack,
    DeleteStack,
    GetStackOutputs,
    UploadContext,
    EmptyBucket,
}

/// A problem with a params object: the path inside `params` (may be empty) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamsProblem {
    pub path: String,
    pub message: String,
}

impl ParamsProblem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl ActionType {
    pub const ALL: [ActionType; 10] = [
        ActionType::NoOp,
        ActionType::Wait,
        ActionType::SetVariables,
        ActionType::Command,
        ActionType::Fail,
        ActionType::CreateStack,
        ActionType::DeleteStack,
        ActionType::GetStackOutputs,
        ActionType::UploadContext,
        ActionType::EmptyBucket,
    ];

    pub fn spec(self) -> &'static TypeSpec {
        match self {
            ActionType::NoOp => &no_op::SPEC,
            ActionType::Wait => &wait::SPEC,
            ActionType::SetVariables => &set_variables::SPEC,
            ActionType::Command => &command::SPEC,
            ActionType::Fail => &fail::SPEC,
            ActionType::CreateStack => &aws::create_stack::SPEC,
            ActionType::DeleteStack => &aws::delete_stack::SPEC,
            ActionType::GetStackOutputs => &aws::get_stack_outputs::SPEC,
            ActionType::UploadContext => &aws::upload_context::SPEC,
            ActionType::EmptyBucket => &aws::empty_bucket::SPEC,
        }
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Accepts `aws.create_stack` and the legacy `AWS::CreateStack` spelling.
    pub fn from_name(name: &str) -> Option<Self> {
        let canonical = canonical_type_name(name);
        Self::ALL.into_iter().find(|t| t.name() == canonical)
    }

    /// Checks a params object against this type's schema (before templates are rendered, so
    /// string fields may hold templates).
    pub fn check_params(self, params: &Value) -> Result<(), ParamsProblem> {
        match self {
            ActionType::NoOp => parse::<no_op::Params>(params).map(drop),
            ActionType::Wait => parse::<wait::Params>(params)?.validate(),
            ActionType::SetVariables => parse::<set_variables::Params>(params).map(drop),
            ActionType::Command => parse::<command::Params>(params)?.validate(),
            ActionType::Fail => parse::<fail::Params>(params).map(drop),
            ActionType::CreateStack => parse::<aws::create_stack::Params>(params)?.validate(),
            ActionType::DeleteStack => parse::<aws::delete_stack::Params>(params).map(drop),
            ActionType::GetStackOutputs => {
                parse::<aws::get_stack_outputs::Params>(params).map(drop)
            }
            ActionType::UploadContext => parse::<aws::upload_context::Params>(params).map(drop),
            ActionType::EmptyBucket => parse::<aws::empty_bucket::Params>(params).map(drop),
        }
    }

    /// Whether re-running this action after an interrupted attempt is allowed.
    pub fn may_replay(self, params: &Value) -> bool {
        self.spec().replay_safe
            || params
                .get("idempotent")
                .and_then(Value::as_bool)
                .unwrap_or(false)
    }
}

/// `AWS::CreateStack` → `aws.create_stack`; canonical names pass through unchanged.
pub fn canonical_type_name(name: &str) -> String {
    let Some((namespace, kind)) = name.split_once("::") else {
        return name.to_string();
    };
    let mut snake = String::with_capacity(kind.len() + 4);
    for (i, c) in kind.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    format!("{}.{}", namespace.to_ascii_lowercase(), snake)
}

/// Deserializes params into a type's schema, reporting the path of the first problem.
pub fn parse<P: DeserializeOwned>(params: &Value) -> Result<P, ParamsProblem> {
    let empty = Value::Object(Default::default());
    let params = if params.is_null() { &empty } else { params };
    serde_path_to_error::deserialize(params).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { String::new() } else { path };
        plain_problem(path, &err.into_inner().to_string())
    })
}

/// Turns serde's wording into baton's: the field goes into the path, names get quotes, and an
/// unknown field gets a suggestion.
fn plain_problem(path: String, message: &str) -> ParamsProblem {
    let join = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let quoted = |text: &str| text.split('`').nth(1).unwrap_or_default().to_string();
    if let Some(rest) = message.strip_prefix("missing field ") {
        return ParamsProblem::new(join(&quoted(rest)), "missing required field");
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let name = quoted(rest);
        // serde_path_to_error already put the unknown field at the end of the path.
        let join = |name: &str| {
            if path == name || path.ends_with(&format!(".{name}")) {
                path.clone()
            } else {
                join(name)
            }
        };
        if rest.contains("there are no fields") {
            return ParamsProblem::new(join(&name), "unknown field (this type takes no params)");
        }
        let allowed: Vec<String> = rest
            .split_once("expected ")
            .map(|(_, list)| {
                list.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let hint = crate::hints::suggest(&name, allowed.iter().map(String::as_str))
            .map(|s| format!(" (did you mean \"{s}\"?)"))
            .unwrap_or_else(|| format!(" (allowed: {})", allowed.join(", ")));
        return ParamsProblem::new(join(&name), format!("unknown field{hint}"));
    }
    ParamsProblem::new(path, message.replace('`', "\""))
}

/// True when a string would be rendered as a template.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Runs a pure, instant type (see [`Mode::Inline`]) on rendered params.
pub fn run_inline(action_type: ActionType, params: &Value) -> crate::executor::Outcome {
    use crate::executor::Outcome;
    match action_type {
        ActionType::NoOp => Outcome::complete(),
        ActionType::SetVariables => match parse::<set_variables::Params>(params) {
            Ok(p) => Outcome::Complete {
                outputs: p.variables,
            },
            Err(problem) => {
                Outcome::failed(format!("params.{}: {}", problem.path, problem.message))
            }
        },
        ActionType::Fail => match parse::<fail::Params>(params) {
            Ok(p) => Outcome::Failed {
                error: p.message,
                retryable: p.retryable,
            },
            Err(problem) => {
                Outcome::failed(format!("params.{}: {}", problem.path, problem.message))
            }
        },
        other => Outcome::failed(format!("{} is not an inline type", other.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_kind_names_map_to_canonical() {
        assert_eq!(
            ActionType::from_name("AWS::CreateStack"),
            Some(ActionType::CreateStack)
        );
        assert_eq!(
            ActionType::from_name("SYSTEM::NoOp"),
            Some(ActionType::NoOp)
        );
        assert_eq!(
            ActionType::from_name("system.set_variables"),
            Some(ActionType::SetVariables)
        );
        assert_eq!(
            ActionType::from_name("AWS::GetStackOutputs"),
            Some(ActionType::GetStackOutputs)
        );
        assert_eq!(ActionType::from_name("system.nope"), None);
    }

    #[test]
    fn every_type_has_a_unique_name() {
        let mut names: Vec<_> = ActionType::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ActionType::ALL.len());
    }
}
