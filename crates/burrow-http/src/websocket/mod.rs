//! Server-side WebSockets (RFC 6455), written for many idle sockets: the handshake
//! ([`Handshake`]), taking a connection over from the ingress on any shard ([`accept`],
//! [`Upgrade`]), and the driver that runs an upgraded connection ([`Driver`], [`Sender`],
//! [`Inbound`]). The runtime's hub builds hibernatable sockets on these.
//!
//! # Use
//! ```ignore
//! // In a handler, on whichever shard holds the object that accepts the socket:
//! let accepted = websocket::accept(&request, None).map_err(|error| error.into_response())?;
//! let (sender, driver) = websocket::Driver::new(Arc::clone(&config));
//! tokio::task::spawn_local(async move {
//!     if let Ok(connection) = accepted.connection.connect().await {
//!         driver.run(connection, |event| { /* hand it to the object */ Flow::Continue }).await;
//!     }
//! });
//! return accepted.response; // 101; `sender` may send at once
//! ```
//!
//! # Memory
//! An idle socket costs one task (the driver's state, a few hundred bytes), the [`Sender`]'s
//! shared state (about 150 bytes), and the TCP stream's registration with the reactor; nothing
//! else on the heap. The reader keeps no buffer between messages: reads go through a 16 KiB
//! buffer on the poll's stack, and a message grows only with the bytes actually received. The send
//! queue holds shared payloads (a broadcast is one buffer however many sockets it goes to) and
//! gives its memory back when it empties. hyper's connection buffers are freed at the upgrade. The
//! kernel's socket buffers are not in the process's RSS.
//!
//! # Limits
//! [`Config::max_message_bytes`] (32 MiB, Cloudflare's) closes a socket with 1009 as soon as a
//! frame header announces more. [`Config::max_send_buffer_bytes`] bounds what waits for a slow
//! client: past it the socket is closed with 1009. The listener's
//! [`ServerOptions::max_websockets`](crate::ServerOptions::max_websockets) bounds open sockets,
//! and so descriptors.

mod frame;
mod handshake;
pub mod hibernatable;
mod message;
mod reader;
mod socket;
mod upgrade;

pub use handshake::{Handshake, HandshakeError, accept_key, is_upgrade_request};
pub use message::{MAX_CLOSE_REASON_BYTES, Message, Text, code, is_sendable_code};
pub use socket::{
    AutoResponder, AutoResponse, AutoResponseError, Closed, Config, Driver, Event, Flow, Inbound,
    MAX_AUTO_RESPONSE_BYTES, SendError, Sender,
};
pub use upgrade::{Accepted, Connection, PendingConnection, Upgrade, UpgradeError, accept};

pub(crate) use upgrade::Slots;

/// Why the server failed a socket, or why its connection ended.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client broke RFC 6455 (close code 1002).
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
    /// A text message or close reason is not UTF-8 (1007).
    #[error("a WebSocket text message is not valid UTF-8")]
    InvalidUtf8,
    /// A message passed [`Config::max_message_bytes`] (1009).
    #[error("WebSocket message too big: the limit is {limit} bytes")]
    MessageTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The client read too slowly for [`Config::max_send_buffer_bytes`] (1009).
    #[error("WebSocket send buffer overflow: the client is not reading (limit {limit} bytes)")]
    SendBufferFull {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The client did not answer our close frame in time.
    #[error("the client did not answer the close frame within {timeout_ms} ms")]
    CloseTimeout {
        /// [`Config::close_timeout`], in milliseconds.
        timeout_ms: u64,
    },
    /// The connection failed.
    #[error("WebSocket connection error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The close code the server sends for this error (1006, never sent, for the others).
    pub fn close_code(&self) -> u16 {
        match self {
            Error::Protocol(_) => code::PROTOCOL_ERROR,
            Error::InvalidUtf8 => code::INVALID_PAYLOAD,
            Error::MessageTooLarge { .. } | Error::SendBufferFull { .. } => code::MESSAGE_TOO_BIG,
            Error::CloseTimeout { .. } | Error::Io(_) => code::ABNORMAL,
        }
    }
}

/// What [`decode_client_bytes`] read before the input ended, the first close frame, or an error.
#[doc(hidden)]
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Complete data messages, in order.
    pub messages: Vec<Message>,
    /// Ping and pong frames.
    pub control_frames: usize,
    /// The close frame's code, if one arrived (`Some(None)`: a close frame without a code).
    pub close: Option<Option<u16>>,
}

/// Runs the socket's frame reader over bytes a client sent, fed in pieces of the given sizes
/// (cycled; zero counts as one), as the driver would feed what each read returned. Reading stops
/// at the first close frame, as the driver does. For the fuzz harnesses: the result must not
/// depend on the piece sizes.
#[doc(hidden)]
pub fn decode_client_bytes(
    input: &[u8],
    pieces: &[usize],
    max_message_bytes: usize,
) -> Result<Decoded, Error> {
    let mut reader = reader::Reader::new(max_message_bytes);
    let mut decoded = Decoded {
        messages: Vec::new(),
        control_frames: 0,
        close: None,
    };
    let mut at = 0;
    let mut piece = pieces.iter().copied().cycle();
    while at < input.len() {
        let size = piece.next().unwrap_or(input.len()).max(1);
        let end = (at + size).min(input.len());
        while at < end {
            let (used, item) = reader.feed(&input[at..end])?;
            at += used;
            if used == 0 && item.is_none() {
                break;
            }
            match item {
                Some(reader::Item::Message(message)) => decoded.messages.push(message),
                Some(reader::Item::Ping(_) | reader::Item::Pong) => decoded.control_frames += 1,
                Some(reader::Item::Close(frame)) => {
                    decoded.close = Some(frame.map(|frame| frame.code));
                    return Ok(decoded);
                }
                None => {}
            }
        }
    }
    Ok(decoded)
}
