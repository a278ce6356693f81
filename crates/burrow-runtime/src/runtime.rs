//! The runtime: classes bound to namespaces, hosts on every shard, and the stubs that reach objects.

use crate::clock::Clock;
use crate::guest::{ObjectClass, ObjectError, Request, Response};
use crate::host::{Event, Output, ShardHost};
use crate::id::{self, IdFactory, ObjectId};
use crate::namespace::{NamespaceId, NamespaceInfo, Namespaces};
use crate::object::ObjectKey;
use crate::shard::{self, Shards};
use burrow_storage::engine::Engine;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runtime settings; the defaults are Cloudflare's behaviour.
#[derive(Debug, Clone)]
pub struct Options {
    /// An idle object's instance is dropped after this long (Cloudflare: 10 s).
    pub hibernate_after: Duration,
    /// An idle object's storage is closed after this long.
    pub storage_idle_after: Duration,
    /// How often each shard looks for idle objects.
    pub sweep_interval: Duration,
    /// Most events running or waiting per object before overload errors.
    pub max_queued_events: usize,
    /// Most request bytes waiting per object before overload errors.
    pub max_queued_bytes: usize,
    /// Longest an event may wait for admission before an overload error.
    pub max_queue_time: Duration,
    /// Most live instances per shard; beyond it the least recently used idle ones are evicted.
    pub max_active_objects_per_shard: usize,
    /// Alarm handler runs per alarm, first run included (Cloudflare: 6).
    pub alarm_max_attempts: u32,
    /// First alarm retry delay (Cloudflare: 2 s, doubled per retry, plus 0–25 % jitter).
    pub alarm_base_delay: Duration,
    /// Cap on the doubling exponent of alarm retries.
    pub alarm_backoff_cap_exponent: u32,
    /// Seed for jitter; `None` draws one (the simulation fixes it).
    pub seed: Option<u64>,
    /// Hibernatable WebSockets one object may hold (Cloudflare: 32,768). The listener's own cap
    /// (burrow-http's `ServerOptions::max_websockets`) bounds them per process, by descriptors.
    pub max_websockets_per_object: usize,
    /// Longest message a socket may receive (Cloudflare: 32 MiB); longer closes it with 1009.
    pub websocket_max_message_bytes: usize,
    /// Bytes queued for one socket's client; a client that falls further behind is dropped with
    /// close code 1009 and a reason.
    pub websocket_max_send_buffer_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hibernate_after: Duration::from_secs(10),
            storage_idle_after: Duration::from_secs(70),
            sweep_interval: Duration::from_secs(1),
            max_queued_events: 1000,
            max_queued_bytes: 64 << 20,
            max_queue_time: Duration::from_secs(30),
            max_active_objects_per_shard: 20_000,
            alarm_max_attempts: 6,
            alarm_base_delay: Duration::from_secs(2),
            alarm_backoff_cap_exponent: 8,
            seed: None,
            max_websockets_per_object: 32_768,
            websocket_max_message_bytes: 32 << 20,
            websocket_max_send_buffer_bytes: 4 << 20,
        }
    }
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A class has no namespace: no migration created it.
    #[error(
        "Durable Object class {0:?} has no namespace: add it to a migration's new_sqlite_classes"
    )]
    NoNamespace(String),
    /// A shard could not run the runtime's setup.
    #[error(transparent)]
    Shard(#[from] shard::Error),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] burrow_storage::engine::Error),
}

struct ClassEntry {
    info: NamespaceInfo,
    factory: IdFactory,
    class: Arc<dyn ObjectClass>,
}

pub(crate) struct RuntimeShared {
    pub(crate) engine: Engine,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) options: Options,
    pub(crate) shards: Shards,
    classes: HashMap<NamespaceId, ClassEntry>,
    by_name: HashMap<String, NamespaceId>,
}

impl RuntimeShared {
    pub(crate) fn class(&self, namespace: &NamespaceId) -> Option<Arc<dyn ObjectClass>> {
        self.classes.get(namespace).map(|entry| entry.class.clone())
    }
}

/// Upper bounds, in milliseconds, of the buckets of [`Stats::alarm_lag_histogram`]; one more
/// bucket, without a bound, follows the last.
pub const ALARM_LAG_BUCKETS_MS: [u64; 10] = [1, 5, 10, 50, 100, 500, 1_000, 5_000, 10_000, 60_000];

/// Lifecycle counters summed over all shards.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Instances constructed.
    pub activations: u64,
    /// Instances dropped after idling.
    pub hibernations: u64,
    /// Objects whose storage was closed and state dropped.
    pub evictions: u64,
    /// Objects with a live instance now.
    pub active: u64,
    /// Objects known to a shard now (live or with open storage).
    pub resident: u64,
    /// Alarm timers armed now.
    pub armed_alarms: u64,
    /// Hibernatable WebSockets open now.
    pub websockets: u64,
    /// Alarms that started running (retries included).
    pub alarm_runs: u64,
    /// How late they started, summed, in milliseconds: the time from the alarm's scheduled time
    /// to its handler being called.
    pub alarm_lag_ms_sum: u64,
    /// How many started at most each bound of [`ALARM_LAG_BUCKETS_MS`] late (above the previous
    /// one); the last entry counts those later than every bound. Not cumulative.
    pub alarm_lag_histogram: [u64; ALARM_LAG_BUCKETS_MS.len() + 1],
}

/// The Durable Object runtime of one node. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<RuntimeShared>,
}

impl Runtime {
    /// Starts the runtime on `shards`: one object host per shard, and the alarms the node's
    /// index holds (those that came due while the node was down fire at once).
    pub async fn start(
        shards: Shards,
        engine: Engine,
        namespaces: &Namespaces,
        classes: Vec<(String, Arc<dyn ObjectClass>)>,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Result<Runtime, Error> {
        let mut by_id = HashMap::new();
        let mut by_name = HashMap::new();
        for (name, class) in classes {
            let info = if name.starts_with(crate::namespace::SYSTEM_CLASS_PREFIX) {
                namespaces.system_namespace(&name)
            } else {
                namespaces
                    .namespace(&name)
                    .ok_or_else(|| Error::NoNamespace(name.clone()))?
            };
            let factory = info.id_factory();
            by_name.insert(name, info.id);
            by_id.insert(
                info.id,
                ClassEntry {
                    info,
                    factory,
                    class,
                },
            );
        }
        let shared = Arc::new(RuntimeShared {
            engine,
            clock,
            options,
            shards: shards.clone(),
            classes: by_id,
            by_name,
        });
        for index in 0..shards.count() {
            let shared = shared.clone();
            shards
                .run(index, move || async move {
                    ShardHost::install(shared, index);
                })
                .await?;
        }
        let runtime = Runtime { shared };
        runtime.load_alarms().await?;
        Ok(runtime)
    }

    /// Arms a timer for every alarm in the node's index.
    async fn load_alarms(&self) -> Result<(), Error> {
        const BATCH: usize = 100_000;
        let alarms = self.shared.engine.due_alarms(i64::MAX, BATCH)?;
        let mut armed = 0usize;
        for alarm in alarms {
            let Some(namespace) = NamespaceId::parse(&alarm.namespace) else {
                continue;
            };
            let Some(entry) = self.shared.classes.get(&namespace) else {
                tracing::warn!(namespace = %alarm.namespace, "alarm for a class that is not loaded");
                continue;
            };
            let Ok(id) = entry.factory.id_from_string(&alarm.id) else {
                continue;
            };
            let key = ObjectKey { namespace, id };
            let shard = id::shard_of(&key.namespace, &key.id, self.shared.shards.count());
            let at_ms = alarm.at_ms;
            self.shared
                .shards
                .run(shard, move || async move {
                    if let Some(host) = ShardHost::current() {
                        host.schedule_alarm(&key, at_ms, 0);
                    }
                })
                .await?;
            armed += 1;
        }
        if armed > 0 {
            tracing::info!(alarms = armed, "alarms restored from the node's index");
        }
        Ok(())
    }

    /// The namespace of a Durable Object class, as a binding sees it.
    pub fn namespace(&self, class_name: &str) -> Option<Namespace> {
        let id = self.shared.by_name.get(class_name)?;
        let entry = self.shared.classes.get(id)?;
        Some(Namespace {
            shared: self.shared.clone(),
            namespace: *id,
            factory: entry.factory.clone(),
            info: entry.info.clone(),
        })
    }

    /// The shards the runtime runs on.
    pub fn shards(&self) -> &Shards {
        &self.shared.shards
    }

    /// The storage engine.
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// Lifecycle counters over all shards.
    pub async fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for index in 0..self.shared.shards.count() {
            let stats = self
                .shared
                .shards
                .run(index, || async {
                    ShardHost::current().map(|host| Stats {
                        activations: host.stats.activations.get(),
                        hibernations: host.stats.hibernations.get(),
                        evictions: host.stats.evictions.get(),
                        active: host
                            .cells
                            .borrow()
                            .values()
                            .filter(|c| c.instance.borrow().is_some())
                            .count() as u64,
                        resident: host.cells.borrow().len() as u64,
                        armed_alarms: host.armed_alarms() as u64,
                        websockets: host.hub.open() as u64,
                        alarm_runs: host.stats.alarm_runs.get(),
                        alarm_lag_ms_sum: host.stats.alarm_lag_ms_sum.get(),
                        alarm_lag_histogram: std::array::from_fn(|bucket| {
                            host.stats.alarm_lag_histogram[bucket].get()
                        }),
                    })
                })
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            total.activations += stats.activations;
            total.hibernations += stats.hibernations;
            total.evictions += stats.evictions;
            total.active += stats.active;
            total.resident += stats.resident;
            total.armed_alarms += stats.armed_alarms;
            total.websockets += stats.websockets;
            total.alarm_runs += stats.alarm_runs;
            total.alarm_lag_ms_sum += stats.alarm_lag_ms_sum;
            for (sum, count) in total
                .alarm_lag_histogram
                .iter_mut()
                .zip(stats.alarm_lag_histogram)
            {
                *sum += count;
            }
        }
        total
    }

    /// Runs one sweep on every shard now (tests drive hibernation with this and a manual clock).
    pub async fn sweep(&self) {
        for index in 0..self.shared.shards.count() {
            let _ = self
                .shared
                .shards
                .run(index, || async {
                    if let Some(host) = ShardHost::current() {
                        host.sweep();
                    }
                })
                .await;
        }
    }

    /// Lets in-flight events finish (up to `grace`), closes every object's storage and makes
    /// everything durable. The shards themselves are the caller's to shut down afterwards.
    pub async fn shutdown(&self, grace: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + grace;
        for index in 0..self.shared.shards.count() {
            let _ = self
                .shared
                .shards
                .run(index, move || async move {
                    let Some(host) = ShardHost::current() else {
                        return;
                    };
                    while !host.is_quiet() && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    host.close_all();
                    ShardHost::uninstall();
                })
                .await;
        }
        self.shared.engine.shutdown()?;
        Ok(())
    }
}

/// A Durable Object namespace: makes IDs and stubs.
#[derive(Clone)]
pub struct Namespace {
    shared: Arc<RuntimeShared>,
    namespace: NamespaceId,
    factory: IdFactory,
    info: NamespaceInfo,
}

impl Namespace {
    /// The namespace's id.
    pub fn id(&self) -> NamespaceId {
        self.namespace
    }

    /// The class this namespace runs.
    pub fn class_name(&self) -> &str {
        &self.info.class_name
    }

    /// `idFromName`.
    pub fn id_from_name(&self, name: &str) -> ObjectId {
        self.factory.id_from_name(name)
    }

    /// `newUniqueId`.
    pub fn new_unique_id(&self) -> ObjectId {
        self.factory.new_unique_id()
    }

    /// `idFromString`, with Cloudflare's errors.
    pub fn id_from_string(&self, text: &str) -> Result<ObjectId, id::Error> {
        self.factory.id_from_string(text)
    }

    /// `get(id)`: a stub at once; the object is constructed on the first call.
    pub fn get(&self, id: ObjectId) -> Stub {
        let shard = id::shard_of(&self.namespace, &id, self.shared.shards.count());
        Stub {
            shared: self.shared.clone(),
            key: ObjectKey {
                namespace: self.namespace,
                id,
            },
            shard,
        }
    }

    /// `getByName(name)` = `get(idFromName(name))`.
    pub fn get_by_name(&self, name: &str) -> Stub {
        self.get(self.id_from_name(name))
    }
}

/// A stub: calls on one stub arrive in order.
#[derive(Clone)]
pub struct Stub {
    shared: Arc<RuntimeShared>,
    key: ObjectKey,
    shard: usize,
}

impl Stub {
    /// The object's id.
    pub fn id(&self) -> &ObjectId {
        &self.key.id
    }

    /// Sends a request to the object's `fetch` handler.
    pub async fn fetch(&self, request: Request) -> Result<Response, ObjectError> {
        match self.send(Event::Fetch(request)).await? {
            Output::Response(response) => Ok(response),
            _ => Err(ObjectError::internal("fetch produced no response")),
        }
    }

    /// Calls an RPC method with serialized arguments; returns the serialized result.
    pub async fn call(&self, method: &str, args: Bytes) -> Result<Bytes, ObjectError> {
        let event = Event::Call {
            method: method.to_string(),
            args,
        };
        match self.send(event).await? {
            Output::Bytes(bytes) => Ok(bytes),
            _ => Err(ObjectError::internal("the RPC call produced no result")),
        }
    }

    /// Runs read-only SQL on the object's database, for debugging: the object's instance is not
    /// constructed, the query runs between the object's events (input gate), follows the rules of
    /// `ctx.storage.sql.exec`, and anything it would change is rolled back (a query that writes
    /// fails). A query that runs too long is interrupted. The object's database is opened, and so
    /// created if it did not exist: check first when that matters.
    pub async fn read_only_sql(
        &self,
        query: &str,
    ) -> Result<burrow_storage::sql::Cursor, ObjectError> {
        let event = Event::Sql {
            query: query.to_owned(),
        };
        match self.send(event).await? {
            Output::Rows(cursor) => Ok(cursor),
            _ => Err(ObjectError::internal("the SQL query produced no rows")),
        }
    }

    async fn send(&self, event: Event) -> Result<Output, ObjectError> {
        let key = self.key.clone();
        let result = self
            .shared
            .shards
            .run(self.shard, move || async move {
                match ShardHost::current() {
                    Some(host) => host.dispatch(key, event).await,
                    None => Err(ObjectError::retryable(
                        "the Durable Object runtime is not running",
                    )),
                }
            })
            .await;
        match result {
            Ok(result) => result,
            Err(shard::Error::Overloaded { .. }) => Err(ObjectError::overloaded(
                crate::guest::overload::TOO_MANY_REQUESTS,
            )),
            Err(error) => Err(ObjectError::retryable(error.to_string())),
        }
    }
}
