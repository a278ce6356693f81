//! The engine's journal payload: which files one atomic commit changed, and how.
//!
//! One journal record is one atomic unit. Usually it holds one object's commit; when a commit also
//! moves the object's alarm it holds the alarm index's change too, so both land or neither does.
//!
//! Byte format (all integers little-endian; `varint` is LEB128):
//! ```text
//! payload := version:u8 (=1) entry_count:varint entry*
//! entry   := kind:u8 path_len:varint path:utf8 body
//! kind 1  (Commit): body := capture_len:varint capture   (vfs::Capture encoding)
//! kind 2  (Delete): body := (empty)                       (remove the file and its storage)
//! ```
//! `path` is relative to the data directory, uses `/` and never contains `..` (checked on decode,
//! so a corrupted record can never make recovery write outside the data directory).

use std::fmt;

const VERSION: u8 = 1;
const KIND_COMMIT: u8 = 1;
const KIND_DELETE: u8 = 2;

/// One file's change inside a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry<'a> {
    /// Apply this encoded `vfs::Capture` to the file.
    Commit { path: &'a str, capture: &'a [u8] },
    /// Remove the file.
    Delete { path: &'a str },
}

impl Entry<'_> {
    pub(crate) fn path(&self) -> &str {
        match self {
            Entry::Commit { path, .. } | Entry::Delete { path } => path,
        }
    }
}

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(&'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed journal payload: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Encodes `entries` as one payload.
pub(crate) fn encode(entries: &[Entry<'_>], out: &mut Vec<u8>) {
    out.push(VERSION);
    put_varint(out, entries.len() as u64);
    for entry in entries {
        match entry {
            Entry::Commit { path, capture } => {
                out.push(KIND_COMMIT);
                put_bytes(out, path.as_bytes());
                put_bytes(out, capture);
            }
            Entry::Delete { path } => {
                out.push(KIND_DELETE);
                put_bytes(out, path.as_bytes());
            }
        }
    }
}

/// Decodes a payload written by [`encode`].
pub(crate) fn decode(mut input: &[u8]) -> Result<Vec<Entry<'_>>, DecodeError> {
    let version = take_u8(&mut input)?;
    if version != VERSION {
        return Err(DecodeError("unknown version"));
    }
    let count = take_varint(&mut input)?;
    if count > input.len() as u64 {
        return Err(DecodeError("entry count larger than the payload"));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let kind = take_u8(&mut input)?;
        let path = std::str::from_utf8(take_bytes(&mut input)?)
            .map_err(|_| DecodeError("path is not UTF-8"))?;
        check_path(path)?;
        entries.push(match kind {
            KIND_COMMIT => Entry::Commit {
                path,
                capture: take_bytes(&mut input)?,
            },
            KIND_DELETE => Entry::Delete { path },
            _ => return Err(DecodeError("unknown entry kind")),
        });
    }
    if !input.is_empty() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok(entries)
}

fn check_path(path: &str) -> Result<(), DecodeError> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if ok {
        Ok(())
    } else {
        Err(DecodeError("path escapes the data directory"))
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn take_u8(input: &mut &[u8]) -> Result<u8, DecodeError> {
    let (&first, rest) = input.split_first().ok_or(DecodeError("truncated"))?;
    *input = rest;
    Ok(first)
}

fn take_varint(input: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = take_u8(input)?;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError("varint too long"))
}

fn take_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], DecodeError> {
    let len = take_varint(input)?;
    if len > input.len() as u64 {
        return Err(DecodeError("length past the end"));
    }
    let (bytes, rest) = input.split_at(len as usize);
    *input = rest;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let entries = vec![
            Entry::Commit {
                path: "objects/ns/ab/abcd.sqlite",
                capture: &[1, 2, 3],
            },
            Entry::Delete {
                path: "node/alarms.sqlite",
            },
        ];
        let mut out = Vec::new();
        encode(&entries, &mut out);
        assert_eq!(decode(&out).unwrap(), entries);
    }

    #[test]
    fn rejects_escaping_paths_and_garbage() {
        for path in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            let mut out = Vec::new();
            encode(&[Entry::Delete { path }], &mut out);
            assert!(decode(&out).is_err(), "{path:?} accepted");
        }
        assert!(decode(&[]).is_err());
        assert!(decode(&[1, 5]).is_err());
        assert!(decode(&[1, 1, 1, 200]).is_err());
        let mut out = Vec::new();
        encode(&[Entry::Delete { path: "a" }], &mut out);
        out.push(0);
        assert!(decode(&out).is_err());
    }
}
