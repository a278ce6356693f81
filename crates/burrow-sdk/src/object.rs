//! Durable Object classes in Rust: the [`DurableObject`] trait a class implements, the
//! [`ObjectContext`] its instances get, and the adapter that runs a class on the runtime.
//!
//! An instance lives on its object's shard thread and handles its events with `&self`; events
//! interleave only at the handler's own `.await`s, never inside a storage call. State that changes
//! lives in `Cell`/`RefCell` fields or in storage. The instance may be dropped whenever the object
//! is idle (hibernation) and is constructed again, with [`DurableObject::new`], on the next event.

use std::future::Future;
use std::marker::PhantomData;
use std::rc::Rc;

use burrow_runtime::clock::LocalBoxFuture;
use burrow_runtime::guest::{self, ObjectClass, ObjectError, ObjectInstance};
use burrow_runtime::id::ObjectId;
use bytes::Bytes;
use http::StatusCode;

pub use burrow_runtime::AlarmInfo;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::fetch::{Request, Response};
use crate::rpc::Rpc;
use crate::storage::Storage;
use crate::websocket::{AutoResponse, Message, WebSocket};

/// A Durable Object class.
///
/// Implement [`DurableObject::new`] and whichever handlers the class has; declare its typed RPC
/// methods with [`crate::rpc!`] (a class without RPC methods writes `impl burrow::Rpc for T {}`).
/// Handlers may be written as `async fn`.
///
/// ```
/// use std::cell::Cell;
/// use burrow::{AlarmInfo, DurableObject, Env, ObjectContext, Request, Response, Result};
///
/// struct Visits {
///     ctx: ObjectContext,
///     /// In memory only: back to 0 whenever the object hibernates.
///     since_wake: Cell<u64>,
/// }
///
/// impl DurableObject for Visits {
///     fn new(ctx: ObjectContext, _env: Env) -> Self {
///         Visits { ctx, since_wake: Cell::new(0) }
///     }
///
///     async fn fetch(&self, _request: Request) -> Result<Response> {
///         let storage = self.ctx.storage();
///         let total = storage.get::<u64>("total")?.unwrap_or(0) + 1;
///         storage.put("total", &total)?;
///         self.since_wake.set(self.since_wake.get() + 1);
///         Ok(Response::text(format!("{total} visits, {} since waking", self.since_wake.get())))
///     }
///
///     async fn alarm(&self, _info: AlarmInfo) -> Result<()> {
///         self.ctx.storage().delete("total")?;
///         Ok(())
///     }
/// }
///
/// impl burrow::Rpc for Visits {}
/// ```
pub trait DurableObject: Sized + 'static {
    /// The constructor: runs on the object's shard when an event finds no live instance. Storage
    /// calls work here (they are synchronous), e.g. `CREATE TABLE IF NOT EXISTS`; to hold events
    /// back while asynchronous setup runs, use [`ObjectContext::block_concurrency_while`].
    fn new(ctx: ObjectContext, env: Env) -> Self;

    /// The `fetch` handler. Without one, requests get an error saying so.
    fn fetch(&self, request: Request) -> impl Future<Output = Result<Response>> {
        let _ = request;
        std::future::ready(Err(Error::new(
            "Handler does not export a fetch() function.",
        )
        .with_status(StatusCode::NOT_IMPLEMENTED)))
    }

    /// The `alarm` handler. An error makes the runtime retry it with Cloudflare's backoff.
    fn alarm(&self, info: AlarmInfo) -> impl Future<Output = Result<()>> {
        let _ = info;
        std::future::ready(Ok(()))
    }

    /// A message on a socket the object accepted (`webSocketMessage`). It wakes the object if it
    /// hibernated. Auto-response requests never get here.
    fn websocket_message(
        &self,
        ws: WebSocket,
        message: Message,
    ) -> impl Future<Output = Result<()>> {
        let _ = (ws, message);
        std::future::ready(Ok(()))
    }

    /// The client closed a socket, or its connection ended (code 1006) (`webSocketClose`).
    /// The socket is gone from [`ObjectContext::get_websockets`] after this returns.
    fn websocket_close(
        &self,
        ws: WebSocket,
        code: u16,
        reason: String,
        was_clean: bool,
    ) -> impl Future<Output = Result<()>> {
        let _ = (ws, code, reason, was_clean);
        std::future::ready(Ok(()))
    }

    /// A socket failed (`webSocketError`): a protocol error, an oversized message, or a client
    /// that did not read and was dropped with close code 1009.
    fn websocket_error(&self, ws: WebSocket, error: Error) -> impl Future<Output = Result<()>> {
        let _ = (ws, error);
        std::future::ready(Ok(()))
    }
}

/// What an object's code gets: its id, its storage and the platform's controls. Cheap to clone.
#[derive(Clone)]
pub struct ObjectContext {
    inner: burrow_runtime::ObjectContext,
}

impl ObjectContext {
    /// The object's id.
    pub fn id(&self) -> &ObjectId {
        self.inner.id()
    }

    /// The object's storage: SQL, key-value and alarm.
    pub fn storage(&self) -> Storage {
        Storage::new(self.inner.storage())
    }

    /// The runtime's clock, in epoch milliseconds (tests drive it by hand).
    pub fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }

    /// Runs `work` while every other event of this object waits. If it fails, the object is
    /// reset and the error returned. The work starts at once, so a constructor may call this
    /// without awaiting the result (as Cloudflare's `blockConcurrencyWhile` is used).
    pub fn block_concurrency_while<T: 'static>(
        &self,
        work: impl Future<Output = Result<T>> + 'static,
    ) -> impl Future<Output = Result<T>> + 'static {
        let running = self
            .inner
            .block_concurrency_while(async move { work.await.map_err(Error::into_remote) });
        async move { Ok(running.await?) }
    }

    /// Keeps the object alive until `work` finishes; it runs after the current reply is sent.
    pub fn wait_until(&self, work: impl Future<Output = ()> + 'static) {
        self.inner.wait_until(work);
    }

    /// `acceptWebSocket`: accepts `request` (an `Upgrade: websocket` request that reached this
    /// object's `fetch`, usually forwarded by the Worker with [`crate::Stub::fetch`]) as a
    /// hibernatable socket with `tags` (at most 10, each at most 256 characters). Return the
    /// response it gives (`101 Switching Protocols`) from `fetch`.
    ///
    /// Fails with a clear error past the object's socket cap (32,768 by default), or the
    /// process's (the ingress's `max_websockets`, bounded by descriptors; a 503).
    pub fn accept_websocket(
        &self,
        request: &Request,
        tags: &[&str],
    ) -> Result<(WebSocket, Response)> {
        let tags = tags.iter().map(|tag| tag.to_string()).collect();
        match burrow_http::websocket::hibernatable::accept(&self.inner, request.as_http(), tags) {
            Ok((inner, response)) => Ok((WebSocket { inner }, Response::from(response))),
            Err(burrow_http::websocket::hibernatable::AcceptError::Object(error)) => {
                Err(error.into())
            }
            Err(burrow_http::websocket::hibernatable::AcceptError::Upgrade(error)) => {
                let message = error.to_string();
                let status = error.into_response().status();
                Err(if status == StatusCode::SERVICE_UNAVAILABLE {
                    // The listener's cap (bounded by descriptors): a 503 at the Worker too.
                    Error::overloaded(message)
                } else {
                    Error::new(message).with_status(status)
                })
            }
        }
    }

    /// `getWebSockets(tag?)`: the object's open sockets, or those tagged `tag`, in the order
    /// they were accepted. After hibernation the new instance finds them here.
    pub fn get_websockets(&self, tag: Option<&str>) -> Vec<WebSocket> {
        self.inner
            .get_websockets(tag)
            .into_iter()
            .map(|inner| WebSocket { inner })
            .collect()
    }

    /// `getTags(ws)`.
    pub fn get_tags(&self, ws: &WebSocket) -> Result<Vec<String>> {
        ws.tags()
    }

    /// `setWebSocketAutoResponse`: every socket of the object answers the text message
    /// `request` with `response` (each at most 2,048 bytes) without waking the object; `None`
    /// clears it. It is kept while the object hibernates.
    pub fn set_websocket_auto_response(&self, pair: Option<(&str, &str)>) -> Result<()> {
        let pair = match pair {
            Some((request, response)) => Some(AutoResponse::new(request, response)?),
            None => None,
        };
        self.inner.set_websocket_auto_response(pair);
        Ok(())
    }

    /// `getWebSocketAutoResponse`: the pair as `(request, response)`.
    pub fn get_websocket_auto_response(&self) -> Option<(String, String)> {
        self.inner.get_websocket_auto_response().map(|pair| {
            (
                pair.request().as_str().to_owned(),
                pair.response().as_str().to_owned(),
            )
        })
    }

    /// `getWebSocketAutoResponseTimestamp(ws)`: when `ws` last got the auto-response, in epoch
    /// milliseconds.
    pub fn get_websocket_auto_response_timestamp(&self, ws: &WebSocket) -> Option<i64> {
        ws.auto_response_timestamp()
    }

    /// `setHibernatableWebSocketEventTimeout(ms?)`: a socket event handler that runs longer
    /// fails (at most 604,800,000 ms; `None` removes the timeout).
    pub fn set_websocket_event_timeout(&self, timeout_ms: Option<u64>) -> Result<()> {
        Ok(self.inner.set_websocket_event_timeout(timeout_ms)?)
    }

    /// `getHibernatableWebSocketEventTimeout()`.
    pub fn get_websocket_event_timeout(&self) -> Option<u64> {
        self.inner.get_websocket_event_timeout()
    }

    /// Resets the object: its instance is dropped and uncommitted writes are discarded; the next
    /// event constructs it again.
    pub fn abort(&self, reason: &str) {
        self.inner.abort(reason);
    }
}

/// Runs class `T` on the runtime.
pub(crate) struct Class<T> {
    env: Env,
    _class: PhantomData<fn() -> T>,
}

impl<T> Class<T> {
    pub(crate) fn new(env: Env) -> Self {
        Class {
            env,
            _class: PhantomData,
        }
    }
}

impl<T: DurableObject + Rpc> ObjectClass for Class<T> {
    fn construct(
        &self,
        ctx: burrow_runtime::ObjectContext,
    ) -> Result<Rc<dyn ObjectInstance>, ObjectError> {
        let object = T::new(ObjectContext { inner: ctx }, self.env.clone());
        Ok(Rc::new(Instance(object)))
    }
}

struct Instance<T>(T);

impl<T: DurableObject + Rpc> ObjectInstance for Instance<T> {
    fn fetch(
        self: Rc<Self>,
        request: guest::Request,
    ) -> LocalBoxFuture<'static, Result<guest::Response, ObjectError>> {
        Box::pin(async move {
            let response = match self.0.fetch(Request::from(request)).await {
                Ok(response) => response,
                Err(error) => return Err(error.into_remote()),
            };
            response.into_buffered().await.map_err(Error::into_remote)
        })
    }

    fn call(
        self: Rc<Self>,
        method: String,
        args: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, ObjectError>> {
        Box::pin(async move { self.0.dispatch(&method, args).await })
    }

    fn alarm(self: Rc<Self>, info: AlarmInfo) -> LocalBoxFuture<'static, Result<(), ObjectError>> {
        Box::pin(async move { self.0.alarm(info).await.map_err(Error::into_remote) })
    }

    fn websocket_message(
        self: Rc<Self>,
        ws: burrow_runtime::WebSocket,
        message: Message,
    ) -> LocalBoxFuture<'static, Result<(), ObjectError>> {
        Box::pin(async move {
            self.0
                .websocket_message(WebSocket { inner: ws }, message)
                .await
                .map_err(Error::into_remote)
        })
    }

    fn websocket_close(
        self: Rc<Self>,
        ws: burrow_runtime::WebSocket,
        code: u16,
        reason: String,
        was_clean: bool,
    ) -> LocalBoxFuture<'static, Result<(), ObjectError>> {
        Box::pin(async move {
            self.0
                .websocket_close(WebSocket { inner: ws }, code, reason, was_clean)
                .await
                .map_err(Error::into_remote)
        })
    }

    fn websocket_error(
        self: Rc<Self>,
        ws: burrow_runtime::WebSocket,
        error: String,
    ) -> LocalBoxFuture<'static, Result<(), ObjectError>> {
        Box::pin(async move {
            self.0
                .websocket_error(WebSocket { inner: ws }, Error::new(error))
                .await
                .map_err(Error::into_remote)
        })
    }
}
