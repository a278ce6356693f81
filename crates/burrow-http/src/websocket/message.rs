//! What travels over a socket: [`Message`]s (text or binary; cheap to clone, so one broadcast
//! payload is shared by every socket it goes to), and close frames with their codes (§5.5.1, §7.4).

use bytes::Bytes;

pub use burrow_runtime::websocket::{Message, Text};

/// Close codes with a name in RFC 6455 §7.4.1.
pub mod code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: u16 = 1001;
    /// A protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Reported (never sent) when a close frame had no code.
    pub const NO_STATUS: u16 = 1005;
    /// Reported (never sent) when the connection closed without a close frame.
    pub const ABNORMAL: u16 = 1006;
    /// A text message was not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message violated the endpoint's policy.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A message too big to process; Burrow also uses it when a client reads too slowly for its
    /// send buffer.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server hit an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// The longest close reason: a control payload is at most 125 bytes, two of them the code.
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// Whether an endpoint may put `code` in a close frame (§7.4.1, §7.4.2, and the IANA registry's
/// 1012–1014): 1000–1003, 1007–1014, 3000–4999. 1004–1006 and 1015 are reserved for reporting.
pub fn is_sendable_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A close frame's payload as received: `None` when it carried no code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseFrame {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

/// Parses a received close payload: empty, or a valid code and a UTF-8 reason (§5.5.1).
pub(crate) fn parse_close(payload: &[u8]) -> Result<Option<CloseFrame>, super::Error> {
    match payload {
        [] => Ok(None),
        [_] => Err(super::Error::Protocol(
            "a close frame with a one-byte payload",
        )),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !is_sendable_code(code) {
                return Err(super::Error::Protocol("an invalid close code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| super::Error::InvalidUtf8)?;
            Ok(Some(CloseFrame {
                code,
                reason: reason.to_owned(),
            }))
        }
    }
}

/// A close payload to send: the code, then `reason` cut to [`MAX_CLOSE_REASON_BYTES`] at a
/// character boundary.
pub(crate) fn encode_close(code: u16, reason: &str) -> Bytes {
    let reason = truncate_reason(reason);
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    Bytes::from(payload)
}

pub(crate) fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_CLOSE_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_CLOSE_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_payloads_parse_and_reject_what_the_rfc_forbids() {
        assert_eq!(parse_close(&[]).expect("empty"), None);
        assert!(parse_close(&[3]).is_err());
        let frame = parse_close(&[0x0F, 0xA0, b'b', b'y', b'e'])
            .expect("valid")
            .expect("code");
        assert_eq!((frame.code, frame.reason.as_str()), (4000, "bye"));
        for code in [0_u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert!(
                parse_close(&code.to_be_bytes()).is_err(),
                "{code} is not sendable"
            );
        }
        assert!(matches!(
            parse_close(&[0x03, 0xE8, 0xFF]),
            Err(crate::websocket::Error::InvalidUtf8)
        ));
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let reason = "é".repeat(100);
        let payload = encode_close(1000, &reason);
        assert!(payload.len() <= 125);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }
}
