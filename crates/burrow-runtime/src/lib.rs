//! Burrow's Durable Object runtime: IDs and namespaces, shards, mailboxes, gates, alarms and hibernation.
//!
//! It knows nothing about JavaScript or HTTP servers: guests (the Rust SDK, the JavaScript
//! runtime) plug in through [`guest::ObjectClass`], and the binary wires ingress to it.

pub mod clock;
mod durability;
pub mod guest;
mod host;
pub mod id;
pub mod namespace;
pub mod object;
pub mod runtime;
pub mod shard;
pub mod websocket;

pub use guest::{AlarmInfo, ObjectClass, ObjectError, ObjectInstance};
pub use object::{ObjectContext, Storage};
pub use runtime::{Namespace, Options, Runtime, Stub};
pub use websocket::{SocketEvent, WebSocket};
