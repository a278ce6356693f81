//! Appending: Lsn placement, the queue of encoded batches, back-pressure and the waiter registry.
//!
//! An append computes its payload's checksum outside the lock, then, under the state lock,
//! decides where the record goes (padding the segment when it does not fit), encodes it into the
//! batch at the back of the queue, and reserves one waiter slot. The driver later takes batches
//! from the front. Every structure here is bounded by [`Options`]: queued bytes by
//! `max_pending_bytes`, queued records and waiter slots by `max_pending_records`, and each batch by
//! `max_batch_bytes`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use super::format::{RECORD_HEADER_BYTES, RecordHeader, SEGMENT_HEADER_BYTES, SegmentHeader};
use super::latency::Recorder;
use super::{Durable, Error, Inner, Options};

/// How many emptied batch buffers are kept for reuse.
const SPARE_BUFFERS: usize = 4;

/// What appenders and the driver share, under `Inner::state`.
pub(super) struct State {
    /// Where the next record goes (or its padding, when it does not fit the open segment).
    pub(super) next_lsn: u64,
    /// The segment records are going into, as `(base, capacity)`, while it has room.
    open_segment: Option<(u64, u64)>,
    /// Encoded batches not yet taken by the driver, oldest first.
    pub(super) queue: VecDeque<Batch>,
    /// Bytes queued or being written, not yet durable.
    pub(super) pending_bytes: usize,
    /// Records queued or being written, not yet durable.
    pub(super) pending_records: usize,
    /// One slot per record not yet durable.
    pub(super) waiters: Waiters,
    /// Why the journal is poisoned, once it is.
    pub(super) poison: Option<Arc<str>>,
    /// I/O threads running, and how many of them sleep waiting for work.
    pub(super) drivers: usize,
    pub(super) sleeping_drivers: usize,
    /// Threads blocked in `Durable::wait` and in `append`'s back-pressure.
    pub(super) blocked_waiters: usize,
    pub(super) blocked_appenders: usize,
    /// Buffers of written batches, reused so steady-state appends do not allocate.
    pub(super) spare_buffers: Vec<Vec<u8>>,
}

/// A run of contiguous bytes in one segment, written with one call and synced with one fsync.
pub(super) struct Batch {
    /// The segment the batch belongs to.
    pub(super) segment_base: u64,
    /// `Some(capacity)` when the batch starts its segment; its bytes then begin with the header.
    pub(super) starts_segment: Option<u64>,
    /// Where `bytes` go in the segment file.
    pub(super) file_offset: u64,
    /// The Lsn just past the batch's last byte.
    pub(super) end_lsn: u64,
    pub(super) bytes: Vec<u8>,
    /// Data records in the batch (padding excluded).
    pub(super) records: usize,
}

impl State {
    pub(super) fn new(next_lsn: u64) -> State {
        State {
            next_lsn,
            open_segment: None,
            queue: VecDeque::new(),
            pending_bytes: 0,
            pending_records: 0,
            waiters: Waiters::new(),
            poison: None,
            drivers: 0,
            sleeping_drivers: 0,
            blocked_waiters: 0,
            blocked_appenders: 0,
            spare_buffers: Vec::new(),
        }
    }

    /// Places and encodes one record; returns its Lsn and end.
    fn place(&mut self, payload: &[u8], payload_crc: u32, options: &Options) -> (u64, u64) {
        let record_bytes = RECORD_HEADER_BYTES + payload.len() as u64;
        if let Some((base, capacity)) = self.open_segment {
            let segment_end = base + capacity;
            let room = segment_end - self.next_lsn;
            if record_bytes > room {
                if room >= RECORD_HEADER_BYTES {
                    let lsn = self.next_lsn;
                    let skipped = u32::try_from(room - RECORD_HEADER_BYTES)
                        .expect("segments are at most 2^40 bytes, records fit u32");
                    let padding = RecordHeader::padding(lsn, skipped);
                    self.batch_for(base, lsn, RECORD_HEADER_BYTES, options)
                        .push(&padding, &[], segment_end);
                    self.pending_bytes += padding.len();
                }
                self.next_lsn = segment_end;
                self.open_segment = None;
            }
        }
        let base = match self.open_segment {
            Some((base, _)) => base,
            None => {
                let base = self.next_lsn;
                let capacity = options.segment_bytes.max(record_bytes);
                self.open_segment = Some((base, capacity));
                let mut bytes = self.spare_buffers.pop().unwrap_or_default();
                bytes.extend_from_slice(&SegmentHeader { base, capacity }.encode());
                self.pending_bytes += bytes.len();
                self.queue.push_back(Batch {
                    segment_base: base,
                    starts_segment: Some(capacity),
                    file_offset: 0,
                    end_lsn: base,
                    bytes,
                    records: 0,
                });
                base
            }
        };
        let lsn = self.next_lsn;
        let end = lsn + record_bytes;
        let len = u32::try_from(payload.len()).expect("max_record_bytes keeps payloads below u32");
        let header = RecordHeader::data(lsn, len, payload_crc);
        let batch = self.batch_for(base, lsn, record_bytes, options);
        batch.push(&header, payload, end);
        batch.records += 1;
        self.pending_bytes += record_bytes as usize;
        self.pending_records += 1;
        self.next_lsn = end;
        (lsn, end)
    }

    /// The batch that continues at `lsn` in segment `base`: the back of the queue when it is
    /// contiguous and has room for `bytes` more, else a new one. A batch without records takes any record, so a
    /// record larger than `max_batch_bytes` forms a batch alone.
    fn batch_for(&mut self, base: u64, lsn: u64, bytes: u64, options: &Options) -> &mut Batch {
        let fits = self.queue.back().is_some_and(|batch| {
            batch.segment_base == base
                && batch.end_lsn == lsn
                && (batch.records == 0
                    || batch.bytes.len() as u64 + bytes <= options.max_batch_bytes as u64)
        });
        if !fits {
            let bytes = self.spare_buffers.pop().unwrap_or_default();
            self.queue.push_back(Batch {
                segment_base: base,
                starts_segment: None,
                file_offset: SEGMENT_HEADER_BYTES + (lsn - base),
                end_lsn: lsn,
                bytes,
                records: 0,
            });
        }
        self.queue.back_mut().expect("a batch was just ensured")
    }

    /// Keeps an emptied batch buffer for reuse, within bounds.
    pub(super) fn recycle_buffer(&mut self, mut bytes: Vec<u8>, options: &Options) {
        if self.spare_buffers.len() < SPARE_BUFFERS
            && bytes.capacity() <= 2 * options.max_batch_bytes
        {
            bytes.clear();
            self.spare_buffers.push(bytes);
        }
    }
}

impl Batch {
    fn push(&mut self, header: &[u8], payload: &[u8], end_lsn: u64) {
        self.bytes.extend_from_slice(header);
        self.bytes.extend_from_slice(payload);
        self.end_lsn = end_lsn;
    }
}

/// One slot per record not yet durable, in Lsn order, so that publishing a durable position
/// wakes exactly the records before it, each once, in order.
pub(super) struct Waiters {
    /// The sequence number of `slots[0]`.
    front_seq: u64,
    slots: VecDeque<Slot>,
}

struct Slot {
    end: u64,
    waker: Option<Waker>,
    /// When the record was appended, for the commit-latency histogram.
    appended: Instant,
}

impl Waiters {
    fn new() -> Waiters {
        Waiters {
            front_seq: 0,
            slots: VecDeque::new(),
        }
    }

    /// Reserves the slot of a record ending at `end`; returns its sequence number.
    fn push(&mut self, end: u64) -> u64 {
        self.slots.push_back(Slot {
            end,
            waker: None,
            appended: Instant::now(),
        });
        self.front_seq + self.slots.len() as u64 - 1
    }

    /// Registers (or refreshes) the waker of record `seq`. False if its slot is already gone.
    pub(super) fn register(&mut self, seq: u64, waker: &Waker) -> bool {
        let Some(slot) = seq
            .checked_sub(self.front_seq)
            .and_then(|index| self.slots.get_mut(index as usize))
        else {
            return false;
        };
        match &mut slot.waker {
            Some(existing) if existing.will_wake(waker) => {}
            other => *other = Some(waker.clone()),
        }
        true
    }

    /// Forgets the waker of record `seq` (its `Durable` was dropped).
    pub(super) fn unregister(&mut self, seq: u64) {
        if let Some(slot) = seq
            .checked_sub(self.front_seq)
            .and_then(|index| self.slots.get_mut(index as usize))
        {
            slot.waker = None;
        }
    }

    /// Removes the slots of records ending at or before `durable`, collecting their wakers in
    /// Lsn order and recording how long each waited.
    pub(super) fn release_through(
        &mut self,
        durable: u64,
        wakers: &mut Vec<Waker>,
        latency: &Recorder,
    ) {
        let now = Instant::now();
        while self.slots.front().is_some_and(|slot| slot.end <= durable) {
            let slot = self.slots.pop_front().expect("checked non-empty");
            self.front_seq += 1;
            latency.record(now.saturating_duration_since(slot.appended));
            wakers.extend(slot.waker);
        }
    }

    /// Removes every slot (the journal is poisoned), collecting their wakers.
    pub(super) fn release_all(&mut self, wakers: &mut Vec<Waker>) {
        self.front_seq += self.slots.len() as u64;
        wakers.extend(self.slots.drain(..).filter_map(|slot| slot.waker));
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }
}

impl Inner {
    pub(super) fn append(self: &Arc<Self>, payload: &[u8], block: bool) -> Result<Durable, Error> {
        let limit = self.options.max_record_bytes;
        if payload.len() > limit {
            return Err(Error::RecordTooLarge {
                size: payload.len(),
                limit,
            });
        }
        let record_bytes = RECORD_HEADER_BYTES as usize + payload.len();
        // The checksum is the expensive part of encoding; compute it before taking the lock.
        let payload_crc = crc32c::crc32c(payload);
        let mut state = self.lock_state();
        loop {
            if let Some(cause) = &state.poison {
                return Err(Error::Poisoned {
                    cause: Arc::clone(cause),
                });
            }
            let over_bytes = state.pending_bytes > 0
                && state.pending_bytes + record_bytes > self.options.max_pending_bytes;
            let over_records = state.pending_records >= self.options.max_pending_records;
            if !over_bytes && !over_records {
                break;
            }
            if !block || state.drivers == 0 {
                return Err(Error::QueueFull {
                    pending_bytes: state.pending_bytes,
                    pending_records: state.pending_records,
                    max_pending_bytes: self.options.max_pending_bytes,
                    max_pending_records: self.options.max_pending_records,
                });
            }
            state.blocked_appenders += 1;
            state = self
                .space_freed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.blocked_appenders -= 1;
        }
        let (lsn, end) = state.place(payload, payload_crc, &self.options);
        let seq = state.waiters.push(end);
        debug_assert!(state.waiters.len() <= self.options.max_pending_records);
        if state.sleeping_drivers > 0 {
            self.work_queued.notify_one();
        }
        drop(state);
        Ok(Durable::new(Arc::clone(self), lsn, end, seq))
    }
}
