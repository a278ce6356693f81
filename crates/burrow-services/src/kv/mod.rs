//! Workers KV: namespaces of keys, each kept by a fixed set of partition objects of the system
//! class `__burrow_kv`, with Cloudflare's API, limits and error messages.
//!
//! # Layout
//! A namespace (`kv_namespaces[].id`, or the binding name when there is no id) is
//! [`PARTITIONS`] objects named `<namespace id>/<partition>`. A key lives in partition
//! [`partition_of`]`(key)`, a fixed hash, so every client on every shard finds it in the same
//! place. Each partition keeps its keys in SQLite ([`partition`] gives the tables) and runs on
//! the shard that owns it, like any Durable Object; the runtime gives it storage, durability,
//! alarms and hibernation. [`wire`] documents the format of the calls between a
//! [`KvNamespace`] and its partitions.
//!
//! # Consistency: read-your-writes (stronger than Cloudflare)
//! Cloudflare's KV is eventually consistent: a write may take up to 60 s to be seen elsewhere.
//! Burrow's is not. A key has one home, its partition object, and every read and write of it
//! runs there, one at a time. A `put` or `delete` resolves only after its commit is durable (the
//! output gate), and any read that starts after that, from any thread, sees it. A read never
//! returns a write that is not yet durable, because its answer waits at the same output gate.
//! Code written for Cloudflare's weaker promise runs unchanged.
//!
//! # Expiry
//! Expired keys are never returned: reads compare `expiration` with the runtime clock. Each
//! partition's alarm is set to its earliest expiration and deletes what has expired, in bounded
//! batches found through an index. See [`partition`].
//!
//! # Listing
//! `list` asks every partition for the keys after the cursor and merges them in UTF-8 byte order
//! (the order of Rust's `str`). The cursor is opaque to callers: URL-safe base64 of a version
//! byte and the last key returned. Because it names a position in key order rather than an
//! offset, a key present for the whole listing appears exactly once, whatever is written or
//! deleted meanwhile; keys written during the listing appear if they sort after the cursor.
//!
//! # Limits
//! Key 1-512 bytes and not `.` or `..`; value ≤ 25 MiB (values over [`partition::INLINE_MAX_BYTES`]
//! are split into 1 MiB rows, in one transaction); metadata ≤ 1024 bytes of JSON; expiration at
//! least 60 s ahead; bulk get ≤ 100 keys and 25 MiB; list limit 1-1000. See [`error`].

pub mod client;
pub mod error;
pub mod partition;
pub mod wire;

use std::sync::Arc;

use burrow_runtime::ObjectClass;

pub use client::{
    Kv, KvNamespace, ListKey, ListOptions, ListResult, PARTITIONS, PutOptions, SetupError,
    StorageStats, ValueStream, ValueWithMetadata, partition_of,
};
pub use error::{Error, Method};
pub use partition::CLASS_NAME;

/// The partition class, named, for `Runtime::start`'s class list.
pub fn class() -> (String, Arc<dyn ObjectClass>) {
    (
        CLASS_NAME.to_owned(),
        Arc::new(partition::PartitionClass) as Arc<dyn ObjectClass>,
    )
}
