//! Where a run's status hooks go. Kept apart from the hooks themselves: the run's state
//! stores a sink, and the hooks render from the run's state.

/// A sink that could not be read, and the form it takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HookSinkError(String);

/// Why a status hook was not published (logged by the driver; it never fails the action).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PublishError(pub String);

/// Where a run's status hooks are published, chosen when the run is created and kept in its
/// state, so every driver of the run (local or the Lambda runner) publishes to the same place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookSink {
    /// An SNS topic, by ARN.
    Sns {
        /// `arn:aws:sns:<region>:<account>:<topic>`.
        topic_arn: String,
    },
    /// An EventBridge event bus, by name or ARN.
    Events {
        /// The bus name (`default`) or its ARN.
        bus: String,
    },
}

impl HookSink {
    /// Reads `sns:<topic ARN>` or `events:<bus name or ARN>`.
    pub fn parse(text: &str) -> Result<Self, HookSinkError> {
        let text = text.trim();
        if let Some(arn) = text.strip_prefix("sns:") {
            let parts: Vec<&str> = arn.split(':').collect();
            let valid = parts.len() == 6
                && parts[0] == "arn"
                && parts[2] == "sns"
                && parts[3..].iter().all(|p| !p.is_empty());
            if !valid {
                return Err(HookSinkError(format!(
                    "\"{text}\": an SNS sink is sns:<topic ARN>, e.g. sns:arn:aws:sns:eu-west-1:123456789012:deployments"
                )));
            }
            return Ok(HookSink::Sns {
                topic_arn: arn.to_string(),
            });
        }
        if let Some(bus) = text.strip_prefix("events:") {
            let by_arn = bus.starts_with("arn:");
            let valid = !bus.is_empty()
                && (!by_arn || bus.split(':').nth(2) == Some("events"))
                && (by_arn
                    || bus
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c)));
            if !valid {
                return Err(HookSinkError(format!(
                    "\"{text}\": an EventBridge sink is events:<bus name or ARN>, e.g. events:default"
                )));
            }
            return Ok(HookSink::Events {
                bus: bus.to_string(),
            });
        }
        Err(HookSinkError(format!(
            "\"{text}\": say where status hooks go: sns:<topic ARN> or events:<bus name or ARN>"
        )))
    }

    /// The region named by the sink's ARN, if it is one.
    pub fn region(&self) -> Option<&str> {
        let text = match self {
            HookSink::Sns { topic_arn } => topic_arn,
            HookSink::Events { bus } => bus,
        };
        text.starts_with("arn:")
            .then(|| text.split(':').nth(3))
            .flatten()
            .filter(|r| !r.is_empty())
    }
}

impl std::fmt::Display for HookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HookSink::Sns { topic_arn } => write!(f, "sns:{topic_arn}"),
            HookSink::Events { bus } => write!(f, "events:{bus}"),
        }
    }
}
