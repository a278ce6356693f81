//! Message bodies and their content types, and the options of a send.
//!
//! A body is kept serialized, as Cloudflare's broker keeps it: `json` is JSON text, `text` is
//! UTF-8, `bytes` is raw, and `v8` is the V8 serializer's output, which Burrow stores and hands
//! back untouched (only a JavaScript guest can read it). The 128 KB limit applies to these bytes.

use super::error::Error;
use bytes::Bytes;

/// How a message body is serialized (`contentType` in the Workers API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentType {
    /// JSON text (the default).
    Json,
    /// A string.
    Text,
    /// An `ArrayBufferView`'s bytes.
    Bytes,
    /// The V8 serializer's output, stored opaquely.
    V8,
}

impl ContentType {
    /// Parses a `contentType` option, ignoring ASCII case as workerd does.
    pub fn parse(text: &str) -> Result<ContentType, Error> {
        match text.to_ascii_lowercase().as_str() {
            "json" => Ok(ContentType::Json),
            "text" => Ok(ContentType::Text),
            "bytes" => Ok(ContentType::Bytes),
            "v8" => Ok(ContentType::V8),
            _ => Err(Error::UnsupportedContentType(text.to_string())),
        }
    }

    /// The name the Workers API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Json => "json",
            ContentType::Text => "text",
            ContentType::Bytes => "bytes",
            ContentType::V8 => "v8",
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            ContentType::Json => 0,
            ContentType::Text => 1,
            ContentType::Bytes => 2,
            ContentType::V8 => 3,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<ContentType> {
        match code {
            0 => Some(ContentType::Json),
            1 => Some(ContentType::Text),
            2 => Some(ContentType::Bytes),
            3 => Some(ContentType::V8),
            _ => None,
        }
    }
}

/// A serialized message body with its content type. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    content_type: ContentType,
    bytes: Bytes,
}

impl Body {
    /// A body from already-serialized bytes.
    pub fn new(content_type: ContentType, bytes: impl Into<Bytes>) -> Body {
        Body {
            content_type,
            bytes: bytes.into(),
        }
    }

    /// A `json` body: `value` serialized with serde_json.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Body, serde_json::Error> {
        Ok(Body::new(ContentType::Json, serde_json::to_vec(value)?))
    }

    /// A `json` body from JSON text the caller already has.
    pub fn json_text(text: impl Into<String>) -> Body {
        Body::new(ContentType::Json, text.into().into_bytes())
    }

    /// A `text` body.
    pub fn text(text: impl Into<String>) -> Body {
        Body::new(ContentType::Text, text.into().into_bytes())
    }

    /// A `bytes` body.
    pub fn bytes(bytes: impl Into<Bytes>) -> Body {
        Body::new(ContentType::Bytes, bytes)
    }

    /// A `v8` body: the V8 serializer's output, stored as is.
    pub fn v8(serialized: impl Into<Bytes>) -> Body {
        Body::new(ContentType::V8, serialized)
    }

    /// The content type.
    pub fn content_type(&self) -> ContentType {
        self.content_type
    }

    /// The serialized bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The serialized size, which the limits apply to.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for an empty serialization (an empty `text` or `bytes` body).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The body as text, for `text` and `json` bodies.
    pub fn as_text(&self) -> Option<&str> {
        match self.content_type {
            ContentType::Text | ContentType::Json => std::str::from_utf8(&self.bytes).ok(),
            ContentType::Bytes | ContentType::V8 => None,
        }
    }

    /// Deserializes a `json` body.
    pub fn to_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }
}

/// Options of `send`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// Seconds before the message may be delivered (0-43,200); `None` uses the producer's
    /// `delivery_delay`, then the queue's.
    pub delay_seconds: Option<u32>,
}

/// One message of a `sendBatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    /// The body.
    pub body: Body,
    /// This message's delay; `None` uses the batch's, then the producer's, then the queue's.
    pub delay_seconds: Option<u32>,
}

impl SendRequest {
    /// A message with no delay of its own.
    pub fn new(body: Body) -> SendRequest {
        SendRequest {
            body,
            delay_seconds: None,
        }
    }
}

/// Options of `sendBatch`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOptions {
    /// Delay of every message that names none (0-43,200 s).
    pub delay_seconds: Option<u32>,
}

/// Options of `retry()` and `retryAll()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOptions {
    /// Seconds before the retry (0-43,200); `None` uses the consumer's `retry_delay`, then the
    /// queue's `delivery_delay`.
    pub delay_seconds: Option<u32>,
}

impl RetryOptions {
    /// A retry after `seconds`.
    pub fn delay(seconds: u32) -> RetryOptions {
        RetryOptions {
            delay_seconds: Some(seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_parse_like_workerd() {
        assert_eq!(ContentType::parse("JSON"), Ok(ContentType::Json));
        assert_eq!(ContentType::parse("v8"), Ok(ContentType::V8));
        let error = ContentType::parse("xml").unwrap_err();
        assert_eq!(
            error.to_string(),
            "Unsupported queue message content type: xml"
        );
        assert!(error.is_type_error());
        for content_type in [
            ContentType::Json,
            ContentType::Text,
            ContentType::Bytes,
            ContentType::V8,
        ] {
            assert_eq!(
                ContentType::from_code(i64::from(content_type.code())),
                Some(content_type)
            );
            assert_eq!(ContentType::parse(content_type.as_str()), Ok(content_type));
        }
    }

    #[test]
    fn json_bodies_round_trip() {
        let body = Body::json(&serde_json::json!({"a": [1, 2]})).unwrap();
        assert_eq!(body.as_text(), Some(r#"{"a":[1,2]}"#));
        let value: serde_json::Value = body.to_json().unwrap();
        assert_eq!(value["a"][1], 2);
        assert_eq!(Body::v8(vec![0xff, 0x0f]).as_text(), None);
    }
}
