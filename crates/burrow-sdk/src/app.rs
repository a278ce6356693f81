//! [`App`]: a Rust Worker, put together from Durable Object classes and a `fetch` handler, and
//! served the way `burrow serve` serves a JavaScript one.
//!
//! The code declares which Rust type implements each Durable Object binding; everything else
//! (the binding's class name, migrations, vars, secrets, `[burrow]` settings) comes from the same
//! `wrangler.toml` that `burrow serve` reads. A Rust app is its own binary with the same flags.

use std::any::TypeId;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;

use burrow_config::LoadedConfig;
use burrow_http::{Handler, LocalBoxFuture, MakeHandler};
use burrow_runtime::guest::ObjectClass;
use clap::{CommandFactory, FromArgMatches};
use tracing::{debug, warn};

use crate::cron::ScheduledController;
use crate::env::{Binding, Env};
use crate::error::{Error, Result};
use crate::fetch::{Request, Response};
use crate::object::{Class, DurableObject};
use crate::rpc::Rpc;
use crate::server::{self, Flags, Guest, LogFormat, Mode, ServeOptions, Server};

/// The configuration file a Rust app reads when neither `--config` nor
/// [`App::default_config`] names one.
pub const DEFAULT_CONFIG: &str = "wrangler.toml";

/// A Rust Worker: Durable Object classes bound by name, and a `fetch` handler.
///
/// ```no_run
/// use burrow::{App, Env, Request, Response, Result};
///
/// fn main() -> std::process::ExitCode {
///     App::new()
///         .fetch(|request: Request, env: Env| async move {
///             let greeting = env.var("GREETING").unwrap_or_else(|| "hello".to_owned());
///             Ok(Response::text(format!("{greeting} from {}", request.path())))
///         })
///         .serve_from_args()
/// }
/// ```
pub struct App {
    classes: Vec<Registration>,
    worker: Option<MakeWorker>,
    scheduled: Option<crate::cron::MakeScheduled>,
    pub(crate) workflows: Vec<crate::workflow::Registration>,
    queue: Option<crate::queue::MakeHandler>,
    default_config: PathBuf,
}

type MakeWorker = Box<dyn FnOnce(Env) -> Arc<dyn MakeHandler> + Send>;

struct Registration {
    binding: String,
    type_id: TypeId,
    type_name: &'static str,
    make: fn(Env) -> Arc<dyn ObjectClass>,
}

impl Default for App {
    fn default() -> Self {
        App::new()
    }
}

impl App {
    /// An app with no classes and no `fetch` handler.
    pub fn new() -> App {
        App {
            classes: Vec::new(),
            worker: None,
            scheduled: None,
            workflows: Vec::new(),
            queue: None,
            default_config: PathBuf::from(DEFAULT_CONFIG),
        }
    }

    /// Declares that `T` implements the class of Durable Object binding `binding` (its
    /// `[[durable_objects.bindings]]` entry names the class; a migration must create it).
    pub fn durable_object<T: DurableObject + Rpc>(mut self, binding: &str) -> App {
        fn make<T: DurableObject + Rpc>(env: Env) -> Arc<dyn ObjectClass> {
            Arc::new(Class::<T>::new(env))
        }
        self.classes.push(Registration {
            binding: binding.to_owned(),
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            make: make::<T>,
        });
        self
    }

    /// The Worker's `fetch` handler: every request to the ingress reaches it. An `Err` becomes a
    /// plain-text response with [`Error::status`] (500 unless the error says otherwise).
    ///
    /// The handler runs on a shard thread; its future need not be `Send`.
    pub fn fetch<F, Fut>(mut self, handler: F) -> App
    where
        F: Fn(Request, Env) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response>> + 'static,
    {
        self.worker = Some(Box::new(move |env| {
            Arc::new(Worker {
                handler: Arc::new(handler),
                env,
            }) as Arc<dyn MakeHandler>
        }));
        self
    }

    /// The Worker's `scheduled` handler: runs on the `triggers.crons` of `wrangler.toml` (and on
    /// the local trigger endpoints of `burrow dev`). An `Err` is logged as a failed run.
    pub fn scheduled<F, Fut>(mut self, handler: F) -> App
    where
        F: Fn(ScheduledController, Env) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        self.scheduled = Some(crate::cron::make_scheduled(handler));
        self
    }

    /// The Worker's `queue` handler: receives the batches of every `[[queues.consumers]]` queue
    /// (type `worker`) in `wrangler.toml`. Resolving acks every message not retried; an `Err`
    /// retries every message not acked (see [`crate::queue`]).
    pub fn queue<F, Fut>(mut self, handler: F) -> App
    where
        F: Fn(crate::queue::MessageBatch, Env) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + 'static,
    {
        self.queue = Some(crate::queue::make_handler(handler));
        self
    }

    /// The configuration file to read when `--config` is not given (default `./wrangler.toml`).
    /// Examples use it to find the `wrangler.toml` beside their source from any directory.
    pub fn default_config(mut self, path: impl Into<PathBuf>) -> App {
        self.default_config = path.into();
        self
    }

    /// Runs the app as `burrow serve` would run it: parses the command line (`--config FILE`,
    /// `--port`, `--ip`, `--persist-to DIR`, `--admin-address IP:PORT`, `--env NAME`,
    /// `--log-format`), reads the configuration, serves until SIGTERM or SIGINT, shuts down
    /// gracefully, and returns the process's exit code (0 after a clean shutdown; on an error, 1
    /// after printing it).
    pub fn serve_from_args(self) -> ExitCode {
        let program = std::env::args()
            .next()
            .and_then(|path| {
                std::path::Path::new(&path)
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "app".to_owned());
        let matches = Arguments::command().bin_name(program).get_matches();
        let arguments = match Arguments::from_arg_matches(&matches) {
            Ok(arguments) => arguments,
            Err(error) => error.exit(),
        };
        server::init_logging(arguments.log_format);
        match self.serve_arguments(arguments) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        }
    }

    fn serve_arguments(self, arguments: Arguments) -> Result<(), server::Error> {
        let files = if arguments.config.is_empty() {
            vec![self.default_config.clone()]
        } else {
            arguments.config
        };
        let loaded = burrow_config::load_files(&files, &arguments.flags.load_options())?;
        for warning in &loaded.warnings {
            warn!("{warning}");
        }
        let options = ServeOptions::resolve(&loaded, &arguments.flags, Mode::Serve)?;
        server::log_summary(&loaded, &options);
        self.serve(loaded, options)
    }

    /// Serves the app with configuration and options the caller prepared, until SIGTERM or
    /// SIGINT; then shuts down gracefully. Blocks the calling thread.
    pub fn serve(self, loaded: LoadedConfig, options: ServeOptions) -> Result<(), server::Error> {
        let guest = self.into_guest(&loaded)?;
        server::run(loaded, options, guest)
    }

    /// Starts the app and returns the running [`Server`] (for tests and for binaries that
    /// manage their own lifecycle); stop it with [`Server::shutdown`].
    pub async fn start(
        self,
        loaded: &LoadedConfig,
        options: &ServeOptions,
    ) -> Result<Server, server::Error> {
        let guest = self.into_guest(loaded)?;
        Server::start(loaded, options, guest).await
    }

    /// Resolves the declared bindings against the configuration: the classes to run and the
    /// Worker handler.
    fn into_guest(self, loaded: &LoadedConfig) -> Result<Guest, server::Error> {
        let primary = &loaded.primary;
        let file = primary.file.display();
        let env = Env::new(primary.env_values(), primary.secrets.clone());
        // class name → (type, class); binding → (class name, type)
        let mut classes: HashMap<String, (TypeId, &'static str, Arc<dyn ObjectClass>)> =
            HashMap::new();
        let mut bindings: Vec<(String, String, TypeId, &'static str)> = Vec::new();
        for registration in &self.classes {
            let binding = primary
                .config
                .durable_objects
                .iter()
                .find(|binding| binding.name == registration.binding)
                .ok_or_else(|| {
                    server::Error::Guest(format!(
                        "the app implements Durable Object binding {:?} with {}, but {file} has no \
                         [[durable_objects.bindings]] entry named {:?}",
                        registration.binding, registration.type_name, registration.binding
                    ))
                })?;
            if let Some(script) = &binding.script_name {
                return Err(server::Error::Guest(format!(
                    "Durable Object binding {:?} in {file} names script_name {script:?}: a Rust \
                     app implements only its own classes",
                    binding.name
                )));
            }
            let class = &binding.class_name;
            match classes.get(class) {
                Some((type_id, type_name, _)) if *type_id != registration.type_id => {
                    return Err(server::Error::Guest(format!(
                        "Durable Object class {class:?} is implemented by both {type_name} and {}",
                        registration.type_name
                    )));
                }
                Some(_) => {}
                None => {
                    classes.insert(
                        class.clone(),
                        (
                            registration.type_id,
                            registration.type_name,
                            (registration.make)(env.clone()),
                        ),
                    );
                }
            }
            bindings.push((
                binding.name.clone(),
                class.clone(),
                registration.type_id,
                registration.type_name,
            ));
        }
        for binding in &primary.config.durable_objects {
            if binding.script_name.is_none()
                && !bindings.iter().any(|(name, ..)| *name == binding.name)
            {
                warn!(
                    "Durable Object binding {} (class {}) has no Rust implementation: register one \
                     with App::durable_object::<T>({:?})",
                    binding.name, binding.class_name, binding.name
                );
            }
        }
        let scheduled = self.scheduled.map(|make| make(env.clone()));
        let workflows = crate::workflow::service(&self.workflows, loaded, &env)?;
        let queues = crate::queue::QueueGuest {
            handler: self.queue.map(|make| make(env.clone())),
            env: Some(env.clone()),
        };
        let kv_namespaces = primary.config.kv_namespaces.clone();
        let make_worker = self.worker.unwrap_or_else(|| {
            Box::new(|env| {
                Arc::new(Worker {
                    handler: Arc::new(no_fetch_handler),
                    env,
                }) as Arc<dyn MakeHandler>
            })
        });
        let worker = Box::new(move |runtime: &burrow_runtime::Runtime| {
            let mut resolved = HashMap::new();
            for (name, class, type_id, type_name) in bindings {
                let namespace = runtime.namespace(&class).ok_or_else(|| {
                    server::Error::Guest(format!(
                        "Durable Object class {class:?} (binding {name}) did not start"
                    ))
                })?;
                resolved.insert(
                    name,
                    Binding {
                        namespace: Arc::new(namespace),
                        type_id,
                        type_name,
                    },
                );
            }
            env.set_bindings(resolved);
            let _ = env
                .kv_bindings()
                .set(crate::kv::bindings(runtime, &kv_namespaces));
            Ok(make_worker(env))
        });
        Ok(Guest {
            classes: classes
                .into_iter()
                .map(|(name, (_, _, class))| (name, class))
                .collect(),
            worker,
            scheduled,
            workflows,
            queues,
            cpu_time: None,
        })
    }
}

/// The flags of a Rust app's binary.
#[derive(Debug, clap::Parser)]
#[command(about = "A Burrow app: serves its Worker and Durable Objects over HTTP")]
struct Arguments {
    /// A configuration file; repeat it to run several Workers (the first receives HTTP traffic)
    /// [default: the app's own, else ./wrangler.toml].
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Vec<PathBuf>,

    /// Log format on stderr; the level comes from RUST_LOG (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,

    #[command(flatten)]
    flags: Flags,
}

async fn no_fetch_handler(_request: Request, _env: Env) -> Result<Response> {
    Err(Error::new("Handler does not export a fetch() function."))
}

/// The Worker's handler on every shard: calls the user's function and turns its errors into
/// responses.
struct Worker<F> {
    handler: Arc<F>,
    env: Env,
}

impl<F, Fut> MakeHandler for Worker<F>
where
    F: Fn(Request, Env) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response>> + 'static,
{
    fn make(&self, _shard: usize) -> Rc<dyn Handler> {
        Rc::new(Worker {
            handler: self.handler.clone(),
            env: self.env.clone(),
        })
    }
}

impl<F, Fut> Handler for Worker<F>
where
    F: Fn(Request, Env) -> Fut,
    Fut: Future<Output = Result<Response>> + 'static,
{
    fn call(
        &self,
        request: http::Request<burrow_http::Body>,
    ) -> LocalBoxFuture<'static, http::Response<burrow_http::Body>> {
        let response = (self.handler)(Request::from(request), self.env.clone());
        Box::pin(async move {
            match response.await {
                Ok(response) => response.into_http(),
                Err(error) => {
                    // Overload is expected under load, and a 4xx is the client's mistake;
                    // only the rest points at a bug worth a warning.
                    if error.is_overloaded()
                        || error.is_retryable()
                        || error.status().is_client_error()
                    {
                        debug!(error = %error, "Worker fetch handler failed");
                    } else {
                        warn!(error = %error, "Worker fetch handler failed");
                    }
                    Response::from_error(&error).into_http()
                }
            }
        })
    }
}
