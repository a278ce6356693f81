//! The two error types of Workflows: [`Error`], what the binding and the admin API refuse with
//! (Cloudflare's messages), and [`WorkflowError`], what a workflow's own code and its steps fail
//! with (Cloudflare's `{name, message}` error shape, kept in the instance's history).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::limits::{MAX_BATCH_INSTANCES, MAX_EVENT_TYPE_LENGTH};

/// Why the binding (create, get, pause, send_event, ...) refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    /// The id does not match `^[a-zA-Z0-9_][a-zA-Z0-9-_]*$` or is longer than 100 characters.
    #[error("Workflow instance has invalid id")]
    InvalidId(String),
    /// `create` with an id that is taken (until the old instance's retention ends).
    #[error("(instance.already_exists) Instance already exists")]
    AlreadyExists(String),
    /// No instance has this id.
    #[error("(instance.not_found) Instance does not exist")]
    NotFound(String),
    /// `terminate` on a complete, errored or terminated instance.
    #[error("(instance.cannot_terminate) Cannot terminate instance since its on a finite state")]
    CannotTerminate,
    /// `create_batch` with no instances.
    #[error("WorkflowError: batchCreate should have at least 1 instance")]
    EmptyBatch,
    /// `create_batch` with more than 100 instances.
    #[error("WorkflowError: batchCreate only supports {MAX_BATCH_INSTANCES} instances at a time")]
    BatchTooLarge,
    /// Serialized params over 1 MiB.
    #[error("Workflow instance params are too large. Maximum allowed size is 1MiB.")]
    ParamsTooLarge,
    /// A serialized event payload over 1 MiB.
    #[error("Event payload is too large. Maximum allowed size is 1MiB.")]
    EventTooLarge,
    /// An event type that is not `^[a-zA-Z0-9_][a-zA-Z0-9-_]*$` of at most 100 characters.
    #[error(
        "Event type \"{0}\" is invalid: use letters, digits, _ and -, not starting with -, at most \
         {MAX_EVENT_TYPE_LENGTH} characters"
    )]
    InvalidEventType(String),
    /// No workflow of this name is registered with the service.
    #[error("no Workflow named \"{0}\" is configured")]
    UnknownWorkflow(String),
    /// Params, a payload or a result could not be serialized or read back.
    #[error("{0}")]
    Serialization(String),
    /// The platform failed (storage, an overloaded object, a stopped runtime).
    #[error("{0}")]
    Unavailable(String),
}

/// What a workflow's `run`, its step callbacks and the step API fail with: an error name and a
/// message, as Cloudflare records a thrown `Error`.
///
/// Any `std::error::Error` converts into one (name `"Error"`), so `?` works in `run` and in
/// step callbacks. [`WorkflowError::non_retryable`] makes a step fail at once, without retries.
/// Because of that blanket conversion it does not implement `std::error::Error` itself.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowError {
    /// The error's name (`Error`, `NonRetryableError`, `WorkflowTimeoutError`, ...).
    pub name: String,
    /// The message.
    pub message: String,
}

/// The name that makes a step error skip its remaining retries.
pub const NON_RETRYABLE: &str = "NonRetryableError";
/// The name of step and event timeouts.
pub const TIMEOUT: &str = "WorkflowTimeoutError";
/// The name of errors the platform raises for a misuse it cannot continue from.
pub const FATAL: &str = "WorkflowFatalError";
/// The name of the platform's own failures.
pub const INTERNAL: &str = "WorkflowInternalError";

impl WorkflowError {
    /// An `Error` with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self::named("Error", message)
    }

    /// An error with this name and message.
    pub fn named(name: impl Into<String>, message: impl Into<String>) -> Self {
        WorkflowError {
            name: name.into(),
            message: message.into(),
        }
    }

    /// Cloudflare's `NonRetryableError`: a step that fails with it is not retried.
    pub fn non_retryable(message: impl Into<String>) -> Self {
        Self::named(NON_RETRYABLE, message)
    }

    /// True for [`WorkflowError::non_retryable`] errors.
    pub fn is_non_retryable(&self) -> bool {
        self.name == NON_RETRYABLE
    }

    /// True for step and event timeouts.
    pub fn is_timeout(&self) -> bool {
        self.name == TIMEOUT
    }

    pub(crate) fn timeout(after_ms: u64) -> Self {
        Self::named(TIMEOUT, format!("Execution timed out after {after_ms}ms"))
    }

    pub(crate) fn fatal(message: impl Into<String>) -> Self {
        Self::named(FATAL, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::named(INTERNAL, message)
    }
}

impl<E: std::error::Error> From<E> for WorkflowError {
    fn from(error: E) -> Self {
        WorkflowError::new(error.to_string())
    }
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.name, self.message)
    }
}

impl fmt::Debug for WorkflowError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("WorkflowError")
            .field("name", &self.name)
            .field("message", &self.message)
            .finish()
    }
}

/// The messages the step API fails with (Cloudflare's and Miniflare's wording).
pub(crate) mod message {
    use super::super::limits::MAX_STEP_NAME_LENGTH;

    pub(crate) fn invalid_step_name(name: &str) -> String {
        format!(
            "Step name \"{name}\" exceeds max length ({MAX_STEP_NAME_LENGTH} chars) or invalid \
             characters found"
        )
    }

    pub(crate) fn step_limit(limit: u32) -> String {
        format!(
            "The limit of {limit} steps has been reached. This limit can be changed in your \
             worker configuration."
        )
    }

    pub(crate) fn output_too_large(name: &str, occurrence: u32) -> String {
        format!("Step {name}-{occurrence} output is too large. Maximum allowed size is 1MiB.")
    }

    pub(crate) fn not_serialisable(name: &str) -> String {
        format!("Value returned from step \"{name}\" is not serialisable")
    }

    pub(crate) fn instance_not_serialisable(name: &str) -> String {
        format!(
            "The execution of the Workflow instance was terminated, as the step \"{name}\" \
             returned a value which is not serialisable"
        )
    }

    pub(crate) const INTERRUPTED_ATTEMPT: &str = "Attempt failed due to internal workflows error";

    pub(crate) const SLEEP_IN_THE_PAST: &str =
        "You can't sleep until a time in the past, time-traveler";

    pub(crate) const OUTPUT_TOO_LARGE: &str =
        "The Workflow instance's output is too large. Maximum allowed size is 1MiB.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_std_error_converts_and_non_retryable_is_recognised() {
        let error: WorkflowError = "x".parse::<i32>().unwrap_err().into();
        assert_eq!(error.name, "Error");
        assert_eq!(error.message, "invalid digit found in string");
        assert!(!error.is_non_retryable());
        let error = WorkflowError::non_retryable("card declined");
        assert!(error.is_non_retryable());
        assert_eq!(error.to_string(), "NonRetryableError: card declined");
    }

    #[test]
    fn binding_errors_use_cloudflares_wording() {
        assert_eq!(
            Error::AlreadyExists("a".into()).to_string(),
            "(instance.already_exists) Instance already exists"
        );
        assert_eq!(
            Error::NotFound("a".into()).to_string(),
            "(instance.not_found) Instance does not exist"
        );
        assert_eq!(
            message::output_too_large("fetch", 1),
            "Step fetch-1 output is too large. Maximum allowed size is 1MiB."
        );
    }
}
