//! The `__burrow_workflow_registry` system class: one object per workflow (named after it) that
//! indexes its instances, hands out its concurrency slots, and deletes finished instances when
//! their retention ends.
//!
//! # Tables
//! ```sql
//! wf_instances(seq PK, id UNIQUE, status, created_ms, modified_ms, started_ms, ended_ms,
//!              update_seq, holds, queued_at, dispatch, params)
//! wf_registry(id = 1, workflow)
//! ```
//! `holds` = 1 while the instance has a slot; `queued_at` orders the instances waiting for one
//! (FIFO). `dispatch` = 1 while the instance must still be told (`init` with its `params`, or
//! `grant`); the row keeps `params` until the instance has them.
//!
//! # Why slots are neither lost nor doubled
//! Only this object changes `holds`, one turn at a time, and `running` (in memory) is recounted
//! from the table on activation. An instance gives its slot back with an `update` whenever it
//! stops running (waiting, paused, finished), and asks for one with an `update` when it wants to
//! run again; `update_seq` discards reports that arrive out of order. A grant the instance
//! declines (it no longer wants to run) frees the slot at once. After a crash, `recover` sends
//! `init` or `grant` again to every instance that holds a slot: one that still runs resumes its
//! run, one that stopped in the meantime declines, and the slot returns.
//!
//! Waiting instances (sleeping, between retries, waiting for an event) hold no slot, as on
//! Cloudflare, so a drip sequence with a million sleeping instances does not block new ones.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;

use burrow_runtime::ObjectContext;
use burrow_runtime::clock::LocalBoxFuture;
use burrow_runtime::guest::{
    AlarmInfo, ObjectClass, ObjectError, ObjectInstance, Request, Response,
};
use burrow_storage::database::Database;
use burrow_storage::sql::Value;
use bytes::Bytes;

use super::error::Error;
use super::protocol::{
    self, CreateArgs, Granted, InitArgs, InstancePage, InstanceSummary, ListArgs, LookupArgs,
    RecoverArgs, UpdateArgs, instance, registry,
};
use super::service::Shared;
use super::status::Status;

/// The system class of workflow registries.
pub const CLASS_NAME: &str = "__burrow_workflow_registry";

const SCHEMA: &str = "\
CREATE TABLE IF NOT EXISTS wf_instances(seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, \
status TEXT NOT NULL, created_ms INTEGER NOT NULL, modified_ms INTEGER NOT NULL, \
started_ms INTEGER, ended_ms INTEGER, update_seq INTEGER NOT NULL DEFAULT 0, \
holds INTEGER NOT NULL DEFAULT 0, queued_at INTEGER, dispatch INTEGER NOT NULL DEFAULT 0, \
params TEXT);
CREATE INDEX IF NOT EXISTS wf_instances_queue ON wf_instances(queued_at) \
WHERE queued_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS wf_instances_ended ON wf_instances(ended_ms) \
WHERE ended_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS wf_instances_dispatch ON wf_instances(dispatch) WHERE dispatch = 1;
CREATE INDEX IF NOT EXISTS wf_instances_status ON wf_instances(status, seq);
CREATE TABLE IF NOT EXISTS wf_registry(id INTEGER PRIMARY KEY CHECK (id = 1), \
workflow TEXT NOT NULL)";

const COUNTS: &str = "SELECT (SELECT count(*) FROM wf_instances WHERE holds = 1), \
(SELECT count(*) FROM wf_instances WHERE queued_at IS NOT NULL), \
(SELECT coalesce(max(queued_at), 0) FROM wf_instances), \
(SELECT workflow FROM wf_registry WHERE id = 1)";
const SET_WORKFLOW: &str = "INSERT OR IGNORE INTO wf_registry(id, workflow) VALUES (1, ?1)";
const EXISTS: &str = "SELECT 1 FROM wf_instances WHERE id = ?1";
const INSERT: &str = "INSERT INTO wf_instances(id, status, created_ms, modified_ms, holds, \
queued_at, dispatch, params) VALUES (?1, 'queued', ?2, ?2, ?3, ?4, 0, ?5)";
const SELECT_ROW: &str = "SELECT update_seq, holds, queued_at, params IS NOT NULL, started_ms \
FROM wf_instances WHERE id = ?1";
const UPDATE_ROW: &str = "UPDATE wf_instances SET update_seq = ?2, status = ?3, \
modified_ms = ?4, started_ms = ?5, ended_ms = ?6, params = NULL WHERE id = ?1";
const ENQUEUE: &str = "UPDATE wf_instances SET queued_at = ?2 WHERE id = ?1";
const DEQUEUE: &str = "UPDATE wf_instances SET queued_at = NULL WHERE id = ?1";
const RELEASE: &str = "UPDATE wf_instances SET holds = 0, dispatch = 0 WHERE id = ?1";
const QUEUE_HEAD: &str = "UPDATE wf_instances SET holds = 1, queued_at = NULL, dispatch = 1 \
WHERE seq = (SELECT seq FROM wf_instances WHERE queued_at IS NOT NULL ORDER BY queued_at LIMIT 1) \
RETURNING id";
const ANSWERED: &str = "UPDATE wf_instances SET dispatch = 0, status = 'running' WHERE id = ?1";
const HOLDS: &str = "SELECT holds FROM wf_instances WHERE id = ?1";
const TO_DISPATCH: &str = "SELECT id, holds, params, created_ms FROM wf_instances \
WHERE dispatch = 1 LIMIT ?1";
const DISPATCHED_INIT: &str = "UPDATE wf_instances SET params = NULL, dispatch = 0, \
status = CASE WHEN holds = 1 AND status = 'queued' THEN 'running' ELSE status END WHERE id = ?1";
const RECOVER: &str = "UPDATE wf_instances SET dispatch = 1 WHERE holds = 1 OR params IS NOT NULL";
const LOOKUP: &str = "SELECT id, status, created_ms, modified_ms, started_ms, ended_ms \
FROM wf_instances WHERE id = ?1";
const MATERIAL: &str = "SELECT holds, params, created_ms FROM wf_instances WHERE id = ?1";
const LIST_ALL: &str = "SELECT id, status, created_ms, modified_ms, started_ms, ended_ms \
FROM wf_instances ORDER BY seq DESC LIMIT ?1 OFFSET ?2";
const LIST_STATUS: &str = "SELECT id, status, created_ms, modified_ms, started_ms, ended_ms \
FROM wf_instances WHERE status = ?3 ORDER BY seq DESC LIMIT ?1 OFFSET ?2";
const COUNT_ALL: &str = "SELECT count(*) FROM wf_instances";
const COUNT_STATUS: &str = "SELECT count(*) FROM wf_instances WHERE status = ?1";
const EXPIRED: &str = "SELECT id FROM wf_instances WHERE ended_ms IS NOT NULL AND \
ended_ms <= ?1 ORDER BY ended_ms LIMIT ?2";
const DELETE: &str = "DELETE FROM wf_instances WHERE id = ?1 AND ended_ms IS NOT NULL";
const NEXT_EXPIRY: &str = "SELECT min(ended_ms) FROM wf_instances WHERE ended_ms IS NOT NULL";
const ANY_DISPATCH: &str = "SELECT 1 FROM wf_instances WHERE dispatch = 1 LIMIT 1";

/// Instances told per dispatch round, and purged per alarm run.
const BATCH: i64 = 256;
/// When an instance could not be told, the alarm tries again after this long.
const DISPATCH_RETRY_MS: i64 = 1_000;

/// The `__burrow_workflow_registry` class.
pub(crate) struct RegistryClass {
    pub(crate) shared: Arc<Shared>,
}

impl ObjectClass for RegistryClass {
    fn construct(&self, ctx: ObjectContext) -> Result<Rc<dyn ObjectInstance>, ObjectError> {
        Ok(Rc::new(Registry {
            ctx,
            shared: self.shared.clone(),
            prepared: Cell::new(false),
            workflow: RefCell::new(None),
            running: Cell::new(0),
            queued: Cell::new(0),
            next_queue: Cell::new(1),
            in_flight: RefCell::new(HashSet::new()),
            alarm_at: Cell::new(None),
        }))
    }
}

struct Registry {
    ctx: ObjectContext,
    shared: Arc<Shared>,
    prepared: Cell<bool>,
    workflow: RefCell<Option<String>>,
    /// Rows with `holds` = 1.
    running: Cell<u64>,
    /// Rows with `queued_at` set.
    queued: Cell<u64>,
    next_queue: Cell<i64>,
    /// Instances being told right now.
    in_flight: RefCell<HashSet<String>>,
    /// The alarm's time, once read (`None`: not known; `Some(None)`: no alarm).
    alarm_at: Cell<Option<Option<i64>>>,
}

fn text(value: &Value) -> String {
    match value {
        Value::Text(text) => text.clone(),
        _ => String::new(),
    }
}

fn integer(value: &Value) -> i64 {
    match value {
        Value::Integer(n) => *n,
        _ => 0,
    }
}

fn optional_integer(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(n) => Some(*n),
        _ => None,
    }
}

fn summary(row: &[Value]) -> InstanceSummary {
    InstanceSummary {
        id: text(&row[0]),
        status: text(&row[1]).parse().unwrap_or(Status::Unknown),
        created_ms: integer(&row[2]),
        modified_ms: integer(&row[3]),
        started_ms: optional_integer(&row[4]),
        ended_ms: optional_integer(&row[5]),
    }
}

impl Registry {
    fn with<R>(
        &self,
        f: impl FnOnce(&mut Database) -> Result<R, burrow_storage::database::Error>,
    ) -> Result<R, ObjectError> {
        self.ctx.storage().with(f)
    }

    /// Creates the tables and loads the counters, once per activation; remembers the workflow.
    fn prepare(&self, workflow: Option<&str>) -> Result<(), ObjectError> {
        if !self.prepared.get() {
            let (running, queued, max_queue, stored) = self.with(|db| {
                db.exec(SCHEMA, &[])?;
                let rows = db.exec(COUNTS, &[])?.rows;
                let row = &rows[0];
                Ok((
                    integer(&row[0]),
                    integer(&row[1]),
                    integer(&row[2]),
                    match &row[3] {
                        Value::Text(name) => Some(name.clone()),
                        _ => None,
                    },
                ))
            })?;
            self.running.set(u64::try_from(running).unwrap_or(0));
            self.queued.set(u64::try_from(queued).unwrap_or(0));
            self.next_queue.set(max_queue + 1);
            *self.workflow.borrow_mut() = stored;
            self.prepared.set(true);
        }
        if let Some(workflow) = workflow
            && self.workflow.borrow().is_none()
        {
            self.with(|db| {
                db.exec(SET_WORKFLOW, &[Value::Text(workflow.to_owned())])
                    .map(drop)
            })?;
            *self.workflow.borrow_mut() = Some(workflow.to_owned());
        }
        Ok(())
    }

    fn workflow(&self) -> Option<String> {
        self.workflow.borrow().clone()
    }

    fn limit(&self) -> u64 {
        self.workflow().map_or(0, |workflow| {
            u64::from(self.shared.max_concurrent(&workflow))
        })
    }

    fn now_ms(&self) -> i64 {
        self.ctx.now_ms()
    }

    /// Grants free slots to the queue, oldest first; the caller dispatches the grants once its
    /// own writes are done (so an instance answered in the same turn is not told twice).
    fn pump(self: &Rc<Self>) -> Result<bool, ObjectError> {
        let limit = self.limit();
        let mut granted = false;
        while self.running.get() < limit && self.queued.get() > 0 {
            let rows = self.with(|db| Ok(db.exec(QUEUE_HEAD, &[])?.rows))?;
            self.queued.set(self.queued.get() - 1);
            if rows.is_empty() {
                continue;
            }
            self.running.set(self.running.get() + 1);
            granted = true;
        }
        Ok(granted)
    }

    /// Records new instances, each with a slot if one is free (else queued), and answers which
    /// got one. The caller sends each instance its `init` once this is durable (the reply
    /// leaves only then); if it cannot, `materialize` or `recover` does, because the row keeps
    /// its params until the instance first reports.
    fn create(self: &Rc<Self>, args: CreateArgs) -> Result<Result<Vec<bool>, Error>, ObjectError> {
        self.prepare(Some(&args.workflow))?;
        let mut seen = HashSet::new();
        for new in &args.instances {
            let exists = self.with(|db| {
                Ok(!db
                    .exec(EXISTS, &[Value::Text(new.id.clone())])?
                    .rows
                    .is_empty())
            })?;
            if exists || !seen.insert(new.id.as_str()) {
                return Ok(Err(Error::AlreadyExists(new.id.clone())));
            }
        }
        let limit = self.limit();
        let mut granted = Vec::with_capacity(args.instances.len());
        for new in &args.instances {
            let holds = self.running.get() < limit && self.queued.get() == 0;
            granted.push(holds);
            let queued_at = if holds {
                self.running.set(self.running.get() + 1);
                Value::Null
            } else {
                let position = self.next_queue.get();
                self.next_queue.set(position + 1);
                self.queued.set(self.queued.get() + 1);
                Value::Integer(position)
            };
            self.with(|db| {
                db.exec(
                    INSERT,
                    &[
                        Value::Text(new.id.clone()),
                        Value::Integer(new.created_ms),
                        Value::Integer(i64::from(holds)),
                        queued_at,
                        Value::Text(new.params.clone()),
                    ],
                )
                .map(drop)
            })?;
        }
        Ok(Ok(granted))
    }

    fn update(self: &Rc<Self>, args: UpdateArgs) -> Result<Result<Granted, Error>, ObjectError> {
        self.prepare(Some(&args.workflow))?;
        let id = Value::Text(args.id.clone());
        let rows = self.with(|db| Ok(db.exec(SELECT_ROW, std::slice::from_ref(&id))?.rows))?;
        let Some(row) = rows.first() else {
            return Ok(Ok(Granted { granted: false }));
        };
        let (update_seq, holds, queued) = (
            integer(&row[0]),
            integer(&row[1]) == 1,
            optional_integer(&row[2]).is_some(),
        );
        if args.seq <= update_seq {
            return Ok(Ok(Granted {
                granted: holds && args.wants_slot,
            }));
        }
        let now = self.now_ms();
        let ended = if args.status.is_finished() {
            Value::Integer(args.ended_ms.unwrap_or(now))
        } else {
            Value::Null
        };
        let started = args
            .started_ms
            .or(optional_integer(&row[4]))
            .map_or(Value::Null, Value::Integer);
        self.with(|db| {
            db.exec(
                UPDATE_ROW,
                &[
                    id.clone(),
                    Value::Integer(args.seq),
                    Value::Text(args.status.as_str().to_owned()),
                    Value::Integer(now),
                    started,
                    ended.clone(),
                ],
            )
            .map(drop)
        })?;
        let granted = if args.wants_slot {
            if !holds && !queued {
                let position = self.next_queue.get();
                self.next_queue.set(position + 1);
                self.queued.set(self.queued.get() + 1);
                self.with(|db| {
                    db.exec(ENQUEUE, &[id.clone(), Value::Integer(position)])
                        .map(drop)
                })?;
            }
            let others = self.pump()?;
            let holds = self.with(|db| {
                Ok(db
                    .exec(HOLDS, std::slice::from_ref(&id))?
                    .rows
                    .first()
                    .is_some_and(|row| integer(&row[0]) == 1))
            })?;
            if holds {
                // Answered here, so no `grant` needs to follow.
                self.with(|db| db.exec(ANSWERED, std::slice::from_ref(&id)).map(drop))?;
            }
            if others {
                self.dispatch();
            }
            holds
        } else {
            if queued {
                self.queued.set(self.queued.get().saturating_sub(1));
                self.with(|db| db.exec(DEQUEUE, std::slice::from_ref(&id)).map(drop))?;
            }
            if holds {
                self.running.set(self.running.get().saturating_sub(1));
                self.with(|db| db.exec(RELEASE, std::slice::from_ref(&id)).map(drop))?;
                if self.pump()? {
                    self.dispatch();
                }
            }
            false
        };
        if let Value::Integer(ended_ms) = ended {
            self.schedule_alarm(ended_ms.saturating_add(self.shared.retention_ms()))?;
        }
        Ok(Ok(Granted { granted }))
    }

    /// Moves the alarm to `at_ms` if that is sooner. The alarm's time is kept in memory once
    /// read: every finished instance asks, and only the first of a day's usually moves it.
    fn schedule_alarm(&self, at_ms: i64) -> Result<(), ObjectError> {
        let storage = self.ctx.storage();
        let current = match self.alarm_at.get() {
            Some(known) => known,
            None => storage.get_alarm()?,
        };
        if current.is_some_and(|current| current <= at_ms) {
            self.alarm_at.set(Some(current));
            return Ok(());
        }
        storage.set_alarm(at_ms)?;
        self.alarm_at.set(Some(Some(at_ms)));
        Ok(())
    }

    /// Tells every instance with `dispatch` = 1 that is not being told already: the rows are
    /// chosen now, in the turn that wrote them, and told once that turn is durable, so no
    /// instance ever runs on a registry row that a crash could take back.
    fn dispatch(self: &Rc<Self>) {
        let Some(workflow) = self.workflow() else {
            return;
        };
        let rows = match self.with(|db| Ok(db.exec(TO_DISPATCH, &[Value::Integer(BATCH)])?.rows)) {
            Ok(rows) => rows,
            Err(error) => {
                tracing::error!(error = %error.message, "workflow registry dispatch failed");
                return;
            }
        };
        let mut chosen = Vec::new();
        for row in rows {
            let id = text(&row[0]);
            if self.in_flight.borrow_mut().insert(id.clone()) {
                let params = match &row[2] {
                    Value::Text(params) => Some(params.clone()),
                    _ => None,
                };
                chosen.push((id, integer(&row[1]) == 1, params, integer(&row[3])));
            }
        }
        if chosen.is_empty() {
            return;
        }
        let this = self.clone();
        self.ctx.wait_until(async move {
            if let Err(error) = this.ctx.storage().sync().await {
                tracing::error!(error = %error.message, "workflow registry not durable");
                for (id, ..) in &chosen {
                    this.in_flight.borrow_mut().remove(id);
                }
                return;
            }
            for (id, holds, params, created_ms) in chosen {
                let this = this.clone();
                let workflow = workflow.clone();
                let ctx = this.ctx.clone();
                ctx.wait_until(async move {
                    let result = this.tell(&workflow, &id, holds, params, created_ms).await;
                    this.in_flight.borrow_mut().remove(&id);
                    if let Err(error) = result {
                        tracing::warn!(workflow = %workflow, instance = %id, error = %error.message, "workflow instance not reached; retrying");
                        let at = this.now_ms() + DISPATCH_RETRY_MS;
                        if let Err(error) = this.schedule_alarm(at) {
                            tracing::error!(error = %error.message, "workflow registry alarm not set");
                        }
                    }
                });
            }
        });
    }

    /// Sends `init` (the instance does not have its params yet) or `grant` to one instance.
    async fn tell(
        self: &Rc<Self>,
        workflow: &str,
        id: &str,
        holds: bool,
        params: Option<String>,
        created_ms: i64,
    ) -> Result<(), ObjectError> {
        let stub = self
            .shared
            .instance_stub(workflow, id)
            .ok_or_else(|| ObjectError::internal("the workflow service is not attached"))?;
        tracing::debug!(
            workflow,
            instance = id,
            holds,
            init = params.is_some(),
            "telling workflow instance"
        );
        let unavailable = |error: Error| ObjectError::internal(error.to_string());
        let key = Value::Text(id.to_owned());
        match params {
            Some(params) => {
                let args = InitArgs {
                    workflow: workflow.to_owned(),
                    instance_id: id.to_owned(),
                    params,
                    created_ms,
                    granted: holds,
                };
                protocol::call::<_, ()>(&stub, instance::INIT, &args)
                    .await
                    .map_err(unavailable)?;
                self.with(|db| db.exec(DISPATCHED_INIT, &[key]).map(drop))
            }
            None => {
                let Granted { granted } = protocol::call(&stub, instance::GRANT, &())
                    .await
                    .map_err(unavailable)?;
                let still_holds = self.with(|db| {
                    Ok(db
                        .exec(HOLDS, std::slice::from_ref(&key))?
                        .rows
                        .first()
                        .is_some_and(|row| integer(&row[0]) == 1))
                })?;
                if granted || !still_holds {
                    self.with(|db| {
                        db.exec("UPDATE wf_instances SET dispatch = 0 WHERE id = ?1", &[key])
                            .map(drop)
                    })
                } else {
                    self.running.set(self.running.get().saturating_sub(1));
                    self.with(|db| db.exec(RELEASE, &[key]).map(drop))?;
                    if self.pump()? {
                        self.dispatch();
                    }
                    Ok(())
                }
            }
        }
    }

    fn materialize(
        self: &Rc<Self>,
        args: LookupArgs,
    ) -> LocalBoxFuture<'static, Result<Bytes, ObjectError>> {
        let this = self.clone();
        Box::pin(async move {
            this.prepare(Some(&args.workflow))?;
            let rows =
                this.with(|db| Ok(db.exec(MATERIAL, &[Value::Text(args.id.clone())])?.rows))?;
            let Some(row) = rows.first() else {
                return protocol::reply::<bool>(Ok(false));
            };
            if let Value::Text(params) = &row[1] {
                this.ctx.storage().sync().await?;
                this.tell(
                    &args.workflow,
                    &args.id,
                    integer(&row[0]) == 1,
                    Some(params.clone()),
                    integer(&row[2]),
                )
                .await?;
            }
            protocol::reply::<bool>(Ok(true))
        })
    }

    fn lookup(&self, args: LookupArgs) -> Result<Result<InstanceSummary, Error>, ObjectError> {
        self.prepare(Some(&args.workflow))?;
        let rows = self.with(|db| Ok(db.exec(LOOKUP, &[Value::Text(args.id.clone())])?.rows))?;
        Ok(rows
            .first()
            .map(|row| summary(row))
            .ok_or(Error::NotFound(args.id)))
    }

    fn list(&self, args: ListArgs) -> Result<Result<InstancePage, Error>, ObjectError> {
        self.prepare(Some(&args.workflow))?;
        let per_page = i64::from(args.per_page.clamp(1, 1000));
        let offset = i64::from(args.page.max(1) - 1) * per_page;
        let (rows, total) = self.with(|db| match args.status {
            Some(status) => {
                let status = Value::Text(status.as_str().to_owned());
                let rows = db
                    .exec(
                        LIST_STATUS,
                        &[
                            Value::Integer(per_page),
                            Value::Integer(offset),
                            status.clone(),
                        ],
                    )?
                    .rows;
                let total = db.exec(COUNT_STATUS, &[status])?.rows;
                Ok((rows, total))
            }
            None => {
                let rows = db
                    .exec(
                        LIST_ALL,
                        &[Value::Integer(per_page), Value::Integer(offset)],
                    )?
                    .rows;
                let total = db.exec(COUNT_ALL, &[])?.rows;
                Ok((rows, total))
            }
        })?;
        Ok(Ok(InstancePage {
            instances: rows.iter().map(|row| summary(row)).collect(),
            total: total
                .first()
                .map_or(0, |row| u64::try_from(integer(&row[0])).unwrap_or(0)),
        }))
    }

    fn recover(self: &Rc<Self>, args: RecoverArgs) -> Result<Result<(), Error>, ObjectError> {
        self.prepare(Some(&args.workflow))?;
        tracing::debug!(workflow = %args.workflow, running = self.running.get(), queued = self.queued.get(), "workflow registry recovering");
        self.with(|db| db.exec(RECOVER, &[]).map(drop))?;
        self.pump()?;
        self.dispatch();
        Ok(Ok(()))
    }

    /// Deletes instances whose retention ended (a batch per run), retries what could not be
    /// dispatched, and sets the next alarm.
    async fn alarm_now(self: &Rc<Self>) -> Result<(), ObjectError> {
        // The runtime cleared the alarm to run this.
        self.alarm_at.set(None);
        self.prepare(None)?;
        let Some(workflow) = self.workflow() else {
            return Ok(());
        };
        let now = self.now_ms();
        let retention_ms = self.shared.retention_ms();
        let expired = self.with(|db| {
            Ok(db
                .exec(
                    EXPIRED,
                    &[
                        Value::Integer(now.saturating_sub(retention_ms)),
                        Value::Integer(BATCH),
                    ],
                )?
                .rows)
        })?;
        let mut purged = 0usize;
        for row in &expired {
            let id = text(&row[0]);
            let Some(stub) = self.shared.instance_stub(&workflow, &id) else {
                break;
            };
            match protocol::call::<_, ()>(&stub, instance::PURGE, &()).await {
                Ok(()) => {
                    self.with(|db| db.exec(DELETE, &[Value::Text(id.clone())]).map(drop))?;
                    purged += 1;
                }
                Err(error) => {
                    tracing::warn!(workflow = %workflow, instance = %id, %error, "expired workflow instance not purged");
                }
            }
        }
        if purged > 0 {
            tracing::info!(workflow = %workflow, instances = purged, "expired workflow instances deleted");
        }
        self.dispatch();
        let (next_expiry, pending) = self.with(|db| {
            let next = db
                .exec(NEXT_EXPIRY, &[])?
                .rows
                .first()
                .and_then(|row| optional_integer(&row[0]));
            let pending = !db.exec(ANY_DISPATCH, &[])?.rows.is_empty();
            Ok((next, pending))
        })?;
        let mut next: Option<i64> = next_expiry.map(|ended| {
            let at = ended.saturating_add(retention_ms);
            // A batch that could not all be purged is tried again a little later.
            if at <= now {
                now + DISPATCH_RETRY_MS
            } else {
                at
            }
        });
        if pending {
            let retry = now + DISPATCH_RETRY_MS;
            next = Some(next.map_or(retry, |at| at.min(retry)));
        }
        if let Some(at) = next {
            self.schedule_alarm(at)?;
        }
        Ok(())
    }

    fn call_sync(self: &Rc<Self>, method: &str, args: &[u8]) -> Result<Bytes, ObjectError> {
        match method {
            registry::CREATE => protocol::reply(self.create(protocol::args(method, args)?)?),
            registry::UPDATE => protocol::reply(self.update(protocol::args(method, args)?)?),
            registry::LOOKUP => protocol::reply(self.lookup(protocol::args(method, args)?)?),
            registry::LIST => protocol::reply(self.list(protocol::args(method, args)?)?),
            registry::RECOVER => protocol::reply(self.recover(protocol::args(method, args)?)?),
            other => Err(ObjectError::internal(format!(
                "workflow registries have no method {other:?}"
            ))),
        }
    }
}

impl ObjectInstance for Registry {
    fn fetch(
        self: Rc<Self>,
        _request: Request,
    ) -> LocalBoxFuture<'static, Result<Response, ObjectError>> {
        Box::pin(async {
            Err(ObjectError::internal(
                "workflow registries are reached through their binding",
            ))
        })
    }

    fn call(
        self: Rc<Self>,
        method: String,
        args: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, ObjectError>> {
        if method == registry::MATERIALIZE {
            return match protocol::args(&method, &args) {
                Ok(args) => self.materialize(args),
                Err(error) => Box::pin(async move { Err(error) }),
            };
        }
        Box::pin(async move { self.call_sync(&method, &args) })
    }

    fn alarm(self: Rc<Self>, _info: AlarmInfo) -> LocalBoxFuture<'static, Result<(), ObjectError>> {
        Box::pin(async move { self.alarm_now().await })
    }
}
