//! Hibernatable WebSockets: the per-shard hub that holds the sockets objects accept, and the
//! guest-facing handle ([`WebSocket`]) to one of them.
//!
//! # Design
//! - The hub lives in each shard's host, keyed by object, outside any instance: a socket's tags,
//!   its attachment and the object's auto-response pair stay while the instance is dropped
//!   (hibernation), and a new instance finds them again with
//!   [`ObjectContext::get_websockets`](crate::ObjectContext::get_websockets).
//! - The runtime does no socket I/O. Whoever accepts the connection (burrow-http's
//!   `websocket::hibernatable`) hands the hub a [`Transport`] (send, close, the auto-response
//!   pair) and feeds the socket's events back with [`WebSocket::deliver`], which runs them as
//!   events of the object: inside a turn, behind the input gate, constructing the instance if it
//!   hibernated, with the object's event timeout. The transport answers protocol pings and the
//!   auto-response request itself, so they never wake the object.
//! - Output gate: a send or close made while the object has writes that are not yet durable
//!   waits in the object's gate queue (in order, bounded by [`MAX_GATED_BYTES`]) until they are;
//!   later sends queue behind it, so order holds. Without pending writes a send goes straight to
//!   the transport.
//! - One event per socket is in flight at a time (the transport stops reading until it is
//!   handled), so socket events are bounded by the object's socket cap and skip the mailbox's
//!   request bounds, which are for callers that can be told to back off.

use crate::clock::LocalBoxFuture;
use crate::guest::{ObjectError, overload};
use crate::host::{Event, ShardHost};
use crate::object::{ObjectCell, ObjectKey};
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

/// A complete data message, reassembled from its fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message: always valid UTF-8.
    Text(Text),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Text(text) => text.as_bytes().len(),
            Message::Binary(bytes) => bytes.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Message {
        Message::Text(Text::from(text))
    }
}

impl From<String> for Message {
    fn from(text: String) -> Message {
        Message::Text(Text::from(text))
    }
}

impl From<Bytes> for Message {
    fn from(bytes: Bytes) -> Message {
        Message::Binary(bytes)
    }
}

impl From<Vec<u8>> for Message {
    fn from(bytes: Vec<u8>) -> Message {
        Message::Binary(Bytes::from(bytes))
    }
}

/// UTF-8 text held as [`Bytes`], so clones share one buffer.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Text(Bytes);

impl Text {
    /// The text. (It re-checks UTF-8, which is linear but fast; the crate has no unsafe code.)
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The UTF-8 bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Wraps bytes that must be UTF-8; gives them back if they are not.
    pub fn from_utf8(bytes: Bytes) -> Result<Text, Bytes> {
        match std::str::from_utf8(&bytes) {
            Ok(_) => Ok(Text(bytes)),
            Err(_) => Err(bytes),
        }
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), formatter)
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Text {
        Text(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text(Bytes::from(text.into_bytes()))
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

/// Cloudflare's limit on each side of an auto-response pair.
pub const MAX_AUTO_RESPONSE_BYTES: usize = 2_048;
/// Most tags per socket (Cloudflare's).
pub const MAX_TAGS: usize = 10;
/// Longest tag, in characters (Cloudflare's).
pub const MAX_TAG_CHARS: usize = 256;
/// Largest attachment, in bytes (workerd's limit).
pub const MAX_ATTACHMENT_BYTES: usize = 16 * 1024;
/// Longest event timeout (Cloudflare's): 7 days.
pub const MAX_EVENT_TIMEOUT_MS: u64 = 604_800_000;
/// Most bytes of sends held at an object's output gate at once; past it sends fail with
/// Cloudflare's overload message.
pub const MAX_GATED_BYTES: usize = 64 << 20;
/// The longest close reason a guest may give: a control frame's payload less the code.
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// A request message and the response sent for it without waking the object
/// (`WebSocketRequestResponsePair`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoResponse {
    request: Text,
    response: Text,
}

impl AutoResponse {
    /// A pair; each side at most [`MAX_AUTO_RESPONSE_BYTES`].
    pub fn new(request: &str, response: &str) -> Result<AutoResponse, AutoResponseError> {
        for (side, text) in [("request", request), ("response", response)] {
            if text.len() > MAX_AUTO_RESPONSE_BYTES {
                return Err(AutoResponseError {
                    side,
                    bytes: text.len(),
                });
            }
        }
        Ok(AutoResponse {
            request: Text::from(request),
            response: Text::from(response),
        })
    }

    /// The request text.
    pub fn request(&self) -> &Text {
        &self.request
    }

    /// The response text.
    pub fn response(&self) -> &Text {
        &self.response
    }
}

/// An auto-response side over the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the auto-response {side} is {bytes} bytes; the limit is {MAX_AUTO_RESPONSE_BYTES} bytes")]
pub struct AutoResponseError {
    side: &'static str,
    bytes: usize,
}

/// One accepted connection, as the hub drives it. Implemented by the code that owns the
/// socket's I/O (burrow-http's driver); called on the object's shard.
pub trait Transport: 'static {
    /// Queues a message; fails if the socket is closing or its send buffer is full.
    fn send(&self, message: Message) -> Result<(), String>;
    /// Starts the closing handshake after the queued messages.
    fn close(&self, code: u16, reason: &str) -> Result<(), String>;
    /// Sets (or clears) the pair the transport answers by itself.
    fn set_auto_response(&self, pair: Option<Arc<AutoResponse>>);
    /// When the transport last answered the auto-response request, in epoch milliseconds.
    fn last_auto_response_ms(&self) -> Option<i64>;
}

/// What a socket tells its object.
#[derive(Debug)]
pub enum SocketEvent {
    /// A data message (`webSocketMessage`).
    Message(Message),
    /// The client closed, or the connection ended without an error (`webSocketClose`).
    Close {
        /// The close code (1005 without one, 1006 for an abnormal end).
        code: u16,
        /// The reason.
        reason: String,
        /// Whether the closing handshake completed.
        was_clean: bool,
    },
    /// The socket failed (`webSocketError`): protocol error, oversized message, a client that
    /// does not read, a broken connection.
    Error(String),
}

impl SocketEvent {
    fn ends_socket(&self) -> bool {
        !matches!(self, SocketEvent::Message(_))
    }
}

/// An accepted socket, as its object sees it. Cheap to clone; use on the object's shard.
#[derive(Clone)]
pub struct WebSocket {
    pub(crate) cell: Rc<ObjectCell>,
    pub(crate) id: u64,
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WebSocket")
            .field("object", &self.cell.key.id)
            .field("id", &self.id)
            .finish()
    }
}

impl PartialEq for WebSocket {
    fn eq(&self, other: &WebSocket) -> bool {
        self.id == other.id && self.cell.key == other.cell.key
    }
}

impl Eq for WebSocket {}

fn closed_error() -> ObjectError {
    ObjectError::remote("WebSocket is closed or was never accepted by this Durable Object.")
}

impl WebSocket {
    /// The socket's number on its shard (unique while it is open).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the hub still holds the socket (it is dropped after its close or error event).
    pub fn is_accepted(&self) -> bool {
        self.with_socket(|_| ()).is_some()
    }

    /// Sends a message, behind the output gate (see the module docs).
    pub fn send(&self, message: impl Into<Message>) -> Result<(), ObjectError> {
        self.gated(Outgoing::Message(message.into()))
    }

    /// Closes the socket with `code` (1000 or 3000–4999, as Cloudflare allows) and `reason` (at
    /// most [`MAX_CLOSE_REASON_BYTES`]), behind the output gate.
    pub fn close(&self, code: u16, reason: &str) -> Result<(), ObjectError> {
        if code != 1000 && !(3000..=4999).contains(&code) {
            return Err(ObjectError::remote(format!(
                "Invalid WebSocket close code: {code}. The code must be 1000 or between 3000 and 4999."
            )));
        }
        if reason.len() > MAX_CLOSE_REASON_BYTES {
            return Err(ObjectError::remote(format!(
                "WebSocket close reason is {} bytes; the limit is {MAX_CLOSE_REASON_BYTES} bytes.",
                reason.len()
            )));
        }
        self.gated(Outgoing::Close(code, reason.to_owned()))
    }

    /// The socket's tags (`getTags`).
    pub fn tags(&self) -> Result<Vec<String>, ObjectError> {
        self.with_socket(|socket| socket.tags.iter().map(|tag| tag.to_string()).collect())
            .ok_or_else(closed_error)
    }

    /// Stores `attachment` with the socket, outside the instance, so it survives hibernation
    /// (`serializeAttachment`). At most [`MAX_ATTACHMENT_BYTES`].
    pub fn serialize_attachment(&self, attachment: Bytes) -> Result<(), ObjectError> {
        if attachment.len() > MAX_ATTACHMENT_BYTES {
            return Err(ObjectError::remote(format!(
                "A WebSocket 'attachment' cannot be larger than {MAX_ATTACHMENT_BYTES} bytes (this one is {} bytes).",
                attachment.len()
            )));
        }
        let attachment = (!attachment.is_empty()).then_some(attachment);
        self.with_socket_mut(|socket| socket.attachment = attachment)
            .ok_or_else(closed_error)
    }

    /// The attachment last stored (`deserializeAttachment`); `None` if there is none.
    pub fn deserialize_attachment(&self) -> Option<Bytes> {
        self.with_socket(|socket| socket.attachment.clone())
            .flatten()
    }

    /// When the auto-response pair was last answered on this socket, in epoch milliseconds
    /// (`getWebSocketAutoResponseTimestamp`).
    pub fn auto_response_timestamp(&self) -> Option<i64> {
        self.with_socket(|socket| socket.transport.last_auto_response_ms())
            .flatten()
    }

    /// For transports: runs `event` as an event of the object (constructing it if it
    /// hibernated) and resolves when it is handled. After a close or error the hub drops the
    /// socket.
    pub fn deliver(&self, event: SocketEvent) -> LocalBoxFuture<'static, ()> {
        let key = self.cell.key.clone();
        let id = self.id;
        Box::pin(async move {
            let Some(host) = ShardHost::current() else {
                return;
            };
            let ends = event.ends_socket();
            let result = host
                .dispatch(key.clone(), Event::WebSocket { socket: id, event })
                .await;
            if let Err(error) = result {
                tracing::warn!(object = %key.id, socket = id, error = %error.message, "WebSocket event failed");
            }
            if ends {
                host.hub.remove(&key, id);
            }
        })
    }

    fn with_socket<R>(&self, f: impl FnOnce(&Socket) -> R) -> Option<R> {
        let host = self.cell.host();
        let objects = host.hub.objects.borrow();
        objects
            .get(&self.cell.key)
            .and_then(|object| object.sockets.get(&self.id))
            .map(f)
    }

    fn with_socket_mut<R>(&self, f: impl FnOnce(&mut Socket) -> R) -> Option<R> {
        let host = self.cell.host();
        let mut objects = host.hub.objects.borrow_mut();
        objects
            .get_mut(&self.cell.key)
            .and_then(|object| object.sockets.get_mut(&self.id))
            .map(f)
    }

    fn gated(&self, outgoing: Outgoing) -> Result<(), ObjectError> {
        let host = self.cell.host();
        let held = self.cell.has_pending_writes(&host);
        let mut objects = host.hub.objects.borrow_mut();
        let object = objects.get_mut(&self.cell.key).ok_or_else(closed_error)?;
        let socket = object.sockets.get(&self.id).ok_or_else(closed_error)?;
        if !held && object.gate.is_empty() {
            return outgoing.write(socket).map_err(ObjectError::remote);
        }
        let bytes = outgoing.len();
        if object.gate_bytes + bytes > MAX_GATED_BYTES {
            return Err(ObjectError::overloaded(overload::TOO_MUCH_DATA));
        }
        object.gate_bytes += bytes;
        object.gate.push_back((self.id, outgoing));
        if !object.gate_running {
            object.gate_running = true;
            tokio::task::spawn_local(release_gate(self.cell.clone()));
        }
        Ok(())
    }
}

/// Sends what waits at an object's output gate once the writes made before it are durable.
async fn release_gate(mut cell: Rc<ObjectCell>) {
    loop {
        let host = cell.host();
        // The object's current cell: the one that queued the send may since have been evicted.
        if let Some(current) = host.cells.borrow().get(&cell.key) {
            cell = current.clone();
        }
        // The turn that queued the send commits when its poll ends, before this task runs.
        cell.commit();
        let end = cell.last_end.get();
        let generation = cell.generation.get();
        let count = host
            .hub
            .objects
            .borrow()
            .get(&cell.key)
            .map_or(0, |object| object.gate.len());
        let durable = host.durability.wait(end).await.is_ok();
        let mut objects = host.hub.objects.borrow_mut();
        let Some(object) = objects.get_mut(&cell.key) else {
            return;
        };
        let count = count.min(object.gate.len());
        // A reset or a failed journal breaks the gate: what waited is dropped, as on Cloudflare.
        let deliver = durable && cell.generation.get() == generation;
        for (id, outgoing) in object.gate.drain(..count) {
            object.gate_bytes -= outgoing.len();
            if deliver && let Some(socket) = object.sockets.get(&id) {
                let _ = outgoing.write(socket);
            }
        }
        if object.gate.is_empty() {
            object.gate_running = false;
            object.gate = VecDeque::new();
            return;
        }
    }
}

enum Outgoing {
    Message(Message),
    Close(u16, String),
}

impl Outgoing {
    fn len(&self) -> usize {
        match self {
            Outgoing::Message(message) => message.len(),
            Outgoing::Close(_, reason) => 2 + reason.len(),
        }
    }

    fn write(self, socket: &Socket) -> Result<(), String> {
        match self {
            Outgoing::Message(message) => socket.transport.send(message),
            Outgoing::Close(code, reason) => socket.transport.close(code, &reason),
        }
    }
}

struct Socket {
    transport: Box<dyn Transport>,
    tags: Box<[Box<str>]>,
    attachment: Option<Bytes>,
}

#[derive(Default)]
struct ObjectSockets {
    /// By id, so in the order they were accepted.
    sockets: BTreeMap<u64, Socket>,
    auto_response: Option<Arc<AutoResponse>>,
    event_timeout_ms: Option<u64>,
    gate: VecDeque<(u64, Outgoing)>,
    gate_bytes: usize,
    gate_running: bool,
}

impl ObjectSockets {
    fn is_empty(&self) -> bool {
        self.sockets.is_empty()
            && self.gate.is_empty()
            && self.auto_response.is_none()
            && self.event_timeout_ms.is_none()
    }
}

/// The sockets of one shard's objects.
#[derive(Default)]
pub(crate) struct Hub {
    objects: RefCell<HashMap<ObjectKey, ObjectSockets>>,
    next_id: Cell<u64>,
    open: Cell<usize>,
}

/// Checks tags against Cloudflare's limits.
pub(crate) fn check_tags(tags: &[String]) -> Result<(), ObjectError> {
    if tags.len() > MAX_TAGS {
        return Err(ObjectError::remote(format!(
            "A WebSocket can have at most {MAX_TAGS} tags; got {}.",
            tags.len()
        )));
    }
    for (index, tag) in tags.iter().enumerate() {
        let chars = tag.chars().count();
        if chars > MAX_TAG_CHARS {
            return Err(ObjectError::remote(format!(
                "A WebSocket tag can be at most {MAX_TAG_CHARS} characters; tag {index} has {chars}."
            )));
        }
        if tag.is_empty() {
            return Err(ObjectError::remote("A WebSocket tag cannot be empty."));
        }
        if tags[..index].contains(tag) {
            return Err(ObjectError::remote(format!(
                "A WebSocket cannot have the tag {tag:?} twice."
            )));
        }
    }
    Ok(())
}

impl Hub {
    /// Sockets open on this shard.
    pub(crate) fn open(&self) -> usize {
        self.open.get()
    }

    /// Sockets `key` holds.
    pub(crate) fn count(&self, key: &ObjectKey) -> usize {
        self.objects
            .borrow()
            .get(key)
            .map_or(0, |object| object.sockets.len())
    }

    pub(crate) fn accept(
        &self,
        cell: &Rc<ObjectCell>,
        tags: Vec<String>,
        transport: Box<dyn Transport>,
        limit: usize,
    ) -> Result<WebSocket, ObjectError> {
        check_tags(&tags)?;
        let mut objects = self.objects.borrow_mut();
        let object = objects.entry(cell.key.clone()).or_default();
        if object.sockets.len() >= limit {
            return Err(too_many(limit));
        }
        transport.set_auto_response(object.auto_response.clone());
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        object.sockets.insert(
            id,
            Socket {
                transport,
                tags: tags.into_iter().map(String::into_boxed_str).collect(),
                attachment: None,
            },
        );
        self.open.set(self.open.get() + 1);
        Ok(WebSocket {
            cell: cell.clone(),
            id,
        })
    }

    pub(crate) fn remove(&self, key: &ObjectKey, id: u64) {
        let mut objects = self.objects.borrow_mut();
        let Some(object) = objects.get_mut(key) else {
            return;
        };
        if object.sockets.remove(&id).is_some() {
            self.open.set(self.open.get() - 1);
        }
        if object.is_empty() {
            objects.remove(key);
        }
    }

    /// Forgets an evicted object's settings (auto-response pair, event timeout) unless it still
    /// has sockets, so objects that once set them do not accumulate here. Its constructor sets
    /// them again on its next event, as after a restart.
    pub(crate) fn release(&self, key: &ObjectKey) {
        let mut objects = self.objects.borrow_mut();
        if objects
            .get(key)
            .is_some_and(|object| object.sockets.is_empty() && object.gate.is_empty())
        {
            objects.remove(key);
        }
    }

    pub(crate) fn sockets(&self, cell: &Rc<ObjectCell>, tag: Option<&str>) -> Vec<WebSocket> {
        let objects = self.objects.borrow();
        let Some(object) = objects.get(&cell.key) else {
            return Vec::new();
        };
        object
            .sockets
            .iter()
            .filter(|(_, socket)| tag.is_none_or(|tag| socket.tags.iter().any(|t| &**t == tag)))
            .map(|(id, _)| WebSocket {
                cell: cell.clone(),
                id: *id,
            })
            .collect()
    }

    pub(crate) fn set_auto_response(&self, key: &ObjectKey, pair: Option<AutoResponse>) {
        let mut objects = self.objects.borrow_mut();
        let object = objects.entry(key.clone()).or_default();
        let pair = pair.map(Arc::new);
        for socket in object.sockets.values() {
            socket.transport.set_auto_response(pair.clone());
        }
        object.auto_response = pair;
        if object.is_empty() {
            objects.remove(key);
        }
    }

    pub(crate) fn auto_response(&self, key: &ObjectKey) -> Option<Arc<AutoResponse>> {
        self.objects
            .borrow()
            .get(key)
            .and_then(|object| object.auto_response.clone())
    }

    pub(crate) fn set_event_timeout(&self, key: &ObjectKey, timeout_ms: Option<u64>) {
        let mut objects = self.objects.borrow_mut();
        let object = objects.entry(key.clone()).or_default();
        object.event_timeout_ms = timeout_ms;
        if object.is_empty() {
            objects.remove(key);
        }
    }

    pub(crate) fn event_timeout(&self, key: &ObjectKey) -> Option<u64> {
        self.objects
            .borrow()
            .get(key)
            .and_then(|object| object.event_timeout_ms)
    }
}

pub(crate) fn too_many(limit: usize) -> ObjectError {
    ObjectError::overloaded(format!(
        "This Durable Object already has {limit} WebSockets accepted, its limit; close some before accepting more."
    ))
}
