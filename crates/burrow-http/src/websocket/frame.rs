//! RFC 6455 §5 framing: the frame header (decoded incrementally, a byte at a time if the network
//! hands it over that way), the header of frames the server sends, and payload masking.
//!
//! A client frame header is 2 to 14 bytes: FIN, three reserved bits, a 4-bit opcode, the MASK bit,
//! a 7-bit length (126: a 16-bit length follows; 127: a 64-bit one), then the 4-byte masking key.
//! Server frames are never masked, so their header is at most 10 bytes.

use super::Error;

/// What a frame carries (§5.2, §11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(bits: u8) -> Option<OpCode> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: at most 125 bytes, never fragmented, allowed between fragments.
    pub(crate) fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    pub(crate) opcode: OpCode,
    /// `None` for an unmasked frame, which a server must reject (§5.1).
    pub(crate) mask: Option<[u8; 4]>,
    pub(crate) payload_len: u64,
}

/// The longest header: 2 bytes, an 8-byte length and a 4-byte masking key.
const MAX_HEADER_BYTES: usize = 14;

/// Decodes one header from bytes that may arrive in pieces. 15 bytes of state, no allocation.
#[derive(Debug, Default)]
pub(crate) struct HeaderDecoder {
    bytes: [u8; MAX_HEADER_BYTES],
    have: u8,
}

impl HeaderDecoder {
    /// Takes bytes from `input` until a header is complete. Returns how many it took and, once
    /// complete, the header (or why it is not a valid one); the decoder is then ready for the next.
    pub(crate) fn feed(&mut self, input: &[u8]) -> (usize, Option<Result<Header, Error>>) {
        let mut used = 0;
        loop {
            let have = usize::from(self.have);
            let needed = self.needed();
            if have == needed {
                self.have = 0;
                return (used, Some(self.decode()));
            }
            if used == input.len() {
                return (used, None);
            }
            let take = (needed - have).min(input.len() - used);
            self.bytes[have..have + take].copy_from_slice(&input[used..used + take]);
            self.have += take as u8;
            used += take;
        }
    }

    /// Header bytes needed, as far as the bytes so far tell.
    fn needed(&self) -> usize {
        if self.have < 2 {
            return 2;
        }
        let extended = match self.bytes[1] & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.bytes[1] & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    fn decode(&self) -> Result<Header, Error> {
        let [first, second, ..] = self.bytes;
        if first & 0x70 != 0 {
            return Err(Error::Protocol(
                "reserved bits set without a negotiated extension",
            ));
        }
        let opcode = OpCode::from_bits(first & 0x0F).ok_or(Error::Protocol("unknown opcode"))?;
        let (payload_len, rest) = match second & 0x7F {
            126 => (
                u64::from(u16::from_be_bytes([self.bytes[2], self.bytes[3]])),
                4,
            ),
            127 => {
                let mut length = [0_u8; 8];
                length.copy_from_slice(&self.bytes[2..10]);
                let length = u64::from_be_bytes(length);
                if length >> 63 != 0 {
                    return Err(Error::Protocol("the most significant length bit is set"));
                }
                (length, 10)
            }
            short => (u64::from(short), 2),
        };
        let mask = (second & 0x80 != 0).then(|| {
            let mut key = [0_u8; 4];
            key.copy_from_slice(&self.bytes[rest..rest + 4]);
            key
        });
        Ok(Header {
            fin: first & 0x80 != 0,
            opcode,
            mask,
            payload_len,
        })
    }
}

/// The header of an unfragmented, unmasked frame the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerHeader {
    bytes: [u8; 10],
    len: u8,
}

impl ServerHeader {
    pub(crate) fn new(opcode: OpCode, payload_len: usize) -> ServerHeader {
        let mut bytes = [0_u8; 10];
        bytes[0] = 0x80 | opcode.bits();
        let len = if payload_len < 126 {
            bytes[1] = payload_len as u8;
            2
        } else if let Ok(short) = u16::try_from(payload_len) {
            bytes[1] = 126;
            bytes[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            bytes[1] = 127;
            bytes[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
            10
        };
        ServerHeader { bytes, len }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub(crate) fn is_close(&self) -> bool {
        self.bytes[0] & 0x0F == OpCode::Close.bits()
    }
}

/// XORs `data` with the masking key (§5.3), `offset` being the position of `data[0]` within the
/// frame's payload, so a payload can be unmasked in pieces.
pub(crate) fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0_u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (index, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[index % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Header, Error> {
        let mut decoder = HeaderDecoder::default();
        let (used, header) = decoder.feed(bytes);
        assert_eq!(used, bytes.len());
        header.expect("complete")
    }

    #[test]
    fn decodes_lengths_of_every_width_and_masks() {
        let header = decode_all(&[0x81, 0x85, 1, 2, 3, 4]).expect("valid");
        assert_eq!(
            header,
            Header {
                fin: true,
                opcode: OpCode::Text,
                mask: Some([1, 2, 3, 4]),
                payload_len: 5
            }
        );
        let header = decode_all(&[0x02, 0xFE, 0x01, 0x00, 9, 9, 9, 9]).expect("valid");
        assert_eq!((header.fin, header.payload_len), (false, 256));
        let mut long = vec![0x82, 0xFF];
        long.extend_from_slice(&(1_u64 << 40).to_be_bytes());
        long.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(decode_all(&long).expect("valid").payload_len, 1 << 40);
        assert_eq!(decode_all(&[0x89, 0x00]).expect("valid").mask, None);
    }

    #[test]
    fn a_header_fed_one_byte_at_a_time_decodes_the_same() {
        let bytes = [0x82, 0xFE, 0x12, 0x34, 0xA, 0xB, 0xC, 0xD];
        let mut decoder = HeaderDecoder::default();
        for (index, byte) in bytes.iter().enumerate() {
            let (used, header) = decoder.feed(std::slice::from_ref(byte));
            assert_eq!(used, 1);
            if index + 1 < bytes.len() {
                assert!(header.is_none());
            } else {
                let header = header.expect("complete").expect("valid");
                assert_eq!(header.payload_len, 0x1234);
                assert_eq!(header.mask, Some([0xA, 0xB, 0xC, 0xD]));
            }
        }
    }

    #[test]
    fn rejects_reserved_bits_unknown_opcodes_and_huge_lengths() {
        assert!(matches!(
            decode_all(&[0xC1, 0x80, 0, 0, 0, 0]),
            Err(Error::Protocol(_))
        ));
        assert!(matches!(
            decode_all(&[0x83, 0x80, 0, 0, 0, 0]),
            Err(Error::Protocol(_))
        ));
        let mut huge = vec![0x82, 0xFF];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        huge.extend_from_slice(&[0, 0, 0, 0]);
        assert!(matches!(decode_all(&huge), Err(Error::Protocol(_))));
    }

    #[test]
    fn server_headers_use_the_shortest_length() {
        assert_eq!(ServerHeader::new(OpCode::Text, 5).as_bytes(), &[0x81, 5]);
        assert_eq!(
            ServerHeader::new(OpCode::Binary, 300).as_bytes(),
            &[0x82, 126, 0x01, 0x2C]
        );
        let header = ServerHeader::new(OpCode::Binary, 70_000);
        assert_eq!(header.as_bytes()[..2], [0x82, 127]);
        assert_eq!(header.as_bytes()[2..], 70_000_u64.to_be_bytes());
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let key = [0x37, 0xFA, 0x21, 0x3D];
        let plain: Vec<u8> = (0..=255).cycle().take(1_000).collect();
        let mut whole = plain.clone();
        apply_mask(&mut whole, key, 0);
        for (index, byte) in whole.iter().enumerate() {
            assert_eq!(*byte, plain[index] ^ key[index % 4]);
        }
        let mut pieces = plain.clone();
        let mut offset = 0;
        for size in [1, 3, 7, 8, 13, 100, 868] {
            apply_mask(&mut pieces[offset..offset + size], key, offset);
            offset += size;
        }
        assert_eq!(pieces, whole);
    }
}
