//! The JavaScript Workers runtime: a Worker project's ES modules (TypeScript stripped by oxc,
//! JSON, `node_modules`) run on QuickJS through rquickjs, one isolate per (shard, script), with
//! Web APIs from llrt and Burrow's own code, the Worker's bindings in `env`, and CPU and memory
//! limits per event.
//!
//! There is no HTTP server here: [`JsWorker::handler`] is the ingress's [`MakeHandler`], and
//! [`JsWorker::scheduled_handler`] is the cron scheduler's handler and [`JsWorker::queue_handler`]
//! the queue consumers' (`queues`); [`JsWorker::workflow_definition`] runs a `[[workflows]]`
//! class (`workflows`). They find the isolate of the shard they run on through a
//! thread-local registry.

mod bindings;
mod crypto;
mod isolate;
mod modules;
mod objects;
mod queues;
mod script;
mod services;
mod streaming;
mod typescript;
mod watch;
mod websocket;
mod workflows;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use burrow_config::Worker;
use burrow_http::{Body, Handler, LocalBoxFuture, MakeHandler};
use burrow_runtime::Runtime;
use burrow_runtime::clock::SystemClock;
use burrow_services::cron::{ScheduledController, ScheduledHandler};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use tracing::{error, warn};

pub use isolate::Exceeded;
pub use script::{Limits, Script};

use crate::isolate::{Isolate, Outcome, RequestBody};

/// Request bodies up to this size, with a known length, are read before the event; longer or
/// chunked bodies reach the Worker as they arrive.
const BUFFERED_REQUEST_BODY_BYTES: u64 = 256 * 1024;

/// The extensions of a `main` that Burrow runs as JavaScript.
pub const JS_EXTENSIONS: &[&str] = &["js", "mjs", "ts", "mts", "tsx", "jsx", "cjs"];

/// The largest request body handed to a Worker (Cloudflare's Free and Pro plans: 100 MB).
pub const MAX_REQUEST_BODY_BYTES: u64 = 100 * 1024 * 1024;

/// Why a JavaScript Worker cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `main` is missing or not a JavaScript/TypeScript file.
    #[error("{config}: `main` must name a .js/.mjs/.ts module (got {main:?})")]
    NotJavaScript {
        /// The configuration file.
        config: PathBuf,
        /// What `main` says.
        main: Option<String>,
    },
    /// `main` does not exist.
    #[error("{}: main module {} not found", config.display(), main.display())]
    MainMissing {
        /// The configuration file.
        config: PathBuf,
        /// The path looked for.
        main: PathBuf,
    },
    /// The main module (or an import) failed to load or evaluate.
    #[error("the Worker did not load: {0}")]
    Load(String),
    /// The KV service is not running.
    #[error("KV is not available: {0}")]
    Kv(String),
}

/// Whether `worker`'s `main` is a JavaScript or TypeScript module.
pub fn is_javascript(worker: &Worker) -> bool {
    worker
        .config
        .main
        .as_deref()
        .and_then(|main| Path::new(main).extension())
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| JS_EXTENSIONS.contains(&extension))
}

/// How errors are shown to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPages {
    /// `burrow dev`: an HTML page with the exception and its stack.
    Dev,
    /// `burrow serve`: a plain 500; the stack goes to the log only.
    Plain,
}

/// A JavaScript Worker: the script, and its isolates on the shards.
pub struct JsWorker {
    id: u64,
    name: String,
    root: PathBuf,
    main: PathBuf,
    limits: Limits,
    errors: ErrorPages,
    vars: Vec<(String, serde_json::Value)>,
    secrets: Vec<(String, String)>,
    kv: Vec<(String, String)>,
    /// `durable_objects.bindings`: (binding, class name, `script_name`).
    durable_objects: Vec<(String, String, Option<String>)>,
    /// Service bindings' targets (`services`), set before `start`.
    services: OnceLock<ServiceTargets>,
    script: OnceLock<Arc<Script>>,
    /// Workflow bindings (`workflows`), set before `start`.
    workflows: OnceLock<BTreeMap<String, burrow_services::workflows::Workflow>>,
    /// Bumped when a source file changes (`burrow dev`); isolates of an older generation are
    /// replaced before their next event.
    generation: Arc<AtomicU64>,
    /// Time spent running its JavaScript, in nanoseconds, over all its isolates.
    cpu_nanos: Arc<AtomicU64>,
}

/// How long an event that is not a request waits for the Worker to start on its shard.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Service bindings' targets: `binding → (Worker, entrypoint)`.
pub type ServiceTargets = BTreeMap<String, (Arc<JsWorker>, Option<String>)>;

static NEXT_WORKER: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This shard's state of every Worker, by [`JsWorker::id`]. The ingress handler of the shard
    /// owns it, so the isolate (and its driver tasks) goes away when the ingress stops.
    static SHARDS: RefCell<HashMap<u64, Weak<ShardWorker>>> = RefCell::new(HashMap::new());
}

impl JsWorker {
    /// Checks the Worker's `main` and takes what the isolates need from its configuration.
    pub fn new(
        worker: &Worker,
        limits: Limits,
        errors: ErrorPages,
    ) -> Result<Arc<JsWorker>, Error> {
        if !is_javascript(worker) {
            return Err(Error::NotJavaScript {
                config: worker.file.clone(),
                main: worker.config.main.clone(),
            });
        }
        let main = worker
            .dir
            .join(worker.config.main.as_deref().unwrap_or_default());
        let main = std::fs::canonicalize(&main).map_err(|_| Error::MainMissing {
            config: worker.file.clone(),
            main: main.clone(),
        })?;
        let root = std::fs::canonicalize(&worker.dir).unwrap_or_else(|_| worker.dir.clone());
        Ok(Arc::new(JsWorker {
            id: NEXT_WORKER.fetch_add(1, Ordering::Relaxed),
            name: worker.name(),
            root,
            main,
            limits,
            errors,
            vars: worker
                .config
                .vars
                .iter()
                .map(|(name, value)| (name.clone(), value.to_json()))
                .collect(),
            secrets: worker
                .secrets
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            kv: worker
                .config
                .kv_namespaces
                .iter()
                .map(|binding| (binding.binding.clone(), binding.namespace().to_owned()))
                .collect(),
            durable_objects: worker
                .config
                .durable_objects
                .iter()
                .map(|binding| {
                    (
                        binding.name.clone(),
                        binding.class_name.clone(),
                        binding.script_name.clone(),
                    )
                })
                .collect(),
            services: OnceLock::new(),
            script: OnceLock::new(),
            workflows: OnceLock::new(),
            generation: Arc::new(AtomicU64::new(0)),
            cpu_nanos: Arc::new(AtomicU64::new(0)),
        }))
    }

    /// Reloads the Worker when a file of its project changes (polled every `interval`;
    /// `node_modules` is left out; `burrow dev` restarts the server for configuration changes).
    /// The watcher thread ends when the Worker is dropped.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> std::io::Result<()> {
        watch::start(Arc::downgrade(self), self.root.clone(), interval)
    }

    /// Starts a new generation: every shard loads the Worker afresh for its next event.
    fn reload(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Time spent running the Worker's JavaScript so far, summed over its isolates (the
    /// `burrow_js_cpu_seconds_total` metric).
    pub fn cpu_time(&self) -> Duration {
        Duration::from_nanos(self.cpu_nanos.load(Ordering::Relaxed))
    }

    /// The Worker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Resolves the bindings against the running services (`queues`: the producer bindings the
    /// server's queue service made) and loads the Worker once (on a
    /// thread of its own), so that a module error stops the start-up with the file and line.
    pub fn start(
        &self,
        runtime: &Runtime,
        queues: BTreeMap<String, burrow_services::queues::Queue>,
    ) -> Result<(), Error> {
        let kv = if self.kv.is_empty() {
            Default::default()
        } else {
            let service = burrow_services::kv::Kv::new(runtime, Arc::new(SystemClock))
                .map_err(|error| Error::Kv(error.to_string()))?;
            self.kv
                .iter()
                .map(|(binding, namespace)| (binding.clone(), service.namespace(namespace)))
                .collect()
        };
        let mut durable_objects = BTreeMap::new();
        for (binding, class_name, script_name) in &self.durable_objects {
            if script_name.as_ref().is_some_and(|name| *name != self.name) {
                return Err(Error::Load(format!(
                    "Durable Object binding {binding:?}: class {class_name:?} of script {:?} is not defined in this Worker; Burrow runs only the Worker's own classes",
                    script_name.as_deref().unwrap_or_default()
                )));
            }
            let namespace = runtime.namespace(class_name).ok_or_else(|| {
                Error::Load(format!(
                    "Durable Object binding {binding:?}: class {class_name:?} has no namespace (add it to a migration's new_sqlite_classes)"
                ))
            })?;
            durable_objects.insert(binding.clone(), objects::Binding(namespace));
        }
        let script = Arc::new(Script {
            name: self.name.clone(),
            root: self.root.clone(),
            main: self.main.clone(),
            limits: self.limits.clone(),
            vars: self.vars.clone(),
            secrets: self.secrets.clone(),
            kv,
            queues,
            workflows: self.workflows.get().cloned().unwrap_or_default(),
            durable_objects,
            cpu_nanos: self.cpu_nanos.clone(),
            services: self
                .services
                .get()
                .map(|services| {
                    services
                        .iter()
                        .map(|(binding, (worker, entrypoint))| {
                            let target = services::Target {
                                worker: worker.clone(),
                                entrypoint: entrypoint.clone(),
                            };
                            (binding.clone(), target)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        });
        check_loads(script.clone(), self.object_class_names())?;
        let _ = self.script.set(script);
        Ok(())
    }

    /// Gives the Worker its service bindings' targets, `binding → (Worker, entrypoint)`. Call
    /// before [`JsWorker::start`]; each target Worker must be started too.
    pub fn set_service_bindings(&self, services: ServiceTargets) {
        let _ = self.services.set(services);
    }

    /// The Durable Object classes this Worker defines: those its `durable_objects.bindings` name
    /// without another `script_name`. The runtime needs them before [`JsWorker::start`].
    pub fn object_classes(self: &Arc<Self>) -> Vec<(String, Arc<dyn burrow_runtime::ObjectClass>)> {
        self.object_class_names()
            .into_iter()
            .map(|class_name| {
                let class: Arc<dyn burrow_runtime::ObjectClass> = Arc::new(objects::JsClass {
                    worker: self.clone(),
                    class_name: class_name.clone(),
                });
                (class_name, class)
            })
            .collect()
    }

    fn object_class_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .durable_objects
            .iter()
            .filter(|(_, _, script)| script.as_ref().is_none_or(|name| *name == self.name))
            .map(|(_, class_name, _)| class_name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// This thread's state of the Worker, made (and owned by the caller) if the shard's ingress
    /// has not made it yet.
    fn shard_local(&self) -> Option<Rc<ShardWorker>> {
        self.local().or_else(|| self.make_local())
    }

    /// The ingress handler: every request runs the Worker's `fetch`.
    pub fn handler(self: &Arc<Self>) -> Arc<dyn MakeHandler> {
        Arc::new(Ingress(self.clone()))
    }

    /// The cron scheduler's handler: each fire runs the Worker's `scheduled`.
    pub fn scheduled_handler(self: &Arc<Self>) -> Arc<dyn ScheduledHandler> {
        Arc::new(Scheduled(self.clone()))
    }

    /// This thread's state of the Worker, while the shard's ingress handler lives.
    fn local(&self) -> Option<Rc<ShardWorker>> {
        SHARDS.with(|shards| shards.borrow().get(&self.id).and_then(Weak::upgrade))
    }

    /// This thread's state of the Worker, waiting (up to [`READY_TIMEOUT`]) for the shard's
    /// ingress handler to make it: queue batches and workflow runs may start on a shard before
    /// the server's listeners are up.
    async fn ready_local(&self) -> Result<Rc<ShardWorker>, String> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(local) = self.local() {
                return Ok(local);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err("the Worker has not started on this shard".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Makes this thread's state of the Worker; the caller owns it.
    fn make_local(&self) -> Option<Rc<ShardWorker>> {
        let script = self.script.get()?.clone();
        let worker = Rc::new(ShardWorker {
            script,
            errors: self.errors,
            slot: RefCell::new(None),
            generation: self.generation.clone(),
        });
        SHARDS.with(|shards| {
            let mut shards = shards.borrow_mut();
            shards.retain(|_, worker| worker.strong_count() > 0);
            shards.insert(self.id, Rc::downgrade(&worker));
        });
        Some(worker)
    }
}

/// Loads the script once on a scratch thread, to report module errors at start-up, and checks
/// that it exports every Durable Object class its bindings name.
fn check_loads(script: Arc<Script>, classes: Vec<String>) -> Result<(), Error> {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| Error::Load(error.to_string()))?;
                let local = tokio::task::LocalSet::new();
                let main = script.main.display().to_string();
                local.block_on(&runtime, async move {
                    let isolate = Isolate::create(script).await.map_err(Error::Load)?;
                    for class in classes {
                        let name = class.clone();
                        let exported = isolate
                            .with(move |_ctx, internals, _env| {
                                let exports: Option<rquickjs::Object> = internals.get("exports")?;
                                let value: Option<rquickjs::Value> =
                                    exports.map(|exports| exports.get(name.as_str())).transpose()?;
                                Ok(value.is_some_and(|value| value.is_constructor()))
                            })
                            .await
                            .map_err(|message| Error::Load(typescript::map_stack(&message)))?;
                        if !exported {
                            return Err(Error::Load(format!(
                                "Durable Object class {class:?} is bound in durable_objects.bindings but {main} does not export a class of that name"
                            )));
                        }
                    }
                    Ok(())
                })
            })
            .join()
            .unwrap_or_else(|_| Err(Error::Load("loading the Worker panicked".to_owned())))
    })
}

type Slot = Rc<tokio::sync::OnceCell<Result<Rc<Isolate>, String>>>;

/// One Worker on one shard: its isolate, rebuilt after it goes over a limit or when the
/// sources change.
struct ShardWorker {
    script: Arc<Script>,
    errors: ErrorPages,
    /// The isolate (or why it did not load), and the generation it was made for.
    slot: RefCell<Option<(Slot, u64)>>,
    generation: Arc<AtomicU64>,
}

impl ShardWorker {
    async fn isolate(&self) -> Result<Rc<Isolate>, String> {
        let generation = self.generation.load(Ordering::Acquire);
        let slot = {
            let mut current = self.slot.borrow_mut();
            let stale = match current.as_ref() {
                None => true,
                Some((_, made_for)) if *made_for != generation => true,
                Some((slot, _)) => {
                    matches!(slot.get(), Some(Ok(isolate)) if isolate.condemned().is_some())
                }
            };
            if stale {
                *current = Some((Rc::default(), generation));
            }
            current
                .as_ref()
                .map(|(slot, _)| slot.clone())
                .unwrap_or_default()
        };
        let script = self.script.clone();
        slot.get_or_init(|| async move { Isolate::create(script).await.map(Rc::new) })
            .await
            .clone()
    }

    async fn fetch(&self, request: Request<Body>) -> Response<Body> {
        let isolate = match self.isolate().await {
            Ok(isolate) => isolate,
            Err(message) => return self.exception(&message),
        };
        // What accepting a WebSocket needs, if the Worker answers with one.
        let upgrade = websocket_upgrade(&request);
        let (parts, body) = request.into_parts();
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .unwrap_or("localhost");
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let url = format!("http://{host}{path}");
        let method = parts.method.as_str().to_owned();
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok());
        let bodiless = parts.method == http::Method::GET || parts.method == http::Method::HEAD;
        let body = if bodiless || length == Some(0) {
            RequestBody::None
        } else if length.is_none_or(|length| length > BUFFERED_REQUEST_BODY_BYTES) {
            RequestBody::Stream(body)
        } else {
            match body.collect_limited(MAX_REQUEST_BODY_BYTES).await {
                Ok(bytes) if bytes.is_empty() => RequestBody::None,
                Ok(bytes) => RequestBody::Full(bytes),
                Err(error) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("cannot read the request body: {error}"),
                    );
                }
            }
        };
        match isolate.fetch(url, method, headers, body).await {
            Outcome::Done {
                status,
                headers,
                body,
            } => respond(status, &headers, Body::from_bytes(body)),
            Outcome::Streaming {
                status,
                headers,
                body,
            } => respond(status, &headers, body),
            Outcome::WebSocket {
                headers,
                socket,
                driver,
            } => {
                self.accept_websocket(isolate, upgrade, &headers, socket, driver)
                    .await
            }
            Outcome::Exception(message) => self.exception(&message),
            Outcome::Exceeded(exceeded) => {
                warn!(worker = %self.script.name, outcome = exceeded.outcome(), "the request went over a limit");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("Worker exceeded resource limits ({})\n", exceeded.outcome()),
                )
            }
        }
    }

    /// Accepts the upgrade the Worker answered with a `101` and starts the socket's driver.
    async fn accept_websocket(
        &self,
        isolate: Rc<Isolate>,
        upgrade: Option<(
            burrow_http::websocket::Upgrade,
            burrow_http::websocket::Handshake,
        )>,
        headers: &[String],
        socket: u32,
        driver: burrow_http::websocket::Driver,
    ) -> Response<Body> {
        let Some((upgrade, handshake)) = upgrade else {
            websocket::abandoned(
                &isolate,
                socket,
                "not a WebSocket upgrade request".to_owned(),
            )
            .await;
            return text(
                StatusCode::BAD_REQUEST,
                "the Worker answered with a WebSocket, but the request is not a WebSocket upgrade\n",
            );
        };
        let protocol = headers
            .chunks_exact(2)
            .find(|pair| pair[0].eq_ignore_ascii_case("sec-websocket-protocol"))
            .map(|pair| pair[1].as_str());
        match upgrade.accept(&handshake, protocol) {
            Ok(accepted) => {
                tokio::task::spawn_local(websocket::run(
                    isolate,
                    socket,
                    driver,
                    accepted.connection,
                ));
                let mut response = accepted.response;
                for pair in headers.chunks_exact(2) {
                    let name = pair[0].to_ascii_lowercase();
                    if name.starts_with("sec-websocket-")
                        || name == "upgrade"
                        || name == "connection"
                    {
                        continue;
                    }
                    if let (Ok(name), Ok(value)) = (
                        HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(&pair[1]),
                    ) {
                        response.headers_mut().append(name, value);
                    }
                }
                response
            }
            Err(error) => {
                websocket::abandoned(&isolate, socket, error.to_string()).await;
                error.into_response()
            }
        }
    }

    /// A 500 for an uncaught exception: logged with its stack; the page depends on the mode.
    fn exception(&self, message: &str) -> Response<Body> {
        let message = &typescript::map_stack(message);
        error!(worker = %self.script.name, outcome = "exception", "uncaught exception: {message}");
        match self.errors {
            ErrorPages::Plain => text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n"),
            ErrorPages::Dev => {
                let page = format!(
                    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Error in {name}</title></head>\
                     <body><h1>Uncaught exception in Worker {name}</h1><pre>{message}</pre></body></html>\n",
                    name = escape(&self.script.name),
                    message = escape(message),
                );
                let mut response = Response::new(Body::from_bytes(page));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                response
            }
        }
    }
}

/// The upgrade right and checked handshake of a WebSocket upgrade request.
fn websocket_upgrade(
    request: &Request<Body>,
) -> Option<(
    burrow_http::websocket::Upgrade,
    burrow_http::websocket::Handshake,
)> {
    if !burrow_http::websocket::is_upgrade_request(request.headers()) {
        return None;
    }
    let upgrade = request
        .extensions()
        .get::<burrow_http::websocket::Upgrade>()?
        .clone();
    let handshake = burrow_http::websocket::Handshake::check(
        request.method(),
        request.version(),
        request.headers(),
    )
    .ok()?;
    Some((upgrade, handshake))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Body::from_bytes(Bytes::from(body.into())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The HTTP response for a JavaScript Response's parts.
fn respond(status: u16, headers: &[String], body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let map = response.headers_mut();
    for pair in headers.chunks_exact(2) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(pair[0].as_bytes()),
            HeaderValue::from_str(&pair[1]),
        ) {
            map.append(name, value);
        }
    }
    response
}

struct Ingress(Arc<JsWorker>);

impl MakeHandler for Ingress {
    fn make(&self, _shard: usize) -> Rc<dyn Handler> {
        // The Workers this one reaches through service bindings run on this shard too; their
        // state lives as long as this handler, so that it goes away with the ingress.
        let services = self
            .0
            .services
            .get()
            .map(|services| {
                services
                    .values()
                    .filter(|(target, _)| target.id != self.0.id)
                    .filter_map(|(target, _)| target.shard_local())
                    .collect()
            })
            .unwrap_or_default();
        Rc::new(ShardIngress {
            worker: self.0.shard_local(),
            _services: services,
        })
    }
}

/// A shard's handler: the Worker's state on the shard, and that of its service bindings' Workers.
struct ShardIngress {
    worker: Option<Rc<ShardWorker>>,
    /// Only owned: dropped with the handler.
    _services: Vec<Rc<ShardWorker>>,
}

impl Handler for ShardIngress {
    fn call(&self, request: Request<Body>) -> LocalBoxFuture<'static, Response<Body>> {
        let worker = self.worker.clone();
        Box::pin(async move {
            match worker {
                Some(worker) => worker.fetch(request).await,
                None => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the Worker has not started yet\n",
                ),
            }
        })
    }
}

struct Scheduled(Arc<JsWorker>);

impl ScheduledHandler for Scheduled {
    fn scheduled(
        &self,
        controller: ScheduledController,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        let worker = self.0.local();
        Box::pin(async move {
            let worker = worker.ok_or("the Worker has not started yet")?;
            let isolate = worker.isolate().await?;
            match isolate
                .scheduled(controller.cron, controller.scheduled_time_ms)
                .await
            {
                Outcome::Done { .. } | Outcome::Streaming { .. } | Outcome::WebSocket { .. } => {
                    Ok(())
                }
                Outcome::Exception(message) => {
                    error!(worker = %worker.script.name, outcome = "exception", "scheduled: uncaught exception: {message}");
                    Err(message)
                }
                Outcome::Exceeded(exceeded) => Err(format!(
                    "Worker exceeded resource limits ({})",
                    exceeded.outcome()
                )),
            }
        })
    }
}
