//! The Lambda entry point: wiring only (see the library for the handler).

use std::time::{Duration, Instant, SystemTime};

use baton_core::aws::{Aws, AwsSettings};
use baton_lambda::{handle, init_logging, Config, Input};
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let config = Config::from_env();
    let aws = Aws::load(&AwsSettings {
        role_name: Some(config.role_name.clone()),
        ..AwsSettings::default()
    })
    .await;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Input>| {
        let aws = aws.clone();
        let config = config.clone();
        async move {
            let left = event
                .context
                .deadline()
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            handle(aws, event.payload, Instant::now() + left, &config)
                .await
                .map_err(|e| Diagnostic {
                    error_type: e.error_type().into(),
                    error_message: e.to_string(),
                })
        }
    }))
    .await
}
