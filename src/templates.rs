//! `template_file` params: resolved when a run is created, so the stored plan is
//! self-contained. With an S3 store the file is uploaded next to the run and referenced by URL;
//! with a local store a small template is inlined as `template_body`. Only files in the action
//! file's folder are read unless the operator allows others, and none beyond CloudFormation's
//! size limits.

use std::path::Path;

use baton_core::actions::aws::template_file::{self, Reach};
use baton_core::{ActionIdx, ActionType, Plan};
use serde_json::Value;

use crate::locator::AnyStore;
use crate::Failure;

/// Which template files a run may read: those in the action file's folder (the default), or
/// any (`--allow-template-outside`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateReach {
    BesideActionFile,
    Anywhere,
}

pub async fn resolve(
    plan: &mut Plan,
    base_dir: &Path,
    store: &AnyStore,
    reach: TemplateReach,
) -> Result<(), Failure> {
    // `plan.json`'s parent is the empty path, which names no folder to compare with.
    let base_dir = if base_dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        base_dir
    };
    let reach = match reach {
        TemplateReach::BesideActionFile => Reach::Within(base_dir),
        TemplateReach::Anywhere => Reach::Anywhere,
    };
    for i in 0..plan.len() as ActionIdx {
        let action = plan.action(i);
        if action.action_type != ActionType::CreateStack {
            continue;
        }
        let Some(file) = action.params.get("template_file").and_then(Value::as_str) else {
            continue;
        };
        let field = format!(
            "{}: actions[{i}] \"{}\": params.template_file",
            plan.source(),
            action.label
        );
        let read = template_file::read(&base_dir.join(file), reach, template_file::MAX_BY_URL)
            .map_err(|refused| Failure::Invalid(format!("{field}: {refused}")))?;
        let (new, value) = resolved(read, store, &field).await?;
        plan.replace_param(i, "template_file", new, value);
    }
    Ok(())
}

/// Which param replaces `template_file`, and its value: an uploaded template's URL (S3
/// stores), a small template's body (local stores), or the canonical path of a big one (the
/// action explains at start that it needs an S3 store).
async fn resolved(
    read: template_file::TemplateFile,
    store: &AnyStore,
    field: &str,
) -> Result<(&'static str, String), Failure> {
    let path = read.path.display().to_string();
    match store {
        AnyStore::S3(s3) => {
            let name = read
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("template");
            let (key, version) = s3.put_artifact(name, read.bytes).await.map_err(|e| {
                // The store refused, not the action: say so first, then what was uploading.
                Failure::Infra(format!(
                    "{e}\nthe run's store could not be written while uploading {path} for \
                         {field}: check --store (does the bucket exist, and may these \
                         credentials write to it?)"
                ))
            })?;
            let url = object_url(s3.bucket(), &key).await;
            // Pinned as well as content-addressed: the URL names exactly the bytes read here.
            Ok(("template_url", pinned(url, version.as_deref())))
        }
        AnyStore::Local(_) if read.bytes.len() as u64 <= template_file::MAX_INLINE => {
            let body = String::from_utf8(read.bytes)
                .map_err(|_| Failure::Invalid(format!("{field}: {path} is not UTF-8 text")))?;
            Ok(("template_body", body))
        }
        AnyStore::Local(_) => Ok(("template_file", path)),
    }
}

/// `url?versionId=…` for a versioned object (the state bucket is versioned).
fn pinned(url: String, version: Option<&str>) -> String {
    match version.filter(|v| *v != "null") {
        Some(version) => format!("{url}?versionId={}", percent_encode(version)),
        None => url,
    }
}

/// S3 version ids may hold `+`, `/` and `=`: encoded for a query string.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The URL CloudFormation fetches a template from.
async fn object_url(bucket: &str, key: &str) -> String {
    let aws = crate::aws::aws().await;
    match aws.endpoint_url() {
        // moto and friends serve path-style; CloudFormation in moto resolves `localhost` only.
        Some(endpoint) => format!(
            "{}/{bucket}/{key}",
            endpoint
                .trim_end_matches('/')
                .replace("127.0.0.1", "localhost")
        ),
        None => match aws.region() {
            Some(region) if region != "us-east-1" => {
                format!("https://{bucket}.s3.{region}.amazonaws.com/{key}")
            }
            _ => format!("https://{bucket}.s3.amazonaws.com/{key}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::pinned;

    #[test]
    fn uploaded_templates_are_pinned_to_their_version() {
        assert_eq!(
            pinned(
                "https://b.s3.amazonaws.com/k.yaml".into(),
                Some("3/L4kq+tJ=")
            ),
            "https://b.s3.amazonaws.com/k.yaml?versionId=3%2FL4kq%2BtJ%3D"
        );
        assert_eq!(pinned("u".into(), Some("null")), "u");
        assert_eq!(pinned("u".into(), None), "u");
    }
}
