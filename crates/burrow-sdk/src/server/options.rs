//! What the server needs to start, and how the command-line flags shared by `burrow dev`,
//! `burrow serve` and every Rust app ([`Flags`]) combine with the configuration into it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use burrow_config::{LoadedConfig, Worker};
use burrow_http::AdminAuth;
use burrow_http::admin::TOKEN_VARIABLE;

use crate::server::Error;

/// wrangler's default port for `wrangler dev`.
pub const DEFAULT_PORT: u16 = 8787;
/// Overrides how long an idle object keeps its instance (milliseconds; default 10 s, Cloudflare's).
pub const HIBERNATE_AFTER_VARIABLE: &str = "BURROW_HIBERNATE_AFTER_MS";
/// Overrides the ingress's cap on open WebSockets.
pub const MAX_WEBSOCKETS_VARIABLE: &str = "BURROW_MAX_WEBSOCKETS";
/// Overrides the per-socket send buffer cap, in bytes (the runtime's
/// `websocket_max_send_buffer_bytes`).
pub const WEBSOCKET_SEND_BUFFER_VARIABLE: &str = "BURROW_WEBSOCKET_SEND_BUFFER_BYTES";
/// Overrides how long an idle object keeps its storage open (milliseconds).
pub const STORAGE_IDLE_AFTER_VARIABLE: &str = "BURROW_STORAGE_IDLE_AFTER_MS";

/// The flags every server command takes: `burrow dev`, `burrow serve`, and a Rust app's binary.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Flags {
    /// The wrangler environment (`[env.NAME]`) to use.
    #[arg(short = 'e', long = "env", value_name = "NAME")]
    pub environment: Option<String>,

    /// Port of the Worker's HTTP listener [default: 8787, or `dev.port` in `burrow dev`].
    #[arg(long)]
    pub port: Option<u16>,

    /// Address of the Worker's HTTP listener [default: 127.0.0.1, or `dev.ip` in `burrow dev`].
    #[arg(long)]
    pub ip: Option<String>,

    /// Where Burrow keeps its data [default: `[burrow] data_dir`, else DIR/.burrow/state].
    #[arg(long, value_name = "DIR")]
    pub persist_to: Option<PathBuf>,

    /// Address of the admin API listener, IP:PORT [default: `[burrow] admin_address`, else
    /// 127.0.0.1:8788].
    #[arg(long, value_name = "IP:PORT")]
    pub admin_address: Option<SocketAddr>,
}

impl Flags {
    /// How to load the configuration with these flags.
    pub fn load_options(&self) -> burrow_config::LoadOptions {
        burrow_config::LoadOptions {
            environment: self.environment.clone(),
        }
    }
}

/// Which command started the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `burrow dev`: local development (`[dev]` settings apply; file watching).
    Dev,
    /// `burrow serve` and Rust apps: production (`[dev]` is ignored).
    Serve,
}

/// Everything the server needs besides the configuration.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `dev` or `serve`.
    pub mode: Mode,
    /// The Worker's HTTP listener (`--ip`, `--port`).
    pub listen: SocketAddr,
    /// The admin API listener (`--admin-address`, `[burrow] admin_address`).
    pub admin_address: SocketAddr,
    /// Admin API bearer tokens (`[burrow] api_tokens` and `BURROW_API_TOKEN`).
    pub api_tokens: Vec<String>,
    /// Shard threads (`[burrow] shards`).
    pub shards: usize,
    /// The data directory (`--persist-to`, `[burrow] data_dir`); created at start-up.
    pub data_dir: PathBuf,
    /// Reload when configuration or sources change (`dev` only).
    pub watch: bool,
    /// The storage engine's settings (`[burrow] durability`, `max_open_objects`).
    pub engine: burrow_storage::engine::Options,
    /// The object runtime's settings (idle times from [`HIBERNATE_AFTER_VARIABLE`] and
    /// [`STORAGE_IDLE_AFTER_VARIABLE`]; the per-socket send buffer from
    /// [`WEBSOCKET_SEND_BUFFER_VARIABLE`]).
    pub runtime: burrow_runtime::Options,
    /// Open WebSockets the ingress accepts at once (burrow-http's
    /// `ServerOptions::DEFAULT_MAX_WEBSOCKETS`, or [`MAX_WEBSOCKETS_VARIABLE`]); past it upgrades
    /// get a 503 naming the limit. Keep it within the process's descriptor limit.
    pub max_websockets: usize,
}

impl ServeOptions {
    /// Combines `flags` with the configuration. Refuses an admin address open to the network
    /// without a token before anything is created on disk.
    pub fn resolve(
        loaded: &LoadedConfig,
        flags: &Flags,
        mode: Mode,
    ) -> Result<ServeOptions, Error> {
        let primary = &loaded.primary.config;
        // `[dev]` is wrangler's local-development table; `serve` ignores it.
        let dev = (mode == Mode::Dev).then_some(&primary.dev);
        let ip_text = flags
            .ip
            .clone()
            .or_else(|| dev.and_then(|dev| dev.ip.clone()));
        let ip = match ip_text.as_deref() {
            None => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(text) => parse_ip(text)?,
        };
        let port = flags
            .port
            .or_else(|| dev.and_then(|dev| dev.port))
            .unwrap_or(DEFAULT_PORT);
        let settings = loaded.burrow();
        let data_dir = flags
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
        let admin_address = flags.admin_address.unwrap_or(settings.admin_address);
        // The rule lives with the admin listener; checking it here as well fails before anything
        // is created on disk.
        AdminAuth::new(api_tokens.iter().cloned()).check_listen_address(admin_address)?;
        let engine = burrow_storage::engine::Options {
            durability: match settings.durability {
                burrow_config::Durability::Full => burrow_storage::engine::Durability::Full,
                burrow_config::Durability::Relaxed => burrow_storage::engine::Durability::Relaxed,
            },
            max_open_objects: settings.max_open_objects,
            ..burrow_storage::engine::Options::default()
        };
        let mut runtime = burrow_runtime::Options::default();
        if let Some(duration) = duration_variable(HIBERNATE_AFTER_VARIABLE)? {
            runtime.hibernate_after = duration;
        }
        if let Some(duration) = duration_variable(STORAGE_IDLE_AFTER_VARIABLE)? {
            runtime.storage_idle_after = duration;
        }
        if let Some(bytes) = number_variable(WEBSOCKET_SEND_BUFFER_VARIABLE)? {
            runtime.websocket_max_send_buffer_bytes = bytes as usize;
        }
        let max_websockets = number_variable(MAX_WEBSOCKETS_VARIABLE)?
            .map_or(burrow_http::ServerOptions::DEFAULT_MAX_WEBSOCKETS, |n| {
                n as usize
            });
        Ok(ServeOptions {
            mode,
            listen: SocketAddr::new(ip, port),
            admin_address,
            api_tokens,
            shards: settings.shards,
            data_dir,
            watch: mode == Mode::Dev,
            engine,
            runtime,
            max_websockets,
        })
    }
}

fn parse_ip(text: &str) -> Result<IpAddr, Error> {
    if text == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    text.parse().map_err(|_| Error::InvalidIp(text.to_owned()))
}

/// `DIR/.burrow/state`, where DIR holds the primary configuration.
fn default_data_dir(primary: &Worker) -> PathBuf {
    primary.dir.join(".burrow").join("state")
}

fn duration_variable(name: &'static str) -> Result<Option<Duration>, Error> {
    Ok(number_variable(name)?.map(Duration::from_millis))
}

fn number_variable(name: &'static str) -> Result<Option<u64>, Error> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| Error::InvalidVariable { name, value: text }),
    }
}
