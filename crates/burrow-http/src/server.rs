//! The HTTP/1.1 server that runs on the shards: one accept thread per listener hands each
//! connection to a shard, round-robin, and the shard serves it with hyper and its own
//! [`Handler`]. The ingress and the admin API both run on it.
//!
//! # Protocol
//! - Accept: a thread named `burrow-<name>-accept` owns the listener. It counts open connections;
//!   at [`ServerOptions::max_connections`] it answers a new connection with 503 and closes it
//!   instead of handing it on, because a process here has at most 20,000 file descriptors
//!   (DESIGN.md, "Resources") and object databases need most of them. At most
//!   [`MAX_PENDING_REJECTIONS`] such answers are in flight; beyond that, connections are closed
//!   without one.
//! - Shards: each shard runs one server task per listener. It builds the shard's handler once
//!   ([`MakeHandler::make`]) and spawns a local task per connection. The queue from the accept
//!   thread to each shard is bounded ([`CONNECTION_QUEUE`]); when it is full the connection gets
//!   the same 503.
//! - Connections: HTTP/1.1 with keep-alive; request and response bodies stream through
//!   [`Body`]. A request body is limited to [`ServerOptions::max_request_body_bytes`]: a
//!   `Content-Length` over it gets 413 before the handler runs; a chunked body that passes it
//!   fails inside the handler (with [`crate::BodyError::TooLarge`]) and the response is replaced
//!   by the same 413. The request head must arrive within
//!   [`ServerOptions::header_read_timeout`], so idle half-open clients cannot pin descriptors.
//!   A client that half-closes after sending its request still gets the response.
//! - Upgrades: a request that says `Upgrade: websocket` carries a
//!   [`websocket::Upgrade`](crate::websocket::Upgrade) in its extensions, which a handler on any
//!   shard may accept (see [`crate::websocket`]). Open WebSockets are capped separately, by
//!   [`ServerOptions::max_websockets`]; an upgraded connection stops counting against
//!   `max_connections` once hyper lets go of it, so descriptors stay bounded by the sum of the two.
//! - Shutdown ([`ServerHandle::shutdown`]): the listener closes at once, every connection
//!   finishes its in-flight request and then closes (keep-alive ends), and after the grace period
//!   whatever is still open is dropped.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

use burrow_runtime::shard::Shards;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::body::{Body, LimitedBody};
use crate::websocket::{self, Slots};

/// A boxed future that need not be `Send`: what shard-local code returns.
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Serves requests on one shard. It lives on that shard only, so it may hold `Rc`s and guests.
pub trait Handler {
    /// Answers one request. Errors are responses too: the handler decides their status.
    fn call(&self, request: Request<Body>) -> LocalBoxFuture<'static, Response<Body>>;
}

/// Builds each shard's [`Handler`], once per shard per listener.
pub trait MakeHandler: Send + Sync {
    /// The handler for shard `shard`; called on that shard's thread.
    fn make(&self, shard: usize) -> Rc<dyn Handler>;
}

/// A [`MakeHandler`] from an async function, cloned onto every shard. The future it returns need
/// not be `Send`.
pub fn handler_fn<F, Fut>(function: F) -> Arc<dyn MakeHandler>
where
    F: Fn(Request<Body>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + 'static,
{
    Arc::new(FnHandler(function))
}

struct FnHandler<F>(F);

impl<F, Fut> MakeHandler for FnHandler<F>
where
    F: Fn(Request<Body>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + 'static,
{
    fn make(&self, _shard: usize) -> Rc<dyn Handler> {
        Rc::new(FnHandler(self.0.clone()))
    }
}

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(Request<Body>) -> Fut,
    Fut: Future<Output = Response<Body>> + 'static,
{
    fn call(&self, request: Request<Body>) -> LocalBoxFuture<'static, Response<Body>> {
        Box::pin((self.0)(request))
    }
}

/// The client's address, in every request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Limits of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// A short name for logs and the accept thread (`ingress`, `admin`).
    pub name: &'static str,
    /// Open connections at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Request body bytes; more are answered 413.
    pub max_request_body_bytes: u64,
    /// How long a client may take to send a request head.
    pub header_read_timeout: Duration,
    /// Open WebSockets at once; more upgrades are answered 503.
    pub max_websockets: usize,
}

impl ServerOptions {
    /// Cloudflare's request body limit on the Free and Pro plans: 100 MB.
    pub const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 100 * 1024 * 1024;
    /// The ingress's default connection cap: a fifth of the 20,000 descriptors a process may
    /// hold here, leaving the rest to object databases (one each, `max_open_objects` = 10,240
    /// by default), the journal and the admin listener.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 4_096;
    /// The ingress's default WebSocket cap: what the 20,000 descriptors leave after HTTP
    /// connections (4,096), object databases (10,240) and a margin for the journal, listeners and
    /// the process's own files. Raise it together with lowering those when sockets matter more.
    pub const DEFAULT_MAX_WEBSOCKETS: usize = 3_000;

    /// The Worker ingress's defaults.
    pub fn ingress() -> Self {
        ServerOptions {
            name: "ingress",
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_request_body_bytes: Self::DEFAULT_MAX_REQUEST_BODY_BYTES,
            header_read_timeout: Duration::from_secs(30),
            max_websockets: Self::DEFAULT_MAX_WEBSOCKETS,
        }
    }

    /// The admin listener's defaults: few clients, same body limit (bulk KV writes are large).
    pub fn admin() -> Self {
        ServerOptions {
            name: "admin",
            max_connections: 256,
            max_websockets: 0,
            ..Self::ingress()
        }
    }
}

/// Connections answered 503 at once, at most; see the module docs.
pub const MAX_PENDING_REJECTIONS: usize = 64;
/// Accepted connections waiting for their shard to pick them up, per shard.
pub const CONNECTION_QUEUE: usize = 1_024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Finish in-flight requests, then close.
    Draining,
    /// Close now.
    Closing,
}

/// Counts one open connection for as long as it lives.
struct ConnectionGuard {
    connections: Arc<watch::Sender<usize>>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.connections.send_modify(|count| *count -= 1);
    }
}

struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    guard: ConnectionGuard,
}

/// Live numbers of one listener; cheap to clone and to read from any thread.
#[derive(Debug, Clone)]
pub struct ServerStats {
    connections: watch::Receiver<usize>,
    websockets: Arc<Slots>,
}

impl ServerStats {
    /// Connections open now.
    pub fn active_connections(&self) -> usize {
        *self.connections.borrow()
    }

    /// WebSockets accepted and not yet closed (not counted in [`Self::active_connections`]).
    pub fn active_websockets(&self) -> usize {
        self.websockets.open()
    }
}

/// What [`ServerHandle::shutdown`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections still open when the grace period ended, closed with requests in flight.
    pub abandoned_connections: usize,
}

/// A running listener. Call [`ServerHandle::shutdown`]; dropping the handle closes the listener
/// and every connection at once.
#[derive(Debug)]
pub struct ServerHandle {
    name: &'static str,
    local_addr: SocketAddr,
    phase: watch::Sender<Phase>,
    connections: Arc<watch::Sender<usize>>,
    websockets: Arc<Slots>,
    accept_done: Option<oneshot::Receiver<()>>,
    accept_thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Live numbers, for metrics.
    pub fn stats(&self) -> ServerStats {
        ServerStats {
            connections: self.connections.subscribe(),
            websockets: Arc::clone(&self.websockets),
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to `grace`, then closes every
    /// connection that is left.
    pub async fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        self.phase.send_replace(Phase::Draining);
        if let Some(done) = self.accept_done.take() {
            // The accept loop watches the phase and ends at its next turn.
            let _ = done.await;
        }
        if let Some(thread) = self.accept_thread.take() {
            // It has already returned (it signalled `done` last), so this does not block.
            let _ = thread.join();
        }
        let mut connections = self.connections.subscribe();
        let drained = tokio::time::timeout(grace, connections.wait_for(|count| *count == 0))
            .await
            .is_ok();
        if drained {
            return ShutdownReport {
                abandoned_connections: 0,
            };
        }
        let abandoned = *self.connections.borrow();
        tracing::warn!(
            server = self.name,
            connections = abandoned,
            "closing connections still busy after the shutdown grace period"
        );
        self.phase.send_replace(Phase::Closing);
        // Each connection task sees the phase at its next poll; a shard wedged in a guest
        // cannot hold shutdown forever.
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            connections.wait_for(|count| *count == 0),
        )
        .await;
        ShutdownReport {
            abandoned_connections: abandoned,
        }
    }
}

/// Serves `listener` on `shards`: see the module docs.
pub fn serve(
    listener: std::net::TcpListener,
    shards: &Shards,
    make: Arc<dyn MakeHandler>,
    options: ServerOptions,
) -> std::io::Result<ServerHandle> {
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    let name = options.name;
    let options = Arc::new(options);
    let (phase, phase_receiver) = watch::channel(Phase::Running);
    let connections = Arc::new(watch::channel(0_usize).0);
    let websockets = Slots::new(options.max_websockets);

    let mut queues = Vec::with_capacity(shards.count());
    for shard in 0..shards.count() {
        let (sender, receiver) = mpsc::channel(CONNECTION_QUEUE);
        let make = Arc::clone(&make);
        let options = Arc::clone(&options);
        let phase = phase_receiver.clone();
        let websockets = Arc::clone(&websockets);
        shards
            .spawn(shard, move || {
                shard_server(shard, receiver, make, options, phase, websockets)
            })
            .map_err(std::io::Error::other)?;
        queues.push(sender);
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (accept_done_sender, accept_done) = oneshot::channel();
    let accept = AcceptLoop {
        options: Arc::clone(&options),
        queues,
        phase: phase_receiver,
        connections: Arc::clone(&connections),
        rejections: Arc::new(Semaphore::new(MAX_PENDING_REJECTIONS)),
    };
    let accept_thread = std::thread::Builder::new()
        .name(format!("burrow-{name}-accept"))
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => accept.run(listener).await,
                    Err(error) => {
                        tracing::error!(server = name, %error, "cannot register the listener");
                    }
                }
            });
            // Pending rejections are dropped with the runtime: they are best-effort answers.
            drop(runtime);
            let _ = accept_done_sender.send(());
        })?;
    Ok(ServerHandle {
        name,
        local_addr,
        phase,
        connections,
        websockets,
        accept_done: Some(accept_done),
        accept_thread: Some(accept_thread),
    })
}

struct AcceptLoop {
    options: Arc<ServerOptions>,
    queues: Vec<mpsc::Sender<Accepted>>,
    phase: watch::Receiver<Phase>,
    connections: Arc<watch::Sender<usize>>,
    rejections: Arc<Semaphore>,
}

impl AcceptLoop {
    async fn run(mut self, listener: tokio::net::TcpListener) {
        let name = self.options.name;
        let mut next_shard = 0;
        loop {
            tokio::select! {
                changed = self.phase.changed() => {
                    if changed.is_err() || *self.phase.borrow() != Phase::Running {
                        break;
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        self.hand_over(stream, peer, next_shard);
                        next_shard = (next_shard + 1) % self.queues.len();
                    }
                    Err(error) => {
                        // Out of descriptors or memory: back off instead of spinning; the
                        // connection stays in the kernel's backlog meanwhile.
                        tracing::warn!(server = name, %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        tracing::debug!(server = name, "listener closed");
    }

    fn hand_over(&self, stream: tokio::net::TcpStream, peer: SocketAddr, shard: usize) {
        let open = *self.connections.borrow();
        if open >= self.options.max_connections {
            tracing::debug!(server = self.options.name, %peer, open, "connection cap reached");
            self.reject(stream);
            return;
        }
        // Only this thread increments, so the check above and this increment cannot race.
        self.connections.send_modify(|count| *count += 1);
        let guard = ConnectionGuard {
            connections: Arc::clone(&self.connections),
        };
        let _ = stream.set_nodelay(true);
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(server = self.options.name, %error, "cannot detach a connection");
                return;
            }
        };
        let accepted = Accepted {
            stream,
            peer,
            guard,
        };
        if let Err(error) = self.queues[shard].try_send(accepted) {
            let accepted = match error {
                mpsc::error::TrySendError::Full(accepted)
                | mpsc::error::TrySendError::Closed(accepted) => accepted,
            };
            tracing::debug!(
                server = self.options.name,
                shard,
                "shard connection queue full"
            );
            drop(accepted.guard);
            if let Ok(stream) = tokio::net::TcpStream::from_std(accepted.stream) {
                self.reject(stream);
            }
        }
    }

    /// Answers 503 and closes, without ever holding more than [`MAX_PENDING_REJECTIONS`].
    fn reject(&self, mut stream: tokio::net::TcpStream) {
        let Ok(permit) = Arc::clone(&self.rejections).try_acquire_owned() else {
            return;
        };
        let response = overload_response(self.options.max_connections);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                // Read the request head first: closing a socket with unread input resets it,
                // and the client might then never see the answer.
                let mut buffer = [0_u8; 4_096];
                let mut seen = 0;
                while seen < 16 * 1_024 {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => {
                            seen += read;
                            if buffer[..read]
                                .windows(4)
                                .any(|window| window == b"\r\n\r\n")
                            {
                                break;
                            }
                        }
                    }
                }
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            })
            .await;
        });
    }
}

fn overload_response(max_connections: usize) -> String {
    let body = format!(
        "Service Unavailable: Burrow is at its limit of {max_connections} open connections; \
         retry shortly\n"
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// One listener's server on one shard: builds the handler, then serves what the accept loop
/// sends until it stops.
async fn shard_server(
    shard: usize,
    mut receiver: mpsc::Receiver<Accepted>,
    make: Arc<dyn MakeHandler>,
    options: Arc<ServerOptions>,
    phase: watch::Receiver<Phase>,
    websockets: Arc<Slots>,
) {
    let handler = make.make(shard);
    while let Some(accepted) = receiver.recv().await {
        tokio::task::spawn_local(serve_connection(
            accepted,
            Rc::clone(&handler),
            Arc::clone(&options),
            phase.clone(),
            Arc::clone(&websockets),
        ));
    }
}

async fn serve_connection(
    accepted: Accepted,
    handler: Rc<dyn Handler>,
    options: Arc<ServerOptions>,
    mut phase: watch::Receiver<Phase>,
    websockets: Arc<Slots>,
) {
    let Accepted {
        stream,
        peer,
        guard,
    } = accepted;
    let _guard = guard;
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::debug!(server = options.name, %error, "cannot register a connection");
            return;
        }
    };
    let service = ConnectionService {
        handler,
        peer,
        max_request_body_bytes: options.max_request_body_bytes,
        websockets,
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true)
        // A client may shut down its sending half once its request is out (`nc -N`, HTTP/1.0
        // tools); it still gets its response. Without this hyper drops the connection on EOF.
        .half_close(true);
    // With upgrades, the connection future ends once hyper hands an upgraded connection over.
    let mut connection = pin!(
        builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
    );
    if *phase.borrow_and_update() != Phase::Running {
        // Accepted just before shutdown: answer what is in flight, keep nothing alive.
        connection.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(server = options.name, %peer, %error, "connection ended");
                }
                return;
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    return;
                }
                match *phase.borrow_and_update() {
                    Phase::Running => {}
                    Phase::Draining => connection.as_mut().graceful_shutdown(),
                    Phase::Closing => return,
                }
            }
        }
    }
}

struct ConnectionService {
    handler: Rc<dyn Handler>,
    peer: SocketAddr,
    max_request_body_bytes: u64,
    websockets: Arc<Slots>,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = LocalBoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let limit = self.max_request_body_bytes;
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit) {
            return Box::pin(async move { Ok(payload_too_large(limit)) });
        }
        let exceeded = Arc::new(AtomicBool::new(false));
        let upgrade = websocket::is_upgrade_request(request.headers()).then(|| {
            websocket::Upgrade::new(
                hyper::upgrade::on(&mut request),
                Arc::clone(&self.websockets),
            )
        });
        let (mut parts, incoming) = request.into_parts();
        parts.extensions.insert(PeerAddr(self.peer));
        if let Some(upgrade) = upgrade {
            parts.extensions.insert(upgrade);
        }
        let body = Body::new(LimitedBody::new(incoming, limit, Arc::clone(&exceeded)));
        let response = self.handler.call(Request::from_parts(parts, body));
        Box::pin(async move {
            let response = match catch_unwind(response).await {
                Ok(response) => response,
                Err(message) => {
                    tracing::error!(panic = message, "a request handler panicked");
                    text_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal Server Error: the request handler failed unexpectedly\n",
                    )
                }
            };
            if exceeded.load(Ordering::Relaxed) {
                return Ok(payload_too_large(limit));
            }
            Ok(response)
        })
    }
}

/// Runs `future`, turning a panic inside it into `Err(panic message)`: one bad request must not
/// take down a connection task (and with it every request pipelined behind it).
pub(crate) async fn catch_unwind<T>(future: impl Future<Output = T>) -> Result<T, String> {
    let mut future = pin!(future);
    std::future::poll_fn(move |context| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(context))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    })
    .await
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// 413 naming the limit. The connection closes after it: the rest of the body is not read.
pub fn payload_too_large(limit: u64) -> Response<Body> {
    let mut response = text_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "Payload Too Large: the request body exceeds Burrow's limit of {limit} bytes ({})\n",
            describe_bytes(limit)
        ),
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A plain-text response.
pub fn text_response(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Body::from(text.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn describe_bytes(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}
