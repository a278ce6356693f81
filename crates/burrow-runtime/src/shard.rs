//! The shard thread pool: N threads, each running a current-thread tokio runtime with a
//! `LocalSet`, so that everything on a shard (objects, guests, connections) may be `!Send`.
//!
//! # Protocol
//! - Work reaches a shard only as a task: a `Send` closure that the shard thread calls to build a
//!   future, which it then runs with `spawn_local`. The closure crosses threads; the future never
//!   does, so it may hold `Rc`, `RefCell` and QuickJS values.
//! - Each shard has one bounded task queue ([`Options::queue_capacity`]). [`Shards::spawn`] never
//!   waits and never grows the queue: when it is full the caller gets [`Error::Overloaded`] back and
//!   decides (answer 503, retry, shed). The queue bounds tasks *waiting* to start; tasks that have
//!   started are bounded by whoever spawns them (the ingress caps connections, the object runtime
//!   caps mailboxes).
//! - Tasks sent to one shard start in the order they were sent (one FIFO queue, one receiver that
//!   spawns each task before taking the next). Once started, tasks interleave at their await points.
//! - [`Shards::shutdown`] closes every queue (later `spawn`s fail with [`Error::ShuttingDown`]),
//!   lets each shard start what was already queued, then waits until every task on the shard has
//!   finished or the grace period has passed, whichever comes first. Tasks still running after
//!   the grace period are dropped (cancelled at their current await point), then the threads are
//!   joined. Components that can wind down politely (the ingress closing idle keep-alive
//!   connections) are told before the shards shut down; this module only bounds the wait.
//! - A task that panics takes only itself down: tokio catches the panic at the task boundary, the
//!   shard keeps running, and a [`Shards::run`] caller sees [`Error::Cancelled`].

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

/// A unit of work for a shard: called on the shard thread, it returns the future to run there.
type Task = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// Why a task could not be run on a shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The shard's task queue is full.
    #[error("shard {shard} is overloaded: its queue of {capacity} pending tasks is full")]
    Overloaded {
        /// The shard.
        shard: usize,
        /// The queue's capacity.
        capacity: usize,
    },
    /// [`Shards::shutdown`] has begun.
    #[error("the shards are shutting down")]
    ShuttingDown,
    /// The index is not below [`Shards::count`].
    #[error("there is no shard {index} (there are {count})")]
    NoSuchShard {
        /// The index asked for.
        index: usize,
        /// The number of shards.
        count: usize,
    },
    /// The task was dropped before it produced a result: it panicked, or shutdown cancelled it.
    #[error("the task on shard {shard} ended without a result (it panicked or was cancelled)")]
    Cancelled {
        /// The shard it ran on.
        shard: usize,
    },
}

/// How to start the shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Shard threads; at least 1.
    pub count: usize,
    /// Tasks that may wait in each shard's queue before [`Shards::spawn`] reports overload.
    pub queue_capacity: usize,
}

impl Options {
    /// The default queue capacity per shard. A task is small (a boxed closure), so this bounds
    /// memory at well under a megabyte per shard while absorbing bursts of thousands of
    /// connections or calls.
    pub const DEFAULT_QUEUE_CAPACITY: usize = 4_096;

    /// `count` shards with the default queue capacity.
    pub fn new(count: usize) -> Self {
        Options {
            count,
            queue_capacity: Self::DEFAULT_QUEUE_CAPACITY,
        }
    }
}

/// A handle to the shard threads. Cloning it is cheap; every clone drives the same threads.
#[derive(Clone)]
pub struct Shards {
    inner: Arc<Inner>,
}

struct Inner {
    count: usize,
    queue_capacity: usize,
    /// `None` once shutdown has begun: dropping the senders is what tells each shard to stop.
    senders: Mutex<Option<Vec<mpsc::Sender<Task>>>>,
    /// When running tasks are abandoned; set by `shutdown` before the queues close.
    deadline: Arc<Mutex<Option<Instant>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Shards")
            .field("count", &self.inner.count)
            .field("queue_capacity", &self.inner.queue_capacity)
            .finish_non_exhaustive()
    }
}

thread_local! {
    static CURRENT_SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The index of the shard whose thread this is, or `None` off the shard threads.
pub fn current_shard() -> Option<usize> {
    CURRENT_SHARD.with(Cell::get)
}

impl Shards {
    /// Starts `count` shards (at least 1) with the default queue capacity; threads are named
    /// `burrow-shard-N`.
    pub fn start(count: usize) -> std::io::Result<Shards> {
        Self::start_with(Options::new(count))
    }

    /// Starts the shards as `options` says.
    pub fn start_with(options: Options) -> std::io::Result<Shards> {
        let count = options.count.max(1);
        let queue_capacity = options.queue_capacity.max(1);
        let deadline = Arc::new(Mutex::new(None));
        let mut senders = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let (sender, receiver) = mpsc::channel(queue_capacity);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let deadline = Arc::clone(&deadline);
            let spawned = std::thread::Builder::new()
                .name(format!("burrow-shard-{index}"))
                .spawn(move || shard_main(index, runtime, receiver, &deadline));
            match spawned {
                Ok(thread) => {
                    senders.push(sender);
                    threads.push(thread);
                }
                Err(error) => {
                    // Stop the shards already started before reporting the failure.
                    drop(senders);
                    for thread in threads {
                        let _ = thread.join();
                    }
                    return Err(error);
                }
            }
        }
        Ok(Shards {
            inner: Arc::new(Inner {
                count,
                queue_capacity,
                senders: Mutex::new(Some(senders)),
                deadline,
                threads: Mutex::new(threads),
            }),
        })
    }

    /// The number of shards.
    pub fn count(&self) -> usize {
        self.inner.count
    }

    /// Runs `task` on shard `index`: the closure is `Send`, the future it returns need not be.
    /// Returns at once; fails when the shard's queue is full or shutdown has begun.
    pub fn spawn<F, Fut>(&self, index: usize, task: F) -> Result<(), Error>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let count = self.inner.count;
        if index >= count {
            return Err(Error::NoSuchShard { index, count });
        }
        let task: Task = Box::new(move || Box::pin(task()));
        let senders = self
            .inner
            .senders
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(senders) = senders.as_ref() else {
            return Err(Error::ShuttingDown);
        };
        senders[index].try_send(task).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => Error::Overloaded {
                shard: index,
                capacity: self.inner.queue_capacity,
            },
            mpsc::error::TrySendError::Closed(_) => Error::ShuttingDown,
        })
    }

    /// Like [`Shards::spawn`], but hands the task's result back through a future that any thread
    /// may await. The task is queued when `run` is called, not when the future is first polled;
    /// dropping the future does not cancel the task.
    pub fn run<F, Fut, T>(
        &self,
        index: usize,
        task: F,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'static
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let (sender, receiver) = oneshot::channel();
        let spawned = self.spawn(index, move || async move {
            let value = task().await;
            // The caller may have stopped waiting; the result is then simply dropped.
            let _ = sender.send(value);
        });
        async move {
            spawned?;
            receiver
                .await
                .map_err(|_| Error::Cancelled { shard: index })
        }
    }

    /// Stops accepting tasks, lets running ones finish for up to `grace`, then joins the threads.
    /// Idempotent; later calls return at once. Called from a shard thread, it does not wait for
    /// that thread (which cannot finish while it is inside this call).
    pub fn shutdown(&self, grace: Duration) {
        {
            let mut deadline = self
                .inner
                .deadline
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if deadline.is_none() {
                *deadline = Some(Instant::now() + grace);
            }
        }
        // Dropping the senders closes the queues; each shard drains what is queued and winds down.
        drop(
            self.inner
                .senders
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let threads = std::mem::take(
            &mut *self
                .inner
                .threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let current = std::thread::current().id();
        for thread in threads {
            if thread.thread().id() == current {
                continue;
            }
            if thread.join().is_err() {
                tracing::error!("a shard thread panicked outside any task");
            }
        }
    }
}

/// The body of shard thread `index`.
fn shard_main(
    index: usize,
    runtime: tokio::runtime::Runtime,
    mut receiver: mpsc::Receiver<Task>,
    deadline: &Mutex<Option<Instant>>,
) {
    CURRENT_SHARD.with(|current| current.set(Some(index)));
    let local = tokio::task::LocalSet::new();
    // Start tasks one by one, in queue order, until every sender is gone.
    local.block_on(&runtime, async {
        while let Some(task) = receiver.recv().await {
            tokio::task::spawn_local(task());
        }
    });
    // Shutdown: the LocalSet, awaited, finishes when its last task does.
    let deadline = deadline
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .unwrap_or_else(Instant::now);
    let finished = runtime.block_on(async {
        tokio::time::timeout_at(deadline.into(), local)
            .await
            .is_ok()
    });
    if !finished {
        tracing::warn!(
            shard = index,
            "tasks still running after the shutdown grace period were cancelled"
        );
    }
    CURRENT_SHARD.with(|current| current.set(None));
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn tasks_run_on_the_shard_asked_for() {
        let shards = Shards::start(3).expect("start");
        assert_eq!(shards.count(), 3);
        assert_eq!(current_shard(), None);
        for index in [0, 1, 2, 1, 0] {
            let (shard, name) = block_on(shards.run(index, || async {
                let name = std::thread::current().name().map(str::to_owned);
                (current_shard(), name)
            }))
            .expect("run");
            assert_eq!(shard, Some(index));
            assert_eq!(
                name.as_deref(),
                Some(format!("burrow-shard-{index}").as_str())
            );
        }
        assert_eq!(
            shards.spawn(3, || async {}),
            Err(Error::NoSuchShard { index: 3, count: 3 })
        );
        shards.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn futures_need_not_be_send() {
        let shards = Shards::start(1).expect("start");
        let total = block_on(shards.run(0, || async {
            // Rc and RefCell held across an await point: this future is !Send.
            let cell = Rc::new(RefCell::new(0));
            let clone = Rc::clone(&cell);
            let handle = tokio::task::spawn_local(async move {
                tokio::task::yield_now().await;
                *clone.borrow_mut() += 41;
            });
            tokio::task::yield_now().await;
            handle.await.expect("local task");
            *cell.borrow_mut() += 1;
            *cell.borrow()
        }))
        .expect("run");
        assert_eq!(total, 42);
        shards.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn tasks_sent_to_one_shard_start_in_order() {
        let shards = Shards::start(2).expect("start");
        let order = Arc::new(Mutex::new(Vec::new()));
        for value in 0..500 {
            let order = Arc::clone(&order);
            shards
                .spawn(1, move || async move {
                    order.lock().expect("lock").push(value);
                })
                .expect("spawn");
        }
        shards.shutdown(Duration::from_secs(5));
        let order = order.lock().expect("lock");
        assert_eq!(*order, (0..500).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_queue_reports_overload_instead_of_growing() {
        let shards = Shards::start_with(Options {
            count: 1,
            queue_capacity: 2,
        })
        .expect("start");
        // Park the shard thread so that nothing leaves the queue.
        let (release, parked) = std::sync::mpsc::channel::<()>();
        let (started_sender, started) = std::sync::mpsc::channel::<()>();
        shards
            .spawn(0, move || {
                started_sender.send(()).expect("started");
                let _ = parked.recv();
                async {}
            })
            .expect("spawn");
        started.recv().expect("the blocking task started");
        shards.spawn(0, || async {}).expect("first queued");
        shards.spawn(0, || async {}).expect("second queued");
        assert_eq!(
            shards.spawn(0, || async {}),
            Err(Error::Overloaded {
                shard: 0,
                capacity: 2
            })
        );
        release.send(()).expect("release");
        shards.shutdown(Duration::from_secs(5));
        assert_eq!(shards.spawn(0, || async {}), Err(Error::ShuttingDown));
    }

    #[test]
    fn shutdown_drains_running_and_queued_tasks() {
        let shards = Shards::start(2).expect("start");
        let finished = Arc::new(AtomicUsize::new(0));
        for index in 0..20 {
            let finished = Arc::clone(&finished);
            shards
                .spawn(index % 2, move || async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    finished.fetch_add(1, Ordering::SeqCst);
                })
                .expect("spawn");
        }
        shards.shutdown(Duration::from_secs(30));
        assert_eq!(finished.load(Ordering::SeqCst), 20);
        // A second shutdown is harmless.
        shards.shutdown(Duration::from_secs(1));
    }

    #[test]
    fn shutdown_cancels_tasks_that_outlive_the_grace_period() {
        let shards = Shards::start(1).expect("start");
        let result = shards.run(0, || async {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
        });
        shards.shutdown(Duration::from_millis(10));
        assert_eq!(block_on(result), Err(Error::Cancelled { shard: 0 }));
    }

    #[test]
    fn a_panicking_task_does_not_take_the_shard_down() {
        let shards = Shards::start(1).expect("start");
        let result = block_on(shards.run(0, || async {
            panic!("deliberate panic in a test task");
        }));
        assert_eq!(result, Err::<(), _>(Error::Cancelled { shard: 0 }));
        let value = block_on(shards.run(0, || async { 7 })).expect("the shard still runs");
        assert_eq!(value, 7);
        shards.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn the_handle_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Shards>();
    }
}
