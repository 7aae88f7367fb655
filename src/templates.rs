//! `template_file` params: resolved when a run is created, so the stored plan is
//! self-contained. With an S3 store the file is uploaded next to the run and referenced by URL;
//! with a local store a small template is inlined as `template_body`.

use std::path::Path;

use baton_core::{ActionIdx, ActionType, Plan};
use serde_json::Value;

use crate::locator::AnyStore;
use crate::Failure;

/// CloudFormation's limit for an inline template body.
const MAX_TEMPLATE_BODY: usize = 51_200;

pub async fn resolve(plan: &mut Plan, base_dir: &Path, store: &AnyStore) -> Result<(), Failure> {
    for i in 0..plan.len() as ActionIdx {
        let action = plan.action(i);
        if action.action_type != ActionType::CreateStack {
            continue;
        }
        let Some(file) = action.params.get("template_file").and_then(Value::as_str) else {
            continue;
        };
        if baton_core::template::is_template(file) {
            continue;
        }
        let field = format!(
            "{}: actions[{i}] \"{}\": params.template_file",
            plan.source(),
            action.label
        );
        let path = base_dir.join(file);
        let (new, value) = resolved(&path, &action.label, store, &field).await?;
        plan.replace_param(i, "template_file", new, value);
    }
    Ok(())
}

/// Which param replaces `template_file`, and its value: an uploaded template's URL (S3
/// stores), a small template's body (local stores), or an absolute path to a big one (the
/// action explains at start that it needs an S3 store).
async fn resolved(
    path: &Path,
    label: &str,
    store: &AnyStore,
    field: &str,
) -> Result<(&'static str, String), Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::Invalid(format!("{field}: cannot read {}: {e}", path.display())))?;
    match store {
        AnyStore::S3(s3) => {
            let name = format!(
                "{}-{}",
                label.replace('/', "_"),
                path.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("template")
            );
            let (key, version) = s3
                .put_artifact(&name, bytes)
                .await
                .map_err(|e| Failure::Infra(format!("{field}: uploading: {e}")))?;
            let url = object_url(s3.bucket(), &key).await;
            // Pinned: a later upload under the same key (another run's, a retry's) cannot
            // change what this run deploys.
            Ok(("template_url", pinned(url, version.as_deref())))
        }
        AnyStore::Local(_) if bytes.len() <= MAX_TEMPLATE_BODY => {
            let body = String::from_utf8(bytes).map_err(|_| {
                Failure::Invalid(format!("{field}: {} is not UTF-8 text", path.display()))
            })?;
            Ok(("template_body", body))
        }
        AnyStore::Local(_) => {
            let absolute = std::fs::canonicalize(path).unwrap_or(path.to_path_buf());
            Ok(("template_file", absolute.display().to_string()))
        }
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
