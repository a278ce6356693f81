//! The producer: `send` and `sendBatch` on a [`Queue`] handle, usable from any thread or shard.
//!
//! # Combining sends
//! Every producer call is checked against Cloudflare's limits, then becomes one *group* in its
//! partition's pending list. Up to `max_in_flight` flush tasks per partition (running on the
//! partition's shard) take the pending groups, up to a message and byte bound, and store them with
//! one `enqueue` RPC: one object turn, one journal record, one fsync shared with everything else
//! committing at that moment. Each caller's future resolves when the RPC that carried its group
//! returns, which the output gate holds until the commit is durable: an acknowledged send is on
//! disk. Groups are stored whole or refused whole (the backlog bound), so a batch is never split.
//!
//! After an RPC returns, the flush lingers (at most [`LINGER`]) until about as many calls are
//! pending as it just acknowledged: producers in a closed loop send again right away, and without
//! the linger the next RPC would leave with the first few and the rest would wait a whole extra
//! fsync.
//!
//! Pending bytes per partition are bounded; beyond the bound a send fails at once with
//! Cloudflare's `Queue is overloaded. Please back off.`

use super::error::{Error, Operation};
use super::limits::{self, MAX_DELAY_SECONDS};
use super::message::{BatchOptions, Body, SendOptions, SendRequest};
use super::protocol::{EnqueueRequest, NewMessage};
use super::registry::QueueSettings;
use super::state::{Partition, PendingGroup, QueueState};
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

/// Longest a flush waits for the producers it just acknowledged to send again.
const LINGER: Duration = Duration::from_micros(500);

/// A producer binding for one queue (`env.MY_QUEUE`). Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Queue {
    pub(crate) state: Arc<QueueState>,
    /// The binding's `delivery_delay`, which beats the queue's.
    delivery_delay_seconds: Option<u32>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Queue")
            .field("name", &self.state.name)
            .field("delivery_delay_seconds", &self.delivery_delay_seconds)
            .finish_non_exhaustive()
    }
}

impl Queue {
    pub(crate) fn new(state: Arc<QueueState>) -> Queue {
        Queue {
            state,
            delivery_delay_seconds: None,
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The queue's settings.
    pub fn settings(&self) -> QueueSettings {
        self.state.settings
    }

    /// This handle with a producer `delivery_delay` (checked by the config loader: ≤ 43,200 s).
    pub fn with_delivery_delay(mut self, seconds: u32) -> Queue {
        self.delivery_delay_seconds = Some(seconds.min(MAX_DELAY_SECONDS));
        self
    }

    fn default_delay(&self) -> u32 {
        self.delivery_delay_seconds
            .unwrap_or_else(|| self.state.delivery_delay_seconds())
    }

    /// `send(body, {delaySeconds})`: resolves once the message is durable.
    pub async fn send(&self, body: Body, options: SendOptions) -> Result<(), Error> {
        limits::check_message(&body)?;
        let delay = options
            .delay_seconds
            .unwrap_or_else(|| self.default_delay());
        limits::check_delay(Operation::Send, delay)?;
        let message = NewMessage {
            body,
            delay_ms: i64::from(delay) * 1000,
            id: None,
            timestamp_ms: None,
            prior_attempts: 0,
        };
        self.submit(Operation::Send, vec![message]).await
    }

    /// `sendBatch(messages, {delaySeconds})`: all stored, or none; resolves once durable.
    pub async fn send_batch(
        &self,
        messages: Vec<SendRequest>,
        options: BatchOptions,
    ) -> Result<(), Error> {
        limits::check_batch(messages.iter().map(|m| &m.body))?;
        let batch_delay = options.delay_seconds;
        let mut stored = Vec::with_capacity(messages.len());
        for message in messages {
            let delay = message
                .delay_seconds
                .or(batch_delay)
                .unwrap_or_else(|| self.default_delay());
            limits::check_delay(Operation::SendBatch, delay)?;
            stored.push(NewMessage {
                body: message.body,
                delay_ms: i64::from(delay) * 1000,
                id: None,
                timestamp_ms: None,
                prior_attempts: 0,
            });
        }
        self.submit(Operation::SendBatch, stored).await
    }

    /// Stores messages moved from another queue's consumer (ids, timestamps and attempts kept;
    /// Cloudflare's producer limits do not apply).
    pub(crate) async fn store_dead_letters(&self, messages: Vec<NewMessage>) -> Result<(), Error> {
        self.submit(Operation::SendBatch, messages).await
    }

    async fn submit(&self, operation: Operation, messages: Vec<NewMessage>) -> Result<(), Error> {
        let partition = self.state.pick_partition().clone();
        let bytes: usize = messages.iter().map(|m| m.body.len()).sum();
        let (reply, receiver) = oneshot::channel();
        let start_flush = {
            let mut pending = partition
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if pending.bytes + bytes > self.state.combine.max_pending_bytes {
                return Err(Error::Overloaded { operation });
            }
            pending.bytes += bytes;
            pending.groups.push_back(PendingGroup {
                messages,
                bytes,
                operation,
                reply,
            });
            let start = pending.in_flight < self.state.combine.max_in_flight;
            if start {
                pending.in_flight += 1;
            }
            start
        };
        partition.arrived.notify_one();
        if start_flush {
            let state = self.state.clone();
            let flushing = partition.clone();
            if let Err(error) = self
                .state
                .shards
                .spawn(partition.shard, move || flush(state, flushing))
            {
                // The shard refused the task: fail whatever waits and let the next send retry.
                let failed = {
                    let mut pending = partition
                        .pending
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    pending.in_flight -= 1;
                    if pending.in_flight == 0 {
                        pending.bytes = 0;
                        std::mem::take(&mut pending.groups)
                    } else {
                        Default::default()
                    }
                };
                for group in failed {
                    let _ = group.reply.send(Err(Error::Storage(error.to_string())));
                }
            }
        }
        receiver
            .await
            .map_err(|_| Error::Storage("the send was cancelled by shutdown".to_string()))?
    }
}

/// Waits until `wanted` groups are pending, or [`LINGER`] passed.
async fn linger(partition: &Partition, wanted: usize) {
    if wanted < 2 {
        return;
    }
    let deadline = tokio::time::Instant::now() + LINGER;
    loop {
        let pending = partition
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .groups
            .len();
        if pending >= wanted {
            return;
        }
        if tokio::time::timeout_at(deadline, partition.arrived.notified())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Keeps a partition's count of running flushes right if a flush task is cancelled (shutdown).
struct FlushSlot {
    partition: Arc<Partition>,
    released: bool,
}

impl Drop for FlushSlot {
    fn drop(&mut self) {
        if !self.released {
            let mut pending = self
                .partition
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            pending.in_flight -= 1;
        }
    }
}

/// One flush task: stores pending groups until none are left.
async fn flush(state: Arc<QueueState>, partition: Arc<Partition>) {
    let limits = state.combine;
    let mut slot = FlushSlot {
        partition: partition.clone(),
        released: false,
    };
    let mut acknowledged = 0usize;
    loop {
        linger(&partition, acknowledged * 3 / 4).await;
        let groups: Vec<PendingGroup> = {
            let mut pending = partition
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if pending.groups.is_empty() {
                // Under the lock, so a sender either sees this flush running or starts another.
                pending.in_flight -= 1;
                slot.released = true;
                return;
            }
            let mut taken = Vec::new();
            let (mut messages, mut bytes) = (0usize, 0usize);
            while let Some(next) = pending.groups.front() {
                let fits = messages + next.messages.len() <= limits.max_messages
                    && bytes + next.bytes <= limits.max_bytes;
                if !taken.is_empty() && !fits {
                    break;
                }
                messages += next.messages.len();
                bytes += next.bytes;
                taken.push(pending.groups.pop_front().expect("front exists"));
            }
            pending.bytes -= bytes;
            taken
        };
        acknowledged = groups.len();
        let mut replies = Vec::with_capacity(groups.len());
        let mut request = EnqueueRequest {
            bounds: state.bounds(),
            groups: Vec::with_capacity(groups.len()),
        };
        for group in groups {
            replies.push((group.reply, group.operation));
            request.groups.push(group.messages);
        }
        match partition.enqueue(&request).await {
            Ok(response) => {
                let mut any = false;
                for ((reply, operation), stored) in replies.into_iter().zip(response.stored) {
                    any |= stored;
                    let result = if stored {
                        Ok(())
                    } else {
                        Err(Error::BacklogFull {
                            operation,
                            queue: state.name.clone(),
                            backlog_messages: response.backlog_messages,
                            backlog_bytes: response.backlog_bytes,
                            max_messages: state.settings.max_backlog_messages,
                            max_bytes: state.settings.max_backlog_bytes,
                        })
                    };
                    let _ = reply.send(result);
                }
                if any {
                    state.stored.notify_one();
                }
            }
            Err(error) => {
                for (reply, _) in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}
