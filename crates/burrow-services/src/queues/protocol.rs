//! The RPC methods of a queue partition object, their arguments and results (see [`super::wire`]
//! for the byte format). The object is the only writer of a partition's messages; everything else
//! reaches it through these calls.

use super::message::{Body, ContentType};
use super::wire::{Reader, WireError, Writer};
use bytes::Bytes;

/// Method names.
pub(crate) mod method {
    pub(crate) const ENQUEUE: &str = "enqueue";
    pub(crate) const LEASE: &str = "lease";
    pub(crate) const SETTLE: &str = "settle";
    pub(crate) const FORGET: &str = "forget";
    pub(crate) const RECOVER: &str = "recover";
    pub(crate) const STATS: &str = "stats";
    pub(crate) const PURGE: &str = "purge";
}

/// Who holds a lease: push leases are released when the node restarts (no dispatcher survives
/// it), pull leases run out by their visibility timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseKind {
    Push = 1,
    Pull = 2,
}

/// The partition's bounds, sent with every enqueue so the object needs no configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) retention_ms: i64,
    pub(crate) max_backlog_messages: u64,
    pub(crate) max_backlog_bytes: u64,
}

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewMessage {
    pub(crate) body: Body,
    pub(crate) delay_ms: i64,
    /// Kept when a message moves to a dead-letter queue.
    pub(crate) id: Option<String>,
    pub(crate) timestamp_ms: Option<i64>,
    /// Deliveries in the queue it was dead-lettered from.
    pub(crate) prior_attempts: u32,
}

/// `enqueue`: the partition's combined writes. Settlements run first (acks make room), then
/// groups are stored whole or not at all, each on its own (one group per producer call, several
/// calls combined into one RPC, so that one commit and one fsync serve them all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnqueueRequest {
    pub(crate) bounds: Bounds,
    pub(crate) groups: Vec<Vec<NewMessage>>,
    pub(crate) settles: Vec<SettleRequest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnqueueResponse {
    /// Per group: stored, or refused because the backlog bound would be crossed.
    pub(crate) stored: Vec<bool>,
    pub(crate) backlog_messages: u64,
    pub(crate) backlog_bytes: u64,
    /// Per settle request, in order.
    pub(crate) settled: Vec<SettleResponse>,
}

/// `lease`: takes up to `max_messages` visible messages and hides them for `visibility_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseRequest {
    pub(crate) kind: LeaseKind,
    pub(crate) max_messages: u32,
    /// Push batching: lease nothing until `max_messages` are visible or the oldest visible one
    /// has waited this long. `None` leases whatever is visible (pull).
    pub(crate) batch_timeout_ms: Option<i64>,
    pub(crate) visibility_ms: i64,
    /// Deliveries after which a message is exhausted (`max_retries + 1`).
    pub(crate) max_attempts: u32,
    pub(crate) has_dead_letter_queue: bool,
}

/// A leased message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeasedMessage {
    pub(crate) seq: i64,
    pub(crate) id: String,
    pub(crate) body: Body,
    pub(crate) timestamp_ms: i64,
    /// Deliveries including this one.
    pub(crate) attempts: u32,
    pub(crate) prior_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseResponse {
    pub(crate) token: u64,
    pub(crate) messages: Vec<LeasedMessage>,
    /// Messages found exhausted (an expired lease on their last attempt), held for the
    /// dead-letter queue.
    pub(crate) exhausted: Vec<LeasedMessage>,
    /// With nothing leased: when a batch may be ready next (a delay ends, a batch timeout runs
    /// out, a lease expires).
    pub(crate) next_check_ms: Option<i64>,
    pub(crate) backlog_messages: u64,
    pub(crate) backlog_bytes: u64,
}

/// How a leased message was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settlement {
    Ack,
    Retry { delay_ms: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SettleItem {
    pub(crate) seq: i64,
    pub(crate) token: u64,
    pub(crate) settlement: Settlement,
}

/// `settle`: acks delete, retries make the message visible again after the delay, and a retry
/// on the last attempt exhausts the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SettleRequest {
    pub(crate) items: Vec<SettleItem>,
    pub(crate) max_attempts: u32,
    pub(crate) has_dead_letter_queue: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SettleResponse {
    pub(crate) acked: u32,
    pub(crate) retried: u32,
    /// Items whose lease had expired or was taken over: ignored.
    pub(crate) stale: u32,
    /// Exhausted and held for the dead-letter queue (with one), or deleted (counted in
    /// `dropped`).
    pub(crate) exhausted: Vec<LeasedMessage>,
    pub(crate) dropped: u32,
}

/// `forget`: deletes held (exhausted) messages once the dead-letter queue stored them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForgetRequest {
    pub(crate) seqs: Vec<i64>,
}

/// `recover`: a dispatcher starting on this node releases the push leases of the last run and
/// takes over the messages held for the dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecoverRequest {
    pub(crate) has_dead_letter_queue: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecoverResponse {
    pub(crate) released: u32,
    pub(crate) held: Vec<LeasedMessage>,
}

/// `stats`: the partition's durable counters and its backlog now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PartitionStats {
    pub(crate) backlog_messages: u64,
    pub(crate) backlog_bytes: u64,
    pub(crate) in_flight: u64,
    pub(crate) delayed: u64,
    pub(crate) held_for_dead_letter: u64,
    pub(crate) acked: u64,
    pub(crate) retried: u64,
    pub(crate) dead_lettered: u64,
    pub(crate) dropped: u64,
    pub(crate) expired: u64,
    pub(crate) oldest_timestamp_ms: Option<i64>,
}

// ------------------------------------------------------------------------------------------
// Encoding.

fn put_body(writer: &mut Writer, body: &Body) {
    writer.u8(body.content_type().code()).bytes(body.as_bytes());
}

fn get_body(reader: &mut Reader) -> Result<Body, WireError> {
    let content_type = ContentType::from_code(i64::from(reader.u8()?)).ok_or(WireError)?;
    Ok(Body::new(content_type, reader.bytes()?))
}

fn put_leased(writer: &mut Writer, messages: &[LeasedMessage]) {
    writer.u32(messages.len() as u32);
    for message in messages {
        writer.i64(message.seq).str(&message.id);
        put_body(writer, &message.body);
        writer
            .i64(message.timestamp_ms)
            .u32(message.attempts)
            .u32(message.prior_attempts);
    }
}

fn get_leased(reader: &mut Reader) -> Result<Vec<LeasedMessage>, WireError> {
    let count = reader.count(33)?;
    let mut messages = Vec::with_capacity(count);
    for _ in 0..count {
        messages.push(LeasedMessage {
            seq: reader.i64()?,
            id: reader.str()?,
            body: get_body(reader)?,
            timestamp_ms: reader.i64()?,
            attempts: reader.u32()?,
            prior_attempts: reader.u32()?,
        });
    }
    Ok(messages)
}

impl EnqueueRequest {
    pub(crate) fn encode(&self) -> Bytes {
        let bytes: usize = self
            .groups
            .iter()
            .flatten()
            .map(|m| m.body.len() + 48)
            .sum();
        let mut writer = Writer::with_capacity(bytes + 32);
        writer
            .i64(self.bounds.retention_ms)
            .u64(self.bounds.max_backlog_messages)
            .u64(self.bounds.max_backlog_bytes)
            .u32(self.groups.len() as u32);
        for group in &self.groups {
            writer.u32(group.len() as u32);
            for message in group {
                put_body(&mut writer, &message.body);
                writer
                    .i64(message.delay_ms)
                    .opt_str(message.id.as_deref())
                    .opt_i64(message.timestamp_ms)
                    .u32(message.prior_attempts);
            }
        }
        writer.u32(self.settles.len() as u32);
        for settle in &self.settles {
            writer.bytes(&settle.encode());
        }
        writer.finish()
    }

    pub(crate) fn decode(bytes: Bytes) -> Result<EnqueueRequest, WireError> {
        let mut reader = Reader::new(bytes);
        let bounds = Bounds {
            retention_ms: reader.i64()?,
            max_backlog_messages: reader.u64()?,
            max_backlog_bytes: reader.u64()?,
        };
        let group_count = reader.count(4)?;
        let mut groups = Vec::with_capacity(group_count);
        for _ in 0..group_count {
            let count = reader.count(19)?;
            let mut group = Vec::with_capacity(count);
            for _ in 0..count {
                group.push(NewMessage {
                    body: get_body(&mut reader)?,
                    delay_ms: reader.i64()?,
                    id: reader.opt_str()?,
                    timestamp_ms: reader.opt_i64()?,
                    prior_attempts: reader.u32()?,
                });
            }
            groups.push(group);
        }
        let count = reader.count(4)?;
        let settles = (0..count)
            .map(|_| SettleRequest::decode(reader.bytes()?))
            .collect::<Result<_, _>>()?;
        reader.end()?;
        Ok(EnqueueRequest {
            bounds,
            groups,
            settles,
        })
    }
}

impl EnqueueResponse {
    pub(crate) fn encode(&self) -> Bytes {
        let mut writer = Writer::with_capacity(24 + self.stored.len());
        writer.u32(self.stored.len() as u32);
        for stored in &self.stored {
            writer.bool(*stored);
        }
        writer.u64(self.backlog_messages).u64(self.backlog_bytes);
        writer.u32(self.settled.len() as u32);
        for settled in &self.settled {
            writer.bytes(&settled.encode());
        }
        writer.finish()
    }

    pub(crate) fn decode(bytes: Bytes) -> Result<EnqueueResponse, WireError> {
        let mut reader = Reader::new(bytes);
        let count = reader.count(1)?;
        let stored = (0..count)
            .map(|_| reader.bool())
            .collect::<Result<_, _>>()?;
        let backlog_messages = reader.u64()?;
        let backlog_bytes = reader.u64()?;
        let count = reader.count(4)?;
        let settled = (0..count)
            .map(|_| SettleResponse::decode(reader.bytes()?))
            .collect::<Result<_, _>>()?;
        let response = EnqueueResponse {
            stored,
            backlog_messages,
            backlog_bytes,
            settled,
        };
        reader.end()?;
        Ok(response)
    }
}

impl LeaseRequest {
    pub(crate) fn encode(&self) -> Bytes {
        let mut writer = Writer::with_capacity(40);
        writer
            .u8(self.kind as u8)
            .u32(self.max_messages)
            .opt_i64(self.batch_timeout_ms)
            .i64(self.visibility_ms)
            .u32(self.max_attempts)
            .bool(self.has_dead_letter_queue);
        writer.finish()
    }

    pub(crate) fn decode(bytes: Bytes) -> Result<LeaseRequest, WireError> {
        let mut reader = Reader::new(bytes);
        let kind = match reader.u8()? {
            1 => LeaseKind::Push,
            2 => LeaseKind::Pull,
            _ => return Err(WireError),
        };
        let request = LeaseRequest {
            kind,
            max_messages: reader.u32()?,
            batch_timeout_ms: reader.opt_i64()?,
            visibility_ms: reader.i64()?,
            max_attempts: reader.u32()?,
            has_dead_letter_queue: reader.bool()?,
        };
        reader.end()?;
        Ok(request)
    }
}

impl LeaseResponse {
    pub(crate) fn encode(&self) -> Bytes {
        let bytes: usize = self.messages.iter().map(|m| m.body.len() + 80).sum();
        let mut writer = Writer::with_capacity(bytes + 64);
        writer.u64(self.token);
        put_leased(&mut writer, &self.messages);
        put_leased(&mut writer, &self.exhausted);
        writer
            .opt_i64(self.next_check_ms)
            .u64(self.backlog_messages)
            .u64(self.backlog_bytes);
        writer.finish()
    }

    pub(crate) fn decode(bytes: Bytes) -> Result<LeaseResponse, WireError> {
        let mut reader = Reader::new(bytes);
        let response = LeaseResponse {
            token: reader.u64()?,
            messages: get_leased(&mut reader)?,
            exhausted: get_leased(&mut reader)?,
            next_check_ms: reader.opt_i64()?,
            backlog_messages: reader.u64()?,
            backlog_bytes: reader.u64()?,
        };
        reader.end()?;
        Ok(response)
    }
}

impl SettleRequest {
    pub(crate) fn encode(&self) -> Bytes {
        let mut writer = Writer::with_capacity(16 + self.items.len() * 25);
        writer
            .u32(self.max_attempts)
            .bool(self.has_dead_letter_queue)
            .u32(self.items.len() as u32);
        for item in &self.items {
            writer.i64(item.seq).u64(item.token);
            match item.settlement {
                Settlement::Ack => writer.u8(0),
                Settlement::Retry { delay_ms } => writer.u8(1).i64(delay_ms),
            };
        }
        writer.finish()
    }

    pub(crate) fn decode(bytes: Bytes) -> Result<SettleRequest, WireError> {
        let mut reader = Reader::new(bytes);
        let max_attempts = reader.u32()?;
        let has_dead_letter_queue = reader.bool()?;
        let count = reader.count(17)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            let seq = reader.i64()?;
            let token = reader.u64()?;
            let settlement = match reader.u8()? {
                0 => Settlement::Ack,
                1 => Settlement::Retry {
                    delay_ms: reader.i64()?,
                },
                _ => return Err(WireError),
            };
            items.push(SettleItem {
                seq,
                token,
                settlement,
            });
        }
        reader.end()?;
        Ok(SettleRequest {
            items,
            max_attempts,
            has_dead_letter_queue,
        })
    }
}

impl SettleResponse {
    pub(crate) fn encode(&self) -> Bytes {
        let mut writer = Writer::with_capacity(32);
        writer.u32(self.acked).u32(self.retried).u32(self.stale);
        put_leased(&mut writer, &self.exhausted);
        writer.u32(self.dropped);
        writer.finish()
    }

    pub(crate) fn decode(bytes: Bytes) -> Result<SettleResponse, WireError> {
        let mut reader = Reader::new(bytes);
        let response = SettleResponse {
            acked: reader.u32()?,
            retried: reader.u32()?,
            stale: reader.u32()?,
            exhausted: get_leased(&mut reader)?,
            dropped: reader.u32()?,
        };
        reader.end()?;
        Ok(response)
    }
}

impl ForgetRequest {
    pub(crate) fn encode(&self) -> Bytes {
        let mut writer = Writer::with_capacity(4 + self.seqs.len() * 8);
        writer.u32(self.seqs.len() as u32);
        for seq in &self.seqs {
            writer.i64(*seq);
        }
        writer.finish()
    }

    pub(crate) fn decode(bytes: Bytes) -> Result<ForgetRequest, WireError> {
        let mut reader = Reader::new(bytes);
        let count = reader.count(8)?;
        let seqs = (0..count).map(|_| reader.i64()).collect::<Result<_, _>>()?;
        reader.end()?;
        Ok(ForgetRequest { seqs })
    }
}

impl RecoverRequest {
    pub(crate) fn encode(&self) -> Bytes {
        let mut writer = Writer::with_capacity(1);
        writer.bool(self.has_dead_letter_queue);
        writer.finish()
    }

    pub(crate) fn decode(bytes: Bytes) -> Result<RecoverRequest, WireError> {
        let mut reader = Reader::new(bytes);
        let request = RecoverRequest {
            has_dead_letter_queue: reader.bool()?,
        };
        reader.end()?;
        Ok(request)
    }
}

impl RecoverResponse {
    pub(crate) fn encode(&self) -> Bytes {
        let mut writer = Writer::with_capacity(16);
        writer.u32(self.released);
        put_leased(&mut writer, &self.held);
        writer.finish()
    }

    pub(crate) fn decode(bytes: Bytes) -> Result<RecoverResponse, WireError> {
        let mut reader = Reader::new(bytes);
        let response = RecoverResponse {
            released: reader.u32()?,
            held: get_leased(&mut reader)?,
        };
        reader.end()?;
        Ok(response)
    }
}

impl PartitionStats {
    pub(crate) fn encode(&self) -> Bytes {
        let mut writer = Writer::with_capacity(96);
        writer
            .u64(self.backlog_messages)
            .u64(self.backlog_bytes)
            .u64(self.in_flight)
            .u64(self.delayed)
            .u64(self.held_for_dead_letter)
            .u64(self.acked)
            .u64(self.retried)
            .u64(self.dead_lettered)
            .u64(self.dropped)
            .u64(self.expired)
            .opt_i64(self.oldest_timestamp_ms);
        writer.finish()
    }

    pub(crate) fn decode(bytes: Bytes) -> Result<PartitionStats, WireError> {
        let mut reader = Reader::new(bytes);
        let stats = PartitionStats {
            backlog_messages: reader.u64()?,
            backlog_bytes: reader.u64()?,
            in_flight: reader.u64()?,
            delayed: reader.u64()?,
            held_for_dead_letter: reader.u64()?,
            acked: reader.u64()?,
            retried: reader.u64()?,
            dead_lettered: reader.u64()?,
            dropped: reader.u64()?,
            expired: reader.u64()?,
            oldest_timestamp_ms: reader.opt_i64()?,
        };
        reader.end()?;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leased(seq: i64) -> LeasedMessage {
        LeasedMessage {
            seq,
            id: format!("{seq:032x}"),
            body: Body::json_text("{}"),
            timestamp_ms: 5,
            attempts: 2,
            prior_attempts: 4,
        }
    }

    #[test]
    fn every_message_round_trips() {
        let enqueue = EnqueueRequest {
            bounds: Bounds {
                retention_ms: 1,
                max_backlog_messages: 2,
                max_backlog_bytes: 3,
            },
            groups: vec![
                vec![NewMessage {
                    body: Body::text("a"),
                    delay_ms: 4,
                    id: Some("id".into()),
                    timestamp_ms: Some(6),
                    prior_attempts: 7,
                }],
                vec![],
            ],
            settles: vec![SettleRequest {
                items: vec![SettleItem {
                    seq: 1,
                    token: 2,
                    settlement: Settlement::Ack,
                }],
                max_attempts: 3,
                has_dead_letter_queue: true,
            }],
        };
        assert_eq!(EnqueueRequest::decode(enqueue.encode()), Ok(enqueue));
        let response = EnqueueResponse {
            stored: vec![true, false],
            backlog_messages: 8,
            backlog_bytes: 9,
            settled: vec![SettleResponse {
                acked: 1,
                retried: 0,
                stale: 0,
                exhausted: vec![leased(5)],
                dropped: 0,
            }],
        };
        assert_eq!(EnqueueResponse::decode(response.encode()), Ok(response));
        let lease = LeaseRequest {
            kind: LeaseKind::Pull,
            max_messages: 10,
            batch_timeout_ms: Some(11),
            visibility_ms: 12,
            max_attempts: 13,
            has_dead_letter_queue: true,
        };
        assert_eq!(LeaseRequest::decode(lease.encode()), Ok(lease));
        let leased_response = LeaseResponse {
            token: 14,
            messages: vec![leased(1), leased(2)],
            exhausted: vec![leased(3)],
            next_check_ms: None,
            backlog_messages: 15,
            backlog_bytes: 16,
        };
        assert_eq!(
            LeaseResponse::decode(leased_response.encode()),
            Ok(leased_response)
        );
        let settle = SettleRequest {
            items: vec![
                SettleItem {
                    seq: 1,
                    token: 2,
                    settlement: Settlement::Ack,
                },
                SettleItem {
                    seq: 3,
                    token: 4,
                    settlement: Settlement::Retry { delay_ms: 5 },
                },
            ],
            max_attempts: 6,
            has_dead_letter_queue: false,
        };
        assert_eq!(SettleRequest::decode(settle.encode()), Ok(settle));
        let settled = SettleResponse {
            acked: 1,
            retried: 2,
            stale: 3,
            exhausted: vec![leased(9)],
            dropped: 4,
        };
        assert_eq!(SettleResponse::decode(settled.encode()), Ok(settled));
        let forget = ForgetRequest { seqs: vec![1, 2] };
        assert_eq!(ForgetRequest::decode(forget.encode()), Ok(forget));
        let recover = RecoverResponse {
            released: 3,
            held: vec![leased(4)],
        };
        assert_eq!(RecoverResponse::decode(recover.encode()), Ok(recover));
        let stats = PartitionStats {
            oldest_timestamp_ms: Some(1),
            acked: 2,
            ..PartitionStats::default()
        };
        assert_eq!(PartitionStats::decode(stats.encode()), Ok(stats));
    }
}
