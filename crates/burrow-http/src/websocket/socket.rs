//! The driver of one upgraded connection: reads frames and hands complete messages to an
//! [`Inbound`], writes what [`Sender`]s queue, answers pings and the auto-response pair by itself,
//! and runs the closing handshake.
//!
//! # Protocol
//! - Inbound: bytes are read into a buffer on the poll's stack and fed to the reader, which keeps
//!   no buffer of its own between messages; an idle socket holds no read buffer at all. Each
//!   message goes to [`Inbound::event`]. If that returns [`Flow::Pause`], the driver reads nothing
//!   more until the returned future finishes (the application's backpressure), while it keeps
//!   writing.
//! - Outbound: [`Sender::send`] encodes a frame header and queues it with the payload (shared, not
//!   copied: a broadcast queues one buffer on many sockets). Queued bytes are capped per socket by
//!   [`Config::max_send_buffer_bytes`]. A send that would pass the cap while bytes are still queued
//!   fails the socket: the queue is dropped (except the frame being written, so the stream stays
//!   well-formed), a close frame with 1009 and a reason is queued, and the application gets
//!   [`Event::Closed`] with [`Error::SendBufferFull`]. So the queue never holds more than the cap,
//!   or one message alone when the queue was empty. The driver writes up to 32 queued frames per
//!   vectored write, so a burst to one socket is not one system call per frame.
//! - Pings are answered with pongs carrying their payload; pongs are ignored. A text message
//!   equal to the [`AutoResponder`]'s request is answered with its response, and the time is
//!   recorded ([`Sender::last_auto_response_ms`]); the application never sees it.
//! - Closing: a close frame from the client is answered with the same code (or none), and the
//!   application gets [`Event::Closed`] with `was_clean`. [`Sender::close`] queues a close frame
//!   after the queued data and waits for the client's, for at most [`Config::close_timeout`]. A
//!   protocol error, invalid UTF-8 or an oversized message fail the socket with 1002, 1007 or 1009.
//!   After the last close frame is written the server shuts down its side and, unless the client's
//!   close frame already came, reads until it comes or the stream ends (so unread input does not
//!   turn the close into a reset), within the timeout.
//! - Exactly one [`Event::Closed`] is delivered, last, unless the driver future is dropped.

use std::collections::VecDeque;
use std::future::Future;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use burrow_runtime::clock::{Clock, SystemClock};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Error;
use super::frame::{OpCode, ServerHeader};
use super::message::{CloseFrame, Message, Text, code, encode_close, is_sendable_code};
use super::reader::{Item, Reader};
use crate::LocalBoxFuture;
pub use burrow_runtime::websocket::{AutoResponse, AutoResponseError, MAX_AUTO_RESPONSE_BYTES};

/// Limits and timing of sockets; share one `Arc<Config>` between many.
#[derive(Clone)]
pub struct Config {
    /// The longest message a client may send, all fragments together; longer ones close the
    /// socket with 1009. Cloudflare's limit is 32 MiB.
    pub max_message_bytes: usize,
    /// Bytes queued for a client that has not read them yet; see the module docs.
    pub max_send_buffer_bytes: usize,
    /// How long a closing handshake may take.
    pub close_timeout: Duration,
    /// Where auto-response timestamps come from.
    pub clock: Arc<dyn Clock>,
}

impl Config {
    /// Cloudflare's message limit: 32 MiB.
    pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
    /// 4 MiB: room for bursts of broadcasts to a client that reads at a normal pace.
    pub const DEFAULT_MAX_SEND_BUFFER_BYTES: usize = 4 * 1024 * 1024;
    /// Five seconds for the client to answer a close frame.
    pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message_bytes: Self::DEFAULT_MAX_MESSAGE_BYTES,
            max_send_buffer_bytes: Self::DEFAULT_MAX_SEND_BUFFER_BYTES,
            close_timeout: Self::DEFAULT_CLOSE_TIMEOUT,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Config")
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_send_buffer_bytes", &self.max_send_buffer_bytes)
            .field("close_timeout", &self.close_timeout)
            .finish_non_exhaustive()
    }
}

/// What a socket tells the application.
#[derive(Debug)]
pub enum Event {
    /// A complete message.
    Message(Message),
    /// The socket is closed; nothing follows.
    Closed(Closed),
}

/// How a socket ended.
#[derive(Debug)]
pub struct Closed {
    /// The client's close code; 1005 if its close frame had none; 1006 if the connection ended
    /// without one; the code the server sent if it failed the socket.
    pub code: u16,
    /// The reason that went with the code.
    pub reason: String,
    /// Whether the closing handshake completed.
    pub was_clean: bool,
    /// Why the server failed the socket or the connection broke, if it did.
    pub error: Option<Error>,
}

/// What the driver does after handing over an event.
pub enum Flow {
    /// Go on reading.
    Continue,
    /// Read nothing more until this finishes; writing goes on.
    Pause(LocalBoxFuture<'static, ()>),
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Flow::Continue => "Continue",
            Flow::Pause(_) => "Pause",
        })
    }
}

/// Receives a socket's events, on the thread that runs the driver.
pub trait Inbound {
    /// One event; see [`Flow`].
    fn event(&mut self, event: Event) -> Flow;
}

impl<F: FnMut(Event) -> Flow> Inbound for F {
    fn event(&mut self, event: Event) -> Flow {
        self(event)
    }
}

/// Events into a bounded channel: when it is full the driver stops reading until there is room.
impl Inbound for tokio::sync::mpsc::Sender<Event> {
    fn event(&mut self, event: Event) -> Flow {
        match self.try_send(event) {
            Ok(()) | Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Flow::Continue,
            Err(tokio::sync::mpsc::error::TrySendError::Full(event)) => {
                let sender = self.clone();
                Flow::Pause(Box::pin(async move {
                    let _ = sender.send(event).await;
                }))
            }
        }
    }
}

/// The auto-response pair of a group of sockets (an object's): set or clear it once and every
/// socket driven with this responder follows. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct AutoResponder {
    pair: Arc<Mutex<Option<Arc<AutoResponse>>>>,
}

impl AutoResponder {
    /// A responder with no pair.
    pub fn new() -> AutoResponder {
        AutoResponder::default()
    }

    /// Sets (or with `None` clears) the pair.
    pub fn set(&self, pair: Option<AutoResponse>) {
        *self.pair.lock().unwrap_or_else(PoisonError::into_inner) = pair.map(Arc::new);
    }

    /// Sets (or clears) a pair shared with other responders.
    pub fn set_shared(&self, pair: Option<Arc<AutoResponse>>) {
        *self.pair.lock().unwrap_or_else(PoisonError::into_inner) = pair;
    }

    /// The pair now.
    pub fn get(&self) -> Option<Arc<AutoResponse>> {
        self.pair
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Why a send or close was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The socket is closing or closed.
    #[error("the WebSocket is closing or closed")]
    Closed,
    /// This send would have passed the socket's send buffer cap; the socket is being closed
    /// with 1009.
    #[error(
        "the WebSocket's send buffer is full ({limit} bytes): the client is not reading; it is being closed"
    )]
    BufferFull {
        /// The cap, in bytes.
        limit: usize,
    },
    /// A close code an endpoint may not send.
    #[error("invalid WebSocket close code {0}: use 1000 or 3000-4999")]
    InvalidCloseCode(u16),
}

/// Queues messages and the close of one socket. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct Sender {
    shared: Arc<Mutex<Shared>>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shared = self.lock();
        formatter
            .debug_struct("Sender")
            .field("state", &shared.state)
            .field("queued_bytes", &shared.queued_bytes)
            .finish_non_exhaustive()
    }
}

impl Sender {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message. It never waits: see the module docs for the cap.
    pub fn send(&self, message: impl Into<Message>) -> Result<(), SendError> {
        let (opcode, payload) = match message.into() {
            Message::Text(text) => (OpCode::Text, text.as_bytes().clone()),
            Message::Binary(bytes) => (OpCode::Binary, bytes),
        };
        let mut shared = self.lock();
        let result = shared.push(opcode, payload);
        let waker = shared.waker_to_wake(&result);
        drop(shared);
        if let Some(waker) = waker {
            waker.wake();
        }
        result
    }

    /// Starts the closing handshake after the queued messages. `code` must be one an endpoint may
    /// send (1000–1003, 1007–1014, 3000–4999); `reason` is cut to 123 bytes.
    pub fn close(&self, code: u16, reason: &str) -> Result<(), SendError> {
        if !is_sendable_code(code) {
            return Err(SendError::InvalidCloseCode(code));
        }
        let mut shared = self.lock();
        if shared.state != State::Open {
            return Err(SendError::Closed);
        }
        shared.push_close(code, reason);
        shared.state = State::CloseQueued;
        let waker = shared.waker.take();
        drop(shared);
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Whether messages can still be sent.
    pub fn is_open(&self) -> bool {
        self.lock().state == State::Open
    }

    /// Bytes queued and not yet written to the connection.
    pub fn queued_bytes(&self) -> usize {
        self.lock().queued_bytes
    }

    /// The most bytes ever queued at once.
    pub fn peak_queued_bytes(&self) -> usize {
        self.lock().peak_queued_bytes
    }

    /// When the driver last answered the auto-response request, in epoch milliseconds.
    pub fn last_auto_response_ms(&self) -> Option<i64> {
        self.lock().last_auto_response_ms
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// [`Sender::close`] queued a close frame; the driver has not seen it yet.
    CloseQueued,
    /// A send passed the cap; the driver has not seen it yet.
    Overflowed,
    /// The driver took over the close: sends are refused.
    Closing,
}

/// A queued frame: its header and its (shared) payload.
struct Outgoing {
    header: ServerHeader,
    payload: Bytes,
}

impl Outgoing {
    fn len(&self) -> usize {
        self.header.as_bytes().len() + self.payload.len()
    }
}

/// What senders and the driver share.
struct Shared {
    queue: VecDeque<Outgoing>,
    queued_bytes: usize,
    peak_queued_bytes: usize,
    /// Bytes of the front frame already written.
    front_written: usize,
    state: State,
    /// The driver's, to wake it when there is something to write.
    waker: Option<Waker>,
    last_auto_response_ms: Option<i64>,
    max_send_buffer_bytes: usize,
    /// A close frame is queued or written: there is only ever one.
    close_queued: bool,
}

impl Shared {
    fn push(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), SendError> {
        if self.state != State::Open {
            return Err(SendError::Closed);
        }
        let frame = Outgoing {
            header: ServerHeader::new(opcode, payload.len()),
            payload,
        };
        if self.queued_bytes > 0 && self.queued_bytes + frame.len() > self.max_send_buffer_bytes {
            self.state = State::Overflowed;
            return Err(SendError::BufferFull {
                limit: self.max_send_buffer_bytes,
            });
        }
        self.enqueue(frame);
        Ok(())
    }

    /// Queues the close frame, unless one already is. It bypasses the cap: there is only one.
    fn push_close(&mut self, code: u16, reason: &str) {
        if self.close_queued {
            return;
        }
        self.close_queued = true;
        let payload = if code == code::NO_STATUS {
            Bytes::new()
        } else {
            encode_close(code, reason)
        };
        self.enqueue(Outgoing {
            header: ServerHeader::new(OpCode::Close, payload.len()),
            payload,
        });
    }

    fn enqueue(&mut self, frame: Outgoing) {
        self.queued_bytes += frame.len();
        self.peak_queued_bytes = self.peak_queued_bytes.max(self.queued_bytes);
        self.queue.push_back(frame);
    }

    /// The driver's waker, if this push needs it: the queue just became non-empty, or the state
    /// changed.
    fn waker_to_wake(&mut self, result: &Result<(), SendError>) -> Option<Waker> {
        let wake = match result {
            Ok(()) => self.queue.len() == 1,
            Err(SendError::BufferFull { .. }) => true,
            Err(_) => false,
        };
        if wake { self.waker.take() } else { None }
    }

    /// Drops every queued frame except one partly written (cutting it would corrupt the stream)
    /// and the close frame.
    fn drop_unsent(&mut self) {
        let mut index = 0;
        let front_written = self.front_written;
        let mut dropped = 0;
        self.queue.retain(|frame| {
            let keep = (index == 0 && front_written > 0) || frame.header.is_close();
            index += 1;
            if !keep {
                dropped += frame.len();
            }
            keep
        });
        self.queued_bytes -= dropped;
        self.release_queue_memory();
    }

    /// An empty queue gives its buffer back: idle sockets hold none.
    fn release_queue_memory(&mut self) {
        if self.queue.is_empty() && self.queue.capacity() > 0 {
            self.queue = VecDeque::new();
        }
    }
}

/// Drives one socket: build it with [`Driver::new`], hand the [`Sender`] to whoever sends, and
/// run it with [`Driver::run`] on the thread that owns the connection.
pub struct Driver {
    shared: Arc<Mutex<Shared>>,
    config: Arc<Config>,
    auto_responder: Option<AutoResponder>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Driver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// A socket's driver and its sender. Messages sent before [`Driver::run`] wait in the queue.
    pub fn new(config: Arc<Config>) -> (Sender, Driver) {
        let shared = Arc::new(Mutex::new(Shared {
            queue: VecDeque::new(),
            queued_bytes: 0,
            peak_queued_bytes: 0,
            front_written: 0,
            state: State::Open,
            waker: None,
            last_auto_response_ms: None,
            max_send_buffer_bytes: config.max_send_buffer_bytes,
            close_queued: false,
        }));
        (
            Sender {
                shared: Arc::clone(&shared),
            },
            Driver {
                shared,
                config,
                auto_responder: None,
            },
        )
    }

    /// Answers the responder's pair without involving the application.
    pub fn with_auto_responder(mut self, responder: AutoResponder) -> Driver {
        self.auto_responder = Some(responder);
        self
    }

    /// Runs the socket over `io` until it is closed, handing events to `inbound`; the last one
    /// is [`Event::Closed`].
    pub async fn run<Io, In>(self, io: Io, inbound: In)
    where
        Io: AsyncRead + AsyncWrite + Unpin,
        In: Inbound,
    {
        let mut running = Running {
            reader: Reader::new(self.config.max_message_bytes),
            io,
            inbound,
            shared: self.shared,
            config: self.config,
            auto_responder: self.auto_responder,
            unread: Vec::new(),
            paused: None,
            phase: Phase::Open,
            deadline: None,
            closed_delivered: false,
            close_received: false,
        };
        std::future::poll_fn(|context| running.poll(context)).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading and writing.
    Open,
    /// Our close frame is queued or sent; reading until the client's.
    CloseSent,
    /// Writing what is queued (ending with a close frame), then shutting down.
    Flushing,
    /// Our side is shut down; reading until the client closes.
    Draining,
    Done,
}

impl<Io, In> Drop for Running<Io, In> {
    /// A driver dropped mid-way (its shard shutting down) leaves no sender thinking it is open.
    fn drop(&mut self) {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        shared.queue = VecDeque::new();
        shared.queued_bytes = 0;
        shared.state = State::Closing;
        shared.waker = None;
    }
}

/// Bytes read per read call: on the poll's stack, never kept.
const READ_CHUNK_BYTES: usize = 16 * 1024;
/// Frames gathered into one vectored write.
const MAX_FRAMES_PER_WRITE: usize = 32;
/// Read or write rounds per poll before yielding to the shard's other tasks.
const MAX_ROUNDS_PER_POLL: usize = 32;

struct Running<Io, In> {
    io: Io,
    inbound: In,
    shared: Arc<Mutex<Shared>>,
    config: Arc<Config>,
    auto_responder: Option<AutoResponder>,
    reader: Reader,
    /// Bytes read but not yet fed because the application paused us mid-read.
    unread: Vec<u8>,
    paused: Option<LocalBoxFuture<'static, ()>>,
    phase: Phase,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    closed_delivered: bool,
    /// The client's close frame arrived.
    close_received: bool,
}

impl<Io, In> Running<Io, In>
where
    Io: AsyncRead + AsyncWrite + Unpin,
    In: Inbound,
{
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn poll(&mut self, context: &mut Context<'_>) -> Poll<()> {
        for _ in 0..MAX_ROUNDS_PER_POLL {
            self.take_state_changes();
            if self.phase != Phase::Done && self.deadline_passed(context) {
                self.on_deadline();
            }
            let mut progress = false;
            match self.phase {
                Phase::Open | Phase::CloseSent => {
                    progress |= self.write(context);
                    progress |= self.read(context);
                }
                Phase::Flushing => {
                    progress |= self.write(context);
                    progress |= self.poll_paused(context);
                    if self.phase == Phase::Flushing && self.lock().queue.is_empty() {
                        match Pin::new(&mut self.io).poll_shutdown(context) {
                            Poll::Ready(_) => {
                                // After the client's close frame nothing more comes: done.
                                // Otherwise wait for it, so unread input does not turn our
                                // close into a reset.
                                self.phase = if self.close_received {
                                    Phase::Done
                                } else {
                                    Phase::Draining
                                };
                                progress = true;
                            }
                            Poll::Pending => {}
                        }
                    }
                }
                Phase::Draining => {
                    progress |= self.poll_paused(context);
                    progress |= self.drain(context);
                }
                Phase::Done => {
                    if self.poll_paused(context) || self.paused.is_none() {
                        self.release();
                        return Poll::Ready(());
                    }
                    return Poll::Pending;
                }
            }
            if !progress {
                return Poll::Pending;
            }
        }
        // Still busy: let the shard's other tasks run, then carry on.
        context.waker().wake_by_ref();
        Poll::Pending
    }

    /// Refuses further sends and frees the queue.
    fn release(&self) {
        let mut shared = self.lock();
        shared.queue = VecDeque::new();
        shared.queued_bytes = 0;
        shared.front_written = 0;
        shared.state = State::Closing;
        shared.waker = None;
    }

    /// Reacts to what senders did since the last poll.
    fn take_state_changes(&mut self) {
        let state = self.lock().state;
        match state {
            State::CloseQueued if self.phase == Phase::Open => {
                self.lock().state = State::Closing;
                self.phase = Phase::CloseSent;
                self.start_deadline();
            }
            State::Overflowed => {
                let limit = self.config.max_send_buffer_bytes;
                self.fail(Error::SendBufferFull { limit });
            }
            _ => {}
        }
    }

    fn register_waker(&self, context: &Context<'_>) {
        let mut shared = self.lock();
        if !shared
            .waker
            .as_ref()
            .is_some_and(|waker| waker.will_wake(context.waker()))
        {
            shared.waker = Some(context.waker().clone());
        }
    }

    fn start_deadline(&mut self) {
        if self.deadline.is_none() {
            self.deadline = Some(Box::pin(tokio::time::sleep(self.config.close_timeout)));
        }
    }

    fn deadline_passed(&mut self, context: &mut Context<'_>) -> bool {
        self.deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(context).is_ready())
    }

    fn on_deadline(&mut self) {
        if matches!(self.phase, Phase::Open | Phase::CloseSent) {
            let timeout_ms = self.config.close_timeout.as_millis() as u64;
            self.deliver_closed(Closed {
                code: code::ABNORMAL,
                reason: String::new(),
                was_clean: false,
                error: Some(Error::CloseTimeout { timeout_ms }),
            });
        }
        self.phase = Phase::Done;
    }

    /// Writes queued frames until the queue is empty or the connection pushes back. Returns
    /// whether anything was written.
    fn write(&mut self, context: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
            let written = shared.front_written;
            if shared.queue.is_empty() {
                shared.release_queue_memory();
                drop(shared);
                self.register_waker(context);
                // A send may have come between the check and the registration.
                if !self.lock().queue.is_empty() {
                    continue;
                }
                if progress {
                    let _ = Pin::new(&mut self.io).poll_flush(context);
                }
                return progress;
            }
            // Up to MAX_FRAMES_PER_WRITE queued frames in one writev: a burst of broadcasts to a
            // socket costs one system call, not one per frame.
            let mut slices = [IoSlice::new(&[]); 2 * MAX_FRAMES_PER_WRITE];
            let mut used = 0;
            for (index, frame) in shared.queue.iter().take(MAX_FRAMES_PER_WRITE).enumerate() {
                let header = frame.header.as_bytes();
                let skip = if index == 0 { written } else { 0 };
                if skip < header.len() {
                    slices[used] = IoSlice::new(&header[skip..]);
                    slices[used + 1] = IoSlice::new(&frame.payload);
                    used += 2;
                } else {
                    slices[used] = IoSlice::new(&frame.payload[skip - header.len()..]);
                    used += 1;
                }
            }
            let result = Pin::new(&mut self.io).poll_write_vectored(context, &slices[..used]);
            match result {
                Poll::Pending => {
                    drop(shared);
                    self.register_waker(context);
                    return progress;
                }
                Poll::Ready(Ok(0)) => {
                    drop(shared);
                    self.abort(Some(std::io::ErrorKind::WriteZero.into()));
                    return true;
                }
                Poll::Ready(Ok(count)) => {
                    progress = true;
                    let mut left = count;
                    while left > 0 {
                        let Some(front) = shared.queue.front() else {
                            break;
                        };
                        let total = front.len();
                        let remaining = total - shared.front_written;
                        if left < remaining {
                            shared.front_written += left;
                            break;
                        }
                        left -= remaining;
                        shared.front_written = 0;
                        shared.queued_bytes -= total;
                        shared.queue.pop_front();
                    }
                }
                Poll::Ready(Err(error)) => {
                    drop(shared);
                    self.abort(Some(error));
                    return true;
                }
            }
        }
    }

    /// Polls the application's pause, if any. Returns whether it finished.
    fn poll_paused(&mut self, context: &mut Context<'_>) -> bool {
        let Some(paused) = &mut self.paused else {
            return false;
        };
        if paused.as_mut().poll(context).is_ready() {
            self.paused = None;
            return true;
        }
        false
    }

    /// Reads and handles one chunk, unless the application paused us. Returns whether anything
    /// happened.
    fn read(&mut self, context: &mut Context<'_>) -> bool {
        if self.paused.is_some() && !self.poll_paused(context) {
            return false;
        }
        if !self.unread.is_empty() {
            let unread = std::mem::take(&mut self.unread);
            self.feed(&unread);
            return true;
        }
        let mut buffer = [MaybeUninit::<u8>::uninit(); READ_CHUNK_BYTES];
        let mut buffer = ReadBuf::uninit(&mut buffer);
        match Pin::new(&mut self.io).poll_read(context, &mut buffer) {
            Poll::Pending => false,
            Poll::Ready(Ok(())) if buffer.filled().is_empty() => {
                self.abort(None);
                true
            }
            Poll::Ready(Ok(())) => {
                self.feed(buffer.filled());
                true
            }
            Poll::Ready(Err(error)) => {
                self.abort(Some(error));
                true
            }
        }
    }

    /// Reads and drops what the client sends until its close frame or the end of the stream.
    fn drain(&mut self, context: &mut Context<'_>) -> bool {
        let mut buffer = [MaybeUninit::<u8>::uninit(); READ_CHUNK_BYTES];
        let mut buffer = ReadBuf::uninit(&mut buffer);
        match Pin::new(&mut self.io).poll_read(context, &mut buffer) {
            Poll::Pending => false,
            Poll::Ready(Ok(())) if !buffer.filled().is_empty() => {
                let bytes = buffer.filled();
                let mut at = 0;
                while at < bytes.len() {
                    match self.reader.feed(&bytes[at..]) {
                        Ok((used, item)) => {
                            at += used;
                            if let Some(Item::Close(_)) = item {
                                self.phase = Phase::Done;
                                break;
                            }
                        }
                        Err(_) => {
                            self.phase = Phase::Done;
                            break;
                        }
                    }
                }
                true
            }
            Poll::Ready(_) => {
                self.phase = Phase::Done;
                true
            }
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let mut at = 0;
        while at < bytes.len() && matches!(self.phase, Phase::Open | Phase::CloseSent) {
            match self.reader.feed(&bytes[at..]) {
                Err(error) => {
                    self.fail(error);
                    return;
                }
                Ok((used, item)) => {
                    at += used;
                    if let Some(item) = item {
                        self.handle(item);
                    }
                }
            }
            if self.paused.is_some() && at < bytes.len() {
                self.unread.extend_from_slice(&bytes[at..]);
                return;
            }
        }
    }

    fn handle(&mut self, item: Item) {
        match item {
            Item::Message(_) if self.phase != Phase::Open => {
                // After our close frame the client's data is read and dropped (§5.5.1).
            }
            Item::Message(Message::Text(text)) if self.auto_response(&text) => {}
            Item::Message(message) => {
                let flow = self.inbound.event(Event::Message(message));
                self.pause(flow);
            }
            Item::Ping(payload) => {
                if self.phase == Phase::Open {
                    // An overflow shows in the state, and the next round fails the socket.
                    let _ = self.lock().push(OpCode::Pong, payload);
                }
            }
            Item::Pong => {}
            Item::Close(frame) => {
                self.close_received = true;
                let (code, reason) = match frame {
                    Some(CloseFrame { code, reason }) => (code, reason),
                    None => (code::NO_STATUS, String::new()),
                };
                {
                    // Echo the client's code (§5.5.1), unless our close frame is already queued.
                    let mut shared = self.lock();
                    shared.state = State::Closing;
                    shared.push_close(code, &reason);
                }
                self.deliver_closed(Closed {
                    code,
                    reason,
                    was_clean: true,
                    error: None,
                });
                self.phase = Phase::Flushing;
                self.start_deadline();
            }
        }
    }

    /// Answers the auto-response request, if `text` is it.
    fn auto_response(&mut self, text: &Text) -> bool {
        let Some(pair) = self.auto_responder.as_ref().and_then(AutoResponder::get) else {
            return false;
        };
        if pair.request() != text {
            return false;
        }
        let now_ms = self.config.clock.now_ms();
        let mut shared = self.lock();
        shared.last_auto_response_ms = Some(now_ms);
        let _ = shared.push(OpCode::Text, pair.response().as_bytes().clone());
        true
    }

    fn pause(&mut self, flow: Flow) {
        let Flow::Pause(next) = flow else {
            return;
        };
        self.paused = Some(match self.paused.take() {
            None => next,
            Some(earlier) => Box::pin(async move {
                earlier.await;
                next.await;
            }),
        });
    }

    /// Fails the socket (§7.1.7): drops unsent frames, sends a close frame with the error's code,
    /// tells the application, and closes.
    fn fail(&mut self, error: Error) {
        let code = error.close_code();
        let reason = error.to_string();
        {
            let mut shared = self.lock();
            shared.drop_unsent();
            shared.push_close(code, &reason);
            shared.state = State::Closing;
        }
        tracing::debug!(%error, code, "failing a WebSocket");
        self.deliver_closed(Closed {
            code,
            reason: super::message::truncate_reason(&reason).to_owned(),
            was_clean: false,
            error: Some(error),
        });
        self.phase = Phase::Flushing;
        self.start_deadline();
    }

    /// The connection ended or broke.
    fn abort(&mut self, error: Option<std::io::Error>) {
        self.lock().state = State::Closing;
        self.deliver_closed(Closed {
            code: code::ABNORMAL,
            reason: String::new(),
            was_clean: false,
            error: error.map(Error::Io),
        });
        self.phase = Phase::Done;
    }

    fn deliver_closed(&mut self, closed: Closed) {
        if self.closed_delivered {
            return;
        }
        self.closed_delivered = true;
        let flow = self.inbound.event(Event::Closed(closed));
        self.pause(flow);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;
    use crate::websocket::reader::tests::client_frame;

    /// Runs a driver over an in-memory pipe on a `LocalSet`; returns the client's end, the
    /// sender and the events seen.
    fn start(
        config: Config,
        inbound: impl FnMut(Event) -> Flow + 'static,
    ) -> (DuplexStream, Sender, tokio::task::JoinHandle<()>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (sender, driver) = Driver::new(Arc::new(config));
        let task = tokio::task::spawn_local(driver.run(server, inbound));
        (client, sender, task)
    }

    fn recorder() -> (Rc<RefCell<Vec<Event>>>, impl FnMut(Event) -> Flow + 'static) {
        let events = Rc::new(RefCell::new(Vec::new()));
        let sink = Rc::clone(&events);
        (events, move |event| {
            sink.borrow_mut().push(event);
            Flow::Continue
        })
    }

    async fn read_exact(client: &mut DuplexStream, count: usize) -> Vec<u8> {
        let mut bytes = vec![0_u8; count];
        client.read_exact(&mut bytes).await.expect("read");
        bytes
    }

    #[tokio::test]
    async fn a_paused_application_stops_reading_but_not_writing() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let (resume, resumed) = tokio::sync::oneshot::channel::<()>();
                let resumed = Rc::new(RefCell::new(Some(resumed)));
                let (events, mut record) = recorder();
                let (mut client, sender, _task) = start(Config::default(), move |event| {
                    record(event);
                    match resumed.borrow_mut().take() {
                        Some(resumed) => Flow::Pause(Box::pin(async move {
                            let _ = resumed.await;
                        })),
                        None => Flow::Continue,
                    }
                });
                client
                    .write_all(&client_frame(true, 0x1, b"first"))
                    .await
                    .expect("write");
                client
                    .write_all(&client_frame(true, 0x1, b"second"))
                    .await
                    .expect("write");
                tokio::task::yield_now().await;
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
                assert_eq!(events.borrow().len(), 1, "paused after the first message");
                // Sends still go out while paused.
                sender.send("out").expect("send");
                assert_eq!(
                    read_exact(&mut client, 5).await,
                    [0x81, 3, b'o', b'u', b't']
                );
                resume.send(()).expect("resume");
                for _ in 0..10 {
                    tokio::task::yield_now().await;
                }
                assert_eq!(events.borrow().len(), 2);
                assert!(matches!(
                    &events.borrow()[1],
                    Event::Message(message) if *message == Message::from("second")
                ));
            })
            .await;
    }

    #[tokio::test]
    async fn queued_frames_go_out_whole_and_in_order_through_partial_writes() {
        tokio::task::LocalSet::new()
            .run_until(async {
                // A 7-byte pipe: every vectored write of many frames is cut somewhere inside one.
                let (mut client, server) = tokio::io::duplex(7);
                let (sender, driver) = Driver::new(Arc::new(Config::default()));
                for index in 0..200 {
                    sender.send(format!("message {index}")).expect("send");
                }
                let _task = tokio::task::spawn_local(driver.run(server, |_| Flow::Continue));
                for index in 0..200 {
                    let expected = format!("message {index}");
                    let frame = read_exact(&mut client, 2 + expected.len()).await;
                    assert_eq!(frame[..2], [0x81, expected.len() as u8]);
                    assert_eq!(&frame[2..], expected.as_bytes());
                }
                assert_eq!(sender.queued_bytes(), 0);
            })
            .await;
    }

    #[tokio::test]
    async fn a_protocol_error_sends_1002_and_reports_it() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let (events, record) = recorder();
                let (mut client, sender, task) = start(Config::default(), record);
                // An unmasked frame.
                client.write_all(&[0x81, 0x01, b'a']).await.expect("write");
                let close = read_exact(&mut client, 4).await;
                assert_eq!(close[..2], [0x88, close[1]]);
                assert_eq!(u16::from_be_bytes([close[2], close[3]]), 1002);
                drop(client);
                task.await.expect("driver");
                assert!(!sender.is_open());
                let events = events.borrow();
                let [Event::Closed(closed)] = events.as_slice() else {
                    panic!("expected one close, got {events:?}");
                };
                assert_eq!((closed.code, closed.was_clean), (1002, false));
                assert!(matches!(closed.error, Some(Error::Protocol(_))));
            })
            .await;
    }

    #[tokio::test]
    async fn a_client_that_ignores_our_close_is_dropped_after_the_timeout() {
        tokio::task::LocalSet::new()
            .run_until(async {
                let (events, record) = recorder();
                let config = Config {
                    close_timeout: Duration::from_millis(50),
                    ..Config::default()
                };
                let (mut client, sender, task) = start(config, record);
                sender.close(1000, "done").expect("close");
                let close = read_exact(&mut client, 8).await;
                assert_eq!(close, [0x88, 6, 0x03, 0xE8, b'd', b'o', b'n', b'e']);
                // The client never answers (nor closes); the deadline ends the wait.
                task.await.expect("driver");
                let events = events.borrow();
                let [Event::Closed(closed)] = events.as_slice() else {
                    panic!("expected one close, got {events:?}");
                };
                assert_eq!((closed.code, closed.was_clean), (1006, false));
                assert!(matches!(closed.error, Some(Error::CloseTimeout { .. })));
            })
            .await;
    }
}
