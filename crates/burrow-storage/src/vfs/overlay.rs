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

#[cfg(test)]
mod tests {
    //! Edge cases SQLite rarely produces on its own: growth by truncate, sub-page writes,
    //! truncation and regrowth inside one capture window or during a checkpoint.

    use std::sync::Mutex;

    use super::*;

    const PAGE: usize = 1024;

    #[derive(Default)]
    struct Bytes(Mutex<Vec<u8>>);

    impl File for Bytes {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let data = self.0.lock().unwrap();
            let start = (offset as usize).min(data.len());
            let n = (data.len() - start).min(buf.len());
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        }
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            let mut data = self.0.lock().unwrap();
            let end = offset as usize + buf.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[offset as usize..end].copy_from_slice(buf);
            Ok(())
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.0.lock().unwrap().resize(len as usize, 0);
            Ok(())
        }
        fn len(&self) -> io::Result<u64> {
            Ok(self.0.lock().unwrap().len() as u64)
        }
    }

    impl Bytes {
        fn with(content: &[u8]) -> Arc<Bytes> {
            Arc::new(Bytes(Mutex::new(content.to_vec())))
        }
        fn contents(&self) -> Vec<u8> {
            self.0.lock().unwrap().clone()
        }
    }

    /// A file of `pages` pages, page `i` filled with byte `i + 1`.
    fn pages(count: usize) -> Vec<u8> {
        (0..count).flat_map(|i| vec![i as u8 + 1; PAGE]).collect()
    }

    fn logical(state: &MainState) -> Vec<u8> {
        let mut out = vec![0u8; state.size() as usize];
        assert!(state.read(&mut out, 0).unwrap());
        out
    }

    /// Checkpointed state over `content`, with the page size known.
    fn state_over(content: &[u8]) -> (Arc<Bytes>, MainState) {
        let file = Bytes::with(content);
        let mut state = MainState::new(file.clone()).unwrap();
        state.page_size = Some(PAGE);
        (file, state)
    }

    fn commit_and_capture(state: &mut MainState) -> Option<Capture> {
        state.committed();
        state.take_capture().unwrap()
    }

    fn checkpoint(state: &mut MainState) {
        let snapshot = state.snapshot().unwrap();
        snapshot.write().unwrap();
        state.confirm(&snapshot);
    }

    #[test]
    fn growth_by_truncate_reads_zeros_and_replays() {
        let old = pages(4);
        let (file, mut state) = state_over(&old);
        state.truncate(PAGE as u64).unwrap();
        state.truncate(4 * PAGE as u64).unwrap();
        let mut expected = pages(1);
        expected.resize(4 * PAGE, 0);
        assert_eq!(logical(&state), expected, "cut bytes must not come back");

        let capture = commit_and_capture(&mut state).unwrap();
        assert_eq!(capture.zero_from(), PAGE as u64);
        let replayed = Bytes::with(&old);
        capture.apply(&*replayed).unwrap();
        assert_eq!(replayed.contents(), expected);

        checkpoint(&mut state);
        assert_eq!(
            file.contents(),
            expected,
            "the checkpoint zeroes the cut bytes"
        );
        assert_eq!(logical(&state), expected);
        assert!(state.is_clean());
    }

    #[test]
    fn truncate_and_regrow_in_one_capture_window() {
        let old = pages(4);
        let (_, mut state) = state_over(&old);
        // Shrink to one page, then grow by writing page 3 only: pages 1 and 2 are zeros.
        state.truncate(PAGE as u64).unwrap();
        state.write(&[9u8; PAGE], 3 * PAGE as u64).unwrap();
        let mut expected = pages(1);
        expected.resize(3 * PAGE, 0);
        expected.extend_from_slice(&[9u8; PAGE]);
        assert_eq!(logical(&state), expected);

        let capture = commit_and_capture(&mut state).unwrap();
        // Replay onto the old file, which has non-zero bytes where zeros must appear.
        let replayed = Bytes::with(&old);
        capture.apply(&*replayed).unwrap();
        assert_eq!(replayed.contents(), expected);
    }

    #[test]
    fn sub_page_writes_patch_pages_and_capture_only_changed_bytes() {
        let old = pages(2);
        let (_, mut state) = state_over(&old);
        state.write(&[0xee; 100], 1000).unwrap(); // spans pages 0 and 1
        state.write(&[0xdd; 10], 2 * PAGE as u64 + 5).unwrap(); // grows the file
        let mut expected = old.clone();
        expected[1000..1100].fill(0xee);
        expected.resize(2 * PAGE + 15, 0);
        expected[2 * PAGE + 5..].fill(0xdd);
        assert_eq!(logical(&state), expected);
        let capture = commit_and_capture(&mut state).unwrap();
        assert_eq!(capture.changed_bytes(), 100 + 10);
        let replayed = Bytes::with(&old);
        capture.apply(&*replayed).unwrap();
        assert_eq!(replayed.contents(), expected);
    }

    #[test]
    fn confirm_keeps_pages_changed_after_the_snapshot() {
        let (file, mut state) = state_over(&pages(3));
        state.write(&[7u8; PAGE], 0).unwrap();
        state.write(&[8u8; PAGE], PAGE as u64).unwrap();
        commit_and_capture(&mut state).unwrap();
        let snapshot = state.snapshot().unwrap();
        assert_eq!(state.snapshot().err(), Some(Refusal::CheckpointInProgress));

        state.write(&[9u8; PAGE], PAGE as u64).unwrap();
        commit_and_capture(&mut state).unwrap();
        snapshot.write().unwrap();
        state.confirm(&snapshot);

        assert_eq!(&file.contents()[PAGE..2 * PAGE], &[8u8; PAGE][..]);
        assert_eq!(state.dirty_pages(), 1, "page 1 changed after the snapshot");
        assert_eq!(&logical(&state)[PAGE..2 * PAGE], &[9u8; PAGE][..]);
        assert_eq!(&logical(&state)[..PAGE], &[7u8; PAGE][..]);
    }

    #[test]
    fn truncation_during_a_checkpoint_stays_zero_after_it() {
        let (file, mut state) = state_over(&pages(4));
        state.write(&[7u8; PAGE], 0).unwrap();
        commit_and_capture(&mut state).unwrap();
        let snapshot = state.snapshot().unwrap();

        // After the snapshot: cut to one page and grow back without writing pages 1..3.
        state.truncate(PAGE as u64).unwrap();
        state.truncate(4 * PAGE as u64).unwrap();
        commit_and_capture(&mut state).unwrap();
        snapshot.write().unwrap();
        state.confirm(&snapshot);

        // The file holds the snapshot (old pages 1..3), but they must read as zeros now.
        assert_eq!(&file.contents()[PAGE..2 * PAGE], &[2u8; PAGE][..]);
        let mut expected = vec![7u8; PAGE];
        expected.resize(4 * PAGE, 0);
        assert_eq!(logical(&state), expected);
        assert!(state.needs_checkpoint());
        checkpoint(&mut state);
        assert_eq!(file.contents(), expected);
    }

    #[test]
    fn refusals_protect_the_protocol() {
        let (_, mut state) = state_over(&pages(1));
        state.write(&[2u8; PAGE], 0).unwrap();
        assert_eq!(state.take_capture().err(), Some(Refusal::UncommittedWrites));
        assert_eq!(state.snapshot().err(), Some(Refusal::UncapturedChanges));
        state.committed();
        assert_eq!(state.snapshot().err(), Some(Refusal::UncapturedChanges));
        assert!(state.take_capture().unwrap().is_some());
        let snapshot = state.snapshot().unwrap();
        state.abandon(snapshot.id);
        assert!(state.snapshot().is_ok());
    }

    #[test]
    fn header_page_size_is_read_from_existing_files() {
        let mut header = [0u8; 100];
        header[..16].copy_from_slice(b"SQLite format 3\0");
        header[16..18].copy_from_slice(&8192u16.to_be_bytes());
        assert_eq!(header_page_size(&header), Some(8192));
        header[16..18].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(header_page_size(&header), Some(65536));
        header[16..18].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(header_page_size(&header), None);
        header[0] = b'X';
        assert_eq!(header_page_size(&header), None);
    }
}
