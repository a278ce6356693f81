//! One Durable Object on its shard: its instance, storage, gates and lifecycle, and the context
//! and storage handles its guest code uses.
//!
//! # Gates, and why they hold
//! - **Write coalescing.** Every event of an object runs inside [`Turn`], which commits the
//!   object's storage after each poll of the event's future. Guest storage calls are synchronous,
//!   so all writes made without an `await` between them land in one poll and commit atomically.
//! - **Input gate.** A storage call runs to completion on the shard thread before anything else
//!   can, so no event is ever delivered while a storage operation is outstanding. Events interleave
//!   only at the guest's own awaits (outgoing I/O, RPC, timers), as on Cloudflare.
//!   `block_concurrency_while` closes the door completely: [`Admission`] holds every new event
//!   (in arrival order) until the callback settles.
//! - **Output gate.** Before a response or RPC result leaves the object, the event commits what is
//!   pending and waits until the shard's journal position passes the object's last commit
//!   ([`crate::durability`]). So nothing leaves before every write made before it is durable. If a
//!   commit fails, the object is reset and the waiting results are replaced by the reset error.

use crate::clock::LocalBoxFuture;
use crate::guest::{ObjectError, ObjectInstance};
use crate::host::ShardHost;
use crate::id::ObjectId;
use crate::namespace::NamespaceId;
use crate::websocket::{self, AutoResponse, Transport, WebSocket};
use burrow_storage::database::Database;
use burrow_storage::engine::ObjectStorage;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

/// Identifies an object across the node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// The class's namespace.
    pub namespace: NamespaceId,
    /// The object.
    pub id: ObjectId,
}

/// The shard-local state of one object.
pub(crate) struct ObjectCell {
    pub(crate) key: ObjectKey,
    pub(crate) host: Weak<ShardHost>,
    pub(crate) storage: RefCell<Option<ObjectStorage>>,
    pub(crate) instance: RefCell<Option<Rc<dyn ObjectInstance>>>,
    /// Bumped on every reset: events of an older generation get the reset error.
    pub(crate) generation: Cell<u64>,
    pub(crate) reset_error: RefCell<Option<ObjectError>>,
    /// Events admitted and not finished, plus events waiting for admission.
    pub(crate) in_flight: Cell<usize>,
    pub(crate) queued_bytes: Cell<usize>,
    /// `block_concurrency_while` callbacks running.
    pub(crate) blocked: Cell<usize>,
    pub(crate) admission: RefCell<VecDeque<Waker>>,
    /// `wait_until` promises still running.
    pub(crate) background: Cell<usize>,
    /// Journal end of this object's newest commit.
    pub(crate) last_end: Cell<u64>,
    pub(crate) last_used_ms: Cell<i64>,
    /// While the alarm handler runs: set when the handler schedules a new alarm.
    pub(crate) alarm_running: Cell<bool>,
    pub(crate) alarm_set_during_run: Cell<bool>,
}

impl ObjectCell {
    pub(crate) fn new(key: ObjectKey, host: &Rc<ShardHost>, now_ms: i64) -> Rc<ObjectCell> {
        Rc::new(ObjectCell {
            key,
            host: Rc::downgrade(host),
            storage: RefCell::new(None),
            instance: RefCell::new(None),
            generation: Cell::new(0),
            reset_error: RefCell::new(None),
            in_flight: Cell::new(0),
            queued_bytes: Cell::new(0),
            blocked: Cell::new(0),
            admission: RefCell::new(VecDeque::new()),
            background: Cell::new(0),
            last_end: Cell::new(0),
            last_used_ms: Cell::new(now_ms),
            alarm_running: Cell::new(false),
            alarm_set_during_run: Cell::new(false),
        })
    }

    pub(crate) fn host(&self) -> Rc<ShardHost> {
        self.host
            .upgrade()
            .expect("an object never outlives its shard's host")
    }

    /// True when nothing runs or waits for this object.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.get() == 0 && self.blocked.get() == 0 && self.background.get() == 0
    }

    /// Runs `f` on the object's database, opening it on first use.
    pub(crate) fn with_db<R>(
        &self,
        f: impl FnOnce(&mut Database) -> Result<R, burrow_storage::database::Error>,
    ) -> Result<R, ObjectError> {
        let mut storage = self.storage.borrow_mut();
        if storage.is_none() {
            let host = self.host();
            let namespace = self.key.namespace.to_string();
            let id = self.key.id.to_string();
            let engine = &host.runtime.engine;
            // Stay within this shard's share of the node's open databases, so the node's cap is
            // rarely hit by a shard that has nothing idle to give back.
            if host.open_storage.get() >= host.storage_budget() {
                host.close_idle_storage();
            }
            let opened = match engine.open_object(&namespace, &id) {
                // The node's cap on open databases: close the least recently used idle objects'
                // storage on this shard and try once more.
                Err(burrow_storage::engine::Error::TooManyOpenObjects { .. }) => {
                    host.close_idle_storage();
                    engine.open_object(&namespace, &id)
                }
                other => other,
            }
            .map_err(|e| ObjectError::internal(format!("cannot open object storage: {e}")))?;
            host.open_storage.set(host.open_storage.get() + 1);
            *storage = Some(opened);
        }
        let object = storage.as_mut().expect("opened above");
        f(object.db()).map_err(|e| ObjectError::remote(e.to_string()))
    }

    /// Whether the object wrote anything that is not durable yet (uncommitted, or committed and
    /// still on its way to disk): the output gate holds outgoing messages while it is.
    pub(crate) fn has_pending_writes(&self, host: &ShardHost) -> bool {
        let uncommitted = self
            .storage
            .try_borrow_mut()
            .map(|mut storage| storage.as_mut().is_some_and(|s| s.db().has_open_turn()))
            .unwrap_or(true);
        uncommitted || !host.durability.is_durable(self.last_end.get())
    }

    /// Commits whatever the current turn wrote; on failure resets the object.
    pub(crate) fn commit(&self) {
        let result = {
            let mut storage = self.storage.borrow_mut();
            let Some(object) = storage.as_mut() else {
                return;
            };
            if !object.db().has_open_turn() {
                return;
            }
            object.commit()
        };
        match result {
            Ok(Some(durable)) => {
                self.last_end.set(durable.end().0);
                self.host().durability.track(durable);
            }
            Ok(None) => {}
            Err(error) => {
                let message = match &error {
                    burrow_storage::engine::Error::Database(e) => e.to_string(),
                    other => format!("Durable Object storage failed: {other}"),
                };
                self.reset(ObjectError::remote(message));
            }
        }
    }

    /// Drops the instance and rolls back anything uncommitted; events of this generation that are
    /// still running will report `error`. The next event constructs a fresh instance.
    pub(crate) fn reset(&self, error: ObjectError) {
        tracing::warn!(object = %self.key.id, error = %error.message, "Durable Object reset");
        if let Some(storage) = self.storage.borrow_mut().as_mut() {
            let _ = storage.rollback();
        }
        self.instance.borrow_mut().take();
        *self.reset_error.borrow_mut() = Some(error);
        self.generation.set(self.generation.get() + 1);
        self.blocked.set(0);
        self.open_admission();
    }

    /// Wakes every event waiting for admission, in arrival order.
    pub(crate) fn open_admission(&self) {
        let waiters: Vec<Waker> = self.admission.borrow_mut().drain(..).collect();
        for waker in waiters {
            waker.wake();
        }
    }

    /// Resolves when the object accepts new events (no `block_concurrency_while` running).
    pub(crate) fn admit(self: &Rc<Self>) -> impl Future<Output = ()> + 'static {
        let cell = self.clone();
        let mut queued = false;
        poll_fn(move |cx| {
            if cell.blocked.get() == 0 && (queued || cell.admission.borrow().is_empty()) {
                return Poll::Ready(());
            }
            cell.admission.borrow_mut().push_back(cx.waker().clone());
            queued = true;
            Poll::Pending
        })
    }

    /// The live instance, constructing it if the object is not active.
    pub(crate) fn instance(self: &Rc<Self>) -> Result<Rc<dyn ObjectInstance>, ObjectError> {
        if let Some(instance) = self.instance.borrow().as_ref() {
            return Ok(instance.clone());
        }
        let host = self.host();
        let class = host
            .runtime
            .class(&self.key.namespace)
            .ok_or_else(|| ObjectError::internal("the object's class is not loaded"))?;
        let context = ObjectContext { cell: self.clone() };
        let instance = class.construct(context)?;
        host.stats.activations.set(host.stats.activations.get() + 1);
        *self.instance.borrow_mut() = Some(instance.clone());
        Ok(instance)
    }
}

/// Wraps an event's future: commits the object's writes after every poll (one poll, one turn).
pub(crate) struct Turn<F> {
    pub(crate) cell: Rc<ObjectCell>,
    pub(crate) inner: Pin<Box<F>>,
}

impl<F: Future> Future for Turn<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let result = self.inner.as_mut().poll(cx);
        self.cell.commit();
        result
    }
}

/// What an object's code gets: its id, its storage, and the platform's controls.
#[derive(Clone)]
pub struct ObjectContext {
    pub(crate) cell: Rc<ObjectCell>,
}

impl ObjectContext {
    /// The object's id.
    pub fn id(&self) -> &ObjectId {
        &self.cell.key.id
    }

    /// The object's namespace.
    pub fn namespace(&self) -> &NamespaceId {
        &self.cell.key.namespace
    }

    /// The object's storage (KV, SQL, alarm).
    pub fn storage(&self) -> Storage {
        Storage {
            cell: self.cell.clone(),
        }
    }

    /// The runtime's clock, in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.cell.host().runtime.clock.now_ms()
    }

    /// Runs `work` with every other event held back until it settles. If it fails, the object is
    /// reset (as Cloudflare does) and the error is returned. The work starts at once, so a
    /// constructor may call this without awaiting the returned future.
    pub fn block_concurrency_while<T: 'static>(
        &self,
        work: impl Future<Output = Result<T, ObjectError>> + 'static,
    ) -> LocalBoxFuture<'static, Result<T, ObjectError>> {
        let cell = self.cell.clone();
        cell.blocked.set(cell.blocked.get() + 1);
        let generation = cell.generation.get();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        tokio::task::spawn_local(async move {
            let result = Turn {
                cell: cell.clone(),
                inner: Box::pin(work),
            }
            .await;
            if cell.generation.get() == generation {
                cell.blocked.set(cell.blocked.get().saturating_sub(1));
                if let Err(error) = &result {
                    cell.reset(error.clone());
                } else if cell.blocked.get() == 0 {
                    cell.open_admission();
                }
            }
            let _ = sender.send(result);
        });
        Box::pin(async move {
            receiver.await.unwrap_or_else(|_| {
                Err(ObjectError::internal(
                    "blockConcurrencyWhile() was cancelled",
                ))
            })
        })
    }

    /// Resolves once no `block_concurrency_while` of this object is running. A guest that builds
    /// its instance lazily, inside the first event (the JavaScript runtime), waits here after its
    /// constructor, as the runtime does after [`crate::ObjectClass::construct`].
    pub fn wait_unblocked(&self) -> impl Future<Output = ()> + 'static {
        let cell = self.cell.clone();
        async move {
            if cell.blocked.get() > 0 {
                cell.admit().await;
            }
        }
    }

    /// Keeps the object alive until `work` finishes (it runs after the response is sent).
    pub fn wait_until(&self, work: impl Future<Output = ()> + 'static) {
        let cell = self.cell.clone();
        cell.background.set(cell.background.get() + 1);
        tokio::task::spawn_local(async move {
            Turn {
                cell: cell.clone(),
                inner: Box::pin(work),
            }
            .await;
            cell.background.set(cell.background.get().saturating_sub(1));
        });
    }

    /// Checks whether a socket with `tags` could be accepted now (tag limits, the object's socket
    /// cap), before the connection is taken over.
    pub fn check_websocket_accept(&self, tags: &[String]) -> Result<(), ObjectError> {
        websocket::check_tags(tags)?;
        let host = self.cell.host();
        let limit = host.runtime.options.max_websockets_per_object;
        if host.hub.count(&self.cell.key) >= limit {
            return Err(websocket::too_many(limit));
        }
        Ok(())
    }

    /// `acceptWebSocket(ws, tags)`: the hub takes the socket (driven by `transport`) for this
    /// object, so it stays open while the object hibernates. At most
    /// [`websocket::MAX_TAGS`] tags of [`websocket::MAX_TAG_CHARS`] characters, and
    /// [`crate::Options::max_websockets_per_object`] sockets.
    pub fn accept_websocket(
        &self,
        tags: Vec<String>,
        transport: Box<dyn Transport>,
    ) -> Result<WebSocket, ObjectError> {
        let host = self.cell.host();
        let limit = host.runtime.options.max_websockets_per_object;
        host.hub.accept(&self.cell, tags, transport, limit)
    }

    /// `getWebSockets(tag?)`: the object's sockets (with `tag`, only those tagged with it), in the
    /// order they were accepted.
    pub fn get_websockets(&self, tag: Option<&str>) -> Vec<WebSocket> {
        self.cell.host().hub.sockets(&self.cell, tag)
    }

    /// `setWebSocketAutoResponse(pair?)`: every socket of the object answers `pair`'s request
    /// with its response without waking the object; `None` clears it. Kept while the object
    /// hibernates.
    pub fn set_websocket_auto_response(&self, pair: Option<AutoResponse>) {
        self.cell.host().hub.set_auto_response(&self.cell.key, pair);
    }

    /// `getWebSocketAutoResponse()`.
    pub fn get_websocket_auto_response(&self) -> Option<AutoResponse> {
        self.cell
            .host()
            .hub
            .auto_response(&self.cell.key)
            .map(|pair| (*pair).clone())
    }

    /// `setHibernatableWebSocketEventTimeout(ms?)`: socket events that run longer fail. At most
    /// [`websocket::MAX_EVENT_TIMEOUT_MS`]; `None` removes it.
    pub fn set_websocket_event_timeout(&self, timeout_ms: Option<u64>) -> Result<(), ObjectError> {
        if let Some(ms) = timeout_ms
            && ms > websocket::MAX_EVENT_TIMEOUT_MS
        {
            return Err(ObjectError::remote(format!(
                "The WebSocket event timeout can be at most {} ms; got {ms}.",
                websocket::MAX_EVENT_TIMEOUT_MS
            )));
        }
        self.cell
            .host()
            .hub
            .set_event_timeout(&self.cell.key, timeout_ms);
        Ok(())
    }

    /// `getHibernatableWebSocketEventTimeout()`.
    pub fn get_websocket_event_timeout(&self) -> Option<u64> {
        self.cell.host().hub.event_timeout(&self.cell.key)
    }

    /// The runtime's socket limits, for the transport that accepts a connection.
    pub fn websocket_limits(&self) -> WebSocketLimits {
        let options = &self.cell.host().runtime.options;
        WebSocketLimits {
            max_message_bytes: options.websocket_max_message_bytes,
            max_send_buffer_bytes: options.websocket_max_send_buffer_bytes,
        }
    }

    /// The runtime's clock.
    pub fn clock(&self) -> std::sync::Arc<dyn crate::clock::Clock> {
        self.cell.host().runtime.clock.clone()
    }

    /// Resets the object: the instance is dropped and uncommitted writes discarded.
    pub fn abort(&self, reason: &str) {
        self.cell.reset(ObjectError::remote(reason.to_string()));
    }
}

/// The socket limits of [`crate::Options`], as a transport needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebSocketLimits {
    /// [`crate::Options::websocket_max_message_bytes`].
    pub max_message_bytes: usize,
    /// [`crate::Options::websocket_max_send_buffer_bytes`].
    pub max_send_buffer_bytes: usize,
}

/// An object's storage. Every call is synchronous and part of the current turn.
#[derive(Clone)]
pub struct Storage {
    cell: Rc<ObjectCell>,
}

impl Storage {
    /// Runs `f` against the object's database (KV and SQL APIs) within the current turn.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&mut Database) -> Result<R, burrow_storage::database::Error>,
    ) -> Result<R, ObjectError> {
        self.cell.with_db(f)
    }

    /// The scheduled alarm, in epoch milliseconds. While the alarm handler runs it is `None`
    /// unless the handler set a new one, as on Cloudflare, although the running alarm stays
    /// stored until the handler ends (so that a crash in the middle runs it again).
    pub fn get_alarm(&self) -> Result<Option<i64>, ObjectError> {
        if self.cell.alarm_running.get() && !self.cell.alarm_set_during_run.get() {
            return Ok(None);
        }
        self.with(|db| db.get_alarm())
    }

    /// Schedules the alarm (a time in the past runs as soon as possible).
    pub fn set_alarm(&self, at_ms: i64) -> Result<(), ObjectError> {
        self.with(|db| db.set_alarm(Some(at_ms)))?;
        if self.cell.alarm_running.get() {
            self.cell.alarm_set_during_run.set(true);
        }
        self.cell.host().schedule_alarm(&self.cell.key, at_ms, 0);
        Ok(())
    }

    /// Cancels the alarm.
    pub fn delete_alarm(&self) -> Result<(), ObjectError> {
        self.with(|db| db.set_alarm(None))?;
        if self.cell.alarm_running.get() {
            self.cell.alarm_set_during_run.set(true);
        }
        self.cell.host().cancel_alarm(&self.cell.key);
        Ok(())
    }

    /// Deletes every key, table and the alarm, atomically.
    pub fn delete_all(&self) -> Result<(), ObjectError> {
        self.with(|db| db.delete_all())?;
        if self.cell.alarm_running.get() {
            self.cell.alarm_set_during_run.set(true);
        }
        self.cell.host().cancel_alarm(&self.cell.key);
        Ok(())
    }

    /// Commits what is pending and waits until it is durable.
    pub async fn sync(&self) -> Result<(), ObjectError> {
        self.cell.commit();
        let host = self.cell.host();
        host.durability
            .wait(self.cell.last_end.get())
            .await
            .map_err(|_| ObjectError::internal("Durable Object storage failed"))
    }
}
