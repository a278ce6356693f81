//! One run of a workflow's `run`: the replay state its steps share, and the [`Driver`] that
//! decides when the run is over.
//!
//! # Why a waiting instance holds no memory
//! A step that must wait (a sleep not yet due, a retry delay, an event not yet sent, a pause)
//! *parks*: its future stays pending, and the run records when it could go on (`wake_ms`, or
//! never for events and pauses). The driver polls the user's `run` future; when that future is
//! pending, no step is doing work (`active` = 0) and at least one is parked, nothing in the run
//! can make progress without time passing or something arriving from outside. The driver then
//! ends the run: the instance stores "waiting until T", sets its alarm to T and drops the run.
//! When the alarm fires, an event arrives or the instance is resumed, `run` is replayed from the
//! top, and every step that already finished answers from the replay cache in storage.
//!
//! While a run is live, [`RunCore::poke`] wakes every parked step to check again (an event was
//! stored, the instance was resumed), so concurrent branches (`join!`) see events without a
//! replay. A parked timer whose time has come while other branches worked is woken by the
//! driver instead of ending the run.
//!
//! A platform failure inside a step (storage) or a misuse the instance cannot continue from (a
//! step result that is not serialisable) is *fatal*: the step records it and parks forever, and
//! the driver ends the run with it, whatever the user's code would have done.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use burrow_runtime::clock::{Clock, LocalBoxFuture};
use burrow_runtime::guest::ObjectError;
use serde_json::Value;

use super::error::{WorkflowError, message};
use super::limits::is_valid_step_name;
use super::metrics::Metrics;
use super::store::{StepKind, StepRecord, Store};

/// What a parked step's check found.
pub(crate) enum Parked<T> {
    /// Go on with this.
    Ready(T),
    /// Not yet; worth checking again at this time (or only when poked).
    Wait(Option<i64>),
}

/// The state one run of `run` shares between its steps.
pub(crate) struct RunCore {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<Metrics>,
    max_steps: u32,
    /// Calls per (kind, name) so far in this run: the occurrence counter of the cache key.
    counters: RefCell<HashMap<(StepKind, String), u32>>,
    /// `do` steps reached in this run (the step limit).
    steps: Cell<u32>,
    /// Step calls doing work (not parked, not finished).
    active: Cell<usize>,
    /// Parked step calls and when each may go on.
    parked: RefCell<HashMap<u64, Option<i64>>>,
    next_park: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
    fatal: RefCell<Option<WorkflowError>>,
    paused: Cell<bool>,
    /// When the last step result became durable (for the step latency metric).
    last_durable: Cell<Option<Instant>>,
    /// The `seq` the next new step gets (the history's order).
    next_step: Cell<i64>,
}

impl RunCore {
    pub(crate) fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        max_steps: u32,
        paused: bool,
        next_step: i64,
    ) -> Rc<RunCore> {
        Rc::new(RunCore {
            store,
            clock,
            metrics,
            max_steps,
            counters: RefCell::new(HashMap::new()),
            steps: Cell::new(0),
            active: Cell::new(0),
            parked: RefCell::new(HashMap::new()),
            next_park: Cell::new(0),
            wakers: RefCell::new(Vec::new()),
            fatal: RefCell::new(None),
            paused: Cell::new(paused),
            last_durable: Cell::new(None),
            next_step: Cell::new(next_step),
        })
    }

    /// A step reached for the first time.
    pub(crate) fn new_step(&self, kind: StepKind, name: &str, occurrence: u32) -> StepRecord {
        let seq = self.next_step.get();
        self.next_step.set(seq + 1);
        StepRecord::new(seq, kind, name, occurrence, self.now_ms())
    }

    /// A step found in storage: later new steps come after it.
    pub(crate) fn known_step(&self, record: &StepRecord) {
        if record.seq >= self.next_step.get() {
            self.next_step.set(record.seq + 1);
        }
    }

    /// The `seq` the next new step would get (saved with the instance when the run ends).
    pub(crate) fn next_step(&self) -> i64 {
        self.next_step.get()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A pause was requested (steps park before starting anything new) or lifted.
    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.set(paused);
        self.poke();
    }

    pub(crate) fn paused(&self) -> bool {
        self.paused.get()
    }

    /// Makes every parked step check again.
    pub(crate) fn poke(&self) {
        let wakers: Vec<Waker> = self.wakers.borrow_mut().drain(..).collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Marks a step call as doing work until the guard drops.
    pub(crate) fn enter(self: &Rc<Self>) -> Active {
        self.active.set(self.active.get() + 1);
        Active { core: self.clone() }
    }

    /// Validates a step name and returns its occurrence in this run (1-based). `do` steps also
    /// count against the step limit.
    pub(crate) fn occurrence(&self, kind: StepKind, name: &str) -> Result<u32, WorkflowError> {
        if kind == StepKind::Do {
            let steps = self.steps.get() + 1;
            self.steps.set(steps);
            if steps > self.max_steps {
                return Err(WorkflowError::fatal(message::step_limit(self.max_steps)));
            }
        }
        if !is_valid_step_name(name) {
            return Err(WorkflowError::fatal(message::invalid_step_name(name)));
        }
        let mut counters = self.counters.borrow_mut();
        let counter = counters.entry((kind, name.to_owned())).or_insert(0);
        *counter += 1;
        Ok(*counter)
    }

    /// Ends the run with `error` (see the module documentation). Never returns.
    pub(crate) async fn abort<T>(&self, error: WorkflowError) -> T {
        tracing::error!(error = %error, "workflow run aborted");
        self.fatal.borrow_mut().get_or_insert(error);
        std::future::pending().await
    }

    /// A storage result inside a step: a failure aborts the run.
    pub(crate) async fn storage<T>(&self, result: Result<T, ObjectError>) -> T {
        match result {
            Ok(value) => value,
            Err(error) => {
                self.abort(WorkflowError::internal(format!(
                    "Storage failure for a step due to internal error: {}",
                    error.message
                )))
                .await
            }
        }
    }

    /// Waits until what the step writes is durable: no step starts before the previous one's
    /// result is on disk.
    pub(crate) async fn sync(&self) {
        let result = self.store.storage().sync().await;
        self.storage(result).await;
        self.last_durable.set(Some(Instant::now()));
    }

    /// A step callback starts: records the latency since the previous step became durable.
    pub(crate) fn callback_starts(&self) {
        if let Some(durable) = self.last_durable.take() {
            self.metrics.record_step_gap(durable.elapsed());
        }
    }

    /// Parks until `check` finds something, re-checking whenever the run is poked.
    pub(crate) async fn park<T>(
        self: &Rc<Self>,
        mut check: impl FnMut(&RunCore) -> Result<Parked<T>, WorkflowError>,
    ) -> Result<T, WorkflowError> {
        let mut parking = Parking {
            core: self.clone(),
            id: None,
        };
        poll_fn(move |cx| match check(&parking.core) {
            Err(error) => {
                parking.unpark();
                Poll::Ready(Err(error))
            }
            Ok(Parked::Ready(value)) => {
                parking.unpark();
                Poll::Ready(Ok(value))
            }
            Ok(Parked::Wait(wake_ms)) => {
                parking.park(wake_ms);
                parking.core.wakers.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// What the driver checks after each poll of `run`.
    fn settle(&self) -> Option<Outcome> {
        if let Some(error) = self.fatal.borrow_mut().take() {
            return Some(Outcome::Fatal(error));
        }
        let parked = self.parked.borrow();
        if self.active.get() > 0 || parked.is_empty() {
            return None;
        }
        let wake_ms = parked.values().flatten().copied().min();
        Some(Outcome::Suspended { wake_ms })
    }
}

/// A step call doing work; see [`RunCore::enter`].
pub(crate) struct Active {
    core: Rc<RunCore>,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.core
            .active
            .set(self.core.active.get().saturating_sub(1));
    }
}

/// A parked step call. While parked it does not count as active; dropping it (the run ended)
/// restores the count its [`Active`] guard will take away.
struct Parking {
    core: Rc<RunCore>,
    id: Option<u64>,
}

impl Parking {
    fn park(&mut self, wake_ms: Option<i64>) {
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = self.core.next_park.get();
                self.core.next_park.set(id + 1);
                self.core
                    .active
                    .set(self.core.active.get().saturating_sub(1));
                self.id = Some(id);
                id
            }
        };
        self.core.parked.borrow_mut().insert(id, wake_ms);
    }

    fn unpark(&mut self) {
        if let Some(id) = self.id.take() {
            self.core.parked.borrow_mut().remove(&id);
            self.core.active.set(self.core.active.get() + 1);
        }
    }
}

impl Drop for Parking {
    fn drop(&mut self) {
        self.unpark();
    }
}

/// How a run ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// `run` returned.
    Finished(Result<Value, WorkflowError>),
    /// A fatal error (see the module documentation).
    Fatal(WorkflowError),
    /// Every step left is parked; wake at `wake_ms`, or only when poked from outside.
    Suspended { wake_ms: Option<i64> },
    /// Terminated, restarted or purged from outside.
    Cancelled,
}

/// Lets the instance stop a run from outside.
#[derive(Default)]
pub(crate) struct Cancel {
    cancelled: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Cancel {
    pub(crate) fn cancel(&self) {
        self.cancelled.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

/// Polls a run until it finishes, suspends, aborts or is cancelled.
pub(crate) struct Driver {
    pub(crate) run: LocalBoxFuture<'static, Result<Value, WorkflowError>>,
    pub(crate) core: Rc<RunCore>,
    pub(crate) cancel: Rc<Cancel>,
}

impl Future for Driver {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        if self.cancel.cancelled.get() {
            return Poll::Ready(Outcome::Cancelled);
        }
        *self.cancel.waker.borrow_mut() = Some(cx.waker().clone());
        // A panic in the workflow's code (an `unwrap` on a bad value) ends the instance
        // `errored` instead of leaving it running with no run behind it.
        let polled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run.as_mut().poll(cx)));
        let polled = match polled {
            Ok(polled) => polled,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                return Poll::Ready(Outcome::Fatal(WorkflowError::internal(format!(
                    "the workflow panicked: {message}"
                ))));
            }
        };
        if let Poll::Ready(result) = polled {
            if let Some(error) = self.core.fatal.borrow_mut().take() {
                return Poll::Ready(Outcome::Fatal(error));
            }
            return Poll::Ready(Outcome::Finished(result));
        }
        match self.core.settle() {
            Some(Outcome::Suspended {
                wake_ms: Some(wake_ms),
            }) if wake_ms <= self.core.now_ms() && !self.core.paused() => {
                // A timer came due while other branches worked: check again instead of ending.
                self.core.poke();
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Some(outcome) => Poll::Ready(outcome),
            None => Poll::Pending,
        }
    }
}
