//! `aws.delete_image`: deregisters one of the account's images (found by name) and deletes
//! its snapshots; an absent image is already deleted.

use std::time::Duration;

use serde::Deserialize;

use super::{AccountId, Tags};
use crate::actions::{Mode, Schema, TypeSpec};

/// The `aws.delete_image` type.
pub struct DeleteImage;

impl Schema for DeleteImage {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.delete_image",
        mode: Mode::Sync,
        poll_interval: Duration::ZERO,
        can_cancel: false,
        replay_safe: true,
    };
    const FEATURE: &'static str = "aws-ec2";
    type Params = Params;
}

/// Params of `aws.delete_image`.
#[allow(missing_docs)] // EC2's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub image_name: String,
    /// Accepted as Simple Cloud Kit files write it; a deleted image needs no tags.
    pub tags: Option<Tags>,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(not(feature = "aws-ec2"))]
#[cfg(feature = "aws")]
super::needs_feature!(DeleteImage);

#[cfg(feature = "aws-ec2")]
mod calls {
    use aws_sdk_ec2::Client;
    use serde_json::{json, Map};

    use super::{DeleteImage, Params};
    use crate::actions::aws::{call_failed, images, required};
    use crate::actions::{Behaviour, Env, Outcome, StartRequest};
    use crate::aws::code;
    use crate::log::Level;

    impl Behaviour for DeleteImage {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => start(&aws.ec2(&params.target(aws)).await, &params, request).await,
                Err(outcome) => outcome,
            }
        }
    }

    async fn start(client: &Client, p: &Params, request: &StartRequest) -> Outcome {
        if let Err(problem) = required("image_name", &p.image_name) {
            return problem.into_outcome();
        }
        let mut outputs = Map::new();
        outputs.insert("ImageName".into(), json!(p.image_name));
        let image = match images::by_name(client, &p.image_name).await {
            Ok(Some(image)) => image,
            Ok(None) => {
                request.log.send(
                    Level::Info,
                    format!("image {} does not exist; nothing to delete", p.image_name),
                );
                outputs.insert("DeletionResult".into(), json!("NOT_FOUND"));
                return Outcome::Complete { outputs };
            }
            Err(outcome) => return outcome,
        };
        let id = image.image_id().unwrap_or_default().to_string();
        let snapshots = images::snapshot_ids(&image);
        // EC2 deletes the snapshots with the image; those an endpoint leaves are deleted after.
        let deregistered = client
            .deregister_image()
            .image_id(&id)
            .delete_associated_snapshots(true)
            .send()
            .await;
        match deregistered {
            Ok(_) => {}
            Err(e) if images::gone(&e) => {}
            Err(e) => return call_failed(&format!("DeregisterImage {id}"), &e),
        }
        for snapshot in &snapshots {
            match client.delete_snapshot().snapshot_id(snapshot).send().await {
                Ok(_) => {}
                Err(e) if code(&e).as_deref() == Some("InvalidSnapshot.NotFound") => {}
                Err(e) => return call_failed(&format!("DeleteSnapshot {snapshot} of {id}"), &e),
            }
        }
        request.log.send(
            Level::Info,
            format!(
                "deleted image {} ({id}) and {} snapshot(s)",
                p.image_name,
                snapshots.len()
            ),
        );
        outputs.insert("ImageId".into(), json!(id));
        outputs.insert("SnapshotIds".into(), json!(snapshots));
        outputs.insert("DeletionResult".into(), json!("SUCCESS"));
        Outcome::Complete { outputs }
    }
}
