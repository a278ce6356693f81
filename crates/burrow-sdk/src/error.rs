//! The SDK's one error type: what handlers and RPC methods return, and what a stub's caller gets
//! back, with Cloudflare's flags (`remote`, `retryable`, `overloaded`) kept across the call.

use std::any::Any;
use std::fmt;

use burrow_runtime::ObjectError;
use http::StatusCode;

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from user code or from the platform.
///
/// Like `anyhow::Error`, it converts from any `std::error::Error`, so `?` works on storage, JSON
/// and parsing errors alike; it does not implement `std::error::Error` itself (that is what makes
/// the blanket conversion possible). An error a Durable Object returns reaches the stub's caller
/// with [`Error::is_remote`] set and the same message.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    remote: bool,
    retryable: bool,
    overloaded: bool,
    status: Option<StatusCode>,
}

impl Error {
    /// An error with this message (a Worker answers it with 500 unless [`Error::with_status`]
    /// says otherwise).
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            remote: false,
            retryable: false,
            overloaded: false,
            status: None,
        }
    }

    /// The same error, answered with `status` when it reaches the Worker's ingress.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Thrown by the Durable Object's own code (it crossed a stub).
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// The request never reached the object: safe to retry.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The object was overloaded (Cloudflare's "Durable Object is overloaded" errors).
    pub fn is_overloaded(&self) -> bool {
        self.overloaded
    }

    /// The HTTP status a Worker answers this error with: the one set with
    /// [`Error::with_status`], else 503 for overload and retryable platform errors, else 500.
    pub fn status(&self) -> StatusCode {
        match self.status {
            Some(status) => status,
            None if self.overloaded || self.retryable => StatusCode::SERVICE_UNAVAILABLE,
            None => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// An overload error (answered 503): the platform is at a limit, retry later.
    pub(crate) fn overloaded(message: impl Into<String>) -> Self {
        Error {
            overloaded: true,
            ..Error::new(message)
        }
    }

    /// What the runtime carries back to the caller when an object's handler fails. An overload
    /// stays one (a Worker answers it 503), e.g. an object at its WebSocket cap.
    pub(crate) fn into_remote(self) -> ObjectError {
        ObjectError {
            overloaded: self.overloaded,
            ..ObjectError::remote(self.message)
        }
    }

    fn from_object(error: &ObjectError) -> Self {
        Error {
            message: error.message.clone(),
            remote: error.remote,
            retryable: error.retryable,
            overloaded: error.overloaded,
            status: None,
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Self {
        // Keep the flags of errors that crossed a stub.
        if let Some(object) = (&error as &dyn Any).downcast_ref::<ObjectError>() {
            return Error::from_object(object);
        }
        Error::new(error.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = formatter.debug_struct("Error");
        debug.field("message", &self.message);
        for (flag, set) in [
            ("remote", self.remote),
            ("retryable", self.retryable),
            ("overloaded", self.overloaded),
        ] {
            if set {
                debug.field(flag, &true);
            }
        }
        if let Some(status) = self.status {
            debug.field("status", &status);
        }
        debug.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_from_a_stub_keep_their_flags() {
        let error = Error::from(ObjectError::overloaded("busy"));
        assert!(error.is_overloaded());
        assert!(!error.is_remote());
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        let error = Error::from(ObjectError::remote("thrown"));
        assert!(error.is_remote());
        assert_eq!(error.message(), "thrown");
        assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn any_std_error_converts_and_a_status_can_be_chosen() {
        let parse: Result<i64> = "x".parse::<i64>().map_err(Error::from);
        let error = parse.expect_err("not a number");
        assert_eq!(error.message(), "invalid digit found in string");
        let error = error.with_status(StatusCode::BAD_REQUEST);
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    }
}
