//! The inbound half of a socket: turns bytes, in whatever pieces they arrive, into messages and
//! control frames, enforcing RFC 6455's rules and the message size limit.
//!
//! It keeps no read buffer. A header is decoded into 14 bytes of state; payload bytes go straight
//! into the message being assembled (unmasked in place), which grows with the bytes actually
//! received, never with the length a client merely announces. Between messages it holds nothing
//! on the heap.

use bytes::Bytes;

use super::Error;
use super::frame::{Header, HeaderDecoder, OpCode, apply_mask};
use super::message::{CloseFrame, Message, Text, parse_close};

/// What the reader produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Item {
    Message(Message),
    Ping(Bytes),
    Pong,
    Close(Option<CloseFrame>),
}

/// The first capacity reserved for a message, whatever length its header announces.
const FIRST_RESERVATION_BYTES: usize = 16 * 1024;

#[derive(Debug)]
pub(crate) struct Reader {
    header: HeaderDecoder,
    frame: Option<Frame>,
    /// The data message being assembled, across fragments.
    message: Option<Box<Partial>>,
    /// A control frame's payload (≤ 125 bytes), empty (unallocated) between control frames.
    control: Vec<u8>,
    max_message_bytes: usize,
}

/// The frame whose payload is arriving.
#[derive(Debug)]
struct Frame {
    opcode: OpCode,
    fin: bool,
    mask: [u8; 4],
    remaining: u64,
    /// Payload bytes of this frame seen so far: the masking key's phase.
    offset: usize,
}

#[derive(Debug)]
struct Partial {
    text: bool,
    data: Vec<u8>,
    /// `data[..utf8_checked]` is known to be valid UTF-8 (text only).
    utf8_checked: usize,
}

impl Reader {
    pub(crate) fn new(max_message_bytes: usize) -> Reader {
        Reader {
            header: HeaderDecoder::default(),
            frame: None,
            message: None,
            control: Vec::new(),
            max_message_bytes,
        }
    }

    /// Consumes bytes from `input` up to the end of the next complete item. Returns how many
    /// bytes it took and the item, if one completed; call again with the rest.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<(usize, Option<Item>), Error> {
        let mut used = 0;
        loop {
            if self.frame.is_none() {
                let (taken, header) = self.header.feed(&input[used..]);
                used += taken;
                let Some(header) = header else {
                    return Ok((used, None));
                };
                self.begin(header?)?;
            }
            let Some(frame) = &mut self.frame else {
                unreachable!("begin sets the frame");
            };
            let take = usize::try_from(frame.remaining)
                .unwrap_or(usize::MAX)
                .min(input.len() - used);
            if take > 0 {
                let target = if frame.opcode.is_control() {
                    &mut self.control
                } else {
                    let Some(message) = &mut self.message else {
                        unreachable!("begin starts a message for every data frame");
                    };
                    &mut message.data
                };
                let start = target.len();
                if target.capacity() - start < take {
                    // Grow by doubling, but never past the end of this frame.
                    let frame_end = usize::try_from(frame.remaining).unwrap_or(usize::MAX);
                    target.reserve_exact(take.max(start).min(frame_end));
                }
                target.extend_from_slice(&input[used..used + take]);
                apply_mask(&mut target[start..], frame.mask, frame.offset);
                frame.offset += take;
                frame.remaining -= take as u64;
                used += take;
                if let Some(message) = &mut self.message
                    && message.text
                    && !frame.opcode.is_control()
                {
                    check_utf8(message, false)?;
                }
            }
            if frame.remaining > 0 {
                return Ok((used, None));
            }
            if let Some(item) = self.finish()? {
                return Ok((used, Some(item)));
            }
            if used == input.len() {
                return Ok((used, None));
            }
        }
    }

    /// Checks a new frame against the protocol's and the size limit's rules and starts it.
    fn begin(&mut self, header: Header) -> Result<(), Error> {
        let Some(mask) = header.mask else {
            return Err(Error::Protocol("a client frame was not masked"));
        };
        if header.opcode.is_control() {
            if !header.fin {
                return Err(Error::Protocol("a fragmented control frame"));
            }
            if header.payload_len > 125 {
                return Err(Error::Protocol("a control frame longer than 125 bytes"));
            }
            self.control.reserve_exact(header.payload_len as usize);
        } else {
            let so_far = match (header.opcode, &self.message) {
                (OpCode::Continuation, None) => {
                    return Err(Error::Protocol("a continuation frame without a message"));
                }
                (OpCode::Continuation, Some(message)) => message.data.len(),
                (_, Some(_)) => {
                    return Err(Error::Protocol(
                        "a new message began before the last one ended",
                    ));
                }
                (opcode, None) => {
                    self.message = Some(Box::new(Partial {
                        text: opcode == OpCode::Text,
                        data: Vec::new(),
                        utf8_checked: 0,
                    }));
                    0
                }
            };
            if so_far as u64 + header.payload_len > self.max_message_bytes as u64 {
                return Err(Error::MessageTooLarge {
                    limit: self.max_message_bytes,
                });
            }
            if let Some(message) = &mut self.message
                && message.data.capacity() == 0
            {
                message
                    .data
                    .reserve_exact((header.payload_len as usize).min(FIRST_RESERVATION_BYTES));
            }
        }
        self.frame = Some(Frame {
            opcode: header.opcode,
            fin: header.fin,
            mask,
            remaining: header.payload_len,
            offset: 0,
        });
        Ok(())
    }

    /// Ends the current frame; a control frame or the last fragment of a message is an item.
    fn finish(&mut self) -> Result<Option<Item>, Error> {
        let Some(frame) = self.frame.take() else {
            return Ok(None);
        };
        if frame.opcode.is_control() {
            // Take the buffer: between control frames the reader holds no allocation.
            let payload = std::mem::take(&mut self.control);
            return Ok(Some(match frame.opcode {
                OpCode::Ping => Item::Ping(Bytes::from(payload)),
                OpCode::Pong => Item::Pong,
                _ => Item::Close(parse_close(&payload)?),
            }));
        }
        if !frame.fin {
            return Ok(None);
        }
        let Some(mut message) = self.message.take() else {
            return Ok(None);
        };
        if message.text {
            check_utf8(&mut message, true)?;
            return Ok(Some(Item::Message(Message::Text(
                Text::from_utf8(Bytes::from(message.data)).map_err(|_| Error::InvalidUtf8)?,
            ))));
        }
        Ok(Some(Item::Message(Message::Binary(Bytes::from(
            message.data,
        )))))
    }
}

/// Fails a text message as soon as its bytes cannot be UTF-8 (§8.1), not only at its end; an
/// incomplete character at the end is fine until the message is `complete`.
fn check_utf8(message: &mut Partial, complete: bool) -> Result<(), Error> {
    match std::str::from_utf8(&message.data[message.utf8_checked..]) {
        Ok(_) => {
            message.utf8_checked = message.data.len();
            Ok(())
        }
        Err(error) if error.error_len().is_none() && !complete => {
            message.utf8_checked += error.valid_up_to();
            Ok(())
        }
        Err(_) => Err(Error::InvalidUtf8),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A masked client frame.
    pub(crate) fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x11, 0x22, 0x33, 0x44];
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            len if len < 126 => frame.push(0x80 | len as u8),
            len if len <= usize::from(u16::MAX) => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&key);
        let start = frame.len();
        frame.extend_from_slice(payload);
        apply_mask(&mut frame[start..], key, 0);
        frame
    }

    fn read_all(reader: &mut Reader, bytes: &[u8], piece: usize) -> Result<Vec<Item>, Error> {
        let mut items = Vec::new();
        for chunk in bytes.chunks(piece) {
            let mut at = 0;
            while at < chunk.len() {
                let (used, item) = reader.feed(&chunk[at..])?;
                at += used;
                items.extend(item);
            }
        }
        Ok(items)
    }

    #[test]
    fn fragmented_text_with_interleaved_ping_in_any_piece_size() {
        let mut bytes = client_frame(false, 0x1, "héllo, ".as_bytes());
        bytes.extend(client_frame(true, 0x9, b"are you there"));
        bytes.extend(client_frame(false, 0x0, &"wörld".as_bytes()[..2]));
        bytes.extend(client_frame(true, 0x0, &"wörld".as_bytes()[2..]));
        bytes.extend(client_frame(true, 0x2, &[0, 1, 2]));
        bytes.extend(client_frame(true, 0x8, &[0x03, 0xE8, b'o', b'k']));
        for piece in [1, 2, 3, 5, 64, 4_096] {
            let mut reader = Reader::new(1 << 20);
            let items = read_all(&mut reader, &bytes, piece).expect("valid");
            assert_eq!(
                items,
                vec![
                    Item::Ping(Bytes::from_static(b"are you there")),
                    Item::Message(Message::from("héllo, wörld")),
                    Item::Message(Message::Binary(Bytes::from_static(&[0, 1, 2]))),
                    Item::Close(Some(CloseFrame {
                        code: 1000,
                        reason: "ok".to_owned()
                    })),
                ],
                "piece size {piece}"
            );
            assert!(reader.message.is_none() && reader.control.capacity() == 0);
        }
    }

    #[test]
    fn empty_messages_and_long_lengths() {
        let mut bytes = client_frame(true, 0x1, b"");
        let big = vec![7_u8; 70_000];
        bytes.extend(client_frame(true, 0x2, &big));
        let mut reader = Reader::new(1 << 20);
        let items = read_all(&mut reader, &bytes, 1_000).expect("valid");
        assert_eq!(
            items,
            vec![
                Item::Message(Message::from("")),
                Item::Message(Message::Binary(Bytes::from(big)))
            ]
        );
    }

    #[test]
    fn protocol_violations_are_errors() {
        let unmasked = [0x81, 0x01, b'a'];
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (unmasked.to_vec(), "unmasked"),
            (client_frame(false, 0x9, b""), "fragmented ping"),
            (client_frame(true, 0x9, &[0; 126]), "long ping"),
            (client_frame(true, 0x0, b"x"), "stray continuation"),
            (
                [
                    client_frame(false, 0x1, b"a"),
                    client_frame(true, 0x1, b"b"),
                ]
                .concat(),
                "interleaved messages",
            ),
            (client_frame(true, 0x8, &[0x03]), "one-byte close"),
            (
                client_frame(true, 0x8, &1005_u16.to_be_bytes()),
                "close 1005",
            ),
        ];
        for (bytes, case) in cases {
            let mut reader = Reader::new(1 << 20);
            assert!(
                matches!(read_all(&mut reader, &bytes, 1), Err(Error::Protocol(_))),
                "{case}"
            );
        }
    }

    #[test]
    fn invalid_utf8_fails_at_the_first_bad_fragment() {
        let mut reader = Reader::new(1 << 20);
        let bytes = client_frame(false, 0x1, &[b'a', 0xFF]);
        assert!(matches!(
            read_all(&mut reader, &bytes, 100),
            Err(Error::InvalidUtf8)
        ));
        // A character split across fragments is fine; one left unfinished at the end is not.
        let euro = "€".as_bytes();
        let mut reader = Reader::new(1 << 20);
        let mut bytes = client_frame(false, 0x1, &euro[..1]);
        bytes.extend(client_frame(true, 0x0, &euro[1..]));
        assert_eq!(
            read_all(&mut reader, &bytes, 100).expect("valid"),
            vec![Item::Message(Message::from("€"))]
        );
        let mut reader = Reader::new(1 << 20);
        let bytes = client_frame(true, 0x1, &euro[..2]);
        assert!(matches!(
            read_all(&mut reader, &bytes, 100),
            Err(Error::InvalidUtf8)
        ));
    }

    #[test]
    fn the_size_limit_counts_every_fragment_before_reading_the_payload() {
        let mut reader = Reader::new(10);
        let mut bytes = client_frame(false, 0x2, &[0; 6]);
        bytes.extend(client_frame(true, 0x0, &[0; 5]));
        assert!(matches!(
            read_all(&mut reader, &bytes, 100),
            Err(Error::MessageTooLarge { limit: 10 })
        ));
        // A header announcing a huge message fails before any payload, without allocating it.
        let mut reader = Reader::new(10);
        let header = [0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4];
        assert!(matches!(
            reader.feed(&header),
            Err(Error::MessageTooLarge { .. })
        ));
    }
}
