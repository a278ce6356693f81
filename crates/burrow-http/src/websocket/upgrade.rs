//! Upgrade plumbing: how a [`Handler`](crate::Handler) on any shard takes a WebSocket over from
//! the ingress connection it arrived on.
//!
//! # Protocol
//! - The ingress puts an [`Upgrade`] in the extensions of every request that says
//!   `Upgrade: websocket`. It is `Send + Sync + Clone`, so the request may travel to another shard
//!   (to the object that accepts the socket) and be accepted there.
//! - [`accept`] checks the handshake, reserves one of the listener's WebSocket slots
//!   ([`ServerOptions::max_websockets`](crate::ServerOptions::max_websockets)) and takes the
//!   connection, once. It returns the `101` response, which the handler must return, and a
//!   [`PendingConnection`]. Past the cap it fails with [`UpgradeError::TooManyWebSockets`], whose
//!   response is a 503 naming the limit: a process here has at most 20,000 descriptors and each
//!   socket holds one until it closes.
//! - [`PendingConnection::connect`] resolves once hyper has written the `101` and let go of the
//!   connection; await it in a task of its own (the handler must return first). It moves the TCP
//!   stream onto the runtime of the shard that awaits it, so the socket's I/O is driven by the
//!   shard that runs it, not by the one that accepted the connection.
//! - An upgraded connection no longer counts against
//!   [`ServerOptions::max_connections`](crate::ServerOptions::max_connections); it holds its slot
//!   until the [`Connection`] is dropped.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::handshake::{Handshake, HandshakeError};
use crate::Body;
use crate::server::text_response;

/// Counts a listener's open WebSockets against its cap.
#[derive(Debug)]
pub(crate) struct Slots {
    open: AtomicUsize,
    limit: usize,
}

impl Slots {
    pub(crate) fn new(limit: usize) -> Arc<Slots> {
        Arc::new(Slots {
            open: AtomicUsize::new(0),
            limit,
        })
    }

    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.limit).then_some(open + 1)
            })
            .ok()?;
        Some(Slot(Arc::clone(self)))
    }
}

/// One open WebSocket, counted until dropped.
#[derive(Debug)]
struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The right to upgrade one request's connection; in the request's extensions.
#[derive(Debug, Clone)]
pub struct Upgrade {
    on_upgrade: Arc<Mutex<Option<OnUpgrade>>>,
    slots: Arc<Slots>,
}

impl Upgrade {
    pub(crate) fn new(on_upgrade: OnUpgrade, slots: Arc<Slots>) -> Upgrade {
        Upgrade {
            on_upgrade: Arc::new(Mutex::new(Some(on_upgrade))),
            slots,
        }
    }

    /// Reserves a slot and takes the connection for an already checked handshake.
    pub fn accept(
        &self,
        handshake: &Handshake,
        protocol: Option<&str>,
    ) -> Result<Accepted, UpgradeError> {
        let slot = self
            .slots
            .try_acquire()
            .ok_or(UpgradeError::TooManyWebSockets {
                limit: self.slots.limit,
            })?;
        let on_upgrade = self
            .on_upgrade
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or(UpgradeError::AlreadyAccepted)?;
        Ok(Accepted {
            response: handshake.response(protocol),
            connection: PendingConnection { on_upgrade, slot },
        })
    }
}

/// Accepts `request` as a WebSocket: checks the handshake, reserves a slot, takes the connection.
/// Return [`Accepted::response`] from the handler, and await [`Accepted::connection`] elsewhere.
pub fn accept<B>(request: &Request<B>, protocol: Option<&str>) -> Result<Accepted, UpgradeError> {
    let handshake = Handshake::check(request.method(), request.version(), request.headers())?;
    request
        .extensions()
        .get::<Upgrade>()
        .ok_or(UpgradeError::NotUpgradable)?
        .accept(&handshake, protocol)
}

/// An accepted upgrade.
#[derive(Debug)]
pub struct Accepted {
    /// The `101 Switching Protocols` to return.
    pub response: Response<Body>,
    /// The connection, once the response is written.
    pub connection: PendingConnection,
}

/// The connection of an accepted upgrade, not yet handed over.
#[derive(Debug)]
pub struct PendingConnection {
    on_upgrade: OnUpgrade,
    slot: Slot,
}

impl PendingConnection {
    /// Waits until the `101` is written and returns the connection, registered with the current
    /// shard's runtime. Fails if the client went away first.
    pub async fn connect(self) -> Result<Connection, UpgradeError> {
        let upgraded = self
            .on_upgrade
            .await
            .map_err(|error| UpgradeError::Failed(error.to_string()))?;
        let io = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                // Leave the accepting shard's reactor for this one's.
                let stream = parts.io.into_inner().into_std().map_err(UpgradeError::Io)?;
                let stream = TcpStream::from_std(stream).map_err(UpgradeError::Io)?;
                // Bytes the client sent right after its request; copied so hyper's read buffer
                // (kilobytes) is freed.
                let prefix =
                    (!parts.read_buf.is_empty()).then(|| Bytes::copy_from_slice(&parts.read_buf));
                Io::Tcp { stream, prefix }
            }
            Err(upgraded) => Io::Other(Box::new(TokioIo::new(upgraded))),
        };
        Ok(Connection {
            io,
            _slot: self.slot,
        })
    }
}

/// An upgraded connection: run a [`Driver`](super::Driver) over it. Holds a WebSocket slot
/// until dropped.
#[derive(Debug)]
pub struct Connection {
    io: Io,
    _slot: Slot,
}

#[derive(Debug)]
enum Io {
    Tcp {
        stream: TcpStream,
        prefix: Option<Bytes>,
    },
    /// Not a plain TCP stream (never the ingress's; kept so the type stays total).
    Other(Box<TokioIo<hyper::upgrade::Upgraded>>),
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp { stream, prefix } => {
                if let Some(bytes) = prefix {
                    let count = bytes.len().min(buffer.remaining());
                    buffer.put_slice(&bytes[..count]);
                    bytes.advance(count);
                    if bytes.is_empty() {
                        *prefix = None;
                    }
                    return Poll::Ready(Ok(()));
                }
                Pin::new(stream).poll_read(context, buffer)
            }
            Io::Other(io) => Pin::new(io.as_mut()).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Tcp { stream, .. } => Pin::new(stream).poll_write(context, bytes),
            Io::Other(io) => Pin::new(io.as_mut()).poll_write(context, bytes),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        slices: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Tcp { stream, .. } => Pin::new(stream).poll_write_vectored(context, slices),
            Io::Other(io) => Pin::new(io.as_mut()).poll_write_vectored(context, slices),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Tcp { stream, .. } => stream.is_write_vectored(),
            Io::Other(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp { stream, .. } => Pin::new(stream).poll_flush(context),
            Io::Other(io) => Pin::new(io.as_mut()).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Tcp { stream, .. } => Pin::new(stream).poll_shutdown(context),
            Io::Other(io) => Pin::new(io.as_mut()).poll_shutdown(context),
        }
    }
}

/// Why a request could not become a WebSocket. [`UpgradeError::into_response`] is its answer.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The request is not a valid WebSocket handshake.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The request did not come through a connection that can be upgraded (not the ingress, or
    /// not HTTP/1.1).
    #[error("this request's connection cannot be upgraded to a WebSocket")]
    NotUpgradable,
    /// The upgrade was already accepted once.
    #[error("this request's WebSocket upgrade was already accepted")]
    AlreadyAccepted,
    /// The listener's WebSocket cap is reached.
    #[error("Burrow is at its limit of {limit} open WebSockets")]
    TooManyWebSockets {
        /// The cap.
        limit: usize,
    },
    /// The client went away before the upgrade completed.
    #[error("the WebSocket upgrade did not complete: {0}")]
    Failed(String),
    /// The connection could not be moved to this shard.
    #[error("the upgraded connection could not be registered: {0}")]
    Io(io::Error),
}

impl UpgradeError {
    /// The HTTP answer: the handshake's 400/426, 503 with `Retry-After` at the cap, else 500.
    pub fn into_response(self) -> Response<Body> {
        match self {
            UpgradeError::Handshake(error) => error.into_response(),
            UpgradeError::TooManyWebSockets { .. } => {
                let mut response = text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("Service Unavailable: {self}; retry shortly\n"),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            UpgradeError::NotUpgradable => text_response(
                StatusCode::UPGRADE_REQUIRED,
                format!("Upgrade Required: {self}\n"),
            ),
            other => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Internal Server Error: {other}\n"),
            ),
        }
    }
}
