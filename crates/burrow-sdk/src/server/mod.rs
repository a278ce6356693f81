//! The server, shared by the `burrow` binary and every Rust app: from a loaded configuration and
//! a [`Guest`] (Durable Object classes and the Worker's handler) to listening, and back down.
//!
//! Start-up order ([`Server::start`]): bind both listeners (a busy port fails fast, before
//! anything is created), create the data directory, apply the `migrations` to the namespaces
//! file and check that every class the guest brings has a namespace, open the storage engine
//! (recovering from the journal), start the shards, start the object runtime (which re-arms
//! stored alarms), then serve the Worker ingress and the admin API.
//!
//! Shutdown ([`run`] on SIGTERM or SIGINT, or [`Server::shutdown`]): both listeners stop
//! accepting at once and let in-flight requests finish for up to the grace period; then the
//! runtime lets running events finish, closes every object and makes everything durable; then
//! the shard threads stop. A second signal during the drain stops waiting: in-flight requests
//! are cut off, but the runtime still closes the storage cleanly.

mod admin;
mod logging;
mod metrics;
mod objects;
mod options;
mod summary;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burrow_config::LoadedConfig;
use burrow_http::{AdminAuth, MakeHandler, ServerHandle, ServerOptions};
use burrow_runtime::Runtime;
use burrow_runtime::clock::SystemClock;
use burrow_runtime::guest::ObjectClass;
use burrow_runtime::namespace::{Change, Namespaces};
use burrow_runtime::shard::Shards;
use burrow_services::cron::Scheduler;
use burrow_storage::engine::Engine;
use burrow_storage::fs::OsFs;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

pub use admin::SCRIPTS_PATH;
pub use logging::{LogFormat, init_logging};
pub use options::{
    DEFAULT_PORT, Flags, HIBERNATE_AFTER_VARIABLE, MAX_WEBSOCKETS_VARIABLE, Mode,
    STORAGE_IDLE_AFTER_VARIABLE, ServeOptions, WEBSOCKET_SEND_BUFFER_VARIABLE,
};
pub use summary::log_summary;

/// How long in-flight requests and events may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why the server did not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration did not load.
    #[error(transparent)]
    Config(#[from] burrow_config::Error),
    /// `--ip` is not an address.
    #[error("--ip {0}: not an IP address (e.g. 127.0.0.1, 0.0.0.0 or ::1)")]
    InvalidIp(String),
    /// A setting from the environment does not parse.
    #[error("{name}={value:?}: not a whole number of milliseconds")]
    InvalidVariable {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// An admin listener open to the network without a token.
    #[error(transparent)]
    TokenRequired(#[from] burrow_http::admin::TokenRequired),
    /// The Worker's port is taken or not allowed.
    #[error(
        "cannot listen on {address} for the Worker (choose another with --ip/--port): {source}"
    )]
    ListenIngress {
        /// The address.
        address: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The admin API's port is taken or not allowed.
    #[error(
        "cannot listen on {address} for the admin API (choose another with --admin-address or \
         [burrow] admin_address): {source}"
    )]
    ListenAdmin {
        /// The address.
        address: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The data directory cannot be created.
    #[error("cannot create the data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The namespaces file or the migrations failed.
    #[error(transparent)]
    Namespaces(#[from] burrow_runtime::namespace::Error),
    /// A class the guest implements has no migration that creates it.
    #[error(
        "Durable Object class \"{class}\" has no migration in {}: add one, e.g.\n\n\
         [[migrations]]\ntag = \"v1\"\nnew_sqlite_classes = [\"{class}\"]",
        config.display()
    )]
    ClassWithoutMigration {
        /// The class.
        class: String,
        /// The configuration file.
        config: PathBuf,
    },
    /// The guest's own set-up failed (a Rust app's bindings, for example).
    #[error("{0}")]
    Guest(String),
    /// The storage engine did not open.
    #[error("cannot open the storage in {}: {source}", path.display())]
    Storage {
        /// The data directory.
        path: PathBuf,
        /// Why.
        source: burrow_storage::engine::Error,
    },
    /// The shard threads did not start.
    #[error("cannot start the shard threads: {0}")]
    Shards(std::io::Error),
    /// The object runtime did not start or stop cleanly.
    #[error(transparent)]
    Runtime(#[from] burrow_runtime::runtime::Error),
    /// The Worker's listener did not start.
    #[error("cannot start the Worker ingress: {0}")]
    Ingress(std::io::Error),
    /// The admin listener did not start.
    #[error("cannot start the admin API: {0}")]
    Admin(#[from] burrow_http::admin::ServeError),
    /// Signal handlers or the control thread's runtime could not be set up.
    #[error("cannot set up signal handling: {0}")]
    Signals(std::io::Error),
}

/// Builds the ingress handler once the runtime is up.
pub type MakeWorker = Box<dyn FnOnce(&Runtime) -> Result<Arc<dyn MakeHandler>, Error> + Send>;

/// What runs in the server: Durable Object classes by class name, and the Worker's handler,
/// built once the runtime is up (so that it can hold the runtime's namespaces).
pub struct Guest {
    /// `(class name, class)` for every class the guest implements.
    pub classes: Vec<(String, Arc<dyn ObjectClass>)>,
    /// Builds the ingress handler.
    pub worker: MakeWorker,
    /// The Worker's `scheduled` handler, run on `triggers.crons` (see `crate::cron`).
    pub scheduled: Option<Arc<dyn burrow_services::cron::ScheduledHandler>>,
    /// The Workflows the guest implements (see `crate::workflow`).
    pub workflows: Option<burrow_services::workflows::Workflows>,
    /// The guest's queue bindings and handler (see `crate::queue`).
    pub queues: crate::queue::QueueGuest,
    /// Time the guest has spent running its code, for `/metrics` (a JavaScript Worker's
    /// isolates); `None` for guests that are not metered (Rust apps run natively).
    pub cpu_time: Option<CpuTime>,
}

/// Reads a guest's CPU time so far.
pub type CpuTime = Arc<dyn Fn() -> Duration + Send + Sync>;

/// Descriptors kept for what is neither an object database nor a connection: journal segments,
/// listeners, the shards' epoll and event handles, logs.
const RESERVED_DESCRIPTORS: u64 = 512;

/// Raises the process's descriptor limit to its hard limit and, when even that cannot hold
/// `max_open_objects` databases (one descriptor each) beside the listeners' connection and
/// WebSocket caps, lowers `max_open_objects` to what fits, with a warning. Without this, a
/// soft limit of 1,024 (a common default) would fail object opens with "too many open files".
/// The WebSocket cap itself is first lowered (with a warning) to what the limit leaves after the
/// reserve and both listeners' connections, so upgrades past it get the ingress's 503 naming the
/// cap instead of failing on descriptors. Returns the engine's options and the WebSocket cap.
fn fit_descriptor_budget(
    mut engine: burrow_storage::engine::Options,
    max_websockets: usize,
) -> (burrow_storage::engine::Options, usize) {
    let limit = match burrow_storage::fs::raise_open_file_limit() {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "could not raise the open-file limit");
            return (engine, max_websockets);
        }
    };
    let (ingress, admin) = (ServerOptions::ingress(), ServerOptions::admin());
    let connections =
        (ingress.max_connections + admin.max_connections) as u64 + RESERVED_DESCRIPTORS;
    let websocket_room = usize::try_from(limit.saturating_sub(connections)).unwrap_or(usize::MAX);
    let max_websockets = if max_websockets > websocket_room {
        tracing::warn!(
            configured = max_websockets,
            open_file_limit = limit,
            using = websocket_room,
            "the WebSocket cap does not fit the open-file limit beside the connections; lowered"
        );
        websocket_room
    } else {
        max_websockets
    };
    let others = connections + max_websockets as u64;
    let budget = object_budget(limit, others);
    if engine.max_open_objects > budget {
        tracing::warn!(
            configured = engine.max_open_objects,
            open_file_limit = limit,
            using = budget,
            "max_open_objects does not fit the open-file limit beside the listeners; lowered \
             (raise `ulimit -n` to keep more objects open)"
        );
        engine.max_open_objects = budget;
    }
    (engine, max_websockets)
}

/// Object databases that fit in `limit` descriptors when `others` are spoken for: all the rest
/// when that leaves the others room to spare, otherwise half of the limit (never fewer than 16).
fn object_budget(limit: u64, others: u64) -> usize {
    let budget = if limit > others.saturating_mul(2) {
        limit - others
    } else {
        limit / 2
    };
    usize::try_from(budget).unwrap_or(usize::MAX).max(16)
}

/// A running server. Stop it with [`Server::shutdown`].
pub struct Server {
    shards: Shards,
    runtime: Runtime,
    scheduler: Scheduler,
    queues: crate::queue::Service,
    ingress: ServerHandle,
    admin: ServerHandle,
}

impl Server {
    /// Starts everything, in the order the module documentation gives, and logs where the
    /// listeners are ("Worker ingress listening", "admin API listening").
    pub async fn start(
        loaded: &LoadedConfig,
        options: &ServeOptions,
        guest: Guest,
    ) -> Result<Server, Error> {
        // Bind before starting anything, so that a busy port fails fast and plainly.
        let ingress_listener =
            TcpListener::bind(options.listen).map_err(|source| Error::ListenIngress {
                address: options.listen,
                source,
            })?;
        let admin_listener =
            TcpListener::bind(options.admin_address).map_err(|source| Error::ListenAdmin {
                address: options.admin_address,
                source,
            })?;
        std::fs::create_dir_all(&options.data_dir).map_err(|source| Error::DataDir {
            path: options.data_dir.clone(),
            source,
        })?;

        let primary = &loaded.primary;
        let mut namespaces = Namespaces::open(&options.data_dir)?;
        let applied =
            namespaces.apply_config(&primary.config.migrations, &primary.config.durable_objects)?;
        log_migrations(&applied.changes);
        for (class, _) in &guest.classes {
            if namespaces.namespace(class).is_none() {
                return Err(Error::ClassWithoutMigration {
                    class: class.clone(),
                    config: primary.file.clone(),
                });
            }
        }

        let (engine_options, max_websockets) =
            fit_descriptor_budget(options.engine.clone(), options.max_websockets);
        let fitted = ServeOptions {
            max_websockets,
            ..options.clone()
        };
        let options = &fitted;
        let engine =
            Engine::open(Arc::new(OsFs), &options.data_dir, engine_options).map_err(|source| {
                Error::Storage {
                    path: options.data_dir.clone(),
                    source,
                }
            })?;
        let shards = match Shards::start(options.shards) {
            Ok(shards) => shards,
            Err(error) => {
                let _ = engine.shutdown();
                return Err(Error::Shards(error));
            }
        };
        // The services' system classes run beside the guest's (they need no migration).
        let mut classes = guest.classes;
        classes.push(crate::kv::class());
        classes.extend(crate::queue::classes());
        if let Some(workflows) = &guest.workflows {
            classes.extend(workflows.classes());
        }
        let runtime = match Runtime::start(
            shards.clone(),
            engine,
            &namespaces,
            classes,
            Arc::new(SystemClock),
            options.runtime.clone(),
        )
        .await
        {
            Ok(runtime) => runtime,
            Err(error) => {
                shards.shutdown(Duration::ZERO);
                return Err(error.into());
            }
        };
        // Workflows resume the instances that were running when the server last stopped.
        if let Some(workflows) = &guest.workflows
            && let Err(error) = workflows.attach(&runtime).await
        {
            let _ = runtime.shutdown(Duration::ZERO).await;
            shards.shutdown(Duration::ZERO);
            return Err(Error::Guest(format!("Workflows did not start: {error}")));
        }
        let queues = match crate::queue::start(&runtime, loaded, &guest.queues).await {
            Ok(queues) => queues,
            Err(error) => {
                let _ = runtime.shutdown(Duration::ZERO).await;
                shards.shutdown(Duration::ZERO);
                return Err(error);
            }
        };
        let listeners =
            crate::cron::start(loaded, &shards, guest.scheduled).and_then(|scheduler| {
                let listeners = serve_listeners(
                    loaded,
                    options,
                    guest.worker,
                    Services {
                        workflows: guest.workflows.as_ref(),
                        queues: &queues,
                        cpu_time: guest.cpu_time.clone(),
                    },
                    &runtime,
                    &scheduler,
                    (ingress_listener, admin_listener),
                );
                if listeners.is_err() {
                    scheduler.stop();
                }
                listeners.map(|(ingress, admin)| (scheduler, ingress, admin))
            });
        // Push consumers start once the Worker's bindings exist (the ingress handler made them).
        let listeners = match listeners {
            Ok(started) => match queues.start_consumers(loaded, guest.queues.handler).await {
                Ok(()) => Ok(started),
                Err(error) => {
                    let (scheduler, ingress, admin) = started;
                    scheduler.stop();
                    drain(ingress, admin, Duration::ZERO).await;
                    Err(error)
                }
            },
            Err(error) => Err(error),
        };
        match listeners {
            Ok((scheduler, ingress, admin)) => {
                info!(
                    url = %format!("http://{}", ingress.local_addr()),
                    worker = %primary.name(),
                    "Worker ingress listening"
                );
                info!(
                    url = %format!("http://{}", admin.local_addr()),
                    "admin API listening"
                );
                Ok(Server {
                    shards,
                    runtime,
                    scheduler,
                    queues,
                    ingress,
                    admin,
                })
            }
            Err(error) => {
                queues.stop(Duration::ZERO).await;
                if let Err(error) = runtime.shutdown(Duration::ZERO).await {
                    warn!(%error, "the object runtime did not stop cleanly");
                }
                shards.shutdown(Duration::ZERO);
                Err(error)
            }
        }
    }

    /// The Worker ingress's address (useful with port 0).
    pub fn ingress_address(&self) -> SocketAddr {
        self.ingress.local_addr()
    }

    /// The admin API's address.
    pub fn admin_address(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    /// The object runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Stops gracefully: in-flight requests and events get up to `grace` to finish, then
    /// everything is made durable and the threads stop.
    pub async fn shutdown(self, grace: Duration) -> Result<(), Error> {
        let Server {
            shards,
            runtime,
            scheduler,
            queues,
            ingress,
            admin,
        } = self;
        scheduler.stop();
        let deadline = Instant::now() + grace;
        drain(ingress, admin, grace).await;
        queues
            .stop(deadline.saturating_duration_since(Instant::now()))
            .await;
        stop(
            shards,
            runtime,
            deadline.saturating_duration_since(Instant::now()),
        )
        .await
    }
}

/// Runs the server until SIGTERM or SIGINT, then shuts it down gracefully (see the module
/// docs).
pub fn run(loaded: LoadedConfig, options: ServeOptions, guest: Guest) -> Result<(), Error> {
    run_until(loaded, options, guest, Arc::new(tokio::sync::Notify::new())).map(drop)
}

/// Why [`run_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM or SIGINT.
    Signal,
    /// `restart` was notified; the server stopped gracefully and these are the addresses it
    /// listened on, to listen on again.
    Restart {
        /// The Worker ingress.
        ingress: SocketAddr,
        /// The admin API.
        admin: SocketAddr,
    },
}

/// Like [`run`], but also stops gracefully when `restart` is notified (`burrow dev` does that
/// when the configuration changes, then starts again with the new one on the same ports).
pub fn run_until(
    loaded: LoadedConfig,
    options: ServeOptions,
    guest: Guest,
    restart: Arc<tokio::sync::Notify>,
) -> Result<Stopped, Error> {
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Signals)?;
    control.block_on(async {
        // Signal handlers first: a signal that arrives while the server starts must not kill
        // the process with the default action.
        let mut terminate = signal(SignalKind::terminate()).map_err(Error::Signals)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(Error::Signals)?;
        let server = Server::start(&loaded, &options, guest).await?;
        let addresses = (server.ingress_address(), server.admin_address());

        let (name, stopped) = tokio::select! {
            _ = terminate.recv() => ("SIGTERM", Stopped::Signal),
            _ = interrupt.recv() => ("SIGINT", Stopped::Signal),
            () = restart.notified() => (
                "restart",
                Stopped::Restart { ingress: addresses.0, admin: addresses.1 },
            ),
        };
        info!(
            signal = name,
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "shutting down: finishing in-flight requests"
        );
        let Server {
            shards,
            runtime,
            scheduler,
            queues,
            ingress,
            admin,
        } = server;
        scheduler.stop();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let mut grace_left = true;
        tokio::select! {
            () = drain(ingress, admin, SHUTDOWN_GRACE) => {}
            _ = terminate.recv() => grace_left = false,
            _ = interrupt.recv() => grace_left = false,
        }
        let grace = if grace_left {
            deadline.saturating_duration_since(Instant::now())
        } else {
            warn!("second signal: stopping without waiting");
            Duration::ZERO
        };
        queues.stop(grace).await;
        stop(shards, runtime, grace).await?;
        info!("stopped");
        Ok(if grace_left { stopped } else { Stopped::Signal })
    })
}

/// The services whose admin routes the admin listener serves beside KV's.
struct Services<'a> {
    workflows: Option<&'a burrow_services::workflows::Workflows>,
    queues: &'a crate::queue::Service,
    cpu_time: Option<CpuTime>,
}

fn serve_listeners(
    loaded: &LoadedConfig,
    options: &ServeOptions,
    worker: MakeWorker,
    services: Services<'_>,
    runtime: &Runtime,
    scheduler: &Scheduler,
    (ingress_listener, admin_listener): (TcpListener, TcpListener),
) -> Result<(ServerHandle, ServerHandle), Error> {
    let mut handler = worker(runtime)?;
    if options.mode == Mode::Dev {
        handler = crate::cron::with_trigger_endpoints(handler, scheduler.clone());
    }
    let requests = metrics::RequestCounts::new();
    let handler = metrics::count_requests(handler, requests.clone());
    let shards = runtime.shards();
    let ingress = burrow_http::serve_ingress(
        ingress_listener,
        shards,
        handler,
        ServerOptions {
            max_websockets: options.max_websockets,
            ..ServerOptions::ingress()
        },
    )
    .map_err(Error::Ingress)?;
    let sources = metrics::Sources {
        worker: loaded
            .workers()
            .next()
            .map(|worker| worker.name())
            .unwrap_or_default(),
        requests,
        ingress: ingress.stats(),
        runtime: runtime.clone(),
        queues: services.queues.queues(),
        workflows: services.workflows.cloned(),
        cpu_time: services.cpu_time,
    };
    let mut router = admin::router(loaded, sources);
    crate::kv::admin_routes(&mut router, loaded, runtime);
    objects::admin_routes(&mut router, loaded, runtime);
    if let Some(workflows) = services.workflows {
        crate::workflow::admin_routes(&mut router, loaded, workflows);
    }
    crate::queue::admin_routes(&mut router, services.queues, loaded);
    let auth = AdminAuth::new(options.api_tokens.iter().cloned());
    let admin =
        burrow_http::serve_admin(admin_listener, shards, router, auth, ServerOptions::admin())?;
    Ok((ingress, admin))
}

/// Stops both listeners and waits, up to `grace`, for their in-flight requests.
async fn drain(ingress: ServerHandle, admin: ServerHandle, grace: Duration) {
    let (ingress, admin) = tokio::join!(ingress.shutdown(grace), admin.shutdown(grace));
    let abandoned = ingress.abandoned_connections + admin.abandoned_connections;
    if abandoned > 0 {
        warn!(
            connections = abandoned,
            "closed connections with requests in flight"
        );
    }
}

/// Lets running events finish (up to `grace`), makes everything durable, stops the shards.
async fn stop(shards: Shards, runtime: Runtime, grace: Duration) -> Result<(), Error> {
    let result = runtime.shutdown(grace).await;
    drop(runtime);
    shards.shutdown(grace);
    Ok(result?)
}

fn log_migrations(changes: &[Change]) {
    for change in changes {
        match change {
            Change::Created {
                tag, class_name, ..
            } => info!(migration = %tag, "created Durable Object class {class_name}"),
            Change::Renamed { tag, from, to, .. } => {
                info!(migration = %tag, "renamed Durable Object class {from} to {to}")
            }
            Change::Deleted {
                tag, class_name, ..
            } => info!(migration = %tag, "deleted Durable Object class {class_name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::object_budget;

    #[test]
    fn object_databases_get_the_descriptors_the_listeners_leave() {
        // This machine: 20,000 descriptors, 4,096 + 3,000 + 256 connections and sockets + 512.
        assert_eq!(object_budget(20_000, 7_864), 12_136);
        // A common soft limit, raised to a higher hard limit: everything left over.
        assert_eq!(object_budget(1_048_576, 7_864), 1_040_712);
        // A hard limit of 1,024: half of it, the listeners' caps cannot all be met anyway.
        assert_eq!(object_budget(1_024, 7_864), 512);
        assert_eq!(object_budget(8, 7_864), 16);
        assert_eq!(object_budget(u64::MAX, 7_864), usize::MAX - 7_864);
    }

    #[test]
    fn the_soft_descriptor_limit_is_raised_to_the_hard_one() {
        let raised = burrow_storage::fs::raise_open_file_limit().expect("getrlimit/setrlimit");
        let hard = hard_limit_from_proc();
        assert_eq!(raised, hard);
    }

    /// The hard limit as /proc reports it ("Max open files  soft  hard  files").
    fn hard_limit_from_proc() -> u64 {
        let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
        let line = limits
            .lines()
            .find(|line| line.starts_with("Max open files"))
            .expect("a Max open files line");
        let hard = line.split_whitespace().nth(4).expect("the hard limit");
        if hard == "unlimited" {
            u64::MAX
        } else {
            hard.parse().expect("a number")
        }
    }
}
