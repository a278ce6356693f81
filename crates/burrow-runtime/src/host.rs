//! The object host of one shard: the objects living there, event dispatch with mailbox bounds,
//! alarms, and the sweeper that hibernates and evicts idle objects.
//!
//! An object always lives on shard `shard_of(namespace, id)`, so one host holds the only instance
//! of each of its objects: two first calls from any shards meet here and share one activation.

use crate::clock::LocalBoxFuture;
use crate::durability::ShardDurability;
use crate::guest::{AlarmInfo, ObjectError, Request, Response, overload};
use crate::object::{ObjectCell, ObjectKey, Turn};
use crate::runtime::RuntimeShared;
use crate::websocket::{Hub, SocketEvent, WebSocket};
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

thread_local! {
    static HOST: RefCell<Option<Rc<ShardHost>>> = const { RefCell::new(None) };
}

/// An event delivered to an object.
pub(crate) enum Event {
    Fetch(Request),
    Call {
        method: String,
        args: Bytes,
    },
    Alarm {
        retry_count: u32,
    },
    /// A hibernatable socket's message, close or error.
    WebSocket {
        socket: u64,
        event: SocketEvent,
    },
    /// Read-only SQL for debugging (the admin API): runs on the object's database without
    /// constructing its instance. See [`read_only_sql`].
    Sql {
        query: String,
    },
}

impl Event {
    fn bytes(&self) -> usize {
        match self {
            Event::Fetch(request) => request.body().len(),
            Event::Call { method, args } => method.len() + args.len(),
            Event::Alarm { .. } => 0,
            Event::Sql { query } => query.len(),
            Event::WebSocket { event, .. } => match event {
                SocketEvent::Message(message) => message.len(),
                SocketEvent::Close { reason, .. } => reason.len(),
                SocketEvent::Error(error) => error.len(),
            },
        }
    }
}

/// What an event produced.
pub(crate) enum Output {
    Response(Response),
    Bytes(Bytes),
    Rows(burrow_storage::sql::Cursor),
    Done,
}

/// How long a debugging query may run before it is interrupted, so that a runaway query (a
/// recursive CTE without end) cannot hold the shard. A bound, not a timing promise.
const SQL_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `query` (Cloudflare's SQL rules: the same authorizer as `ctx.storage.sql.exec`) inside a
/// transaction that is always rolled back, so nothing it does is kept; a query that writes is
/// refused. Interrupted after [`SQL_TIME_LIMIT`].
fn read_only_sql(
    db: &mut burrow_storage::database::Database,
    query: &str,
) -> Result<Result<burrow_storage::sql::Cursor, String>, burrow_storage::database::Error> {
    let interrupt = db.connection().get_interrupt_handle();
    let (finished, wait) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::Builder::new()
        .name("burrow-sql-watchdog".to_owned())
        .spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                wait.recv_timeout(SQL_TIME_LIMIT)
            {
                interrupt.interrupt();
            }
        });
    let schema_version = |db: &mut burrow_storage::database::Database| {
        db.with_trusted_connection(|connection| {
            connection.query_row("PRAGMA schema_version", [], |row| row.get::<_, i64>(0))
        })
    };
    let outcome = db.transaction(|db| {
        let before = schema_version(db);
        let result = db.exec(query, &[]);
        // DDL writes no rows but changes the schema: it counts as a write too.
        let altered = result.is_ok() && schema_version(db).ok() != before.ok();
        db.rollback_transaction();
        Ok::<_, burrow_storage::database::Error>((result, altered))
    });
    // The watchdog is gone before the connection runs anything else.
    drop(finished);
    if let Ok(watchdog) = watchdog {
        let _ = watchdog.join();
    }
    match outcome? {
        (Ok(cursor), altered) if cursor.rows_written > 0 || altered => Ok(Err(
            "the query writes; this endpoint only reads, and nothing was kept".to_owned(),
        )),
        (Ok(cursor), _) => Ok(Ok(cursor)),
        (Err(error), _) => Ok(Err(error.to_string())),
    }
}

/// Counters of one shard's object lifecycle.
#[derive(Default)]
pub(crate) struct HostStats {
    pub(crate) activations: Cell<u64>,
    pub(crate) hibernations: Cell<u64>,
    pub(crate) evictions: Cell<u64>,
    /// Alarms that started running, and how late (see [`crate::runtime::ALARM_LAG_BUCKETS_MS`]).
    pub(crate) alarm_runs: Cell<u64>,
    pub(crate) alarm_lag_ms_sum: Cell<u64>,
    pub(crate) alarm_lag_histogram: [Cell<u64>; crate::runtime::ALARM_LAG_BUCKETS_MS.len() + 1],
}

impl HostStats {
    /// Counts an alarm that starts `lag_ms` after its scheduled time.
    fn record_alarm_lag(&self, lag_ms: u64) {
        let bounds = &crate::runtime::ALARM_LAG_BUCKETS_MS;
        let bucket = bounds
            .iter()
            .position(|bound| lag_ms <= *bound)
            .unwrap_or(bounds.len());
        self.alarm_runs.set(self.alarm_runs.get() + 1);
        self.alarm_lag_ms_sum
            .set(self.alarm_lag_ms_sum.get().saturating_add(lag_ms));
        let cell = &self.alarm_lag_histogram[bucket];
        cell.set(cell.get() + 1);
    }
}

struct AlarmTimer {
    generation: u64,
    task: tokio::task::AbortHandle,
}

pub(crate) struct ShardHost {
    pub(crate) runtime: Arc<RuntimeShared>,
    pub(crate) cells: RefCell<HashMap<ObjectKey, Rc<ObjectCell>>>,
    pub(crate) durability: Rc<ShardDurability>,
    /// The hibernatable WebSockets of this shard's objects.
    pub(crate) hub: Hub,
    alarms: RefCell<HashMap<ObjectKey, AlarmTimer>>,
    alarm_generation: Cell<u64>,
    rng: RefCell<SmallRng>,
    pub(crate) stats: HostStats,
    /// Objects on this shard whose storage is open.
    pub(crate) open_storage: Cell<usize>,
    /// The durability watcher and the sweeper: they loop for the host's lifetime, so
    /// [`ShardHost::close_all`] aborts them (otherwise shard shutdown waits out its grace period).
    background: RefCell<Vec<tokio::task::AbortHandle>>,
}

/// Keeps an object's in-flight count and queued bytes right, however the event ends.
struct InFlight {
    cell: Rc<ObjectCell>,
    queued_bytes: usize,
    now_ms: i64,
}

impl InFlight {
    fn admitted(&mut self) {
        let bytes = std::mem::take(&mut self.queued_bytes);
        self.cell
            .queued_bytes
            .set(self.cell.queued_bytes.get().saturating_sub(bytes));
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.admitted();
        self.cell
            .in_flight
            .set(self.cell.in_flight.get().saturating_sub(1));
        self.cell.last_used_ms.set(self.now_ms);
    }
}

impl ShardHost {
    /// Creates this shard's host and starts its background tasks. Call on the shard thread.
    pub(crate) fn install(runtime: Arc<RuntimeShared>, index: usize) -> Rc<ShardHost> {
        let seed = runtime
            .options
            .seed
            .unwrap_or_else(|| rand::rngs::SmallRng::from_os_rng().random())
            ^ index as u64;
        let host = Rc::new(ShardHost {
            runtime,
            cells: RefCell::new(HashMap::new()),
            durability: Rc::new(ShardDurability::default()),
            hub: Hub::default(),
            alarms: RefCell::new(HashMap::new()),
            alarm_generation: Cell::new(0),
            rng: RefCell::new(SmallRng::seed_from_u64(seed)),
            stats: HostStats::default(),
            open_storage: Cell::new(0),
            background: RefCell::new(Vec::new()),
        });
        HOST.with(|slot| *slot.borrow_mut() = Some(host.clone()));
        let watcher = tokio::task::spawn_local(host.durability.clone().watch()).abort_handle();
        let weak = Rc::downgrade(&host);
        let sweeper = tokio::task::spawn_local(async move {
            loop {
                let Some(host) = weak.upgrade() else { return };
                let clock = host.runtime.clock.clone();
                let next = clock.now_ms() + host.runtime.options.sweep_interval.as_millis() as i64;
                drop(host);
                clock.sleep_until(next).await;
                let Some(host) = weak.upgrade() else { return };
                host.sweep();
            }
        })
        .abort_handle();
        *host.background.borrow_mut() = vec![watcher, sweeper];
        host
    }

    /// The host of the shard this thread runs, if any.
    pub(crate) fn current() -> Option<Rc<ShardHost>> {
        HOST.with(|slot| slot.borrow().clone())
    }

    /// Removes this thread's host (shutdown).
    pub(crate) fn uninstall() -> Option<Rc<ShardHost>> {
        HOST.with(|slot| slot.borrow_mut().take())
    }

    fn now_ms(&self) -> i64 {
        self.runtime.clock.now_ms()
    }

    fn cell(self: &Rc<Self>, key: &ObjectKey) -> Rc<ObjectCell> {
        if let Some(cell) = self.cells.borrow().get(key) {
            return cell.clone();
        }
        let cell = ObjectCell::new(key.clone(), self, self.now_ms());
        self.cells.borrow_mut().insert(key.clone(), cell.clone());
        cell
    }

    /// Delivers `event` to the object: bounds the mailbox, waits for admission, runs the handler
    /// and holds the result at the output gate until the object's writes are durable.
    pub(crate) fn dispatch(
        self: &Rc<Self>,
        key: ObjectKey,
        event: Event,
    ) -> LocalBoxFuture<'static, Result<Output, ObjectError>> {
        let cell = self.cell(&key);
        let options = &self.runtime.options;
        // A socket has one event in flight at a time (see crate::websocket): no mailbox bounds.
        let socket_event = matches!(event, Event::WebSocket { .. });
        if !socket_event && cell.in_flight.get() >= options.max_queued_events {
            return Box::pin(std::future::ready(Err(ObjectError::overloaded(
                overload::TOO_MANY_REQUESTS,
            ))));
        }
        let bytes = event.bytes();
        if !socket_event && cell.queued_bytes.get() + bytes > options.max_queued_bytes {
            return Box::pin(std::future::ready(Err(ObjectError::overloaded(
                overload::TOO_MUCH_DATA,
            ))));
        }
        cell.in_flight.set(cell.in_flight.get() + 1);
        cell.queued_bytes.set(cell.queued_bytes.get() + bytes);
        let host = self.clone();
        let event_cell = cell.clone();
        let work = async move {
            let cell = event_cell;
            let enqueued_ms = host.now_ms();
            let mut guard = InFlight {
                cell: cell.clone(),
                queued_bytes: bytes,
                now_ms: enqueued_ms,
            };
            cell.admit().await;
            guard.admitted();
            let now = host.now_ms();
            guard.now_ms = now;
            if !socket_event
                && now - enqueued_ms > host.runtime.options.max_queue_time.as_millis() as i64
            {
                return Err(ObjectError::overloaded(overload::QUEUED_TOO_LONG));
            }
            let generation = cell.generation.get();
            let result = host.run_event(&cell, event).await;
            // Output gate: commit what the handler wrote, then wait until it is durable.
            cell.commit();
            let end = cell.last_end.get();
            host.durability.wait(end).await.map_err(|_| {
                ObjectError::internal(
                    "Durable Object storage failed; the write was not acknowledged",
                )
            })?;
            guard.now_ms = host.now_ms();
            if cell.generation.get() != generation {
                return Err(cell
                    .reset_error
                    .borrow()
                    .clone()
                    .unwrap_or_else(|| ObjectError::internal("Durable Object was reset")));
            }
            result
        };
        Box::pin(Turn {
            cell,
            inner: Box::pin(work),
        })
    }

    async fn run_event(
        self: &Rc<Self>,
        cell: &Rc<ObjectCell>,
        event: Event,
    ) -> Result<Output, ObjectError> {
        if let Event::Alarm { retry_count } = event {
            return self
                .run_alarm(cell, retry_count)
                .await
                .map(|()| Output::Done);
        }
        if let Event::Sql { query } = event {
            return match cell.with_db(|db| read_only_sql(db, &query))? {
                Ok(cursor) => Ok(Output::Rows(cursor)),
                Err(message) => Err(ObjectError::remote(message)),
            };
        }
        let instance = cell.instance()?;
        if cell.blocked.get() > 0 {
            // The constructor started blockConcurrencyWhile: this event waits for it too.
            cell.admit().await;
        }
        match event {
            Event::Fetch(request) => instance.fetch(request).await.map(Output::Response),
            Event::Call { method, args } => instance.call(method, args).await.map(Output::Bytes),
            Event::WebSocket { socket, event } => {
                let ws = WebSocket {
                    cell: cell.clone(),
                    id: socket,
                };
                let handler = match event {
                    SocketEvent::Message(message) => instance.websocket_message(ws, message),
                    SocketEvent::Close {
                        code,
                        reason,
                        was_clean,
                    } => instance.websocket_close(ws, code, reason, was_clean),
                    SocketEvent::Error(error) => instance.websocket_error(ws, error),
                };
                match self.hub.event_timeout(&cell.key) {
                    None => handler.await,
                    Some(timeout_ms) => {
                        let clock = self.runtime.clock.clone();
                        let deadline = clock.now_ms().saturating_add(timeout_ms as i64);
                        tokio::select! {
                            result = handler => result,
                            () = clock.sleep_until(deadline) => Err(ObjectError::remote(format!(
                                "The WebSocket event handler did not finish within its event timeout of {timeout_ms} ms."
                            ))),
                        }
                    }
                }
                .map(|()| Output::Done)
            }
            Event::Alarm { .. } | Event::Sql { .. } => unreachable!("handled above"),
        }
    }

    async fn run_alarm(
        self: &Rc<Self>,
        cell: &Rc<ObjectCell>,
        retry_count: u32,
    ) -> Result<(), ObjectError> {
        let now = self.now_ms();
        match cell.with_db(|db| db.get_alarm())? {
            None => return Ok(()),
            Some(at) if at > now && retry_count == 0 => {
                // Moved later since this timer was armed; its own timer exists.
                self.schedule_alarm(&cell.key, at, 0);
                return Ok(());
            }
            Some(at) => {
                self.stats
                    .record_alarm_lag(u64::try_from(now.saturating_sub(at)).unwrap_or(0));
            }
        }
        // While the handler runs, getAlarm() is null unless the handler sets a new one
        // (`Storage::get_alarm`). The alarm itself stays stored until the handler ends: alarms
        // are at-least-once, and a node that dies in the middle of the handler must run it again
        // after the restart. (Clearing it first let the clearing commit with the handler's first
        // writes, and a kill -9 during the handler's awaits then lost the alarm for good; the
        // crash soak found workflow instances stuck in `queued` that way.)
        cell.alarm_running.set(true);
        cell.alarm_set_during_run.set(false);
        let result = match cell.instance() {
            Ok(instance) => {
                if cell.blocked.get() > 0 {
                    cell.admit().await;
                }
                instance
                    .alarm(AlarmInfo {
                        retry_count,
                        is_retry: retry_count > 0,
                    })
                    .await
            }
            Err(error) => Err(error),
        };
        cell.alarm_running.set(false);
        if !cell.alarm_set_during_run.get() {
            // Done (or failed, and rescheduled below): the alarm that ran is spent.
            cell.with_db(|db| db.set_alarm(None))?;
        }
        if let Err(error) = &result {
            let options = &self.runtime.options;
            let attempts = retry_count + 1;
            if !cell.alarm_set_during_run.get() && attempts < options.alarm_max_attempts {
                let exponent = retry_count.min(options.alarm_backoff_cap_exponent);
                let base_ms = options.alarm_base_delay.as_millis() as i64 * (1i64 << exponent);
                let jitter_ms = self.rng.borrow_mut().random_range(0..=base_ms / 4);
                let at = self.now_ms() + base_ms + jitter_ms;
                tracing::warn!(object = %cell.key.id, retry_count, error = %error.message, retry_at_ms = at, "alarm failed; retrying");
                cell.with_db(|db| db.set_alarm(Some(at)))?;
                self.schedule_alarm(&cell.key, at, retry_count + 1);
            } else {
                tracing::error!(object = %cell.key.id, attempts, error = %error.message, "alarm failed; giving up");
            }
        }
        result
    }

    /// Arms (or re-arms) the object's alarm timer for `at_ms`.
    pub(crate) fn schedule_alarm(self: &Rc<Self>, key: &ObjectKey, at_ms: i64, retry_count: u32) {
        let generation = self.alarm_generation.get() + 1;
        self.alarm_generation.set(generation);
        let weak = Rc::downgrade(self);
        let timer_key = key.clone();
        let clock = self.runtime.clock.clone();
        let task = tokio::task::spawn_local(async move {
            clock.sleep_until(at_ms).await;
            let Some(host) = weak.upgrade() else { return };
            let current = host
                .alarms
                .borrow()
                .get(&timer_key)
                .map(|timer| timer.generation);
            if current != Some(generation) {
                return;
            }
            host.alarms.borrow_mut().remove(&timer_key);
            if let Err(error) = host
                .dispatch(timer_key.clone(), Event::Alarm { retry_count })
                .await
                && !error.remote
            {
                tracing::error!(object = %timer_key.id, error = %error.message, "alarm could not run");
            }
        })
        .abort_handle();
        if let Some(old) = self
            .alarms
            .borrow_mut()
            .insert(key.clone(), AlarmTimer { generation, task })
        {
            old.task.abort();
        }
    }

    /// Disarms the object's alarm timer.
    pub(crate) fn cancel_alarm(&self, key: &ObjectKey) {
        if let Some(old) = self.alarms.borrow_mut().remove(key) {
            old.task.abort();
        }
    }

    /// How many alarm timers are armed.
    pub(crate) fn armed_alarms(&self) -> usize {
        self.alarms.borrow().len()
    }

    /// Hibernates idle objects, closes the storage of long-idle ones, and enforces the cap on
    /// active objects (least recently used idle objects first).
    pub(crate) fn sweep(&self) {
        let now = self.now_ms();
        let options = &self.runtime.options;
        let hibernate_ms = options.hibernate_after.as_millis() as i64;
        let close_ms = options.storage_idle_after.as_millis() as i64;
        let mut to_close = Vec::new();
        let mut active: Vec<(i64, Rc<ObjectCell>)> = Vec::new();
        for cell in self.cells.borrow().values() {
            let idle_for = now - cell.last_used_ms.get();
            let idle = cell.is_idle();
            if idle && idle_for >= hibernate_ms && cell.instance.borrow_mut().take().is_some() {
                self.stats
                    .hibernations
                    .set(self.stats.hibernations.get() + 1);
            }
            if idle && idle_for >= close_ms {
                to_close.push(cell.clone());
            } else if cell.instance.borrow().is_some() {
                active.push((cell.last_used_ms.get(), cell.clone()));
            }
        }
        if active.len() > options.max_active_objects_per_shard {
            active.sort_by_key(|(last_used, _)| *last_used);
            let excess = active.len() - options.max_active_objects_per_shard;
            for (_, cell) in active.into_iter().take(excess) {
                if cell.is_idle() {
                    cell.instance.borrow_mut().take();
                    to_close.push(cell);
                }
            }
        }
        for cell in to_close {
            cell.instance.borrow_mut().take();
            self.close_storage(&cell);
            self.stats.evictions.set(self.stats.evictions.get() + 1);
            self.cells.borrow_mut().remove(&cell.key);
            self.hub.release(&cell.key);
        }
    }

    /// Closes one object's storage (non-blocking: the engine checkpoints it in the background).
    pub(crate) fn close_storage(&self, cell: &ObjectCell) {
        if let Some(storage) = cell.storage.borrow_mut().take() {
            self.open_storage
                .set(self.open_storage.get().saturating_sub(1));
            if let Err(error) = storage.close() {
                tracing::error!(object = %cell.key.id, %error, "closing object storage failed");
            }
        }
    }

    /// This shard's share of the node's cap on open object databases.
    pub(crate) fn storage_budget(&self) -> usize {
        let shards = self.runtime.shards.count().max(1);
        (self.runtime.engine.max_open_objects() / shards).max(1)
    }

    /// Closes the storage of the least recently used idle objects on this shard (a tenth of the
    /// open ones, at least one), when the node's cap on open databases is reached.
    pub(crate) fn close_idle_storage(&self) {
        let mut idle: Vec<Rc<ObjectCell>> = self
            .cells
            .borrow()
            .values()
            .filter(|cell| {
                cell.is_idle()
                    && cell
                        .storage
                        .try_borrow()
                        .is_ok_and(|storage| storage.is_some())
            })
            .cloned()
            .collect();
        idle.sort_by_key(|cell| cell.last_used_ms.get());
        let count = (idle.len() / 10).max(1);
        for cell in idle.into_iter().take(count) {
            cell.instance.borrow_mut().take();
            self.close_storage(&cell);
            self.stats.evictions.set(self.stats.evictions.get() + 1);
            self.cells.borrow_mut().remove(&cell.key);
            self.hub.release(&cell.key);
        }
    }

    /// Closes every object's storage (shutdown), after in-flight events finished or gave up.
    pub(crate) fn close_all(&self) {
        let cells: Vec<Rc<ObjectCell>> = self.cells.borrow_mut().drain().map(|(_, c)| c).collect();
        for cell in cells {
            cell.instance.borrow_mut().take();
            self.close_storage(&cell);
        }
        for (_, timer) in self.alarms.borrow_mut().drain() {
            timer.task.abort();
        }
        for task in self.background.borrow_mut().drain(..) {
            task.abort();
        }
    }

    /// True when no event runs on any object of this shard.
    pub(crate) fn is_quiet(&self) -> bool {
        self.cells.borrow().values().all(|cell| cell.is_idle())
    }
}
