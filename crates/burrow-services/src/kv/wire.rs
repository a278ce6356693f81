//! The wire format between [`super::KvNamespace`] and its partitions, carried by `Stub::call`.
//!
//! Every request and every response is one frame:
//!
//! ```text
//! | 4 bytes: header length H, u32 little-endian | H bytes: header, JSON | rest: body bytes |
//! ```
//!
//! The header is a small JSON object (the structs below, by method). The body holds raw value
//! bytes, so a 25 MiB value crosses as 25 MiB, not as a JSON array or base64. A bulk response
//! concatenates the values it found in header order; each entry's `length` says where one ends.
//! Metadata travels as its JSON text, exactly as stored.
//!
//! | method | request header | request body | response header | response body |
//! |---|---|---|---|---|
//! | `get` | [`GetRequest`] | — | [`GetResponse`] | the value (streaming: its first chunk) |
//! | `get_chunk` | [`GetChunkRequest`] | — | `{}` | the chunk |
//! | `get_many` | [`GetManyRequest`] | — | [`GetManyResponse`] | the values found, concatenated |
//! | `put` | [`PutRequest`] | the value | `{}` | — |
//! | `delete` | [`DeleteRequest`] | — | `{}` | — |
//! | `list` | [`ListRequest`] | — | [`ListResponse`] | — |
//! | `stats` | `{}` | — | [`StatsResponse`] | — |
//!
//! A rejected request fails the call with a remote `ObjectError` whose message is the error's
//! Cloudflare wording (see [`super::error`]).

use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `get`: one key.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GetRequest {
    pub(crate) key: String,
    /// Answer a chunked value with its first chunk only (the rest through `get_chunk`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) stream: bool,
}

/// The answer to `get`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct GetResponse {
    pub(crate) found: bool,
    /// Epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expiration: Option<i64>,
    /// JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<String>,
    /// For a streaming read of a chunked value: how many chunks it has (the body is chunk 0).
    /// 0 when the body is the whole value.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub(crate) chunks: u32,
    /// The write this value came from, for `get_chunk`.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub(crate) version: i64,
}

/// `get_chunk`: chunk `seq` of the value `version` of `key`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GetChunkRequest {
    pub(crate) key: String,
    pub(crate) version: i64,
    pub(crate) seq: u32,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

/// `get_many`: the keys of one partition.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GetManyRequest {
    pub(crate) keys: Vec<String>,
}

/// The answer to `get_many`: the entries found.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct GetManyResponse {
    pub(crate) entries: Vec<FoundEntry>,
}

/// One entry of a bulk answer; its value is the next `length` bytes of the body.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FoundEntry {
    pub(crate) key: String,
    pub(crate) length: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expiration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<String>,
}

/// `put`: the value is the body.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PutRequest {
    pub(crate) key: String,
    /// Absolute, epoch seconds (the client resolved any TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expiration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<String>,
}

/// `delete`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DeleteRequest {
    pub(crate) key: String,
}

/// `list`: keys with `prefix`, strictly after `after`, in byte order, at most `limit`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ListRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) after: Option<String>,
    pub(crate) limit: usize,
}

/// The answer to `list`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ListResponse {
    pub(crate) keys: Vec<ListedKey>,
}

/// One key of a list answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ListedKey {
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expiration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<String>,
}

/// The answer to `stats`: rows stored, expired ones not yet deleted included.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct StatsResponse {
    pub(crate) entries: u64,
    pub(crate) chunks: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) alarm_ms: Option<i64>,
}

/// An empty header, for answers that carry nothing.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Empty {}

/// Builds a frame from a header and body parts.
pub(crate) fn encode<H: Serialize>(header: &H, body: &[&[u8]]) -> Bytes {
    // Serializing these plain structs cannot fail: no maps with non-string keys, no custom code.
    let header = serde_json::to_vec(header).unwrap_or_default();
    let body_bytes: usize = body.iter().map(|part| part.len()).sum();
    let mut frame = BytesMut::with_capacity(4 + header.len() + body_bytes);
    frame.put_u32_le(header.len() as u32);
    frame.put_slice(&header);
    for part in body {
        frame.put_slice(part);
    }
    frame.freeze()
}

/// Splits a frame into its header and body.
pub(crate) fn decode<H: DeserializeOwned>(frame: &Bytes) -> Result<(H, Bytes), String> {
    let length_bytes: [u8; 4] = frame
        .get(..4)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| "frame shorter than its length prefix".to_string())?;
    let header_length = u32::from_le_bytes(length_bytes) as usize;
    let header_end = 4usize
        .checked_add(header_length)
        .filter(|end| *end <= frame.len())
        .ok_or_else(|| "header length past the end of the frame".to_string())?;
    let header = serde_json::from_slice(&frame[4..header_end])
        .map_err(|error| format!("bad header: {error}"))?;
    Ok((header, frame.slice(header_end..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_header_and_raw_body() {
        let frame = encode(
            &PutRequest {
                key: "k".into(),
                expiration: Some(7),
                metadata: None,
            },
            &[b"abc", b"def"],
        );
        let (header, body): (PutRequest, Bytes) = decode(&frame).unwrap();
        assert_eq!(header.key, "k");
        assert_eq!(header.expiration, Some(7));
        assert_eq!(&body[..], b"abcdef");
        assert!(decode::<PutRequest>(&Bytes::from_static(b"\xff\0\0\0{}")).is_err());
        assert!(decode::<PutRequest>(&Bytes::from_static(b"\x01")).is_err());
    }
}
