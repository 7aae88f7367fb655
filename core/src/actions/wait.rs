//! `system.wait`: completes once `seconds` have passed since it started. It never sleeps inside
//! a tick: the engine returns `wait` and checks again at the deadline.

use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    Behaviour, CancelError, CheckRequest, Env, Mode, Outcome, ParamsProblem, Schema, StartRequest,
    TypeSpec,
};
use crate::duration::{format_duration, parse_duration, seconds_to_duration};
use crate::log::{ts, Level};
use crate::template::is_template;

/// The `system.wait` type.
pub struct Wait;

/// Params of `system.wait`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// A number of seconds, or a duration such as `"2m"`, or a template producing either.
    pub seconds: Value,
}

impl Params {
    fn duration(&self) -> Result<Duration, ParamsProblem> {
        let result = match &self.seconds {
            Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| "is not a number".to_string())
                .and_then(|s| seconds_to_duration(s).map_err(|e| e.to_string())),
            Value::String(text) => parse_duration(text).map_err(|e| e.to_string()),
            other => Err(format!(
                "must be a number of seconds or a duration, not {other}"
            )),
        };
        result.map_err(|message| ParamsProblem::new("seconds", message))
    }
}

impl Schema for Wait {
    const SPEC: TypeSpec = TypeSpec {
        name: "system.wait",
        mode: Mode::Async,
        poll_interval: Duration::from_secs(1),
        can_cancel: true,
        replay_safe: true,
    };
    type Params = Params;

    fn validate(params: &Params) -> Result<(), ParamsProblem> {
        match &params.seconds {
            Value::String(text) if is_template(text) => Ok(()),
            _ => params.duration().map(drop),
        }
    }
}

impl Behaviour for Wait {
    async fn start(_env: &Env, params: Params, request: &StartRequest) -> Outcome {
        let duration = match params.duration() {
            Ok(duration) => duration,
            Err(problem) => return problem.into_outcome(),
        };
        // A duration is at most a year, so this cannot overflow; checked all the same.
        let until = chrono::Duration::from_std(duration)
            .ok()
            .and_then(|d| Utc::now().checked_add_signed(d));
        let Some(until) = until else {
            return ParamsProblem::new("seconds", "is too long to wait").into_outcome();
        };
        request.log.send(
            Level::Info,
            format!("waiting {}", format_duration(duration)),
        );
        Outcome::Running {
            handle: json!({ "until": ts::format(&until) }),
            check_after: duration,
        }
    }

    async fn check(_env: &Env, _params: Params, request: &CheckRequest) -> Outcome {
        let until = request
            .handle
            .get("until")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let Some(until) = until else {
            return Outcome::failed("the wait's handle is damaged (no \"until\")");
        };
        match (until - Utc::now()).to_std() {
            Ok(left) if !left.is_zero() => Outcome::Running {
                handle: request.handle.clone(),
                check_after: left,
            },
            _ => Outcome::complete(),
        }
    }

    /// Nothing runs anywhere: stopping is just not checking again.
    async fn cancel(
        _env: &Env,
        _params: Params,
        _request: &CheckRequest,
    ) -> Result<(), CancelError> {
        Ok(())
    }
}
