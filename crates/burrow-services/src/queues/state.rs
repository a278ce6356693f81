//! What this process keeps for one queue: its partitions (stubs, the producer's pending sends),
//! the signal that wakes its dispatcher, and live metrics; plus typed wrappers of the partition
//! RPCs and the hand-over of exhausted messages to a dead-letter queue.

use super::error::Error;
use super::limits::MAX_DELAY_SECONDS;
use super::metrics::LiveMetrics;
use super::protocol::{
    Bounds, EnqueueRequest, EnqueueResponse, ForgetRequest, LeaseRequest, LeaseResponse,
    LeasedMessage, NewMessage, PartitionStats, RecoverRequest, RecoverResponse, method,
};
use super::registry::QueueSettings;
use burrow_runtime::Stub;
use burrow_runtime::shard::Shards;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Bounds on a partition's write pipeline (see [`super::pipeline`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CombineLimits {
    pub(crate) max_messages: usize,
    pub(crate) max_bytes: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) max_pending_bytes: usize,
}

/// One partition object of a queue.
pub(crate) struct Partition {
    pub(crate) index: u32,
    pub(crate) stub: Stub,
    /// The shard the object lives on: its flushes and the dispatcher run there.
    pub(crate) shard: usize,
    pub(crate) pending: Mutex<super::pipeline::Pending>,
    /// Signalled when a group is added, for a flush lingering for the producers it just acked.
    pub(crate) arrived: Notify,
}

impl Partition {
    async fn call(&self, method: &str, args: Bytes) -> Result<Bytes, Error> {
        Ok(self.stub.call(method, args).await?)
    }

    pub(crate) async fn enqueue(&self, request: &EnqueueRequest) -> Result<EnqueueResponse, Error> {
        let bytes = self.call(method::ENQUEUE, request.encode()).await?;
        Ok(EnqueueResponse::decode(bytes)?)
    }

    pub(crate) async fn lease(&self, request: &LeaseRequest) -> Result<LeaseResponse, Error> {
        let bytes = self.call(method::LEASE, request.encode()).await?;
        Ok(LeaseResponse::decode(bytes)?)
    }

    pub(crate) async fn forget(&self, seqs: Vec<i64>) -> Result<(), Error> {
        self.call(method::FORGET, ForgetRequest { seqs }.encode())
            .await
            .map(drop)
    }

    pub(crate) async fn recover(
        &self,
        has_dead_letter_queue: bool,
    ) -> Result<RecoverResponse, Error> {
        let request = RecoverRequest {
            has_dead_letter_queue,
        };
        let bytes = self.call(method::RECOVER, request.encode()).await?;
        Ok(RecoverResponse::decode(bytes)?)
    }

    pub(crate) async fn stats(&self) -> Result<PartitionStats, Error> {
        let bytes = self.call(method::STATS, Bytes::new()).await?;
        Ok(PartitionStats::decode(bytes)?)
    }

    pub(crate) async fn purge(&self) -> Result<(), Error> {
        self.call(method::PURGE, Bytes::new()).await.map(drop)
    }
}

/// A queue as this process knows it.
pub(crate) struct QueueState {
    pub(crate) name: String,
    pub(crate) settings: QueueSettings,
    pub(crate) partitions: Vec<Arc<Partition>>,
    pub(crate) shards: Shards,
    pub(crate) combine: CombineLimits,
    next_partition: AtomicUsize,
    /// Wakes the dispatcher after messages were stored.
    pub(crate) stored: Notify,
    /// Set while a push or pull consumer is attached.
    pub(crate) has_consumer: AtomicBool,
    pub(crate) live: LiveMetrics,
}

impl QueueState {
    pub(crate) fn new(
        name: String,
        settings: QueueSettings,
        partitions: Vec<Arc<Partition>>,
        shards: Shards,
        combine: CombineLimits,
    ) -> QueueState {
        QueueState {
            name,
            settings,
            partitions,
            shards,
            combine,
            next_partition: AtomicUsize::new(0),
            stored: Notify::new(),
            has_consumer: AtomicBool::new(false),
            live: LiveMetrics::default(),
        }
    }

    pub(crate) fn bounds(&self) -> Bounds {
        Bounds {
            retention_ms: i64::from(self.settings.retention_seconds) * 1000,
            max_backlog_messages: self.settings.max_backlog_messages,
            max_backlog_bytes: self.settings.max_backlog_bytes,
        }
    }

    /// The partition for the next producer call (round robin).
    pub(crate) fn pick_partition(&self) -> &Arc<Partition> {
        let next = self.next_partition.fetch_add(1, Ordering::Relaxed);
        &self.partitions[next % self.partitions.len()]
    }

    /// The queue's default delay for messages and retries, in milliseconds.
    pub(crate) fn delivery_delay_seconds(&self) -> u32 {
        self.settings.delivery_delay_seconds.min(MAX_DELAY_SECONDS)
    }
}

/// Stores exhausted messages in the dead-letter queue, then deletes them from their partition.
/// If storing fails they stay held and the next dispatcher start (or pull) hands them over again,
/// so a message may reach the dead-letter queue twice but is never lost.
pub(crate) async fn hand_over(
    source: &QueueState,
    partition: &Partition,
    dead_letter: &super::producer::Queue,
    held: Vec<LeasedMessage>,
) {
    if held.is_empty() {
        return;
    }
    let seqs: Vec<i64> = held.iter().map(|m| m.seq).collect();
    let count = held.len();
    let messages = held
        .into_iter()
        .map(|m| NewMessage {
            body: m.body,
            delay_ms: 0,
            id: Some(m.id),
            timestamp_ms: Some(m.timestamp_ms),
            prior_attempts: m.attempts,
        })
        .collect();
    if let Err(error) = dead_letter.store_dead_letters(messages).await {
        tracing::error!(queue = %source.name, dead_letter_queue = %dead_letter.name(), %error, count, "moving exhausted messages to the dead-letter queue failed; they stay held");
        return;
    }
    tracing::warn!(queue = %source.name, dead_letter_queue = %dead_letter.name(), count, "moved exhausted messages to the dead-letter queue");
    if let Err(error) = partition.forget(seqs).await {
        tracing::error!(queue = %source.name, %error, "forgetting dead-lettered messages failed; they may be dead-lettered again");
    }
}
