//! What one attempt of an action is given (its request and log sink) and what it reports (its
//! outcome). The engine builds requests; the action types in this folder answer them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::watch;

use super::ActionType;
use crate::log::Level;
use crate::process::ProcessRecord;
use crate::process::StopCause;

/// What an action reports about one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done; its outputs become readable by later actions' templates.
    Complete {
        /// Named results (stack outputs, a command's final JSON line, …).
        outputs: Map<String, Value>,
    },
    /// Still running; check again after `check_after` (zero: at once) with `handle`.
    Running {
        /// What a later check or cancel needs (e.g. a stack id); kept in the state.
        handle: Value,
        /// How long to wait before the next check.
        check_after: Duration,
    },
    /// Did not succeed.
    Failed {
        /// What went wrong, in words an operator can act on.
        error: String,
        /// Whether another attempt may succeed (the action's retry policy decides).
        retryable: bool,
    },
    /// baton stopped the work before it finished, because `cause` asked it to (see
    /// [`Control`]); its outcome is unknown.
    Stopped {
        /// What asked for the stop.
        cause: StopCause,
        /// How it was stopped (e.g. the signals its process group got).
        detail: String,
    },
}

impl Outcome {
    /// Complete with no outputs.
    pub fn complete() -> Self {
        Outcome::Complete {
            outputs: Map::new(),
        }
    }

    /// A failure that another attempt would not fix.
    pub fn failed(error: impl Into<String>) -> Self {
        Outcome::Failed {
            error: error.into(),
            retryable: false,
        }
    }
}

/// Why a running action could not be cancelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    /// The type has no way to stop work it started.
    #[error("{type_name} actions cannot be cancelled")]
    Unsupported {
        /// The action type.
        type_name: &'static str,
    },
    /// The type can cancel, but not this work, or the provider refused.
    #[error("{0}")]
    Refused(String),
}

/// Where an action writes its log lines while it runs (they land in its log thread).
#[derive(Clone)]
pub struct LogSink {
    write: Option<Arc<dyn Fn(Level, String) + Send + Sync>>,
}

impl fmt::Debug for LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.write.is_some() {
            "LogSink"
        } else {
            "LogSink(discard)"
        })
    }
}

impl LogSink {
    /// A sink that hands every line to `write`.
    pub fn new(write: impl Fn(Level, String) + Send + Sync + 'static) -> Self {
        LogSink {
            write: Some(Arc::new(write)),
        }
    }

    /// A sink that drops every line (tests, one-off calls).
    pub fn discard() -> Self {
        LogSink { write: None }
    }

    /// Writes one line.
    pub fn send(&self, level: Level, msg: impl Into<String>) {
        if let Some(write) = &self.write {
            write(level, msg.into());
        }
    }
}

/// How the engine stays in control of an attempt while it runs: it can ask the attempt to
/// stop (abort, a signal to baton, quitting the console), and a command tells it at once where
/// its processes are, so the state records them before anything else happens.
#[derive(Clone, Default)]
pub struct Control {
    stop: Option<watch::Receiver<Option<StopCause>>>,
    started: Option<Arc<dyn Fn(ProcessRecord) + Send + Sync>>,
    max_grace: Option<Duration>,
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("stop", &self.stop.as_ref().map(|rx| *rx.borrow()))
            .finish_non_exhaustive()
    }
}

impl Control {
    /// Control that never asks for a stop and hears nothing (tests, one-off calls).
    pub fn none() -> Self {
        Control::default()
    }

    pub(crate) fn new(
        stop: watch::Receiver<Option<StopCause>>,
        started: impl Fn(ProcessRecord) + Send + Sync + 'static,
    ) -> Self {
        Control {
            stop: Some(stop),
            started: Some(Arc::new(started)),
            max_grace: None,
        }
    }

    /// Caps grace periods: a tick with a hard deadline (Lambda) must fit a stop into its
    /// safety margin.
    pub(crate) fn with_max_grace(mut self, max: Duration) -> Self {
        self.max_grace = Some(max);
        self
    }

    /// `grace`, within the cap.
    pub(crate) fn grace(&self, grace: Duration) -> Duration {
        self.max_grace.map_or(grace, |max| grace.min(max))
    }

    /// Resolves once a stop is asked for (at once if it already was); never without one.
    pub(crate) async fn stop_requested(&mut self) -> StopCause {
        if let Some(stop) = &mut self.stop {
            if let Ok(cause) = stop.wait_for(Option::is_some).await {
                if let Some(cause) = *cause {
                    return cause;
                }
            }
        }
        std::future::pending().await
    }

    /// A command reports where its processes are.
    pub(crate) fn started(&self, record: ProcessRecord) {
        if let Some(started) = &self.started {
            started(record);
        }
    }
}

/// Everything needed to start one attempt of an action.
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// The run the action belongs to.
    pub run_id: String,
    /// The action's label.
    pub label: String,
    /// The action's type.
    pub action_type: ActionType,
    /// Rendered params.
    pub params: Value,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Longest a synchronous action may run (action timeout and tick budget).
    pub limit: Option<Duration>,
    /// The action's log thread.
    pub log: LogSink,
    /// Stop requests in, process records out.
    pub control: Control,
}

impl StartRequest {
    /// Token that makes a replayed start of the same attempt a no-op at the provider
    /// (e.g. CloudFormation's `ClientRequestToken`, max 128 chars of `[a-zA-Z0-9-]`).
    #[cfg(feature = "aws")]
    pub(crate) fn idempotency_token(&self) -> String {
        idempotency_token(&self.run_id, &self.label, self.attempt)
    }
}

/// The token of attempt `attempt` of `label` in run `run_id` (see
/// [`StartRequest::idempotency_token`]).
#[cfg(feature = "aws")]
fn idempotency_token(run_id: &str, label: &str, attempt: u32) -> String {
    let digest = crate::util::sha256_hex(format!("{run_id}\n{label}\n{attempt}").as_bytes());
    format!("baton-{}-{attempt}", &digest[..32])
}

/// Everything needed to check on, or cancel, a running action.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    /// The run the action belongs to.
    pub run_id: String,
    /// The action's label.
    pub label: String,
    /// The action's type.
    pub action_type: ActionType,
    /// Rendered params, as the start saw them.
    pub params: Value,
    /// What the start (or the last check) returned in [`Outcome::Running`].
    pub handle: Value,
    /// The running attempt.
    pub attempt: u32,
    /// The action's log thread.
    pub log: LogSink,
}
