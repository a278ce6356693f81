//! bench_app, the server under test: built with cargo, started on a free loopback port with its
//! own data directory and idle times, stopped with SIGTERM.

use crate::process::{Server, free_port};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its first `GET /hello`.
pub(super) const READY_LIMIT: Duration = Duration::from_secs(60);

/// How long bench_app's objects stay in memory and keep their storage open when idle.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Idle {
    /// The defaults, which are Cloudflare's (hibernation after 10 s).
    Cloudflare,
    /// Hibernation after `hibernate_after`, storage closed after `storage_idle_after`, set
    /// through the SDK's `BURROW_HIBERNATE_AFTER_MS` and `BURROW_STORAGE_IDLE_AFTER_MS`.
    Short {
        hibernate_after: Duration,
        storage_idle_after: Duration,
    },
}

/// The repository root: the workspace that holds this crate.
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Builds bench_app in release mode and returns its executable, as cargo reports it.
pub(super) fn build(root: &Path) -> anyhow::Result<PathBuf> {
    build_example(root, "bench_app")
}

/// Builds example `name` of burrow-sdk in release mode and returns its executable.
pub(crate) fn build_example(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--example",
            name,
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!(
            "cargo build --release --example {name} failed ({})",
            output.status
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == name)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .with_context(|| format!("cargo built no {name} executable"))
}

/// Starts bench_app from the repository root (as `cargo run --example` would) on a free port,
/// with the fresh data directory `data` and its log at `log`.
pub(super) fn start(
    app: &Path,
    root: &Path,
    data: &Path,
    log: &Path,
    idle: Idle,
) -> anyhow::Result<Server> {
    let port = free_port()?;
    std::fs::create_dir_all(data)?;
    // Its own admin port too, so that a Burrow already running on the default one is no clash.
    let admin_port = free_port()?;
    let mut command = Command::new(app);
    command
        .current_dir(root)
        .arg("--port")
        .arg(port.to_string())
        .arg("--admin-address")
        .arg(format!("127.0.0.1:{admin_port}"))
        .arg("--persist-to")
        .arg(data);
    if let Idle::Short {
        hibernate_after,
        storage_idle_after,
    } = idle
    {
        command
            .env(
                "BURROW_HIBERNATE_AFTER_MS",
                hibernate_after.as_millis().to_string(),
            )
            .env(
                "BURROW_STORAGE_IDLE_AFTER_MS",
                storage_idle_after.as_millis().to_string(),
            );
    }
    let mut server = Server::start("bench_app", &mut command, port, log)?;
    let took = server.wait_ready(READY_LIMIT)?;
    eprintln!(
        "      bench_app (pid {}) answers on 127.0.0.1:{port} after {took:.1?}",
        server.pid()
    );
    Ok(server)
}

/// Stops bench_app with SIGTERM; fails unless it exits 0.
pub(super) fn stop(server: Server) -> anyhow::Result<()> {
    let started = Instant::now();
    server.stop()?;
    eprintln!(
        "      bench_app exited cleanly {:.1?} after SIGTERM",
        started.elapsed()
    );
    Ok(())
}
