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
}
