//! The typed configuration of one Worker after validation, defaults and environment selection.
//!
//! Field names follow wrangler's keys, with the unit appended where the key has one
//! (`max_batch_timeout` in seconds becomes `max_batch_timeout_ms`, `retry_delay` becomes
//! `retry_delay_seconds`). Every default is applied here, so the runtime never guesses.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::cron::Schedule;

/// One Worker's configuration (one wrangler file, one environment).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// `name`; with `--env NAME` and no `name` in the environment, `<top-level name>-NAME`.
    pub name: Option<String>,
    /// `main`: the entry point as written, relative to the configuration file's directory.
    pub main: Option<String>,
    /// `compatibility_date` (`YYYY-MM-DD`).
    pub compatibility_date: Option<String>,
    /// `compatibility_flags`.
    pub compatibility_flags: Vec<String>,
    /// `vars`: plain-text and JSON environment variables.
    pub vars: BTreeMap<String, VarValue>,
    /// `durable_objects.bindings`.
    pub durable_objects: Vec<DurableObjectBinding>,
    /// `migrations`, in order.
    pub migrations: Vec<Migration>,
    /// `kv_namespaces`.
    pub kv_namespaces: Vec<KvNamespaceBinding>,
    /// `queues.producers`.
    pub queue_producers: Vec<QueueProducer>,
    /// `queues.consumers`.
    pub queue_consumers: Vec<QueueConsumer>,
    /// `workflows`.
    pub workflows: Vec<WorkflowBinding>,
    /// `triggers.crons`, parsed.
    pub crons: Vec<CronTrigger>,
    /// `services`.
    pub services: Vec<ServiceBinding>,
    /// `secrets.required`: secret names the Worker declares it needs (from `.dev.vars` locally).
    pub required_secrets: Option<Vec<String>>,
    /// `[limits]`: the Worker's resource limits.
    pub limits: WorkerLimits,
    /// `[dev]`: wrangler's local-development listener settings (`--ip`/`--port` win over them).
    pub dev: DevSettings,
    /// `[burrow]`: Burrow's own settings.
    pub burrow: BurrowSettings,
}

/// A `vars` value. Strings are plain text; anything else (number, boolean, array, table) is a
/// JSON value, as wrangler passes it to the Worker.
#[derive(Debug, Clone, PartialEq)]
pub enum VarValue {
    /// A string.
    Text(String),
    /// A number, boolean, array or object.
    Json(serde_json::Value),
}

impl VarValue {
    /// The value as the Worker sees it, as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            VarValue::Text(text) => serde_json::Value::String(text.clone()),
            VarValue::Json(value) => value.clone(),
        }
    }
}

/// `[[durable_objects.bindings]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableObjectBinding {
    /// `name`: the binding name on `env`.
    pub name: String,
    /// `class_name`: the exported class.
    pub class_name: String,
    /// `script_name`: the Worker that defines the class, when it is not this one.
    pub script_name: Option<String>,
    /// `environment`: the environment of `script_name`.
    pub environment: Option<String>,
}

/// `[[migrations]]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Migration {
    /// `tag`: unique per Worker.
    pub tag: String,
    /// `new_classes`: classes created with the key-value storage backend.
    pub new_classes: Vec<String>,
    /// `new_sqlite_classes`: classes created with the SQLite storage backend.
    pub new_sqlite_classes: Vec<String>,
    /// `renamed_classes`: renamed classes keep their objects and data.
    pub renamed_classes: Vec<RenamedClass>,
    /// `deleted_classes`: their objects and data are deleted.
    pub deleted_classes: Vec<String>,
    /// `transferred_classes`: classes moved here from another Worker.
    pub transferred_classes: Vec<TransferredClass>,
}

/// One `renamed_classes` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenamedClass {
    /// The old class name.
    pub from: String,
    /// The new class name.
    pub to: String,
}

/// One `transferred_classes` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferredClass {
    /// The class name in the other Worker.
    pub from: String,
    /// The other Worker.
    pub from_script: String,
    /// The class name here.
    pub to: String,
}

/// How a Durable Object class stores data, decided by the migration that created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// `new_sqlite_classes`: SQL API and synchronous KV.
    Sqlite,
    /// `new_classes`: Cloudflare's older key-value backend. Burrow stores these in SQLite too,
    /// but exposes only the key-value API, as Cloudflare does.
    KeyValue,
}

/// `[[kv_namespaces]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvNamespaceBinding {
    /// `binding`.
    pub binding: String,
    /// `id`; optional in current wrangler (it provisions one on deploy).
    pub id: Option<String>,
    /// `preview_id`.
    pub preview_id: Option<String>,
}

impl KvNamespaceBinding {
    /// The namespace's identity in Burrow's storage: `id` when given, otherwise the binding name.
    pub fn namespace(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.binding)
    }
}

/// `[[queues.producers]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProducer {
    /// `binding`.
    pub binding: String,
    /// `queue`: the queue's name.
    pub queue: String,
    /// `delivery_delay` in seconds (0-43,200): the default delay of every message sent.
    pub delivery_delay_seconds: u32,
}

/// `[[queues.consumers]]` with Cloudflare's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConsumer {
    /// `queue`.
    pub queue: String,
    /// `type`.
    pub kind: ConsumerKind,
    /// `max_batch_size` (1-100, default 10).
    pub max_batch_size: u32,
    /// `max_batch_timeout` (0-60 s, default 5 s), in milliseconds (wrangler accepts fractions).
    pub max_batch_timeout_ms: u64,
    /// `max_retries` (0-100, default 3).
    pub max_retries: u32,
    /// `dead_letter_queue`: where messages go after `max_retries`; without one they are deleted.
    pub dead_letter_queue: Option<String>,
    /// `max_concurrency` (1-250); `None` autoscales.
    pub max_concurrency: Option<u32>,
    /// `retry_delay` in seconds (0-43,200); `None` retries at once unless the call gives a delay.
    pub retry_delay_seconds: Option<u32>,
    /// `visibility_timeout_ms` for pull consumers (at most 12 h); `None` means 30 s per pull.
    pub visibility_timeout_ms: Option<u64>,
}

/// `type` of a queue consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerKind {
    /// `"worker"` (default): batches are pushed to the Worker's `queue` handler.
    Worker,
    /// `"http_pull"`: clients pull over the admin API.
    HttpPull,
}

/// `[[workflows]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowBinding {
    /// `binding`.
    pub binding: String,
    /// `name`: the workflow's name.
    pub name: String,
    /// `class_name`: the exported `WorkflowEntrypoint` class.
    pub class_name: String,
    /// `script_name`: the Worker that defines the class, when it is not this one.
    pub script_name: Option<String>,
}

/// One `triggers.crons` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronTrigger {
    /// The expression as written; `controller.cron` carries exactly this string.
    pub expression: String,
    /// The parsed schedule.
    pub schedule: Schedule,
}

/// `[[services]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceBinding {
    /// `binding`.
    pub binding: String,
    /// `service`: the target Worker's name.
    pub service: String,
    /// `entrypoint`: a named `WorkerEntrypoint` export instead of the default export.
    pub entrypoint: Option<String>,
    /// `environment` of the target Worker.
    pub environment: Option<String>,
    /// `props`: passed to the entrypoint as `ctx.props`.
    pub props: Option<serde_json::Value>,
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WorkerLimits {
    /// `limits.cpu_ms`: CPU time per event in milliseconds (Cloudflare allows up to 300,000;
    /// the default is 30,000).
    pub cpu_ms: Option<u64>,
}

/// `[dev]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DevSettings {
    /// `dev.ip`.
    pub ip: Option<String>,
    /// `dev.port`.
    pub port: Option<u16>,
}

/// `durability` in `[burrow]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `"full"` (default): acknowledged writes survive power loss.
    Full,
    /// `"relaxed"`: acknowledged writes survive a process crash, not power loss.
    Relaxed,
}

/// `[burrow]`: Burrow's own settings. Wrangler ignores this table, so one file serves both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurrowSettings {
    /// `data_dir`, resolved against the configuration file's directory. `None`: the CLI decides
    /// (`burrow dev` uses `DIR/.burrow/state`).
    pub data_dir: Option<PathBuf>,
    /// `shards`: shard threads (1-1024); default, the number of cores.
    pub shards: usize,
    /// `durability`.
    pub durability: Durability,
    /// `admin_address`: the admin API listener (default `127.0.0.1:8788`).
    pub admin_address: SocketAddr,
    /// `api_tokens`: bearer tokens the admin API accepts, besides `BURROW_API_TOKEN`.
    pub api_tokens: Vec<String>,
    /// `max_open_objects`: object databases kept open at once, across shards (default 10,240;
    /// each holds one file descriptor; the server lowers it, with a warning, when the process's
    /// open-file limit cannot hold it beside the listeners' caps).
    pub max_open_objects: usize,
    /// `workflow_max_steps`: steps per Workflow instance (default 10,000, Cloudflare's paid limit).
    pub workflow_max_steps: u32,
    /// `workflow_retention_days`: how long finished Workflow instances are kept (default 30).
    pub workflow_retention_days: u32,
}

impl BurrowSettings {
    /// The default admin listener.
    pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:8788";
    /// The default cap on open object databases.
    pub const DEFAULT_MAX_OPEN_OBJECTS: usize = 10_240;

    /// Every setting at its default.
    pub fn defaults() -> Self {
        BurrowSettings {
            data_dir: None,
            shards: std::thread::available_parallelism().map_or(1, |cores| cores.get()),
            durability: Durability::Full,
            admin_address: SocketAddr::from(([127, 0, 0, 1], 8788)),
            api_tokens: Vec::new(),
            max_open_objects: Self::DEFAULT_MAX_OPEN_OBJECTS,
            workflow_max_steps: 10_000,
            workflow_retention_days: 30,
        }
    }
}

impl Default for BurrowSettings {
    fn default() -> Self {
        Self::defaults()
    }
}

/// Any binding the Worker's `env` will carry, for listing and uniqueness checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingKind {
    /// A `vars` entry.
    Var,
    /// A `.dev.vars` secret.
    Secret,
    /// A Durable Object namespace.
    DurableObject,
    /// A KV namespace.
    KvNamespace,
    /// A queue producer.
    Queue,
    /// A Workflow.
    Workflow,
    /// A service binding.
    Service,
}

impl BindingKind {
    /// A short human name, for logs.
    pub fn describe(self) -> &'static str {
        match self {
            BindingKind::Var => "Environment Variable",
            BindingKind::Secret => "Secret",
            BindingKind::DurableObject => "Durable Object",
            BindingKind::KvNamespace => "KV Namespace",
            BindingKind::Queue => "Queue",
            BindingKind::Workflow => "Workflow",
            BindingKind::Service => "Worker (service binding)",
        }
    }
}

impl WorkerConfig {
    /// Every binding name with its kind and a short description of its target, in the order
    /// wrangler lists them. Secrets are not included (see [`crate::Worker::secrets`]).
    pub fn bindings(&self) -> Vec<(String, BindingKind, String)> {
        let mut bindings = Vec::new();
        for binding in &self.durable_objects {
            let target = match &binding.script_name {
                Some(script) => format!("{} (defined in {script})", binding.class_name),
                None => binding.class_name.clone(),
            };
            bindings.push((binding.name.clone(), BindingKind::DurableObject, target));
        }
        for namespace in &self.kv_namespaces {
            bindings.push((
                namespace.binding.clone(),
                BindingKind::KvNamespace,
                namespace.namespace().to_owned(),
            ));
        }
        for producer in &self.queue_producers {
            bindings.push((
                producer.binding.clone(),
                BindingKind::Queue,
                producer.queue.clone(),
            ));
        }
        for workflow in &self.workflows {
            bindings.push((
                workflow.binding.clone(),
                BindingKind::Workflow,
                format!("{} ({})", workflow.name, workflow.class_name),
            ));
        }
        for service in &self.services {
            let target = match &service.entrypoint {
                Some(entrypoint) => format!("{}#{entrypoint}", service.service),
                None => service.service.clone(),
            };
            bindings.push((service.binding.clone(), BindingKind::Service, target));
        }
        for (name, value) in &self.vars {
            let shown = match value {
                VarValue::Text(text) => format!("\"{text}\""),
                VarValue::Json(json) => json.to_string(),
            };
            bindings.push((name.clone(), BindingKind::Var, shown));
        }
        bindings
    }

    /// The Durable Object classes this Worker defines after applying its migrations in order,
    /// with the storage backend each was created with. Renamed classes keep their backend.
    pub fn durable_object_classes(&self) -> BTreeMap<String, StorageBackend> {
        let mut classes = BTreeMap::new();
        for migration in &self.migrations {
            for class in &migration.new_classes {
                classes.insert(class.clone(), StorageBackend::KeyValue);
            }
            for class in &migration.new_sqlite_classes {
                classes.insert(class.clone(), StorageBackend::Sqlite);
            }
            for renamed in &migration.renamed_classes {
                if let Some(backend) = classes.remove(&renamed.from) {
                    classes.insert(renamed.to.clone(), backend);
                }
            }
            for transferred in &migration.transferred_classes {
                // The backend travels with the data; SQLite is what new Workers use.
                classes.insert(transferred.to.clone(), StorageBackend::Sqlite);
            }
            for class in &migration.deleted_classes {
                classes.remove(class);
            }
        }
        classes
    }
}
