//! `aws.share_image`: lets other accounts launch one of the account's images (found by name).
//! Only accounts among `siblings` may be given it; an absent image is skipped.

use std::time::Duration;

use serde::Deserialize;

use super::{AccountId, Tags};
use crate::actions::{Mode, Schema, TypeSpec};

/// The `aws.share_image` type.
pub struct ShareImage;

impl Schema for ShareImage {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.share_image",
        mode: Mode::Sync,
        poll_interval: Duration::ZERO,
        can_cancel: false,
        replay_safe: true,
    };
    const FEATURE: &'static str = "aws-ec2";
    type Params = Params;
}

/// Params of `aws.share_image`.
#[allow(missing_docs)] // EC2's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub image_name: String,
    /// The accounts to share with; none (or null) shares with nobody.
    pub accounts_to_share: Option<Vec<AccountId>>,
    /// The accounts that may be shared with.
    pub siblings: Option<Vec<AccountId>>,
    /// Accepted as Simple Cloud Kit files write it; sharing changes no tags.
    pub tags: Option<Tags>,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(not(feature = "aws-ec2"))]
#[cfg(feature = "aws")]
super::needs_feature!(ShareImage);

#[cfg(feature = "aws-ec2")]
mod calls {
    use aws_sdk_ec2::types::{LaunchPermission, LaunchPermissionModifications};
    use aws_sdk_ec2::Client;
    use serde_json::{json, Map};

    use super::{Params, ShareImage};
    use crate::actions::aws::{call_failed, images, required, AccountId};
    use crate::actions::{Behaviour, Env, Outcome, StartRequest};
    use crate::log::Level;

    impl Behaviour for ShareImage {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => start(&aws.ec2(&params.target(aws)).await, &params, request).await,
                Err(outcome) => outcome,
            }
        }
    }

    fn accounts(list: Option<&Vec<AccountId>>) -> Vec<String> {
        list.map(|l| l.iter().map(AccountId::to_text).collect())
            .unwrap_or_default()
    }

    async fn start(client: &Client, p: &Params, request: &StartRequest) -> Outcome {
        if let Err(problem) = required("image_name", &p.image_name) {
            return problem.into_outcome();
        }
        let wanted = accounts(p.accounts_to_share.as_ref());
        let siblings = accounts(p.siblings.as_ref());
        let refused: Vec<&String> = wanted.iter().filter(|a| !siblings.contains(a)).collect();
        if !refused.is_empty() {
            return Outcome::failed(format!(
                "params.accounts_to_share: {refused:?} are not among the siblings ({siblings:?}); \
                 an image is only shared with sibling accounts"
            ));
        }
        let image = match images::by_name(client, &p.image_name).await {
            Ok(Some(image)) => image,
            Ok(None) => {
                request.log.send(
                    Level::Warn,
                    format!("image {} does not exist; nothing to share", p.image_name),
                );
                return Outcome::complete();
            }
            Err(outcome) => return outcome,
        };
        let id = image.image_id().unwrap_or_default().to_string();
        if !wanted.is_empty() {
            let add = wanted
                .iter()
                .map(|a| LaunchPermission::builder().user_id(a).build())
                .collect();
            let shared = client
                .modify_image_attribute()
                .image_id(&id)
                .launch_permission(
                    LaunchPermissionModifications::builder()
                        .set_add(Some(add))
                        .build(),
                )
                .send()
                .await;
            if let Err(e) = shared {
                return call_failed(
                    &format!("ModifyImageAttribute {id} (launch permission)"),
                    &e,
                );
            }
        }
        request.log.send(
            Level::Info,
            format!("image {} ({id}) shared with {wanted:?}", p.image_name),
        );
        let mut outputs = Map::new();
        outputs.insert("ImageId".into(), json!(id));
        outputs.insert("SharedAccounts".into(), json!(wanted));
        Outcome::Complete { outputs }
    }
}
