//! `aws.*` types. Their params schemas are always compiled so plans validate everywhere; the
//! calls themselves need baton-core's `aws` feature.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

pub mod create_stack;
pub mod delete_stack;
pub mod empty_bucket;
pub mod get_stack_outputs;
#[cfg(feature = "aws")]
pub(crate) mod stacks;
pub mod template_file;
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
