//! `system.wait`: completes once `seconds` have passed since it started. It never sleeps inside
//! a tick: the engine returns `wait` and checks again at the deadline.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{is_template, Mode, ParamsProblem, TypeSpec};
use crate::duration::{parse_duration, seconds_to_duration};

pub const SPEC: TypeSpec = TypeSpec {
    name: "system.wait",
    mode: Mode::Async,
    poll_interval: Duration::from_secs(1),
    can_cancel: true,
    replay_safe: true,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// A number of seconds, or a duration such as `"2m"`, or a template producing either.
    pub seconds: Value,
}

impl Params {
    pub fn validate(&self) -> Result<(), ParamsProblem> {
        match &self.seconds {
            Value::String(text) if is_template(text) => Ok(()),
            _ => self.duration().map(drop),
        }
    }

    pub fn duration(&self) -> Result<Duration, ParamsProblem> {
        let result = match &self.seconds {
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| "is not a number".to_string())
                .and_then(seconds_to_duration),
            Value::String(text) => parse_duration(text),
            other => Err(format!(
                "must be a number of seconds or a duration, not {other}"
            )),
        };
        result.map_err(|message| ParamsProblem::new("seconds", message))
    }
}
