//! Loads and validates wrangler configuration (`wrangler.json`, `wrangler.jsonc`,
//! `wrangler.toml`), `.dev.vars` secrets and Burrow's own `[burrow]` table into typed structs, and
//! parses Cloudflare's cron syntax.
//!
//! This crate has no CLI code: the `burrow` binary and Rust SDK apps both call it.
//!
//! ```no_run
//! use burrow_config::{LoadOptions, load_dir};
//!
//! let loaded = load_dir("examples/hello".as_ref(), &LoadOptions::default())?;
//! for warning in &loaded.warnings {
//!     eprintln!("warning: {warning}");
//! }
//! let worker = &loaded.primary;
//! println!("{} runs {:?}", worker.name(), worker.main_path());
//! # Ok::<(), burrow_config::Error>(())
//! ```
//!
//! What is checked, and how it relates to wrangler:
//! - Every key of the Workers platform Burrow implements is typed, with Cloudflare's defaults and
//!   ranges ([`model`]). An invalid value is an [`Error::Invalid`] naming the file, the key path
//!   and the allowed values; every problem in the file is listed, not just the first.
//! - Unknown keys are warnings (with their key path), never errors. Bindings and settings Burrow
//!   does not support yet are named together in one warning each. Deploy-only keys (`routes`,
//!   `account_id`, ...) are accepted silently.
//! - Environments (`[env.NAME]`, [`LoadOptions::environment`]) follow wrangler's inheritance
//!   rules: bindings and `vars` are not inherited, `name` becomes `<name>-NAME`.
//! - Syntax errors give the line and column ([`Error::Syntax`]).

pub mod cron;
mod dotenv;
mod environment;
mod error;
mod jsonc;
mod load;
pub mod model;
mod reader;
mod schema;

pub use dotenv::parse as parse_dev_vars;
pub use error::{Error, Problem};
pub use load::{
    CONFIG_FILE_NAMES, Format, LoadOptions, LoadedConfig, Worker, find_config, load_dir,
    load_files, parse_worker,
};
pub use model::{
    BindingKind, BurrowSettings, ConsumerKind, CronTrigger, DevSettings, Durability,
    DurableObjectBinding, KvNamespaceBinding, Migration, QueueConsumer, QueueProducer,
    RenamedClass, ServiceBinding, StorageBackend, TransferredClass, VarValue, WorkerConfig,
    WorkerLimits, WorkflowBinding,
};
