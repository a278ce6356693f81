//! What a guest (the Rust SDK, the JavaScript runtime) implements to run Durable Object classes,
//! and the errors that cross a stub.

use crate::clock::LocalBoxFuture;
use crate::object::ObjectContext;
use crate::websocket::{Message, WebSocket};
use bytes::Bytes;
use std::rc::Rc;

/// A request to an object's `fetch` handler (bodies are buffered across objects).
pub type Request = http::Request<Bytes>;
/// An object's `fetch` response.
pub type Response = http::Response<Bytes>;

/// A Durable Object class: builds instances on the shard that owns each object.
pub trait ObjectClass: Send + Sync + 'static {
    /// Runs the class's constructor for one object. Called on the object's shard; the instance
    /// lives there until it hibernates or is evicted.
    fn construct(&self, ctx: ObjectContext) -> Result<Rc<dyn ObjectInstance>, ObjectError>;
}

/// A live instance of a Durable Object class.
pub trait ObjectInstance: 'static {
    /// The `fetch` handler.
    fn fetch(
        self: Rc<Self>,
        request: Request,
    ) -> LocalBoxFuture<'static, Result<Response, ObjectError>>;
    /// A typed RPC method: `args` and the result are the guest's own serialization.
    fn call(
        self: Rc<Self>,
        method: String,
        args: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, ObjectError>>;
    /// The `alarm` handler.
    fn alarm(self: Rc<Self>, info: AlarmInfo) -> LocalBoxFuture<'static, Result<(), ObjectError>>;
    /// `webSocketMessage`: a message on a socket the object accepted. Without a handler the
    /// message is dropped.
    fn websocket_message(
        self: Rc<Self>,
        ws: WebSocket,
        message: Message,
    ) -> LocalBoxFuture<'static, Result<(), ObjectError>> {
        let _ = (ws, message);
        Box::pin(std::future::ready(Ok(())))
    }
    /// `webSocketClose`: the client closed the socket (or the connection ended); the hub drops
    /// the socket once this returns.
    fn websocket_close(
        self: Rc<Self>,
        ws: WebSocket,
        code: u16,
        reason: String,
        was_clean: bool,
    ) -> LocalBoxFuture<'static, Result<(), ObjectError>> {
        let _ = (ws, code, reason, was_clean);
        Box::pin(std::future::ready(Ok(())))
    }
    /// `webSocketError`: the socket failed; the hub drops it once this returns.
    fn websocket_error(
        self: Rc<Self>,
        ws: WebSocket,
        error: String,
    ) -> LocalBoxFuture<'static, Result<(), ObjectError>> {
        let _ = (ws, error);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// What the `alarm` handler is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmInfo {
    /// How many times this alarm has been retried (0 on the first run).
    pub retry_count: u32,
    /// True on a retry.
    pub is_retry: bool,
}

/// An error that reaches a stub's caller, with Cloudflare's flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ObjectError {
    /// The message (Cloudflare's wording for platform errors).
    pub message: String,
    /// Thrown by the object's own code.
    pub remote: bool,
    /// Safe to retry: the request never reached the object.
    pub retryable: bool,
    /// The object was overloaded.
    pub overloaded: bool,
}

impl ObjectError {
    /// An error thrown by user code in the object.
    pub fn remote(message: impl Into<String>) -> Self {
        ObjectError {
            message: message.into(),
            remote: true,
            retryable: false,
            overloaded: false,
        }
    }

    /// A platform error that is not the user's.
    pub fn internal(message: impl Into<String>) -> Self {
        ObjectError {
            message: message.into(),
            remote: false,
            retryable: false,
            overloaded: false,
        }
    }

    /// An overload error: the request never reached the object.
    pub fn overloaded(message: impl Into<String>) -> Self {
        ObjectError {
            message: message.into(),
            remote: false,
            retryable: false,
            overloaded: true,
        }
    }

    /// A retryable platform error: the request never reached the object.
    pub fn retryable(message: impl Into<String>) -> Self {
        ObjectError {
            message: message.into(),
            remote: false,
            retryable: true,
            overloaded: false,
        }
    }
}

/// Cloudflare's overload messages.
pub mod overload {
    /// Too many events waiting for one object.
    pub const TOO_MANY_REQUESTS: &str = "Durable Object is overloaded. Too many requests queued.";
    /// Too many bytes waiting for one object.
    pub const TOO_MUCH_DATA: &str = "Durable Object is overloaded. Too much data queued.";
    /// An event waited too long to start.
    pub const QUEUED_TOO_LONG: &str = "Durable Object is overloaded. Requests queued for too long.";
}
