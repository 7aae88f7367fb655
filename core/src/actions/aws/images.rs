//! EC2 images (AMIs) shared by the image actions: finding one of the account's images by
//! name, recognising the one an attempt made, and following one until it is available.

use aws_sdk_ec2::types::{Filter, Image, ImageState, ResourceType, Tag, TagSpecification};
use aws_sdk_ec2::Client;
use serde_json::{json, Map, Value};

use crate::actions::aws::call_failed;
use crate::actions::{CheckRequest, Outcome};
use crate::aws::code;
use crate::log::Level;

/// Tags an image with the attempt that made it, so a replayed start recognises it (EC2's
/// CreateImage takes no client token).
pub(crate) const CREATE_TOKEN_TAG: &str = "baton:create-token";

/// The account's own image with this name (names are unique per account and region).
pub(crate) async fn by_name(client: &Client, name: &str) -> Result<Option<Image>, Outcome> {
    let described = client
        .describe_images()
        .owners("self")
        .filters(Filter::builder().name("name").values(name).build())
        .send()
        .await;
    match described {
        Ok(out) => Ok(out.images().first().cloned()),
        Err(e) => Err(call_failed(&format!("DescribeImages (name {name})"), &e)),
    }
}

/// The image with this id; `None` once it is gone.
pub(crate) async fn by_id(client: &Client, id: &str) -> Result<Option<Image>, Outcome> {
    match client.describe_images().image_ids(id).send().await {
        Ok(out) => Ok(out.images().first().cloned()),
        Err(e) if gone(&e) => Ok(None),
        Err(e) => Err(call_failed(&format!("DescribeImages {id}"), &e)),
    }
}

/// EC2's answer for an image that does not exist, or no longer does (deregistered).
pub(crate) fn gone<E, R>(err: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> bool
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    matches!(
        code(err).as_deref(),
        Some("InvalidAMIID.NotFound" | "InvalidAMIID.Unavailable")
    )
}

/// The attempt that made the image, if baton made it.
pub(crate) fn create_token(image: &Image) -> Option<&str> {
    image
        .tags()
        .iter()
        .find(|t| t.key() == Some(CREATE_TOKEN_TAG))
        .and_then(Tag::value)
}

/// The EBS snapshots behind the image.
pub(crate) fn snapshot_ids(image: &Image) -> Vec<String> {
    image
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_string))
        .collect()
}

/// EC2 tags from `(key, value)` pairs.
pub(crate) fn ec2_tags(pairs: &[(String, String)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The tags of a new image: the user's and the attempt's token.
pub(crate) fn image_tag_spec(pairs: &[(String, String)], token: &str) -> TagSpecification {
    let mut tags = ec2_tags(pairs);
    tags.push(Tag::builder().key(CREATE_TOKEN_TAG).value(token).build());
    TagSpecification::builder()
        .resource_type(ResourceType::Image)
        .set_tags(Some(tags))
        .build()
}

/// Refuses an image of the same name that another attempt (or someone else) made: EC2 would
/// refuse the name anyway, and following it would report someone else's image as ours.
pub(crate) fn taken(name: &str, image: &Image) -> Outcome {
    Outcome::failed(format!(
        "an image named {name} already exists ({}, {}); delete it (aws.delete_image) or choose \
         another name",
        image.image_id().unwrap_or("?"),
        image
            .state()
            .map(ImageState::as_str)
            .unwrap_or("unknown state")
    ))
}

/// The handle of an image being made.
pub(crate) fn running(image_id: &str) -> Outcome {
    Outcome::Running {
        handle: json!({ "image_id": image_id }),
        check_after: std::time::Duration::ZERO,
    }
}

/// One check of an image being made: available (its snapshots then get the tags too, as
/// the image did when it was made), still pending, or failed with EC2's reason.
pub(crate) async fn follow(
    client: &Client,
    request: &CheckRequest,
    poll: std::time::Duration,
    tags: &[(String, String)],
    mut outputs: Map<String, Value>,
) -> Outcome {
    let Some(id) = request.handle.get("image_id").and_then(Value::as_str) else {
        return Outcome::failed("the running action's handle names no image");
    };
    let image = match by_id(client, id).await {
        Ok(Some(image)) => image,
        Ok(None) => return Outcome::failed(format!("image {id} no longer exists")),
        Err(outcome) => return outcome,
    };
    match image.state() {
        Some(ImageState::Available) => {
            let snapshots = snapshot_ids(&image);
            if !tags.is_empty() && !snapshots.is_empty() {
                let tagged = client
                    .create_tags()
                    .set_resources(Some(snapshots.clone()))
                    .set_tags(Some(ec2_tags(tags)))
                    .send()
                    .await;
                if let Err(e) = tagged {
                    let words = crate::aws::describe(&e);
                    request.log.send(
                        Level::Warn,
                        format!("could not tag the snapshots of {id}: {words}"),
                    );
                }
            }
            request
                .log
                .send(Level::Info, format!("image {id} is available"));
            outputs.insert("ImageId".into(), json!(id));
            outputs.insert("ImageName".into(), json!(image.name()));
            outputs.insert("ImageState".into(), json!("available"));
            outputs.insert("SnapshotIds".into(), json!(snapshots));
            Outcome::Complete { outputs }
        }
        Some(ImageState::Pending | ImageState::Transient) => Outcome::Running {
            handle: request.handle.clone(),
            check_after: poll,
        },
        state => {
            let reason = image
                .state_reason()
                .and_then(|r| r.message())
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            Outcome::failed(format!(
                "image {id} is {}{reason}",
                state
                    .map(ImageState::as_str)
                    .unwrap_or("in an unknown state")
            ))
        }
    }
}
