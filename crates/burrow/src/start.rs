//! `burrow dev` and `burrow serve`: load and validate the configuration, report warnings and a
//! summary of what will run, prepare the data directory, then hand over to the server.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burrow_config::{LoadOptions, LoadedConfig, Worker};
use burrow_http::AdminAuth;
use burrow_http::admin::TOKEN_VARIABLE;
use tracing::{info, warn};

use crate::cli::{CommonArgs, DevArgs, ServeArgs};
use crate::server::{Mode, ServeOptions, run_server};

/// wrangler's default port for `wrangler dev`.
const DEFAULT_PORT: u16 = 8787;

pub(crate) fn dev(args: DevArgs) -> anyhow::Result<()> {
    let options = load_options(&args.common);
    let loaded = if args.config.is_empty() {
        if args.dir.is_file() {
            bail!(
                "{}: burrow dev takes a project directory; use -c {} for a configuration file",
                args.dir.display(),
                args.dir.display()
            );
        }
        burrow_config::load_dir(&args.dir, &options)?
    } else {
        burrow_config::load_files(&args.config, &options)?
    };
    start(loaded, &args.common, Mode::Dev)
}

pub(crate) fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let loaded = burrow_config::load_files(&args.config, &load_options(&args.common))?;
    start(loaded, &args.common, Mode::Serve)
}

fn load_options(common: &CommonArgs) -> LoadOptions {
    LoadOptions {
        environment: common.environment.clone(),
    }
}

fn start(loaded: LoadedConfig, common: &CommonArgs, mode: Mode) -> anyhow::Result<()> {
    for warning in &loaded.warnings {
        warn!("{warning}");
    }
    let options = serve_options(&loaded, common, mode)?;
    fs::create_dir_all(&options.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            options.data_dir.display()
        )
    })?;
    log_summary(&loaded, &options);
    run_server(loaded, options)
}

fn serve_options(
    loaded: &LoadedConfig,
    common: &CommonArgs,
    mode: Mode,
) -> anyhow::Result<ServeOptions> {
    let primary = &loaded.primary.config;
    // `[dev]` is wrangler's local-development table; `serve` ignores it.
    let dev = (mode == Mode::Dev).then_some(&primary.dev);
    let ip_text = common
        .ip
        .clone()
        .or_else(|| dev.and_then(|dev| dev.ip.clone()));
    let ip = match ip_text.as_deref() {
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Some(text) => parse_ip(text)?,
    };
    let port = common
        .port
        .or_else(|| dev.and_then(|dev| dev.port))
        .unwrap_or(DEFAULT_PORT);
    let settings = loaded.burrow();
    let data_dir = common
        .persist_to
        .clone()
        .or_else(|| settings.data_dir.clone())
        .unwrap_or_else(|| default_data_dir(&loaded.primary));
    let mut api_tokens = settings.api_tokens.clone();
    if let Some(token) = std::env::var(TOKEN_VARIABLE)
        .ok()
        .filter(|token| !token.is_empty())
    {
        api_tokens.push(token);
    }
    let admin_address = common.admin_address.unwrap_or(settings.admin_address);
    // The rule lives with the admin listener; checking it here as well fails before anything
    // is created on disk.
    AdminAuth::new(api_tokens.iter().cloned()).check_listen_address(admin_address)?;
    Ok(ServeOptions {
        mode,
        listen: SocketAddr::new(ip, port),
        admin_address,
        api_tokens,
        shards: settings.shards,
        data_dir,
        watch: mode == Mode::Dev,
    })
}

fn parse_ip(text: &str) -> anyhow::Result<IpAddr> {
    if text == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    text.parse()
        .with_context(|| format!("--ip {text}: not an IP address (e.g. 127.0.0.1, 0.0.0.0 or ::1)"))
}

/// `DIR/.burrow/state`, where DIR holds the primary configuration.
fn default_data_dir(primary: &Worker) -> PathBuf {
    primary.dir.join(".burrow").join("state")
}

fn log_summary(loaded: &LoadedConfig, options: &ServeOptions) {
    for (index, worker) in loaded.workers().enumerate() {
        let role = if index == 0 { "primary" } else { "auxiliary" };
        log_worker(worker, role);
    }
    info!(
        listen = %options.listen,
        admin = %options.admin_address,
        data_dir = %options.data_dir.display(),
        durability = ?loaded.burrow().durability,
        shards = options.shards,
        "starting"
    );
}

fn log_worker(worker: &Worker, role: &str) {
    let config = &worker.config;
    info!(
        worker = %worker.name(),
        role,
        config = %worker.file.display(),
        environment = worker.environment.as_deref().unwrap_or("(top level)"),
        main = %display_optional(worker.main_path().as_deref()),
        compatibility_date = config.compatibility_date.as_deref().unwrap_or("(none)"),
        "Worker"
    );
    let bindings = config.bindings();
    if bindings.is_empty() && worker.secrets.is_empty() {
        info!(worker = %worker.name(), "no bindings");
    }
    for (name, kind, target) in bindings {
        info!(worker = %worker.name(), "env.{name} ({}): {target}", kind.describe());
    }
    for name in worker.secrets.keys() {
        info!(worker = %worker.name(), "env.{name} (Secret): from {}", display_files(&worker.secrets_files));
    }
    for (class, backend) in config.durable_object_classes() {
        info!(worker = %worker.name(), "Durable Object class {class} ({backend:?} storage)");
    }
    for consumer in &config.queue_consumers {
        info!(
            worker = %worker.name(),
            queue = %consumer.queue,
            kind = ?consumer.kind,
            max_batch_size = consumer.max_batch_size,
            max_batch_timeout_ms = consumer.max_batch_timeout_ms,
            max_retries = consumer.max_retries,
            dead_letter_queue = consumer.dead_letter_queue.as_deref().unwrap_or("(none)"),
            "queue consumer"
        );
    }
    for trigger in &config.crons {
        info!(worker = %worker.name(), "cron trigger \"{}\"", trigger.expression);
    }
}

fn display_optional(path: Option<&Path>) -> String {
    path.map_or_else(|| "(none)".to_owned(), |path| path.display().to_string())
}

fn display_files(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|file| file.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
