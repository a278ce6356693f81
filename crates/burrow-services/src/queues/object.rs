//! The `__burrow_queue` system class: one object per queue partition, holding its messages in
//! SQLite and answering the RPCs of [`super::protocol`].
//!
//! # Storage
//! One row per message in `messages`: the serialized body and content type, id and timestamp,
//! `attempts`, `visible_at` (when it may be leased), `state` and `lease`. The index on
//! `visible_at` makes "the oldest visible messages" a range scan. Push leases live in memory
//! ([`super::leases`]): leasing a push batch writes nothing, and `attempts` counts the deliveries
//! that ended in a retry. A pull lease is written down (the client may outlive this process): the
//! row gets `state` 2, the lease token, `visible_at` = the lease's expiry and `attempts` + 1, so
//! an expired pull lease is visible again with no sweep. Messages held for the dead-letter queue
//! get `visible_at` = `i64::MAX`. Counters that must survive restarts (acked, retried,
//! dead-lettered, dropped, expired) live in `stats`.
//!
//! # Why a send is durable when acknowledged, and nothing partial is stored
//! Each RPC runs synchronously in one turn of the object, so all its writes commit as one unit,
//! and the runtime's output gate holds the result until that commit is durable. `enqueue` wraps
//! its inserts in one transaction: a failing insert rolls back the whole call, and the caller
//! gets an error for every group. A group that would cross the backlog bound is refused before
//! anything of it is written.
//!
//! # Retention
//! The object's alarm fires at the oldest message's timestamp plus the retention period and
//! deletes what is older; a queue nobody consumes still sheds its expired messages.

use super::leases::PushLeases;
use super::message::{Body, ContentType};
use super::protocol::{
    Bounds, EnqueueRequest, EnqueueResponse, ForgetRequest, LeaseKind, LeaseRequest, LeaseResponse,
    LeasedMessage, NewMessage, PartitionStats, RecoverRequest, RecoverResponse, SettleRequest,
    SettleResponse, Settlement, method,
};
use super::wire::WireError;
use burrow_runtime::ObjectContext;
use burrow_runtime::clock::LocalBoxFuture;
use burrow_runtime::guest::{
    AlarmInfo, ObjectClass, ObjectError, ObjectInstance, Request, Response,
};
use burrow_storage::database::{Database, Error as DbError};
use burrow_storage::sql::Value;
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use tokio::sync::Notify;

/// The system class name of queue partitions.
pub const CLASS_NAME: &str = "__burrow_queue";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages(
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  body BLOB NOT NULL,
  content_type INTEGER NOT NULL,
  timestamp_ms INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  prior_attempts INTEGER NOT NULL,
  visible_at INTEGER NOT NULL,
  state INTEGER NOT NULL,
  lease INTEGER
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages(visible_at);
CREATE TABLE IF NOT EXISTS stats(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  acked INTEGER NOT NULL DEFAULT 0,
  retried INTEGER NOT NULL DEFAULT 0,
  dead_lettered INTEGER NOT NULL DEFAULT 0,
  dropped INTEGER NOT NULL DEFAULT 0,
  expired INTEGER NOT NULL DEFAULT 0,
  retention_ms INTEGER NOT NULL DEFAULT 345600000
);
INSERT OR IGNORE INTO stats(id) VALUES (1);";

/// `state` values: ready (or push-leased: those leases live in memory), pull-leased, held for
/// the dead-letter queue.
const READY: i64 = 0;
const PULL_LEASED: i64 = 2;
const HELD: i64 = 3;
/// `visible_at` of a message held for the dead-letter queue: never visible.
const NEVER: i64 = i64::MAX;

const INSERT: &str = "INSERT INTO messages(seq, id, body, content_type, timestamp_ms, attempts, prior_attempts, visible_at, state, lease) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, 0, NULL)";
/// Visible rows after the push cursor `(?2, ?3)` (see [`super::leases`]).
const VISIBLE_TIMES: &str = "SELECT visible_at FROM messages WHERE visible_at <= ?1 AND (visible_at, seq) > (?2, ?3) ORDER BY visible_at, seq LIMIT ?4";
const NEXT_VISIBLE: &str = "SELECT visible_at FROM messages WHERE visible_at > ?1 AND visible_at < ?2 ORDER BY visible_at LIMIT 1";
const PUSH_LEASE: &str = "SELECT seq, id, body, content_type, timestamp_ms, attempts, prior_attempts, visible_at FROM messages WHERE visible_at <= ?1 AND (visible_at, seq) > (?2, ?3) ORDER BY visible_at, seq LIMIT ?4";
const PULL_LEASE: &str = "UPDATE messages SET state = 2, lease = ?1, visible_at = ?2, attempts = attempts + 1 WHERE seq IN (SELECT seq FROM messages WHERE visible_at <= ?3 AND (visible_at, seq) > (?4, ?5) ORDER BY visible_at, seq LIMIT ?6) RETURNING seq, id, body, content_type, timestamp_ms, attempts, prior_attempts";
const PULL_ACK: &str =
    "DELETE FROM messages WHERE seq = ?1 AND lease = ?2 AND state = 2 RETURNING length(body)";
const PULL_RETRY: &str = "UPDATE messages SET seq = ?5, state = 0, lease = NULL, visible_at = ?1 WHERE seq = ?2 AND lease = ?3 AND state = 2 AND attempts < ?4 RETURNING seq";
const IS_PULL_LEASED: &str = "SELECT seq FROM messages WHERE seq = ?1 AND lease = ?2 AND state = 2";
const PUSH_RETRY: &str = "UPDATE messages SET seq = ?4, visible_at = ?1, attempts = ?2 WHERE seq = ?3 AND state = 0 RETURNING seq";
const HOLD: &str = "UPDATE messages SET state = 3, lease = NULL, visible_at = ?1 WHERE seq = ?2 RETURNING seq, id, body, content_type, timestamp_ms, attempts, prior_attempts";
const DELETE: &str = "DELETE FROM messages WHERE seq = ?1 RETURNING length(body)";
const FORGET: &str = "DELETE FROM messages WHERE seq = ?1 AND state = 3 RETURNING length(body)";

/// The class: builds partition objects.
#[derive(Debug, Default)]
pub struct QueueClass;

impl ObjectClass for QueueClass {
    fn construct(&self, ctx: ObjectContext) -> Result<Rc<dyn ObjectInstance>, ObjectError> {
        let (backlog_messages, backlog_bytes, retention_ms, next_seq) =
            ctx.storage().with(|db| {
                db.exec(SCHEMA, &[])?;
                let backlog = db.exec(
                    "SELECT count(*), total(length(body)), coalesce(max(seq), 0) + 1 FROM messages",
                    &[],
                )?;
                let retention = db.exec("SELECT retention_ms FROM stats WHERE id = 1", &[])?;
                Ok((
                    int(&backlog.rows[0][0]) as u64,
                    int(&backlog.rows[0][1]) as u64,
                    retention.rows.first().map_or(0, |row| int(&row[0])),
                    int(&backlog.rows[0][2]),
                ))
            })?;
        Ok(Rc::new(QueueObject {
            ctx,
            backlog_messages: Cell::new(backlog_messages),
            backlog_bytes: Cell::new(backlog_bytes),
            retention_ms: Cell::new(retention_ms),
            alarm_checked: Cell::new(false),
            next_seq: Cell::new(next_seq),
            rng: RefCell::new(SmallRng::from_os_rng()),
            push: Rc::new(RefCell::new(PushLeases::default())),
            keep_alive: Rc::new(KeepAlive::default()),
        }))
    }
}

struct QueueObject {
    ctx: ObjectContext,
    /// Every row (held ones included): what the backlog bound counts.
    backlog_messages: Cell<u64>,
    backlog_bytes: Cell<u64>,
    retention_ms: Cell<i64>,
    /// Whether this activation made sure an alarm is set for retention.
    alarm_checked: Cell<bool>,
    /// The next `seq`: it only grows while this instance lives (see `super::leases`).
    next_seq: Cell<i64>,
    rng: RefCell<SmallRng>,
    push: Rc<RefCell<PushLeases>>,
    keep_alive: Rc<KeepAlive>,
}

/// Keeps the object alive (a `wait_until`) while push leases are outstanding.
#[derive(Default)]
struct KeepAlive {
    running: Cell<bool>,
    settled: Notify,
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Integer(integer) => *integer,
        Value::Real(real) => *real as i64,
        _ => 0,
    }
}

fn wire(error: WireError) -> ObjectError {
    ObjectError::internal(error.to_string())
}

/// Reads `seq, id, body, content_type, timestamp_ms, attempts, prior_attempts`.
fn leased_row(row: &[Value]) -> LeasedMessage {
    let body = match &row[2] {
        Value::Blob(bytes) => Bytes::from(bytes.clone()),
        Value::Text(text) => Bytes::from(text.clone().into_bytes()),
        _ => Bytes::new(),
    };
    let content_type = ContentType::from_code(int(&row[3])).unwrap_or(ContentType::V8);
    LeasedMessage {
        seq: int(&row[0]),
        id: match &row[1] {
            Value::Text(text) => text.clone(),
            _ => String::new(),
        },
        body: Body::new(content_type, body),
        timestamp_ms: int(&row[4]),
        attempts: int(&row[5]) as u32,
        prior_attempts: int(&row[6]) as u32,
    }
}

fn new_id(rng: &mut SmallRng) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits: u128 = rng.random();
    let mut id = String::with_capacity(32);
    for shift in (0..32).rev() {
        id.push(HEX[((bits >> (shift * 4)) & 0xf) as usize] as char);
    }
    id
}

impl QueueObject {
    fn now(&self) -> i64 {
        self.ctx.now_ms()
    }

    fn db<R>(&self, f: impl FnOnce(&mut Database) -> Result<R, DbError>) -> Result<R, ObjectError> {
        self.ctx.storage().with(f)
    }

    fn forget_bytes(&self, messages: u64, bytes: u64) {
        self.backlog_messages
            .set(self.backlog_messages.get().saturating_sub(messages));
        self.backlog_bytes
            .set(self.backlog_bytes.get().saturating_sub(bytes));
    }

    fn add_counter(db: &mut Database, column: &str, by: u64) -> Result<(), DbError> {
        if by > 0 {
            db.exec(
                &format!("UPDATE stats SET {column} = {column} + ?1 WHERE id = 1"),
                &[Value::Integer(by as i64)],
            )?;
        }
        Ok(())
    }

    fn run(&self, method: &str, args: Bytes) -> Result<Bytes, ObjectError> {
        match method {
            method::ENQUEUE => {
                let request = EnqueueRequest::decode(args).map_err(wire)?;
                Ok(self.enqueue(request)?.encode())
            }
            method::LEASE => {
                let request = LeaseRequest::decode(args).map_err(wire)?;
                Ok(self.lease(request)?.encode())
            }
            method::SETTLE => {
                let request = SettleRequest::decode(args).map_err(wire)?;
                Ok(self.settle(request)?.encode())
            }
            method::FORGET => {
                let request = ForgetRequest::decode(args).map_err(wire)?;
                self.forget(&request)?;
                Ok(Bytes::new())
            }
            method::RECOVER => {
                let request = RecoverRequest::decode(args).map_err(wire)?;
                Ok(self.recover(request)?.encode())
            }
            method::STATS => Ok(self.stats()?.encode()),
            method::PURGE => {
                self.purge()?;
                Ok(Bytes::new())
            }
            other => Err(ObjectError::internal(format!(
                "queue partition has no method {other:?}"
            ))),
        }
    }

    fn enqueue(&self, request: EnqueueRequest) -> Result<EnqueueResponse, ObjectError> {
        let now = self.now();
        let Bounds {
            retention_ms,
            max_backlog_messages,
            max_backlog_bytes,
        } = request.bounds;
        let mut stored = Vec::with_capacity(request.groups.len());
        let mut settled = Vec::with_capacity(request.settles.len());
        let mut rng = self.rng.borrow_mut();
        let (messages, bytes) = self.db(|db| {
            // One transaction for the call: an insert that fails leaves nothing of it behind.
            db.transaction(|db| {
                // Settlements first: acks make room for the groups below.
                for settle in &request.settles {
                    settled.push(self.settle_in(db, settle, now)?);
                }
                let mut messages = self.backlog_messages.get();
                let mut bytes = self.backlog_bytes.get();
                if retention_ms != self.retention_ms.get() {
                    db.exec(
                        "UPDATE stats SET retention_ms = ?1 WHERE id = 1",
                        &[Value::Integer(retention_ms)],
                    )?;
                }
                for group in &request.groups {
                    let group_bytes: u64 = group.iter().map(|m| m.body.len() as u64).sum();
                    if messages + group.len() as u64 > max_backlog_messages
                        || bytes + group_bytes > max_backlog_bytes
                    {
                        stored.push(false);
                        continue;
                    }
                    for message in group {
                        let seq = self.take_seq();
                        Self::insert(db, seq, message, now, &mut rng)?;
                    }
                    messages += group.len() as u64;
                    bytes += group_bytes;
                    stored.push(true);
                }
                Ok::<(u64, u64), DbError>((messages, bytes))
            })
        })?;
        drop(rng);
        if !request.settles.is_empty() && self.push.borrow().is_empty() {
            self.keep_alive.settled.notify_one();
        }
        self.retention_ms.set(retention_ms);
        self.backlog_messages.set(messages);
        self.backlog_bytes.set(bytes);
        if !self.alarm_checked.get() && stored.iter().any(|s| *s) {
            let storage = self.ctx.storage();
            if storage.get_alarm()?.is_none() {
                storage.set_alarm(now + retention_ms)?;
            }
            self.alarm_checked.set(true);
        }
        Ok(EnqueueResponse {
            stored,
            backlog_messages: messages,
            backlog_bytes: bytes,
            settled,
        })
    }

    fn take_seq(&self) -> i64 {
        let seq = self.next_seq.get();
        self.next_seq.set(seq + 1);
        seq
    }

    fn insert(
        db: &mut Database,
        seq: i64,
        message: &NewMessage,
        now: i64,
        rng: &mut SmallRng,
    ) -> Result<(), DbError> {
        let id = match &message.id {
            Some(id) => id.clone(),
            None => new_id(rng),
        };
        db.exec(
            INSERT,
            &[
                Value::Integer(seq),
                Value::Text(id),
                Value::Blob(message.body.as_bytes().to_vec()),
                Value::Integer(i64::from(message.body.content_type().code())),
                Value::Integer(message.timestamp_ms.unwrap_or(now)),
                Value::Integer(i64::from(message.prior_attempts)),
                Value::Integer(now.saturating_add(message.delay_ms.max(0))),
            ],
        )?;
        Ok(())
    }

    fn lease(&self, request: LeaseRequest) -> Result<LeaseResponse, ObjectError> {
        let now = self.now();
        let limit = Value::Integer(i64::from(request.max_messages.max(1)));
        let (cursor_at, cursor_seq) = self.push.borrow_mut().start(now);
        let cursor = [Value::Integer(cursor_at), Value::Integer(cursor_seq)];
        let not_ready = |next_check_ms| LeaseResponse {
            token: 0,
            messages: Vec::new(),
            exhausted: Vec::new(),
            next_check_ms,
            backlog_messages: self.backlog_messages.get(),
            backlog_bytes: self.backlog_bytes.get(),
        };
        if let Some(timeout_ms) = request.batch_timeout_ms {
            // Push batching: only a full batch, or one whose oldest message waited long enough.
            let (visible, next) = self.db(|db| {
                let visible = db.exec(
                    VISIBLE_TIMES,
                    &[
                        Value::Integer(now),
                        cursor[0].clone(),
                        cursor[1].clone(),
                        limit.clone(),
                    ],
                )?;
                let next = db.exec(NEXT_VISIBLE, &[Value::Integer(now), Value::Integer(NEVER)])?;
                Ok((
                    visible.rows.iter().map(|r| int(&r[0])).collect::<Vec<_>>(),
                    next.rows.first().map(|r| int(&r[0])),
                ))
            })?;
            let full = visible.len() >= request.max_messages.max(1) as usize;
            let waited = visible
                .first()
                .is_some_and(|oldest| oldest.saturating_add(timeout_ms) <= now);
            if !full && !waited {
                let timeout_at = visible.first().map(|oldest| oldest + timeout_ms);
                let next_check = match (timeout_at, next) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                return Ok(not_ready(next_check));
            }
        }
        let token = self.rng.borrow_mut().random::<u64>() >> 1;
        let until = now.saturating_add(request.visibility_ms.max(1));
        let mut response = self.db(|db| {
            let mut messages = match request.kind {
                LeaseKind::Push => {
                    // A read: push leases live in memory (see `super::leases`).
                    let rows = db.exec(
                        PUSH_LEASE,
                        &[
                            Value::Integer(now),
                            cursor[0].clone(),
                            cursor[1].clone(),
                            limit,
                        ],
                    )?;
                    let keys: Vec<(i64, i64, u32)> = rows
                        .rows
                        .iter()
                        .map(|r| (int(&r[0]), int(&r[7]), int(&r[5]) as u32))
                        .collect();
                    self.push.borrow_mut().record(token, until, &keys);
                    let mut messages: Vec<LeasedMessage> =
                        rows.rows.iter().map(|r| leased_row(r)).collect();
                    for message in &mut messages {
                        message.attempts += 1;
                    }
                    messages
                }
                LeaseKind::Pull => {
                    let rows = db.exec(
                        PULL_LEASE,
                        &[
                            Value::Integer(token as i64),
                            Value::Integer(until),
                            Value::Integer(now),
                            cursor[0].clone(),
                            cursor[1].clone(),
                            limit,
                        ],
                    )?;
                    let mut messages: Vec<LeasedMessage> =
                        rows.rows.iter().map(|r| leased_row(r)).collect();
                    messages.sort_unstable_by_key(|m| m.seq);
                    messages
                }
            };
            // Past the last attempt already (an expired pull lease, or max_retries lowered):
            // exhausted, not delivered again.
            let mut response = LeaseResponse {
                token,
                messages: Vec::new(),
                exhausted: Vec::new(),
                next_check_ms: None,
                backlog_messages: 0,
                backlog_bytes: 0,
            };
            let mut dropped = 0;
            for message in messages.drain(..) {
                if message.attempts <= request.max_attempts {
                    response.messages.push(message);
                    continue;
                }
                if request.kind == LeaseKind::Push {
                    self.push.borrow_mut().take(message.seq, token);
                }
                match self.exhaust(db, message.seq, request.has_dead_letter_queue)? {
                    Some(mut held) => {
                        held.attempts = message.attempts - 1;
                        response.exhausted.push(held);
                    }
                    None => dropped += 1,
                }
            }
            Self::add_counter(db, "dropped", dropped)?;
            Ok(response)
        })?;
        if request.kind == LeaseKind::Push && !self.push.borrow().is_empty() {
            self.keep_alive();
        }
        response.backlog_messages = self.backlog_messages.get();
        response.backlog_bytes = self.backlog_bytes.get();
        Ok(response)
    }

    /// Keeps the object from hibernating until every push lease is settled.
    fn keep_alive(&self) {
        if self.keep_alive.running.replace(true) {
            return;
        }
        let push = self.push.clone();
        let keep_alive = self.keep_alive.clone();
        self.ctx.wait_until(async move {
            while !push.borrow().is_empty() {
                keep_alive.settled.notified().await;
            }
            keep_alive.running.set(false);
        });
    }

    /// Holds a message for the dead-letter queue (returned), or deletes it without one.
    fn exhaust(
        &self,
        db: &mut Database,
        seq: i64,
        has_dead_letter_queue: bool,
    ) -> Result<Option<LeasedMessage>, DbError> {
        if has_dead_letter_queue {
            let rows = db.exec(HOLD, &[Value::Integer(NEVER), Value::Integer(seq)])?;
            Ok(rows.rows.first().map(|r| leased_row(r)))
        } else {
            let rows = db.exec(DELETE, &[Value::Integer(seq)])?;
            if let Some(row) = rows.rows.first() {
                self.forget_bytes(1, int(&row[0]) as u64);
            }
            Ok(None)
        }
    }

    fn settle(&self, request: SettleRequest) -> Result<SettleResponse, ObjectError> {
        let now = self.now();
        let response = self.db(|db| self.settle_in(db, &request, now))?;
        if self.push.borrow().is_empty() {
            self.keep_alive.settled.notify_one();
        }
        Ok(response)
    }

    /// Acks delete, retries make the message visible again after their delay, and a retry on
    /// the last attempt exhausts the message. Within the caller's turn.
    fn settle_in(
        &self,
        db: &mut Database,
        request: &SettleRequest,
        now: i64,
    ) -> Result<SettleResponse, DbError> {
        let mut response = SettleResponse {
            acked: 0,
            retried: 0,
            stale: 0,
            exhausted: Vec::new(),
            dropped: 0,
        };
        {
            for item in &request.items {
                let seq = Value::Integer(item.seq);
                let push = self.push.borrow_mut().take(item.seq, item.token);
                match (item.settlement, push) {
                    (Settlement::Ack, Some(_)) => match db.exec(DELETE, &[seq])?.rows.first() {
                        Some(row) => {
                            self.forget_bytes(1, int(&row[0]) as u64);
                            response.acked += 1;
                        }
                        // Expired by retention while it was being handled.
                        None => response.stale += 1,
                    },
                    (Settlement::Retry { delay_ms }, Some(lease)) => {
                        let attempts = lease.attempts + 1;
                        if attempts >= request.max_attempts {
                            match self.exhaust(db, item.seq, request.has_dead_letter_queue)? {
                                Some(mut held) => {
                                    held.attempts = attempts;
                                    response.exhausted.push(held);
                                }
                                None => response.dropped += 1,
                            }
                            continue;
                        }
                        let rows = db.exec(
                            PUSH_RETRY,
                            &[
                                Value::Integer(now.saturating_add(delay_ms.max(0))),
                                Value::Integer(i64::from(attempts)),
                                seq,
                                Value::Integer(self.take_seq()),
                            ],
                        )?;
                        if rows.rows.is_empty() {
                            response.stale += 1;
                        } else {
                            response.retried += 1;
                        }
                    }
                    (Settlement::Ack, None) => {
                        let token = Value::Integer(item.token as i64);
                        match db.exec(PULL_ACK, &[seq, token])?.rows.first() {
                            Some(row) => {
                                self.forget_bytes(1, int(&row[0]) as u64);
                                response.acked += 1;
                            }
                            None => response.stale += 1,
                        }
                    }
                    (Settlement::Retry { delay_ms }, None) => {
                        let token = Value::Integer(item.token as i64);
                        let visible_at = Value::Integer(now.saturating_add(delay_ms.max(0)));
                        let max = Value::Integer(i64::from(request.max_attempts));
                        let new_seq = Value::Integer(self.take_seq());
                        let rows = db.exec(
                            PULL_RETRY,
                            &[visible_at, seq.clone(), token.clone(), max, new_seq],
                        )?;
                        if !rows.rows.is_empty() {
                            response.retried += 1;
                        } else if db.exec(IS_PULL_LEASED, &[seq, token])?.rows.is_empty() {
                            response.stale += 1;
                        } else {
                            match self.exhaust(db, item.seq, request.has_dead_letter_queue)? {
                                Some(held) => response.exhausted.push(held),
                                None => response.dropped += 1,
                            }
                        }
                    }
                }
            }
            Self::add_counter(db, "acked", u64::from(response.acked))?;
            Self::add_counter(db, "retried", u64::from(response.retried))?;
            Self::add_counter(db, "dropped", u64::from(response.dropped))?;
        }
        Ok(response)
    }

    fn forget(&self, request: &ForgetRequest) -> Result<(), ObjectError> {
        self.db(|db| {
            let mut forgotten = 0;
            for seq in &request.seqs {
                let rows = db.exec(FORGET, &[Value::Integer(*seq)])?;
                if let Some(row) = rows.rows.first() {
                    self.forget_bytes(1, int(&row[0]) as u64);
                    forgotten += 1;
                }
            }
            Self::add_counter(db, "dead_lettered", forgotten)
        })
    }

    fn recover(&self, request: RecoverRequest) -> Result<RecoverResponse, ObjectError> {
        // The dispatcher asking is the queue's only push consumer: leases of an earlier one are
        // void, and their messages visible again.
        let released = {
            let mut push = self.push.borrow_mut();
            let released = push.len() as u32;
            push.clear();
            released
        };
        self.keep_alive.settled.notify_one();
        self.db(|db| {
            let held = db.exec(
                "SELECT seq, id, body, content_type, timestamp_ms, attempts, prior_attempts FROM messages WHERE state = ?1 ORDER BY seq",
                &[Value::Integer(HELD)],
            )?;
            let mut held: Vec<LeasedMessage> = held.rows.iter().map(|r| leased_row(r)).collect();
            if !request.has_dead_letter_queue && !held.is_empty() {
                for message in &held {
                    let rows = db.exec(DELETE, &[Value::Integer(message.seq)])?;
                    if let Some(row) = rows.rows.first() {
                        self.forget_bytes(1, int(&row[0]) as u64);
                    }
                }
                Self::add_counter(db, "dropped", held.len() as u64)?;
                held.clear();
            }
            Ok(RecoverResponse { released, held })
        })
    }

    fn stats(&self) -> Result<PartitionStats, ObjectError> {
        let now = Value::Integer(self.now());
        self.db(|db| {
            let backlog = db.exec(
                "SELECT count(*), total(length(body)), total(state = ?2 AND visible_at > ?1), total(state = ?3 AND visible_at > ?1), total(state = ?4), min(timestamp_ms) FROM messages",
                &[
                    now,
                    Value::Integer(PULL_LEASED),
                    Value::Integer(READY),
                    Value::Integer(HELD),
                ],
            )?;
            let row = &backlog.rows[0];
            let counters = db.exec(
                "SELECT acked, retried, dead_lettered, dropped, expired FROM stats WHERE id = 1",
                &[],
            )?;
            let counter = |i: usize| counters.rows.first().map_or(0, |r| int(&r[i]) as u64);
            Ok(PartitionStats {
                backlog_messages: int(&row[0]) as u64,
                backlog_bytes: int(&row[1]) as u64,
                in_flight: int(&row[2]) as u64 + self.push.borrow().len() as u64,
                delayed: int(&row[3]) as u64,
                held_for_dead_letter: int(&row[4]) as u64,
                acked: counter(0),
                retried: counter(1),
                dead_lettered: counter(2),
                dropped: counter(3),
                expired: counter(4),
                oldest_timestamp_ms: match row[5] {
                    Value::Null => None,
                    ref value => Some(int(value)),
                },
            })
        })
    }

    fn purge(&self) -> Result<(), ObjectError> {
        self.db(|db| db.exec("DELETE FROM messages", &[]).map(drop))?;
        self.backlog_messages.set(0);
        self.backlog_bytes.set(0);
        Ok(())
    }

    /// Retention: deletes expired messages and sets the alarm for the next one to expire.
    fn expire(&self) -> Result<(), ObjectError> {
        let now = self.now();
        let retention_ms = self.retention_ms.get();
        let next = self.db(|db| {
            let expired = db.exec(
                "DELETE FROM messages WHERE timestamp_ms <= ?1 RETURNING length(body)",
                &[Value::Integer(now.saturating_sub(retention_ms))],
            )?;
            let bytes: u64 = expired.rows.iter().map(|r| int(&r[0]) as u64).sum();
            self.forget_bytes(expired.rows.len() as u64, bytes);
            Self::add_counter(db, "expired", expired.rows.len() as u64)?;
            let oldest = db.exec("SELECT min(timestamp_ms) FROM messages", &[])?;
            Ok(match oldest.rows[0][0] {
                Value::Null => None,
                ref value => Some(int(value)),
            })
        })?;
        if !expired_count_is_consistent(self.backlog_messages.get(), next) {
            tracing::warn!("queue partition backlog count drifted; recounting");
            let count = self.db(|db| {
                Ok(int(&db.exec("SELECT count(*) FROM messages", &[])?.rows[0][0]) as u64)
            })?;
            self.backlog_messages.set(count);
        }
        match next {
            Some(oldest) => self
                .ctx
                .storage()
                .set_alarm(oldest.saturating_add(retention_ms).max(now + 1))?,
            None => self.alarm_checked.set(false),
        }
        Ok(())
    }
}

/// An empty partition must count zero messages.
fn expired_count_is_consistent(backlog_messages: u64, oldest: Option<i64>) -> bool {
    oldest.is_some() || backlog_messages == 0
}

impl ObjectInstance for QueueObject {
    fn fetch(
        self: Rc<Self>,
        _request: Request,
    ) -> LocalBoxFuture<'static, Result<Response, ObjectError>> {
        Box::pin(std::future::ready(Err(ObjectError::internal(
            "queue partitions have no fetch handler",
        ))))
    }

    fn call(
        self: Rc<Self>,
        method: String,
        args: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, ObjectError>> {
        // Synchronous on purpose: the whole call is one turn, so it commits atomically.
        let result = self.run(&method, args);
        Box::pin(std::future::ready(result))
    }

    fn alarm(self: Rc<Self>, _info: AlarmInfo) -> LocalBoxFuture<'static, Result<(), ObjectError>> {
        let result = self.expire();
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_32_hex_characters() {
        let mut rng = SmallRng::seed_from_u64(1);
        let a = new_id(&mut rng);
        let b = new_id(&mut rng);
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}
