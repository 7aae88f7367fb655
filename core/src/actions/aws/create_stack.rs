//! `aws.create_stack`: creates a CloudFormation stack, or updates it when it exists.

use std::time::Duration;

use serde::Deserialize;

use super::{AccountId, Parameters, Tags};
use crate::actions::{Mode, ParamsProblem, Schema, TypeSpec};

/// The `aws.create_stack` type.
pub struct CreateStack;

impl Schema for CreateStack {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.create_stack",
        mode: Mode::Async,
        poll_interval: Duration::from_secs(10),
        can_cancel: true,
        replay_safe: true,
    };
    type Params = Params;

    fn validate(params: &Params) -> Result<(), ParamsProblem> {
        params.validate()
    }

    fn abort_note() -> String {
        "a stack that is being created cannot be cancelled; it keeps going in AWS".into()
    }
}

/// Params of `aws.create_stack`.
#[allow(missing_docs)] // CloudFormation's own parameter names
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
    pub service_role_arn: Option<String>,
    pub on_failure: Option<String>,
    pub timeout_in_minutes: Option<u32>,
}

impl Params {
    fn validate(&self) -> Result<(), ParamsProblem> {
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
        if self
            .template_file
            .as_deref()
            .is_some_and(crate::template::is_template)
        {
            return Err(ParamsProblem::new(
                "template_file",
                "name the file as it is, without a template: baton reads it when the run is \
                 created, before templates render; use template_url or template_body for a \
                 template that depends on the run",
            ));
        }
        super::check_service_role(self.service_role_arn.as_deref())?;
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

super::aws_target!(Params);

#[cfg(feature = "aws")]
mod calls {
    use aws_sdk_cloudformation::types::{Capability, OnFailure, Parameter, Tag as CfnTag};
    use serde_json::{json, Value};

    use super::{CreateStack, Params};
    use crate::actions::aws::stacks::{self, Class};
    use crate::actions::aws::template_file::{self, Reach};
    use crate::actions::aws::Tags;
    use crate::actions::{
        Behaviour, CancelError, CheckRequest, Env, Outcome, Schema, StartRequest,
    };
    use crate::aws::{describe, Aws};
    use crate::log::{ts, Level};

    impl Behaviour for CreateStack {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => start(env, aws, &params, request).await,
                Err(outcome) => outcome,
            }
        }

        async fn check(env: &Env, params: Params, request: &CheckRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => check(aws, &params, request).await,
                Err(outcome) => outcome,
            }
        }

        async fn cancel(
            env: &Env,
            params: Params,
            request: &CheckRequest,
        ) -> Result<(), CancelError> {
            match env.aws() {
                Ok(aws) => cancel(aws, &params, request).await,
                Err(_) => Err(CancelError::Refused("no AWS configuration".into())),
            }
        }
    }

    fn text(value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    async fn start(env: &Env, aws: &Aws, p: &Params, request: &StartRequest) -> Outcome {
        let client = aws.cfn(&p.target(aws)).await;
        let token = request.idempotency_token();
        let since = chrono::Utc::now();
        // Has this attempt already reached CloudFormation (a replayed tick)? Then follow it.
        match stacks::find(&client, &p.stack_name).await {
            Err(outcome) => return outcome,
            Ok(Some(stack)) => {
                if stack.create_token.as_deref() == Some(token.as_str())
                    || stacks::token_seen(&client, &stack.id, &token).await
                {
                    request.log.send(
                        Level::Info,
                        format!("stack {} already started by this attempt", p.stack_name),
                    );
                    let handle = json!({"stack_id": stack.id, "operation": stack.operation(), "since": ts::format(&since)});
                    return Outcome::Running {
                        handle,
                        check_after: std::time::Duration::ZERO,
                    };
                }
                match stacks::classify(&stack.status) {
                    Class::InProgress | Class::RollingBack => {
                        return Outcome::Failed {
                            error: format!("stack {} is busy ({}); try again when it settles", p.stack_name, stack.status),
                            retryable: true,
                        }
                    }
                    _ if stack.status == "ROLLBACK_COMPLETE" => {
                        return Outcome::failed(format!(
                            "stack {} is in ROLLBACK_COMPLETE after a failed create and cannot be updated; delete it (aws.delete_stack) and re-run",
                            p.stack_name
                        ))
                    }
                    _ => {
                        let stack = (stack.id.as_str(), since);
                        return update(env, &client, p, request, &token, stack).await;
                    }
                }
            }
            Ok(None) => {}
        }
        let (template_url, template_body) = match template(env, p) {
            Ok(template) => template,
            Err(e) => return Outcome::failed(e),
        };
        let mut call = client
            .create_stack()
            .stack_name(&p.stack_name)
            .client_request_token(&token)
            .set_template_url(template_url)
            .set_template_body(template_body)
            .set_parameters(parameters(p))
            .set_tags(Some(create_tags(p, &token)))
            .set_capabilities(capabilities(p))
            .set_role_arn(p.service_role_arn.clone());
        if let Some(mode) = &p.on_failure {
            call = call.on_failure(OnFailure::from(mode.as_str()));
        }
        if let Some(minutes) = p.timeout_in_minutes {
            call = call.timeout_in_minutes(minutes as i32);
        }
        match call.send().await {
            Ok(out) => {
                let stack_id = out.stack_id().unwrap_or(&p.stack_name).to_string();
                request.log.send(
                    Level::Info,
                    format!("creating stack {} ({stack_id})", p.stack_name),
                );
                Outcome::Running {
                    handle: json!({"stack_id": stack_id, "operation": "create", "since": ts::format(&since)}),
                    check_after: std::time::Duration::ZERO,
                }
            }
            Err(e) => Outcome::Failed {
                error: format!("CreateStack {}: {}", p.stack_name, describe(&e)),
                retryable: crate::aws::retryable(&e),
            },
        }
    }

    async fn update(
        env: &Env,
        client: &aws_sdk_cloudformation::Client,
        p: &Params,
        request: &StartRequest,
        token: &str,
        (stack_id, since): (&str, chrono::DateTime<chrono::Utc>),
    ) -> Outcome {
        let (template_url, template_body) = match template(env, p) {
            Ok(template) => template,
            Err(e) => return Outcome::failed(e),
        };
        let call = client
            .update_stack()
            .stack_name(stack_id)
            .client_request_token(token)
            .set_template_url(template_url)
            .set_template_body(template_body)
            .set_parameters(parameters(p))
            .set_tags(tags(p))
            .set_capabilities(capabilities(p))
            .set_role_arn(p.service_role_arn.clone());
        match call.send().await {
            Ok(_) => {
                request
                    .log
                    .send(Level::Info, format!("updating stack {}", p.stack_name));
                Outcome::Running {
                    handle: json!({"stack_id": stack_id, "operation": "update", "since": ts::format(&since)}),
                    check_after: std::time::Duration::ZERO,
                }
            }
            Err(e) if describe(&e).contains("No updates are to be performed") => {
                request.log.send(
                    Level::Info,
                    format!("stack {} is already up to date", p.stack_name),
                );
                match stacks::find(client, stack_id).await {
                    Ok(Some(stack)) => Outcome::Complete {
                        outputs: stack.outputs,
                    },
                    Ok(None) => Outcome::failed(format!("stack {} disappeared", p.stack_name)),
                    Err(outcome) => outcome,
                }
            }
            Err(e) => Outcome::Failed {
                error: format!("UpdateStack {}: {}", p.stack_name, describe(&e)),
                retryable: crate::aws::retryable(&e),
            },
        }
    }

    async fn check(aws: &Aws, p: &Params, request: &CheckRequest) -> Outcome {
        let client = aws.cfn(&p.target(aws)).await;
        stacks::follow(
            &client,
            &p.stack_name,
            request,
            CreateStack::SPEC.poll_interval,
        )
        .await
    }

    async fn cancel(aws: &Aws, p: &Params, request: &CheckRequest) -> Result<(), CancelError> {
        let client = aws.cfn(&p.target(aws)).await;
        stacks::cancel_update(&client, &p.stack_name, &request.handle).await
    }

    fn parameters(p: &Params) -> Option<Vec<Parameter>> {
        (!p.parameters.is_empty()).then(|| {
            p.parameters
                .iter()
                .map(|(k, v)| {
                    Parameter::builder()
                        .parameter_key(k)
                        .parameter_value(text(v))
                        .build()
                })
                .collect()
        })
    }

    /// The user's tags plus the attempt's create token.
    fn create_tags(p: &Params, token: &str) -> Vec<CfnTag> {
        let mut tags = tags(p).unwrap_or_default();
        tags.push(
            CfnTag::builder()
                .key(stacks::CREATE_TOKEN_TAG)
                .value(token)
                .build(),
        );
        tags
    }

    fn tags(p: &Params) -> Option<Vec<CfnTag>> {
        let pairs: Vec<(String, String)> = match p.tags.as_ref()? {
            Tags::Map(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Tags::List(list) => list
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect(),
        };
        Some(
            pairs
                .into_iter()
                .map(|(k, v)| CfnTag::builder().key(k).value(v).build())
                .collect(),
        )
    }

    fn capabilities(p: &Params) -> Option<Vec<Capability>> {
        (!p.capabilities.is_empty()).then(|| {
            p.capabilities
                .iter()
                .map(|c| Capability::from(c.as_str()))
                .collect()
        })
    }

    /// (template_url, template_body): exactly one is set. A `template_file` is still here
    /// when the run was created with a local store and the template is too big to inline
    /// (creation wrote its canonical path); it is read again, bounded, so the action fails
    /// saying what to do, and where this process reads no local files it is refused.
    fn template(env: &Env, p: &Params) -> Result<(Option<String>, Option<String>), String> {
        if let Some(url) = &p.template_url {
            return Ok((Some(https_template_url(url)), None));
        }
        if let Some(body) = &p.template_body {
            return Ok((None, Some(body.clone())));
        }
        if let Some(file) = &p.template_file {
            return read_at_start(env, file).map(|body| (None, Some(body)));
        }
        Err("params: give one of template_url, template_body or template_file".into())
    }

    /// CloudFormation takes a template only by its HTTPS address; SCK files name it
    /// `s3://bucket/key`.
    fn https_template_url(url: &str) -> String {
        match url
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
        {
            Some((bucket, key)) if !bucket.is_empty() => {
                format!("https://{bucket}.s3.amazonaws.com/{key}")
            }
            _ => url.to_string(),
        }
    }

    fn read_at_start(env: &Env, file: &str) -> Result<String, String> {
        let field = "params.template_file";
        if let Some(reason) = &env.files_refused {
            return Err(format!("{field}: {file}: {reason}"));
        }
        let path = std::path::Path::new(file);
        // Creation writes the canonical path; anything else was not written by baton.
        let folder = match path.parent() {
            Some(folder) if path.is_absolute() => folder,
            _ => {
                return Err(format!(
                    "{field}: {file} is not the absolute path baton writes when it creates a run; \
                     name template files in the action file (read when the run is created) or \
                     use template_url"
                ))
            }
        };
        let read = template_file::read(path, Reach::Within(folder), template_file::MAX_INLINE)
            .map_err(|refused| format!("{field}: {refused}"))?;
        String::from_utf8(read.bytes).map_err(|_| format!("{field}: {file} is not UTF-8 text"))
    }
}
