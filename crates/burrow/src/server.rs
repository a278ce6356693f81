//! The boundary between the CLI and the server: everything `dev` and `serve` decided (validated
//! configuration, listeners, data directory) goes in, and the server runs until SIGTERM or
//! SIGINT, then shuts down gracefully and returns.
//!
//! Start-up order: shards, then the Worker ingress, then the admin API (whose `/metrics` reads the
//! ingress's numbers). Shutdown runs the other way round in effect: both listeners stop accepting
//! at once and drain for up to [`SHUTDOWN_GRACE`], then the shards finish what is left. A second
//! signal during the drain stops waiting.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use burrow_config::LoadedConfig;
use burrow_http::{AdminAuth, MakeHandler, ServerOptions, handler_fn, text_response};
use burrow_runtime::shard::Shards;
use http::StatusCode;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::admin;

/// How long in-flight requests may take to finish after a shutdown signal.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Which command started the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `burrow dev`: local development (admin tokens optional on loopback; file watching).
    Dev,
    /// `burrow serve`: production.
    Serve,
}

/// What the server needs besides the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServeOptions {
    /// `dev` or `serve`.
    pub(crate) mode: Mode,
    /// The Worker's HTTP listener (`--ip`, `--port`).
    pub(crate) listen: SocketAddr,
    /// The admin API listener (`--admin-address`, `[burrow] admin_address`).
    pub(crate) admin_address: SocketAddr,
    /// Admin API bearer tokens (`[burrow] api_tokens` and `BURROW_API_TOKEN`).
    pub(crate) api_tokens: Vec<String>,
    /// Shard threads (`[burrow] shards`).
    pub(crate) shards: usize,
    /// The data directory; it exists when the server starts.
    pub(crate) data_dir: PathBuf,
    /// Reload when configuration or sources change (`dev` only).
    pub(crate) watch: bool,
}

/// Runs the server until a shutdown signal, then shuts it down gracefully.
pub(crate) fn run_server(loaded: LoadedConfig, options: ServeOptions) -> anyhow::Result<()> {
    // Bind before starting anything, so that a busy port fails fast and plainly.
    let ingress_listener = TcpListener::bind(options.listen).with_context(|| {
        format!(
            "cannot listen on {} for the Worker (choose another with --ip/--port)",
            options.listen
        )
    })?;
    let admin_listener = TcpListener::bind(options.admin_address).with_context(|| {
        format!(
            "cannot listen on {} for the admin API (choose another with --admin-address or \
             [burrow] admin_address)",
            options.admin_address
        )
    })?;
    let shards = Shards::start(options.shards).context("cannot start the shard threads")?;
    let result = serve_until_signal(&loaded, &options, &shards, ingress_listener, admin_listener);
    shards.shutdown(SHUTDOWN_GRACE);
    if result.is_ok() {
        info!("stopped");
    }
    result
}

fn serve_until_signal(
    loaded: &LoadedConfig,
    options: &ServeOptions,
    shards: &Shards,
    ingress_listener: TcpListener,
    admin_listener: TcpListener,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal runtime")?;
    runtime.block_on(async {
        // Signal handlers first: a signal that arrives while the listeners start must not kill
        // the process with the default action.
        let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;

        let ingress = burrow_http::serve_ingress(
            ingress_listener,
            shards,
            worker_handler(loaded),
            ServerOptions::ingress(),
        )
        .context("cannot start the Worker ingress")?;
        let router = admin::router(loaded, ingress.stats());
        let auth = AdminAuth::new(options.api_tokens.iter().cloned());
        let admin =
            burrow_http::serve_admin(admin_listener, shards, router, auth, ServerOptions::admin())
                .context("cannot start the admin API")?;
        info!(
            url = %format!("http://{}", ingress.local_addr()),
            worker = %loaded.primary.name(),
            "Worker ingress listening"
        );
        info!(
            url = %format!("http://{}", admin.local_addr()),
            "admin API listening"
        );

        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        info!(
            signal = name,
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "shutting down: finishing in-flight requests"
        );
        let drain = async {
            tokio::join!(
                ingress.shutdown(SHUTDOWN_GRACE),
                admin.shutdown(SHUTDOWN_GRACE)
            )
        };
        tokio::select! {
            (ingress, admin) = drain => {
                let abandoned = ingress.abandoned_connections + admin.abandoned_connections;
                if abandoned > 0 {
                    warn!(connections = abandoned, "closed connections with requests in flight");
                }
            }
            _ = terminate.recv() => warn!("second signal: stopping without waiting"),
            _ = interrupt.recv() => warn!("second signal: stopping without waiting"),
        }
        Ok(())
    })
}

/// The ingress's request handler: what every request to the Worker's address reaches.
///
/// This is the seam for the Durable Object runtime, which replaces it with Worker dispatch.
/// Until then every request gets 503.
fn worker_handler(_loaded: &LoadedConfig) -> Arc<dyn MakeHandler> {
    handler_fn(|_request| async {
        text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "Burrow: no Worker runtime is wired in yet",
        )
    })
}
