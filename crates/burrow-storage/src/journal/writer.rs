//! The driver: one step writes and syncs one batch, then publishes it; the I/O thread that
//! loops that step; and the preparer thread that keeps a spare segment ready beside it.
//!
//! A step holds the writer lock for its whole duration, so drivers are serialized and batches
//! reach the disk strictly in Lsn order. The state lock is taken only briefly, to pop a batch and
//! to publish it, so appends continue while the driver writes and syncs: whatever arrives in the
//! meantime forms the next batch, which is what makes one fsync acknowledge many commits.
//!
//! Syncing a write that grows a file costs ext4 a metadata commit on top of the data: measured
//! here, 10 KiB appends with `fdatasync` took p50 152 µs into a fresh file and 92 µs into a
//! preallocated one. So segments should start as zero-filled, synced spares. A hand-stepped
//! driver preallocates when it finds nothing queued; the I/O thread never does (under load the
//! queue is never empty), and leaves it to the preparer thread, which writes zeros into the next
//! spare while the current segment fills.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard};
use std::task::Waker;
use std::thread::JoinHandle;

use crate::fs::{File, OpenMode};

use super::format::{SEGMENT_HEADER_BYTES, segment_file_name, spare_file_name};
use super::queue::Batch;
use super::segments::{Segment, Spare};
use super::{Error, Inner, SyncMode};

/// Bytes of zeros written per preallocation step, so a step never delays a batch for long.
const PREALLOCATE_STEP_BYTES: usize = 256 << 10;
static ZEROS: [u8; PREALLOCATE_STEP_BYTES] = [0; PREALLOCATE_STEP_BYTES];

/// The driver's own state, under `Inner::writer`.
#[derive(Default)]
pub(super) struct Writer {
    /// The segment batches are being written to: its base and file.
    current: Option<(u64, Arc<dyn File>)>,
    /// Reused buffer of wakers to wake after publishing.
    wakers: Vec<Waker>,
}

/// Preallocation's state, under `Inner::preparer`.
#[derive(Default)]
pub(super) struct Preparer {
    /// A spare being preallocated, taken out of the spare list while zeros go into it.
    preparing: Option<Spare>,
    /// Set when preallocation failed; no more attempts until the next segment starts.
    failed: bool,
}

/// What one driver step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Made a batch with this many records durable.
    Flushed(usize),
    /// Did one step of preallocating a spare segment.
    Preallocated,
    /// Nothing to do.
    Idle,
}

impl Inner {
    pub(super) fn flush_once(&self) -> Result<usize, Error> {
        match self.step(true)? {
            Step::Flushed(records) => Ok(records),
            Step::Preallocated | Step::Idle => Ok(0),
        }
    }

    /// One driver step: one batch, or (if `preallocate`) one preallocation step when nothing is
    /// queued. A batch holding only the padding that closes a segment is followed by the batch
    /// that starts the next one (an append queues both at once), and the step flushes both.
    pub(super) fn step(&self, preallocate: bool) -> Result<Step, Error> {
        let mut writer = self.lock_writer();
        let mut flushed_padding = false;
        loop {
            let batch = {
                let mut state = self.lock_state();
                if let Some(cause) = &state.poison {
                    return Err(Error::Poisoned {
                        cause: Arc::clone(cause),
                    });
                }
                state.queue.pop_front()
            };
            let Some(batch) = batch else {
                if flushed_padding {
                    return Ok(Step::Flushed(0));
                }
                drop(writer);
                return Ok(if preallocate {
                    self.preallocate_step()
                } else {
                    Step::Idle
                });
            };
            if let Err(error) = self.write_batch(&mut writer, &batch) {
                self.poison(&error);
                return Err(error);
            }
            let records = self.publish(&mut writer, batch);
            if records > 0 {
                return Ok(Step::Flushed(records));
            }
            flushed_padding = true;
        }
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes one batch with one call and, in full mode, syncs it with one `sync_data`.
    fn write_batch(&self, writer: &mut Writer, batch: &Batch) -> Result<(), Error> {
        if let Some(capacity) = batch.starts_segment {
            let file = self.start_segment(batch.segment_base, capacity)?;
            writer.current = Some((batch.segment_base, file));
        }
        let (base, file) = writer
            .current
            .as_ref()
            .expect("journal invariant: recovery ends at a segment boundary, so the first batch starts a segment");
        assert_eq!(
            *base, batch.segment_base,
            "journal invariant: batches are written in order, segment by segment"
        );
        let path = || self.dir.join(segment_file_name(batch.segment_base));
        file.write_all_at(&batch.bytes, batch.file_offset)
            .map_err(|e| Error::io("write batch to", &path(), e))?;
        if self.options.sync == SyncMode::Full {
            let started = std::time::Instant::now();
            file.sync_data()
                .map_err(|e| Error::io("sync_data", &path(), e))?;
            self.counters.record_sync(started.elapsed());
        }
        Ok(())
    }

    /// Names a file as the segment starting at `base` (a spare if there is one) and, in full
    /// mode, makes the name durable before anything is written into it.
    fn start_segment(&self, base: u64, capacity: u64) -> Result<Arc<dyn File>, Error> {
        let path = self.dir.join(segment_file_name(base));
        let ready_len = SEGMENT_HEADER_BYTES + self.options.segment_bytes;
        let spare = {
            let mut segments = self.lock_segments();
            let ready = segments.spares.iter().position(|s| s.len >= ready_len);
            match ready {
                Some(index) => Some(segments.spares.swap_remove(index)),
                None => segments.spares.pop(),
            }
        };
        // A spare is wanted again (and a failed preparation gets another chance).
        self.lock_preparer().failed = false;
        self.wake_preparer();
        let file = match spare {
            Some(spare) => {
                self.fs
                    .rename(&spare.path, &path)
                    .map_err(|e| Error::io("rename spare to segment", &spare.path, e))?;
                spare.file
            }
            None => self
                .fs
                .open(&path, OpenMode::Create)
                .map_err(|e| Error::io("create segment", &path, e))?,
        };
        if self.options.sync == SyncMode::Full {
            self.sync_dir()?;
        }
        self.lock_segments().retained.insert(
            base,
            Segment {
                base,
                capacity,
                path,
                file: Arc::clone(&file),
            },
        );
        Ok(file)
    }

    /// Publishes a written batch: advances the durable position, frees its queue space and wakes
    /// its waiters in Lsn order. Returns its record count.
    fn publish(&self, writer: &mut Writer, batch: Batch) -> usize {
        let records = batch.records;
        let bytes = batch.bytes.len();
        {
            let mut state = self.lock_state();
            let previous = self.durable_lsn.swap(batch.end_lsn, Ordering::AcqRel);
            assert!(
                previous < batch.end_lsn,
                "journal invariant: the durable position only grows"
            );
            state.pending_bytes -= bytes;
            state.pending_records -= records;
            state.waiters.release_through(
                batch.end_lsn,
                &mut writer.wakers,
                &self.counters.latency,
            );
            state.recycle_buffer(batch.bytes, &self.options);
            if state.blocked_waiters > 0 {
                self.durable_changed.notify_all();
            }
            if state.blocked_appenders > 0 {
                self.space_freed.notify_all();
            }
        }
        for waker in writer.wakers.drain(..) {
            waker.wake();
        }
        let counters = &self.counters;
        counters
            .records
            .fetch_add(records as u64, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        records
    }

    /// Marks the journal failed: drops the queue and resolves every waiter with an error.
    fn poison(&self, error: &Error) {
        tracing::error!(%error, "journal poisoned; no further records will be made durable");
        let mut wakers = Vec::new();
        {
            let mut state = self.lock_state();
            if state.poison.is_none() {
                state.poison = Some(Arc::from(error.to_string()));
            }
            self.poisoned.store(true, Ordering::Release);
            state.queue.clear();
            state.pending_bytes = 0;
            state.pending_records = 0;
            state.waiters.release_all(&mut wakers);
            self.durable_changed.notify_all();
            self.space_freed.notify_all();
            self.work_queued.notify_all();
        }
        for waker in wakers {
            waker.wake();
        }
    }

    fn lock_preparer(&self) -> MutexGuard<'_, Preparer> {
        self.preparer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wake_preparer(&self) {
        let (wanted, condvar) = &self.prepare_wanted;
        *wanted.lock().unwrap_or_else(|e| e.into_inner()) = true;
        condvar.notify_one();
    }

    /// One bounded step of preallocating a spare segment, when none is ready.
    pub(super) fn preallocate_step(&self) -> Step {
        let mut preparer = self.lock_preparer();
        if preparer.failed || self.options.max_spare_segments == 0 {
            return Step::Idle;
        }
        let ready_len = SEGMENT_HEADER_BYTES + self.options.segment_bytes;
        if preparer.preparing.is_none() {
            let mut segments = self.lock_segments();
            if segments.spares.iter().any(|spare| spare.len >= ready_len) {
                return Step::Idle;
            }
            if let Some(index) = segments.spares.iter().position(|s| s.len < ready_len) {
                preparer.preparing = Some(segments.spares.swap_remove(index));
            } else {
                let path = self.dir.join(spare_file_name(segments.take_spare_id(0)));
                drop(segments);
                match self.fs.open(&path, OpenMode::Create) {
                    Ok(file) => preparer.preparing = Some(Spare { path, file, len: 0 }),
                    Err(error) => {
                        tracing::warn!(%error, path = %path.display(), "cannot create a spare journal segment");
                        preparer.failed = true;
                        return Step::Idle;
                    }
                }
            }
        }
        let preparer = &mut *preparer;
        let spare = preparer.preparing.as_mut().expect("ensured above");
        let chunk = (ready_len - spare.len).min(PREALLOCATE_STEP_BYTES as u64);
        let mut outcome = spare.file.write_all_at(&ZEROS[..chunk as usize], spare.len);
        if outcome.is_ok() {
            spare.len += chunk;
            // One sync when it is full: syncing every 4 MiB instead made more of the journal's
            // own syncs slow (see docs/design.md).
            if spare.len >= ready_len {
                outcome = spare.file.sync_data();
            }
        }
        match outcome {
            Err(error) => {
                tracing::warn!(%error, path = %spare.path.display(), "cannot preallocate a spare journal segment");
                preparer.failed = true;
                // Keep it: it is still a usable (if slower) spare.
                let spare = preparer.preparing.take().expect("ensured above");
                self.lock_segments().spares.push(spare);
            }
            Ok(()) if spare.len >= ready_len => {
                let spare = preparer.preparing.take().expect("ensured above");
                self.lock_segments().spares.push(spare);
            }
            Ok(()) => {}
        }
        Step::Preallocated
    }
}

/// The dedicated I/O thread, which loops driver steps and sleeps on a condition variable when
/// idle, and beside it the preparer thread. [`IoThread::stop`] (or dropping it) drains the
/// queue and joins both.
#[must_use = "dropping the IoThread stops it"]
pub struct IoThread {
    inner: Arc<Inner>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<(), Error>>>,
    preparer: Option<JoinHandle<()>>,
}

pub(super) fn start_io_thread(inner: &Arc<Inner>) -> IoThread {
    inner.lock_state().drivers += 1;
    let stop = Arc::new(AtomicBool::new(false));
    let thread_inner = Arc::clone(inner);
    let thread_stop = Arc::clone(&stop);
    let handle = std::thread::Builder::new()
        .name("burrow-journal-io".to_string())
        .spawn(move || {
            raise_priority();
            let outcome = run(&thread_inner, &thread_stop);
            let mut state = thread_inner.lock_state();
            state.drivers -= 1;
            // Appends held back by back-pressure must not wait for a driver that is gone.
            thread_inner.space_freed.notify_all();
            outcome
        })
        .expect("spawning the journal I/O thread");
    let thread_inner = Arc::clone(inner);
    let thread_stop = Arc::clone(&stop);
    let preparer = std::thread::Builder::new()
        .name("burrow-journal-prep".to_string())
        .spawn(move || prepare(&thread_inner, &thread_stop))
        .expect("spawning the journal preparer thread");
    IoThread {
        inner: Arc::clone(inner),
        stop,
        handle: Some(handle),
        preparer: Some(preparer),
    }
}

/// Nice value of the I/O thread: every commit waits for this thread to come back from its sync,
/// so it should get a CPU ahead of busy shard threads. Measured on a 2-core machine with two
/// busy loops beside a loop of 8 KiB writes + `fdatasync`: at the default nice 34 of 3,000 syncs
/// took over 1 ms as the thread saw them (p99 1,631 µs: the thread waited for a time slice after
/// the sync returned); at nice -10, 1 (p99 151 µs).
const IO_THREAD_NICE: i32 = -10;

/// Raises the calling thread's priority (on Linux, `setpriority` on pid 0 applies to the calling
/// thread only). Needs `CAP_SYS_NICE` (or an `RLIMIT_NICE` that allows it); without, the thread
/// keeps the default priority, which costs only latency.
fn raise_priority() {
    if let Err(error) = rustix::process::setpriority_process(None, IO_THREAD_NICE) {
        tracing::debug!(%error, "journal I/O thread keeps the default priority");
    }
}

fn run(inner: &Inner, stop: &AtomicBool) -> Result<(), Error> {
    loop {
        match inner.step(false)? {
            Step::Flushed(_) | Step::Preallocated => {}
            Step::Idle => {
                let mut state = inner.lock_state();
                if !state.queue.is_empty() {
                    continue;
                }
                if stop.load(Ordering::Acquire) {
                    return Ok(());
                }
                state.sleeping_drivers += 1;
                let mut state = inner
                    .work_queued
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                state.sleeping_drivers -= 1;
            }
        }
    }
}

/// The preparer: fills a spare whenever none is ready, then sleeps until a segment starts.
fn prepare(inner: &Inner, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        if inner.preallocate_step() == Step::Preallocated {
            continue;
        }
        let (wanted, condvar) = &inner.prepare_wanted;
        let mut wanted = wanted.lock().unwrap_or_else(|e| e.into_inner());
        while !*wanted && !stop.load(Ordering::Acquire) {
            wanted = condvar.wait(wanted).unwrap_or_else(|e| e.into_inner());
        }
        *wanted = false;
    }
}

impl IoThread {
    /// Drains what is queued, stops the thread and returns its outcome (an error if the journal
    /// was poisoned).
    pub fn stop(mut self) -> Result<(), Error> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), Error> {
        let Some(handle) = self.handle.take() else {
            return Ok(());
        };
        self.stop.store(true, Ordering::Release);
        {
            let _state = self.inner.lock_state();
            self.inner.work_queued.notify_all();
        }
        self.inner.wake_preparer();
        if let Some(preparer) = self.preparer.take()
            && let Err(panic) = preparer.join()
        {
            std::panic::resume_unwind(panic);
        }
        match handle.join() {
            Ok(outcome) => outcome,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for IoThread {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown() {
            tracing::debug!(%error, "journal I/O thread stopped with an error");
        }
    }
}

impl std::fmt::Debug for IoThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoThread")
            .field("running", &self.handle.is_some())
            .finish()
    }
}
