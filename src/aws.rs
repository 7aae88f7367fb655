//! AWS access for the command line: the AWS CLI's options (`--profile`, `--region`,
//! `--endpoint-url`) and the standard chain behind them, loaded once and only when needed.

use std::sync::{Arc, OnceLock};

use baton_core::aws::{Aws, AwsSettings};
use tokio::sync::OnceCell;

static SETTINGS: OnceLock<AwsSettings> = OnceLock::new();
static AWS: OnceCell<Arc<Aws>> = OnceCell::const_new();

/// Records the options given on the command line (called once, at start-up).
pub fn configure(settings: AwsSettings) {
    let _ = SETTINGS.set(settings);
}

/// The shared AWS access, loaded on first use (a plan without `aws.*` actions on a local
/// store never touches the credential chain).
pub async fn aws() -> Arc<Aws> {
    AWS.get_or_init(|| async { Aws::load(SETTINGS.get().unwrap_or(&AwsSettings::default())).await })
        .await
        .clone()
}

/// The executor for a plan: with AWS access only if the plan has `aws.*` actions or the run
/// needs it otherwise (it publishes status hooks, or a runner started its commands as tasks).
pub async fn executor(plan: &baton_core::Plan, needs_aws: bool) -> baton_core::StandardExecutor {
    if needs_aws
        || plan
            .actions()
            .iter()
            .any(|a| a.action_type.name().starts_with("aws."))
    {
        baton_core::StandardExecutor::with_aws(aws().await)
    } else {
        baton_core::StandardExecutor::new()
    }
}
