//! The shared redo journal: a segmented, checksummed log of opaque records with group commit.
//!
//! Every object commit appends one record (its redo payload) and waits on the returned
//! [`Durable`]. One driver, normally the dedicated I/O thread ([`Journal::start_io_thread`]),
//! writes whatever is queued as one batch, makes it durable with one `fdatasync`, and then resolves
//! the batch's [`Durable`]s in Lsn order. That is group commit: one fsync acknowledges every
//! commit that arrived while the previous one ran. A test or the deterministic simulation drives
//! the same code by calling [`Journal::flush_once`] by hand, with [`crate::fs::sim::SimFs`] below.
//!
//! The journal is also the replication stream and the source of point-in-time recovery:
//! [`Journal::read_from`] reads durable records from any retained position while appends go on,
//! and [`Journal::release_before`] hands every segment no longer needed to a callback, which may
//! archive it instead of letting the journal recycle it.
//!
//! # Positions
//! An [`Lsn`] is a byte position in the logical journal stream: the concatenation of every
//! segment's record area (segment headers are not part of it). A record's Lsn is the position of
//! its header; its end is its Lsn plus its size. Lsns only grow, also across restarts, recycling
//! and recovery: a recovered journal continues after the last segment it kept.
//!
//! # On-disk format
//! A journal is a directory of segment files named by the Lsn of their first record byte, as 16
//! lower-case hex digits: `0000000000000000.seg`, `0000000004000000.seg`, …, so that names sort in
//! Lsn order. Spare files (preallocated or recycled, not yet in use) are named `<16 hex>.spare`;
//! their contents mean nothing. All integers are little-endian.
//!
//! A segment is a 32-byte header followed by its record area of `capacity` bytes. The Lsn of
//! file offset `32 + i` is `base + i`.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `BURROWJL` |
//! | 8 | 8 | `base`: the Lsn of the first record byte; equals the file name |
//! | 16 | 8 | `capacity`: bytes of record area; `segment_bytes` when the segment was started, or the size of the one oversized record it holds |
//! | 24 | 4 | format version, 1 |
//! | 28 | 4 | CRC32C of bytes 0..28 |
//!
//! The record area is a sequence of records, each a 24-byte header and, for data, the payload:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | CRC32C of the payload followed by header bytes 4..24 (padding: of bytes 4..24 alone) |
//! | 4 | 4 | `len`: payload bytes (data), or bytes skipped after this header (padding) |
//! | 8 | 8 | `lsn`: the record's own position |
//! | 16 | 1 | kind: 1 data, 2 padding |
//! | 17 | 7 | zero |
//! | 24 | `len` | payload (data only; padding skips these bytes unread) |
//!
//! Records never span segments. When a record does not fit in what is left of a segment, a padding
//! record fills the rest (or, when fewer than 24 bytes are left, nothing: a reader skips a tail too
//! small for a header), and the record starts the next segment, whose base is the previous
//! segment's `base + capacity`. A record larger than `segment_bytes` gets a segment of its own
//! whose capacity is exactly its size. A padding record always ends exactly at its segment's end.
//!
//! A record is valid when its header is well formed, its `lsn` equals the position it was read
//! from, it fits in its segment, and its checksum matches. Because spare and recycled segments
//! hold stale bytes, the Lsn check is what rejects a stale record whose checksum is intact: a
//! recycled file only ever receives a base higher than every Lsn it held before.
//!
//! # Durability protocol
//! Batches are written strictly in Lsn order, one at a time, and a batch never spans segments.
//! For each batch, in [`SyncMode::Full`]:
//! 1. If the batch starts a segment: rename a spare to the segment's name (or create the file),
//!    then `sync_dir`, so the segment is found after a crash before anything in it counts.
//! 2. One `write_all_at` of the whole batch (the segment header is part of a segment's first
//!    batch, so it is written and synced with the first records it covers).
//! 3. One `sync_data`.
//! 4. Publish the batch's end as [`Journal::durable_lsn`] and wake its waiters in Lsn order.
//!
//! So at any crash at most one batch is unsynced, and everything before it is durable. If a write
//! or sync fails, the journal is poisoned (fsyncgate: after a failed fsync the kernel may have
//! dropped the dirty pages, and a later fsync can succeed without them): no later position is ever
//! reported durable, every pending and future [`Durable`] resolves to [`Error::Poisoned`], and
//! appends fail. The owner must reopen the journal, which recovers from what is really on disk.
//!
//! [`SyncMode::Relaxed`] runs the same path without steps 1's `sync_dir` and 3: records survive a
//! process crash (the page cache holds them) but not a power loss.
//!
//! # Recovery
//! [`Journal::open`] scans segments oldest first and stops at the first invalid record (or
//! segment header, or a missing or misplaced segment): that is the end of the log. Everything
//! before it is returned; nothing after it ever is. Before the journal accepts an append it makes
//! the cut durable, so that an old record can never be resurrected behind a new one:
//! 1. every segment file after the end is removed, then the directory is synced (these files may
//!    hold valid records of a batch that was torn before them, with exactly the Lsns new records
//!    would get, so they are deleted rather than recycled);
//! 2. if the end lies inside a segment, a padding record is written at the end, covering the rest
//!    of that segment;
//! 3. every retained segment is synced, and the directory too. After a process crash the last
//!    batches may still be only in the page cache (in relaxed mode, never synced at all); the
//!    engine replays what recovery returns, so it must not vanish in a later power loss, taking
//!    newer records with it. Syncing a clean file costs almost nothing.
//!
//! If no segment survives at all (the only one was being started and its header is torn), that
//! file is not removed but rewritten as an empty segment (fresh header, padding over all of it),
//! so a file always names the log's position; a journal with no segment file at all restarts
//! above every Lsn its spare files may hold (their names say so).
//!
//! New records then start a fresh segment. The padding record is the choice recorded here instead
//! of zeroing the stale tail: it is one small write instead of up to `segment_bytes` of zeros, and
//! it is as safe, since a reader never looks inside padding. The price is that each restart
//! leaves the rest of its last segment unused until that segment is released. The order (remove
//! first, then pad) matters: a padding record made durable while later segments still existed
//! would lead a reader straight into them.
//!
//! # Segment lifecycle
//! Segments are preallocated: when idle, the driver writes zeros into a spare file (256 KiB per
//! step) and syncs it, so that appending overwrites allocated blocks, which the storage spike
//! measured at twice the rate of extending a file. [`Journal::release_before`] retires segments
//! oldest first, each made durable (rename or remove, then `sync_dir`) before the next, so the
//! retained segments always form one unbroken chain. The newest segment holding durable records
//! is never released: it carries the log's position across a restart.

mod durable;
mod format;
mod latency;
mod queue;
mod reader;
mod recovery;
mod segments;
mod writer;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::fs::Fs;

pub use durable::Durable;
pub use latency::CommitLatency;
pub use reader::Reader;
pub use recovery::Recovery;
pub use segments::RetiredSegment;
pub use writer::IoThread;

use format::RECORD_HEADER_BYTES;
use queue::State;
use segments::Segments;
use writer::Writer;

/// A byte position in the logical journal stream. See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Whether a batch is durable against power loss or only against a process crash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// `fdatasync` per batch: durable against power loss. The default.
    #[default]
    Full,
    /// No fsync: records survive a process crash (`kill -9`) but not a power loss.
    Relaxed,
}

/// How a journal is laid out and how much it may buffer.
#[derive(Debug, Clone)]
pub struct Options {
    /// Record-area bytes per segment (a larger record gets a segment of its own).
    pub segment_bytes: u64,
    /// Most bytes written and synced as one batch; a single larger record forms a batch alone.
    pub max_batch_bytes: usize,
    /// Appends wait (back-pressure) while more than this many bytes are queued and not durable.
    pub max_pending_bytes: usize,
    /// Appends wait while this many records are queued and not durable. This also bounds the
    /// waiter registry, which holds at most one slot per such record.
    pub max_pending_records: usize,
    /// Durable against power loss, or only against a process crash.
    pub sync: SyncMode,
    /// The largest payload [`Journal::append`] accepts.
    pub max_record_bytes: usize,
    /// Most spare segment files kept for reuse; further retired segments are deleted.
    pub max_spare_segments: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            segment_bytes: 64 << 20,
            max_batch_bytes: 1 << 20,
            max_pending_bytes: 64 << 20,
            max_pending_records: 1 << 16,
            sync: SyncMode::Full,
            max_record_bytes: 256 << 20,
            max_spare_segments: 4,
        }
    }
}

/// The smallest allowed [`Options::segment_bytes`].
pub const MIN_SEGMENT_BYTES: u64 = 64;

impl Options {
    fn validate(&self) -> Result<(), Error> {
        let invalid = |reason: String| Err(Error::InvalidOptions(reason));
        if self.segment_bytes < MIN_SEGMENT_BYTES || self.segment_bytes > 1 << 40 {
            return invalid(format!(
                "segment_bytes is {}; it must be between {MIN_SEGMENT_BYTES} and 2^40",
                self.segment_bytes
            ));
        }
        let record_limit = u32::MAX as usize - RECORD_HEADER_BYTES as usize;
        if self.max_record_bytes > record_limit {
            return invalid(format!(
                "max_record_bytes is {}; the format allows at most {record_limit}",
                self.max_record_bytes
            ));
        }
        if self.max_batch_bytes == 0 || self.max_pending_bytes == 0 || self.max_pending_records == 0
        {
            return invalid(
                "max_batch_bytes, max_pending_bytes and max_pending_records must be positive"
                    .to_string(),
            );
        }
        Ok(())
    }
}

/// What went wrong in the journal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed.
    #[error("journal I/O error: {operation} {path}: {source}")]
    Io {
        /// What the journal was doing.
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An earlier write or sync failed; nothing after it will ever be reported durable.
    #[error(
        "journal is poisoned after an I/O failure ({cause}); records not yet durable never will \
         be, and the journal must be reopened"
    )]
    Poisoned {
        /// The failure that poisoned the journal.
        cause: Arc<str>,
    },
    /// The payload is larger than [`Options::max_record_bytes`].
    #[error("journal record of {size} bytes exceeds the limit of {limit} bytes (max_record_bytes)")]
    RecordTooLarge {
        /// The payload's size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The queue is full and no I/O thread is running to drain it.
    #[error(
        "journal queue is full ({pending_bytes} bytes in {pending_records} records; limits \
         max_pending_bytes={max_pending_bytes}, max_pending_records={max_pending_records}) and no \
         I/O thread is draining it; call flush_once"
    )]
    QueueFull {
        /// Bytes queued and not durable.
        pending_bytes: usize,
        /// Records queued and not durable.
        pending_records: usize,
        /// The byte limit.
        max_pending_bytes: usize,
        /// The record limit.
        max_pending_records: usize,
    },
    /// The position was released, so its segment is gone.
    #[error("journal position {lsn} was released; the oldest retained record is at {first}")]
    Released {
        /// The requested position.
        lsn: Lsn,
        /// The oldest retained position.
        first: Lsn,
    },
    /// No valid record was found where one was expected: the position is not a record
    /// boundary, or durable data is damaged.
    #[error(
        "no valid journal record at position {lsn} (not a record boundary, or the journal is \
         damaged): {detail}"
    )]
    InvalidRecord {
        /// Where reading failed.
        lsn: Lsn,
        /// What was wrong.
        detail: String,
    },
    /// The position lies past the end of the journal.
    #[error("journal position {lsn} is past the end of the journal ({end})")]
    BeyondEnd {
        /// The requested position.
        lsn: Lsn,
        /// The position of the next record to be appended.
        end: Lsn,
    },
    /// [`Options`] are inconsistent.
    #[error("invalid journal options: {0}")]
    InvalidOptions(String),
    /// The `retire` callback of [`Journal::release_before`] failed.
    #[error("retiring journal segment {path}: {source}")]
    Retire {
        /// The segment being retired.
        path: PathBuf,
        /// The callback's error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    fn io(operation: &'static str, path: &Path, source: io::Error) -> Error {
        Error::Io {
            operation,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Upper bounds, in microseconds, of the buckets of [`Stats::sync_histogram`]; one more bucket,
/// without a bound, follows the last.
pub const SYNC_BUCKETS_MICROS: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// Counters since the journal was opened, for metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records made durable.
    pub records: u64,
    /// Batches written (one write call each).
    pub batches: u64,
    /// `sync_data` calls made for batches (0 in relaxed mode).
    pub syncs: u64,
    /// Bytes written for batches, headers and padding included.
    pub bytes: u64,
    /// Time spent in those `sync_data` calls, in microseconds.
    pub sync_micros: u64,
    /// How many of them took at most each bound of [`SYNC_BUCKETS_MICROS`] (and above the
    /// previous one); the last entry counts those above every bound. Not cumulative.
    pub sync_histogram: [u64; SYNC_BUCKETS_MICROS.len() + 1],
}

/// The journal. Cheap to share through [`Arc`]; every method takes `&self`.
pub struct Journal {
    inner: Arc<Inner>,
}

/// Everything the journal, its [`Durable`]s, readers and I/O thread share.
struct Inner {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    options: Options,
    /// Placement, the batch queue and the waiter registry.
    state: Mutex<State>,
    /// Signalled when the durable position advances or the journal is poisoned.
    durable_changed: Condvar,
    /// Signalled when queued bytes are freed, for appends held back by back-pressure.
    space_freed: Condvar,
    /// Signalled when work is queued, for an idle I/O thread.
    work_queued: Condvar,
    /// Everything before this is durable; only grows.
    durable_lsn: AtomicU64,
    /// The oldest retained position.
    first_lsn: AtomicU64,
    /// Mirrors `state.poison.is_some()` for lock-free checks.
    poisoned: AtomicBool,
    /// The driver's state; holding it serializes `flush_once`.
    writer: Mutex<Writer>,
    /// Preallocation of spare segments, and the preparer thread's wake-up flag.
    preparer: Mutex<writer::Preparer>,
    prepare_wanted: (Mutex<bool>, Condvar),
    /// Retained segments and spare files.
    segments: Mutex<Segments>,
    /// Serializes `release_before`.
    release: Mutex<()>,
    counters: Counters,
    recovery: Recovery,
}

#[derive(Default)]
struct Counters {
    records: AtomicU64,
    batches: AtomicU64,
    syncs: AtomicU64,
    bytes: AtomicU64,
    sync_micros: AtomicU64,
    sync_histogram: [AtomicU64; SYNC_BUCKETS_MICROS.len() + 1],
    /// From append to published durable, per record.
    latency: latency::Recorder,
}

impl Counters {
    /// Counts one `sync_data` call that took `took`.
    fn record_sync(&self, took: std::time::Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = SYNC_BUCKETS_MICROS
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(SYNC_BUCKETS_MICROS.len());
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.sync_micros.fetch_add(micros, Ordering::Relaxed);
        self.sync_histogram[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`, recovering it as described in the module
    /// docs. On return the journal is ready for appends and every record before
    /// [`Journal::durable_lsn`] is durable.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path, options: Options) -> Result<Arc<Journal>, Error> {
        options.validate()?;
        let recovered = recovery::recover(fs.as_ref(), dir, &options)?;
        let end = recovered.report.end_lsn.0;
        let first = recovered.report.first_lsn.0;
        let inner = Inner {
            fs,
            dir: dir.to_path_buf(),
            state: Mutex::new(State::new(end)),
            durable_changed: Condvar::new(),
            space_freed: Condvar::new(),
            work_queued: Condvar::new(),
            durable_lsn: AtomicU64::new(end),
            first_lsn: AtomicU64::new(first),
            poisoned: AtomicBool::new(false),
            writer: Mutex::new(Writer::default()),
            preparer: Mutex::new(writer::Preparer::default()),
            prepare_wanted: (Mutex::new(false), Condvar::new()),
            segments: Mutex::new(recovered.segments),
            release: Mutex::new(()),
            counters: Counters::default(),
            recovery: recovered.report,
            options,
        };
        Ok(Arc::new(Journal {
            inner: Arc::new(inner),
        }))
    }

    /// Assigns the next Lsn to `payload` and queues it. Never does I/O. If the queue is over its
    /// bounds, waits for the I/O thread to drain it, or fails with [`Error::QueueFull`] when no
    /// I/O thread is running.
    pub fn append(&self, payload: &[u8]) -> Result<Durable, Error> {
        self.inner.append(payload, true)
    }

    /// Like [`Journal::append`], but fails with [`Error::QueueFull`] instead of waiting.
    pub fn try_append(&self, payload: &[u8]) -> Result<Durable, Error> {
        self.inner.append(payload, false)
    }

    /// One driver step: writes and syncs the oldest queued batch, publishes the new durable
    /// position and wakes its waiters; returns how many records it made durable. With nothing
    /// queued it may do one bounded step of segment preallocation instead, and returns 0.
    pub fn flush_once(&self) -> Result<usize, Error> {
        self.inner.flush_once()
    }

    /// Starts the dedicated I/O thread that loops [`Journal::flush_once`].
    pub fn start_io_thread(self: &Arc<Self>) -> IoThread {
        writer::start_io_thread(&self.inner)
    }

    /// Everything before this position is durable.
    pub fn durable_lsn(&self) -> Lsn {
        Lsn(self.inner.durable_lsn.load(Ordering::Acquire))
    }

    /// Blocks until everything before `lsn` is durable (or the journal is poisoned). Like
    /// [`Durable::wait`], it needs a driver: the I/O thread, or another thread calling
    /// [`Journal::flush_once`]. A position past the end of the journal is an error, not a hang.
    pub fn wait_durable(&self, lsn: Lsn) -> Result<(), Error> {
        self.inner.wait_durable(lsn.0)
    }

    /// The oldest retained position: where reading the whole journal starts.
    pub fn first_lsn(&self) -> Lsn {
        Lsn(self.inner.first_lsn.load(Ordering::Acquire))
    }

    /// The position the next appended record would be placed at or after.
    pub fn next_lsn(&self) -> Lsn {
        Lsn(self.inner.lock_state().next_lsn)
    }

    /// A reader of durable records from `from`, which must be a record boundary (the Lsn or end
    /// of a record, [`Journal::first_lsn`] or [`Journal::durable_lsn`]).
    pub fn read_from(&self, from: Lsn) -> Result<Reader, Error> {
        Reader::new(Arc::clone(&self.inner), from)
    }

    /// Retires, oldest first, every segment whose records all lie before `lsn`, handing each to
    /// `retire` (which may archive it with [`RetiredSegment::archive_to`]; otherwise the journal
    /// recycles or deletes it). The newest segment holding durable records is always kept.
    pub fn release_before(
        &self,
        lsn: Lsn,
        retire: &mut dyn FnMut(RetiredSegment) -> io::Result<()>,
    ) -> Result<(), Error> {
        self.inner.release_before(lsn, retire)
    }

    /// True once a write or sync failed; see [`Error::Poisoned`].
    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::Acquire)
    }

    /// What recovery found when the journal was opened.
    pub fn recovery(&self) -> &Recovery {
        &self.inner.recovery
    }

    /// Counters since the journal was opened.
    pub fn stats(&self) -> Stats {
        let counters = &self.inner.counters;
        Stats {
            records: counters.records.load(Ordering::Relaxed),
            batches: counters.batches.load(Ordering::Relaxed),
            syncs: counters.syncs.load(Ordering::Relaxed),
            bytes: counters.bytes.load(Ordering::Relaxed),
            sync_micros: counters.sync_micros.load(Ordering::Relaxed),
            sync_histogram: std::array::from_fn(|bucket| {
                counters.sync_histogram[bucket].load(Ordering::Relaxed)
            }),
        }
    }

    /// How long records waited from append until durable (published by the driver), since the
    /// journal was opened.
    pub fn commit_latency(&self) -> CommitLatency {
        self.inner.counters.latency.snapshot()
    }

    /// The journal's options.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.inner.dir)
            .field("first_lsn", &self.first_lsn())
            .field("durable_lsn", &self.durable_lsn())
            .field("poisoned", &self.is_poisoned())
            .finish()
    }
}

impl Inner {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before anything that can panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_segments(&self) -> MutexGuard<'_, Segments> {
        self.segments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wait_durable(&self, lsn: u64) -> Result<(), Error> {
        if self.durable_lsn.load(Ordering::Acquire) >= lsn {
            return Ok(());
        }
        let mut state = self.lock_state();
        if lsn > state.next_lsn {
            return Err(Error::BeyondEnd {
                lsn: Lsn(lsn),
                end: Lsn(state.next_lsn),
            });
        }
        state.blocked_waiters += 1;
        let outcome = loop {
            if self.durable_lsn.load(Ordering::Acquire) >= lsn {
                break Ok(());
            }
            if let Some(cause) = &state.poison {
                break Err(Error::Poisoned {
                    cause: Arc::clone(cause),
                });
            }
            state = self
                .durable_changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        };
        state.blocked_waiters -= 1;
        outcome
    }

    fn poisoned_error(&self) -> Error {
        let cause = self.lock_state().poison.clone();
        Error::Poisoned {
            cause: cause.unwrap_or_else(|| Arc::from("unknown")),
        }
    }
}
