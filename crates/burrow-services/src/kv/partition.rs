//! One KV partition: the system Durable Object class `__burrow_kv` that keeps a slice of one
//! namespace's keys in its SQLite database, and expires them with its alarm.
//!
//! # Tables
//! ```sql
//! kv_entries(key TEXT PRIMARY KEY, value BLOB NOT NULL, chunks INTEGER NOT NULL,
//!            version INTEGER NOT NULL, expiration INTEGER, metadata TEXT) WITHOUT ROWID
//! kv_entries_expiration ON kv_entries(expiration) WHERE expiration IS NOT NULL
//! kv_chunks(key TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY(key, seq))
//! ```
//! A value of at most [`INLINE_MAX_BYTES`] lives in its entry row (`chunks` = 0). A larger one is
//! split into [`CHUNK_BYTES`] rows of `kv_chunks`, written in one transaction with its entry
//! (`value` empty, `chunks` = how many), because SQLite rows on an object's connection are
//! limited to 2 MB. `version` identifies one write of a chunked value, so a streaming read can
//! tell that the value changed under it. `expiration` is in epoch seconds; `metadata` is the
//! JSON text the client sent.
//!
//! # Expiry
//! An entry whose `expiration` ≤ now (in seconds) is never returned: every read filters on the
//! runtime clock. Deleting it is the alarm's job: a put with an expiration moves the alarm to
//! that time if it is sooner; the alarm deletes up to [`EXPIRE_BATCH`] expired entries found
//! through the partial index (never a full scan), then sets itself to the next expiration.
//! A bigger backlog is worked off in several alarm runs, one batch each, so no run is unbounded.

use std::cell::Cell;
use std::rc::Rc;

use burrow_runtime::clock::LocalBoxFuture;
use burrow_runtime::guest::{
    AlarmInfo, ObjectClass, ObjectError, ObjectInstance, Request, Response,
};
use burrow_runtime::{ObjectContext, Storage};
use burrow_storage::database::Database;
use burrow_storage::sql::Value;
use bytes::Bytes;

use super::error::{self, Error, Method};
use super::wire::{
    self, DeleteRequest, Empty, FoundEntry, GetChunkRequest, GetManyRequest, GetManyResponse,
    GetRequest, GetResponse, ListRequest, ListResponse, ListedKey, PutRequest, StatsResponse,
};

/// The system class's name.
pub const CLASS_NAME: &str = "__burrow_kv";
/// The largest value kept inline in its entry row.
pub const INLINE_MAX_BYTES: usize = 64 * 1024;
/// The size of each chunk of a larger value (well under the 2 MB row limit, key included).
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// The most expired entries one alarm run deletes.
pub const EXPIRE_BATCH: i64 = 1000;

const SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS kv_entries(key TEXT PRIMARY KEY, value BLOB NOT NULL, \
chunks INTEGER NOT NULL, version INTEGER NOT NULL, expiration INTEGER, metadata TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_entries_expiration ON kv_entries(expiration) \
WHERE expiration IS NOT NULL;
CREATE TABLE IF NOT EXISTS kv_chunks(key TEXT NOT NULL, seq INTEGER NOT NULL, \
data BLOB NOT NULL, PRIMARY KEY(key, seq))";
const SELECT_ENTRY: &str =
    "SELECT value, chunks, version, expiration, metadata FROM kv_entries WHERE key = ?1";
const SELECT_CHUNKS: &str = "SELECT data FROM kv_chunks WHERE key = ?1 ORDER BY seq";
const SELECT_CHUNK: &str = "SELECT data FROM kv_chunks WHERE key = ?1 AND seq = ?2";
const UPSERT_ENTRY: &str = "INSERT OR REPLACE INTO kv_entries(key, value, chunks, version, \
expiration, metadata) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const INSERT_CHUNK: &str = "INSERT INTO kv_chunks(key, seq, data) VALUES (?1, ?2, ?3)";
const DELETE_ENTRY: &str = "DELETE FROM kv_entries WHERE key = ?1";
const DELETE_CHUNKS: &str = "DELETE FROM kv_chunks WHERE key = ?1";
const ANY_CHUNK: &str = "SELECT 1 FROM kv_chunks LIMIT 1";
const LIST_BOUNDED: &str = "SELECT key, expiration, metadata FROM kv_entries \
WHERE key >= ?1 AND key < ?2 AND (expiration IS NULL OR expiration > ?3) ORDER BY key LIMIT ?4";
const LIST_UNBOUNDED: &str = "SELECT key, expiration, metadata FROM kv_entries \
WHERE key >= ?1 AND (expiration IS NULL OR expiration > ?2) ORDER BY key LIMIT ?3";
const SELECT_EXPIRED: &str = "SELECT key, chunks FROM kv_entries \
WHERE expiration IS NOT NULL AND expiration <= ?1 ORDER BY expiration LIMIT ?2";
const COUNT_ROWS: &str =
    "SELECT (SELECT count(*) FROM kv_entries), (SELECT count(*) FROM kv_chunks)";
const NEXT_EXPIRATION: &str = "SELECT expiration FROM kv_entries \
WHERE expiration IS NOT NULL ORDER BY expiration LIMIT 1";

/// The `__burrow_kv` class.
#[derive(Debug, Default)]
pub struct PartitionClass;

impl ObjectClass for PartitionClass {
    fn construct(&self, ctx: ObjectContext) -> Result<Rc<dyn ObjectInstance>, ObjectError> {
        Ok(Rc::new(Partition {
            ctx,
            ready: Cell::new(false),
            has_chunks: Cell::new(false),
            writes: Cell::new(0),
        }))
    }
}

/// A live partition.
struct Partition {
    ctx: ObjectContext,
    /// The tables exist (checked once per activation).
    ready: Cell<bool>,
    /// `kv_chunks` may hold rows, so overwrites and deletes must clear a key's chunks.
    has_chunks: Cell<bool>,
    /// Puts since activation; part of each chunked value's version.
    writes: Cell<u64>,
}

/// A row of `kv_entries`.
struct Entry {
    value: Vec<u8>,
    chunks: i64,
    version: i64,
    expiration: Option<i64>,
    metadata: Option<String>,
}

fn storage_error(error: ObjectError) -> ObjectError {
    if error.remote {
        // The storage layer marks its own failures as remote; to a KV caller they are platform
        // failures, not rejections of the call.
        ObjectError::internal(format!("KV storage failed: {}", error.message))
    } else {
        error
    }
}

fn rejected(error: Error) -> ObjectError {
    ObjectError::remote(error.to_string())
}

fn protocol(reason: String) -> ObjectError {
    ObjectError::internal(format!("malformed KV request: {reason}"))
}

fn text(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::Text(text)) => Some(text.clone()),
        _ => None,
    }
}

fn integer(value: Option<&Value>) -> Option<i64> {
    match value {
        Some(Value::Integer(n)) => Some(*n),
        _ => None,
    }
}

fn take_blob(value: Option<&mut Value>) -> Vec<u8> {
    match value {
        Some(Value::Blob(bytes)) => std::mem::take(bytes),
        Some(Value::Text(text)) => std::mem::take(text).into_bytes(),
        _ => Vec::new(),
    }
}

/// The smallest string after every string that starts with `prefix` (UTF-8 byte order), or
/// `None` when there is none (the prefix is all U+10FFFF).
pub(crate) fn first_key_after_prefix(prefix: &str) -> Option<String> {
    let mut key = prefix.trim_end_matches(char::MAX).to_owned();
    let last = key.pop()?;
    let next = match last {
        '\u{D7FF}' => '\u{E000}',
        other => char::from_u32(u32::from(other) + 1)?,
    };
    key.push(next);
    Some(key)
}

impl Partition {
    fn storage(&self) -> Storage {
        self.ctx.storage()
    }

    /// Creates the tables on first use and learns whether any value is chunked. Every method
    /// calls it first: what it learns decides how the method writes.
    fn prepare(&self) -> Result<(), ObjectError> {
        if !self.ready.get() {
            let has_chunks = self
                .storage()
                .with(|db| {
                    db.exec(SCHEMA, &[])?;
                    Ok(!db.exec(ANY_CHUNK, &[])?.rows.is_empty())
                })
                .map_err(storage_error)?;
            self.has_chunks.set(has_chunks);
            self.ready.set(true);
        }
        Ok(())
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut Database) -> Result<R, burrow_storage::database::Error>,
    ) -> Result<R, ObjectError> {
        self.prepare()?;
        self.storage().with(f).map_err(storage_error)
    }

    fn now_seconds(&self) -> i64 {
        self.ctx.now_ms().div_euclid(1000)
    }

    /// The live (not expired) entry of `key`, without its chunks.
    fn entry(&self, db: &mut Database, key: &str, now_seconds: i64) -> DbResult<Option<Entry>> {
        let mut rows = db.exec(SELECT_ENTRY, &[Value::Text(key.to_owned())])?.rows;
        let Some(row) = rows.first_mut() else {
            return Ok(None);
        };
        let expiration = integer(row.get(3));
        if expiration.is_some_and(|at| at <= now_seconds) {
            return Ok(None);
        }
        Ok(Some(Entry {
            value: take_blob(row.get_mut(0)),
            chunks: integer(row.get(1)).unwrap_or(0),
            version: integer(row.get(2)).unwrap_or(0),
            expiration,
            metadata: text(row.get(4)),
        }))
    }

    /// The whole value of an entry: inline, or its chunks concatenated.
    fn whole_value(db: &mut Database, key: &str, entry: &mut Entry) -> DbResult<Vec<u8>> {
        if entry.chunks == 0 {
            return Ok(std::mem::take(&mut entry.value));
        }
        let rows = db.exec(SELECT_CHUNKS, &[Value::Text(key.to_owned())])?.rows;
        let mut value = Vec::with_capacity(rows.len() * CHUNK_BYTES);
        for mut row in rows {
            value.extend_from_slice(&take_blob(row.get_mut(0)));
        }
        Ok(value)
    }

    fn get(&self, args: &Bytes) -> Result<Bytes, ObjectError> {
        let (request, _): (GetRequest, _) = wire::decode(args).map_err(protocol)?;
        error::check_key(Method::Get, &request.key).map_err(rejected)?;
        let now = self.now_seconds();
        let found = self.with(|db| {
            let Some(mut entry) = self.entry(db, &request.key, now)? else {
                return Ok(None);
            };
            // A streaming read takes the first chunk now and the others one call each.
            let (value, chunks) = if request.stream && entry.chunks > 0 {
                let first = db
                    .exec(
                        SELECT_CHUNK,
                        &[Value::Text(request.key.clone()), Value::Integer(0)],
                    )?
                    .rows
                    .first_mut()
                    .map(|row| take_blob(row.get_mut(0)))
                    .unwrap_or_default();
                (first, entry.chunks)
            } else {
                (Self::whole_value(db, &request.key, &mut entry)?, 0)
            };
            Ok(Some((entry, value, chunks)))
        })?;
        Ok(match found {
            None => wire::encode(&GetResponse::default(), &[]),
            Some((entry, value, chunks)) => wire::encode(
                &GetResponse {
                    found: true,
                    expiration: entry.expiration,
                    metadata: entry.metadata,
                    chunks: chunks as u32,
                    version: entry.version,
                },
                &[&value],
            ),
        })
    }

    fn get_chunk(&self, args: &Bytes) -> Result<Bytes, ObjectError> {
        let (request, _): (GetChunkRequest, _) = wire::decode(args).map_err(protocol)?;
        error::check_key(Method::Get, &request.key).map_err(rejected)?;
        let now = self.now_seconds();
        let chunk = self.with(|db| {
            match self.entry(db, &request.key, now)? {
                Some(entry) if entry.chunks > 0 && entry.version == request.version => {}
                _ => return Ok(None),
            }
            let mut rows = db
                .exec(
                    SELECT_CHUNK,
                    &[
                        Value::Text(request.key.clone()),
                        Value::Integer(i64::from(request.seq)),
                    ],
                )?
                .rows;
            Ok(rows.first_mut().map(|row| take_blob(row.get_mut(0))))
        })?;
        match chunk {
            Some(chunk) => Ok(wire::encode(&Empty {}, &[&chunk])),
            None => Err(rejected(Error::ValueChanged(request.key))),
        }
    }

    fn get_many(&self, args: &Bytes) -> Result<Bytes, ObjectError> {
        let (request, _): (GetManyRequest, _) = wire::decode(args).map_err(protocol)?;
        if request.keys.len() > error::MAX_BULK_KEYS {
            return Err(rejected(Error::TooManyBulkKeys));
        }
        for key in &request.keys {
            error::check_key(Method::GetBulk, key).map_err(rejected)?;
        }
        let now = self.now_seconds();
        let found = self.with(|db| {
            let mut found = Vec::new();
            let mut total = 0usize;
            for key in &request.keys {
                if let Some(mut entry) = self.entry(db, key, now)? {
                    let value = Self::whole_value(db, key, &mut entry)?;
                    total += value.len();
                    found.push((key.clone(), entry, value));
                    if total > error::MAX_BULK_BYTES {
                        break;
                    }
                }
            }
            Ok(found)
        })?;
        let total: usize = found.iter().map(|(_, _, value)| value.len()).sum();
        if total > error::MAX_BULK_BYTES {
            return Err(rejected(Error::BulkTooLarge));
        }
        let mut entries = Vec::with_capacity(found.len());
        let mut bodies = Vec::with_capacity(found.len());
        for (key, entry, value) in &found {
            entries.push(FoundEntry {
                key: key.clone(),
                length: value.len(),
                expiration: entry.expiration,
                metadata: entry.metadata.clone(),
            });
            bodies.push(value.as_slice());
        }
        Ok(wire::encode(&GetManyResponse { entries }, &bodies))
    }

    fn put(&self, args: &Bytes) -> Result<Bytes, ObjectError> {
        let (request, value): (PutRequest, _) = wire::decode(args).map_err(protocol)?;
        error::check_key(Method::Put, &request.key).map_err(rejected)?;
        error::check_value(&value).map_err(rejected)?;
        if let Some(metadata) = &request.metadata {
            error::check_metadata(metadata).map_err(rejected)?;
        }
        let writes = self.writes.get().wrapping_add(1);
        self.writes.set(writes);
        // Unique per write of this partition: the clock, and a counter for writes in one ms.
        let version = (self.ctx.now_ms() << 16) | (writes & 0xffff) as i64;
        let chunked = value.len() > INLINE_MAX_BYTES;
        let clear_chunks = self.has_chunks.get();
        let key = Value::Text(request.key.clone());
        let expiration = request.expiration.map_or(Value::Null, Value::Integer);
        let metadata = request.metadata.clone().map_or(Value::Null, Value::Text);
        self.with(|db| {
            // All of it or nothing: a failure halfway must not leave a torn value behind.
            db.transaction(|db| {
                if clear_chunks {
                    db.exec(DELETE_CHUNKS, std::slice::from_ref(&key))?;
                }
                if chunked {
                    let mut chunks = 0i64;
                    for (seq, chunk) in value.chunks(CHUNK_BYTES).enumerate() {
                        db.exec(
                            INSERT_CHUNK,
                            &[
                                key.clone(),
                                Value::Integer(seq as i64),
                                Value::Blob(chunk.to_vec()),
                            ],
                        )?;
                        chunks += 1;
                    }
                    db.exec(
                        UPSERT_ENTRY,
                        &[
                            key.clone(),
                            Value::Blob(Vec::new()),
                            Value::Integer(chunks),
                            Value::Integer(version),
                            expiration.clone(),
                            metadata.clone(),
                        ],
                    )?;
                } else {
                    db.exec(
                        UPSERT_ENTRY,
                        &[
                            key.clone(),
                            Value::Blob(value.to_vec()),
                            Value::Integer(0),
                            Value::Integer(0),
                            expiration.clone(),
                            metadata.clone(),
                        ],
                    )?;
                }
                Ok::<_, burrow_storage::database::Error>(())
            })
        })?;
        if chunked {
            self.has_chunks.set(true);
        }
        if let Some(at_seconds) = request.expiration {
            let at_ms = at_seconds.saturating_mul(1000);
            let storage = self.storage();
            match storage.get_alarm().map_err(storage_error)? {
                Some(alarm) if alarm <= at_ms => {}
                _ => storage.set_alarm(at_ms).map_err(storage_error)?,
            }
        }
        Ok(wire::encode(&Empty {}, &[]))
    }

    fn delete(&self, args: &Bytes) -> Result<Bytes, ObjectError> {
        let (request, _): (DeleteRequest, _) = wire::decode(args).map_err(protocol)?;
        error::check_key(Method::Delete, &request.key).map_err(rejected)?;
        let clear_chunks = self.has_chunks.get();
        let key = Value::Text(request.key);
        self.with(|db| {
            db.transaction(|db| {
                if clear_chunks {
                    db.exec(DELETE_CHUNKS, std::slice::from_ref(&key))?;
                }
                db.exec(DELETE_ENTRY, std::slice::from_ref(&key))?;
                Ok::<_, burrow_storage::database::Error>(())
            })
        })?;
        Ok(wire::encode(&Empty {}, &[]))
    }

    fn list(&self, args: &Bytes) -> Result<Bytes, ObjectError> {
        let (request, _): (ListRequest, _) = wire::decode(args).map_err(protocol)?;
        let limit = request.limit.clamp(1, error::MAX_LIST_LIMIT + 1) as i64;
        let prefix = request.prefix.unwrap_or_default();
        // The first key to include: the prefix itself, or the smallest key after the cursor.
        let mut start = prefix.clone();
        if let Some(after) = request.after {
            let after_cursor = format!("{after}\0");
            if after_cursor > start {
                start = after_cursor;
            }
        }
        let end = if prefix.is_empty() {
            None
        } else {
            first_key_after_prefix(&prefix)
        };
        if end.as_ref().is_some_and(|end| *end <= start) {
            return Ok(wire::encode(&ListResponse::default(), &[]));
        }
        let now = Value::Integer(self.now_seconds());
        let rows = self.with(|db| {
            let cursor = match end {
                Some(end) => db.exec(
                    LIST_BOUNDED,
                    &[
                        Value::Text(start),
                        Value::Text(end),
                        now,
                        Value::Integer(limit),
                    ],
                )?,
                None => db.exec(
                    LIST_UNBOUNDED,
                    &[Value::Text(start), now, Value::Integer(limit)],
                )?,
            };
            Ok(cursor.rows)
        })?;
        let keys = rows
            .into_iter()
            .filter_map(|row| {
                Some(ListedKey {
                    name: text(row.first())?,
                    expiration: integer(row.get(1)),
                    metadata: text(row.get(2)),
                })
            })
            .collect();
        Ok(wire::encode(&ListResponse { keys }, &[]))
    }

    /// Rows stored, expired ones included (a diagnostic: it counts every row).
    fn stats(&self) -> Result<Bytes, ObjectError> {
        let counts = self.with(|db| {
            let rows = db.exec(COUNT_ROWS, &[])?.rows;
            let row = rows.first();
            Ok((
                integer(row.and_then(|row| row.first())).unwrap_or(0),
                integer(row.and_then(|row| row.get(1))).unwrap_or(0),
            ))
        })?;
        let alarm_ms = self.storage().get_alarm().map_err(storage_error)?;
        Ok(wire::encode(
            &StatsResponse {
                entries: counts.0 as u64,
                chunks: counts.1 as u64,
                alarm_ms,
            },
            &[],
        ))
    }

    /// Deletes one batch of expired entries and re-arms the alarm for the next expiration.
    fn expire(&self) -> Result<(), ObjectError> {
        let now = self.now_seconds();
        let clear_chunks = self.has_chunks.get();
        let next = self.with(|db| {
            let expired = db
                .exec(
                    SELECT_EXPIRED,
                    &[Value::Integer(now), Value::Integer(EXPIRE_BATCH)],
                )?
                .rows;
            for row in &expired {
                let Some(key) = row.first() else { continue };
                if clear_chunks && integer(row.get(1)).unwrap_or(0) > 0 {
                    db.exec(DELETE_CHUNKS, std::slice::from_ref(key))?;
                }
                db.exec(DELETE_ENTRY, std::slice::from_ref(key))?;
            }
            if !expired.is_empty() {
                tracing::debug!(
                    partition = %self.ctx.id(),
                    deleted = expired.len(),
                    "expired KV keys deleted"
                );
            }
            let next = db.exec(NEXT_EXPIRATION, &[])?.rows;
            Ok(next.first().and_then(|row| integer(row.first())))
        })?;
        if let Some(at_seconds) = next {
            // Past-due (a backlog over one batch) runs again at once.
            self.storage()
                .set_alarm(at_seconds.saturating_mul(1000))
                .map_err(storage_error)?;
        }
        Ok(())
    }
}

type DbResult<T> = Result<T, burrow_storage::database::Error>;

impl ObjectInstance for Partition {
    fn fetch(
        self: Rc<Self>,
        _request: Request,
    ) -> LocalBoxFuture<'static, Result<Response, ObjectError>> {
        Box::pin(async {
            Err(ObjectError::internal(
                "KV partitions answer RPC calls only, not fetch",
            ))
        })
    }

    fn call(
        self: Rc<Self>,
        method: String,
        args: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, ObjectError>> {
        // Every method runs synchronously: one turn, one atomic commit.
        if let Err(error) = self.prepare() {
            return Box::pin(std::future::ready(Err(error)));
        }
        let result = match method.as_str() {
            "get" => self.get(&args),
            "get_chunk" => self.get_chunk(&args),
            "get_many" => self.get_many(&args),
            "put" => self.put(&args),
            "delete" => self.delete(&args),
            "list" => self.list(&args),
            "stats" => self.stats(),
            other => Err(ObjectError::internal(format!(
                "KV partitions have no method {other:?}"
            ))),
        };
        Box::pin(std::future::ready(result))
    }

    fn alarm(self: Rc<Self>, _info: AlarmInfo) -> LocalBoxFuture<'static, Result<(), ObjectError>> {
        Box::pin(std::future::ready(
            self.prepare().and_then(|()| self.expire()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::first_key_after_prefix;

    #[test]
    fn the_key_after_a_prefix_bounds_every_key_with_it() {
        assert_eq!(first_key_after_prefix("ab").as_deref(), Some("ac"));
        assert_eq!(
            first_key_after_prefix("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(first_key_after_prefix("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(first_key_after_prefix("\u{10FFFF}"), None);
        assert!("ab\u{10FFFF}\u{10FFFF}" < "ac");
    }
}
