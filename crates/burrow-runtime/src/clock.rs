//! Time for the runtime: a trait so tests and the simulation drive alarms, hibernation and
//! retries with a manual clock instead of sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A future that need not be `Send` (it runs on one shard).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Wall-clock time in epoch milliseconds, and sleeping until a moment of it.
pub trait Clock: Send + Sync + 'static {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Resolves once [`Clock::now_ms`] ≥ `at_ms`. Called on a shard thread.
    fn sleep_until(&self, at_ms: i64) -> LocalBoxFuture<'static, ()>;
}

/// The real clock: the system time, and tokio's timers for sleeping.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn sleep_until(&self, at_ms: i64) -> LocalBoxFuture<'static, ()> {
        let wait = Duration::from_millis((at_ms - self.now_ms()).max(0) as u64);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that moves only when told to. Sleepers wake when [`ManualClock::advance`] passes them.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    now_ms: AtomicI64,
    sleepers: Mutex<Vec<(i64, Waker)>>,
}

impl ManualClock {
    /// A clock reading `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                now_ms: AtomicI64::new(start_ms),
                sleepers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Moves the clock forward by `by` and wakes every sleeper now due.
    pub fn advance(&self, by: Duration) {
        let now = self
            .inner
            .now_ms
            .fetch_add(by.as_millis() as i64, Ordering::AcqRel)
            + by.as_millis() as i64;
        let due: Vec<Waker> = {
            let mut sleepers = self
                .inner
                .sleepers
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let (due, waiting): (Vec<_>, Vec<_>) =
                sleepers.drain(..).partition(|(at, _)| *at <= now);
            *sleepers = waiting;
            due.into_iter().map(|(_, waker)| waker).collect()
        };
        for waker in due {
            waker.wake();
        }
    }

    /// How many sleepers are waiting (for tests that wait until a timer is armed).
    pub fn sleepers(&self) -> usize {
        self.inner
            .sleepers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.inner.now_ms.load(Ordering::Acquire)
    }

    fn sleep_until(&self, at_ms: i64) -> LocalBoxFuture<'static, ()> {
        Box::pin(ManualSleep {
            clock: self.inner.clone(),
            at_ms,
        })
    }
}

struct ManualSleep {
    clock: Arc<ManualInner>,
    at_ms: i64,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut sleepers = self
            .clock
            .sleepers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock so an advance cannot slip between the check and the register.
        if self.clock.now_ms.load(Ordering::Acquire) >= self.at_ms {
            return Poll::Ready(());
        }
        sleepers.push((self.at_ms, cx.waker().clone()));
        Poll::Pending
    }
}
