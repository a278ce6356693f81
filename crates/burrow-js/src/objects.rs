//! Durable Object classes written in JavaScript: [`JsClass`] plugs an exported class into the
//! runtime (`burrow_runtime::ObjectClass`), and the native calls behind `js/durable_object.js`
//! (namespace bindings, stubs, `ctx.storage`, `blockConcurrencyWhile`, `waitUntil`, `abort`).
//!
//! # How an object runs
//! The runtime constructs an instance on the object's shard, which is the thread of that shard's
//! isolate. The JavaScript object itself is made lazily, by the first event (the isolate may
//! still be loading): `new Class(ctx, env)` runs inside the isolate, and the event waits if the
//! constructor started `blockConcurrencyWhile`. Hibernation or a reset drops the instance and
//! with it the JavaScript object; the next event runs the constructor again, as on Cloudflare.
//!
//! # Gates
//! Every storage call is synchronous underneath (the promise the async API returns is already
//! settled), so no other event can be delivered while one is outstanding: the input gate holds.
//! The runtime commits the object's writes and holds the event's result until they are durable
//! (the output gate), whatever the JavaScript did. `allowConcurrency` is accepted (reads never
//! let other events in), and `allowUnconfirmed` too, but Burrow still waits for durability
//! before anything leaves the object: the stronger guarantee.
//!
//! # Handles
//! The JavaScript side names its object by a handle, a number unique on the thread; the
//! thread-local [`CONTEXTS`] maps it to the object's context while the instance lives.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use burrow_runtime::clock::LocalBoxFuture;
use burrow_runtime::guest::{self, ObjectClass, ObjectError, ObjectInstance};
use burrow_runtime::{AlarmInfo, Namespace, ObjectContext, Stub};
use burrow_storage::database::{Database, Error as DbError, JsClass as ErrorClass};
use burrow_storage::kv::ListOptions;
use burrow_storage::sql::Value as SqlValue;
use bytes::Bytes;
use rquickjs::function::{Async, Opt};
use rquickjs::{
    Array, ArrayBuffer, Ctx, Exception, Function, Object, Persistent, TypedArray, Value,
};
use tokio::sync::oneshot;
use tracing::error;

use crate::isolate::{Isolate, Outcome};
use crate::script::Script;
use crate::{JsWorker, ShardWorker};

/// The JavaScript half: namespaces, stubs, `ctx`, storage, and the object dispatch functions.
const DURABLE_OBJECT_JS: &str = include_str!("js/durable_object.js");

/// The most promise jobs a `storage.transaction()` callback may run before it must settle.
const MAX_TRANSACTION_JOBS: usize = 1_000_000;

thread_local! {
    /// The live objects of this thread's isolates, by handle.
    static CONTEXTS: RefCell<HashMap<u32, ObjectContext>> = RefCell::new(HashMap::new());
    /// `waitUntil` and `blockConcurrencyWhile` promises still running, by token.
    static HOLDS: RefCell<HashMap<u32, oneshot::Sender<Result<(), String>>>> =
        RefCell::new(HashMap::new());
    static NEXT_HANDLE: Cell<u32> = const { Cell::new(1) };
}

fn next_handle() -> u32 {
    NEXT_HANDLE.with(|next| {
        let handle = next.get();
        next.set(handle.wrapping_add(1).max(1));
        handle
    })
}

/// A JavaScript class exported by the Worker, as the runtime runs it.
pub(crate) struct JsClass {
    pub(crate) worker: Arc<JsWorker>,
    pub(crate) class_name: String,
}

impl ObjectClass for JsClass {
    fn construct(&self, ctx: ObjectContext) -> Result<Rc<dyn ObjectInstance>, ObjectError> {
        let shard = self
            .worker
            .shard_local()
            .ok_or_else(|| ObjectError::retryable("the Worker has not started yet"))?;
        let handle = next_handle();
        CONTEXTS.with(|contexts| contexts.borrow_mut().insert(handle, ctx.clone()));
        Ok(Rc::new(JsInstance {
            shard,
            class_name: self.class_name.clone(),
            ctx,
            handle,
            live: RefCell::new(None),
        }))
    }
}

/// The JavaScript object and its isolate. The object is first so that it is dropped first: it
/// must go before the isolate (its runtime) does.
type Live = (Persistent<Object<'static>>, Rc<Isolate>);

/// One active object: its context, and its JavaScript object once the first event made it.
struct JsInstance {
    shard: Rc<ShardWorker>,
    class_name: String,
    ctx: ObjectContext,
    handle: u32,
    live: RefCell<Option<Live>>,
}

impl Drop for JsInstance {
    fn drop(&mut self) {
        let _ = CONTEXTS.try_with(|contexts| contexts.borrow_mut().remove(&self.handle));
    }
}

impl JsInstance {
    /// The JavaScript object, constructed in the shard's current isolate if it is not there yet
    /// (first event, or the isolate was replaced after a limit or a reload).
    async fn object(self: &Rc<Self>) -> Result<Live, ObjectError> {
        let isolate = self.shard.isolate().await.map_err(|message| {
            ObjectError::internal(format!("the Worker did not load: {message}"))
        })?;
        if let Some((object, current)) = self.live.borrow().as_ref()
            && Rc::ptr_eq(current, &isolate)
        {
            return Ok((object.clone(), current.clone()));
        }
        let this = self.clone();
        let for_closure = isolate.clone();
        let object = isolate
            .with(move |ctx, internals, env| {
                if let Some((object, current)) = this.live.borrow().as_ref()
                    && Rc::ptr_eq(current, &for_closure)
                {
                    return Ok(object.clone());
                }
                let construct: Function = internals.get("objectConstruct")?;
                let id = this.ctx.id();
                let instance: Object = construct.call((
                    this.class_name.as_str(),
                    this.handle,
                    id.to_string(),
                    id.name().map(str::to_owned),
                    env,
                ))?;
                let saved = Persistent::save(ctx, instance);
                let old = this.live.borrow_mut().replace((saved.clone(), for_closure));
                drop(old);
                Ok(saved)
            })
            .await
            .map_err(|message| {
                error!(worker = %self.shard.script.name, class = %self.class_name, "Durable Object constructor threw: {message}");
                ObjectError::remote(first_line(&message))
            })?;
        // The constructor may have started blockConcurrencyWhile: this event waits for it.
        self.ctx.wait_unblocked().await;
        Ok((object, isolate))
    }

    /// Runs one event on the JavaScript object through the dispatch function `dispatch`.
    async fn event<F>(
        self: &Rc<Self>,
        dispatch: &'static str,
        args: F,
    ) -> Result<Outcome, ObjectError>
    where
        F: for<'js> FnOnce(&Ctx<'js>) -> rquickjs::Result<Vec<Value<'js>>>,
    {
        let (object, isolate) = self.object().await?;
        let outcome = isolate
            .event(move |ctx, internals, _handlers, _env, id| {
                let instance = object.restore(ctx)?;
                let function: Function = internals.get(dispatch)?;
                let rest = args(ctx)?;
                let mut call = rquickjs::function::Args::new(ctx.clone(), rest.len() + 2);
                call.push_arg(id)?;
                call.push_arg(instance)?;
                for arg in rest {
                    call.push_arg(arg)?;
                }
                function.call_arg::<()>(call)
            })
            .await;
        match outcome {
            Outcome::Exception(text) => Err(self.thrown(&text)),
            Outcome::Exceeded(exceeded) => Err(ObjectError::internal(format!(
                "Worker exceeded resource limits ({})",
                exceeded.outcome()
            ))),
            done => Ok(done),
        }
    }

    /// An exception from the object's code: logged with its stack; the caller gets the message.
    fn thrown(&self, text: &str) -> ObjectError {
        let (message, detail) = match text.strip_prefix('\0') {
            Some(json) => {
                let parsed: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
                let field = |name: &str| parsed[name].as_str().unwrap_or_default().to_owned();
                let message = field("message");
                let detail = format!("{}: {}\n{}", field("name"), message, field("stack"));
                (message, detail)
            }
            None => (first_line(text), text.to_owned()),
        };
        error!(worker = %self.shard.script.name, class = %self.class_name, object = %self.ctx.id(), "uncaught exception in Durable Object: {}", detail.trim_end());
        ObjectError::remote(message)
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

impl ObjectInstance for JsInstance {
    fn fetch(
        self: Rc<Self>,
        request: guest::Request,
    ) -> LocalBoxFuture<'static, Result<guest::Response, ObjectError>> {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let url = if parts.uri.scheme().is_some() {
                parts.uri.to_string()
            } else {
                format!(
                    "http://localhost{}",
                    parts.uri.path_and_query().map_or("/", |p| p.as_str())
                )
            };
            let method = parts.method.as_str().to_owned();
            let headers: Vec<(String, String)> = parts
                .headers
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let outcome = self
                .event("objectFetch", move |ctx| {
                    let list = Array::new(ctx.clone())?;
                    for (index, (name, value)) in headers.into_iter().enumerate() {
                        let pair = Array::new(ctx.clone())?;
                        pair.set(0, name)?;
                        pair.set(1, value)?;
                        list.set(index, pair)?;
                    }
                    let body = if body.is_empty() {
                        Value::new_undefined(ctx.clone())
                    } else {
                        ArrayBuffer::new_copy(ctx.clone(), &body[..])?.into_value()
                    };
                    Ok(vec![
                        rquickjs::String::from_str(ctx.clone(), &url)?.into_value(),
                        rquickjs::String::from_str(ctx.clone(), &method)?.into_value(),
                        list.into_value(),
                        body,
                    ])
                })
                .await?;
            let Outcome::Done {
                status,
                headers,
                body,
            } = outcome
            else {
                return Err(ObjectError::internal("fetch produced no response"));
            };
            let mut response = http::Response::new(body);
            *response.status_mut() = http::StatusCode::from_u16(status)
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
            for pair in headers.chunks_exact(2) {
                if let (Ok(name), Ok(value)) = (
                    http::HeaderName::from_bytes(pair[0].as_bytes()),
                    http::HeaderValue::from_str(&pair[1]),
                ) {
                    response.headers_mut().append(name, value);
                }
            }
            Ok(response)
        })
    }

    fn call(
        self: Rc<Self>,
        method: String,
        args: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, ObjectError>> {
        Box::pin(async move {
            let payload = String::from_utf8(args.to_vec())
                .map_err(|_| ObjectError::internal("RPC arguments are not UTF-8"))?;
            match self
                .event("objectCall", move |ctx| {
                    Ok(vec![
                        rquickjs::String::from_str(ctx.clone(), &method)?.into_value(),
                        rquickjs::String::from_str(ctx.clone(), &payload)?.into_value(),
                    ])
                })
                .await?
            {
                Outcome::Done { body, .. } => Ok(body),
                _ => Err(ObjectError::internal("the RPC call produced no result")),
            }
        })
    }

    fn alarm(self: Rc<Self>, info: AlarmInfo) -> LocalBoxFuture<'static, Result<(), ObjectError>> {
        Box::pin(async move {
            self.event("objectAlarm", move |ctx| {
                Ok(vec![Value::new_number(
                    ctx.clone(),
                    f64::from(info.retry_count),
                )])
            })
            .await
            .map(drop)
        })
    }
}

/// Adds the Durable Object namespace bindings to `env`.
pub(crate) fn add_env<'js>(
    internals: &Object<'js>,
    env: &Object<'js>,
    script: &Script,
) -> rquickjs::Result<()> {
    if script.durable_objects.is_empty() {
        return Ok(());
    }
    let make: Function = internals.get("durableObjectNamespace")?;
    for binding in script.durable_objects.keys() {
        let namespace: Object = make.call((binding.as_str(),))?;
        env.set(binding.as_str(), namespace)?;
    }
    Ok(())
}

/// Evaluates `js/durable_object.js` with the natives and the prelude's internals.
pub(crate) fn install_js<'js>(
    ctx: &Ctx<'js>,
    native: &Object<'js>,
    internals: &Object<'js>,
) -> rquickjs::Result<()> {
    let install: Function = ctx.eval(DURABLE_OBJECT_JS)?;
    install.call::<_, ()>((native.clone(), internals.clone()))
}

/// A namespace binding of the Worker.
pub(crate) struct Binding(pub(crate) Namespace);

impl std::fmt::Debug for Binding {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "DurableObjectNamespace({})", self.0.class_name())
    }
}

fn namespace<'a>(
    ctx: &Ctx<'_>,
    script: &'a Script,
    binding: &str,
) -> rquickjs::Result<&'a Namespace> {
    script
        .durable_objects
        .get(binding)
        .map(|binding| &binding.0)
        .ok_or_else(|| {
            Exception::throw_internal(ctx, &format!("no Durable Object binding {binding:?}"))
        })
}

fn stub(ctx: &Ctx<'_>, script: &Script, binding: &str, id: &str) -> rquickjs::Result<Stub> {
    let namespace = namespace(ctx, script, binding)?;
    let id = namespace
        .id_from_string(id)
        .map_err(|error| Exception::throw_type(ctx, &error.to_string()))?;
    Ok(namespace.get(id))
}

/// `[message, remote, retryable, overloaded]` for the JavaScript side.
fn error_info<'js>(ctx: &Ctx<'js>, error: &ObjectError) -> rquickjs::Result<Array<'js>> {
    let info = Array::new(ctx.clone())?;
    info.set(0, error.message.as_str())?;
    info.set(1, error.remote)?;
    info.set(2, error.retryable)?;
    info.set(3, error.overloaded)?;
    Ok(info)
}

fn context(ctx: &Ctx<'_>, handle: u32) -> rquickjs::Result<ObjectContext> {
    CONTEXTS
        .with(|contexts| contexts.borrow().get(&handle).cloned())
        .ok_or_else(|| {
            Exception::throw_message(
                ctx,
                "This Durable Object was reset or hibernated: its storage is no longer reachable from this instance.",
            )
        })
}

fn storage_error(ctx: &Ctx<'_>, error: &DbError) -> rquickjs::Error {
    let message = error.to_string();
    match error.js_class() {
        ErrorClass::TypeError => Exception::throw_type(ctx, &message),
        ErrorClass::RangeError => Exception::throw_range(ctx, &message),
        ErrorClass::Error => Exception::throw_message(ctx, &message),
    }
}

/// Runs `f` on the object's database, with the storage API's errors as JavaScript errors.
fn db<R>(
    ctx: &Ctx<'_>,
    handle: u32,
    f: impl FnOnce(&mut Database) -> Result<R, DbError>,
) -> rquickjs::Result<R> {
    let object = context(ctx, handle)?;
    match object.storage().with(|db| Ok(f(db))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(storage_error(ctx, &error)),
        Err(error) => Err(Exception::throw_message(ctx, &error.message)),
    }
}

fn platform<R>(ctx: &Ctx<'_>, result: Result<R, ObjectError>) -> rquickjs::Result<R> {
    result.map_err(|error| Exception::throw_message(ctx, &error.message))
}

fn utf8(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
}

fn pairs<'js>(ctx: &Ctx<'js>, entries: Vec<(String, Vec<u8>)>) -> rquickjs::Result<Array<'js>> {
    let list = Array::new(ctx.clone())?;
    for (index, (key, value)) in entries.into_iter().enumerate() {
        let pair = Array::new(ctx.clone())?;
        pair.set(0, key)?;
        pair.set(1, utf8(value))?;
        list.set(index, pair)?;
    }
    Ok(list)
}

fn sql_binding<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> rquickjs::Result<SqlValue> {
    if value.is_null() || value.is_undefined() {
        return Ok(SqlValue::Null);
    }
    if let Some(number) = value.as_number() {
        return Ok(SqlValue::Real(number));
    }
    if let Some(flag) = value.as_bool() {
        return Ok(SqlValue::Integer(i64::from(flag)));
    }
    if let Some(text) = value.as_string() {
        return Ok(SqlValue::Text(text.to_string()?));
    }
    if let Some(big) = value.as_big_int() {
        return Ok(SqlValue::Integer(big.clone().to_i64()?));
    }
    if let Some(object) = value.as_object() {
        if let Some(buffer) = ArrayBuffer::from_object(object.clone()) {
            return Ok(SqlValue::Blob(
                buffer.as_bytes().unwrap_or_default().to_vec(),
            ));
        }
        if let Ok(view) = TypedArray::<u8>::from_object(object.clone()) {
            return Ok(SqlValue::Blob(view.as_bytes().unwrap_or_default().to_vec()));
        }
        let buffer: Option<ArrayBuffer> = object.get("buffer").ok();
        if let Some(buffer) = buffer {
            let offset: usize = object.get("byteOffset").unwrap_or(0);
            let length: usize = object.get("byteLength").unwrap_or(0);
            let bytes = buffer.as_bytes().unwrap_or_default();
            if let Some(slice) = bytes.get(offset..offset.saturating_add(length)) {
                return Ok(SqlValue::Blob(slice.to_vec()));
            }
        }
    }
    Err(Exception::throw_type(
        ctx,
        "Unsupported type for SQL binding: use a string, number, ArrayBuffer or null.",
    ))
}

fn sql_value<'js>(ctx: &Ctx<'js>, value: SqlValue) -> rquickjs::Result<Value<'js>> {
    Ok(match value {
        SqlValue::Null => Value::new_null(ctx.clone()),
        SqlValue::Integer(integer) => Value::new_number(ctx.clone(), integer as f64),
        SqlValue::Real(real) => Value::new_number(ctx.clone(), real),
        SqlValue::Text(text) => rquickjs::String::from_str(ctx.clone(), &text)?.into_value(),
        SqlValue::Blob(bytes) => ArrayBuffer::new(ctx.clone(), bytes)?.into_value(),
    })
}

/// Adds the native calls of `js/durable_object.js` to the prelude's `native` object.
pub(crate) fn install_natives<'js>(
    ctx: &Ctx<'js>,
    native: &Object<'js>,
    script: &Arc<Script>,
) -> rquickjs::Result<()> {
    // --- IDs and stubs.
    let s = script.clone();
    native.set(
        "doIdFromName",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, binding: String, name: String| {
                Ok::<_, rquickjs::Error>(
                    namespace(&ctx, &s, &binding)?
                        .id_from_name(&name)
                        .to_string(),
                )
            },
        )?,
    )?;
    let s = script.clone();
    native.set(
        "doNewUniqueId",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, binding: String| {
            Ok::<_, rquickjs::Error>(namespace(&ctx, &s, &binding)?.new_unique_id().to_string())
        })?,
    )?;
    let s = script.clone();
    native.set(
        "doIdFromString",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, binding: String, text: String| {
                let namespace = namespace(&ctx, &s, &binding)?;
                namespace
                    .id_from_string(&text)
                    .map(|id| id.to_string())
                    .map_err(|error| Exception::throw_type(&ctx, &error.to_string()))
            },
        )?,
    )?;
    let s = script.clone();
    native.set(
        "doFetch",
        Function::new(
            ctx.clone(),
            Async(
                move |ctx: Ctx<'js>,
                      binding: String,
                      id: String,
                      url: String,
                      method: String,
                      headers: Vec<String>,
                      body: Opt<Option<ArrayBuffer<'js>>>| {
                    let stub = stub(&ctx, &s, &binding, &id);
                    let body = body
                        .0
                        .flatten()
                        .map(|b| Bytes::copy_from_slice(b.as_bytes().unwrap_or_default()))
                        .unwrap_or_default();
                    let mut request = http::Request::builder()
                        .method(method.as_str())
                        .uri(url.as_str());
                    for pair in headers.chunks_exact(2) {
                        request = request.header(pair[0].as_str(), pair[1].as_str());
                    }
                    let request = request.body(body);
                    async move {
                        let stub = stub?;
                        let request = request.map_err(|error| {
                            Exception::throw_type(&ctx, &format!("invalid request: {error}"))
                        })?;
                        let answer = Array::new(ctx.clone())?;
                        match stub.fetch(request).await {
                            Ok(response) => {
                                answer.set(0, false)?;
                                answer.set(1, response.status().as_u16())?;
                                let headers = Array::new(ctx.clone())?;
                                let mut index = 0;
                                for (name, value) in response.headers() {
                                    headers.set(index, name.as_str())?;
                                    headers.set(
                                        index + 1,
                                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                                    )?;
                                    index += 2;
                                }
                                answer.set(2, headers)?;
                                answer.set(
                                    3,
                                    ArrayBuffer::new_copy(ctx.clone(), &response.body()[..])?,
                                )?;
                            }
                            Err(error) => {
                                answer.set(0, true)?;
                                answer.set(1, error_info(&ctx, &error)?)?;
                            }
                        }
                        Ok::<_, rquickjs::Error>(answer)
                    }
                },
            ),
        )?,
    )?;
    let s = script.clone();
    native.set(
        "doCall",
        Function::new(
            ctx.clone(),
            Async(
                move |ctx: Ctx<'js>,
                      binding: String,
                      id: String,
                      method: String,
                      payload: String| {
                    let stub = stub(&ctx, &s, &binding, &id);
                    async move {
                        let stub = stub?;
                        let answer = Array::new(ctx.clone())?;
                        match stub.call(&method, Bytes::from(payload)).await {
                            Ok(bytes) => {
                                answer.set(0, false)?;
                                answer.set(1, utf8(bytes.to_vec()))?;
                            }
                            Err(error) => {
                                answer.set(0, true)?;
                                answer.set(1, error_info(&ctx, &error)?)?;
                            }
                        }
                        Ok::<_, rquickjs::Error>(answer)
                    }
                },
            ),
        )?,
    )?;

    // --- key-value storage.
    native.set(
        "doKvGet",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, handle: u32, key: String| {
            Ok::<_, rquickjs::Error>(db(&ctx, handle, |db| db.get(&key))?.map(utf8))
        })?,
    )?;
    native.set(
        "doKvGetMany",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, handle: u32, keys: Vec<String>| {
                let found = db(&ctx, handle, |db| db.get_many(&keys))?;
                pairs(&ctx, found)
            },
        )?,
    )?;
    native.set(
        "doKvPut",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, handle: u32, entries: Vec<Vec<String>>| {
                let entries: Vec<(String, String)> = entries
                    .into_iter()
                    .filter_map(|mut pair| {
                        let value = pair.pop()?;
                        let key = pair.pop()?;
                        Some((key, value))
                    })
                    .collect();
                db(&ctx, handle, |db| match entries.as_slice() {
                    [(key, value)] => db.put(key, value.as_bytes()),
                    many => db.put_many(
                        &many
                            .iter()
                            .map(|(key, value)| (key.as_str(), value.as_bytes()))
                            .collect::<Vec<_>>(),
                    ),
                })
            },
        )?,
    )?;
    native.set(
        "doKvDelete",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, handle: u32, keys: Vec<String>| {
                db(&ctx, handle, |db| match keys.as_slice() {
                    [key] => db.delete(key).map(usize::from),
                    many => db.delete_many(many),
                })
            },
        )?,
    )?;
    native.set(
        "doKvList",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, handle: u32, options: Array<'js>| {
                let limit: Option<f64> = options.get(5)?;
                let options = ListOptions {
                    start: options.get(0)?,
                    start_after: options.get(1)?,
                    end: options.get(2)?,
                    prefix: options.get(3)?,
                    reverse: options.get(4)?,
                    limit: limit.map(|limit| limit.clamp(0.0, usize::MAX as f64) as usize),
                };
                let found = db(&ctx, handle, |db| db.list(&options))?;
                pairs(&ctx, found)
            },
        )?,
    )?;
    native.set(
        "doDeleteAll",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, handle: u32| {
            let object = context(&ctx, handle)?;
            platform(&ctx, object.storage().delete_all())
        })?,
    )?;

    // --- alarms.
    native.set(
        "doGetAlarm",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, handle: u32| {
            let object = context(&ctx, handle)?;
            Ok::<_, rquickjs::Error>(
                platform(&ctx, object.storage().get_alarm())?.map(|ms| ms as f64),
            )
        })?,
    )?;
    native.set(
        "doSetAlarm",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, handle: u32, at_ms: f64| {
            let object = context(&ctx, handle)?;
            platform(&ctx, object.storage().set_alarm(at_ms as i64))
        })?,
    )?;
    native.set(
        "doDeleteAlarm",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, handle: u32| {
            let object = context(&ctx, handle)?;
            platform(&ctx, object.storage().delete_alarm())
        })?,
    )?;

    // --- durability and transactions.
    native.set(
        "doSync",
        Function::new(
            ctx.clone(),
            Async(|ctx: Ctx<'js>, handle: u32| {
                let object = context(&ctx, handle);
                async move {
                    let storage = object?.storage();
                    platform(&ctx, storage.sync().await)
                }
            }),
        )?,
    )?;
    native.set(
        "doTxBegin",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, handle: u32| {
            db(&ctx, handle, |db| db.begin_transaction().map(drop))
        })?,
    )?;
    native.set(
        "doTxEnd",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, handle: u32, keep: bool| {
            db(&ctx, handle, |db| db.end_transaction(keep))
        })?,
    )?;
    native.set(
        "doTxRollback",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, handle: u32| {
            db(&ctx, handle, |db| {
                db.rollback_transaction();
                Ok(())
            })
        })?,
    )?;
    native.set(
        "doPump",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, settled: Function<'js>| {
            for _ in 0..MAX_TRANSACTION_JOBS {
                if settled.call::<_, bool>(())? {
                    return Ok::<_, rquickjs::Error>(true);
                }
                if !ctx.execute_pending_job() {
                    return settled.call::<_, bool>(());
                }
            }
            settled.call::<_, bool>(())
        })?,
    )?;

    // --- SQL.
    native.set(
        "doSqlExec",
        Function::new(
            ctx.clone(),
            |ctx: Ctx<'js>, handle: u32, query: String, bindings: Vec<Value<'js>>| {
                let params = bindings
                    .into_iter()
                    .map(|value| sql_binding(&ctx, value))
                    .collect::<rquickjs::Result<Vec<_>>>()?;
                let cursor = db(&ctx, handle, |db| db.exec(&query, &params))?;
                let answer = Array::new(ctx.clone())?;
                answer.set(0, cursor.column_names)?;
                let rows = Array::new(ctx.clone())?;
                for (index, row) in cursor.rows.into_iter().enumerate() {
                    let values = Array::new(ctx.clone())?;
                    for (column, value) in row.into_iter().enumerate() {
                        values.set(column, sql_value(&ctx, value)?)?;
                    }
                    rows.set(index, values)?;
                }
                answer.set(1, rows)?;
                answer.set(2, cursor.rows_read as f64)?;
                answer.set(3, cursor.rows_written as f64)?;
                Ok::<_, rquickjs::Error>(answer)
            },
        )?,
    )?;
    native.set(
        "doSqlSize",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, handle: u32| {
            Ok::<_, rquickjs::Error>(db(&ctx, handle, |db| db.database_size())? as f64)
        })?,
    )?;

    // --- the object's controls.
    native.set(
        "doHold",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, handle: u32, kind: u32| {
            let object = context(&ctx, handle)?;
            let token = next_handle();
            let (sender, receiver) = oneshot::channel::<Result<(), String>>();
            HOLDS.with(|holds| holds.borrow_mut().insert(token, sender));
            if kind == 1 {
                // The returned future is not needed: the work runs (and releases) on its own.
                drop(object.block_concurrency_while(async move {
                    match receiver.await {
                        Ok(Err(message)) => Err(ObjectError::remote(message)),
                        _ => Ok(()),
                    }
                }));
            } else {
                object.wait_until(async move {
                    let _ = receiver.await;
                });
            }
            Ok::<_, rquickjs::Error>(token)
        })?,
    )?;
    native.set(
        "doRelease",
        Function::new(ctx.clone(), |token: u32, ok: bool, message: Opt<String>| {
            if let Some(sender) = HOLDS.with(|holds| holds.borrow_mut().remove(&token)) {
                let _ = sender.send(if ok {
                    Ok(())
                } else {
                    Err(message.0.unwrap_or_default())
                });
            }
        })?,
    )?;
    native.set(
        "doAbort",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, handle: u32, reason: String| {
            let object = context(&ctx, handle)?;
            object.abort(&reason);
            Ok::<_, rquickjs::Error>(())
        })?,
    )?;
    Ok(())
}
