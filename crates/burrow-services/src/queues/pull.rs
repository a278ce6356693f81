//! Pull consumers: lease a batch with a visibility timeout, then ack or retry by lease id.
//! Messages not acked by the end of the timeout become visible again and are pulled anew.
//!
//! A lease id names the partition, the message's row and the lease token:
//! `<partition>-<seq>-<token>` in hex. Acking with a lease that expired and was taken by another
//! pull does nothing (the token no longer matches), so a slow client cannot ack a message that
//! someone else is now processing.

use super::error::Error;
use super::limits::{
    DEFAULT_PULL_BATCH_SIZE, DEFAULT_VISIBILITY_TIMEOUT_MS, MAX_DELAY_SECONDS, MAX_PULL_BATCH_SIZE,
    MAX_VISIBILITY_TIMEOUT_MS,
};
use super::message::Body;
use super::pipeline;
use super::producer::Queue;
use super::protocol::{LeaseKind, LeaseRequest, SettleItem, SettleRequest, Settlement};
use super::state::{QueueState, hand_over};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A pulled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledMessage {
    /// Acks or retries this delivery.
    pub lease_id: String,
    /// The message id.
    pub id: String,
    /// When it was sent, in epoch milliseconds.
    pub timestamp_ms: i64,
    /// Deliveries so far, this one included.
    pub attempts: u32,
    /// The body.
    pub body: Body,
    /// Deliveries in the queue it was dead-lettered from (0 for messages sent to this queue).
    pub dead_letter_attempts: u32,
}

/// The answer to a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullBatch {
    /// Messages stored in the queue when the pull ran (`message_backlog_count`).
    pub backlog_count: u64,
    /// The leased messages.
    pub messages: Vec<PulledMessage>,
}

/// What an ack request did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckOutcome {
    /// Messages acknowledged.
    pub acked: u32,
    /// Messages scheduled for redelivery.
    pub retried: u32,
    /// Leases that had expired and been taken over, or were already settled.
    pub ignored: u32,
    /// Messages past their last attempt (moved to the dead-letter queue, or deleted).
    pub exhausted: u32,
}

/// A retry by lease id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRetry {
    /// The lease.
    pub lease_id: String,
    /// Seconds before redelivery; `None` uses the consumer's `retry_delay`, then the queue's
    /// `delivery_delay`.
    pub delay_seconds: Option<u32>,
}

/// A pull consumer of one queue.
#[derive(Clone)]
pub struct PullConsumer {
    pub(crate) queue: Arc<QueueState>,
    pub(crate) dead_letter: Option<Queue>,
    pub(crate) max_attempts: u32,
    pub(crate) retry_delay_seconds: Option<u32>,
    pub(crate) visibility_timeout_ms: Option<u64>,
    pub(crate) next_partition: Arc<AtomicUsize>,
}

fn format_lease(partition: u32, seq: i64, token: u64) -> String {
    format!("{partition:x}-{seq:x}-{token:x}")
}

fn parse_lease(lease_id: &str, partitions: usize) -> Result<(usize, i64, u64), Error> {
    let invalid = || Error::InvalidLeaseId(lease_id.to_string());
    let mut parts = lease_id.split('-');
    let (Some(partition), Some(seq), Some(token), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let partition = usize::from_str_radix(partition, 16).map_err(|_| invalid())?;
    let seq = i64::from_str_radix(seq, 16).map_err(|_| invalid())?;
    let token = u64::from_str_radix(token, 16).map_err(|_| invalid())?;
    if partition >= partitions {
        return Err(invalid());
    }
    Ok((partition, seq, token))
}

impl PullConsumer {
    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue.name
    }

    /// Leases up to `batch_size` messages (default 5, at most 100) for `visibility_timeout_ms`
    /// (default: the consumer's, else 30 s; at most 12 hours).
    pub async fn pull(
        &self,
        batch_size: Option<u32>,
        visibility_timeout_ms: Option<u64>,
    ) -> Result<PullBatch, Error> {
        let batch_size = batch_size.unwrap_or(DEFAULT_PULL_BATCH_SIZE);
        if !(1..=MAX_PULL_BATCH_SIZE).contains(&batch_size) {
            return Err(Error::InvalidPull(format!(
                "batch_size {batch_size} is outside 1-{MAX_PULL_BATCH_SIZE}"
            )));
        }
        let visibility = visibility_timeout_ms
            .or(self.visibility_timeout_ms)
            .unwrap_or(DEFAULT_VISIBILITY_TIMEOUT_MS);
        if !(1..=MAX_VISIBILITY_TIMEOUT_MS).contains(&visibility) {
            return Err(Error::InvalidPull(format!(
                "visibility_timeout_ms {visibility} is outside 1-{MAX_VISIBILITY_TIMEOUT_MS}"
            )));
        }
        let partitions = self.queue.partitions.len();
        let start = self.next_partition.fetch_add(1, Ordering::Relaxed);
        let mut batch = PullBatch {
            backlog_count: 0,
            messages: Vec::new(),
        };
        for offset in 0..partitions {
            let partition = &self.queue.partitions[(start + offset) % partitions];
            let wanted = batch_size - batch.messages.len() as u32;
            let request = LeaseRequest {
                kind: LeaseKind::Pull,
                max_messages: wanted.max(1),
                batch_timeout_ms: None,
                visibility_ms: visibility as i64,
                max_attempts: self.max_attempts,
                has_dead_letter_queue: self.dead_letter.is_some(),
            };
            let leased = if wanted == 0 {
                // Full already: only the backlog figure is wanted from the other partitions.
                batch.backlog_count += partition.stats().await?.backlog_messages;
                continue;
            } else {
                partition.lease(&request).await?
            };
            batch.backlog_count += leased.backlog_messages;
            for message in leased.messages {
                batch.messages.push(PulledMessage {
                    lease_id: format_lease(partition.index, message.seq, leased.token),
                    id: message.id,
                    timestamp_ms: message.timestamp_ms,
                    attempts: message.attempts,
                    body: message.body,
                    dead_letter_attempts: message.prior_attempts,
                });
            }
            if let Some(dead_letter) = &self.dead_letter {
                hand_over(&self.queue, partition, dead_letter, leased.exhausted).await;
            }
        }
        if !batch.messages.is_empty() {
            self.queue.live.record_batch(batch.messages.len());
        }
        Ok(batch)
    }

    /// Acks and retries by lease id. Malformed lease ids fail the whole request before anything
    /// is settled.
    pub async fn ack(&self, acks: &[String], retries: &[LeaseRetry]) -> Result<AckOutcome, Error> {
        let partitions = self.queue.partitions.len();
        let default_delay = self
            .retry_delay_seconds
            .unwrap_or_else(|| self.queue.delivery_delay_seconds());
        let mut by_partition: BTreeMap<usize, Vec<SettleItem>> = BTreeMap::new();
        for lease_id in acks {
            let (partition, seq, token) = parse_lease(lease_id, partitions)?;
            by_partition.entry(partition).or_default().push(SettleItem {
                seq,
                token,
                settlement: Settlement::Ack,
            });
        }
        for retry in retries {
            let (partition, seq, token) = parse_lease(&retry.lease_id, partitions)?;
            let delay = retry
                .delay_seconds
                .unwrap_or(default_delay)
                .min(MAX_DELAY_SECONDS);
            by_partition.entry(partition).or_default().push(SettleItem {
                seq,
                token,
                settlement: Settlement::Retry {
                    delay_ms: i64::from(delay) * 1000,
                },
            });
        }
        let mut outcome = AckOutcome::default();
        for (index, items) in by_partition {
            let partition = &self.queue.partitions[index];
            let request = SettleRequest {
                items,
                max_attempts: self.max_attempts,
                has_dead_letter_queue: self.dead_letter.is_some(),
            };
            let settled = pipeline::settle(&self.queue, partition, request).await?;
            outcome.acked += settled.acked;
            outcome.retried += settled.retried;
            outcome.ignored += settled.stale;
            outcome.exhausted += settled.dropped + settled.exhausted.len() as u32;
            if let Some(dead_letter) = &self.dead_letter {
                hand_over(&self.queue, partition, dead_letter, settled.exhausted).await;
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids_round_trip_and_reject_garbage() {
        let id = format_lease(3, 0x1234, u64::MAX >> 1);
        assert_eq!(parse_lease(&id, 4).unwrap(), (3, 0x1234, u64::MAX >> 1));
        assert!(parse_lease(&id, 3).is_err(), "no such partition");
        for bad in ["", "1-2", "1-2-3-4", "x-2-3", "1--3"] {
            assert!(parse_lease(bad, 4).is_err(), "{bad:?}");
        }
    }
}
