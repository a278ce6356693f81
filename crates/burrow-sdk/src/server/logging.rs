//! Logging setup: `tracing` to stderr, human-readable or JSON, filtered by RUST_LOG.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The log format on stderr (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. RUST_LOG uses EnvFilter syntax; without it, `info`. Does
/// nothing if a subscriber is already installed (an app embedding Burrow may have its own).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` fails only when a subscriber exists already, which is fine.
    let _ = match format {
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
