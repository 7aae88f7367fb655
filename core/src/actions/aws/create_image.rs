//! `aws.create_image`: makes an AMI of an EC2 instance and waits until it is available; the
//! image's id is the output `ImageId`.

use std::time::Duration;

use serde::Deserialize;

use super::{AccountId, Tags};
use crate::actions::{Mode, Schema, TypeSpec};

/// The `aws.create_image` type.
pub struct CreateImage;

impl Schema for CreateImage {
    const SPEC: TypeSpec = TypeSpec {
        name: "aws.create_image",
        mode: Mode::Async,
        poll_interval: Duration::from_secs(15),
        can_cancel: false,
        replay_safe: true,
    };
    const FEATURE: &'static str = "aws-ec2";
    type Params = Params;

    fn abort_note() -> String {
        "an image being made cannot be cancelled; it keeps going in AWS (delete it afterwards \
         with aws.delete_image if needed)"
            .into()
    }
}

/// Params of `aws.create_image`.
#[allow(missing_docs)] // EC2's own names
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub image_name: String,
    pub instance_id: String,
    /// Tags of the image and, once it is available, of its snapshots.
    pub tags: Option<Tags>,
    pub region: Option<String>,
    pub account: Option<AccountId>,
    pub role_arn: Option<String>,
}

super::aws_target!(Params);

#[cfg(not(feature = "aws-ec2"))]
#[cfg(feature = "aws")]
super::needs_feature!(CreateImage);

#[cfg(feature = "aws-ec2")]
mod calls {
    use aws_sdk_ec2::Client;
    use serde_json::{json, Map};

    use super::{CreateImage, Params};
    use crate::actions::aws::{call_failed, images, required, tag_pairs};
    use crate::actions::{Behaviour, CheckRequest, Env, Outcome, Schema, StartRequest};
    use crate::log::Level;

    impl Behaviour for CreateImage {
        async fn start(env: &Env, params: Params, request: &StartRequest) -> Outcome {
            match env.aws() {
                Ok(aws) => start(&aws.ec2(&params.target(aws)).await, &params, request).await,
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
            outputs.insert("SourceInstanceId".into(), json!(params.instance_id));
            let tags = tag_pairs(params.tags.as_ref());
            let poll = CreateImage::SPEC.poll_interval;
            images::follow(&client, request, poll, &tags, outputs).await
        }
    }

    async fn start(client: &Client, p: &Params, request: &StartRequest) -> Outcome {
        for (field, value) in [
            ("image_name", &p.image_name),
            ("instance_id", &p.instance_id),
        ] {
            if let Err(problem) = required(field, value) {
                return problem.into_outcome();
            }
        }
        let token = request.idempotency_token();
        match images::by_name(client, &p.image_name).await {
            Err(outcome) => return outcome,
            Ok(Some(image)) if images::create_token(&image) == Some(token.as_str()) => {
                request.log.send(
                    Level::Info,
                    format!("image {} already started by this attempt", p.image_name),
                );
                return images::running(image.image_id().unwrap_or_default());
            }
            Ok(Some(image)) => return images::taken(&p.image_name, &image),
            Ok(None) => {}
        }
        let tags = tag_pairs(p.tags.as_ref());
        let created = client
            .create_image()
            .instance_id(&p.instance_id)
            .name(&p.image_name)
            .tag_specifications(images::image_tag_spec(&tags, &token))
            .send()
            .await;
        match created {
            Ok(out) => {
                let id = out.image_id().unwrap_or_default();
                request.log.send(
                    Level::Info,
                    format!(
                        "making image {} ({id}) of instance {}",
                        p.image_name, p.instance_id
                    ),
                );
                images::running(id)
            }
            Err(e) => call_failed(
                &format!("CreateImage {} of {}", p.image_name, p.instance_id),
                &e,
            ),
        }
    }
}
