//! Queues: the `env.queue("BINDING")` producer of `[[queues.producers]]`, the app's `queue`
//! handler ([`crate::App::queue`]) for `[[queues.consumers]]`, and the Queues endpoints of the
//! admin API (Cloudflare's v4 shapes; see [`burrow_services::queues::api`]).
//!
//! A send resolves once the message is durable; a consumer gets batches by the consumer's
//! `max_batch_size` / `max_batch_timeout`, with Cloudflare's ack and retry rules, retries with
//! delays, and the dead-letter queue after `max_retries`. Every queue named in `wrangler.toml`
//! (and every dead-letter queue) is created when the server starts.
//!
//! ```no_run
//! use burrow::{App, Env, Request, Response, Result};
//! use burrow::queue::{Body, MessageBatch, SendOptions};
//!
//! fn main() -> std::process::ExitCode {
//!     App::new()
//!         .fetch(|request: Request, env: Env| async move {
//!             let jobs = env.queue("JOBS")?;
//!             jobs.send(Body::text(request.path()), SendOptions::default()).await?;
//!             Ok(Response::text("queued"))
//!         })
//!         .queue(|batch: MessageBatch, _env: Env| async move {
//!             for message in batch.messages() {
//!                 println!("{:?}", message.body().as_text());
//!                 message.ack();
//!             }
//!             Ok(())
//!         })
//!         .serve_from_args()
//! }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use burrow_config::{ConsumerKind, LoadedConfig};
use burrow_http::admin::{self, AdminRouter, ApiError};
use burrow_runtime::Runtime;
use burrow_runtime::clock::{LocalBoxFuture, SystemClock};
use burrow_services::queues::api::{
    AckRequest, Api, CreateQueue, PullRequest, PushBatch, PushMessage,
};
use burrow_services::queues::{HandlerError, Options, QueueHandler, Queues};
use http::{Method, StatusCode};
use tracing::warn;

pub use burrow_services::queues::{
    BatchMetadata, BatchOptions, Body, ContentType, Error, Message, MessageBatch, Queue,
    QueueMetrics, RetryOptions, SendOptions, SendRequest,
};

use crate::env::Env;

/// The producer bindings of one Worker, by binding name.
pub(crate) type Bindings = HashMap<String, Queue>;

/// Builds the app's queue handler once its `Env` exists.
pub(crate) type MakeHandler = Box<dyn FnOnce(Env) -> Arc<dyn QueueHandler> + Send>;

/// The system classes that keep queues; the server adds them to every runtime.
pub(crate) fn classes() -> Vec<(String, Arc<dyn burrow_runtime::ObjectClass>)> {
    Queues::classes()
}

/// Wraps `App::queue`'s function as the consumer handler.
pub(crate) fn make_handler<F, Fut>(handler: F) -> MakeHandler
where
    F: Fn(MessageBatch, Env) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = crate::Result<()>> + 'static,
{
    Box::new(move |env| {
        Arc::new(AppHandler {
            handler: Arc::new(handler),
            env,
        }) as Arc<dyn QueueHandler>
    })
}

struct AppHandler<F> {
    handler: Arc<F>,
    env: Env,
}

impl<F, Fut> QueueHandler for AppHandler<F>
where
    F: Fn(MessageBatch, Env) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = crate::Result<()>> + 'static,
{
    fn queue(&self, batch: MessageBatch) -> LocalBoxFuture<'static, Result<(), HandlerError>> {
        let run = (self.handler)(batch, self.env.clone());
        Box::pin(async move {
            run.await
                .map_err(|error| HandlerError::new(error.to_string()))
        })
    }
}

/// What a guest brings to the queue service: the `Env` its producer bindings go into and its
/// `queue` handler.
#[derive(Default)]
pub struct QueueGuest {
    pub(crate) env: Option<Env>,
    pub(crate) handler: Option<Arc<dyn QueueHandler>>,
}

impl QueueGuest {
    /// A guest with producer bindings only (the `burrow` binary's JavaScript Worker): the
    /// returned `Env` receives the primary Worker's `[[queues.producers]]` when the queue service
    /// starts, before the ingress handler is built; read them with [`Env::queue`].
    pub fn producers() -> (QueueGuest, Env) {
        let env = Env::new(Default::default(), Default::default());
        (
            QueueGuest {
                env: Some(env.clone()),
                handler: None,
            },
            env,
        )
    }

    /// The same guest with `handler` consuming the primary Worker's `[[queues.consumers]]`
    /// (the `burrow` binary's JavaScript `queue` handler).
    pub fn with_handler(mut self, handler: Arc<dyn QueueHandler>) -> QueueGuest {
        self.handler = Some(handler);
        self
    }
}

/// The node's queue service, as the server runs it.
#[derive(Clone)]
pub(crate) struct Service {
    api: Api,
}

impl Service {
    /// The node's queues (for `/metrics`).
    pub(crate) fn queues(&self) -> burrow_services::queues::Queues {
        self.api.queues().clone()
    }
}

fn guest_error(error: Error) -> crate::server::Error {
    crate::server::Error::Guest(format!("Queues did not start: {error}"))
}

/// Starts the service once the runtime runs: creates every queue the configuration names,
/// resolves the primary Worker's producer bindings into its `Env`, and sets up the pull consumers.
/// Push consumers start later ([`Service::start_consumers`]), once the Worker's bindings exist.
pub(crate) async fn start(
    runtime: &Runtime,
    loaded: &LoadedConfig,
    guest: &QueueGuest,
) -> Result<Service, crate::server::Error> {
    let queues =
        Queues::new(runtime, Arc::new(SystemClock), Options::default()).map_err(guest_error)?;
    let mut bindings = Bindings::new();
    for producer in &loaded.primary.config.queue_producers {
        let queue = queues.producer(producer).await.map_err(guest_error)?;
        bindings.insert(producer.binding.clone(), queue);
    }
    if let Some(env) = &guest.env {
        let _ = env.queue_bindings().set(bindings);
    }
    let mut pull = Vec::new();
    for worker in loaded.workers() {
        for producer in &worker.config.queue_producers {
            queues.producer(producer).await.map_err(guest_error)?;
        }
        for consumer in &worker.config.queue_consumers {
            if consumer.kind == ConsumerKind::HttpPull {
                pull.push(queues.pull_consumer(consumer).await.map_err(guest_error)?);
            }
        }
    }
    Ok(Service {
        api: Api::new(queues, pull),
    })
}

impl Service {
    /// Starts the push consumers of the primary Worker with the guest's handler.
    pub(crate) async fn start_consumers(
        &self,
        loaded: &LoadedConfig,
        handler: Option<Arc<dyn QueueHandler>>,
    ) -> Result<(), crate::server::Error> {
        for consumer in &loaded.primary.config.queue_consumers {
            if consumer.kind != ConsumerKind::Worker {
                continue;
            }
            match &handler {
                Some(handler) => self
                    .api
                    .queues()
                    .start_consumer(consumer, handler.clone())
                    .await
                    .map_err(guest_error)?,
                None => warn!(
                    queue = %consumer.queue,
                    "[[queues.consumers]] names this queue, but the Worker has no queue handler: \
                     messages wait until one exists (a Rust app adds it with App::queue)"
                ),
            }
        }
        Ok(())
    }

    /// Stops the push consumers: no new batches; running ones get `grace` to settle.
    pub(crate) async fn stop(&self, grace: Duration) {
        self.api.queues().stop(grace).await;
    }
}

impl Env {
    /// The producer of binding `binding` (`[[queues.producers]]` in `wrangler.toml`).
    pub fn queue(&self, binding: &str) -> crate::Result<Queue> {
        let bindings = self.queue_bindings().get().ok_or_else(|| {
            crate::Error::new("queue bindings are not available until the runtime has started")
        })?;
        bindings.get(binding).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = bindings.keys().map(String::as_str).collect();
            known.sort_unstable();
            crate::Error::new(format!(
                "env has no queue binding {binding:?} (queue bindings: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Admin API.

const QUEUES_PATH: &str = "/client/v4/accounts/:account/queues";
const QUEUE_PATH: &str = "/client/v4/accounts/:account/queues/:queue";
const METRICS_PATH: &str = "/client/v4/accounts/:account/queues/:queue/metrics";
const MESSAGES_PATH: &str = "/client/v4/accounts/:account/queues/:queue/messages";
const BATCH_PATH: &str = "/client/v4/accounts/:account/queues/:queue/messages/batch";
const PULL_PATH: &str = "/client/v4/accounts/:account/queues/:queue/messages/pull";
const ACK_PATH: &str = "/client/v4/accounts/:account/queues/:queue/messages/ack";
const PURGE_PATH: &str = "/client/v4/accounts/:account/queues/:queue/purge";
const CONSUMERS_PATH: &str = "/client/v4/accounts/:account/queues/:queue/consumers";
const CONSUMER_PATH: &str = "/client/v4/accounts/:account/queues/:queue/consumers/:consumer";
/// Cloudflare's code for a consumer that does not exist.
const CONSUMER_NOT_FOUND: u32 = 11_000;

/// The body of `PUT …/consumers/{consumer}`: Cloudflare's shape; only `settings` can change
/// here (the consumer's kind, script and dead-letter queue come from the configuration).
#[derive(Debug, serde::Deserialize)]
struct UpdateConsumer {
    settings: burrow_services::queues::ConsumerUpdate,
    #[serde(default, rename = "type")]
    _kind: Option<String>,
    #[serde(default, rename = "script_name")]
    _script: Option<String>,
    #[serde(default)]
    dead_letter_queue: Option<String>,
}

/// Cloudflare's consumer objects for every `[[queues.consumers]]` of every loaded Worker, with
/// the queue they consume.
fn consumers(loaded: &LoadedConfig) -> Vec<(String, serde_json::Value)> {
    let mut result = Vec::new();
    for worker in loaded.workers() {
        for consumer in &worker.config.queue_consumers {
            let kind = match consumer.kind {
                ConsumerKind::Worker => "worker",
                ConsumerKind::HttpPull => "http_pull",
            };
            let mut settings = serde_json::json!({
                "batch_size": consumer.max_batch_size,
                "max_retries": consumer.max_retries,
                "max_wait_time_ms": consumer.max_batch_timeout_ms,
                "max_concurrency": consumer.max_concurrency,
                "retry_delay": consumer.retry_delay_seconds.unwrap_or(0),
            });
            if consumer.kind == ConsumerKind::HttpPull {
                settings["visibility_timeout_ms"] =
                    serde_json::json!(consumer.visibility_timeout_ms.unwrap_or(30_000));
            }
            let mut object = serde_json::json!({
                "consumer_id": format!("{}-{}", worker.name(), consumer.queue),
                "queue_name": consumer.queue,
                "type": kind,
                "settings": settings,
                "dead_letter_queue": consumer.dead_letter_queue,
            });
            if consumer.kind == ConsumerKind::Worker {
                object["script"] = serde_json::json!(worker.name());
            }
            result.push((consumer.queue.clone(), object));
        }
    }
    result
}

fn api_error(error: Error) -> ApiError {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    ApiError::new(status, error.code(), error.to_string())
}

/// Adds the Queues routes to the admin router.
pub(crate) fn admin_routes(router: &mut AdminRouter, service: &Service, loaded: &LoadedConfig) {
    // Consumers come from the configuration; their settings can be changed at runtime (until
    // the next start, which reads `[[queues.consumers]]` again).
    let configured = Arc::new(std::sync::Mutex::new(consumers(loaded)));
    let api = service.api.clone();
    let listed = Arc::clone(&configured);
    router.route(Method::GET, CONSUMERS_PATH, move |request| {
        let api = api.clone();
        let configured = Arc::clone(&listed);
        async move {
            let queue = request.param("queue").unwrap_or_default().to_owned();
            let info = api.get(&queue).await.map_err(api_error)?;
            let name = info["queue_name"].as_str().unwrap_or_default();
            let result: Vec<serde_json::Value> = configured
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .filter(|(consumed, _)| consumed == name)
                .map(|(_, consumer)| {
                    let mut consumer = consumer.clone();
                    consumer["queue_id"] = info["queue_id"].clone();
                    consumer
                })
                .collect();
            Ok(admin::success(result))
        }
    });
    let api = service.api.clone();
    router.route(Method::PUT, CONSUMER_PATH, move |request| {
        let api = api.clone();
        let configured = Arc::clone(&configured);
        async move {
            let queue = request.param("queue").unwrap_or_default().to_owned();
            let consumer_id = request.param("consumer").unwrap_or_default().to_owned();
            let info = api.get(&queue).await.map_err(api_error)?;
            let name = info["queue_name"].as_str().unwrap_or_default().to_owned();
            let body: UpdateConsumer = request.json().await?;
            let current = configured
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .find(|(consumed, consumer)| {
                    *consumed == name && consumer["consumer_id"] == consumer_id.as_str()
                })
                .map(|(_, consumer)| consumer["dead_letter_queue"].clone());
            let Some(dead_letter) = current else {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    CONSUMER_NOT_FOUND,
                    format!("queue {name:?} has no consumer {consumer_id:?}"),
                ));
            };
            if let Some(wanted) = &body.dead_letter_queue
                && dead_letter.as_str() != Some(wanted.as_str())
            {
                return Err(api_error(Error::InvalidSettings(format!(
                    "dead_letter_queue comes from [[queues.consumers]] in the configuration (now {dead_letter}); it cannot be changed to {wanted:?} at runtime"
                ))));
            }
            let settings = api
                .update_consumer(&name, &body.settings)
                .map_err(api_error)?;
            let mut configured = configured
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let consumer = configured
                .iter_mut()
                .find(|(consumed, consumer)| {
                    *consumed == name && consumer["consumer_id"] == consumer_id.as_str()
                })
                .map(|(_, consumer)| consumer)
                .expect("found above, and consumers are never removed");
            if let (Some(current), Some(changed)) =
                (consumer["settings"].as_object_mut(), settings.as_object())
            {
                for (key, value) in changed {
                    current.insert(key.clone(), value.clone());
                }
            }
            let mut result = consumer.clone();
            result["queue_id"] = info["queue_id"].clone();
            Ok(admin::success(result))
        }
    });
    let api = service.api.clone();
    router.route(Method::GET, QUEUES_PATH, move |request| {
        let api = api.clone();
        async move {
            let page = admin::Page::from_request(&request, 20, 1000)?;
            let mut queues = api.list().await.map_err(api_error)?;
            // `?name=a&name=b`: only those queues (wrangler finds a queue's id this way).
            let names: Vec<String> = request
                .query_pairs()
                .into_iter()
                .filter(|(key, _)| key == "name")
                .map(|(_, value)| value)
                .collect();
            if !names.is_empty() {
                queues.retain(|queue| {
                    names
                        .iter()
                        .any(|name| queue["queue_name"].as_str() == Some(name.as_str()))
                });
            }
            let (result, info) = page.slice(queues);
            Ok(admin::success_with_info(result, Some(info)))
        }
    });
    let api = service.api.clone();
    router.route(Method::POST, QUEUES_PATH, move |request| {
        let api = api.clone();
        async move {
            let body: CreateQueue = request.json().await?;
            Ok(admin::success(api.create(body).await.map_err(api_error)?))
        }
    });
    // Queues named by `[[queues.producers]]` or `[[queues.consumers]]` would come back at the
    // next start, so they cannot be deleted while configured.
    let mut bound: Vec<(String, String)> = Vec::new();
    for worker in loaded.workers() {
        for producer in &worker.config.queue_producers {
            bound.push((
                producer.queue.clone(),
                format!("[[queues.producers]] binding {:?}", producer.binding),
            ));
        }
        for consumer in &worker.config.queue_consumers {
            bound.push((consumer.queue.clone(), "[[queues.consumers]]".to_string()));
            if let Some(dead_letter) = &consumer.dead_letter_queue {
                bound.push((
                    dead_letter.clone(),
                    format!("dead_letter_queue of the consumer of {:?}", consumer.queue),
                ));
            }
        }
    }
    let bound = Arc::new(bound);
    let api = service.api.clone();
    router.route(Method::DELETE, QUEUE_PATH, move |request| {
        let api = api.clone();
        let bound = Arc::clone(&bound);
        async move {
            let queue = request.param("queue").unwrap_or_default().to_owned();
            let info = api.get(&queue).await.map_err(api_error)?;
            let name = info["queue_name"].as_str().unwrap_or_default().to_owned();
            if let Some((_, binding)) = bound.iter().find(|(bound, _)| *bound == name) {
                return Err(api_error(Error::QueueInUse {
                    name,
                    binding: binding.clone(),
                }));
            }
            Ok(admin::success(api.delete(&name).await.map_err(api_error)?))
        }
    });
    let api = service.api.clone();
    router.route(Method::GET, QUEUE_PATH, move |request| {
        let api = api.clone();
        async move {
            let queue = request.param("queue").unwrap_or_default().to_owned();
            Ok(admin::success(api.get(&queue).await.map_err(api_error)?))
        }
    });
    let api = service.api.clone();
    router.route(Method::GET, METRICS_PATH, move |request| {
        let api = api.clone();
        async move {
            let queue = request.param("queue").unwrap_or_default().to_owned();
            Ok(admin::success(
                api.metrics(&queue).await.map_err(api_error)?,
            ))
        }
    });
    let api = service.api.clone();
    router.route(Method::POST, MESSAGES_PATH, move |request| {
        let api = api.clone();
        async move {
            let queue = request.param("queue").unwrap_or_default().to_owned();
            let message: PushMessage = request.json().await?;
            Ok(admin::success(
                api.push(&queue, message).await.map_err(api_error)?,
            ))
        }
    });
    let api = service.api.clone();
    router.route(Method::POST, BATCH_PATH, move |request| {
        let api = api.clone();
        async move {
            let queue = request.param("queue").unwrap_or_default().to_owned();
            let batch: PushBatch = request.json().await?;
            Ok(admin::success(
                api.push_batch(&queue, batch).await.map_err(api_error)?,
            ))
        }
    });
    let api = service.api.clone();
    router.route(Method::POST, PULL_PATH, move |request| {
        let api = api.clone();
        async move {
            let queue = request.param("queue").unwrap_or_default().to_owned();
            let pull: PullRequest = request.json().await.unwrap_or_default();
            Ok(admin::success(
                api.pull(&queue, pull).await.map_err(api_error)?,
            ))
        }
    });
    let api = service.api.clone();
    router.route(Method::POST, ACK_PATH, move |request| {
        let api = api.clone();
        async move {
            let queue = request.param("queue").unwrap_or_default().to_owned();
            let ack: AckRequest = request.json().await?;
            Ok(admin::success(
                api.ack(&queue, ack).await.map_err(api_error)?,
            ))
        }
    });
    let api = service.api.clone();
    router.route(Method::POST, PURGE_PATH, move |request| {
        let api = api.clone();
        async move {
            let queue = request.param("queue").unwrap_or_default().to_owned();
            Ok(admin::success(api.purge(&queue).await.map_err(api_error)?))
        }
    });
}
