//! WebSocket frame decoding (the server's reader of client frames).
//!
//! The first input byte picks the message size limit, the next three the sizes of the pieces the
//! bytes arrive in; the rest is what the client sent. Whatever the bytes, the reader returns
//! messages or an error, never panics; no message exceeds the limit; and the outcome is the same
//! whether the bytes arrive at once, one by one, or in the input's piece sizes.

use burrow_http::websocket::{Message, decode_client_bytes};

/// A masked client frame.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
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
    frame.extend(
        payload
            .iter()
            .enumerate()
            .map(|(index, byte)| byte ^ key[index % 4]),
    );
    frame
}

/// Valid streams (with the four leading control bytes) the mutations start from.
pub fn corpus() -> Vec<Vec<u8>> {
    let stream = |frames: &[Vec<u8>]| {
        let mut bytes = vec![16, 1, 3, 7];
        for frame in frames {
            bytes.extend_from_slice(frame);
        }
        bytes
    };
    vec![
        stream(&[client_frame(true, 1, b"hello")]),
        stream(&[
            client_frame(false, 1, "héllo ".as_bytes()),
            client_frame(true, 9, b"ping"),
            client_frame(true, 0, "wörld".as_bytes()),
            client_frame(true, 2, &[0, 1, 2, 3]),
            client_frame(true, 8, &[0x03, 0xe8, b'o', b'k']),
        ]),
        stream(&[client_frame(true, 2, &[7; 300])]),
        stream(&[client_frame(true, 10, b""), client_frame(true, 8, b"")]),
    ]
}

/// Frame-shaped tokens.
pub const DICTIONARY: &[&[u8]] = &[
    &[0x81, 0xfe],
    &[0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    &[0x88, 0x80],
    &[0x89, 0xfd],
    &[0x01, 0x80],
    &[0x80, 0x80],
    &[0xc1, 0x80],
    &[0xf0, 0x9f, 0x98],
    &[0xed, 0xa0, 0x80],
];

fn outcome(
    input: &[u8],
    pieces: &[usize],
    limit: usize,
) -> Result<burrow_http::websocket::Decoded, u16> {
    let decoded = decode_client_bytes(input, pieces, limit).map_err(|error| error.close_code())?;
    for message in &decoded.messages {
        assert!(
            message.len() <= limit,
            "a {} byte message passed the {limit} byte limit",
            message.len()
        );
        if let Message::Text(text) = message {
            assert!(std::str::from_utf8(text.as_bytes()).is_ok());
        }
    }
    Ok(decoded)
}

/// Decodes `data` as described in the module docs.
pub fn check(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let limit = 1usize << (data[0] % 24);
    let pieces = [
        usize::from(data[1]),
        usize::from(data[2]),
        usize::from(data[3]),
    ];
    let input = &data[4..];
    let whole = outcome(input, &[input.len()], limit);
    assert_eq!(outcome(input, &[1], limit), whole, "one byte at a time");
    assert_eq!(outcome(input, &pieces, limit), whole, "pieces {pieces:?}");
}
