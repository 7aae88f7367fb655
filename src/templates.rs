//! `template_file` params: resolved when a run is created, so the stored plan is
//! self-contained. With an S3 store the file is uploaded next to the run and referenced by URL;
//! with a local store a small template is inlined as `template_body`.

use std::path::Path;

use baton_core::{ActionType, Plan};
use serde_json::Value;

use crate::locator::AnyStore;
use crate::Failure;

/// CloudFormation's limit for an inline template body.
const MAX_TEMPLATE_BODY: usize = 51_200;

pub async fn resolve(plan: &mut Plan, base_dir: &Path, store: &AnyStore) -> Result<(), Failure> {
    for (i, action) in plan.actions.iter_mut().enumerate() {
        if action.action_type != ActionType::CreateStack {
            continue;
        }
        let Some(file) = action
            .params
            .get("template_file")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            continue;
        };
        if baton_core::template::is_template(&file) {
            continue;
        }
        let field = || {
            format!(
                "{}: actions[{i}] \"{}\": params.template_file",
                plan.source, action.label
            )
        };
        let path = base_dir.join(&file);
        let bytes = std::fs::read(&path).map_err(|e| {
            Failure::Invalid(format!("{}: cannot read {}: {e}", field(), path.display()))
        })?;
        let Value::Object(params) = &mut action.params else {
            continue;
        };
        match store {
            AnyStore::S3(s3) => {
                let name = format!(
                    "{}-{}",
                    action.label.replace('/', "_"),
                    path.file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("template")
                );
                let key = s3
                    .put_artifact(&name, bytes)
                    .await
                    .map_err(|e| Failure::Infra(format!("{}: uploading: {e}", field())))?;
                params.remove("template_file");
                params.insert(
                    "template_url".into(),
                    Value::String(object_url(s3.bucket(), &key).await),
                );
            }
            AnyStore::Local(_) if bytes.len() <= MAX_TEMPLATE_BODY => {
                let body = String::from_utf8(bytes).map_err(|_| {
                    Failure::Invalid(format!("{}: {} is not UTF-8 text", field(), path.display()))
                })?;
                params.remove("template_file");
                params.insert("template_body".into(), Value::String(body));
            }
            AnyStore::Local(_) => {
                // Too big to inline: keep an absolute path; the action explains at start.
                let absolute = std::fs::canonicalize(&path).unwrap_or(path);
                params.insert(
                    "template_file".into(),
                    Value::String(absolute.display().to_string()),
                );
            }
        }
    }
    Ok(())
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
