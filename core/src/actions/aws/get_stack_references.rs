//! `aws.get_stack_references`: how many stacks import one of a stack's outputs, so a teardown
//! can leave alone what others still use. The export is named `<stack_name>:<output_name>`, the
//! convention of the stacks the Simple Cloud Kit deploys.

use std::time::Duration;

use serde::Deserialize;

use super::AccountId;
use crate::actions::{Mode, Schema, TypeSpec};

/// The `aws.get_stack_references` type.
pub struct GetStackReferences;

impl Schema for GetStackReferences {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.get_stack_references",
        mode: Mode::Sync,
        poll_interval: Duration::ZERO,
        can_cancel: false,
        replay_safe: true,
    };
    type Params = Params;
}

/// Params of `aws.get_stack_references`.
#[allow(missing_docs)] // CloudFormation's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub stack_name: String,
    pub output_name: String,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(feature = "aws")]
mod calls {
    use serde_json::{json, Map, Value};

    use super::{GetStackReferences, Params};
    use crate::actions::aws::call_failed;
    use crate::actions::{Behaviour, Env, Outcome, StartRequest};
    use crate::aws::{code, describe};
    use crate::log::Level;

    impl Behaviour for GetStackReferences {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => {
                    let client = aws.cfn(&params.target(aws)).await;
                    start(&client, &params, request).await
                }
                Err(outcome) => outcome,
            }
        }
    }

    /// The export a stack's output is published under.
    fn export_name(p: &Params) -> String {
        format!("{}:{}", p.stack_name, p.output_name)
    }

    async fn start(
        client: &aws_sdk_cloudformation::Client,
        p: &Params,
        request: &StartRequest,
    ) -> Outcome {
        let export = export_name(p);
        let mut importers = Vec::new();
        let mut pages = client
            .list_imports()
            .export_name(&export)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            match item {
                Ok(stack) => importers.push(Value::String(stack)),
                // CloudFormation answers a missing or unused export with a ValidationError.
                Err(e)
                    if code(&e).as_deref() == Some("ValidationError")
                        && ["is not imported", "does not exist"]
                            .iter()
                            .any(|words| describe(&e).contains(words)) =>
                {
                    request
                        .log
                        .send(Level::Info, format!("export {export}: {}", describe(&e)));
                    break;
                }
                Err(e) => return call_failed(&format!("ListImports {export}"), &e),
            }
        }
        request.log.send(
            Level::Info,
            format!(
                "export {export} is imported by {} stack(s)",
                importers.len()
            ),
        );
        let mut outputs = Map::new();
        outputs.insert("ExportName".into(), json!(export));
        outputs.insert("NumReferences".into(), json!(importers.len()));
        outputs.insert("HasReferences".into(), json!(!importers.is_empty()));
        outputs.insert("References".into(), Value::Array(importers));
        Outcome::Complete { outputs }
    }
}
