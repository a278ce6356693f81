//! The page overlay of one main database file: SQLite's writes kept in memory over the
//! checkpointed file, the pre-images that make captures, and the checkpoint bookkeeping.
//!
//! This file is plain safe Rust with no SQLite in it; [`super::ffi`] calls it from the VFS
//! callbacks and [`super::MainFile`] from the engine. The protocol is in the [`super`] docs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::sync::Arc;

use super::capture::{Builder, Capture};
use crate::fs::File;

/// The chunk size when neither the file header nor SQLite's first write tells us the page size.
const DEFAULT_PAGE_SIZE: usize = 4096;

/// Snapshot writes gather adjacent pages into one `write_all_at` call up to this many bytes.
const MAX_WRITE_BYTES: usize = 1 << 20;

/// One page of the overlay.
struct Page {
    /// Shared with in-flight snapshots and pre-images; copied on write.
    data: Arc<[u8]>,
    /// Bumped on every change, so a checkpoint can tell whether a page changed after its snapshot.
    version: u64,
}

/// Why an engine-side operation on a main file was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// SQLite wrote since its last commit: a capture now would hold uncommitted bytes.
    UncommittedWrites,
    /// A commit has not been captured yet: a checkpoint now could write bytes no record covers.
    UncapturedChanges,
    /// Another snapshot of this file is being written.
    CheckpointInProgress,
}

/// Everything the VFS knows about one main database file.
///
/// Logical content: byte `b < size` is the overlay page's byte if the page is present, else the
/// real file's byte if `b < base_len`, else zero. Bytes at or past `size` do not exist.
pub(super) struct MainState {
    file: Arc<dyn File>,
    /// The overlay's page size, fixed once known (see [`MainState::page_size_for_write`]).
    page_size: Option<usize>,
    /// The logical file length SQLite sees.
    size: u64,
    /// Real-file bytes at and past this offset are stale (a truncation cut them) and read as
    /// zero. Invariant: `base_len <= size`.
    base_len: u64,
    /// The real file's length as of the last open or confirmed checkpoint.
    file_len: u64,
    pages: BTreeMap<u64, Page>,
    next_version: u64,

    // The capture window: what changed since the last `take_capture`.
    /// `size` at the last capture.
    captured_size: u64,
    /// The smallest `size` since the last capture; the next capture's `zero_from`.
    capture_min_size: u64,
    /// Pages written since the last capture.
    touched: BTreeSet<u64>,
    /// Each touched page's content at the last capture, for pages that then lay wholly below
    /// `capture_min_size` (the others are zero-filled on replay and need no pre-image).
    preimages: HashMap<u64, Arc<[u8]>>,
    /// SQLite wrote or truncated since its last `SQLITE_FCNTL_COMMIT_PHASETWO`.
    uncommitted: bool,

    // Checkpoints.
    /// The id of the snapshot being written, if any.
    snapshot_in_flight: Option<u64>,
    next_snapshot_id: u64,
    /// The smallest `size` since the in-flight snapshot was taken.
    min_size_since_snapshot: u64,

    /// True while SQLite has the file open.
    pub(super) open: bool,
}

/// The frozen overlay a checkpoint writes; see [`super::Snapshot`].
pub(super) struct SnapshotData {
    pub(super) id: u64,
    pub(super) file: Arc<dyn File>,
    page_size: usize,
    size: u64,
    base_len: u64,
    pages: Vec<(u64, Arc<[u8]>, u64)>,
}

impl MainState {
    /// State for a file as found on disk: no overlay, logical content = file content.
    pub(super) fn new(file: Arc<dyn File>) -> io::Result<MainState> {
        let len = file.len()?;
        let page_size = if len >= 100 {
            let mut header = [0u8; 100];
            file.read_exact_or_zero_at(&mut header, 0)?;
            header_page_size(&header)
        } else {
            None
        };
        Ok(MainState {
            file,
            page_size,
            size: len,
            base_len: len,
            file_len: len,
            pages: BTreeMap::new(),
            next_version: 1,
            captured_size: len,
            capture_min_size: len,
            touched: BTreeSet::new(),
            preimages: HashMap::new(),
            uncommitted: false,
            snapshot_in_flight: None,
            next_snapshot_id: 1,
            min_size_since_snapshot: len,
            open: true,
        })
    }

    /// The logical file length.
    pub(super) fn size(&self) -> u64 {
        self.size
    }

    /// Pages held in the overlay.
    pub(super) fn dirty_pages(&self) -> usize {
        self.pages.len()
    }

    /// Memory held by overlay pages and pre-images (shared copies counted once per holder).
    pub(super) fn dirty_bytes(&self) -> u64 {
        let page_size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE) as u64;
        (self.pages.len() + self.preimages.len()) as u64 * page_size
    }

    /// True if the real file differs from the logical content, so a checkpoint has work to do.
    pub(super) fn needs_checkpoint(&self) -> bool {
        !self.pages.is_empty() || self.base_len != self.size || self.file_len != self.size
    }

    /// True if dropping this state loses nothing: the file on disk is the logical content,
    /// everything is captured, and no checkpoint is running.
    pub(super) fn is_clean(&self) -> bool {
        !self.needs_checkpoint()
            && !self.has_uncaptured_changes()
            && self.snapshot_in_flight.is_none()
    }

    fn has_uncaptured_changes(&self) -> bool {
        self.uncommitted
            || !self.touched.is_empty()
            || self.size != self.captured_size
            || self.capture_min_size != self.captured_size
    }

    /// Reads logical content into `buf`; bytes past the logical end read as zeros. Returns
    /// false for a short read (SQLite's `SQLITE_IOERR_SHORT_READ`).
    pub(super) fn read(&self, buf: &mut [u8], offset: u64) -> io::Result<bool> {
        let available = self.size.saturating_sub(offset).min(buf.len() as u64) as usize;
        buf[available..].fill(0);
        let Some(page_size) = self.page_size else {
            // Nothing was ever written through the overlay.
            self.read_base(&mut buf[..available], offset)?;
            return Ok(available == buf.len());
        };
        let mut done = 0;
        while done < available {
            let position = offset + done as u64;
            let page = position / page_size as u64;
            let in_page = (position % page_size as u64) as usize;
            let n = (page_size - in_page).min(available - done);
            match self.pages.get(&page) {
                Some(entry) => {
                    buf[done..done + n].copy_from_slice(&entry.data[in_page..in_page + n]);
                }
                None => self.read_base(&mut buf[done..done + n], position)?,
            }
            done += n;
        }
        Ok(available == buf.len())
    }

    /// Reads bytes of the checkpointed file: real bytes below `base_len`, zeros from there on.
    fn read_base(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let from_file = self.base_len.saturating_sub(offset).min(buf.len() as u64) as usize;
        if from_file > 0 {
            self.file
                .read_exact_or_zero_at(&mut buf[..from_file], offset)?;
        }
        buf[from_file..].fill(0);
        Ok(())
    }

    /// Writes into the overlay; the real file is not touched.
    pub(super) fn write(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        let page_size = self.page_size_for_write(offset, data.len());
        let mut done = 0;
        while done < data.len() {
            let position = offset + done as u64;
            let page = position / page_size as u64;
            let in_page = (position % page_size as u64) as usize;
            let n = (page_size - in_page).min(data.len() - done);
            let change = if n == page_size {
                Change::Replace(&data[done..done + n])
            } else {
                Change::Patch(in_page, &data[done..done + n])
            };
            self.modify(page, page_size, change)?;
            done += n;
        }
        self.size = self.size.max(offset + data.len() as u64);
        self.uncommitted = true;
        Ok(())
    }

    /// Sets the logical length: drops overlay pages past it, and makes the real file's bytes
    /// past it read as zero from now on.
    pub(super) fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.uncommitted = true;
        if len >= self.size {
            // Growing: the new bytes read as zero because `base_len <= old size`.
            self.size = len;
            return Ok(());
        }
        let page_size = self.page_size_for_write(len, 0) as u64;
        let in_page = (len % page_size) as usize;
        if in_page != 0 {
            // Zero the tail of the page the new end falls in, so regrowth reads zeros.
            self.modify(
                len / page_size,
                page_size as usize,
                Change::ZeroFrom(in_page),
            )?;
        }
        let first_gone = len.div_ceil(page_size);
        drop(self.pages.split_off(&first_gone));
        drop(self.touched.split_off(&first_gone));
        self.preimages.retain(|&page, _| page < first_gone);
        self.size = len;
        self.base_len = self.base_len.min(len);
        self.capture_min_size = self.capture_min_size.min(len);
        self.min_size_since_snapshot = self.min_size_since_snapshot.min(len);
        Ok(())
    }

    /// SQLite finished committing (`SQLITE_FCNTL_COMMIT_PHASETWO`).
    pub(super) fn committed(&mut self) {
        self.uncommitted = false;
    }

    /// The overlay page size; on the first write, learns it from SQLite's write size.
    fn page_size_for_write(&mut self, offset: u64, len: usize) -> usize {
        *self.page_size.get_or_insert_with(|| {
            let is_page = len.is_power_of_two()
                && (512..=65536).contains(&len)
                && offset.is_multiple_of(len as u64);
            if is_page { len } else { DEFAULT_PAGE_SIZE }
        })
    }

    /// Applies one change to one page, saving the page's pre-image at its first touch since
    /// the last capture.
    fn modify(&mut self, page: u64, page_size: usize, change: Change<'_>) -> io::Result<()> {
        let start = page * page_size as u64;
        let needs_preimage = !self.touched.contains(&page) && start < self.capture_min_size;
        let existing = match self.pages.remove(&page) {
            Some(entry) => Some(entry.data),
            None if needs_preimage || !matches!(change, Change::Replace(_)) => {
                Some(self.load_base(page, page_size)?)
            }
            None => None,
        };
        if needs_preimage {
            // Shares the bytes; the change below copies them (copy on write).
            let preimage = existing
                .clone()
                .expect("loaded above when a pre-image is needed");
            self.preimages.insert(page, preimage);
        }
        let data = match (existing, change) {
            (Some(mut data), Change::Replace(bytes)) if Arc::strong_count(&data) == 1 => {
                Arc::make_mut(&mut data).copy_from_slice(bytes);
                data
            }
            (_, Change::Replace(bytes)) => Arc::from(bytes),
            (Some(mut data), Change::Patch(at, bytes)) => {
                Arc::make_mut(&mut data)[at..at + bytes.len()].copy_from_slice(bytes);
                data
            }
            (Some(mut data), Change::ZeroFrom(at)) => {
                Arc::make_mut(&mut data)[at..].fill(0);
                data
            }
            (None, Change::Patch(..) | Change::ZeroFrom(_)) => {
                unreachable!("partial changes always load the page first")
            }
        };
        self.touched.insert(page);
        let version = self.next_version;
        self.next_version += 1;
        self.pages.insert(page, Page { data, version });
        Ok(())
    }

    fn load_base(&self, page: u64, page_size: usize) -> io::Result<Arc<[u8]>> {
        let mut data = vec![0u8; page_size];
        self.read_base(&mut data, page * page_size as u64)?;
        Ok(Arc::from(data))
    }

    /// Returns what changed since the last capture and starts a new capture window. `None` if
    /// nothing changed (including a page rewritten with identical bytes).
    pub(super) fn take_capture(&mut self) -> Result<Option<Capture>, Refusal> {
        if self.uncommitted {
            return Err(Refusal::UncommittedWrites);
        }
        if !self.has_uncaptured_changes() {
            return Ok(None);
        }
        let page_size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        let zero_from = self.capture_min_size;
        let zeros = vec![0u8; page_size];
        let mut scratch = vec![0u8; page_size];
        let mut builder = Builder::new();
        for &page in &self.touched {
            let start = page * page_size as u64;
            if start >= self.size {
                continue;
            }
            let len = (self.size - start).min(page_size as u64) as usize;
            let current = self
                .pages
                .get(&page)
                .map_or(&zeros[..], |entry| &entry.data[..]);
            // What replay finds at this page before the ranges: the pre-image below
            // `zero_from`, zeros from there on.
            let below = zero_from.saturating_sub(start).min(len as u64) as usize;
            let base = if below == 0 {
                &zeros[..len]
            } else {
                let preimage = self
                    .preimages
                    .get(&page)
                    .expect("a touched page below zero_from has a pre-image");
                scratch[..below].copy_from_slice(&preimage[..below]);
                scratch[below..len].fill(0);
                &scratch[..len]
            };
            builder.diff(start, &current[..len], base);
        }
        let unchanged = builder.is_empty()
            && self.size == self.captured_size
            && zero_from == self.captured_size;
        let capture = builder.finish(page_size as u32, self.size, zero_from);
        self.touched.clear();
        self.preimages.clear();
        self.captured_size = self.size;
        self.capture_min_size = self.size;
        Ok(if unchanged { None } else { Some(capture) })
    }

    /// Freezes the overlay for a checkpoint. Only at a commit boundary with every commit captured.
    pub(super) fn snapshot(&mut self) -> Result<SnapshotData, Refusal> {
        if self.snapshot_in_flight.is_some() {
            return Err(Refusal::CheckpointInProgress);
        }
        if self.has_uncaptured_changes() {
            return Err(Refusal::UncapturedChanges);
        }
        let id = self.next_snapshot_id;
        self.next_snapshot_id += 1;
        self.snapshot_in_flight = Some(id);
        self.min_size_since_snapshot = self.size;
        Ok(SnapshotData {
            id,
            file: Arc::clone(&self.file),
            page_size: self.page_size.unwrap_or(DEFAULT_PAGE_SIZE),
            size: self.size,
            base_len: self.base_len,
            pages: self
                .pages
                .iter()
                .map(|(&page, entry)| (page, Arc::clone(&entry.data), entry.version))
                .collect(),
        })
    }

    /// The snapshot is on disk and synced: drop the pages that did not change since.
    pub(super) fn confirm(&mut self, snapshot: &SnapshotData) {
        assert_eq!(
            self.snapshot_in_flight,
            Some(snapshot.id),
            "confirming a snapshot that is not in flight"
        );
        for (page, _, version) in &snapshot.pages {
            if self
                .pages
                .get(page)
                .is_some_and(|entry| entry.version == *version)
            {
                self.pages.remove(page);
            }
        }
        // The file now holds the snapshot's content. Bytes a truncation cut after the snapshot
        // still read as zero.
        self.file_len = snapshot.size;
        self.base_len = snapshot.size.min(self.min_size_since_snapshot);
        self.snapshot_in_flight = None;
    }

    /// Forgets an abandoned snapshot, so another may be taken.
    pub(super) fn abandon(&mut self, id: u64) {
        if self.snapshot_in_flight == Some(id) {
            self.snapshot_in_flight = None;
        }
    }
}

enum Change<'a> {
    /// The whole page becomes these bytes.
    Replace(&'a [u8]),
    /// These bytes replace the page's bytes from this offset.
    Patch(usize, &'a [u8]),
    /// The page's bytes from this offset become zero.
    ZeroFrom(usize),
}

impl SnapshotData {
    /// Pages in the snapshot.
    pub(super) fn pages(&self) -> usize {
        self.pages.len()
    }

    /// Bytes the write will send.
    pub(super) fn bytes(&self) -> u64 {
        self.pages.len() as u64 * self.page_size as u64
    }

    /// Writes the snapshot into the real file (no sync). Touches only pages in the snapshot
    /// and bytes past `base_len`, none of which SQLite reads from the file meanwhile.
    pub(super) fn write(&self) -> io::Result<()> {
        if self.file.len()? > self.base_len {
            // Stale bytes a truncation cut; the new content there is zeros or snapshot pages.
            self.file.set_len(self.base_len)?;
        }
        let page_size = self.page_size as u64;
        let mut run: Vec<u8> = Vec::new();
        let mut run_start = 0u64;
        for (page, data, _) in &self.pages {
            let start = page * page_size;
            if start >= self.size {
                break;
            }
            let len = (self.size - start).min(page_size) as usize;
            if !run.is_empty()
                && (run_start + run.len() as u64 != start || run.len() + len > MAX_WRITE_BYTES)
            {
                self.file.write_all_at(&run, run_start)?;
                run.clear();
            }
            if run.is_empty() {
                run_start = start;
            }
            run.extend_from_slice(&data[..len]);
        }
        if !run.is_empty() {
            self.file.write_all_at(&run, run_start)?;
        }
        if self.file.len()? != self.size {
            self.file.set_len(self.size)?;
        }
        Ok(())
    }
}

/// The page size in a SQLite database header, if the header is one.
fn header_page_size(header: &[u8; 100]) -> Option<usize> {
    if &header[..16] != b"SQLite format 3\0" {
        return None;
    }
    let raw = u16::from_be_bytes([header[16], header[17]]);
    let size = if raw == 1 { 65536 } else { usize::from(raw) };
    (size.is_power_of_two() && (512..=65536).contains(&size)).then_some(size)
}
