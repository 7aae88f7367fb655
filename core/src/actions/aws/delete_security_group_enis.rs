//! `aws.delete_security_group_enis`: detaches and deletes the network interfaces still using a
//! security group (a Lambda function's, typically), so the group itself can be deleted. Each
//! start or check looks at the interfaces as they are: detaches what is attached, deletes
//! what is free, and waits for the rest. Interfaces AWS manages itself (owner `amazon-aws`)
//! are left for AWS to release.

use std::time::Duration;

use serde::Deserialize;

use super::AccountId;
use crate::actions::{Mode, Schema, TypeSpec};

/// The `aws.delete_security_group_enis` type.
pub struct DeleteSecurityGroupEnis;

impl Schema for DeleteSecurityGroupEnis {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.delete_security_group_enis",
        mode: Mode::Async,
        poll_interval: Duration::from_secs(10),
        can_cancel: false,
        replay_safe: true,
    };
    const FEATURE: &'static str = "aws-ec2";
    type Params = Params;

    fn abort_note() -> String {
        "interfaces being detached keep detaching in AWS; the rest are left as they are".into()
    }
}

/// Params of `aws.delete_security_group_enis`.
#[allow(missing_docs)] // EC2's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub security_group_id: String,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(not(feature = "aws-ec2"))]
#[cfg(feature = "aws")]
super::needs_feature!(DeleteSecurityGroupEnis);

#[cfg(feature = "aws-ec2")]
mod calls {
    use aws_sdk_ec2::types::{AttachmentStatus, Filter, NetworkInterface, NetworkInterfaceStatus};
    use aws_sdk_ec2::Client;
    use serde_json::{json, Map, Value};

    use super::{DeleteSecurityGroupEnis, Params};
    use crate::actions::aws::{call_failed, required};
    use crate::actions::{Behaviour, CheckRequest, Env, LogSink, Outcome, Schema, StartRequest};
    use crate::aws::code;
    use crate::log::Level;

    /// The owner of interfaces AWS attaches and releases itself (Lambda's hyperplane).
    const AWS_MANAGED: &str = "amazon-aws";

    impl Behaviour for DeleteSecurityGroupEnis {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            if let Err(problem) = required("security_group_id", &params.security_group_id) {
                return problem.into_outcome();
            }
            match env.aws() {
                Ok(aws) => {
                    let client = aws.ec2(&params.target(aws)).await;
                    pass(&client, &params, &request.log, &Value::Null).await
                }
                Err(outcome) => outcome,
            }
        }

        async fn check(env: &Env, params: Params, request: &CheckRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => {
                    let client = aws.ec2(&params.target(aws)).await;
                    pass(&client, &params, &request.log, &request.handle).await
                }
                Err(outcome) => outcome,
            }
        }
    }

    /// What one pass did and found.
    #[derive(Default)]
    struct Pass {
        deleted: Vec<String>,
        skipped: Vec<String>,
        waiting: Vec<String>,
    }

    /// Ids a handle lists under `key` (what earlier passes did).
    fn listed(handle: &Value, key: &str) -> Vec<String> {
        handle
            .get(key)
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn pass(client: &Client, p: &Params, log: &LogSink, handle: &Value) -> Outcome {
        let group = &p.security_group_id;
        let described = client
            .describe_network_interfaces()
            .filters(Filter::builder().name("group-id").values(group).build())
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await;
        let interfaces = match described {
            Ok(interfaces) => interfaces,
            Err(e) if code(&e).as_deref() == Some("InvalidGroup.NotFound") => Vec::new(),
            Err(e) => {
                return call_failed(&format!("DescribeNetworkInterfaces (group {group})"), &e)
            }
        };
        let mut this = Pass {
            deleted: listed(handle, "deleted"),
            ..Pass::default()
        };
        for interface in &interfaces {
            if let Err(outcome) = one(client, interface, log, &mut this).await {
                return outcome;
            }
        }
        if !this.waiting.is_empty() {
            return Outcome::Running {
                handle: json!({"deleted": this.deleted, "waiting": this.waiting}),
                check_after: DeleteSecurityGroupEnis::SPEC.poll_interval,
            };
        }
        log.send(
            Level::Info,
            format!(
                "security group {group}: {} interface(s) deleted, {} left to AWS",
                this.deleted.len(),
                this.skipped.len()
            ),
        );
        let mut outputs = Map::new();
        outputs.insert("SecurityGroupId".into(), json!(group));
        outputs.insert("DeletedEnis".into(), json!(this.deleted));
        outputs.insert("SkippedEnis".into(), json!(this.skipped));
        outputs.insert("DeletionResult".into(), json!("SUCCESS"));
        Outcome::Complete { outputs }
    }

    /// Moves one interface on: delete it if free, detach it if attached, else wait.
    async fn one(
        client: &Client,
        interface: &NetworkInterface,
        log: &LogSink,
        this: &mut Pass,
    ) -> Result<(), Outcome> {
        let id = interface
            .network_interface_id()
            .unwrap_or_default()
            .to_string();
        let attachment = interface.attachment();
        let managed = attachment.and_then(|a| a.instance_owner_id()) == Some(AWS_MANAGED);
        match interface.status() {
            Some(NetworkInterfaceStatus::Available) => {
                match client
                    .delete_network_interface()
                    .network_interface_id(&id)
                    .send()
                    .await
                {
                    Ok(_) => {}
                    Err(e) if code(&e).as_deref() == Some("InvalidNetworkInterfaceID.NotFound") => {
                    }
                    Err(e) => return Err(call_failed(&format!("DeleteNetworkInterface {id}"), &e)),
                }
                log.send(Level::Info, format!("deleted network interface {id}"));
                this.deleted.push(id);
            }
            Some(NetworkInterfaceStatus::InUse) if managed => {
                log.send(
                    Level::Info,
                    format!("network interface {id} is managed by AWS, which releases it"),
                );
                this.skipped.push(id);
            }
            Some(NetworkInterfaceStatus::InUse)
                if attachment.and_then(|a| a.status()) == Some(&AttachmentStatus::Attached) =>
            {
                let Some(attachment_id) = attachment.and_then(|a| a.attachment_id()) else {
                    this.waiting.push(id);
                    return Ok(());
                };
                let detached = client
                    .detach_network_interface()
                    .attachment_id(attachment_id)
                    .force(true)
                    .send()
                    .await;
                match detached {
                    Ok(_) => {}
                    Err(e) if code(&e).as_deref() == Some("InvalidAttachmentID.NotFound") => {}
                    Err(e) => return Err(call_failed(&format!("DetachNetworkInterface {id}"), &e)),
                }
                log.send(Level::Info, format!("detaching network interface {id}"));
                this.waiting.push(id);
            }
            // Attaching, detaching, or in a state a later pass will see through.
            _ => this.waiting.push(id),
        }
        Ok(())
    }
}
