//! `aws.create_stack`: creates a CloudFormation stack, or updates it when it exists.

use std::time::Duration;

use serde::Deserialize;

use super::{AccountId, Parameters, Tags};
use crate::actions::{Mode, ParamsProblem, TypeSpec};

pub const SPEC: TypeSpec = TypeSpec {
    name: "aws.create_stack",
    mode: Mode::Async,
    poll_interval: Duration::from_secs(10),
    can_cancel: true,
    replay_safe: true,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub stack_name: String,
    pub template_url: Option<String>,
    pub template_body: Option<String>,
    pub template_file: Option<String>,
    #[serde(default)]
    pub parameters: Parameters,
    pub tags: Option<Tags>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
    pub on_failure: Option<String>,
    pub timeout_in_minutes: Option<u32>,
}

impl Params {
    pub fn validate(&self) -> Result<(), ParamsProblem> {
        let sources = [&self.template_url, &self.template_body, &self.template_file]
            .iter()
            .filter(|s| s.is_some())
            .count();
        if sources != 1 {
            return Err(ParamsProblem::new(
                "",
                "give exactly one of template_url, template_body or template_file",
            ));
        }
        if let Some(mode) = &self.on_failure {
            if !["DO_NOTHING", "ROLLBACK", "DELETE"].contains(&mode.as_str()) {
                return Err(ParamsProblem::new(
                    "on_failure",
                    format!("\"{mode}\" is not one of DO_NOTHING, ROLLBACK, DELETE"),
                ));
            }
        }
        Ok(())
    }
}
