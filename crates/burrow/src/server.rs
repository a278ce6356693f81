//! The boundary between the CLI and the server: everything `dev` and `serve` decided (validated
//! configuration, listeners, data directory) goes in, and the server runs until SIGTERM or
//! SIGINT, then shuts down gracefully and returns.
//!
//! The start-up and shutdown themselves (engine, migrations, shards, object runtime, ingress,
//! admin API) are `burrow_sdk::server`, the same code every Rust app runs; this file only says
//! what the binary runs in it.

use std::sync::Arc;

use burrow_config::LoadedConfig;
use burrow_http::{MakeHandler, handler_fn, text_response};
use burrow_sdk::server::{self, Guest, ServeOptions};
use http::StatusCode;

/// Runs the server until a shutdown signal, then shuts it down gracefully.
pub(crate) fn run_server(loaded: LoadedConfig, options: ServeOptions) -> anyhow::Result<()> {
    let handler = worker_handler(&loaded);
    let guest = Guest {
        // JavaScript classes arrive with the JavaScript runtime; their migrations already apply.
        classes: Vec::new(),
        worker: Box::new(move |_runtime| Ok(handler)),
        scheduled: None,
        workflows: None,
        queues: Default::default(),
    };
    server::run(loaded, options, guest)?;
    Ok(())
}

/// The ingress's request handler: what every request to the Worker's address reaches.
///
/// This is the seam for the JavaScript runtime, which replaces it with Worker dispatch.
/// Until then every request gets 503.
fn worker_handler(_loaded: &LoadedConfig) -> Arc<dyn MakeHandler> {
    handler_fn(|_request| async {
        text_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "Burrow: no Worker runtime is wired in yet",
        )
    })
}
