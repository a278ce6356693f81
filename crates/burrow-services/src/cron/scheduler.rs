//! The scheduler loop, its triggers and the handler interface. See the module docs of
//! [`crate::cron`] for the protocol.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use burrow_config::CronTrigger;
use burrow_config::cron::{self, Schedule};
use burrow_runtime::clock::{Clock, LocalBoxFuture};
use burrow_runtime::shard::{self, Shards};
use tokio::sync::Notify;

/// What a `scheduled` handler is told (`controller` in a JavaScript Worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledController {
    /// The expression exactly as configured (`controller.cron`).
    pub cron: String,
    /// The time this run was scheduled for, in epoch milliseconds (`controller.scheduledTime`).
    pub scheduled_time_ms: i64,
}

/// A Worker's `scheduled` handler. Called on a shard thread; the future runs there and need not
/// be `Send`. An `Err` is logged and counted, as Cloudflare records a failed cron run.
pub trait ScheduledHandler: Send + Sync + 'static {
    /// Runs the handler for one fire (or one manual trigger).
    fn scheduled(
        &self,
        controller: ScheduledController,
    ) -> LocalBoxFuture<'static, Result<(), String>>;
}

impl<F, Fut> ScheduledHandler for F
where
    F: Fn(ScheduledController) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + 'static,
{
    fn scheduled(
        &self,
        controller: ScheduledController,
    ) -> LocalBoxFuture<'static, Result<(), String>> {
        Box::pin(self(controller))
    }
}

/// Why the scheduler could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An expression does not parse.
    #[error("triggers.crons: \"{cron}\" is not a valid cron expression: {source}")]
    InvalidCron {
        /// The expression.
        cron: String,
        /// What is wrong with it.
        #[source]
        source: cron::Error,
    },
    /// Two expressions describe the same schedule (Cloudflare refuses this too).
    #[error("triggers.crons: \"{cron}\" is the same schedule as \"{first}\" (each schedule once)")]
    Duplicate {
        /// The later expression.
        cron: String,
        /// The earlier one.
        first: String,
    },
    /// The loop could not be started on a shard.
    #[error("cannot start the cron scheduler: {0}")]
    Shard(#[from] shard::Error),
}

/// One configured cron trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    cron: String,
    schedule: Schedule,
}

impl Trigger {
    /// Parses one expression.
    pub fn parse(cron: &str) -> Result<Trigger, Error> {
        let schedule = cron::parse(cron).map_err(|source| Error::InvalidCron {
            cron: cron.to_owned(),
            source,
        })?;
        Ok(Trigger {
            cron: cron.to_owned(),
            schedule,
        })
    }

    /// Parses a list of expressions, refusing invalid ones and repeated schedules; an
    /// expression that can never fire (`0 0 30 FEB *`) is accepted with a warning.
    pub fn parse_all<S: AsRef<str>>(crons: &[S]) -> Result<Vec<Trigger>, Error> {
        let mut triggers: Vec<Trigger> = Vec::with_capacity(crons.len());
        for cron in crons {
            let trigger = Trigger::parse(cron.as_ref())?;
            if let Some(first) = triggers.iter().find(|t| t.schedule == trigger.schedule) {
                return Err(Error::Duplicate {
                    cron: trigger.cron,
                    first: first.cron.clone(),
                });
            }
            if !trigger.schedule.fires_ever() {
                tracing::warn!(cron = %trigger.cron, "cron trigger never fires (no date matches it)");
            }
            triggers.push(trigger);
        }
        Ok(triggers)
    }

    /// The triggers of a loaded configuration (already validated by `burrow_config`).
    pub fn from_config(crons: &[CronTrigger]) -> Vec<Trigger> {
        crons
            .iter()
            .map(|trigger| Trigger {
                cron: trigger.expression.clone(),
                schedule: trigger.schedule.clone(),
            })
            .collect()
    }

    /// The expression as written.
    pub fn cron(&self) -> &str {
        &self.cron
    }

    /// The first fire time strictly after `after_ms`.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        self.schedule.next_after(after_ms)
    }
}

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Most invocations of one trigger running at once; a fire beyond it is skipped.
    pub max_running_per_trigger: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_running_per_trigger: 16,
        }
    }
}

/// Counters of one trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerStats {
    /// The expression.
    pub cron: String,
    /// Invocations started by the schedule.
    pub fired: u64,
    /// Invocations that returned an error.
    pub failed: u64,
    /// Fires skipped because too many invocations were running, or no shard took them.
    pub skipped: u64,
    /// Invocations running now.
    pub running: usize,
    /// The next fire time, in epoch milliseconds, if there is one.
    pub next_ms: Option<i64>,
}

/// Most steps taken to find a trigger's latest missed time after a late wake-up; beyond it the
/// earliest missed time is used. Minute triggers need one step per minute of delay.
const MAX_CATCH_UP_STEPS: usize = 100_000;
const NO_NEXT: i64 = i64::MAX;

struct TriggerState {
    trigger: Trigger,
    fired: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    running: AtomicUsize,
    next_ms: AtomicI64,
}

struct Inner {
    triggers: Vec<TriggerState>,
    handler: Arc<dyn ScheduledHandler>,
    shards: Shards,
    clock: Arc<dyn Clock>,
    options: Options,
    next_shard: AtomicUsize,
    stopped: AtomicBool,
    stop: Notify,
}

/// The node's cron scheduler. Cheap to clone; [`Scheduler::stop`] ends the loop for all clones.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let crons: Vec<&str> = self
            .inner
            .triggers
            .iter()
            .map(|t| t.trigger.cron())
            .collect();
        formatter
            .debug_struct("Scheduler")
            .field("triggers", &crons)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Starts the loop on shard 0. With no triggers it only serves [`Scheduler::run_now`].
    /// Call [`Scheduler::stop`] before shutting the shards down.
    pub fn start(
        triggers: Vec<Trigger>,
        handler: Arc<dyn ScheduledHandler>,
        shards: Shards,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Result<Scheduler, Error> {
        let now = clock.now_ms();
        let triggers = triggers
            .into_iter()
            .map(|trigger| TriggerState {
                next_ms: AtomicI64::new(trigger.next_after(now).unwrap_or(NO_NEXT)),
                trigger,
                fired: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
                running: AtomicUsize::new(0),
            })
            .collect();
        let inner = Arc::new(Inner {
            triggers,
            handler,
            shards: shards.clone(),
            clock,
            options,
            next_shard: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
            stop: Notify::new(),
        });
        if !inner.triggers.is_empty() {
            let looping = inner.clone();
            shards.spawn(0, move || run_loop(looping))?;
            for state in &inner.triggers {
                tracing::info!(
                    cron = %state.trigger.cron(),
                    next_ms = state.next_ms.load(Ordering::Acquire),
                    "cron trigger scheduled"
                );
            }
        }
        Ok(Scheduler { inner })
    }

    /// Ends the loop; invocations already running finish on their own.
    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::Release);
        self.inner.stop.notify_one();
    }

    /// Runs the handler now for `cron` (any string, configured or not) and waits for it: the
    /// local trigger endpoints. Not counted in [`Scheduler::stats`].
    pub async fn run_now(&self, controller: ScheduledController) -> Result<(), String> {
        let handler = self.inner.handler.clone();
        let shard = self.inner.pick_shard();
        self.inner
            .shards
            .run(
                shard,
                move || async move { handler.scheduled(controller).await },
            )
            .await
            .map_err(|error| format!("the scheduled handler could not run: {error}"))?
    }

    /// Counters of every trigger, in configuration order.
    pub fn stats(&self) -> Vec<TriggerStats> {
        self.inner
            .triggers
            .iter()
            .map(|state| TriggerStats {
                cron: state.trigger.cron().to_owned(),
                fired: state.fired.load(Ordering::Acquire),
                failed: state.failed.load(Ordering::Acquire),
                skipped: state.skipped.load(Ordering::Acquire),
                running: state.running.load(Ordering::Acquire),
                next_ms: Some(state.next_ms.load(Ordering::Acquire)).filter(|n| *n != NO_NEXT),
            })
            .collect()
    }
}

impl Inner {
    fn pick_shard(&self) -> usize {
        self.next_shard.fetch_add(1, Ordering::Relaxed) % self.shards.count()
    }

    /// Starts one invocation of trigger `index` on a shard, unless too many are running.
    fn fire(self: &Arc<Self>, index: usize, scheduled_time_ms: i64) {
        let state = &self.triggers[index];
        let running = state.running.fetch_add(1, Ordering::AcqRel);
        if running >= self.options.max_running_per_trigger {
            state.running.fetch_sub(1, Ordering::AcqRel);
            state.skipped.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(
                cron = %state.trigger.cron(),
                running,
                "cron trigger skipped: its earlier runs are still going"
            );
            return;
        }
        state.fired.fetch_add(1, Ordering::AcqRel);
        let controller = ScheduledController {
            cron: state.trigger.cron().to_owned(),
            scheduled_time_ms,
        };
        let inner = self.clone();
        let spawned = self.shards.spawn(self.pick_shard(), move || async move {
            let state = &inner.triggers[index];
            let result = inner.handler.scheduled(controller.clone()).await;
            state.running.fetch_sub(1, Ordering::AcqRel);
            if let Err(error) = result {
                state.failed.fetch_add(1, Ordering::AcqRel);
                tracing::error!(cron = %controller.cron, scheduled_time_ms, %error, "scheduled handler failed");
            }
        });
        if let Err(error) = spawned {
            state.running.fetch_sub(1, Ordering::AcqRel);
            state.fired.fetch_sub(1, Ordering::AcqRel);
            state.skipped.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(cron = %state.trigger.cron(), %error, "cron trigger skipped");
        }
    }
}

/// The loop: sleep until the soonest fire time, fire what is due, repeat.
async fn run_loop(inner: Arc<Inner>) {
    loop {
        if inner.stopped.load(Ordering::Acquire) {
            return;
        }
        let soonest = inner
            .triggers
            .iter()
            .map(|state| state.next_ms.load(Ordering::Acquire))
            .min()
            .unwrap_or(NO_NEXT);
        if soonest == NO_NEXT {
            // Nothing will ever fire again.
            inner.stop.notified().await;
            continue;
        }
        tokio::select! {
            () = inner.clock.sleep_until(soonest) => {}
            () = inner.stop.notified() => continue,
        }
        let now = inner.clock.now_ms();
        for (index, state) in inner.triggers.iter().enumerate() {
            let due = state.next_ms.load(Ordering::Acquire);
            if due > now {
                continue;
            }
            // Missed times are skipped: fire once, for the latest time not after now.
            let mut fire_at = due;
            for _ in 0..MAX_CATCH_UP_STEPS {
                match state.trigger.next_after(fire_at) {
                    Some(next) if next <= now => fire_at = next,
                    _ => break,
                }
            }
            inner.fire(index, fire_at);
            let next = state
                .trigger
                .next_after(now.max(fire_at))
                .unwrap_or(NO_NEXT);
            state.next_ms.store(next, Ordering::Release);
        }
    }
}
