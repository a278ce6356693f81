//! The push consumer's dispatcher: one task per queue that leases batches from the partitions and
//! runs the handler on them, never more than `max_concurrency` at once.
//!
//! # Protocol
//! 1. On start, every partition forgets push leases of an earlier dispatcher (they live in the
//!    object's memory, so a restart already dropped them) and hands over the messages it held
//!    for the dead-letter queue.
//! 2. While fewer than `max_concurrency` batches run, the dispatcher asks partitions in turn for a
//!    batch. A partition answers with one only when `max_batch_size` messages are visible or the
//!    oldest visible one has waited `max_batch_timeout`; otherwise it says when to ask again.
//! 3. With nothing ready, the dispatcher sleeps on the runtime clock until the earliest such time,
//!    or until a producer stores messages, or a batch finishes.
//! 4. A batch runs the handler on a shard picked round robin, bounded by Cloudflare's 15 minutes
//!    of wall time. The precedence rules ([`super::consumer`]) give each message its outcome;
//!    one settlement, carried by the partition's write pipeline with the producers' sends, acks
//!    and retries them durably. Messages retried on their last attempt come
//!    back held, and move to the dead-letter queue ([`super::state::hand_over`]).
//!
//! A crash anywhere leaves each message stored and either visible (a push lease does not survive
//! the process), pull-leased (visible again when the lease runs out) or held: every acknowledged
//! send is delivered at least once.

use super::consumer::{BatchMetadata, MessageBatch, Outcome, QueueHandler};
use super::limits::CONSUMER_WALL_TIME_MS;
use super::pipeline;
use super::producer::Queue;
use super::protocol::{
    LeaseKind, LeaseRequest, LeaseResponse, SettleItem, SettleRequest, Settlement,
};
use super::state::{Partition, QueueState, hand_over};
use burrow_runtime::clock::Clock;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// A push consumer's settings, resolved from `[[queues.consumers]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PushSettings {
    pub(crate) max_batch_size: u32,
    pub(crate) max_batch_timeout_ms: i64,
    pub(crate) max_attempts: u32,
    pub(crate) retry_delay_seconds: Option<u32>,
    pub(crate) max_concurrency: usize,
}

/// Stops a dispatcher: no new batches; running ones finish and settle.
#[derive(Debug, Default)]
pub(crate) struct Stop {
    stopped: AtomicBool,
    wake: Notify,
    /// Set when the dispatcher has stopped and no batch runs any more.
    pub(crate) done: AtomicBool,
    pub(crate) finished: Notify,
}

impl Stop {
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

pub(crate) struct Dispatcher {
    pub(crate) queue: Arc<QueueState>,
    pub(crate) dead_letter: Option<Queue>,
    /// Shared with [`super::Queues::update_consumer`]: read afresh for every batch.
    pub(crate) settings: Arc<std::sync::Mutex<PushSettings>>,
    pub(crate) handler: Arc<dyn QueueHandler>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) stop: Arc<Stop>,
}

/// Shared by the dispatcher loop and its running batches (all on one shard).
struct Running {
    count: Cell<usize>,
    finished: Notify,
    next_shard: Cell<usize>,
}

impl Dispatcher {
    /// The settings as of now.
    fn settings(&self) -> PushSettings {
        *self
            .settings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The dispatcher's task. Runs on a shard thread.
    pub(crate) async fn run(self) {
        let this = Rc::new(self);
        let running = Rc::new(Running {
            count: Cell::new(0),
            finished: Notify::new(),
            next_shard: Cell::new(0),
        });
        this.recover().await;
        let mut next_partition = 0usize;
        let partitions = this.queue.partitions.len();
        while !this.stop.is_stopped() {
            if running.count.get() >= this.settings().max_concurrency {
                tokio::select! {
                    _ = running.finished.notified() => {}
                    _ = this.stop.wake.notified() => {}
                }
                continue;
            }
            let mut earliest: Option<i64> = None;
            let mut leased = None;
            let mut failed = false;
            for offset in 0..partitions {
                let index = (next_partition + offset) % partitions;
                let partition = &this.queue.partitions[index];
                match partition.lease(&this.lease_request()).await {
                    Ok(response)
                        if !response.messages.is_empty() || !response.exhausted.is_empty() =>
                    {
                        next_partition = index + 1;
                        leased = Some((partition.clone(), response));
                        break;
                    }
                    Ok(response) => {
                        if let Some(at) = response.next_check_ms {
                            earliest = Some(earliest.map_or(at, |e: i64| e.min(at)));
                        }
                    }
                    Err(error) => {
                        tracing::warn!(queue = %this.queue.name, partition = index, %error, "leasing a batch failed");
                        failed = true;
                    }
                }
            }
            if let Some((partition, response)) = leased {
                running.count.set(running.count.get() + 1);
                let batch_this = this.clone();
                let batch_running = running.clone();
                tokio::task::spawn_local(async move {
                    batch_this
                        .deliver(&partition, response, &batch_running)
                        .await;
                    batch_running
                        .count
                        .set(batch_running.count.get().saturating_sub(1));
                    batch_running.finished.notify_one();
                });
                continue;
            }
            let clock = this.clock.clone();
            let sleep = async move {
                match earliest {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let backoff = async move {
                if failed {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = this.queue.stored.notified() => {}
                _ = sleep => {}
                _ = running.finished.notified() => {}
                _ = this.stop.wake.notified() => {}
                _ = backoff => {}
            }
        }
        while running.count.get() > 0 {
            running.finished.notified().await;
        }
        this.stop.done.store(true, Ordering::SeqCst);
        this.stop.finished.notify_waiters();
    }

    fn lease_request(&self) -> LeaseRequest {
        LeaseRequest {
            kind: LeaseKind::Push,
            max_messages: self.settings().max_batch_size,
            batch_timeout_ms: Some(self.settings().max_batch_timeout_ms),
            visibility_ms: CONSUMER_WALL_TIME_MS as i64,
            max_attempts: self.settings().max_attempts,
            has_dead_letter_queue: self.dead_letter.is_some(),
        }
    }

    /// Releases the last run's push leases and hands over held messages.
    async fn recover(&self) {
        for (index, partition) in self.queue.partitions.iter().enumerate() {
            let mut attempt = 0u32;
            loop {
                match partition.recover(self.dead_letter.is_some()).await {
                    Ok(response) => {
                        if response.released > 0 {
                            tracing::info!(queue = %self.queue.name, partition = index, released = response.released, "released the push leases of the previous run");
                        }
                        if let Some(dead_letter) = &self.dead_letter {
                            hand_over(&self.queue, partition, dead_letter, response.held).await;
                        }
                        break;
                    }
                    Err(error) if attempt < 50 && !self.stop.is_stopped() => {
                        attempt += 1;
                        tracing::warn!(queue = %self.queue.name, partition = index, %error, "recovering the partition failed; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(error) => {
                        tracing::error!(queue = %self.queue.name, partition = index, %error, "recovering the partition failed");
                        break;
                    }
                }
            }
        }
    }

    async fn deliver(&self, partition: &Arc<Partition>, leased: LeaseResponse, running: &Running) {
        if let Some(dead_letter) = &self.dead_letter {
            hand_over(&self.queue, partition, dead_letter, leased.exhausted).await;
        }
        if leased.messages.is_empty() {
            return;
        }
        let now = self.clock.now_ms();
        let live = &self.queue.live;
        live.record_batch(leased.messages.len());
        for message in &leased.messages {
            if message.attempts == 1 {
                live.record_latency(now.saturating_sub(message.timestamp_ms).max(0) as u64);
            }
        }
        let token = leased.token;
        let seqs: Vec<i64> = leased.messages.iter().map(|m| m.seq).collect();
        let batch = MessageBatch::new(
            &self.queue.name,
            leased
                .messages
                .into_iter()
                .map(|m| (m.id, m.timestamp_ms, m.body, m.attempts))
                .collect(),
            BatchMetadata {
                backlog_count: leased.backlog_messages,
                backlog_bytes: leased.backlog_bytes,
            },
        );
        let decisions = batch.decisions().clone();
        let shard_count = self.queue.shards.count();
        let shard = running.next_shard.get() % shard_count;
        running.next_shard.set(shard + 1);
        let handler = self.handler.clone();
        let invocation = self.queue.shards.run(shard, move || handler.queue(batch));
        let deadline = self.clock.sleep_until(now + CONSUMER_WALL_TIME_MS as i64);
        let succeeded = tokio::select! {
            outcome = invocation => match outcome {
                Ok(Ok(())) => true,
                Ok(Err(error)) => {
                    tracing::warn!(queue = %self.queue.name, error = %error.message, "queue handler failed; retrying the messages it did not ack");
                    false
                }
                Err(error) => {
                    tracing::error!(queue = %self.queue.name, %error, "queue handler did not finish");
                    false
                }
            },
            _ = deadline => {
                tracing::error!(queue = %self.queue.name, "queue handler ran past its wall-time limit");
                false
            }
        };
        let outcomes = decisions.resolve(
            succeeded,
            self.settings().retry_delay_seconds,
            self.queue.delivery_delay_seconds(),
        );
        let request = SettleRequest {
            items: seqs
                .iter()
                .zip(outcomes)
                .map(|(seq, outcome)| SettleItem {
                    seq: *seq,
                    token,
                    settlement: match outcome {
                        Outcome::Ack => Settlement::Ack,
                        Outcome::Retry { delay_seconds } => Settlement::Retry {
                            delay_ms: i64::from(delay_seconds) * 1000,
                        },
                    },
                })
                .collect(),
            max_attempts: self.settings().max_attempts,
            has_dead_letter_queue: self.dead_letter.is_some(),
        };
        let mut attempt = 0u32;
        let settled = loop {
            match pipeline::settle(&self.queue, partition, request.clone()).await {
                Ok(settled) => break Some(settled),
                Err(error) if attempt < 10 && !self.stop.is_stopped() => {
                    attempt += 1;
                    tracing::warn!(queue = %self.queue.name, %error, "settling a batch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
                }
                Err(error) => {
                    tracing::error!(queue = %self.queue.name, %error, "settling a batch failed; its messages come back when the lease runs out");
                    break None;
                }
            }
        };
        if let Some(settled) = settled {
            if settled.dropped > 0 {
                tracing::warn!(queue = %self.queue.name, dropped = settled.dropped, "deleted messages after their last attempt (no dead-letter queue)");
            }
            if let Some(dead_letter) = &self.dead_letter {
                hand_over(&self.queue, partition, dead_letter, settled.exhausted).await;
            }
        }
    }
}
