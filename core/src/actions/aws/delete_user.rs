//! `aws.delete_user`: deletes IAM users with everything that would keep IAM from deleting them
//! (keys, certificates, password, MFA devices, policies, groups); absent users are already
//! deleted.

use std::time::Duration;

use serde::Deserialize;

use super::{AccountId, OneOrMany};
use crate::actions::{Mode, ParamsProblem, Schema, TypeSpec};

/// The `aws.delete_user` type.
pub struct DeleteUser;

impl Schema for DeleteUser {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.delete_user",
        mode: Mode::Sync,
        poll_interval: Duration::ZERO,
        can_cancel: false,
        replay_safe: true,
    };
    const FEATURE: &'static str = "aws-iam";
    type Params = Params;

    fn validate(p: &Params) -> Result<(), ParamsProblem> {
        if p.names().is_empty() {
            return Err(ParamsProblem::new("user_names", "name at least one user"));
        }
        Ok(())
    }
}

/// Params of `aws.delete_user`.
#[allow(missing_docs)] // IAM's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub user_names: Option<OneOrMany>,
    pub user_name: Option<String>,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

impl Params {
    /// Every user named, `user_names` first.
    pub(crate) fn names(&self) -> Vec<String> {
        OneOrMany::with_single(self.user_names.as_ref(), self.user_name.as_ref())
    }
}

super::aws_target!(Params);

#[cfg(not(feature = "aws-iam"))]
#[cfg(feature = "aws")]
super::needs_feature!(DeleteUser);

#[cfg(feature = "aws-iam")]
mod calls {
    use aws_sdk_iam::Client;
    use serde_json::{json, Map};

    use super::{DeleteUser, Params};
    use crate::actions::aws::call_failed;
    use crate::actions::{Behaviour, Env, LogSink, Outcome, StartRequest};
    use crate::aws::{code, describe};
    use crate::log::Level;

    impl Behaviour for DeleteUser {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => start(&aws.iam(&params.target(aws)).await, &params, request).await,
                Err(outcome) => outcome,
            }
        }
    }

    async fn start(client: &Client, p: &Params, request: &StartRequest) -> Outcome {
        let (mut deleted, mut absent) = (vec![], vec![]);
        for user in p.names() {
            if user.trim().is_empty() {
                return Outcome::failed("params.user_names: a user name is empty");
            }
            match client.get_user().user_name(&user).send().await {
                Ok(_) => {}
                Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => {
                    request.log.send(
                        Level::Info,
                        format!("user {user} does not exist; nothing to delete"),
                    );
                    absent.push(user);
                    continue;
                }
                Err(e) => return call_failed(&format!("GetUser {user}"), &e),
            }
            if let Err(outcome) = detach_everything(client, &user, &request.log).await {
                return outcome;
            }
            match client.delete_user().user_name(&user).send().await {
                Ok(_) => {}
                Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => {}
                Err(e) => return call_failed(&format!("DeleteUser {user}"), &e),
            }
            request
                .log
                .send(Level::Info, format!("deleted user {user}"));
            deleted.push(user);
        }
        let mut outputs = Map::new();
        outputs.insert("DeletedUsers".into(), json!(deleted));
        outputs.insert("SkippedUsers".into(), json!(absent));
        outputs.insert("DeletionResult".into(), json!("SUCCESS"));
        Outcome::Complete { outputs }
    }

    /// `Err` of a call, unless it says the thing is already gone.
    fn gone_or<T, E, R>(
        result: Result<T, aws_smithy_runtime_api::client::result::SdkError<E, R>>,
        call: &str,
    ) -> Result<(), Outcome>
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        match result {
            Ok(_) => Ok(()),
            Err(e) if code(&e).as_deref() == Some("NoSuchEntity") => Ok(()),
            Err(e) => Err(call_failed(call, &e)),
        }
    }

    /// Removes what IAM requires gone before it deletes a user.
    async fn detach_everything(client: &Client, user: &str, log: &LogSink) -> Result<(), Outcome> {
        let listed = |call: &str| format!("{call} {user}");
        let keys = client.list_access_keys().user_name(user).send().await;
        for key in keys
            .map_err(|e| call_failed(&listed("ListAccessKeys"), &e))?
            .access_key_metadata()
        {
            let id = key.access_key_id().unwrap_or_default();
            let done = client
                .delete_access_key()
                .user_name(user)
                .access_key_id(id)
                .send()
                .await;
            gone_or(done, &format!("DeleteAccessKey {user} {id}"))?;
        }
        let certs = client
            .list_signing_certificates()
            .user_name(user)
            .send()
            .await;
        for cert in certs
            .map_err(|e| call_failed(&listed("ListSigningCertificates"), &e))?
            .certificates()
        {
            let id = cert.certificate_id();
            let done = client
                .delete_signing_certificate()
                .user_name(user)
                .certificate_id(id)
                .send()
                .await;
            gone_or(done, &format!("DeleteSigningCertificate {user} {id}"))?;
        }
        let keys = client.list_ssh_public_keys().user_name(user).send().await;
        for key in keys
            .map_err(|e| call_failed(&listed("ListSSHPublicKeys"), &e))?
            .ssh_public_keys()
        {
            let id = key.ssh_public_key_id();
            let done = client
                .delete_ssh_public_key()
                .user_name(user)
                .ssh_public_key_id(id)
                .send()
                .await;
            gone_or(done, &format!("DeleteSSHPublicKey {user} {id}"))?;
        }
        let devices = client.list_mfa_devices().user_name(user).send().await;
        for device in devices
            .map_err(|e| call_failed(&listed("ListMFADevices"), &e))?
            .mfa_devices()
        {
            let serial = device.serial_number();
            let done = client
                .deactivate_mfa_device()
                .user_name(user)
                .serial_number(serial)
                .send()
                .await;
            gone_or(done, &format!("DeactivateMFADevice {user} {serial}"))?;
        }
        gone_or(
            client.delete_login_profile().user_name(user).send().await,
            &listed("DeleteLoginProfile"),
        )?;
        detach_policies(client, user).await?;
        service_credentials(client, user, log).await
    }

    async fn detach_policies(client: &Client, user: &str) -> Result<(), Outcome> {
        let listed = |call: &str| format!("{call} {user}");
        let inline = client.list_user_policies().user_name(user).send().await;
        for name in inline
            .map_err(|e| call_failed(&listed("ListUserPolicies"), &e))?
            .policy_names()
        {
            let done = client
                .delete_user_policy()
                .user_name(user)
                .policy_name(name)
                .send()
                .await;
            gone_or(done, &format!("DeleteUserPolicy {user} {name}"))?;
        }
        let attached = client
            .list_attached_user_policies()
            .user_name(user)
            .send()
            .await;
        for policy in attached
            .map_err(|e| call_failed(&listed("ListAttachedUserPolicies"), &e))?
            .attached_policies()
        {
            let arn = policy.policy_arn().unwrap_or_default();
            let done = client
                .detach_user_policy()
                .user_name(user)
                .policy_arn(arn)
                .send()
                .await;
            gone_or(done, &format!("DetachUserPolicy {user} {arn}"))?;
        }
        let groups = client.list_groups_for_user().user_name(user).send().await;
        for group in groups
            .map_err(|e| call_failed(&listed("ListGroupsForUser"), &e))?
            .groups()
        {
            let name = group.group_name();
            let done = client
                .remove_user_from_group()
                .user_name(user)
                .group_name(name)
                .send()
                .await;
            gone_or(done, &format!("RemoveUserFromGroup {user} {name}"))?;
        }
        Ok(())
    }

    /// Service-specific credentials (CodeCommit, Keyspaces): some endpoints cannot list them,
    /// which is only worth a warning; DeleteUser says so if one is left.
    async fn service_credentials(
        client: &Client,
        user: &str,
        log: &LogSink,
    ) -> Result<(), Outcome> {
        let listed = match client
            .list_service_specific_credentials()
            .user_name(user)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                log.send(
                    Level::Warn,
                    format!(
                        "cannot list the service-specific credentials of {user}: {}",
                        describe(&e)
                    ),
                );
                return Ok(());
            }
        };
        for credential in listed.service_specific_credentials() {
            let id = credential.service_specific_credential_id();
            let done = client
                .delete_service_specific_credential()
                .user_name(user)
                .service_specific_credential_id(id)
                .send()
                .await;
            gone_or(
                done,
                &format!("DeleteServiceSpecificCredential {user} {id}"),
            )?;
        }
        Ok(())
    }
}
