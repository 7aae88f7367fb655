//! `aws.create_change_set`: prepares a CloudFormation change set (for a new stack or an
//! existing one) and waits until CloudFormation has worked out its changes; applying it is
//! `aws.apply_change_set`.

use std::time::Duration;

use serde::Deserialize;

use super::{AccountId, Parameters, Tags};
use crate::actions::{Mode, ParamsProblem, Schema, TypeSpec};

/// The `aws.create_change_set` type.
pub struct CreateChangeSet;

impl Schema for CreateChangeSet {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.create_change_set",
        mode: Mode::Async,
        poll_interval: Duration::from_secs(5),
        can_cancel: false,
        replay_safe: true,
    };
    type Params = Params;

    fn validate(p: &Params) -> Result<(), ParamsProblem> {
        if p.template_url.is_some() == p.template_body.is_some() {
            return Err(ParamsProblem::new(
                "",
                "give exactly one of template_url or template_body",
            ));
        }
        Ok(())
    }

    fn abort_note() -> String {
        "CloudFormation finishes preparing a change set it has started; delete it with \
         aws.delete_change_set if it is not wanted"
            .into()
    }
}

/// Params of `aws.create_change_set`.
#[allow(missing_docs)] // CloudFormation's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub stack_name: String,
    pub change_set_name: String,
    pub template_url: Option<String>,
    pub template_body: Option<String>,
    /// The stack's parameters (`StackParameters` in Simple Cloud Kit files).
    #[serde(default, alias = "parameters")]
    pub stack_parameters: Parameters,
    pub tags: Option<Tags>,
    /// Default: `CAPABILITY_IAM`, `CAPABILITY_NAMED_IAM` and `CAPABILITY_AUTO_EXPAND`, the
    /// capabilities the Simple Cloud Kit runner always grants.
    pub capabilities: Option<Vec<String>>,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

/// Whether a failed change set failed only because it changes nothing.
#[cfg(feature = "aws")]
pub(crate) fn changes_nothing(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

#[cfg(feature = "aws")]
mod calls {
    use aws_sdk_cloudformation::types::{
        Capability, ChangeSetStatus, ChangeSetType, Parameter, Tag,
    };
    use aws_sdk_cloudformation::Client;
    use serde_json::{json, Map, Value};

    use super::{changes_nothing, CreateChangeSet, Params};
    use crate::actions::aws::{call_failed, stacks, tag_pairs};
    use crate::actions::{Behaviour, CheckRequest, Env, Outcome, Schema, StartRequest};
    use crate::log::Level;

    const DEFAULT_CAPABILITIES: [&str; 3] = [
        "CAPABILITY_IAM",
        "CAPABILITY_NAMED_IAM",
        "CAPABILITY_AUTO_EXPAND",
    ];

    impl Behaviour for CreateChangeSet {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => start(&aws.cfn(&params.target(aws)).await, &params, request).await,
                Err(outcome) => outcome,
            }
        }

        async fn check(env: &Env, params: Params, request: &CheckRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => check(&aws.cfn(&params.target(aws)).await, &params, request).await,
                Err(outcome) => outcome,
            }
        }
    }

    /// The description that marks a change set as made by one attempt.
    fn made_by(token: &str) -> String {
        format!("created by baton ({token})")
    }

    async fn start(client: &Client, p: &Params, request: &StartRequest) -> Outcome {
        let token = request.idempotency_token();
        // A replayed start follows the change set this attempt made.
        if let Ok(out) = client
            .describe_change_set()
            .change_set_name(&p.change_set_name)
            .stack_name(&p.stack_name)
            .send()
            .await
        {
            if out.description() == Some(made_by(&token).as_str()) {
                request.log.send(
                    Level::Info,
                    format!(
                        "change set {} already created by this attempt",
                        p.change_set_name
                    ),
                );
                return Outcome::Running {
                    handle: json!({"change_set_id": out.change_set_id(), "stack_id": out.stack_id()}),
                    check_after: std::time::Duration::ZERO,
                };
            }
        }
        // A stack that only exists for an unexecuted change set (REVIEW_IN_PROGRESS) is still
        // created by the next one.
        let kind = match stacks::find(client, &p.stack_name).await {
            Err(outcome) => return outcome,
            Ok(Some(stack)) if stack.status != "REVIEW_IN_PROGRESS" => ChangeSetType::Update,
            Ok(_) => ChangeSetType::Create,
        };
        let (capabilities, parameters, tags) = request_parts(p);
        // With the token CloudFormation answers a repeated request with the change set it
        // made, where another change set of the same name is refused (AlreadyExistsException).
        let created = client
            .create_change_set()
            .stack_name(&p.stack_name)
            .change_set_name(&p.change_set_name)
            .change_set_type(kind.clone())
            .client_token(&token)
            .description(made_by(&token))
            .set_template_url(p.template_url.clone())
            .set_template_body(p.template_body.clone())
            .set_parameters(Some(parameters))
            .set_tags(Some(tags))
            .set_capabilities(Some(capabilities))
            .send()
            .await;
        match created {
            Ok(out) => {
                request.log.send(
                    Level::Info,
                    format!(
                        "creating change set {} ({}) for stack {}",
                        p.change_set_name,
                        kind.as_str(),
                        p.stack_name
                    ),
                );
                Outcome::Running {
                    handle: json!({"change_set_id": out.id(), "stack_id": out.stack_id()}),
                    check_after: std::time::Duration::ZERO,
                }
            }
            Err(e) => call_failed(
                &format!(
                    "CreateChangeSet {} for stack {}",
                    p.change_set_name, p.stack_name
                ),
                &e,
            ),
        }
    }

    /// The request's capabilities, parameters and tags.
    fn request_parts(p: &Params) -> (Vec<Capability>, Vec<Parameter>, Vec<Tag>) {
        let capabilities = match &p.capabilities {
            Some(list) => list.iter().map(|c| Capability::from(c.as_str())).collect(),
            None => DEFAULT_CAPABILITIES.map(Capability::from).to_vec(),
        };
        let parameters = p
            .stack_parameters
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Parameter::builder()
                    .parameter_key(key)
                    .parameter_value(value)
                    .build()
            })
            .collect();
        let tags = tag_pairs(p.tags.as_ref())
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        (capabilities, parameters, tags)
    }

    async fn check(client: &Client, p: &Params, request: &CheckRequest) -> Outcome {
        let id = request
            .handle
            .get("change_set_id")
            .and_then(Value::as_str)
            .unwrap_or(&p.change_set_name);
        let described = client
            .describe_change_set()
            .change_set_name(id)
            .stack_name(&p.stack_name)
            .send()
            .await;
        let out = match described {
            Ok(out) => out,
            Err(e) => return call_failed(&format!("DescribeChangeSet {}", p.change_set_name), &e),
        };
        let reason = out.status_reason().unwrap_or_default();
        let mut outputs = Map::new();
        outputs.insert("ChangeSetName".into(), json!(p.change_set_name));
        outputs.insert("ChangeSetId".into(), json!(out.change_set_id()));
        outputs.insert("StackName".into(), json!(p.stack_name));
        outputs.insert("StackId".into(), json!(out.stack_id()));
        match out.status() {
            Some(ChangeSetStatus::CreateComplete) => {
                let count = match count_changes(client, p, id, &out).await {
                    Ok(count) => count,
                    Err(outcome) => return outcome,
                };
                outputs.insert("ChangesCount".into(), json!(count));
                request.log.send(
                    Level::Info,
                    format!(
                        "change set {} is ready: {count} change(s)",
                        p.change_set_name
                    ),
                );
                Outcome::Complete { outputs }
            }
            Some(ChangeSetStatus::Failed) if changes_nothing(reason) => {
                outputs.insert("ChangesCount".into(), json!(0));
                request.log.send(
                    Level::Info,
                    format!("change set {} changes nothing: {reason}", p.change_set_name),
                );
                Outcome::Complete { outputs }
            }
            Some(ChangeSetStatus::CreatePending | ChangeSetStatus::CreateInProgress) => {
                Outcome::Running {
                    handle: request.handle.clone(),
                    check_after: CreateChangeSet::SPEC.poll_interval,
                }
            }
            status => Outcome::failed(format!(
                "change set {} for stack {} is {}: {reason}",
                p.change_set_name,
                p.stack_name,
                status.map(|s| s.as_str()).unwrap_or("in an unknown status")
            )),
        }
    }

    /// The number of changes, over every page of the description.
    async fn count_changes(
        client: &Client,
        p: &Params,
        id: &str,
        first: &aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput,
    ) -> Result<usize, Outcome> {
        let mut count = first.changes().len();
        let mut next = first.next_token().map(str::to_string);
        while let Some(token) = next {
            let page = client
                .describe_change_set()
                .change_set_name(id)
                .stack_name(&p.stack_name)
                .next_token(token)
                .send()
                .await
                .map_err(|e| {
                    call_failed(&format!("DescribeChangeSet {}", p.change_set_name), &e)
                })?;
            count += page.changes().len();
            next = page.next_token().map(str::to_string);
        }
        Ok(count)
    }
}
