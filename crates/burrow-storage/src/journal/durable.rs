//! [`Durable`]: the handle an append returns, resolved when its record is durable.
//!
//! It is both a future (for shard threads running an async runtime) and a blocking wait (for
//! threads that have none). The fast path reads two atomics; only a handle that must actually
//! wait takes the state lock, and then registers its waker in the one slot its append reserved,
//! so polling never allocates beyond cloning a waker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use super::queue::State;
use super::{Error, Inner, Lsn};

/// Resolves to the record's [`Lsn`] once the record is durable, or to [`Error::Poisoned`] if the
/// journal failed first. Await it, or call [`Durable::wait`].
#[must_use = "a record is not acknowledged until its Durable resolves"]
pub struct Durable {
    inner: Arc<Inner>,
    lsn: u64,
    end: u64,
    /// The record's waiter slot.
    seq: u64,
    /// True once a waker is registered in the slot.
    registered: bool,
}

impl Durable {
    pub(super) fn new(inner: Arc<Inner>, lsn: u64, end: u64, seq: u64) -> Durable {
        Durable {
            inner,
            lsn,
            end,
            seq,
            registered: false,
        }
    }

    /// The record's position.
    pub fn lsn(&self) -> Lsn {
        Lsn(self.lsn)
    }

    /// The position just past the record.
    pub fn end(&self) -> Lsn {
        Lsn(self.end)
    }

    /// True once the record is durable (false if the journal was poisoned before it was).
    pub fn is_durable(&self) -> bool {
        self.inner.durable_lsn.load(Ordering::Acquire) >= self.end
    }

    /// Blocks the calling thread until the record is durable or the journal is poisoned. Some
    /// driver must make progress meanwhile: the I/O thread, or another thread calling
    /// [`Journal::flush_once`](super::Journal::flush_once). A single-threaded caller flushes
    /// first and waits after.
    pub fn wait(&self) -> Result<Lsn, Error> {
        if let Some(outcome) = self.outcome_unlocked() {
            return outcome;
        }
        let mut state = self.inner.lock_state();
        state.blocked_waiters += 1;
        let outcome = loop {
            if let Some(outcome) = self.outcome(&state) {
                break outcome;
            }
            state = self
                .inner
                .durable_changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        };
        state.blocked_waiters -= 1;
        outcome
    }

    /// The outcome if it is already known, from the atomics alone.
    fn outcome_unlocked(&self) -> Option<Result<Lsn, Error>> {
        if self.is_durable() {
            return Some(Ok(Lsn(self.lsn)));
        }
        if self.inner.poisoned.load(Ordering::Acquire) {
            return Some(Err(self.inner.poisoned_error()));
        }
        None
    }

    /// The outcome if it is known, checked under the state lock (so no wake-up can be missed
    /// between this check and registering).
    fn outcome(&self, state: &State) -> Option<Result<Lsn, Error>> {
        // Durability is checked first: a record made durable before a later failure stays so.
        if self.is_durable() {
            return Some(Ok(Lsn(self.lsn)));
        }
        state.poison.as_ref().map(|cause| {
            Err(Error::Poisoned {
                cause: Arc::clone(cause),
            })
        })
    }
}

impl Future for Durable {
    type Output = Result<Lsn, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(outcome) = this.outcome_unlocked() {
            return Poll::Ready(outcome);
        }
        let mut state = this.inner.lock_state();
        if let Some(outcome) = this.outcome(&state) {
            return Poll::Ready(outcome);
        }
        let registered = state.waiters.register(this.seq, cx.waker());
        assert!(
            registered,
            "journal invariant: a record neither durable nor poisoned keeps its waiter slot"
        );
        this.registered = true;
        Poll::Pending
    }
}

impl Drop for Durable {
    fn drop(&mut self) {
        if self.registered && !self.is_durable() {
            self.inner.lock_state().waiters.unregister(self.seq);
        }
    }
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("lsn", &self.lsn)
            .field("end", &self.end)
            .field("durable", &self.is_durable())
            .finish()
    }
}
