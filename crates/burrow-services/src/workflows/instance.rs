//! The `__burrow_workflow` system class: one object per workflow instance, named
//! `<workflow>/<instance id>`, holding its params, status, step cache, attempts, events and
//! history in its own SQLite database ([`super::store`]).
//!
//! # Lifecycle
//! - `init` stores the params (status `queued`). The instance runs only while it holds one of its
//!   workflow's concurrency slots, which the registry object hands out ([`super::registry`]);
//!   `init` says whether one was reserved, otherwise the instance asks with `update`.
//! - A run replays `run` from the top ([`super::run`]). When every step left is parked, the run
//!   ends: status `waiting` (or `paused`), the alarm set to the earliest timer, the slot given
//!   back. The alarm, an event or `resume` starts the next run, after taking a slot again.
//! - When `run` returns, the instance is `complete` (or `errored`) and reports it.
//! - A run lives only in memory: after a crash the registry's `recover` (at start-up) finds every
//!   instance that held a slot and pokes it, and waiting instances have their alarms, which the
//!   runtime restores. Each step replays from the cache, so only the step that was running when
//!   the process died runs again.
//!
//! Every report to the registry carries a sequence number the instance increments, so reports
//! sent from concurrent tasks cannot be applied out of order.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use burrow_runtime::ObjectContext;
use burrow_runtime::clock::LocalBoxFuture;
use burrow_runtime::guest::{
    AlarmInfo, ObjectClass, ObjectError, ObjectInstance, Request, Response,
};
use bytes::Bytes;
use serde_json::Value;

use super::entrypoint::WorkflowEvent;
use super::error::{Error, WorkflowError, message};
use super::history;
use super::limits::MAX_VALUE_BYTES;
use super::protocol::{self, EventArgs, Granted, InitArgs, StatusReply, UpdateArgs, instance};
use super::run::{Cancel, Driver, Outcome, RunCore};
use super::service::Shared;
use super::status::Status;
use super::step::WorkflowStep;
use super::store::{Meta, Store};

/// The system class of workflow instances.
pub const CLASS_NAME: &str = "__burrow_workflow";

/// The object name of an instance.
pub(crate) fn object_name(workflow: &str, id: &str) -> String {
    format!("{workflow}/{id}")
}

/// The `__burrow_workflow` class.
pub(crate) struct InstanceClass {
    pub(crate) shared: Arc<Shared>,
}

impl ObjectClass for InstanceClass {
    fn construct(&self, ctx: ObjectContext) -> Result<Rc<dyn ObjectInstance>, ObjectError> {
        Ok(Rc::new(Instance {
            store: Store::new(ctx.storage()),
            ctx,
            shared: self.shared.clone(),
            run: RefCell::new(None),
            generation: Cell::new(0),
            requesting_slot: Cell::new(false),
            slot_request_done: Rc::new(tokio::sync::Notify::new()),
        }))
    }
}

struct LiveRun {
    core: Rc<RunCore>,
    cancel: Rc<Cancel>,
}

struct Instance {
    ctx: ObjectContext,
    shared: Arc<Shared>,
    store: Store,
    run: RefCell<Option<LiveRun>>,
    /// Bumped whenever a run starts or is cancelled; a run that finds it changed is stale.
    generation: Cell<u64>,
    requesting_slot: Cell<bool>,
    /// Notified when a slot request ends (see `alarm`).
    slot_request_done: Rc<tokio::sync::Notify>,
}

/// How many times a report to the registry is retried before it is left to `recover`.
const REPORT_ATTEMPTS: u32 = 8;
/// How long (in 10 ms rounds) an instance waits for the service to be attached.
const ATTACH_WAIT_ROUNDS: u32 = 3_000;

impl Instance {
    fn meta(&self) -> Result<Option<Meta>, ObjectError> {
        self.store.meta()
    }

    fn now_ms(&self) -> i64 {
        self.ctx.now_ms()
    }

    fn save(&self, meta: &mut Meta) -> Result<(), ObjectError> {
        meta.modified_ms = self.now_ms();
        self.store.save_meta(meta)
    }

    fn running(&self) -> bool {
        self.run.borrow().is_some()
    }

    fn poke(&self) -> bool {
        match self.run.borrow().as_ref() {
            Some(run) => {
                run.core.poke();
                true
            }
            None => false,
        }
    }

    /// The next report to the registry (the caller saves `meta`).
    fn report(&self, meta: &mut Meta, wants_slot: bool) -> UpdateArgs {
        meta.update_seq += 1;
        UpdateArgs {
            workflow: meta.workflow.clone(),
            id: meta.instance.clone(),
            seq: meta.update_seq,
            status: meta.status,
            wants_slot,
            started_ms: meta.started_ms,
            ended_ms: meta.ended_ms,
        }
    }

    /// The registry of `workflow`. Alarms restored at start-up can fire before the service is
    /// attached to the runtime; they wait for it here.
    async fn registry(&self, workflow: &str) -> Option<burrow_runtime::Stub> {
        for _ in 0..ATTACH_WAIT_ROUNDS {
            if let Some(stub) = self.shared.registry_stub(workflow) {
                return Some(stub);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::error!(
            workflow,
            "the workflow service was never attached to the runtime"
        );
        None
    }

    /// Sends a report that needs no answer, after the state it describes is durable.
    fn send_report(self: &Rc<Self>, update: UpdateArgs) {
        let this = self.clone();
        self.ctx.wait_until(async move {
            if let Err(error) = this.ctx.storage().sync().await {
                tracing::error!(error = %error.message, "workflow instance state not durable");
                return;
            }
            let Some(registry) = this.registry(&update.workflow).await else {
                return;
            };
            for attempt in 0..REPORT_ATTEMPTS {
                match protocol::call::<_, Granted>(&registry, protocol::registry::UPDATE, &update)
                    .await
                {
                    Ok(_) => return,
                    Err(error) => {
                        tracing::warn!(instance = %update.id, attempt, %error, "workflow status report failed");
                        tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                    }
                }
            }
        });
    }

    /// Runs the instance if it may: at once when it holds a slot, else after asking for one.
    fn ensure_running(self: &Rc<Self>) -> Result<(), ObjectError> {
        if self.poke() {
            return Ok(());
        }
        let Some(mut meta) = self.meta()? else {
            return Ok(());
        };
        if !meta.status.wants_slot() {
            return Ok(());
        }
        if meta.has_slot {
            self.start_run(&mut meta)
        } else {
            self.request_slot();
            Ok(())
        }
    }

    /// Asks the registry for a slot; starts a run when it grants one. Otherwise the instance is
    /// `queued`, and the registry sends `grant` when a slot frees up.
    fn request_slot(self: &Rc<Self>) {
        if self.requesting_slot.replace(true) {
            return;
        }
        let this = self.clone();
        self.ctx.wait_until(async move {
            this.request_slot_now().await;
            this.requesting_slot.set(false);
            this.slot_request_done.notify_waiters();
        });
    }

    async fn request_slot_now(self: &Rc<Self>) {
        for attempt in 0..REPORT_ATTEMPTS {
            let update = match self.meta() {
                Ok(Some(mut meta)) if meta.status.wants_slot() && !meta.has_slot => {
                    let update = self.report(&mut meta, true);
                    if let Err(error) = self.save(&mut meta) {
                        tracing::error!(error = %error.message, "workflow instance state not saved");
                        return;
                    }
                    update
                }
                Ok(_) => return,
                Err(error) => {
                    tracing::error!(error = %error.message, "workflow instance state not readable");
                    return;
                }
            };
            // The registry must never see a sequence number the instance could forget.
            if let Err(error) = self.ctx.storage().sync().await {
                tracing::error!(error = %error.message, "workflow instance state not durable");
                return;
            }
            let Some(registry) = self.registry(&update.workflow).await else {
                return;
            };
            match protocol::call::<_, Granted>(&registry, protocol::registry::UPDATE, &update).await
            {
                Ok(Granted { granted }) => {
                    let result = self.meta().and_then(|meta| match meta {
                        Some(mut meta) if meta.status.wants_slot() && !meta.has_slot => {
                            if granted {
                                meta.has_slot = true;
                                self.start_run(&mut meta)
                            } else {
                                meta.status = Status::Queued;
                                self.save(&mut meta)
                            }
                        }
                        _ => Ok(()),
                    });
                    if let Err(error) = result {
                        tracing::error!(error = %error.message, "workflow instance could not start");
                    }
                    return;
                }
                Err(error) => {
                    tracing::warn!(instance = %update.id, attempt, %error, "workflow slot request failed");
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
            }
        }
    }

    /// Starts a run (the instance holds a slot).
    fn start_run(self: &Rc<Self>, meta: &mut Meta) -> Result<(), ObjectError> {
        let now = self.now_ms();
        let Some(definition) = self.shared.definition(&meta.workflow) else {
            meta.status = Status::Errored;
            meta.error = Some(WorkflowError::fatal(format!(
                "no Workflow named \"{}\" is registered with this server",
                meta.workflow
            )));
            meta.ended_ms = Some(now);
            meta.has_slot = false;
            let update = self.report(meta, false);
            self.save(meta)?;
            self.send_report(update);
            return Ok(());
        };
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        tracing::debug!(instance = %meta.instance, generation, "workflow run starts");
        let core = RunCore::new(
            self.store.clone(),
            self.shared.clock.clone(),
            self.shared.metrics.clone(),
            self.shared.options.max_steps,
            meta.pause_requested,
            meta.next_step,
        );
        let cancel = Rc::new(Cancel::default());
        meta.status = if meta.pause_requested {
            Status::WaitingForPause
        } else {
            Status::Running
        };
        meta.started_ms.get_or_insert(now);
        meta.wake_ms = None;
        self.save(meta)?;
        let payload: Value = serde_json::from_str(&meta.params).unwrap_or(Value::Null);
        let event = WorkflowEvent {
            payload,
            timestamp_ms: meta.created_ms,
            instance_id: meta.instance.clone(),
        };
        let run = definition.run(event, WorkflowStep { core: core.clone() });
        *self.run.borrow_mut() = Some(LiveRun {
            core: core.clone(),
            cancel: cancel.clone(),
        });
        let this = self.clone();
        self.ctx.wait_until(async move {
            let outcome = Driver {
                run,
                core: core.clone(),
                cancel,
            }
            .await;
            tracing::debug!(
                generation,
                current = this.generation.get(),
                ?outcome,
                "workflow run ended"
            );
            if this.generation.get() != generation {
                return;
            }
            this.run.borrow_mut().take();
            if let Outcome::Cancelled = outcome {
                return;
            }
            match this.conclude(outcome, core.next_step()) {
                Ok(update) => this.send_report(update),
                Err(error) => {
                    tracing::error!(error = %error.message, "workflow instance state not saved")
                }
            }
        });
        Ok(())
    }

    /// Stores how a run ended; returns the report for the registry.
    fn conclude(&self, outcome: Outcome, next_step: i64) -> Result<UpdateArgs, ObjectError> {
        let mut meta = self
            .meta()?
            .ok_or_else(|| ObjectError::internal("workflow instance has no state"))?;
        meta.next_step = meta.next_step.max(next_step);
        let now = self.now_ms();
        let storage = self.ctx.storage();
        match outcome {
            Outcome::Finished(Ok(output)) => {
                let json = output.to_string();
                if json.len() > MAX_VALUE_BYTES {
                    meta.status = Status::Errored;
                    meta.error = Some(WorkflowError::internal(message::OUTPUT_TOO_LARGE));
                } else {
                    meta.status = Status::Complete;
                    meta.output = Some(json);
                }
                meta.ended_ms = Some(now);
            }
            Outcome::Finished(Err(error)) | Outcome::Fatal(error) => {
                meta.status = Status::Errored;
                meta.error = Some(error);
                meta.ended_ms = Some(now);
            }
            Outcome::Suspended { wake_ms } => {
                if meta.pause_requested {
                    meta.status = Status::Paused;
                    meta.paused_ms = Some(now);
                    meta.wake_ms = None;
                } else {
                    meta.status = Status::Waiting;
                    meta.wake_ms = wake_ms;
                }
            }
            Outcome::Cancelled => {}
        }
        match meta.wake_ms {
            Some(wake_ms) if meta.status == Status::Waiting => storage.set_alarm(wake_ms)?,
            _ => storage.delete_alarm()?,
        }
        if meta.status.is_finished() {
            self.shared.metrics.instance_finished();
        }
        meta.has_slot = false;
        let update = self.report(&mut meta, false);
        self.save(&mut meta)?;
        Ok(update)
    }

    fn cancel_run(&self) {
        if let Some(run) = self.run.borrow_mut().take() {
            run.cancel.cancel();
        }
        self.generation.set(self.generation.get() + 1);
    }

    /// The instance's timers or an event may let it go on.
    fn wake(self: &Rc<Self>) -> Result<(), ObjectError> {
        if self.poke() {
            return Ok(());
        }
        let Some(mut meta) = self.meta()? else {
            return Ok(());
        };
        if meta.status == Status::Waiting {
            meta.status = Status::Queued;
            self.save(&mut meta)?;
        }
        self.ensure_running()
    }

    // RPC methods.

    fn init(self: &Rc<Self>, args: InitArgs) -> Result<Result<(), Error>, ObjectError> {
        if let Some(mut meta) = self.meta()? {
            // A repeated `init` (the registry recovering after a crash) is a `grant`: the
            // instance runs again if it still wants to.
            if args.granted && meta.status.wants_slot() {
                if !meta.has_slot {
                    meta.has_slot = true;
                    self.save(&mut meta)?;
                }
                self.ensure_running()?;
            }
            return Ok(Ok(()));
        }
        let now = self.now_ms();
        let mut meta = Meta {
            workflow: args.workflow,
            instance: args.instance_id,
            params: args.params,
            status: Status::Queued,
            output: None,
            error: None,
            created_ms: args.created_ms,
            started_ms: None,
            ended_ms: None,
            modified_ms: now,
            paused_ms: None,
            pause_requested: false,
            wake_ms: None,
            has_slot: args.granted,
            update_seq: 0,
            next_step: 0,
            next_event: 0,
        };
        if args.granted {
            // start_run stores the state, already running: one write instead of two.
            self.start_run(&mut meta)?;
        } else {
            self.store.save_meta(&meta)?;
            self.request_slot();
        }
        Ok(Ok(()))
    }

    fn grant(self: &Rc<Self>) -> Result<Result<Granted, Error>, ObjectError> {
        let Some(mut meta) = self.meta()? else {
            return Ok(Ok(Granted { granted: false }));
        };
        if !meta.status.wants_slot() {
            return Ok(Ok(Granted { granted: false }));
        }
        if !meta.has_slot {
            meta.has_slot = true;
            self.save(&mut meta)?;
        }
        self.ensure_running()?;
        Ok(Ok(Granted { granted: true }))
    }

    fn recover(self: &Rc<Self>) -> Result<Result<(), Error>, ObjectError> {
        let Some(mut meta) = self.meta()? else {
            return Ok(Ok(()));
        };
        if meta.status.wants_slot() {
            self.ensure_running()?;
        } else {
            let update = self.report(&mut meta, false);
            self.save(&mut meta)?;
            self.send_report(update);
        }
        Ok(Ok(()))
    }

    fn status(&self) -> Result<Result<StatusReply, Error>, ObjectError> {
        Ok(match self.meta()? {
            Some(meta) => Ok(StatusReply {
                status: meta.status,
                output: meta.output,
                error: meta.error,
            }),
            None => Err(Error::NotFound(String::new())),
        })
    }

    fn details(&self) -> Result<Result<Value, Error>, ObjectError> {
        let Some(meta) = self.meta()? else {
            return Ok(Err(Error::NotFound(String::new())));
        };
        let steps = self.store.steps()?;
        Ok(Ok(history::details(&meta, &steps)))
    }

    fn pause(self: &Rc<Self>) -> Result<Result<Status, Error>, ObjectError> {
        let Some(mut meta) = self.meta()? else {
            return Ok(Err(Error::NotFound(String::new())));
        };
        let now = self.now_ms();
        match meta.status {
            Status::Running | Status::WaitingForPause if self.running() => {
                meta.pause_requested = true;
                meta.status = Status::WaitingForPause;
                self.save(&mut meta)?;
                if let Some(run) = self.run.borrow().as_ref() {
                    run.core.set_paused(true);
                }
            }
            Status::Queued | Status::Running | Status::WaitingForPause | Status::Waiting => {
                meta.pause_requested = true;
                meta.status = Status::Paused;
                meta.paused_ms = Some(now);
                meta.has_slot = false;
                self.ctx.storage().delete_alarm()?;
                let update = self.report(&mut meta, false);
                self.save(&mut meta)?;
                self.send_report(update);
            }
            _ => {}
        }
        Ok(Ok(meta.status))
    }

    fn resume(self: &Rc<Self>) -> Result<Result<Status, Error>, ObjectError> {
        let Some(mut meta) = self.meta()? else {
            return Ok(Err(Error::NotFound(String::new())));
        };
        match meta.status {
            Status::WaitingForPause => {
                meta.pause_requested = false;
                meta.status = Status::Running;
                self.save(&mut meta)?;
                if let Some(run) = self.run.borrow().as_ref() {
                    run.core.set_paused(false);
                }
            }
            Status::Paused => {
                if let Some(paused_ms) = meta.paused_ms {
                    self.store.shift_timers(self.now_ms() - paused_ms)?;
                }
                meta.pause_requested = false;
                meta.paused_ms = None;
                meta.status = Status::Queued;
                self.save(&mut meta)?;
                self.ensure_running()?;
            }
            _ => {}
        }
        Ok(self
            .meta()?
            .map(|meta| meta.status)
            .ok_or(Error::NotFound(String::new())))
    }

    fn terminate(self: &Rc<Self>) -> Result<Result<Status, Error>, ObjectError> {
        let Some(mut meta) = self.meta()? else {
            return Ok(Err(Error::NotFound(String::new())));
        };
        if meta.status.is_finished() {
            return Ok(Err(Error::CannotTerminate));
        }
        self.cancel_run();
        meta.status = Status::Terminated;
        meta.ended_ms = Some(self.now_ms());
        meta.pause_requested = false;
        meta.wake_ms = None;
        meta.has_slot = false;
        self.ctx.storage().delete_alarm()?;
        self.shared.metrics.instance_finished();
        let update = self.report(&mut meta, false);
        self.save(&mut meta)?;
        self.send_report(update);
        Ok(Ok(meta.status))
    }

    fn restart(self: &Rc<Self>) -> Result<Result<Status, Error>, ObjectError> {
        let Some(mut meta) = self.meta()? else {
            return Ok(Err(Error::NotFound(String::new())));
        };
        self.cancel_run();
        self.ctx.storage().delete_alarm()?;
        meta.status = Status::Queued;
        meta.output = None;
        meta.error = None;
        meta.started_ms = None;
        meta.ended_ms = None;
        meta.paused_ms = None;
        meta.pause_requested = false;
        meta.wake_ms = None;
        meta.next_step = 0;
        meta.modified_ms = self.now_ms();
        self.store.wipe_run(&meta)?;
        self.ensure_running()?;
        Ok(Ok(Status::Queued))
    }

    fn event(self: &Rc<Self>, args: EventArgs) -> Result<Result<(), Error>, ObjectError> {
        let Some(mut meta) = self.meta()? else {
            return Ok(Err(Error::NotFound(String::new())));
        };
        self.store.insert_event(
            meta.next_event,
            &args.event_type,
            &args.payload,
            args.timestamp_ms,
        )?;
        meta.next_event += 1;
        self.save(&mut meta)?;
        if meta.status == Status::Waiting || self.running() {
            self.wake()?;
        }
        Ok(Ok(()))
    }

    fn purge(&self) -> Result<Result<(), Error>, ObjectError> {
        self.cancel_run();
        self.store.purge()?;
        Ok(Ok(()))
    }

    fn alarm_now(self: &Rc<Self>) -> Result<(), ObjectError> {
        if self.poke() {
            return Ok(());
        }
        let Some(meta) = self.meta()? else {
            return Ok(());
        };
        match meta.status {
            Status::Waiting => self.wake(),
            Status::Running | Status::WaitingForPause | Status::Queued => self.ensure_running(),
            _ => Ok(()),
        }
    }

    fn dispatch(self: &Rc<Self>, method: &str, args: &[u8]) -> Result<Bytes, ObjectError> {
        match method {
            instance::INIT => protocol::reply(self.init(protocol::args(method, args)?)?),
            instance::GRANT => protocol::reply(self.grant()?),
            instance::RECOVER => protocol::reply(self.recover()?),
            instance::STATUS => protocol::reply(self.status()?),
            instance::DETAILS => protocol::reply(self.details()?),
            instance::PAUSE => protocol::reply(self.pause()?),
            instance::RESUME => protocol::reply(self.resume()?),
            instance::TERMINATE => protocol::reply(self.terminate()?),
            instance::RESTART => protocol::reply(self.restart()?),
            instance::EVENT => protocol::reply(self.event(protocol::args(method, args)?)?),
            instance::PURGE => protocol::reply(self.purge()?),
            other => Err(ObjectError::internal(format!(
                "workflow instances have no method {other:?}"
            ))),
        }
    }
}

impl ObjectInstance for Instance {
    fn fetch(
        self: Rc<Self>,
        _request: Request,
    ) -> LocalBoxFuture<'static, Result<Response, ObjectError>> {
        Box::pin(async {
            Err(ObjectError::internal(
                "workflow instances are reached through their binding",
            ))
        })
    }

    fn call(
        self: Rc<Self>,
        method: String,
        args: Bytes,
    ) -> LocalBoxFuture<'static, Result<Bytes, ObjectError>> {
        Box::pin(async move { self.dispatch(&method, &args) })
    }

    fn alarm(self: Rc<Self>, _info: AlarmInfo) -> LocalBoxFuture<'static, Result<(), ObjectError>> {
        Box::pin(async move {
            self.alarm_now()?;
            // A wake-up saves `queued` and then asks the registry for a slot. Until the registry
            // has the request, nothing else would ever ask again after a crash (the registry
            // only re-dispatches instances holding a slot or never initialised), so the alarm
            // ends only after the request did: if the node dies first, the alarm fires again
            // after the restart and asks again. (Found by the crash soak: instances stuck in
            // `queued` forever.)
            while self.requesting_slot.get() {
                self.slot_request_done.notified().await;
            }
            Ok(())
        })
    }
}
