//! Burrow's Durable Object runtime: IDs and namespaces, shards, mailboxes, gates, alarms and hibernation.
//!
//! It knows nothing about JavaScript or HTTP: guests (the Rust SDK, the JavaScript runtime) plug
//! in through traits, and the binary wires ingress to it.

pub mod id;
pub mod namespace;
pub mod shard;
