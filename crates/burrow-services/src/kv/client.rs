//! [`Kv`] and [`KvNamespace`]: the handle a binding, the admin API or a benchmark uses to read
//! and write one KV namespace. It validates every call (so a rejected call sends and stores
//! nothing), routes each key to its partition, and merges the partitions' answers.
//!
//! Handles are `Send + Sync` and cheap to clone; their futures are `Send`, so any thread may use
//! them, a shard thread or not.

use std::collections::BTreeMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use burrow_runtime::clock::Clock;
use burrow_runtime::{Namespace, Runtime, Stub};
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{self, Error, Method};
use super::partition::CLASS_NAME;
use super::wire::{
    self, DeleteRequest, Empty, GetChunkRequest, GetManyRequest, GetManyResponse, GetRequest,
    GetResponse, ListRequest, ListResponse, ListedKey, PutRequest, StatsResponse,
};

/// How many partition objects hold each namespace's keys. Part of the on-disk layout: keys are
/// found by `hash(key) % PARTITIONS`, so changing it would hide every stored key.
pub const PARTITIONS: u32 = 16;

/// The KV service of one node: makes [`KvNamespace`] handles.
#[derive(Clone)]
pub struct Kv {
    namespace: Namespace,
    clock: Arc<dyn Clock>,
}

/// Why [`Kv::new`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// The runtime was started without the partition class.
    #[error(
        "the runtime has no {CLASS_NAME} class: pass burrow_services::kv::class() to Runtime::start"
    )]
    ClassMissing,
}

impl Kv {
    /// The KV service on `runtime`, which must run [`super::class`]. `clock` must be the
    /// runtime's clock: expirations are resolved against it.
    pub fn new(runtime: &Runtime, clock: Arc<dyn Clock>) -> Result<Kv, SetupError> {
        let namespace = runtime
            .namespace(CLASS_NAME)
            .ok_or(SetupError::ClassMissing)?;
        Ok(Kv { namespace, clock })
    }

    /// The namespace with this id (`kv_namespaces[].id`, or the binding name without one).
    pub fn namespace(&self, id: &str) -> KvNamespace {
        let partitions = (0..PARTITIONS)
            .map(|partition| self.namespace.get_by_name(&format!("{id}/{partition}")))
            .collect();
        KvNamespace {
            inner: Arc::new(Inner {
                id: id.to_owned(),
                partitions,
                clock: self.clock.clone(),
            }),
        }
    }
}

/// One KV namespace. Cheap to clone.
#[derive(Clone)]
pub struct KvNamespace {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    partitions: Vec<Stub>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for KvNamespace {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KvNamespace")
            .field("id", &self.inner.id)
            .finish_non_exhaustive()
    }
}

/// The options of [`KvNamespace::put_with`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PutOptions {
    /// When the key expires, in epoch seconds; at least 60 s ahead.
    pub expiration: Option<i64>,
    /// How long until the key expires, in seconds; at least 60. Wins over `expiration`.
    pub expiration_ttl: Option<i64>,
    /// Arbitrary JSON kept with the key; at most 1024 bytes serialized.
    pub metadata: Option<serde_json::Value>,
}

/// The options of [`KvNamespace::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys that start with this.
    pub prefix: Option<String>,
    /// At most this many keys (1-1000, default 1000).
    pub limit: Option<usize>,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<String>,
}

/// One page of [`KvNamespace::list`], shaped as Cloudflare's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ListResult {
    /// The keys, in UTF-8 byte order.
    pub keys: Vec<ListKey>,
    /// True when no key follows this page.
    pub list_complete: bool,
    /// Pass to the next call to continue; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// One key of a list page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListKey {
    /// The key.
    pub name: String,
    /// When it expires, in epoch seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<i64>,
    /// Its metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// What a namespace's partitions hold on disk ([`KvNamespace::storage_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StorageStats {
    /// Entry rows, expired ones that the alarms have not deleted yet included.
    pub entries: u64,
    /// Chunk rows of values over the inline size.
    pub chunks: u64,
    /// Partitions with an expiry alarm set.
    pub alarms: u64,
}

/// A value with what is stored beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueWithMetadata {
    /// The value's bytes.
    pub value: Bytes,
    /// Its metadata, if it has any.
    pub metadata: Option<serde_json::Value>,
    /// When it expires, in epoch seconds.
    pub expiration: Option<i64>,
}

/// A value read chunk by chunk ([`KvNamespace::get_stream`]): at most one chunk (1 MiB) is in
/// memory at a time. If the key is overwritten, deleted or expires before the last chunk, the
/// next read fails with [`Error::ValueChanged`] rather than mixing two values.
pub struct ValueStream {
    stub: Stub,
    key: String,
    version: i64,
    next_seq: u32,
    chunks: u32,
    first: Option<Bytes>,
    /// The value's metadata.
    pub metadata: Option<serde_json::Value>,
    /// When it expires, in epoch seconds.
    pub expiration: Option<i64>,
}

impl std::fmt::Debug for ValueStream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ValueStream")
            .field("key", &self.key)
            .field("next_seq", &self.next_seq)
            .field("chunks", &self.chunks)
            .finish_non_exhaustive()
    }
}

impl ValueStream {
    /// The next chunk, or `None` after the last.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, Error> {
        if let Some(first) = self.first.take() {
            self.next_seq = 1;
            return Ok(Some(first));
        }
        if self.next_seq >= self.chunks {
            return Ok(None);
        }
        let request = GetChunkRequest {
            key: self.key.clone(),
            version: self.version,
            seq: self.next_seq,
        };
        let reply = self
            .stub
            .call("get_chunk", wire::encode(&request, &[]))
            .await
            .map_err(|error| Error::from_object(Method::Get, error))?;
        let (_, chunk): (Empty, Bytes) = decode(Method::Get, &reply)?;
        self.next_seq += 1;
        Ok(Some(chunk))
    }

    /// Reads the rest of the value into memory.
    pub async fn read_to_end(mut self) -> Result<Bytes, Error> {
        let mut value = BytesMut::new();
        while let Some(chunk) = self.next_chunk().await? {
            value.extend_from_slice(&chunk);
        }
        Ok(value.freeze())
    }
}

/// The partition of a key: FNV-1a (64-bit) of its UTF-8 bytes, modulo [`PARTITIONS`]. FNV is
/// fixed by its definition, so the mapping can never change under stored data.
pub fn partition_of(key: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(PARTITIONS)) as usize
}

fn decode<H: DeserializeOwned>(method: Method, frame: &Bytes) -> Result<(H, Bytes), Error> {
    wire::decode(frame).map_err(|reason| Error::Protocol { method, reason })
}

fn parse_metadata(
    method: Method,
    text: Option<String>,
) -> Result<Option<serde_json::Value>, Error> {
    text.map(|text| {
        serde_json::from_str(&text).map_err(|error| Error::Protocol {
            method,
            reason: format!("stored metadata is not JSON: {error}"),
        })
    })
    .transpose()
}

/// Cursor format: URL-safe base64 (no padding) of a version byte (1) and the last key returned.
fn encode_cursor(last_key: &str) -> String {
    let mut bytes = Vec::with_capacity(1 + last_key.len());
    bytes.push(1);
    bytes.extend_from_slice(last_key.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_cursor(cursor: &str) -> Result<String, Error> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| Error::InvalidCursor)?;
    match bytes.split_first() {
        Some((1, key)) => String::from_utf8(key.to_vec()).map_err(|_| Error::InvalidCursor),
        _ => Err(Error::InvalidCursor),
    }
}

/// Runs every future to completion concurrently; outputs in input order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

impl KvNamespace {
    /// The namespace's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    fn stub(&self, key: &str) -> &Stub {
        &self.inner.partitions[partition_of(key)]
    }

    async fn call(
        &self,
        stub: &Stub,
        method: Method,
        name: &str,
        args: Bytes,
    ) -> Result<Bytes, Error> {
        stub.call(name, args)
            .await
            .map_err(|error| Error::from_object(method, error))
    }

    async fn get_response(
        &self,
        key: &str,
        stream: bool,
    ) -> Result<Option<(GetResponse, Bytes)>, Error> {
        error::check_key(Method::Get, key)?;
        let request = GetRequest {
            key: key.to_owned(),
            stream,
        };
        let reply = self
            .call(
                self.stub(key),
                Method::Get,
                "get",
                wire::encode(&request, &[]),
            )
            .await?;
        let (response, value): (GetResponse, Bytes) = decode(Method::Get, &reply)?;
        Ok(response.found.then_some((response, value)))
    }

    /// `get(key, "arrayBuffer")`: the value's bytes, or `None` if the key is absent or expired.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, Error> {
        Ok(self.get_response(key, false).await?.map(|(_, value)| value))
    }

    /// `get(key)` / `get(key, "text")`: the value as text (invalid UTF-8 is replaced, as
    /// `TextDecoder` does).
    pub async fn get_text(&self, key: &str) -> Result<Option<String>, Error> {
        Ok(self
            .get(key)
            .await?
            .map(|value| String::from_utf8_lossy(&value).into_owned()))
    }

    /// `get(key, "json")`: the value parsed as JSON into `T`.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let Some(value) = self.get(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&value)
            .map(Some)
            .map_err(|error| Error::Json {
                key: key.to_owned(),
                message: error.to_string(),
            })
    }

    /// `getWithMetadata(key)`: the value with its metadata and expiration.
    pub async fn get_with_metadata(&self, key: &str) -> Result<Option<ValueWithMetadata>, Error> {
        let Some((response, value)) = self.get_response(key, false).await? else {
            return Ok(None);
        };
        Ok(Some(ValueWithMetadata {
            value,
            metadata: parse_metadata(Method::Get, response.metadata)?,
            expiration: response.expiration,
        }))
    }

    /// `get(key, "stream")`: the value chunk by chunk; see [`ValueStream`].
    pub async fn get_stream(&self, key: &str) -> Result<Option<ValueStream>, Error> {
        let Some((response, first)) = self.get_response(key, true).await? else {
            return Ok(None);
        };
        Ok(Some(ValueStream {
            stub: self.stub(key).clone(),
            key: key.to_owned(),
            version: response.version,
            next_seq: 0,
            chunks: response.chunks.max(1),
            first: Some(first),
            metadata: parse_metadata(Method::Get, response.metadata)?,
            expiration: response.expiration,
        }))
    }

    /// Bulk `get(keys)` (at most 100): every distinct key asked for, in the order asked, with
    /// its value or `None`.
    pub async fn get_many<K: AsRef<str>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<(String, Option<Bytes>)>, Error> {
        Ok(self
            .get_many_with_metadata(keys)
            .await?
            .into_iter()
            .map(|(key, found)| (key, found.map(|found| found.value)))
            .collect())
    }

    /// Bulk `getWithMetadata(keys)` (at most 100).
    pub async fn get_many_with_metadata<K: AsRef<str>>(
        &self,
        keys: &[K],
    ) -> Result<Vec<(String, Option<ValueWithMetadata>)>, Error> {
        if keys.is_empty() {
            return Err(Error::NoBulkKeys);
        }
        if keys.len() > error::MAX_BULK_KEYS {
            return Err(Error::TooManyBulkKeys);
        }
        let mut order: Vec<String> = Vec::with_capacity(keys.len());
        let mut by_partition: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for key in keys {
            let key = key.as_ref();
            error::check_key(Method::GetBulk, key)?;
            if order.iter().any(|seen| seen == key) {
                continue;
            }
            order.push(key.to_owned());
            by_partition
                .entry(partition_of(key))
                .or_default()
                .push(key.to_owned());
        }
        let calls = by_partition.into_iter().map(|(partition, keys)| {
            let args = wire::encode(&GetManyRequest { keys }, &[]);
            let stub = &self.inner.partitions[partition];
            self.call(stub, Method::GetBulk, "get_many", args)
        });
        let mut found: BTreeMap<String, ValueWithMetadata> = BTreeMap::new();
        let mut total = 0usize;
        for reply in join_all(calls.collect()).await {
            let (response, body): (GetManyResponse, Bytes) = decode(Method::GetBulk, &reply?)?;
            let mut offset = 0usize;
            for entry in response.entries {
                let end = offset
                    .checked_add(entry.length)
                    .filter(|end| *end <= body.len())
                    .ok_or_else(|| Error::Protocol {
                        method: Method::GetBulk,
                        reason: "value lengths exceed the body".into(),
                    })?;
                total += entry.length;
                found.insert(
                    entry.key,
                    ValueWithMetadata {
                        value: body.slice(offset..end),
                        metadata: parse_metadata(Method::GetBulk, entry.metadata)?,
                        expiration: entry.expiration,
                    },
                );
                offset = end;
            }
        }
        if total > error::MAX_BULK_BYTES {
            return Err(Error::BulkTooLarge);
        }
        Ok(order
            .into_iter()
            .map(|key| {
                let value = found.remove(&key);
                (key, value)
            })
            .collect())
    }

    /// `put(key, value)`.
    pub async fn put(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), Error> {
        self.put_with(key, value, PutOptions::default()).await
    }

    /// `put(key, value, {expiration, expirationTtl, metadata})`. Resolves once the write is
    /// durable; every later read, from any thread, sees it.
    pub async fn put_with(
        &self,
        key: &str,
        value: impl AsRef<[u8]>,
        options: PutOptions,
    ) -> Result<(), Error> {
        let value = value.as_ref();
        error::check_key(Method::Put, key)?;
        let expiration = error::resolve_expiration(
            options.expiration,
            options.expiration_ttl,
            self.inner.clock.now_ms(),
        )?;
        let metadata = match &options.metadata {
            Some(metadata) => {
                let text = serde_json::to_string(metadata)
                    .map_err(|error| Error::MetadataNotJson(error.to_string()))?;
                error::check_metadata(&text)?;
                Some(text)
            }
            None => None,
        };
        error::check_value(value)?;
        let request = PutRequest {
            key: key.to_owned(),
            expiration,
            metadata,
        };
        let reply = self
            .call(
                self.stub(key),
                Method::Put,
                "put",
                wire::encode(&request, &[value]),
            )
            .await?;
        decode::<Empty>(Method::Put, &reply)?;
        Ok(())
    }

    /// `delete(key)`; deleting an absent key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        error::check_key(Method::Delete, key)?;
        let request = DeleteRequest {
            key: key.to_owned(),
        };
        let reply = self
            .call(
                self.stub(key),
                Method::Delete,
                "delete",
                wire::encode(&request, &[]),
            )
            .await?;
        decode::<Empty>(Method::Delete, &reply)?;
        Ok(())
    }

    /// Counts what the partitions store (every row: use it for diagnostics and tests).
    pub async fn storage_stats(&self) -> Result<StorageStats, Error> {
        let args = wire::encode(&Empty {}, &[]);
        let calls = self
            .inner
            .partitions
            .iter()
            .map(|stub| self.call(stub, Method::Get, "stats", args.clone()));
        let mut total = StorageStats::default();
        for reply in join_all(calls.collect()).await {
            let (stats, _): (StatsResponse, Bytes) = decode(Method::Get, &reply?)?;
            total.entries += stats.entries;
            total.chunks += stats.chunks;
            total.alarms += u64::from(stats.alarm_ms.is_some());
        }
        Ok(total)
    }

    /// `list({prefix, limit, cursor})`: one page of keys in UTF-8 byte order.
    ///
    /// Every partition is asked for up to `limit + 1` keys after the cursor; the answers are
    /// merged and the first `limit` returned. The cursor is the last key of the page, so the
    /// next page starts strictly after it: a key that exists during the whole listing is
    /// returned exactly once, whatever is written meanwhile.
    pub async fn list(&self, options: ListOptions) -> Result<ListResult, Error> {
        let limit = error::check_list_limit(options.limit)?;
        if let Some(prefix) = &options.prefix
            && prefix.len() > error::MAX_KEY_BYTES
        {
            return Err(Error::KeyTooLong {
                method: Method::Get,
                length: prefix.len(),
            });
        }
        let after = options.cursor.as_deref().map(decode_cursor).transpose()?;
        let args = wire::encode(
            &ListRequest {
                prefix: options.prefix.clone(),
                after,
                limit: limit + 1,
            },
            &[],
        );
        let calls = self
            .inner
            .partitions
            .iter()
            .map(|stub| self.call(stub, Method::Get, "list", args.clone()));
        let mut keys: Vec<ListedKey> = Vec::new();
        for reply in join_all(calls.collect()).await {
            let (response, _): (ListResponse, Bytes) = decode(Method::Get, &reply?)?;
            keys.extend(response.keys);
        }
        keys.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let list_complete = keys.len() <= limit;
        keys.truncate(limit);
        let cursor = if list_complete {
            None
        } else {
            keys.last().map(|key| encode_cursor(&key.name))
        };
        let keys = keys
            .into_iter()
            .map(|key| {
                Ok(ListKey {
                    name: key.name,
                    expiration: key.expiration,
                    metadata: parse_metadata(Method::Get, key.metadata)?,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(ListResult {
            keys,
            list_complete,
            cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_foreign_text() {
        for key in ["a", "", "ünïcødé/\u{10FFFF}", "with\0nul"] {
            assert_eq!(decode_cursor(&encode_cursor(key)).as_deref(), Ok(key));
        }
        assert_eq!(decode_cursor("!!"), Err(Error::InvalidCursor));
        assert_eq!(decode_cursor(""), Err(Error::InvalidCursor));
        assert_eq!(
            decode_cursor(&URL_SAFE_NO_PAD.encode([2, b'a'])),
            Err(Error::InvalidCursor)
        );
    }

    #[test]
    fn partitions_are_stable_and_spread() {
        // Fixed by FNV-1a's definition: these must never change.
        assert_eq!(partition_of(""), (0xcbf2_9ce4_8422_2325u64 % 16) as usize);
        let mut seen = [0usize; PARTITIONS as usize];
        for i in 0..1600 {
            seen[partition_of(&format!("key-{i}"))] += 1;
        }
        assert!(
            seen.iter().all(|count| (50..=150).contains(count)),
            "{seen:?}"
        );
    }
}
