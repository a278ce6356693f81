//! The redo record of one commit ([`Capture`]): how it is computed, encoded, decoded and replayed.
//!
//! The byte format and the argument for why replay is idempotent are in the [`super`] module docs.

use std::io;

use crate::fs::File;

/// Changed bytes closer together than this are sent as one range. A range costs two varints
/// (usually 2–3 bytes), so sending a short run of unchanged bytes is cheaper than a new range.
pub(super) const MERGE_GAP_BYTES: usize = 8;

/// The version byte that starts every encoded capture.
const FORMAT_VERSION: u8 = 1;

/// The smallest and largest chunk ("page") size a capture may name; SQLite's page-size range.
const MIN_PAGE_SIZE: u32 = 512;
const MAX_PAGE_SIZE: u32 = 65536;

/// What one commit changed in a main database file: a physical, idempotent redo record.
///
/// Replaying it ([`Capture::apply`]) makes bytes `[zero_from, size)` zero, writes every range,
/// and sets the file length to `size`. See the [`super`] module docs for why replaying a suffix
/// of an object's captures onto any checkpoint image reproduces the committed file exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    page_size: u32,
    size: u64,
    zero_from: u64,
    /// `(file offset, length)` of each range, ascending and disjoint; the bytes are in `data`.
    ranges: Vec<(u64, u32)>,
    data: Vec<u8>,
}

/// Why [`Capture::decode`] rejected its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("capture record is truncated")]
    Truncated,
    /// The first byte names a format this code does not know.
    #[error("capture record has unknown format version {0}")]
    UnknownVersion(u8),
    /// A field holds a value no encoder produces.
    #[error("capture record is invalid: {0}")]
    Invalid(&'static str),
}

impl Capture {
    /// The chunk size the VFS tracked the file in; SQLite's page size unless it changed it.
    /// Informational: replay does not need it.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// The file's length in bytes after the commit.
    pub fn size_bytes(&self) -> u64 {
        self.size
    }

    /// The database size in pages after the commit (rounded up).
    pub fn page_count(&self) -> u64 {
        self.size.div_ceil(u64::from(self.page_size))
    }

    /// Replay zero-fills every byte from this offset up to [`Capture::size_bytes`] before it
    /// writes the ranges. It is the file's smallest length during the commit, so it covers every
    /// page that is new or was truncated and regrown.
    pub fn zero_from(&self) -> u64 {
        self.zero_from
    }

    /// The changed byte ranges: `(file offset, new bytes)`, ascending and disjoint.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        let mut start = 0;
        self.ranges.iter().map(move |&(offset, len)| {
            let bytes = &self.data[start..start + len as usize];
            start += len as usize;
            (offset, bytes)
        })
    }

    /// How many bytes the ranges carry.
    pub fn changed_bytes(&self) -> usize {
        self.data.len()
    }

    /// Appends the encoded record to `out` (format in the [`super`] module docs).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.push(FORMAT_VERSION);
        put_varint(out, u64::from(self.page_size));
        put_varint(out, self.size);
        put_varint(out, self.size - self.zero_from);
        put_varint(out, self.ranges.len() as u64);
        let mut previous_end = 0;
        for (offset, bytes) in self.ranges() {
            put_varint(out, offset - previous_end);
            put_varint(out, bytes.len() as u64);
            out.extend_from_slice(bytes);
            previous_end = offset + bytes.len() as u64;
        }
    }

    /// The exact length [`Capture::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        let mut len = 1
            + varint_len(u64::from(self.page_size))
            + varint_len(self.size)
            + varint_len(self.size - self.zero_from)
            + varint_len(self.ranges.len() as u64)
            + self.data.len();
        let mut previous_end = 0;
        for &(offset, range_len) in &self.ranges {
            len += varint_len(offset - previous_end) + varint_len(u64::from(range_len));
            previous_end = offset + u64::from(range_len);
        }
        len
    }

    /// Decodes a record made by [`Capture::encode`]; the whole input must be one record.
    pub fn decode(mut input: &[u8]) -> Result<Capture, DecodeError> {
        let (&version, rest) = input.split_first().ok_or(DecodeError::Truncated)?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnknownVersion(version));
        }
        input = rest;
        let page_size = take_varint(&mut input)?;
        if !page_size.is_power_of_two()
            || page_size < u64::from(MIN_PAGE_SIZE)
            || page_size > u64::from(MAX_PAGE_SIZE)
        {
            return Err(DecodeError::Invalid("page size"));
        }
        let size = take_varint(&mut input)?;
        let zeroed = take_varint(&mut input)?;
        let zero_from = size.checked_sub(zeroed).ok_or(DecodeError::Invalid(
            "zero-filled span longer than the file",
        ))?;
        let count = take_varint(&mut input)?;
        // Every range takes at least three bytes, so a corrupt count cannot make us allocate
        // more than the input could describe.
        if count > input.len() as u64 / 3 {
            return Err(DecodeError::Invalid("range count"));
        }
        let mut ranges = Vec::with_capacity(count as usize);
        let mut data = Vec::new();
        let mut previous_end = 0u64;
        for _ in 0..count {
            let gap = take_varint(&mut input)?;
            let len = take_varint(&mut input)?;
            let offset = previous_end
                .checked_add(gap)
                .ok_or(DecodeError::Invalid("range offset"))?;
            // A range never spans two pages, so it is never longer than the largest page.
            if len == 0 || len > u64::from(MAX_PAGE_SIZE) {
                return Err(DecodeError::Invalid("range length"));
            }
            let end = offset
                .checked_add(len)
                .filter(|&end| end <= size)
                .ok_or(DecodeError::Invalid("range beyond the file size"))?;
            if (input.len() as u64) < len {
                return Err(DecodeError::Truncated);
            }
            let (bytes, rest) = input.split_at(len as usize);
            data.extend_from_slice(bytes);
            input = rest;
            ranges.push((offset, len as u32));
            previous_end = end;
        }
        if !input.is_empty() {
            return Err(DecodeError::Invalid("trailing bytes"));
        }
        Ok(Capture {
            page_size: page_size as u32,
            size,
            zero_from,
            ranges,
            data,
        })
    }

    /// Replays the record onto `file`: zero-fills `[zero_from, size)`, writes the ranges, and
    /// sets the length to `size`. Applying a suffix of an object's records in order onto its
    /// checkpointed file, even a torn one, yields the committed file (see the [`super`] docs).
    /// The caller syncs the file.
    pub fn apply(&self, file: &dyn File) -> io::Result<()> {
        let len = file.len()?;
        if len > self.zero_from {
            file.set_len(self.zero_from)?;
        }
        for (offset, bytes) in self.ranges() {
            file.write_all_at(bytes, offset)?;
        }
        if file.len()? != self.size {
            file.set_len(self.size)?;
        }
        Ok(())
    }
}

/// Builds a [`Capture`] from per-page comparisons.
pub(super) struct Builder {
    ranges: Vec<(u64, u32)>,
    data: Vec<u8>,
}

impl Builder {
    pub(super) fn new() -> Builder {
        Builder {
            ranges: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Adds the ranges where `current` differs from `base`; both describe the bytes at
    /// `offset`. Calls must come in ascending, non-overlapping order of `offset`.
    pub(super) fn diff(&mut self, offset: u64, current: &[u8], base: &[u8]) {
        assert_eq!(current.len(), base.len(), "diff of unequal slices");
        let len = current.len();
        let mut i = common_prefix(current, base);
        while i < len {
            let start = i;
            // `i` is a differing byte. Extend the range over differing bytes and over runs of
            // equal bytes shorter than the merge gap.
            let mut end = i + 1;
            loop {
                while end < len && current[end] != base[end] {
                    end += 1;
                }
                if end == len {
                    break;
                }
                let equal = common_prefix(&current[end..], &base[end..]);
                if end + equal == len || equal >= MERGE_GAP_BYTES {
                    i = end + equal;
                    break;
                }
                end += equal;
            }
            self.ranges
                .push((offset + start as u64, (end - start) as u32));
            self.data.extend_from_slice(&current[start..end]);
            if end == len {
                break;
            }
        }
    }

    /// True if no range was added.
    pub(super) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub(super) fn finish(self, page_size: u32, size: u64, zero_from: u64) -> Capture {
        assert!(
            zero_from <= size,
            "zero_from {zero_from} beyond size {size}"
        );
        debug_assert!(
            self.ranges
                .windows(2)
                .all(|pair| pair[0].0 + u64::from(pair[0].1) <= pair[1].0),
            "ranges not ascending"
        );
        Capture {
            page_size,
            size,
            zero_from,
            ranges: self.ranges,
            data: self.data,
        }
    }
}

/// The number of leading bytes on which `a` and `b` agree.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const WORD: usize = 8;
    let len = a.len().min(b.len());
    let mut i = 0;
    // Word at a time first: pages are mostly unchanged, and this runs for every dirty page.
    while i + WORD <= len && a[i..i + WORD] == b[i..i + WORD] {
        i += WORD;
    }
    while i < len && a[i] == b[i] {
        i += 1;
    }
    i
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint_len(value: u64) -> usize {
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

fn take_varint(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for (index, &byte) in input.iter().enumerate() {
        let shift = 7 * index as u32;
        if shift >= 64 || (shift == 63 && byte > 1) {
            return Err(DecodeError::Invalid("varint overflows 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            *input = &input[index + 1..];
            return Ok(value);
        }
    }
    Err(DecodeError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(size: u64, zero_from: u64, ranges: &[(u64, &[u8])]) -> Capture {
        Capture {
            page_size: 4096,
            size,
            zero_from,
            ranges: ranges.iter().map(|(o, b)| (*o, b.len() as u32)).collect(),
            data: ranges.iter().flat_map(|(_, b)| b.iter().copied()).collect(),
        }
    }

    #[test]
    fn varints_round_trip_at_every_width() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "{value}");
            let mut input = &out[..];
            assert_eq!(take_varint(&mut input), Ok(value));
            assert!(input.is_empty());
        }
        let mut too_long: &[u8] = &[0xff; 11];
        assert!(take_varint(&mut too_long).is_err());
    }

    #[test]
    fn encode_decode_round_trip() {
        let original = capture(8192, 4096, &[(24, &[1, 2, 3, 4]), (5000, &[9; 100])]);
        let mut out = vec![0xaa]; // encode appends
        original.encode(&mut out);
        assert_eq!(out.len(), 1 + original.encoded_len());
        assert_eq!(Capture::decode(&out[1..]), Ok(original));
    }

    #[test]
    fn decode_rejects_corruption() {
        let original = capture(8192, 8192, &[(24, &[1, 2, 3, 4])]);
        let mut out = Vec::new();
        original.encode(&mut out);
        for cut in 0..out.len() {
            assert!(Capture::decode(&out[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = out.clone();
        trailing.push(0);
        assert!(Capture::decode(&trailing).is_err());
        let mut version = out.clone();
        version[0] = 2;
        assert_eq!(
            Capture::decode(&version),
            Err(DecodeError::UnknownVersion(2))
        );
        let beyond = capture(16, 16, &[(12, &[1, 2, 3, 4, 5])]);
        let mut out = Vec::new();
        beyond.encode(&mut out);
        assert!(Capture::decode(&out).is_err());
    }

    #[test]
    fn diff_merges_close_ranges_and_skips_equal_bytes() {
        let base = vec![0u8; 64];
        let mut current = base.clone();
        current[3] = 1;
        current[3 + MERGE_GAP_BYTES - 1] = 1; // gap of 6 equal bytes: merged
        current[40] = 1; // far away: its own range
        current[63] = 1; // last byte
        let mut builder = Builder::new();
        builder.diff(1000, &current, &base);
        let capture = builder.finish(4096, 2000, 2000);
        let ranges: Vec<(u64, usize)> = capture.ranges().map(|(o, b)| (o, b.len())).collect();
        assert_eq!(ranges, vec![(1003, MERGE_GAP_BYTES), (1040, 1), (1063, 1)]);

        let mut builder = Builder::new();
        builder.diff(0, &base, &base);
        assert!(builder.is_empty());
    }
}
