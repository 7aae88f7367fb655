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
pub mod stacks;
pub mod upload_context;

/// An AWS account id, written as a string or (as in older action files) a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum AccountId {
    Text(String),
    Number(u64),
}

/// Stack tags: a map, or a list of `{ "Key": …, "Value": … }` as CloudFormation writes them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Tags {
    Map(BTreeMap<String, String>),
    List(Vec<Tag>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Value")]
    pub value: String,
}

/// Stack parameters: values are strings in CloudFormation; numbers and booleans are accepted
/// and turned into their text.
pub type Parameters = BTreeMap<String, Value>;

/// `Params::target`: where an action's calls go (its region, and the role for its account).
macro_rules! aws_target {
    ($params:ty) => {
        #[cfg(feature = "aws")]
        impl $params {
            pub(crate) fn target(&self, aws: &crate::aws::Aws) -> crate::aws::Target {
                crate::aws::Target::new(
                    self.region.as_deref(),
                    self.account.as_ref(),
                    self.role_arn.as_deref(),
                    aws.role_name(),
                )
            }
        }
    };
}
pub(crate) use aws_target;

/// A client for a target, or the action fails with why not.
#[cfg(feature = "aws")]
macro_rules! client_or_fail {
    ($call:expr) => {
        match $call.await {
            Ok(client) => client,
            Err(e) => return crate::executor::Outcome::failed(e),
        }
    };
}
#[cfg(feature = "aws")]
pub(crate) use client_or_fail;

/// Parses a type's params in an executor, or fails the action with the param path.
#[cfg(feature = "aws")]
macro_rules! params_or_fail {
    ($request:expr) => {
        match crate::actions::parse(&$request.params) {
            Ok(p) => p,
            Err(problem) => {
                return crate::executor::Outcome::failed(format!(
                    "params.{}: {}",
                    problem.path, problem.message
                ))
            }
        }
    };
}
#[cfg(feature = "aws")]
pub(crate) use params_or_fail;
