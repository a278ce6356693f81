//! The journal's bytes on disk: segment headers, record headers, checksums and file names.
//!
//! The layout is specified in the module docs of [`crate::journal`]; this file is its only
//! implementation. Every decoder here answers "valid or not" and never panics on garbage, since a
//! preallocated or recycled segment is full of stale bytes by design.

/// Bytes at the start of every segment file, before its first record.
pub(crate) const SEGMENT_HEADER_BYTES: u64 = 32;
/// Bytes of every record header (data and padding).
pub(crate) const RECORD_HEADER_BYTES: u64 = 24;
/// The first eight bytes of every segment.
const MAGIC: [u8; 8] = *b"BURROWJL";
/// The only format version so far.
const FORMAT_VERSION: u32 = 1;
/// Record kind: a payload the caller appended.
const KIND_DATA: u8 = 1;
/// Record kind: skip to the end of the segment.
const KIND_PADDING: u8 = 2;

/// What a segment header says about its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// The Lsn of the segment's first record byte.
    pub(crate) base: u64,
    /// Bytes of Lsn space the segment holds (file length minus the header).
    pub(crate) capacity: u64,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES as usize] {
        let mut bytes = [0u8; SEGMENT_HEADER_BYTES as usize];
        bytes[0..8].copy_from_slice(&MAGIC);
        bytes[8..16].copy_from_slice(&self.base.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.capacity.to_le_bytes());
        bytes[24..28].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[0..28]);
        bytes[28..32].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// The header in `bytes`, if its magic, version and checksum are right.
    pub(crate) fn decode(bytes: &[u8]) -> Option<SegmentHeader> {
        let bytes: &[u8; SEGMENT_HEADER_BYTES as usize] = bytes.try_into().ok()?;
        if bytes[0..8] != MAGIC || u32_at(bytes, 24) != FORMAT_VERSION {
            return None;
        }
        if u32_at(bytes, 28) != crc32c::crc32c(&bytes[0..28]) {
            return None;
        }
        let header = SegmentHeader {
            base: u64_at(bytes, 8),
            capacity: u64_at(bytes, 16),
        };
        let in_range = header.base.checked_add(header.capacity).is_some();
        (header.capacity >= RECORD_HEADER_BYTES && in_range).then_some(header)
    }
}

/// The kind of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Carries a payload.
    Data,
    /// Says the rest of the segment is unused.
    Padding,
}

/// A decoded record header. Its checksum is not yet verified against the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) kind: Kind,
    /// Payload bytes (data) or bytes skipped after the header (padding).
    pub(crate) len: u32,
    /// The record's own position.
    pub(crate) lsn: u64,
    crc: u32,
    raw: [u8; RECORD_HEADER_BYTES as usize],
}

impl RecordHeader {
    /// Encodes a data record's header; `payload_crc` is `crc32c(payload)`.
    pub(crate) fn data(lsn: u64, len: u32, payload_crc: u32) -> [u8; RECORD_HEADER_BYTES as usize] {
        encode_header(KIND_DATA, lsn, len, payload_crc)
    }

    /// Encodes a padding record's header that skips `len` bytes after itself.
    pub(crate) fn padding(lsn: u64, len: u32) -> [u8; RECORD_HEADER_BYTES as usize] {
        encode_header(KIND_PADDING, lsn, len, 0)
    }

    /// The header in `bytes`, if its fields are well formed (kind known, reserved bytes zero).
    pub(crate) fn decode(bytes: &[u8]) -> Option<RecordHeader> {
        let raw: [u8; RECORD_HEADER_BYTES as usize] = bytes.try_into().ok()?;
        let kind = match raw[16] {
            KIND_DATA => Kind::Data,
            KIND_PADDING => Kind::Padding,
            _ => return None,
        };
        if raw[17..24].iter().any(|&b| b != 0) {
            return None;
        }
        Some(RecordHeader {
            kind,
            len: u32_at(&raw, 4),
            lsn: u64_at(&raw, 8),
            crc: u32_at(&raw, 0),
            raw,
        })
    }

    /// Bytes of Lsn space the whole record takes (header included).
    pub(crate) fn total_bytes(&self) -> u64 {
        RECORD_HEADER_BYTES + u64::from(self.len)
    }

    /// True if the checksum covers exactly this header and `payload` (empty for padding).
    pub(crate) fn verify(&self, payload: &[u8]) -> bool {
        let payload_crc = match self.kind {
            Kind::Data => crc32c::crc32c(payload),
            Kind::Padding => 0,
        };
        crc32c::crc32c_append(payload_crc, &self.raw[4..]) == self.crc
    }
}

fn encode_header(kind: u8, lsn: u64, len: u32, payload_crc: u32) -> [u8; 24] {
    let mut bytes = [0u8; RECORD_HEADER_BYTES as usize];
    bytes[4..8].copy_from_slice(&len.to_le_bytes());
    bytes[8..16].copy_from_slice(&lsn.to_le_bytes());
    bytes[16] = kind;
    let crc = crc32c::crc32c_append(payload_crc, &bytes[4..]);
    bytes[0..4].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// `0000000000001000.seg` for the segment whose base Lsn is 0x1000.
pub(crate) fn segment_file_name(base: u64) -> String {
    format!("{base:016x}.seg")
}

/// `0000000000000003.spare` for spare number 3.
pub(crate) fn spare_file_name(id: u64) -> String {
    format!("{id:016x}.spare")
}

/// The base Lsn of a segment file name, if `name` is one.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    parse_hex_name(name, ".seg")
}

/// The number of a spare file name, if `name` is one.
pub(crate) fn parse_spare_file_name(name: &str) -> Option<u64> {
    parse_hex_name(name, ".spare")
}

fn parse_hex_name(name: &str, extension: &str) -> Option<u64> {
    let digits = name.strip_suffix(extension)?;
    if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trips_and_rejects_damage() {
        let header = SegmentHeader {
            base: 0x1234_5678,
            capacity: 1 << 20,
        };
        let bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Some(header));
        for at in 0..bytes.len() {
            let mut damaged = bytes;
            damaged[at] ^= 0x40;
            assert_eq!(SegmentHeader::decode(&damaged), None, "byte {at}");
        }
        assert_eq!(SegmentHeader::decode(&[0u8; 32]), None);
    }

    #[test]
    fn record_checksum_covers_header_and_payload() {
        let payload = b"redo record";
        let bytes = RecordHeader::data(4096, payload.len() as u32, crc32c::crc32c(payload));
        let header = RecordHeader::decode(&bytes).unwrap();
        assert_eq!(
            (header.kind, header.lsn, header.len),
            (Kind::Data, 4096, 11)
        );
        assert!(header.verify(payload));
        assert!(!header.verify(b"redo recorD"));
        for at in 0..bytes.len() {
            let mut damaged = bytes;
            damaged[at] ^= 1;
            let valid = RecordHeader::decode(&damaged).is_some_and(|h| h.verify(payload));
            assert!(!valid, "byte {at}");
        }
        let padding = RecordHeader::decode(&RecordHeader::padding(77, 1000)).unwrap();
        assert_eq!((padding.kind, padding.total_bytes()), (Kind::Padding, 1024));
        assert!(padding.verify(&[]));
        // Zeros, as in a preallocated segment, are never a record.
        assert!(RecordHeader::decode(&[0u8; 24]).is_none());
    }

    #[test]
    fn file_names_sort_by_lsn_and_parse_back() {
        assert_eq!(segment_file_name(0x1000), "0000000000001000.seg");
        assert!(segment_file_name(0xff) < segment_file_name(0x100));
        assert_eq!(
            parse_segment_file_name("0000000000001000.seg"),
            Some(0x1000)
        );
        assert_eq!(parse_segment_file_name("1000.seg"), None);
        assert_eq!(parse_segment_file_name("000000000000100g.seg"), None);
        assert_eq!(parse_spare_file_name(&spare_file_name(7)), Some(7));
    }
}
