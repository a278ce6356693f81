//! Reading records: the [`Reader`] over durable records (replay, replication), and the buffered
//! cursor that it and recovery use to read segment files in large chunks.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::fs::File;

use super::format::{Kind, RECORD_HEADER_BYTES, RecordHeader, SEGMENT_HEADER_BYTES};
use super::segments::Segment;
use super::{Error, Inner, Lsn};

/// Bytes read ahead per file read; a record larger than this is read on its own.
const READ_AHEAD_BYTES: usize = 256 << 10;

/// A read-ahead window over one file. Never reads past the `limit` its caller gives, so a reader
/// cannot cache bytes that were not yet durable when it read them.
pub(super) struct Cursor {
    /// The file offset of `buffer[0]`.
    start: u64,
    buffer: Vec<u8>,
}

impl Cursor {
    pub(super) fn new() -> Cursor {
        Cursor {
            start: 0,
            buffer: Vec::new(),
        }
    }

    /// Forgets the window (the next read goes to the file); call when switching files.
    pub(super) fn invalidate(&mut self) {
        self.buffer.clear();
    }

    /// `len` bytes at file `offset`, reading ahead up to file offset `limit`. Bytes past the end
    /// of the file read as zeros.
    pub(super) fn read(
        &mut self,
        file: &dyn File,
        offset: u64,
        len: usize,
        limit: u64,
    ) -> io::Result<&[u8]> {
        let buffered_end = self.start + self.buffer.len() as u64;
        if offset < self.start || offset + len as u64 > buffered_end {
            let ahead = limit.saturating_sub(offset).min(READ_AHEAD_BYTES as u64) as usize;
            let want = len.max(ahead);
            self.buffer.resize(want, 0);
            if self.buffer.capacity() > 2 * READ_AHEAD_BYTES && want <= READ_AHEAD_BYTES {
                self.buffer.shrink_to(READ_AHEAD_BYTES);
            }
            self.start = offset;
            if let Err(error) = file.read_exact_or_zero_at(&mut self.buffer, offset) {
                self.buffer.clear();
                return Err(error);
            }
        }
        let from = (offset - self.start) as usize;
        Ok(&self.buffer[from..from + len])
    }
}

/// Iterates durable records from a position, in Lsn order, while appends continue.
///
/// [`Reader::next_record`] returns `Ok(None)` when it reaches the durable end; calling it again
/// later returns records made durable since (the iterator is not fused), which is how a
/// replication stream tails the journal. A position that is released while the reader is behind
/// gives [`Error::Released`].
pub struct Reader {
    inner: Arc<Inner>,
    position: u64,
    segment: Option<Segment>,
    cursor: Cursor,
    /// Set once the iterator yielded an error.
    failed: bool,
}

impl Reader {
    pub(super) fn new(inner: Arc<Inner>, from: Lsn) -> Result<Reader, Error> {
        let first = inner.first_lsn.load(Ordering::Acquire);
        if from.0 < first {
            return Err(Error::Released {
                lsn: from,
                first: Lsn(first),
            });
        }
        let end = inner.lock_state().next_lsn;
        if from.0 > end {
            return Err(Error::BeyondEnd {
                lsn: from,
                end: Lsn(end),
            });
        }
        Ok(Reader {
            inner,
            position: from.0,
            segment: None,
            cursor: Cursor::new(),
            failed: false,
        })
    }

    /// The position of the next record this reader returns (or of padding before it).
    pub fn position(&self) -> Lsn {
        Lsn(self.position)
    }

    /// The next durable record, or `None` at the durable end for now.
    pub fn next_record(&mut self) -> Result<Option<(Lsn, Vec<u8>)>, Error> {
        // Each pass either returns or moves past padding to the next segment.
        loop {
            let durable = self.inner.durable_lsn.load(Ordering::Acquire);
            if self.position >= durable {
                return Ok(None);
            }
            let position = self.position;
            let first = self.inner.first_lsn.load(Ordering::Acquire);
            if position < first {
                return Err(Error::Released {
                    lsn: Lsn(position),
                    first: Lsn(first),
                });
            }
            let holds = |s: &Segment| s.base <= position && position < s.end();
            if !self.segment.as_ref().is_some_and(holds) {
                self.segment = self.inner.lock_segments().find(position).cloned();
                self.cursor.invalidate();
            }
            let Some(segment) = self.segment.clone() else {
                return Err(self.failure("no retained segment holds it"));
            };
            let room = segment.end() - position;
            if room < RECORD_HEADER_BYTES {
                self.position = segment.end();
                continue;
            }
            let offset = SEGMENT_HEADER_BYTES + (position - segment.base);
            // Read ahead only up to what was durable when this pass began.
            let limit = SEGMENT_HEADER_BYTES + (durable.min(segment.end()) - segment.base);
            let file = segment.file.as_ref();
            let header = self
                .cursor
                .read(file, offset, RECORD_HEADER_BYTES as usize, limit)
                .map_err(|e| Error::io("read journal segment", &segment.path, e))?;
            let header = RecordHeader::decode(header).filter(|header| {
                header.lsn == position
                    && header.total_bytes() <= room
                    && position + header.total_bytes() <= durable
            });
            let Some(header) = header else {
                return Err(self.failure("no valid record header there"));
            };
            match header.kind {
                Kind::Padding => {
                    if position + header.total_bytes() != segment.end() || !header.verify(&[]) {
                        return Err(self.failure("invalid padding record"));
                    }
                    self.position = segment.end();
                }
                Kind::Data => {
                    let len = header.len as usize;
                    let payload_offset = offset + RECORD_HEADER_BYTES;
                    let payload = if len > READ_AHEAD_BYTES {
                        let mut payload = vec![0u8; len];
                        file.read_exact_or_zero_at(&mut payload, payload_offset)
                            .map(|_| payload)
                    } else {
                        self.cursor
                            .read(file, payload_offset, len, limit)
                            .map(<[u8]>::to_vec)
                    }
                    .map_err(|e| Error::io("read journal segment", &segment.path, e))?;
                    if !header.verify(&payload) {
                        return Err(self.failure("record checksum mismatch"));
                    }
                    self.position = position + header.total_bytes();
                    return Ok(Some((Lsn(position), payload)));
                }
            }
        }
    }

    /// The error for a record that did not decode at the current position: released if the
    /// segment was retired meanwhile, invalid otherwise.
    fn failure(&mut self, detail: &str) -> Error {
        self.segment = None;
        self.cursor.invalidate();
        let first = self.inner.first_lsn.load(Ordering::Acquire);
        if self.position < first {
            return Error::Released {
                lsn: Lsn(self.position),
                first: Lsn(first),
            };
        }
        Error::InvalidRecord {
            lsn: Lsn(self.position),
            detail: detail.to_string(),
        }
    }
}

/// As an iterator, a reader stops (returns `None`) after yielding an error, so that adapters
/// such as `count` terminate; [`Reader::next_record`] keeps reporting the error instead.
impl Iterator for Reader {
    type Item = Result<(Lsn, Vec<u8>), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.next_record().transpose();
        self.failed = matches!(item, Some(Err(_)));
        item
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("position", &self.position)
            .finish()
    }
}
