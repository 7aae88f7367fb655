//! `aws.*` types. Their params schemas are always compiled so plans validate everywhere; the
//! calls themselves need baton-core's `aws` feature.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

pub mod apply_change_set;
pub mod copy_image;
pub mod create_change_set;
pub mod create_cloud_front_invalidation;
pub mod create_image;
pub mod create_stack;
pub mod create_user;
pub mod delete_change_set;
pub mod delete_image;
pub mod delete_security_group_enis;
pub mod delete_stack;
pub mod delete_user;
#[cfg(feature = "aws-ecs")]
pub(crate) mod ecs;
pub mod empty_bucket;
pub mod get_stack_outputs;
pub mod get_stack_references;
#[cfg(feature = "aws-ec2")]
pub(crate) mod images;
pub mod kms_create_grants;
pub mod rds_modify_db_instance;
pub mod run_task;
pub mod share_image;
#[cfg(feature = "aws")]
pub(crate) mod stacks;
pub mod template_file;
pub mod unprotect_elb;
pub mod upload_context;

/// An AWS account id, written as a string or (as in older action files) a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum AccountId {
    /// As written.
    Text(String),
    /// A number, printed with the twelve digits account ids have.
    Number(u64),
}

impl AccountId {
    /// The twelve-digit form AWS uses in ARNs.
    #[cfg(feature = "aws")]
    pub(crate) fn to_text(&self) -> String {
        match self {
            AccountId::Text(text) => text.clone(),
            AccountId::Number(n) => format!("{n:012}"),
        }
    }
}

/// Stack tags: a map, or a list of `{ "Key": …, "Value": … }` as CloudFormation writes them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Tags {
    /// `{ "team": "platform" }`.
    Map(BTreeMap<String, String>),
    /// CloudFormation's own form, as in a template or `describe-stacks` output.
    List(Vec<Tag>),
}

/// One stack tag in CloudFormation's list form.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    /// The tag's name (`Key`).
    #[serde(rename = "Key")]
    pub key: String,
    /// The tag's value (`Value`).
    #[serde(rename = "Value")]
    pub value: String,
}

/// Stack parameters: values are strings in CloudFormation; numbers and booleans are accepted
/// and turned into their text.
pub type Parameters = BTreeMap<String, Value>;

/// `service_role_arn`: the role CloudFormation itself assumes for the stack's resources
/// (its `RoleARN`), as opposed to `role_arn`, the role baton assumes to make the calls. A typo
/// here would otherwise surface as CloudFormation's "role is invalid or cannot be assumed"
/// minutes into a deployment.
fn check_service_role(arn: Option<&str>) -> Result<(), crate::actions::ParamsProblem> {
    let Some(arn) = arn else { return Ok(()) };
    let role = arn.starts_with("arn:") && arn.contains(":iam::") && arn.contains(":role/");
    if role || crate::template::is_template(arn) {
        return Ok(());
    }
    Err(crate::actions::ParamsProblem::new(
        "service_role_arn",
        format!(
            "\"{arn}\" is not an IAM role ARN (arn:aws:iam::<account>:role/<name>): the role \
             CloudFormation assumes to create, update and delete the stack's resources"
        ),
    ))
}

/// `Params::target`: where an action's calls go (its region, and the role for its account).
macro_rules! aws_target {
    ($params:ty) => {
        #[cfg(feature = "aws")]
        impl $params {
            // Types whose service this build leaves out make no calls.
            #[cfg_attr(not(feature = "sck"), allow(dead_code))]
            pub(crate) fn target(&self, aws: &crate::aws::Aws) -> crate::aws::Target {
                crate::aws::Target::new(
                    self.region.as_deref(),
                    self.account
                        .as_ref()
                        .map($crate::actions::aws::AccountId::to_text)
                        .as_deref(),
                    self.role_arn.as_deref(),
                    aws.role_name(),
                )
            }
        }
    };
}
pub(crate) use aws_target;

/// A flag written as a boolean or as text (`"true"`, `"False"`, a template that renders to
/// one), as the Simple Cloud Kit runner accepts it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Flag {
    /// `true` / `false`.
    Bool(bool),
    /// `"true"` / `"false"` in any case, or a template.
    Text(String),
}

impl Flag {
    /// The flag's value; text must say `true` or `false` (any case) once rendered.
    pub(crate) fn value(&self, field: &str) -> Result<bool, crate::actions::ParamsProblem> {
        match self {
            Flag::Bool(b) => Ok(*b),
            Flag::Text(text) if text.trim().eq_ignore_ascii_case("true") => Ok(true),
            Flag::Text(text) if text.trim().eq_ignore_ascii_case("false") => Ok(false),
            Flag::Text(text) => Err(crate::actions::ParamsProblem::new(
                field,
                format!("\"{text}\" is neither true nor false"),
            )),
        }
    }

    /// Checks a flag before templates render: text must be a template or say true/false.
    pub(crate) fn validate(&self, field: &str) -> Result<(), crate::actions::ParamsProblem> {
        match self {
            Flag::Text(text) if crate::template::is_template(text) => Ok(()),
            flag => flag.value(field).map(drop),
        }
    }
}

/// One name or a list of names (`UserNames: alice` or `UserNames: [alice, bob]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values, in order.
    pub(crate) fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one.clone()],
            OneOrMany::Many(many) => many.clone(),
        }
    }

    /// Every value a plural field and its singular twin name (`user_names`, then
    /// `user_name`).
    pub(crate) fn with_single(many: Option<&OneOrMany>, one: Option<&String>) -> Vec<String> {
        let mut values = many.map(OneOrMany::to_vec).unwrap_or_default();
        values.extend(one.cloned());
        values
    }
}

/// Tags as `(key, value)` pairs, in the order written.
#[cfg(feature = "aws")]
pub(crate) fn tag_pairs(tags: Option<&Tags>) -> Vec<(String, String)> {
    match tags {
        None => Vec::new(),
        Some(Tags::Map(map)) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(Tags::List(list)) => list
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
    }
}

/// A string field that renders empty (e.g. from `lookup('')`) is refused at start, naming it.
#[cfg(feature = "aws")]
#[cfg_attr(not(feature = "sck"), allow(dead_code))] // its users are behind service features
pub(crate) fn required(field: &str, value: &str) -> Result<(), crate::actions::ParamsProblem> {
    if value.trim().is_empty() {
        return Err(crate::actions::ParamsProblem::new(field, "is empty"));
    }
    Ok(())
}

/// `Behaviour` for a type whose service this build leaves out: every step fails naming the
/// feature the build lacks.
#[cfg(feature = "aws")]
#[allow(unused_macros)] // a build with every service feature has no use for it
macro_rules! needs_feature {
    ($kind:ty) => {
        impl crate::actions::Behaviour for $kind {
            async fn start(
                _env: &crate::actions::Env,
                _params: Self::Params,
                _request: &crate::actions::StartRequest,
            ) -> crate::actions::Outcome {
                $crate::actions::aws::missing_feature::<Self>()
            }

            async fn check(
                _env: &crate::actions::Env,
                _params: Self::Params,
                _request: &crate::actions::CheckRequest,
            ) -> crate::actions::Outcome {
                $crate::actions::aws::missing_feature::<Self>()
            }

            async fn cancel(
                _env: &crate::actions::Env,
                _params: Self::Params,
                _request: &crate::actions::CheckRequest,
            ) -> Result<(), crate::actions::CancelError> {
                Err(crate::actions::CancelError::Refused(format!(
                    "this baton build has no `{}` feature",
                    <Self as crate::actions::Schema>::FEATURE
                )))
            }
        }
    };
}
#[cfg(feature = "aws")]
#[allow(unused_imports)]
pub(crate) use needs_feature;

/// The failure of a type whose service this build leaves out.
#[cfg(feature = "aws")]
#[allow(dead_code)] // used only by builds without some service feature
pub(crate) fn missing_feature<K: crate::actions::Schema>() -> crate::actions::Outcome {
    crate::actions::Outcome::failed(format!(
        "{} needs baton-core's `{}` feature, which this baton build does not include; \
         install a build with it (the default `baton` and `baton-lambda` builds have it)",
        K::SPEC.name,
        K::FEATURE
    ))
}

/// What describing one AWS error says, with the call that failed, and whether to retry.
#[cfg(feature = "aws")]
pub(crate) fn call_failed<E, R>(
    call: &str,
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> crate::actions::Outcome
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    crate::actions::Outcome::Failed {
        error: format!("{call}: {}", crate::aws::describe(err)),
        retryable: crate::aws::retryable(err),
    }
}
