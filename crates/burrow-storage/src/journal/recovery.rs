//! Opening a journal: scan the segments, find the end of the log, and make the cut durable.
//!
//! The rules are in the module docs of [`crate::journal`] ("Recovery"). In short: the log ends
//! at the first thing that is not a valid record where one is expected; later segment files are
//! removed (then the directory synced), then a padding record closes the last segment (then the
//! segment synced), so new records start a fresh segment and nothing stale is ever read again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::fs::{File, Fs, OpenMode};

use super::format::{
    Kind, RECORD_HEADER_BYTES, RecordHeader, SEGMENT_HEADER_BYTES, SegmentHeader,
    parse_segment_file_name, parse_spare_file_name, segment_file_name,
};
use super::reader::Cursor;
use super::segments::{Segment, Segments, Spare, parent_dir};
use super::{Error, Lsn, Options};

/// What recovery found and did when the journal was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The oldest retained position.
    pub first_lsn: Lsn,
    /// The end of the valid log: the position just past the last valid record (or padding).
    pub log_end: Lsn,
    /// Where new records start (the log end, moved to the next segment boundary).
    pub end_lsn: Lsn,
    /// Valid data records in the retained segments.
    pub records: u64,
    /// Why the scan stopped inside a segment, if it did: after a clean shutdown, the unused
    /// bytes after the last record; after a crash, a torn, corrupt or stale record.
    pub cut: Option<String>,
    /// Segment files after the end that were removed.
    pub removed_segments: usize,
    /// Bytes closed off by the padding record written at the end, if one was.
    pub padding_bytes: u64,
}

pub(super) struct Recovered {
    pub(super) segments: Segments,
    pub(super) report: Recovery,
}

/// The result of scanning one segment.
struct Scan {
    /// Just past the last valid record or padding.
    end: u64,
    records: u64,
    /// Why the scan stopped before the segment's end, if it did.
    invalid: Option<String>,
}

pub(super) fn recover(fs: &dyn Fs, dir: &Path, options: &Options) -> Result<Recovered, Error> {
    create_dir_durably(fs, dir)?;
    let entries = fs
        .read_dir(dir)
        .map_err(|e| Error::io("list journal directory", dir, e))?;
    let mut segment_bases = Vec::new();
    let mut spare_paths = Vec::new();
    let mut next_spare_id = 0;
    for path in entries {
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        if let Some(base) = parse_segment_file_name(name) {
            segment_bases.push(base);
        } else if let Some(id) = parse_spare_file_name(name) {
            next_spare_id = next_spare_id.max(id.saturating_add(1));
            spare_paths.push(path);
        }
    }
    segment_bases.sort_unstable();

    let mut retained = BTreeMap::new();
    let mut records = 0;
    let mut log_end: Option<u64> = None;
    let mut cut = None;
    let mut doomed = Vec::new();
    let mut expected: Option<u64> = None;
    let mut cursor = Cursor::new();
    for base in segment_bases {
        if log_end.is_some() {
            doomed.push(base);
            continue;
        }
        if let Some(expected) = expected.filter(|&expected| expected != base) {
            log_end = Some(expected);
            cut = Some(format!(
                "segment {} is missing; the next one starts at {base}",
                segment_file_name(expected)
            ));
            doomed.push(base);
            continue;
        }
        let path = dir.join(segment_file_name(base));
        let file = fs
            .open(&path, OpenMode::Existing)
            .map_err(|e| Error::io("open journal segment", &path, e))?;
        cursor.invalidate();
        let header = cursor
            .read(
                file.as_ref(),
                0,
                SEGMENT_HEADER_BYTES as usize,
                SEGMENT_HEADER_BYTES,
            )
            .map_err(|e| Error::io("read journal segment", &path, e))?;
        let Some(header) = SegmentHeader::decode(header).filter(|header| header.base == base)
        else {
            log_end = Some(base);
            cut = Some(format!("segment {} has no valid header", path.display()));
            doomed.push(base);
            continue;
        };
        let scan = scan_segment(file.as_ref(), header, &mut cursor)
            .map_err(|e| Error::io("read journal segment", &path, e))?;
        records += scan.records;
        retained.insert(
            base,
            Segment {
                base,
                capacity: header.capacity,
                path,
                file,
            },
        );
        match scan.invalid {
            Some(reason) => {
                log_end = Some(scan.end);
                cut = Some(reason);
            }
            None => expected = Some(base + header.capacity),
        }
    }
    let log_end = log_end.or(expected).unwrap_or(0);

    // 0. If no segment survived, the first invalid one (named at the log end) is kept as an
    // anchor: it gets a fresh header below, and the padding of step 2 covers all of it. Removing
    // it instead would leave no file carrying the position, and a crash before the next segment
    // is durable would restart the journal at a lower Lsn.
    let anchor = match retained.is_empty() {
        true => doomed.first().copied().filter(|&base| base == log_end),
        false => None,
    };
    let removed: Vec<u64> = doomed
        .iter()
        .copied()
        .filter(|&base| Some(base) != anchor)
        .collect();

    // 1. Remove everything after the end, durably, before anything can point past the end.
    for &base in &removed {
        let path = dir.join(segment_file_name(base));
        fs.remove_file(&path)
            .map_err(|e| Error::io("remove segment after the end of the log", &path, e))?;
    }
    if !removed.is_empty() {
        tracing::warn!(
            segments = removed.len(),
            end = log_end,
            "journal recovery removed segments after the end of the log"
        );
        fs.sync_dir(dir)
            .map_err(|e| Error::io("sync directory", dir, e))?;
    }
    if let Some(base) = anchor {
        let path = dir.join(segment_file_name(base));
        let file = fs
            .open(&path, OpenMode::Existing)
            .map_err(|e| Error::io("open journal segment", &path, e))?;
        let capacity = options.segment_bytes;
        file.write_all_at(&SegmentHeader { base, capacity }.encode(), 0)
            .map_err(|e| Error::io("write segment header to", &path, e))?;
        retained.insert(
            base,
            Segment {
                base,
                capacity,
                path,
                file,
            },
        );
    }

    // 2. Close the last segment with padding, so new records start a fresh segment.
    let mut padding_bytes = 0;
    let end_lsn = match retained.values().next_back() {
        Some(last) => {
            let room = last.end() - log_end;
            if room >= RECORD_HEADER_BYTES {
                let skipped = u32::try_from(room - RECORD_HEADER_BYTES)
                    .expect("a valid segment header bounds capacity by what records can fill");
                let padding = RecordHeader::padding(log_end, skipped);
                let offset = SEGMENT_HEADER_BYTES + (log_end - last.base);
                last.file
                    .write_all_at(&padding, offset)
                    .map_err(|e| Error::io("write padding to", &last.path, e))?;
                padding_bytes = room;
            }
            last.end()
        }
        // With no segment left, restart above every Lsn a spare may still hold.
        None => log_end.max(next_spare_id),
    };

    // 3. Make everything the scan accepted durable, padding included. After a process crash
    // the last batches may still be only in the page cache (or never synced at all, in relaxed
    // mode); records replayed from them must not vanish in a later power loss, taking the
    // records appended after them along.
    let files: Vec<Arc<dyn File>> = retained.values().map(|s| Arc::clone(&s.file)).collect();
    fs.sync_files(&files)
        .map_err(|e| Error::io("sync journal segments in", dir, e))?;
    fs.sync_dir(dir)
        .map_err(|e| Error::io("sync directory", dir, e))?;
    if let Some(reason) = &cut {
        tracing::info!(end = log_end, reason = %reason, "journal recovery cut the log");
    }

    let mut spares = Vec::new();
    for path in spare_paths {
        if spares.len() >= options.max_spare_segments {
            fs.remove_file(&path)
                .map_err(|e| Error::io("remove extra spare segment", &path, e))?;
            continue;
        }
        let file: Arc<dyn File> = fs
            .open(&path, OpenMode::Existing)
            .map_err(|e| Error::io("open spare segment", &path, e))?;
        let len = file
            .len()
            .map_err(|e| Error::io("stat spare segment", &path, e))?;
        spares.push(Spare { path, file, len });
    }

    let first_lsn = retained.keys().next().copied().unwrap_or(end_lsn);
    Ok(Recovered {
        segments: Segments {
            retained,
            spares,
            next_spare_id,
        },
        report: Recovery {
            first_lsn: Lsn(first_lsn),
            log_end: Lsn(log_end),
            end_lsn: Lsn(end_lsn),
            records,
            cut,
            removed_segments: removed.len(),
            padding_bytes,
        },
    })
}

/// Creates `dir` and any missing parents, syncing the parent of each directory created so the
/// whole path survives a power loss.
fn create_dir_durably(fs: &dyn Fs, dir: &Path) -> Result<(), Error> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|path| !path.as_os_str().is_empty() && !fs.exists(path))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    fs.create_dir_all(dir)
        .map_err(|e| Error::io("create journal directory", dir, e))?;
    // Outermost first: a child's entry is only reachable once its parent's entry is durable.
    for created in missing.iter().rev() {
        let parent = parent_dir(created);
        fs.sync_dir(parent)
            .map_err(|e| Error::io("sync directory", parent, e))?;
    }
    Ok(())
}

/// Validates the records of one segment, stopping at the first invalid one.
fn scan_segment(
    file: &dyn File,
    header: SegmentHeader,
    cursor: &mut Cursor,
) -> std::io::Result<Scan> {
    let segment_end = header.base + header.capacity;
    let limit = SEGMENT_HEADER_BYTES + header.capacity;
    let mut position = header.base;
    let mut records = 0;
    let stop = |position: u64, records: u64, why: &str| Scan {
        end: position,
        records,
        invalid: Some(format!("{why} at position {position}")),
    };
    // Each pass consumes at least one record header, so this ends within the segment.
    loop {
        let room = segment_end - position;
        if room < RECORD_HEADER_BYTES {
            return Ok(Scan {
                end: segment_end,
                records,
                invalid: None,
            });
        }
        let offset = SEGMENT_HEADER_BYTES + (position - header.base);
        let bytes = cursor.read(file, offset, RECORD_HEADER_BYTES as usize, limit)?;
        let record = RecordHeader::decode(bytes)
            .filter(|record| record.lsn == position && record.total_bytes() <= room);
        let Some(record) = record else {
            return Ok(stop(position, records, "no valid record header"));
        };
        match record.kind {
            Kind::Padding => {
                if position + record.total_bytes() != segment_end || !record.verify(&[]) {
                    return Ok(stop(position, records, "invalid padding record"));
                }
                return Ok(Scan {
                    end: segment_end,
                    records,
                    invalid: None,
                });
            }
            Kind::Data => {
                let payload = cursor.read(
                    file,
                    offset + RECORD_HEADER_BYTES,
                    record.len as usize,
                    limit,
                )?;
                if !record.verify(payload) {
                    return Ok(stop(position, records, "record checksum mismatch"));
                }
                records += 1;
                position += record.total_bytes();
            }
        }
    }
}
