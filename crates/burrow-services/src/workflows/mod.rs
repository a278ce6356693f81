//! Workflows: durable multi-step execution with retries, sleeps, events and instance management
//! (spec §3), built from system Durable Objects as Cloudflare builds it.
//!
//! # Shape
//! - Each instance is an object of the `__burrow_workflow` class named `<workflow>/<id>`
//!   ([`instance`]). Its SQLite database holds the params, the status, the step cache (results
//!   keyed by step name and occurrence), attempts, timers, events and so the history
//!   ([`store`]).
//! - `run` is replayed from the top after every wait and every restart; completed steps return
//!   their stored results without running again ([`step`]). A step that must wait ends the run:
//!   the instance stores when it may go on and sets its alarm, so a sleeping instance holds no
//!   memory and survives restarts ([`run`]).
//! - Each workflow has a registry object (`__burrow_workflow_registry`, named after the
//!   workflow) that lists its instances, hands out its concurrency slots (excess instances
//!   queue) and deletes finished instances after their retention ([`registry`]).
//! - [`Workflows`] is the service a node starts; [`Workflow`] and [`WorkflowInstance`] are the
//!   binding.
//!
//! # Guarantees
//! - A step's result is durable before the next step starts, and a completed step never runs
//!   again, whatever happens to the process. A step interrupted by a crash runs again (the
//!   interrupted attempt counts as failed, as in Miniflare): steps are at-least-once, so their
//!   side effects should be idempotent.
//! - A sleep never ends before its time: the step completes only when the runtime clock has
//!   passed it, on whichever run reaches it first.
//! - An acknowledged `create` or `send_event` is durable; an event sent before the instance
//!   waits for it is kept until a `wait_for_event` of its type takes it.

mod config;
mod entrypoint;
mod error;
mod history;
pub mod instance;
mod limits;
mod metrics;
mod protocol;
pub mod registry;
mod run;
mod service;
mod status;
mod step;
mod store;

pub use config::{
    Backoff, ResolvedConfig, ResolvedRetries, RetryConfig, StepConfig, WorkflowDuration,
    parse_duration_ms,
};
pub use entrypoint::{Definition, WorkflowEntrypoint, WorkflowEvent, definition};
pub use error::{Error, FATAL, INTERNAL, NON_RETRYABLE, TIMEOUT, WorkflowError};
pub use history::rfc3339;
pub use limits::{
    DEFAULT_EVENT_TIMEOUT_MS, DEFAULT_MAX_CONCURRENT_INSTANCES, DEFAULT_MAX_STEPS,
    DEFAULT_RETENTION_DAYS, MAX_BATCH_INSTANCES, MAX_EVENT_TYPE_LENGTH, MAX_INSTANCE_ID_LENGTH,
    MAX_SLEEP_MS, MAX_STEP_NAME_LENGTH, MAX_VALUE_BYTES, is_valid_event_type, is_valid_instance_id,
    is_valid_step_name,
};
pub use metrics::MetricsSnapshot;
pub use protocol::{InstancePage, InstanceSummary};
pub use service::{
    Builder, CreateOptions, InstanceStatus, ListOptions, Options, Workflow, WorkflowInstance,
    Workflows,
};
pub use status::Status;
pub use step::{StepContext, WaitOptions, WorkflowStep, WorkflowStepEvent};
