//! `aws.kms.create_grants`: grants principals (service-linked roles, typically) the use of a
//! KMS key. Each grant is named after its principal; a grant of that name, principal and
//! operations that already exists is kept, so a replayed start grants nothing twice.

use std::time::Duration;

use serde::Deserialize;

use super::{AccountId, Flag};
use crate::actions::{Mode, ParamsProblem, Schema, TypeSpec};

/// The `aws.kms.create_grants` type.
pub struct CreateGrants;

/// The operations a KMS grant may allow.
const OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
];

impl Schema for CreateGrants {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.kms.create_grants",
        mode: Mode::Sync,
        poll_interval: Duration::ZERO,
        can_cancel: false,
        replay_safe: true,
    };
    const FEATURE: &'static str = "aws-kms";
    type Params = Params;

    fn validate(p: &Params) -> Result<(), ParamsProblem> {
        if p.kms_key_arn.is_none() && p.kms_key_id.is_none() {
            return Err(ParamsProblem::new("", "give kms_key_arn or kms_key_id"));
        }
        if p.grantee_principals.is_empty() {
            return Err(ParamsProblem::new(
                "grantee_principals",
                "name at least one principal",
            ));
        }
        if p.operations.is_empty() {
            return Err(ParamsProblem::new(
                "operations",
                "name at least one operation",
            ));
        }
        for (i, op) in p.operations.iter().enumerate() {
            if !OPERATIONS.contains(&op.as_str()) && !crate::template::is_template(op) {
                let hint = crate::hints::did_you_mean(op, OPERATIONS.iter().copied())
                    .unwrap_or_else(|| format!(" (allowed: {})", OPERATIONS.join(", ")));
                return Err(ParamsProblem::new(
                    format!("operations[{i}]"),
                    format!("\"{op}\" is not a KMS grant operation{hint}"),
                ));
            }
        }
        match &p.ignore_failed_grants {
            Some(flag) => flag.validate("ignore_failed_grants"),
            None => Ok(()),
        }
    }
}

/// Params of `aws.kms.create_grants`.
#[allow(missing_docs)] // KMS's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub kms_key_arn: Option<String>,
    /// Used when `kms_key_arn` is not given.
    pub kms_key_id: Option<String>,
    pub grantee_principals: Vec<String>,
    pub operations: Vec<String>,
    /// Go on (logging a warning) when a principal cannot be granted, e.g. a service-linked
    /// role the account does not have yet. Default: false.
    pub ignore_failed_grants: Option<Flag>,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

/// The grant's name: the principal with what KMS refuses in names written as `-`.
#[cfg_attr(not(feature = "aws-kms"), allow(dead_code))]
fn grant_name(principal: &str) -> String {
    principal
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | ':' | '/' | '_' | '-' => c,
            _ => '-',
        })
        .collect()
}

#[cfg(not(feature = "aws-kms"))]
#[cfg(feature = "aws")]
super::needs_feature!(CreateGrants);

#[cfg(feature = "aws-kms")]
mod calls {
    use std::collections::BTreeSet;

    use aws_sdk_kms::types::{GrantListEntry, GrantOperation};
    use aws_sdk_kms::Client;
    use serde_json::{json, Map};

    use super::{grant_name, CreateGrants, Params};
    use crate::actions::aws::{call_failed, required};
    use crate::actions::{Behaviour, Env, Outcome, StartRequest};
    use crate::aws::describe;
    use crate::log::Level;

    impl Behaviour for CreateGrants {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => start(&aws.kms(&params.target(aws)).await, &params, request).await,
                Err(outcome) => outcome,
            }
        }
    }

    /// What the grants for one key came to.
    #[derive(Default)]
    struct Granted {
        ids: Vec<String>,
        created: usize,
        failed: Vec<String>,
    }

    async fn start(client: &Client, p: &Params, request: &StartRequest) -> Outcome {
        let (field, key) = match (&p.kms_key_arn, &p.kms_key_id) {
            (Some(arn), _) => ("kms_key_arn", arn),
            (None, Some(id)) => ("kms_key_id", id),
            (None, None) => return Outcome::failed("params: give kms_key_arn or kms_key_id"),
        };
        if let Err(problem) = required(field, key) {
            return problem.into_outcome();
        }
        let ignore_failures = match &p.ignore_failed_grants {
            Some(flag) => match flag.value("ignore_failed_grants") {
                Ok(value) => value,
                Err(problem) => return problem.into_outcome(),
            },
            None => false,
        };
        let existing = match client
            .list_grants()
            .key_id(key)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
        {
            Ok(grants) => grants,
            Err(e) => return call_failed(&format!("ListGrants {key}"), &e),
        };
        let operations: Vec<GrantOperation> = p
            .operations
            .iter()
            .map(|op| GrantOperation::from(op.as_str()))
            .collect();
        let mut granted = Granted::default();
        for principal in &p.grantee_principals {
            let name = grant_name(principal);
            if let Some(id) = already_granted(&existing, &name, principal, &operations) {
                granted.ids.push(id);
                continue;
            }
            let created = client
                .create_grant()
                .key_id(key)
                .grantee_principal(principal)
                .name(&name)
                .set_operations(Some(operations.clone()))
                .send()
                .await;
            match created {
                Ok(out) => {
                    granted.ids.extend(out.grant_id().map(str::to_string));
                    granted.created += 1;
                }
                Err(e) if ignore_failures => {
                    request.log.send(
                        Level::Warn,
                        format!(
                            "could not grant {principal} the use of {key} (ignored): {}",
                            describe(&e)
                        ),
                    );
                    granted.failed.push(principal.clone());
                }
                Err(e) => return call_failed(&format!("CreateGrant {key} to {principal}"), &e),
            }
        }
        request.log.send(
            Level::Info,
            format!(
                "key {key}: {} grant(s) created, {} already there, {} failed",
                granted.created,
                granted.ids.len() - granted.created,
                granted.failed.len()
            ),
        );
        let mut outputs = Map::new();
        outputs.insert("KmsKeyId".into(), json!(key));
        outputs.insert("GrantIds".into(), json!(granted.ids));
        outputs.insert("TotalGrantsCreated".into(), json!(granted.created));
        outputs.insert("TotalGrantsFailed".into(), json!(granted.failed.len()));
        outputs.insert("FailedPrincipalNames".into(), json!(granted.failed));
        Outcome::Complete { outputs }
    }

    /// The id of a grant of this name to this principal for exactly these operations.
    fn already_granted(
        existing: &[GrantListEntry],
        name: &str,
        principal: &str,
        operations: &[GrantOperation],
    ) -> Option<String> {
        let wanted: BTreeSet<&str> = operations.iter().map(GrantOperation::as_str).collect();
        existing
            .iter()
            .find(|g| {
                let has: BTreeSet<&str> =
                    g.operations().iter().map(GrantOperation::as_str).collect();
                g.name() == Some(name) && g.grantee_principal() == Some(principal) && has == wanted
            })
            .and_then(|g| g.grant_id().map(str::to_string))
    }
}
