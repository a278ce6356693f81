//! One isolate: a QuickJS runtime and context for one (shard, script), its globals, the loaded
//! main module, and the running of events (fetch, scheduled) with the CPU and memory limits.
//!
//! Events go in through `AsyncContext::with` and come back through the native `done`/`fail`
//! callbacks, which answer the event's oneshot channel. Promise jobs run right after each entry
//! and otherwise in the runtime's driver task on the shard's `LocalSet`.
//!
//! Limits: QuickJS calls the interrupt handler while JavaScript runs. The meter counts one slice
//! of CPU from the moment JavaScript is entered (every entry, and every tick of a heartbeat task
//! that can only run while no JavaScript runs, start a new slice); a slice longer than the CPU
//! limit is interrupted. Going over the CPU or memory limit condemns the isolate as workerd does:
//! every event in flight on it fails with `exceededCpu` / `exceededMemory`, and the shard builds
//! a fresh isolate for the next event.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rquickjs::function::{Async, Opt};
use rquickjs::{
    ArrayBuffer, AsyncContext, AsyncRuntime, CatchResultExt, CaughtError, Ctx, Function, Module,
    Object, Persistent, TypedArray, Value,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::bindings;
use crate::modules::{WorkerLoader, WorkerResolver};
use crate::script::Script;
use crate::streaming::Streams;

/// A request body for the `fetch` handler.
pub(crate) enum RequestBody {
    /// GET, HEAD, or an empty body: `request.body` is null.
    None,
    /// Read before the event (small bodies of known length).
    Full(Bytes),
    /// Read as the Worker pulls from `request.body`.
    Stream(burrow_http::Body),
}

/// The JavaScript half of the globals and the dispatch functions.
const PRELUDE: &str = include_str!("js/prelude.js");

/// Which limit an event went over (Cloudflare's outcome names in [`Exceeded::outcome`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    /// The CPU time per event.
    Cpu,
    /// The memory of the isolate.
    Memory,
}

impl Exceeded {
    /// Cloudflare's outcome name.
    pub fn outcome(self) -> &'static str {
        match self {
            Exceeded::Cpu => "exceededCpu",
            Exceeded::Memory => "exceededMemory",
        }
    }
}

/// How one event ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The handler finished: a Response's status, headers (name, value, name, value, ...) and
    /// body; for `scheduled`, status 1 when `noRetry()` was called.
    Done {
        status: u16,
        headers: Vec<String>,
        body: Bytes,
    },
    /// The handler's Response has a stream body: its chunks arrive in `body` as the Worker
    /// produces them (`streaming`).
    Streaming {
        status: u16,
        headers: Vec<String>,
        body: burrow_http::Body,
    },
    /// The handler's Response carries the client end of a WebSocketPair: accept the upgrade and
    /// run `driver` for socket `socket` (`websocket`).
    WebSocket {
        headers: Vec<String>,
        socket: u32,
        driver: burrow_http::websocket::Driver,
    },
    /// The handler threw or rejected: the error with its stack.
    Exception(String),
    /// The event went over a limit.
    Exceeded(Exceeded),
}

pub(crate) type Pending = Rc<RefCell<HashMap<u32, oneshot::Sender<Outcome>>>>;

/// Counts CPU slices for the interrupt handler.
struct Meter {
    epoch: Cell<u64>,
    seen: Cell<u64>,
    slice_start: Cell<Instant>,
    limit: Duration,
}

impl Meter {
    fn new(limit: Duration) -> Meter {
        Meter {
            epoch: Cell::new(0),
            seen: Cell::new(0),
            slice_start: Cell::new(Instant::now()),
            limit,
        }
    }

    /// JavaScript is about to be entered (or has not run since the last call).
    fn boundary(&self) {
        self.epoch.set(self.epoch.get().wrapping_add(1));
    }

    /// From the interrupt handler: whether the running slice is over the limit.
    fn over(&self) -> bool {
        let now = Instant::now();
        if self.seen.get() != self.epoch.get() {
            self.seen.set(self.epoch.get());
            self.slice_start.set(now);
            return false;
        }
        now.duration_since(self.slice_start.get()) > self.limit
    }
}

/// The state the native callbacks share with the isolate.
struct Shared {
    pending: Pending,
    condemned: Cell<Option<Exceeded>>,
    /// The waker of the runtime's driver task (see [`drain_jobs`]).
    driver: RefCell<Option<Waker>>,
    streams: Rc<Streams>,
    sockets: Rc<crate::websocket::Sockets>,
    /// The Worker's JavaScript time, shared by its isolates ([`Script::cpu_nanos`]).
    cpu_nanos: Arc<AtomicU64>,
    /// Heap size (bytes) past which [`drain_jobs`] runs the cycle collector.
    next_gc: Cell<i64>,
    /// When [`collect_garbage`] last measured the heap.
    gc_checked: Cell<Instant>,
}

impl Shared {
    /// Runs `f` (JavaScript, synchronously on this thread) and counts its time as the Worker's
    /// CPU time. The shard thread does nothing else meanwhile, so the elapsed time is CPU time
    /// unless the operating system preempts the thread.
    fn charge<R>(&self, f: impl FnOnce() -> R) -> R {
        let started = Instant::now();
        let result = f();
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.cpu_nanos.fetch_add(nanos, Ordering::Relaxed);
        result
    }

    /// Marks the isolate as over a limit and fails every event in flight on it.
    fn condemn(&self, exceeded: Exceeded) {
        if self.condemned.get().is_none() {
            self.condemned.set(Some(exceeded));
        }
        if let Ok(mut pending) = self.pending.try_borrow_mut() {
            for (_, sender) in pending.drain() {
                let _ = sender.send(Outcome::Exceeded(exceeded));
            }
        }
        self.streams.abort_all(exceeded.outcome());
        self.sockets.close_all(exceeded.outcome());
    }
}

/// A loaded Worker on one shard. Fields drop in order: the saved values before the context,
/// the context before the runtime.
pub(crate) struct Isolate {
    internals: Persistent<Object<'static>>,
    handlers: Persistent<Object<'static>>,
    env: Persistent<Object<'static>>,
    context: AsyncContext,
    runtime: AsyncRuntime,
    shared: Rc<Shared>,
    meter: Rc<Meter>,
    next_id: Cell<u32>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Isolate {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Isolate {
    /// Builds the runtime, the globals and `env`, and loads the main module. The error is what
    /// a developer needs: the file and line of a syntax or resolution error, or the exception.
    pub(crate) async fn create(script: Arc<Script>) -> Result<Isolate, String> {
        let runtime = AsyncRuntime::new()
            .map_err(|error| format!("cannot create a JavaScript runtime: {error}"))?;
        runtime.set_memory_limit(script.limits.memory_bytes).await;
        // QuickJS never collects cycles on its own here: see `collect_garbage`.
        runtime.set_gc_threshold(usize::MAX).await;
        runtime.set_max_stack_size(script.limits.stack_bytes).await;
        runtime
            .set_loader(WorkerResolver::new(script.root.clone()), WorkerLoader)
            .await;
        let meter = Rc::new(Meter::new(script.limits.cpu));
        let shared = Rc::new(Shared {
            pending: Rc::default(),
            condemned: Cell::new(None),
            driver: RefCell::new(None),
            streams: Rc::default(),
            sockets: Rc::default(),
            cpu_nanos: script.cpu_nanos.clone(),
            next_gc: Cell::new(MIN_GC_THRESHOLD),
            gc_checked: Cell::new(Instant::now()),
        });
        {
            let meter = meter.clone();
            let shared = shared.clone();
            runtime
                .set_interrupt_handler(Some(Box::new(move || {
                    if shared.condemned.get().is_some() {
                        return true;
                    }
                    if meter.over() {
                        shared.condemn(Exceeded::Cpu);
                        return true;
                    }
                    false
                })))
                .await;
        }
        let context = AsyncContext::full(&runtime)
            .await
            .map_err(|error| format!("cannot create a JavaScript context: {error}"))?;

        let mut tasks = vec![tokio::task::spawn_local(Driving {
            drive: Box::pin(runtime.drive()),
            shared: shared.clone(),
        })];
        let heartbeat =
            (script.limits.cpu / 4).clamp(Duration::from_millis(1), Duration::from_millis(50));
        {
            let meter = Rc::downgrade(&meter);
            tasks.push(tokio::task::spawn_local(async move {
                let mut ticks = tokio::time::interval(heartbeat);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let Some(meter) = meter.upgrade() else { return };
                    meter.boundary();
                }
            }));
        }

        let load_id = 0;
        let (sender, receiver) = oneshot::channel();
        shared.pending.borrow_mut().insert(load_id, sender);
        meter.boundary();
        let set_up =
            context
                .with(
                    |ctx| -> Result<
                        (Persistent<Object<'static>>, Persistent<Object<'static>>),
                        String,
                    > {
                        let internals = install_globals(&ctx, &shared, &script)
                            .map_err(|e| describe(&ctx, e))?;
                        let env = bindings::env(&ctx, &internals, &script)
                            .catch(&ctx)
                            .map_err(|e| caught(&e))?;
                        let set_env: Function = internals
                            .get("setEnv")
                            .catch(&ctx)
                            .map_err(|e| caught(&e))?;
                        set_env
                            .call::<_, ()>((env.clone(),))
                            .catch(&ctx)
                            .map_err(|e| caught(&e))?;
                        let main = script
                            .main
                            .to_str()
                            .ok_or("the main module's path is not UTF-8")?;
                        let promise = Module::import(&ctx, main)
                            .catch(&ctx)
                            .map_err(|e| caught(&e))?;
                        let load: Function =
                            internals.get("load").catch(&ctx).map_err(|e| caught(&e))?;
                        load.call::<_, ()>((load_id, promise))
                            .catch(&ctx)
                            .map_err(|e| caught(&e))?;
                        Ok((
                            Persistent::save(&ctx, internals),
                            Persistent::save(&ctx, env),
                        ))
                    },
                )
                .await;
        let (internals, env) = match set_up {
            Ok(saved) => saved,
            Err(error) => {
                shared.pending.borrow_mut().clear();
                return Err(error);
            }
        };
        let isolate_parts = (internals, env);
        drain_jobs(&runtime, &meter, &shared).await;
        match receiver.await {
            Ok(Outcome::Done { .. } | Outcome::Streaming { .. } | Outcome::WebSocket { .. }) => {}
            Ok(Outcome::Exception(error)) => return Err(error),
            Ok(Outcome::Exceeded(exceeded)) => {
                return Err(format!(
                    "loading the main module went over the {} limit ({})",
                    match exceeded {
                        Exceeded::Cpu => "CPU time",
                        Exceeded::Memory => "memory",
                    },
                    exceeded.outcome()
                ));
            }
            Err(_) => return Err("loading the main module did not finish".to_owned()),
        }
        let (internals, env) = isolate_parts;
        let handlers = context
            .with(|ctx| -> Result<Persistent<Object<'static>>, String> {
                let internals = internals.clone().restore(&ctx).map_err(|e| e.to_string())?;
                let handlers: Object = internals
                    .get("current")
                    .catch(&ctx)
                    .map_err(|e| caught(&e))?;
                Ok(Persistent::save(&ctx, handlers))
            })
            .await?;
        Ok(Isolate {
            internals,
            handlers,
            env,
            context,
            runtime,
            shared,
            meter,
            next_id: Cell::new(1),
            tasks,
        })
    }

    /// The isolate's open WebSockets.
    pub(crate) fn sockets(&self) -> &crate::websocket::Sockets {
        &self.shared.sockets
    }

    /// Whether the isolate went over a limit and must not take new events.
    pub(crate) fn condemned(&self) -> Option<Exceeded> {
        self.shared.condemned.get()
    }

    /// Runs the `fetch` handler for one request.
    pub(crate) async fn fetch(
        &self,
        url: String,
        method: String,
        headers: Vec<(String, String)>,
        body: RequestBody,
    ) -> Outcome {
        let streams = self.shared.streams.clone();
        self.event(move |ctx, internals, handlers, env, id| {
            let headers = {
                let list = rquickjs::Array::new(ctx.clone())?;
                for (index, (name, value)) in headers.into_iter().enumerate() {
                    let pair = rquickjs::Array::new(ctx.clone())?;
                    pair.set(0, name)?;
                    pair.set(1, value)?;
                    list.set(index, pair)?;
                }
                list
            };
            let body: Value = match body {
                RequestBody::Full(bytes) => {
                    ArrayBuffer::new_copy(ctx.clone(), &bytes[..])?.into_value()
                }
                RequestBody::Stream(body) => {
                    streams.add_request_body(id, body);
                    Value::new_bool(ctx.clone(), true)
                }
                RequestBody::None => Value::new_undefined(ctx.clone()),
            };
            let fetch: Function = internals.get("fetch")?;
            fetch.call::<_, ()>((id, handlers, env, url, method, headers, body))
        })
        .await
    }

    /// Runs the `scheduled` handler for one cron fire.
    pub(crate) async fn scheduled(&self, cron: String, scheduled_time_ms: i64) -> Outcome {
        self.event(move |_ctx, internals, handlers, env, id| {
            let scheduled: Function = internals.get("scheduled")?;
            scheduled.call::<_, ()>((id, handlers, env, cron, scheduled_time_ms as f64))
        })
        .await
    }

    /// Runs `f` in the isolate with the prelude's internals and `env`, then the promise jobs it
    /// queued. The error is the caught exception, as text.
    pub(crate) async fn with<R, F>(&self, f: F) -> Result<R, String>
    where
        F: for<'js> FnOnce(&Ctx<'js>, Object<'js>, Object<'js>) -> rquickjs::Result<R>,
    {
        if let Some(exceeded) = self.condemned() {
            return Err(format!(
                "Worker exceeded resource limits ({})",
                exceeded.outcome()
            ));
        }
        self.meter.boundary();
        let result = self
            .context
            .with(|ctx| -> Result<R, String> {
                self.shared.charge(|| {
                    let internals = self
                        .internals
                        .clone()
                        .restore(&ctx)
                        .map_err(|e| e.to_string())?;
                    let env = self.env.clone().restore(&ctx).map_err(|e| e.to_string())?;
                    f(&ctx, internals, env).catch(&ctx).map_err(|e| caught(&e))
                })
            })
            .await;
        drain_jobs(&self.runtime, &self.meter, &self.shared).await;
        result
    }

    /// Calls `f` with the prelude's internals inside the context (an exception becomes the
    /// error's text), then runs the promise jobs it queued.
    pub(crate) async fn enter<R>(
        &self,
        f: impl for<'js> FnOnce(&Ctx<'js>, Object<'js>) -> rquickjs::Result<R>,
    ) -> Result<R, String> {
        self.meter.boundary();
        let result = self
            .context
            .with(|ctx| {
                self.shared.charge(|| {
                    let internals = self
                        .internals
                        .clone()
                        .restore(&ctx)
                        .map_err(|e| e.to_string())?;
                    f(&ctx, internals).catch(&ctx).map_err(|e| caught(&e))
                })
            })
            .await;
        drain_jobs(&self.runtime, &self.meter, &self.shared).await;
        result
    }

    /// Starts an event with `start` and waits for its outcome.
    pub(crate) async fn event<F>(&self, start: F) -> Outcome
    where
        F: for<'js> FnOnce(
            &Ctx<'js>,
            Object<'js>,
            Object<'js>,
            Object<'js>,
            u32,
        ) -> rquickjs::Result<()>,
    {
        if let Some(exceeded) = self.condemned() {
            return Outcome::Exceeded(exceeded);
        }
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1).max(1));
        let (sender, receiver) = oneshot::channel();
        self.shared.pending.borrow_mut().insert(id, sender);
        self.meter.boundary();
        let started = self
            .context
            .with(|ctx| -> Result<(), String> {
                let restore = || -> rquickjs::Result<(Object, Object, Object)> {
                    Ok((
                        self.internals.clone().restore(&ctx)?,
                        self.handlers.clone().restore(&ctx)?,
                        self.env.clone().restore(&ctx)?,
                    ))
                };
                self.shared.charge(|| {
                    let (internals, handlers, env) = restore().map_err(|e| e.to_string())?;
                    start(&ctx, internals, handlers, env, id)
                        .catch(&ctx)
                        .map_err(|e| caught(&e))
                })
            })
            .await;
        if let Err(error) = started {
            self.shared.pending.borrow_mut().remove(&id);
            self.shared.streams.finish(id);
            if let Some(exceeded) = self.condemned() {
                return Outcome::Exceeded(exceeded);
            }
            if is_out_of_memory(&error) {
                self.shared.condemn(Exceeded::Memory);
                return Outcome::Exceeded(Exceeded::Memory);
            }
            return Outcome::Exception(error);
        }
        drain_jobs(&self.runtime, &self.meter, &self.shared).await;
        match receiver.await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Exceeded(self.condemned().unwrap_or(Exceeded::Cpu)),
        }
    }
}

/// Runs the promise jobs queued by an entry into JavaScript.
///
/// Polling the runtime's futures here registers this task's waker as the one their wake-ups
/// go to; this task may end before they do (a workflow run that suspends), so the driver task
/// is woken afterwards to register itself again.
async fn drain_jobs(runtime: &AsyncRuntime, meter: &Meter, shared: &Shared) {
    loop {
        meter.boundary();
        let started = Instant::now();
        let ran = runtime.execute_pending_job().await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        shared.cpu_nanos.fetch_add(nanos, Ordering::Relaxed);
        match ran {
            Ok(true) | Err(_) => continue,
            Ok(false) => break,
        }
    }
    if let Some(driver) = shared.driver.borrow().as_ref() {
        driver.wake_by_ref();
    }
    collect_garbage(runtime, shared).await;
}

/// The smallest heap at which the cycle collector runs.
const MIN_GC_THRESHOLD: i64 = 8 * 1024 * 1024;

/// How often, at most, [`collect_garbage`] measures the heap. Measuring walks every object
/// (`JS_ComputeMemoryUsage`): done after every event it took a third of the shard's CPU time
/// under `burrow-bench js` (hello 27.9k requests/s against workerd's 28.9k).
const GC_CHECK_INTERVAL: Duration = Duration::from_millis(10);

/// Runs QuickJS's cycle collector once the heap has doubled since the last run, here (no
/// JavaScript or native call on the stack) rather than at an allocation. llrt_fetch 0.8.1-beta's
/// `Response` body methods allocate an error (`ok_or(Exception::throw_message(..))`, evaluated
/// eagerly) while holding the body's write lock, and its GC `trace` takes the same lock to read:
/// a collection triggered by that allocation deadlocked the shard (seen as a hang of
/// `tests/js_async_jobs.rs` about every other run once the isolate's start-up allocated a little
/// more). Reference counting still frees everything that is not in a cycle at once.
async fn collect_garbage(runtime: &AsyncRuntime, shared: &Shared) {
    let now = Instant::now();
    if now.duration_since(shared.gc_checked.get()) < GC_CHECK_INTERVAL {
        return;
    }
    shared.gc_checked.set(now);
    let used = runtime.memory_usage().await.malloc_size;
    if used < shared.next_gc.get() {
        return;
    }
    runtime.run_gc().await;
    let after = runtime.memory_usage().await.malloc_size;
    shared
        .next_gc
        .set(after.saturating_mul(2).max(MIN_GC_THRESHOLD));
}

/// The runtime's driver task (spawned futures and promise jobs), which keeps its waker where
/// [`drain_jobs`] finds it.
struct Driving {
    drive: Pin<Box<dyn Future<Output = ()>>>,
    shared: Rc<Shared>,
}

impl Future for Driving {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        {
            let mut driver = self.shared.driver.borrow_mut();
            if !driver
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()))
            {
                *driver = Some(cx.waker().clone());
            }
        }
        // Polling the driver runs the JavaScript that host futures (timers, fetch) resume.
        let shared = self.shared.clone();
        shared.charge(|| self.drive.as_mut().poll(cx))
    }
}

fn is_out_of_memory(error: &str) -> bool {
    error.starts_with("InternalError: out of memory") || error.contains("out of memory")
}

/// A caught JavaScript error as `Name: message` and its stack.
fn caught(error: &CaughtError<'_>) -> String {
    match error {
        CaughtError::Exception(exception) => {
            let message = exception.message().unwrap_or_default();
            let name: String = exception
                .get::<_, String>("name")
                .unwrap_or_else(|_| "Error".to_owned());
            let mut text = format!("{name}: {message}");
            if let Some(stack) = exception.stack()
                && !stack.trim().is_empty()
            {
                text.push('\n');
                text.push_str(stack.trim_end());
            }
            text
        }
        CaughtError::Value(value) => format!("Uncaught {value:?}"),
        CaughtError::Error(error) => error.to_string(),
    }
}

fn describe(ctx: &Ctx<'_>, error: rquickjs::Error) -> String {
    match error {
        rquickjs::Error::Exception => caught(&CaughtError::from_error(ctx, error)),
        other => other.to_string(),
    }
}

/// Installs llrt's Web API classes, Burrow's native helpers and the prelude; returns the
/// internals object of the prelude.
fn install_globals<'js>(
    ctx: &Ctx<'js>,
    shared: &Rc<Shared>,
    script: &Arc<Script>,
) -> rquickjs::Result<Object<'js>> {
    llrt_url::init(ctx)?;
    llrt_buffer::init(ctx)?;
    llrt_abort::init(ctx)?;
    llrt_events::init(ctx)?;
    llrt_fetch::init(ctx)?;

    let native = Object::new(ctx.clone())?;
    let name = script.name.clone();
    native.set(
        "log",
        Function::new(ctx.clone(), move |level: i32, message: String| {
            log(&name, level, &message);
        })?,
    )?;
    native.set(
        "sleep",
        Function::new(
            ctx.clone(),
            Async(|ms: f64| async move {
                let ms = if ms.is_finite() {
                    ms.clamp(0.0, 2_147_483_647.0)
                } else {
                    0.0
                };
                tokio::time::sleep(Duration::from_millis(ms as u64)).await;
                Ok::<(), rquickjs::Error>(())
            }),
        )?,
    )?;
    native.set(
        "utf8Encode",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, text: rquickjs::String<'js>| {
            let text = text.to_string()?;
            ArrayBuffer::new(ctx, text.into_bytes())
        })?,
    )?;
    native.set(
        "utf8Decode",
        Function::new(
            ctx.clone(),
            |bytes: TypedArray<'js, u8>, fatal: Opt<bool>| {
                let bytes = bytes.as_bytes().unwrap_or_default();
                if fatal.0.unwrap_or(false) {
                    std::str::from_utf8(bytes).ok().map(str::to_owned)
                } else {
                    Some(String::from_utf8_lossy(bytes).into_owned())
                }
            },
        )?,
    )?;
    native.set(
        "randomBytes",
        Function::new(ctx.clone(), |ctx: Ctx<'js>, length: usize| {
            let mut bytes = vec![0u8; length.min(65_536)];
            getrandom::fill(&mut bytes).map_err(|error| {
                rquickjs::Exception::throw_internal(&ctx, &format!("no randomness: {error}"))
            })?;
            ArrayBuffer::new(ctx, bytes)
        })?,
    )?;
    let pending = shared.pending.clone();
    let streams = shared.streams.clone();
    native.set(
        "done",
        Function::new(
            ctx.clone(),
            move |id: u32, status: u16, headers: Vec<String>, body: ArrayBuffer<'js>| {
                let body = Bytes::copy_from_slice(body.as_bytes().unwrap_or_default());
                streams.finish(id);
                if let Some(sender) = pending.borrow_mut().remove(&id) {
                    let _ = sender.send(Outcome::Done {
                        status,
                        headers,
                        body,
                    });
                }
            },
        )?,
    )?;
    let failed = shared.clone();
    native.set(
        "fail",
        Function::new(ctx.clone(), move |id: u32, kind: i32, message: String| {
            if kind == 1 {
                failed.condemn(Exceeded::Memory);
                return;
            }
            failed.streams.finish(id);
            if let Some(sender) = failed.pending.borrow_mut().remove(&id) {
                let _ = sender.send(Outcome::Exception(message));
            }
        })?,
    )?;
    bindings::install_natives(ctx, &native, script)?;
    crate::objects::install_natives(ctx, &native, script)?;
    crate::services::install_natives(ctx, &native, script)?;
    crate::streaming::install(ctx, &native, &shared.streams, &shared.pending, &script.name)?;
    crate::websocket::install(ctx, &native, &shared.sockets, &shared.pending)?;

    crate::queues::install_natives(ctx, &native)?;
    crate::workflows::install_natives(ctx, &native, script)?;

    let prelude: Function = ctx.eval(PRELUDE)?;
    let internals: Object = prelude.call((native.clone(),))?;
    crate::crypto::install(ctx, &native)?;
    let queue: Function = ctx.eval(crate::queues::QUEUE_JS)?;
    queue.call::<_, ()>((native.clone(), internals.clone()))?;
    let workflow: Function = ctx.eval(crate::workflows::WORKFLOW_JS)?;
    workflow.call::<_, ()>((native.clone(), internals.clone()))?;
    let websocket: Function = ctx.eval(crate::websocket::WEBSOCKET_JS)?;
    websocket.call::<_, ()>((native.clone(), internals.clone()))?;
    crate::objects::install_js(ctx, &native, &internals)?;
    crate::services::install_js(ctx, &native, &internals)?;
    Ok(internals)
}

/// A console line in the server log, tagged with the Worker's name.
fn log(worker: &str, level: i32, message: &str) {
    match level {
        ..=1 => tracing::debug!(target: "worker", worker, "{message}"),
        2 => tracing::info!(target: "worker", worker, "{message}"),
        3 => tracing::warn!(target: "worker", worker, "{message}"),
        _ => tracing::error!(target: "worker", worker, "{message}"),
    }
}
