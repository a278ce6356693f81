//! The opening handshake (RFC 6455 §4.2): checking a client's upgrade request, computing
//! `Sec-WebSocket-Accept`, and the `101 Switching Protocols` answer. Every refusal's HTTP status and
//! wording is declared here, in [`HandshakeError::into_response`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version, header};
use sha1::{Digest, Sha1};

use crate::Body;
use crate::server::text_response;

/// The GUID every server appends to the client's key (§1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why an upgrade request is not a valid WebSocket handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Not `GET` over HTTP/1.1 with `Upgrade: websocket` and `Connection: upgrade`.
    #[error(
        "expected a WebSocket upgrade: a GET request with `Upgrade: websocket` and `Connection: upgrade`"
    )]
    NotUpgrade,
    /// `Sec-WebSocket-Version` is missing or not 13.
    #[error("unsupported WebSocket version: only `Sec-WebSocket-Version: 13` is supported")]
    Version,
    /// `Sec-WebSocket-Key` is missing or not 16 bytes in base64.
    #[error("invalid `Sec-WebSocket-Key`: it must be 16 random bytes in base64")]
    Key,
}

impl HandshakeError {
    /// The answer to the client: 426 with the supported version, or 400.
    pub fn into_response(self) -> Response<Body> {
        let status = match self {
            HandshakeError::NotUpgrade | HandshakeError::Version => StatusCode::UPGRADE_REQUIRED,
            HandshakeError::Key => StatusCode::BAD_REQUEST,
        };
        let mut response = text_response(status, format!("{self}\n"));
        if status == StatusCode::UPGRADE_REQUIRED {
            let headers = response.headers_mut();
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

/// A checked upgrade request: what the answer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    accept: HeaderValue,
    protocols: Vec<String>,
}

impl Handshake {
    /// Checks a request's method, version and headers (§4.2.1).
    pub fn check(
        method: &Method,
        version: Version,
        headers: &HeaderMap,
    ) -> Result<Handshake, HandshakeError> {
        if method != Method::GET
            || version != Version::HTTP_11
            || !has_token(headers, header::UPGRADE, "websocket")
            || !has_token(headers, header::CONNECTION, "upgrade")
        {
            return Err(HandshakeError::NotUpgrade);
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|version| version.as_bytes() != b"13")
        {
            return Err(HandshakeError::Version);
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or(HandshakeError::Key)?;
        match STANDARD.decode(key.as_bytes()) {
            Ok(decoded) if decoded.len() == 16 => {}
            _ => return Err(HandshakeError::Key),
        }
        let protocols = headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|protocol| !protocol.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Handshake {
            accept: accept_key(key.as_bytes()),
            protocols,
        })
    }

    /// The subprotocols the client offered (`Sec-WebSocket-Protocol`), in its order of preference.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }

    /// `101 Switching Protocols`, naming `protocol` in `Sec-WebSocket-Protocol` if given. It is
    /// passed through as the application chose it, as Cloudflare does; browsers fail the
    /// connection if it is not one they offered.
    pub fn response(&self, protocol: Option<&str>) -> Response<Body> {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept.clone());
        if let Some(protocol) = protocol.and_then(|value| HeaderValue::from_str(value).ok()) {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        response
    }
}

/// Whether the request asks for a WebSocket at all (`Upgrade: websocket`), valid or not.
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    has_token(headers, header::UPGRADE, "websocket")
}

/// `Sec-WebSocket-Accept` for a client's key: base64(SHA-1(key ‖ GUID)) (§4.2.2).
pub fn accept_key(key: &[u8]) -> HeaderValue {
    let mut hasher = Sha1::new();
    hasher.update(key);
    hasher.update(ACCEPT_GUID);
    let encoded = STANDARD.encode(hasher.finalize());
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a comma-separated header holds `token`, ignoring case (`Connection: keep-alive, Upgrade`).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|part| part.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("chat, superchat"),
        );
        headers
    }

    #[test]
    fn the_rfc_example_key_gives_the_rfc_accept_value() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn a_valid_request_gets_101_with_the_chosen_protocol() {
        let handshake =
            Handshake::check(&Method::GET, Version::HTTP_11, &request_headers()).expect("valid");
        assert_eq!(handshake.protocols(), ["chat", "superchat"]);
        let response = handshake.response(Some("chat"));
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(
            response.headers()[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_PROTOCOL], "chat");
    }

    #[test]
    fn invalid_requests_say_what_is_wrong() {
        let check = |method: Method, edit: &dyn Fn(&mut HeaderMap)| {
            let mut headers = request_headers();
            edit(&mut headers);
            Handshake::check(&method, Version::HTTP_11, &headers).map(|_| ())
        };
        assert_eq!(
            check(Method::POST, &|_| {}),
            Err(HandshakeError::NotUpgrade)
        );
        assert_eq!(
            check(Method::GET, &|headers| {
                headers.remove(header::CONNECTION);
            }),
            Err(HandshakeError::NotUpgrade)
        );
        assert_eq!(
            check(Method::GET, &|headers| {
                headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
            }),
            Err(HandshakeError::Version)
        );
        assert_eq!(
            check(Method::GET, &|headers| {
                headers.insert(
                    header::SEC_WEBSOCKET_KEY,
                    HeaderValue::from_static("c2hvcnQ="),
                );
            }),
            Err(HandshakeError::Key)
        );
        let response = HandshakeError::Version.into_response();
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_VERSION], "13");
    }
}
