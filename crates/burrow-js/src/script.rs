//! A Worker script as every shard's isolate needs it: where its modules are, its limits and its
//! bindings, resolved once from the configuration and the running services.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use burrow_services::kv::KvNamespace;
use burrow_services::queues::Queue;

/// The limits of one isolate and its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// CPU time one event may use without yielding (Cloudflare's default is 30 s;
    /// `limits.cpu_ms` in `wrangler.toml`).
    pub cpu: Duration,
    /// Memory of one isolate (Cloudflare's 128 MB).
    pub memory_bytes: usize,
    /// The JavaScript stack of one isolate.
    pub stack_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            cpu: Duration::from_secs(30),
            memory_bytes: 128 * 1024 * 1024,
            stack_bytes: 512 * 1024,
        }
    }
}

/// One Worker script.
#[derive(Debug)]
pub struct Script {
    /// The Worker's name (console lines are tagged with it).
    pub(crate) name: String,
    /// The project directory: nothing outside it (or a `node_modules`) can be imported.
    pub(crate) root: PathBuf,
    /// The main module, absolute.
    pub(crate) main: PathBuf,
    /// The limits.
    pub(crate) limits: Limits,
    /// `vars`, as JSON values (strings stay strings).
    pub(crate) vars: Vec<(String, serde_json::Value)>,
    /// Secrets from `.dev.vars`.
    pub(crate) secrets: Vec<(String, String)>,
    /// KV namespaces by binding name.
    pub(crate) kv: BTreeMap<String, KvNamespace>,
    /// Queue producers by binding name.
    pub(crate) queues: BTreeMap<String, Queue>,
    /// Workflow bindings by binding name.
    pub(crate) workflows: BTreeMap<String, burrow_services::workflows::Workflow>,
    /// Durable Object namespaces by binding name.
    pub(crate) durable_objects: BTreeMap<String, crate::objects::Binding>,
    /// Time spent running JavaScript in every isolate of the Worker, in nanoseconds.
    pub(crate) cpu_nanos: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Service bindings by binding name.
    pub(crate) services: BTreeMap<String, crate::services::Target>,
}
