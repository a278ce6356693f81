//! The segment table, spare files, and retiring segments ([`Journal::release_before`]).
//!
//! Retained segments form one unbroken chain in Lsn order; readers look positions up here, the
//! driver adds a segment when a batch starts one, and release removes them oldest first. Spare
//! files wait to become segments: preallocated by the driver when idle, or recycled from retired
//! segments. A spare is named by a number at least as large as every Lsn that may remain inside
//! it, so that even a journal that lost all its segments can restart above stale records.
//!
//! [`Journal::release_before`]: super::Journal::release_before

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::fs::{File, Fs};

use super::format::{SEGMENT_HEADER_BYTES, spare_file_name};
use super::{Error, Inner, Lsn, SyncMode};

/// Retained segments and spare files, under `Inner::segments`. Never held across I/O.
pub(super) struct Segments {
    /// Retained segments by base Lsn.
    pub(super) retained: BTreeMap<u64, Segment>,
    /// Spare files, ready or partly preallocated.
    pub(super) spares: Vec<Spare>,
    /// The lowest number the next spare may be named by.
    pub(super) next_spare_id: u64,
}

/// A segment file in use.
#[derive(Clone)]
pub(super) struct Segment {
    pub(super) base: u64,
    pub(super) capacity: u64,
    pub(super) path: PathBuf,
    pub(super) file: Arc<dyn File>,
}

impl Segment {
    pub(super) fn end(&self) -> u64 {
        self.base + self.capacity
    }
}

/// A file waiting to become a segment.
pub(super) struct Spare {
    pub(super) path: PathBuf,
    pub(super) file: Arc<dyn File>,
    /// Bytes known to be allocated (written) from the start of the file.
    pub(super) len: u64,
}

impl Segments {
    /// The retained segment holding position `lsn`.
    pub(super) fn find(&self, lsn: u64) -> Option<&Segment> {
        self.retained
            .range(..=lsn)
            .next_back()
            .map(|(_, segment)| segment)
            .filter(|segment| lsn < segment.end())
    }

    /// A fresh spare number, at least `floor`.
    pub(super) fn take_spare_id(&mut self, floor: u64) -> u64 {
        let id = self.next_spare_id.max(floor);
        self.next_spare_id = id + 1;
        id
    }
}

/// A segment that [`Journal::release_before`] no longer needs, handed to its `retire` callback.
///
/// Dropping it (or returning without archiving) lets the journal recycle the file as a spare or
/// delete it. [`RetiredSegment::archive_to`] moves it out of the journal instead, for
/// point-in-time recovery. The file keeps the journal's format, so an archive can be read back
/// with the same decoder.
///
/// [`Journal::release_before`]: super::Journal::release_before
pub struct RetiredSegment {
    base: u64,
    end: u64,
    path: PathBuf,
    file: Arc<dyn File>,
    fs: Arc<dyn Fs>,
    archived: Arc<AtomicBool>,
}

impl RetiredSegment {
    /// The Lsn of the segment's first record.
    pub fn first_lsn(&self) -> Lsn {
        Lsn(self.base)
    }

    /// The Lsn just past the segment's record area; the next segment starts here.
    pub fn end_lsn(&self) -> Lsn {
        Lsn(self.end)
    }

    /// Where the segment file is now.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open segment file, for copying it elsewhere. Do not write to it.
    pub fn file(&self) -> &Arc<dyn File> {
        &self.file
    }

    /// Moves the segment file to `dest` (on the journal's file system) and makes the move
    /// durable in both directories. The journal then forgets the file.
    pub fn archive_to(self, dest: &Path) -> io::Result<()> {
        self.fs.rename(&self.path, dest)?;
        self.archived.store(true, Ordering::Release);
        self.fs.sync_dir(parent_dir(dest))?;
        self.fs.sync_dir(parent_dir(&self.path))
    }
}

impl std::fmt::Debug for RetiredSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetiredSegment")
            .field("first_lsn", &self.base)
            .field("end_lsn", &self.end)
            .field("path", &self.path)
            .finish()
    }
}

/// The directory holding `path`, as something `sync_dir` accepts.
pub(super) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

impl Inner {
    pub(super) fn release_before(
        &self,
        lsn: Lsn,
        retire: &mut dyn FnMut(RetiredSegment) -> io::Result<()>,
    ) -> Result<(), Error> {
        let _serial = self
            .release
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.options.sync == SyncMode::Relaxed {
            // Relaxed mode does not sync a new segment's name when it starts one. Make it durable
            // before retiring older segments, so a power loss cannot leave the journal with no
            // segment naming its position.
            self.sync_dir()?;
        }
        // One segment per iteration; the chain is finite and only shrinks here.
        loop {
            let durable = self.durable_lsn.load(Ordering::Acquire);
            let segment = {
                let mut segments = self.lock_segments();
                let Some(oldest) = segments.retained.values().next() else {
                    return Ok(());
                };
                // `end < durable` means a later segment holds durable records, so this one is
                // not the segment that carries the log's position across a restart.
                if oldest.end() > lsn.0 || oldest.end() >= durable {
                    return Ok(());
                }
                let (_, segment) = segments.retained.pop_first().expect("checked non-empty");
                let first = segments.retained.keys().next().copied();
                self.first_lsn
                    .store(first.unwrap_or(segment.end()), Ordering::Release);
                segment
            };
            let archived = Arc::new(AtomicBool::new(false));
            let outcome = retire(RetiredSegment {
                base: segment.base,
                end: segment.end(),
                path: segment.path.clone(),
                file: Arc::clone(&segment.file),
                fs: Arc::clone(&self.fs),
                archived: Arc::clone(&archived),
            });
            if archived.load(Ordering::Acquire) {
                outcome.map_err(|source| Error::Retire {
                    path: segment.path.clone(),
                    source,
                })?;
                continue;
            }
            if let Err(source) = outcome {
                // Not archived, so still ours: keep it retained.
                let path = segment.path.clone();
                let mut segments = self.lock_segments();
                self.first_lsn.store(segment.base, Ordering::Release);
                segments.retained.insert(segment.base, segment);
                return Err(Error::Retire { path, source });
            }
            self.recycle(segment)?;
        }
    }

    /// Turns a retired segment into a spare, or deletes it when there are enough spares or it is
    /// oversized; durably, before the next segment is retired.
    fn recycle(&self, segment: Segment) -> Result<(), Error> {
        let spare_path = {
            let mut segments = self.lock_segments();
            let reusable = segment.capacity == self.options.segment_bytes
                && segments.spares.len() < self.options.max_spare_segments;
            reusable.then(|| {
                let id = segments.take_spare_id(segment.end());
                self.dir.join(spare_file_name(id))
            })
        };
        match spare_path {
            Some(spare_path) => {
                self.fs
                    .rename(&segment.path, &spare_path)
                    .map_err(|e| Error::io("rename retired segment", &segment.path, e))?;
                self.sync_dir()?;
                self.lock_segments().spares.push(Spare {
                    path: spare_path,
                    file: segment.file,
                    len: SEGMENT_HEADER_BYTES + segment.capacity,
                });
            }
            None => {
                self.fs
                    .remove_file(&segment.path)
                    .map_err(|e| Error::io("remove retired segment", &segment.path, e))?;
                self.sync_dir()?;
            }
        }
        Ok(())
    }

    pub(super) fn sync_dir(&self) -> Result<(), Error> {
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("sync directory", &self.dir, e))
    }
}
