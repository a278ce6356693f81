//! Queues: durable, at-least-once message queues built from system Durable Objects, with
//! Cloudflare's producer API, push consumers (batching, retries, delays, dead-letter queues,
//! bounded concurrency) and pull consumers (leases with a visibility timeout).
//!
//! # Shape
//! - Each queue is a fixed set of partition objects of the `__burrow_queue` class
//!   ([`object`]), each holding its messages in its own SQLite database. A producer call goes to
//!   one partition (round robin) and is stored whole; a batch comes from one partition. One
//!   partition is the default: it keeps ordering best-effort FIFO and measured fast enough (see
//!   `docs/design.md`); more spread a hot queue over shards.
//! - The `__burrow_queues` registry object lists the queues and their settings ([`registry`]).
//! - [`Queue`] is the producer binding. It combines concurrent sends into one RPC per partition,
//!   and resolves each send once the commit that stored it is durable ([`producer`]).
//! - A push consumer is a dispatcher task per queue ([`dispatcher`]) that leases batches and runs
//!   a [`QueueHandler`] on them; the handler's calls resolve to one outcome per message by the
//!   rules in [`consumer`]. A pull consumer ([`PullConsumer`]) leases with a visibility timeout.
//!
//! # Guarantees
//! - An acknowledged send is durable (the object's output gate), and a rejected send or batch
//!   stored nothing.
//! - Every acknowledged message is delivered at least once: it stays stored until a consumer
//!   acks it, exhausts it (then it moves to the dead-letter queue, or is deleted and counted), or
//!   it outlives the queue's retention. Leases of a crashed run are released when the next
//!   dispatcher starts; pull leases run out on their own.
//! - Delivery order is best effort, as on Cloudflare.

pub mod api;
mod consumer;
mod dispatcher;
mod error;
mod leases;
mod limits;
mod message;
mod metrics;
pub mod object;
mod pipeline;
mod producer;
mod protocol;
mod pull;
pub mod registry;
mod service;
mod state;
mod wire;

pub use consumer::{BatchMetadata, HandlerError, Message, MessageBatch, QueueHandler};
pub use error::{Error, Operation};
pub use limits::{
    CONSUMER_WALL_TIME_MS, DEFAULT_MAX_BACKLOG_BYTES, DEFAULT_MAX_BACKLOG_MESSAGES,
    DEFAULT_PULL_BATCH_SIZE, DEFAULT_RETENTION_SECONDS, DEFAULT_VISIBILITY_TIMEOUT_MS,
    MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_CONCURRENCY, MAX_DELAY_SECONDS, MAX_MESSAGE_BYTES,
    MAX_PARTITIONS, MAX_PULL_BATCH_SIZE, MAX_RETENTION_SECONDS, MAX_VISIBILITY_TIMEOUT_MS,
    MIN_RETENTION_SECONDS, check_queue_name,
};
pub use message::{BatchOptions, Body, ContentType, RetryOptions, SendOptions, SendRequest};
pub use metrics::QueueMetrics;
pub use producer::Queue;
pub use pull::{AckOutcome, LeaseRetry, PullBatch, PullConsumer, PulledMessage};
pub use registry::{QueueInfo, QueueSettings};
pub use service::{ConsumerSettings, ConsumerUpdate, Options, Queues};
