//! The byte format of the queue objects' RPC arguments and results: little-endian integers and
//! length-prefixed byte strings, written and read in a fixed order by both sides.
//!
//! Both ends live in this crate and in one process, so the format carries no version; it is
//! compact because every send and every batch crosses it (JSON with base64 bodies cost about a
//! third of the producer's CPU when measured).

use bytes::{BufMut, Bytes, BytesMut};

/// A payload that does not decode: a bug on one side, never a user error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed queue RPC payload")]
pub(crate) struct WireError;

/// Builds a payload.
pub(crate) struct Writer {
    buf: BytesMut,
}

impl Writer {
    pub(crate) fn with_capacity(capacity: usize) -> Writer {
        Writer {
            buf: BytesMut::with_capacity(capacity),
        }
    }

    pub(crate) fn u8(&mut self, value: u8) -> &mut Self {
        self.buf.put_u8(value);
        self
    }

    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.buf.put_u32_le(value);
        self
    }

    pub(crate) fn u64(&mut self, value: u64) -> &mut Self {
        self.buf.put_u64_le(value);
        self
    }

    pub(crate) fn i64(&mut self, value: i64) -> &mut Self {
        self.buf.put_i64_le(value);
        self
    }

    pub(crate) fn bool(&mut self, value: bool) -> &mut Self {
        self.u8(u8::from(value))
    }

    pub(crate) fn opt_i64(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(value) => self.u8(1).i64(value),
            None => self.u8(0),
        }
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.u32(u32::try_from(value.len()).expect("payload parts are bounded far below 4 GiB"));
        self.buf.put_slice(value);
        self
    }

    pub(crate) fn str(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    pub(crate) fn opt_str(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.u8(1).str(value),
            None => self.u8(0),
        }
    }

    pub(crate) fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// Reads a payload in the order it was written. Byte strings are sliced, not copied.
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<Bytes, WireError> {
        if self.buf.len() < n {
            return Err(WireError);
        }
        Ok(self.buf.split_to(n))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    pub(crate) fn bool(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError),
        }
    }

    pub(crate) fn opt_i64(&mut self) -> Result<Option<i64>, WireError> {
        Ok(if self.bool()? {
            Some(self.i64()?)
        } else {
            None
        })
    }

    pub(crate) fn bytes(&mut self) -> Result<Bytes, WireError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub(crate) fn str(&mut self) -> Result<String, WireError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| WireError)
    }

    pub(crate) fn opt_str(&mut self) -> Result<Option<String>, WireError> {
        Ok(if self.bool()? {
            Some(self.str()?)
        } else {
            None
        })
    }

    /// A count of items that follow, each at least `min_item_bytes` long: bounds allocations by
    /// what the payload can actually hold.
    pub(crate) fn count(&mut self, min_item_bytes: usize) -> Result<usize, WireError> {
        let count = self.u32()? as usize;
        if count.saturating_mul(min_item_bytes.max(1)) > self.buf.len() {
            return Err(WireError);
        }
        Ok(count)
    }

    /// Fails unless everything was read.
    pub(crate) fn end(self) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(WireError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_kind() {
        let mut writer = Writer::with_capacity(16);
        writer
            .u8(7)
            .u32(70_000)
            .u64(u64::MAX)
            .i64(-5)
            .bool(true)
            .opt_i64(None)
            .opt_i64(Some(9))
            .bytes(b"body")
            .str("name")
            .opt_str(Some("dlq"))
            .opt_str(None);
        let mut reader = Reader::new(writer.finish());
        assert_eq!(reader.u8(), Ok(7));
        assert_eq!(reader.u32(), Ok(70_000));
        assert_eq!(reader.u64(), Ok(u64::MAX));
        assert_eq!(reader.i64(), Ok(-5));
        assert_eq!(reader.bool(), Ok(true));
        assert_eq!(reader.opt_i64(), Ok(None));
        assert_eq!(reader.opt_i64(), Ok(Some(9)));
        assert_eq!(reader.bytes().as_deref(), Ok(&b"body"[..]));
        assert_eq!(reader.str().as_deref(), Ok("name"));
        assert_eq!(reader.opt_str(), Ok(Some("dlq".to_string())));
        assert_eq!(reader.opt_str(), Ok(None));
        assert_eq!(reader.end(), Ok(()));
    }

    #[test]
    fn truncated_and_oversized_payloads_fail() {
        let mut writer = Writer::with_capacity(8);
        writer.bytes(b"abcdef");
        let full = writer.finish();
        let mut reader = Reader::new(full.slice(..full.len() - 1));
        assert_eq!(reader.bytes(), Err(WireError));
        let mut writer = Writer::with_capacity(8);
        writer.u32(1_000_000);
        let mut reader = Reader::new(writer.finish());
        assert_eq!(
            reader.count(8),
            Err(WireError),
            "a count the payload cannot hold"
        );
        let mut reader = Reader::new(Bytes::from_static(&[1, 2]));
        assert_eq!(reader.u8(), Ok(1));
        assert_eq!(reader.end(), Err(WireError), "trailing bytes");
    }
}
