//! A partition's write pipeline: every write to a partition (producer calls, and the consumers'
//! acks and retries) joins one pending list, and one RPC at a time carries everything pending.
//!
//! # Why
//! fsync is the cost. One RPC is one object turn, one commit, one journal record; while it waits
//! for its fsync, everything else gathers for the next. Producers' sends and consumers'
//! settlements share that RPC: separate settle RPCs would make the journal fsync them on their
//! own between two sends' commits, and the sends waiting behind them would wait a whole extra
//! fsync.
//!
//! After an RPC returns, the flush lingers (at most [`LINGER`]) until about as many writes are
//! pending as it just acknowledged: producers in a closed loop send again at once, and without
//! the linger the next RPC would leave with the first few and the rest would wait an extra fsync.
//!
//! Each write's future resolves when the RPC that carried it returns, which the output gate holds
//! until the commit is durable. Pending bytes are bounded per partition; beyond the bound a send
//! fails at once with Cloudflare's `Queue is overloaded. Please back off.`

use super::error::{Error, Operation};
use super::protocol::{EnqueueRequest, NewMessage, SettleRequest, SettleResponse};
use super::state::{Partition, QueueState};
use std::collections::VecDeque;
use std::sync::{Arc, PoisonError};
use std::time::Duration;
use tokio::sync::oneshot;

/// Longest a flush waits for the writers it just acknowledged to write again.
const LINGER: Duration = Duration::from_micros(500);

/// One write waiting to be carried.
pub(crate) enum Write {
    /// A producer call: stored whole or refused whole.
    Messages {
        messages: Vec<NewMessage>,
        operation: Operation,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    /// A consumer's acks and retries.
    Settle {
        request: SettleRequest,
        reply: oneshot::Sender<Result<SettleResponse, Error>>,
    },
}

impl Write {
    /// (items, body bytes) it adds to an RPC.
    fn size(&self) -> (usize, usize) {
        match self {
            Write::Messages { messages, .. } => {
                (messages.len(), messages.iter().map(|m| m.body.len()).sum())
            }
            Write::Settle { request, .. } => (request.items.len(), 0),
        }
    }

    fn fail(self, error: Error) {
        match self {
            Write::Messages { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Write::Settle { reply, .. } => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// A partition's pending writes.
#[derive(Default)]
pub(crate) struct Pending {
    writes: VecDeque<Write>,
    bytes: usize,
    /// RPCs running for this partition.
    in_flight: usize,
}

/// Adds `write` to the partition's pipeline; returns once it is queued (the caller awaits its
/// reply). Fails at once when the pending bytes are over the bound.
pub(crate) fn submit(
    state: &Arc<QueueState>,
    partition: &Arc<Partition>,
    write: Write,
) -> Result<(), Error> {
    let (_, bytes) = write.size();
    let start_flush = {
        let mut pending = partition
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Write::Messages { operation, .. } = &write
            && pending.bytes + bytes > state.combine.max_pending_bytes
        {
            return Err(Error::Overloaded {
                operation: *operation,
            });
        }
        pending.bytes += bytes;
        pending.writes.push_back(write);
        let start = pending.in_flight < state.combine.max_in_flight;
        if start {
            pending.in_flight += 1;
        }
        start
    };
    partition.arrived.notify_one();
    if start_flush {
        let flushing = (state.clone(), partition.clone());
        if let Err(error) = state
            .shards
            .spawn(partition.shard, move || flush(flushing.0, flushing.1))
        {
            // The shard refused the task: fail whatever waits; the next write tries again.
            let failed = {
                let mut pending = partition
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                pending.in_flight -= 1;
                if pending.in_flight == 0 {
                    pending.bytes = 0;
                    std::mem::take(&mut pending.writes)
                } else {
                    VecDeque::new()
                }
            };
            for write in failed {
                write.fail(Error::Storage(error.to_string()));
            }
        }
    }
    Ok(())
}

/// Waits until `wanted` writes are pending, or [`LINGER`] passed.
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
            .writes
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

type MessageReply = (oneshot::Sender<Result<(), Error>>, Operation);
type SettleReply = oneshot::Sender<Result<SettleResponse, Error>>;

/// One flush task: carries pending writes until none are left.
async fn flush(state: Arc<QueueState>, partition: Arc<Partition>) {
    let limits = state.combine;
    let mut slot = FlushSlot {
        partition: partition.clone(),
        released: false,
    };
    let mut acknowledged = 0usize;
    loop {
        linger(&partition, acknowledged * 3 / 4).await;
        let writes: Vec<Write> = {
            let mut pending = partition
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if pending.writes.is_empty() {
                // Under the lock, so a writer either sees this flush running or starts another.
                pending.in_flight -= 1;
                slot.released = true;
                return;
            }
            let mut taken = Vec::new();
            let (mut items, mut bytes) = (0usize, 0usize);
            while let Some(next) = pending.writes.front() {
                let (next_items, next_bytes) = next.size();
                let fits = items + next_items <= limits.max_messages
                    && bytes + next_bytes <= limits.max_bytes;
                if !taken.is_empty() && !fits {
                    break;
                }
                items += next_items;
                bytes += next_bytes;
                taken.push(pending.writes.pop_front().expect("front exists"));
            }
            pending.bytes -= bytes;
            taken
        };
        acknowledged = writes.len();
        let mut request = EnqueueRequest {
            bounds: state.bounds(),
            groups: Vec::new(),
            settles: Vec::new(),
        };
        let mut message_replies: Vec<MessageReply> = Vec::new();
        let mut settle_replies: Vec<SettleReply> = Vec::new();
        for write in writes {
            match write {
                Write::Messages {
                    messages,
                    operation,
                    reply,
                } => {
                    request.groups.push(messages);
                    message_replies.push((reply, operation));
                }
                Write::Settle {
                    request: settle,
                    reply,
                } => {
                    request.settles.push(settle);
                    settle_replies.push(reply);
                }
            }
        }
        match partition.enqueue(&request).await {
            Ok(response) => {
                let mut any = false;
                for ((reply, operation), stored) in message_replies.into_iter().zip(response.stored)
                {
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
                for (reply, settled) in settle_replies.into_iter().zip(response.settled) {
                    // Retried messages may be visible again at once.
                    any |= settled.retried > 0;
                    let _ = reply.send(Ok(settled));
                }
                if any {
                    state.stored.notify_one();
                }
            }
            Err(error) => {
                for (reply, _) in message_replies {
                    let _ = reply.send(Err(error.clone()));
                }
                for reply in settle_replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Stores a producer call through the partition's pipeline.
pub(crate) async fn store(
    state: &Arc<QueueState>,
    partition: &Arc<Partition>,
    operation: Operation,
    messages: Vec<NewMessage>,
) -> Result<(), Error> {
    let (reply, receiver) = oneshot::channel();
    submit(
        state,
        partition,
        Write::Messages {
            messages,
            operation,
            reply,
        },
    )?;
    receiver
        .await
        .map_err(|_| Error::Storage("the send was cancelled by shutdown".to_string()))?
}

/// Settles leased messages through the partition's pipeline.
pub(crate) async fn settle(
    state: &Arc<QueueState>,
    partition: &Arc<Partition>,
    request: SettleRequest,
) -> Result<SettleResponse, Error> {
    let (reply, receiver) = oneshot::channel();
    submit(state, partition, Write::Settle { request, reply })?;
    receiver
        .await
        .map_err(|_| Error::Storage("the settlement was cancelled by shutdown".to_string()))?
}
