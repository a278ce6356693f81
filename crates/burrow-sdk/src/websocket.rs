//! Hibernatable WebSockets in Rust: an object accepts an upgrade request with
//! [`ObjectContext::accept_websocket`](crate::ObjectContext::accept_websocket) and gets a
//! [`WebSocket`]; its messages, closes and errors arrive at the class's
//! [`DurableObject::websocket_message`](crate::DurableObject::websocket_message),
//! [`websocket_close`](crate::DurableObject::websocket_close) and
//! [`websocket_error`](crate::DurableObject::websocket_error) handlers.
//!
//! The socket stays open, held by the object's shard, while the object hibernates: a message
//! constructs the object again and is delivered. Protocol pings and the auto-response pair
//! ([`ObjectContext::set_websocket_auto_response`](crate::ObjectContext::set_websocket_auto_response))
//! are answered without waking it. Tags and the attachment live with the socket, not the
//! instance, so they survive hibernation; fields of the instance do not.
//!
//! Limits (Cloudflare's): 10 tags of at most 256 characters, a 16 KiB attachment, 2,048 bytes per
//! side of the auto-response pair, 32,768 sockets per object and 32 MiB messages (both set in the
//! runtime's options). A client that does not read what is sent to it is dropped with close code
//! 1009 once its send buffer is full; the object's `websocket_error` handler is told.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use burrow_runtime::websocket::{
    AutoResponse, MAX_ATTACHMENT_BYTES, MAX_AUTO_RESPONSE_BYTES, MAX_TAG_CHARS, MAX_TAGS, Message,
    Text,
};

use crate::error::{Error, Result};

/// A socket the object accepted. Cheap to clone; compare two with `==`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSocket {
    pub(crate) inner: burrow_runtime::WebSocket,
}

impl WebSocket {
    /// Sends a text (`&str`, `String`) or binary (`Vec<u8>`, `Bytes`) message. It leaves only
    /// once the object's earlier writes are durable (the output gate). Fails if the socket is
    /// closed.
    pub fn send(&self, message: impl Into<Message>) -> Result<()> {
        Ok(self.inner.send(message)?)
    }

    /// Closes the socket with `code` (1000 or 3000–4999) and `reason` (at most 123 bytes).
    pub fn close(&self, code: u16, reason: &str) -> Result<()> {
        Ok(self.inner.close(code, reason)?)
    }

    /// The tags it was accepted with (`ctx.getTags(ws)`).
    pub fn tags(&self) -> Result<Vec<String>> {
        Ok(self.inner.tags()?)
    }

    /// Stores `value` (as JSON, at most 16 KiB) with the socket; it survives hibernation
    /// (`serializeAttachment`).
    pub fn serialize_attachment<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)?;
        Ok(self.inner.serialize_attachment(Bytes::from(bytes))?)
    }

    /// The attachment last stored (`deserializeAttachment`); `None` if there is none.
    pub fn deserialize_attachment<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match self.inner.deserialize_attachment() {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
                Error::new(format!(
                    "the WebSocket attachment is not the type expected: {error}"
                ))
            }),
        }
    }

    /// When the auto-response pair was last answered on this socket, in epoch milliseconds
    /// (`ctx.getWebSocketAutoResponseTimestamp(ws)`).
    pub fn auto_response_timestamp(&self) -> Option<i64> {
        self.inner.auto_response_timestamp()
    }

    /// The runtime's handle.
    pub fn as_runtime(&self) -> &burrow_runtime::WebSocket {
        &self.inner
    }
}
