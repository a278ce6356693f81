//! The command line: `burrow dev`, `burrow serve`, and the subcommands later issues fill in.

use std::path::PathBuf;

use burrow_sdk::server::{Flags, LogFormat};
use clap::{Args, Parser, Subcommand};

/// Burrow: a self-hosted platform for Cloudflare-style Workers, Durable Objects, Queues,
/// Workflows, KV and Cron.
#[derive(Debug, Parser)]
#[command(name = "burrow", version, propagate_version = true)]
pub(crate) struct Cli {
    /// Log format on stderr; the level comes from RUST_LOG (default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub(crate) log_format: LogFormat,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a Workers project locally: reads wrangler.json, wrangler.jsonc or wrangler.toml in DIR.
    Dev(DevArgs),
    /// Run in production from explicit configuration files (no file watching).
    Serve(ServeArgs),
    /// The Workers a running server has loaded.
    Workers(WorkersArgs),
    /// Workers KV namespaces and keys, like wrangler's `kv` commands.
    Kv(crate::kv::KvArgs),
    /// Queues: list, create, send, stats, pull, ack, purge.
    Queues(crate::queues::QueuesArgs),
    /// Workflows: list, status, create, event, terminate, pause, resume, restart.
    Workflows(crate::workflows::WorkflowsArgs),
    /// Durable Object namespaces and the objects in them.
    Objects(crate::objects::ObjectsArgs),
    /// SQL against a Durable Object's database (not yet available).
    Sql(Unavailable),
}

impl Command {
    /// The subcommand's name as typed.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Dev(_) => "dev",
            Command::Serve(_) => "serve",
            Command::Workers(_) => "workers",
            Command::Kv(_) => "kv",
            Command::Queues(_) => "queues",
            Command::Workflows(_) => "workflows",
            Command::Objects(_) => "objects",
            Command::Sql(_) => "sql",
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// The project directory.
    #[arg(default_value = ".", conflicts_with = "config")]
    pub(crate) dir: PathBuf,

    /// A configuration file instead of DIR; repeat it to run several Workers (the first receives
    /// HTTP traffic, the others are reached through service bindings and script_name).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub(crate) config: Vec<PathBuf>,

    #[command(flatten)]
    pub(crate) common: Flags,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// A configuration file; repeat it to run several Workers (the first receives HTTP traffic).
    #[arg(short = 'c', long = "config", value_name = "FILE", required = true)]
    pub(crate) config: Vec<PathBuf>,

    #[command(flatten)]
    pub(crate) common: Flags,
}

/// How a client subcommand reaches a running server: through its admin API only.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// The admin API of the running server.
    #[arg(
        long = "admin",
        value_name = "URL",
        env = "BURROW_ADMIN_URL",
        default_value = "http://127.0.0.1:8788",
        global = true
    )]
    pub(crate) admin: String,

    /// Admin API bearer token.
    #[arg(long, env = "BURROW_API_TOKEN", hide_env_values = true, global = true)]
    pub(crate) token: Option<String>,

    /// The account id in API paths; Burrow has one account and accepts any id.
    #[arg(
        long,
        env = "CLOUDFLARE_ACCOUNT_ID",
        default_value = "local",
        global = true
    )]
    pub(crate) account: String,

    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct WorkersArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,

    #[command(subcommand)]
    pub(crate) command: WorkersCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum WorkersCommand {
    /// List the Workers the server has loaded.
    List,
}

/// Arguments of a subcommand that does not exist yet; accepted so that the message is the same
/// whatever follows.
#[derive(Debug, Args)]
pub(crate) struct Unavailable {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub(crate) args: Vec<String>,
}
