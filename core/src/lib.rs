//! baton-core: the engine behind baton. Model and validation ([`load`]), the sans-IO
//! [`scheduler`], versioned [`state`] and its [`store`]s, the action catalogue ([`actions`])
//! behind the [`executor::Executor`] trait, and the async [`driver`] that composes them.

#![warn(missing_docs, unreachable_pub)]

pub mod actions;
#[cfg(feature = "aws")]
pub mod aws;
pub(crate) mod changes;
pub mod driver;
pub mod duration;
pub mod executor;
pub(crate) mod fault;
pub mod graph;
pub mod hints;
pub mod hooks;
pub(crate) mod journal;
pub mod load;
pub mod log;
pub mod log_stream;
pub(crate) mod merge;
pub(crate) mod model;
pub(crate) mod payload;
pub mod process;
pub mod redact;
pub mod run;
pub mod scheduler;
pub mod state;
pub mod store;
pub mod template;
#[cfg(any(test, feature = "test-util"))]
pub mod testutil;
pub(crate) mod util;

#[cfg(feature = "aws-ecs")]
pub use actions::command::CommandTasks;
pub use actions::{ActionType, Outcome};
pub use driver::{drive, tick, Observer, Silent, TickOptions, TickReport};
pub use executor::{Executor, StandardExecutor};
pub use load::{load_path, load_str, Format, Loaded, Problem, Problems};
pub use model::{
    Action, ActionDetails, ActionIdx, Dialect, HookMessage, HookState, LifecycleHook, Plan,
};
pub use payload::Payload;
pub use run::{Run, RunError};
pub use scheduler::{rendered_params, Next, Reexecute, Scheduler};
pub use state::{ActionStatus, Outputs, RunState, RunStatus};
pub use store::{LocalStore, RunStore, StoreError};
