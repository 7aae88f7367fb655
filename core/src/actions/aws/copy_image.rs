//! `aws.copy_image`: copies one of the account's images (found by name) to an encrypted image
//! of another name in the same region and waits until the copy is available.

use std::time::Duration;

use serde::Deserialize;

use super::{AccountId, Tags};
use crate::actions::{Mode, Schema, TypeSpec};

/// The `aws.copy_image` type.
pub struct CopyImage;

impl Schema for CopyImage {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.copy_image",
        mode: Mode::Async,
        poll_interval: Duration::from_secs(15),
        // EC2 stops a pending copy when the copy is deregistered.
        can_cancel: true,
        replay_safe: true,
    };
    const FEATURE: &'static str = "aws-ec2";
    type Params = Params;
}

/// Params of `aws.copy_image`.
#[allow(missing_docs)] // EC2's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The name of the image to copy.
    pub image_name: String,
    pub destination_image_name: String,
    /// The key that encrypts the copy; default: the account's default EBS key.
    pub kms_key_arn: Option<String>,
    /// Tags of the copy and, once it is available, of its snapshots.
    pub tags: Option<Tags>,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(not(feature = "aws-ec2"))]
#[cfg(feature = "aws")]
super::needs_feature!(CopyImage);

#[cfg(feature = "aws-ec2")]
mod calls {
    use aws_sdk_ec2::Client;
    use serde_json::{json, Map};

    use super::{CopyImage, Params};
    use crate::actions::aws::{call_failed, images, required, tag_pairs};
    use crate::actions::{
        Behaviour, CancelError, CheckRequest, Env, Outcome, Schema, StartRequest,
    };
    use crate::aws::{describe, Aws};
    use crate::log::Level;

    impl Behaviour for CopyImage {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => start(aws, &params, request).await,
                Err(outcome) => outcome,
            }
        }

        async fn check(env: &Env, params: Params, request: &CheckRequest) -> Outcome {
            let aws = match env.aws() {
                Ok(aws) => aws,
                Err(outcome) => return outcome,
            };
            let client = aws.ec2(&params.target(aws)).await;
            let mut outputs = Map::new();
            outputs.insert("SourceImageName".into(), json!(params.image_name));
            if let Some(id) = request
                .handle
                .get("source_image_id")
                .filter(|id| id.is_string())
            {
                outputs.insert("SourceImageId".into(), id.clone());
            }
            outputs.insert(
                "DestinationImageName".into(),
                json!(params.destination_image_name),
            );
            if let Some(id) = request.handle.get("image_id") {
                outputs.insert("DestinationImageId".into(), id.clone());
            }
            let tags = tag_pairs(params.tags.as_ref());
            let poll = CopyImage::SPEC.poll_interval;
            images::follow(&client, request, poll, &tags, outputs).await
        }

        async fn cancel(
            env: &Env,
            params: Params,
            request: &CheckRequest,
        ) -> Result<(), CancelError> {
            let aws = env
                .aws()
                .map_err(|_| CancelError::Refused("no AWS configuration".into()))?;
            let Some(id) = request.handle.get("image_id").and_then(|id| id.as_str()) else {
                return Err(CancelError::Refused(
                    "the running action's handle names no image".into(),
                ));
            };
            let client = aws.ec2(&params.target(aws)).await;
            let deregistered = client
                .deregister_image()
                .image_id(id)
                .delete_associated_snapshots(true)
                .send()
                .await;
            match deregistered {
                Ok(_) => {
                    request.log.send(
                        Level::Info,
                        format!("copy {id} deregistered: EC2 stops copying it"),
                    );
                    Ok(())
                }
                Err(e) if images::gone(&e) => Ok(()),
                Err(e) => Err(CancelError::Refused(format!(
                    "DeregisterImage {id}: {}",
                    describe(&e)
                ))),
            }
        }
    }

    async fn start(aws: &Aws, p: &Params, request: &StartRequest) -> Outcome {
        let fields = [
            ("image_name", &p.image_name),
            ("destination_image_name", &p.destination_image_name),
        ];
        for (field, value) in fields {
            if let Err(problem) = required(field, value) {
                return problem.into_outcome();
            }
        }
        let target = p.target(aws);
        let client = aws.ec2(&target).await;
        // The copy stays in the region it is made in: the client's.
        let region = client.config().region().map(|r| r.to_string());
        let Some(region) = region.or(target.region.clone()).or_else(|| aws.region()) else {
            return Outcome::failed(
                "params.region: no region given and none configured; give region (or set \
                 AWS_REGION)",
            );
        };
        let token = request.idempotency_token();
        let source = match images::by_name(&client, &p.image_name).await {
            Ok(source) => source,
            Err(outcome) => return outcome,
        };
        let source_id = source
            .as_ref()
            .and_then(|i| i.image_id())
            .map(str::to_string);
        match images::by_name(&client, &p.destination_image_name).await {
            Err(outcome) => return outcome,
            Ok(Some(image)) if images::create_token(&image) == Some(token.as_str()) => {
                request.log.send(
                    Level::Info,
                    format!(
                        "copy {} already started by this attempt",
                        p.destination_image_name
                    ),
                );
                let source_id = source_id.as_deref().or(image.source_image_id());
                return copying(image.image_id().unwrap_or_default(), source_id);
            }
            Ok(Some(image)) => return images::taken(&p.destination_image_name, &image),
            Ok(None) => {}
        }
        let Some(source_id) = source_id else {
            return Outcome::failed(format!(
                "no image named {} in this account and region; make it first (aws.create_image)",
                p.image_name
            ));
        };
        copy(&client, p, request, (&source_id, &region), &token).await
    }

    async fn copy(
        client: &Client,
        p: &Params,
        request: &StartRequest,
        (source_id, region): (&str, &str),
        token: &str,
    ) -> Outcome {
        let tags = tag_pairs(p.tags.as_ref());
        let copied = client
            .copy_image()
            .source_image_id(source_id)
            .source_region(region)
            .name(&p.destination_image_name)
            .encrypted(true)
            .set_kms_key_id(p.kms_key_arn.clone())
            .client_token(token)
            .tag_specifications(images::image_tag_spec(&tags, token))
            .send()
            .await;
        let id = match copied {
            Ok(out) => out.image_id().unwrap_or_default().to_string(),
            Err(e) => {
                return call_failed(
                    &format!("CopyImage {} to {}", p.image_name, p.destination_image_name),
                    &e,
                )
            }
        };
        // Tagged again: not every EC2 endpoint applies tags given to CopyImage, and the token
        // tag is what a replayed start recognises.
        let spec = images::image_tag_spec(&tags, token);
        if let Err(e) = client
            .create_tags()
            .resources(&id)
            .set_tags(Some(spec.tags().to_vec()))
            .send()
            .await
        {
            return call_failed(&format!("CreateTags {id}"), &e);
        }
        request.log.send(
            Level::Info,
            format!(
                "copying image {} ({source_id}) to {} ({id})",
                p.image_name, p.destination_image_name
            ),
        );
        copying(&id, Some(source_id))
    }

    /// The handle of a copy being made (and of the image it copies, for the outputs).
    fn copying(image_id: &str, source_id: Option<&str>) -> Outcome {
        Outcome::Running {
            handle: json!({"image_id": image_id, "source_image_id": source_id}),
            check_after: std::time::Duration::ZERO,
        }
    }
}
