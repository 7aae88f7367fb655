//! Status hooks published to an SNS topic or an EventBridge bus.

use super::{describe, Aws, Target};

impl Aws {
    /// Publishes a status hook to an SNS topic or an EventBridge bus, in the sink's region
    /// (from its ARN) or the default one, with the configured credentials.
    pub(crate) async fn publish_hook(
        &self,
        sink: &crate::hooks::HookSink,
        event: &crate::hooks::HookEvent,
    ) -> Result<(), String> {
        use crate::hooks::HookSink;
        let target = Target {
            region: sink.region().map(str::to_string),
            role_arn: None,
        };
        let config = self.clients(&target).await.config;
        let body = event.to_json().to_string();
        match sink {
            HookSink::Sns { topic_arn } => {
                let client = aws_sdk_sns::Client::new(&config);
                let mut request = client.publish().topic_arn(topic_arn).message(&body);
                for (key, value) in crate::hooks::attributes(event) {
                    let value = aws_sdk_sns::types::MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(value.as_str().unwrap_or_default())
                        .build()
                        .map_err(|e| e.to_string())?;
                    request = request.message_attributes(key, value);
                }
                // A FIFO topic drops the duplicates a replayed tick publishes by itself.
                if topic_arn.ends_with(".fifo") {
                    request = request
                        .message_group_id(&event.run_id)
                        .message_deduplication_id(&event.dedupe_id);
                }
                request
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("sns:Publish to {topic_arn}: {}", describe(&e)))
            }
            HookSink::Events { bus } => {
                let client = aws_sdk_eventbridge::Client::new(&config);
                let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(bus)
                    .source("baton")
                    .detail_type("baton status hook")
                    .detail(&body)
                    .build();
                let answer = client
                    .put_events()
                    .entries(entry)
                    .send()
                    .await
                    .map_err(|e| format!("events:PutEvents to {bus}: {}", describe(&e)))?;
                match answer.entries().first() {
                    Some(failed) if failed.error_code().is_some() => Err(format!(
                        "events:PutEvents to {bus}: {}: {}",
                        failed.error_code().unwrap_or_default(),
                        failed.error_message().unwrap_or_default()
                    )),
                    _ => Ok(()),
                }
            }
        }
    }
}
