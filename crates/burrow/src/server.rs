//! The boundary between the CLI and the server: everything `dev` and `serve` decided (validated
//! configuration, listeners, data directory) goes in, and the server runs until it stops.
//!
//! The Durable Object runtime replaces the body of [`run_server`]; nothing else here should need
//! to change when it does.

use std::net::SocketAddr;
use std::path::PathBuf;

use burrow_config::LoadedConfig;

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
    /// The admin API listener (`[burrow] admin_address`).
    pub(crate) admin_address: SocketAddr,
    /// Admin API bearer tokens (`[burrow] api_tokens` and `BURROW_API_TOKEN`).
    pub(crate) api_tokens: Vec<String>,
    /// The data directory; it exists when the server starts.
    pub(crate) data_dir: PathBuf,
    /// Reload when configuration or sources change (`dev` only).
    pub(crate) watch: bool,
}

/// Runs the server until it stops.
pub(crate) fn run_server(loaded: LoadedConfig, options: ServeOptions) -> anyhow::Result<()> {
    tracing::info!(
        worker = %loaded.primary.name(),
        listen = %options.listen,
        admin = %options.admin_address,
        "serving arrives with the Durable Object runtime"
    );
    Ok(())
}
