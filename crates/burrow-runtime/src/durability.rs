//! The output gate's view of the journal on one shard: how far this shard's commits are durable,
//! and a way to wait until a given commit is.
//!
//! Each commit on the shard hands its `Durable` to [`ShardDurability::track`]. Only the newest one
//! is kept: the journal makes records durable in order, so once the newest is durable every
//! earlier one is too. One watcher task per shard awaits it and wakes the gates waiting below it.

use burrow_storage::journal::Durable;
use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub(crate) struct ShardDurability {
    durable_end: Cell<u64>,
    failed: Cell<bool>,
    latest: RefCell<Option<Durable>>,
    watcher: RefCell<Option<Waker>>,
    /// Gates waiting: (journal end they need, waker). Bounded by the events in flight on the shard.
    waiters: RefCell<Vec<(u64, Waker)>>,
}

/// The journal failed: nothing can be acknowledged any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StorageFailed;

impl ShardDurability {
    /// Remembers a commit's durability handle.
    pub(crate) fn track(&self, durable: Durable) {
        let mut latest = self.latest.borrow_mut();
        if latest.as_ref().is_none_or(|l| l.end() < durable.end()) {
            *latest = Some(durable);
        }
        drop(latest);
        if let Some(waker) = self.watcher.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Whether every commit up to journal position `end` is durable now.
    pub(crate) fn is_durable(&self, end: u64) -> bool {
        self.durable_end.get() >= end
    }

    /// Resolves once every commit up to journal position `end` is durable.
    pub(crate) fn wait(
        self: &Rc<Self>,
        end: u64,
    ) -> impl Future<Output = Result<(), StorageFailed>> + 'static {
        let this = self.clone();
        poll_fn(move |cx| {
            if this.failed.get() {
                return Poll::Ready(Err(StorageFailed));
            }
            if this.durable_end.get() >= end {
                return Poll::Ready(Ok(()));
            }
            this.waiters.borrow_mut().push((end, cx.waker().clone()));
            Poll::Pending
        })
    }

    /// The shard's watcher: runs for the shard's lifetime.
    pub(crate) async fn watch(self: Rc<Self>) {
        loop {
            let next = poll_fn(|cx| match self.latest.borrow_mut().take() {
                Some(durable) => Poll::Ready(durable),
                None => {
                    *self.watcher.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
            let mut next = next;
            let outcome = poll_fn(|cx: &mut Context<'_>| Pin::new(&mut next).poll(cx)).await;
            match outcome {
                Ok(_) => {
                    self.durable_end
                        .set(self.durable_end.get().max(next.end().0));
                }
                Err(error) => {
                    tracing::error!(%error, "journal failed; objects on this shard acknowledge nothing more");
                    self.failed.set(true);
                }
            }
            let durable_end = self.durable_end.get();
            let failed = self.failed.get();
            let ready: Vec<Waker> = {
                let mut waiters = self.waiters.borrow_mut();
                let (ready, waiting): (Vec<_>, Vec<_>) = waiters
                    .drain(..)
                    .partition(|(end, _)| failed || *end <= durable_end);
                *waiters = waiting;
                ready.into_iter().map(|(_, waker)| waker).collect()
            };
            for waker in ready {
                waker.wake();
            }
        }
    }
}
