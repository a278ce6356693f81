//! Hibernatable sockets: an object accepts an upgrade request and hands the connection to its
//! shard's hub (`burrow_runtime::websocket`), with this module's driver as the hub's transport.
//!
//! # Protocol
//! - [`accept`] checks the object's limits (tags, its socket cap) before taking the connection,
//!   then takes it (the listener's descriptor-bound cap applies: past it a 503 naming the limit),
//!   registers the socket with the hub and spawns its driver on the object's shard. The object
//!   returns the `101` it gets back from its `fetch`; the response travels back through the
//!   Worker to the ingress, which writes it and lets go of the connection.
//! - The driver answers pings and the object's auto-response pair itself: neither wakes the
//!   object. Each message is delivered to the object as an event ([`WebSocket::deliver`]) and
//!   the driver reads nothing more from that socket until the event is handled (backpressure,
//!   and in-order delivery).
//! - The end of the socket is one event: a close (the client's close frame, or a connection that
//!   ended without error, 1006) or an error (protocol error, an oversized message, a client too
//!   slow for its send buffer, which is closed with 1009 and a reason). The hub drops the socket
//!   after it.

use std::cell::RefCell;
use std::sync::Arc;

use burrow_runtime::ObjectContext;
use burrow_runtime::websocket::{AutoResponse, SocketEvent, Transport, WebSocket};
use http::{Request, Response};

use super::socket::{AutoResponder, Config, Driver, Event, Flow, Sender};
use super::upgrade::UpgradeError;
use super::{Message, code};
use crate::Body;

/// Why an object could not accept a socket.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The object's limits (tags, sockets per object).
    #[error(transparent)]
    Object(#[from] burrow_runtime::ObjectError),
    /// The request is not an upgrade, or the listener's cap is reached.
    #[error(transparent)]
    Upgrade(#[from] UpgradeError),
}

/// The hub's view of one driven socket.
struct HubTransport {
    sender: Sender,
    responder: AutoResponder,
}

impl Transport for HubTransport {
    fn send(&self, message: Message) -> Result<(), String> {
        self.sender.send(message).map_err(|error| error.to_string())
    }

    fn close(&self, code: u16, reason: &str) -> Result<(), String> {
        self.sender
            .close(code, reason)
            .map_err(|error| error.to_string())
    }

    fn set_auto_response(&self, pair: Option<Arc<AutoResponse>>) {
        self.responder.set_shared(pair);
    }

    fn last_auto_response_ms(&self) -> Option<i64> {
        self.sender.last_auto_response_ms()
    }
}

thread_local! {
    /// One driver configuration per shard, shared by its sockets (rebuilt if the limits differ).
    static CONFIG: RefCell<Option<Arc<Config>>> = const { RefCell::new(None) };
}

fn config(ctx: &ObjectContext) -> Arc<Config> {
    let limits = ctx.websocket_limits();
    CONFIG.with(|slot| {
        let mut slot = slot.borrow_mut();
        if let Some(config) = slot.as_ref()
            && config.max_message_bytes == limits.max_message_bytes
            && config.max_send_buffer_bytes == limits.max_send_buffer_bytes
        {
            return Arc::clone(config);
        }
        let config = Arc::new(Config {
            max_message_bytes: limits.max_message_bytes,
            max_send_buffer_bytes: limits.max_send_buffer_bytes,
            clock: ctx.clock(),
            ..Config::default()
        });
        *slot = Some(Arc::clone(&config));
        config
    })
}

/// `ctx.acceptWebSocket(ws, tags)` for an upgrade request that reached the object's `fetch`:
/// returns the socket and the `101` response the object must return. Call on the object's shard
/// (inside its handler).
pub fn accept<B>(
    ctx: &ObjectContext,
    request: &Request<B>,
    tags: Vec<String>,
) -> Result<(WebSocket, Response<Body>), AcceptError> {
    ctx.check_websocket_accept(&tags)?;
    let accepted = super::accept(request, None)?;
    let (sender, driver) = Driver::new(config(ctx));
    let responder = AutoResponder::new();
    let transport = HubTransport {
        sender,
        responder: responder.clone(),
    };
    let ws = ctx.accept_websocket(tags, Box::new(transport))?;
    let driver = driver.with_auto_responder(responder);
    let socket = ws.clone();
    tokio::task::spawn_local(async move {
        let connection = match accepted.connection.connect().await {
            Ok(connection) => connection,
            Err(error) => {
                tracing::debug!(%error, "a hibernatable WebSocket's upgrade did not complete");
                socket
                    .deliver(SocketEvent::Close {
                        code: code::ABNORMAL,
                        reason: String::new(),
                        was_clean: false,
                    })
                    .await;
                return;
            }
        };
        driver
            .run(connection, move |event| {
                Flow::Pause(socket.deliver(match event {
                    Event::Message(message) => SocketEvent::Message(message),
                    Event::Closed(closed) => match closed.error {
                        Some(error) => SocketEvent::Error(error.to_string()),
                        None => SocketEvent::Close {
                            code: closed.code,
                            reason: closed.reason,
                            was_clean: closed.was_clean,
                        },
                    },
                }))
            })
            .await;
    });
    Ok((ws, accepted.response))
}
