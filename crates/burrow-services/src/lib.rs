//! Burrow's platform services, each built from system Durable Objects on the runtime, as
//! Cloudflare builds them: solve storage, scheduling and distribution once, in the object runtime.
//!
//! System classes are named `__burrow_*`; their namespaces need no migration
//! (`Namespaces::system_namespace`).

pub mod cron;
pub mod kv;
pub mod queues;
pub mod workflows;
