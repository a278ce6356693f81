//! Queue consumers in JavaScript: [`JsWorker::queue_handler`] is the
//! [`QueueHandler`] the queue service's dispatchers run for every `[[queues.consumers]]` of the
//! Worker. Each batch runs the Worker's `queue(batch, env, ctx)` (`js/queue.js` shapes the
//! `MessageBatch` and `Message` objects) on the isolate of the shard the dispatcher picked; the
//! objects' `ack`/`retry`/`ackAll`/`retryAll` calls go straight to the Rust
//! [`MessageBatch`], which applies Cloudflare's precedence rules, and the handler's outcome
//! (resolved, threw, went over a limit) settles the rest.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use burrow_runtime::clock::LocalBoxFuture;
use burrow_services::queues::{HandlerError, MessageBatch, QueueHandler, RetryOptions};
use rquickjs::{ArrayBuffer, Ctx, Function, Object};
use tracing::error;

use crate::JsWorker;
use crate::isolate::{Isolate, Outcome};

/// The code of the `queue` event (see the module documentation).
pub(crate) const QUEUE_JS: &str = include_str!("js/queue.js");

thread_local! {
    /// The batches whose handler runs on this thread, by the key JavaScript calls them with.
    static BATCHES: RefCell<HashMap<u32, MessageBatch>> = RefCell::new(HashMap::new());
    static NEXT_BATCH: Cell<u32> = const { Cell::new(1) };
}

/// Keeps a batch reachable from JavaScript while its handler runs.
struct Registered(u32);

impl Registered {
    fn new(batch: MessageBatch) -> Registered {
        let key = NEXT_BATCH.with(|next| {
            let key = next.get();
            next.set(key.wrapping_add(1).max(1));
            key
        });
        BATCHES.with(|batches| batches.borrow_mut().insert(key, batch));
        Registered(key)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        BATCHES.with(|batches| batches.borrow_mut().remove(&self.0));
    }
}

/// Calls `f` with batch `key` if its handler still runs (calls after it ended have no effect).
fn with_batch(key: u32, f: impl FnOnce(&MessageBatch)) {
    BATCHES.with(|batches| {
        if let Some(batch) = batches.borrow().get(&key) {
            f(batch);
        }
    });
}

fn retry_options(delay_seconds: Option<f64>) -> RetryOptions {
    RetryOptions {
        delay_seconds: delay_seconds
            .filter(|delay| delay.is_finite())
            .map(|delay| delay.clamp(0.0, f64::from(u32::MAX)) as u32),
    }
}

/// Adds the batch calls to the prelude's `native` object.
pub(crate) fn install_natives<'js>(ctx: &Ctx<'js>, native: &Object<'js>) -> rquickjs::Result<()> {
    native.set(
        "queueAck",
        Function::new(ctx.clone(), |key: u32, index: usize| {
            with_batch(key, |batch| {
                if let Some(message) = batch.messages().get(index) {
                    message.ack();
                }
            });
        })?,
    )?;
    native.set(
        "queueRetry",
        Function::new(ctx.clone(), |key: u32, index: usize, delay: Option<f64>| {
            with_batch(key, |batch| {
                if let Some(message) = batch.messages().get(index) {
                    message.retry(retry_options(delay));
                }
            });
        })?,
    )?;
    native.set(
        "queueAckAll",
        Function::new(ctx.clone(), |key: u32| {
            with_batch(key, MessageBatch::ack_all)
        })?,
    )?;
    native.set(
        "queueRetryAll",
        Function::new(ctx.clone(), |key: u32, delay: Option<f64>| {
            with_batch(key, |batch| batch.retry_all(retry_options(delay)));
        })?,
    )?;
    Ok(())
}

impl Isolate {
    /// Runs the `queue` handler on `batch`.
    pub(crate) async fn queue(&self, batch: MessageBatch) -> Outcome {
        let registered = Registered::new(batch.clone());
        let key = registered.0;
        let outcome = self
            .event(move |ctx, internals, handlers, env, id| {
                let messages = rquickjs::Array::new(ctx.clone())?;
                for (index, message) in batch.messages().iter().enumerate() {
                    let entry = rquickjs::Array::new(ctx.clone())?;
                    entry.set(0, message.id())?;
                    entry.set(1, message.timestamp_ms() as f64)?;
                    entry.set(2, message.body().content_type().as_str())?;
                    entry.set(
                        3,
                        ArrayBuffer::new_copy(ctx.clone(), &message.body().as_bytes()[..])?,
                    )?;
                    entry.set(4, message.attempts())?;
                    messages.set(index, entry)?;
                }
                let metadata = batch.metadata();
                let queue: Function = internals.get("queueEvent")?;
                queue.call::<_, ()>((
                    id,
                    handlers,
                    env,
                    key,
                    batch.queue(),
                    messages,
                    vec![metadata.backlog_count as f64, metadata.backlog_bytes as f64],
                ))
            })
            .await;
        drop(registered);
        outcome
    }
}

struct Consumer(Arc<JsWorker>);

impl QueueHandler for Consumer {
    fn queue(&self, batch: MessageBatch) -> LocalBoxFuture<'static, Result<(), HandlerError>> {
        let worker = self.0.clone();
        Box::pin(async move {
            let local = worker.ready_local().await.map_err(HandlerError::new)?;
            let isolate = local.isolate().await.map_err(HandlerError::new)?;
            let queue = batch.queue().to_owned();
            match isolate.queue(batch).await {
                Outcome::Done { .. } | Outcome::Streaming { .. } | Outcome::WebSocket { .. } => {
                    Ok(())
                }
                Outcome::Exception(message) => {
                    error!(worker = %local.script.name, queue, outcome = "exception", "queue: uncaught exception: {message}");
                    Err(HandlerError::new(message))
                }
                Outcome::Exceeded(exceeded) => Err(HandlerError::new(format!(
                    "Worker exceeded resource limits ({})",
                    exceeded.outcome()
                ))),
            }
        })
    }
}

impl JsWorker {
    /// The queue service's handler for the Worker's push consumers: each batch runs the
    /// Worker's `queue(batch, env, ctx)`.
    pub fn queue_handler(self: &Arc<Self>) -> Arc<dyn QueueHandler> {
        Arc::new(Consumer(self.clone()))
    }
}
