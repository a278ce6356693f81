//! [`Request`] and [`Response`]: what `fetch` handlers (the Worker's and an object's) take and
//! return. Thin wrappers over `http` types with a streaming [`Body`], plus the helpers handlers
//! want (`Response::text`, `Response::json`, `Request::query`, `Request::json`).
//!
//! Bodies stream at the ingress. A request sent to an object through [`crate::Stub::fetch`], and
//! the object's response, are buffered whole (at most [`MAX_BUFFERED_BODY_BYTES`]), because they
//! cross from one shard thread to another in one piece.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use burrow_http::Body;

use crate::error::{Error, Result};

/// The most bytes a body may have when it is read whole: Cloudflare's request limit (100 MB on
/// the Free and Pro plans), which the ingress also enforces.
pub const MAX_BUFFERED_BODY_BYTES: u64 = burrow_http::ServerOptions::DEFAULT_MAX_REQUEST_BODY_BYTES;

/// An HTTP request to a `fetch` handler.
#[derive(Debug)]
pub struct Request {
    inner: http::Request<Body>,
}

impl Request {
    /// A request with an empty body. `uri` may be a full URL or a path.
    pub fn new(method: Method, uri: &str) -> Result<Request> {
        let uri: Uri = uri
            .parse()
            .map_err(|error| Error::new(format!("invalid URL {uri:?}: {error}")))?;
        let mut inner = http::Request::new(Body::empty());
        *inner.method_mut() = method;
        *inner.uri_mut() = uri;
        Ok(Request { inner })
    }

    /// A GET request.
    pub fn get(uri: &str) -> Result<Request> {
        Request::new(Method::GET, uri)
    }

    /// A POST request with `body`.
    pub fn post(uri: &str, body: impl Into<Body>) -> Result<Request> {
        Ok(Request::new(Method::POST, uri)?.with_body(body))
    }

    /// The same request with another body.
    pub fn with_body(mut self, body: impl Into<Body>) -> Request {
        *self.inner.body_mut() = body.into();
        self
    }

    /// The same request with a header set (replacing any value it had).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Request {
        self.inner.headers_mut().insert(name, value);
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        self.inner.method()
    }

    /// The URI as received (for ingress requests, usually a path and query).
    pub fn uri(&self) -> &Uri {
        self.inner.uri()
    }

    /// The path, e.g. `/counter/a`.
    pub fn path(&self) -> &str {
        self.inner.uri().path()
    }

    /// The first value of query parameter `name`, percent-decoded (`+` is a space, as in
    /// `URLSearchParams`). Borrows from the URI when nothing needs decoding.
    pub fn query(&self, name: &str) -> Option<Cow<'_, str>> {
        let query = self.inner.uri().query()?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(key) == name).then(|| decode_component(value))
        })
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The headers, to change.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        self.inner.headers_mut()
    }

    /// A header's value, if it is present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers().get(name)?.to_str().ok()
    }

    /// The whole body (at most [`MAX_BUFFERED_BODY_BYTES`]).
    pub async fn bytes(self) -> Result<Bytes> {
        Ok(self
            .inner
            .into_body()
            .collect_limited(MAX_BUFFERED_BODY_BYTES)
            .await?)
    }

    /// The whole body as UTF-8 text.
    pub async fn text(self) -> Result<String> {
        let bytes = self.bytes().await?;
        String::from_utf8(bytes.into()).map_err(|_| Error::new("the body is not valid UTF-8"))
    }

    /// The whole body parsed as JSON. A body that does not parse is a 400.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T> {
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|error| {
            Error::new(format!("the body is not the JSON expected: {error}"))
                .with_status(StatusCode::BAD_REQUEST)
        })
    }

    /// The `http` request inside, borrowed.
    pub fn as_http(&self) -> &http::Request<Body> {
        &self.inner
    }

    /// The `http` request inside.
    pub fn into_http(self) -> http::Request<Body> {
        self.inner
    }

    /// The request with its body read whole, as the runtime carries it to an object.
    pub(crate) async fn into_buffered(self) -> Result<http::Request<Bytes>> {
        let (parts, body) = self.inner.into_parts();
        let body = body.collect_limited(MAX_BUFFERED_BODY_BYTES).await?;
        Ok(http::Request::from_parts(parts, body))
    }
}

impl From<http::Request<Body>> for Request {
    fn from(inner: http::Request<Body>) -> Self {
        Request { inner }
    }
}

impl From<http::Request<Bytes>> for Request {
    fn from(request: http::Request<Bytes>) -> Self {
        Request {
            inner: request.map(Body::from),
        }
    }
}

/// An HTTP response from a `fetch` handler.
#[derive(Debug)]
pub struct Response {
    inner: http::Response<Body>,
}

impl Response {
    /// 200 with `body` and no content type.
    pub fn new(body: impl Into<Body>) -> Response {
        Response {
            inner: http::Response::new(body.into()),
        }
    }

    /// 200 with an empty body.
    pub fn empty() -> Response {
        Response::new(Body::empty())
    }

    /// 200 with `text` as `text/plain; charset=utf-8`.
    pub fn text(text: impl Into<String>) -> Response {
        Response::new(text.into()).with_header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )
    }

    /// 200 with `value` as `application/json`.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Response> {
        let body = serde_json::to_vec(value)?;
        Ok(Response::new(body).with_header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
    }

    /// `status` with `message` as plain text.
    pub fn error(message: impl Into<String>, status: StatusCode) -> Response {
        Response::text(message).with_status(status)
    }

    /// The same response with another status.
    pub fn with_status(mut self, status: StatusCode) -> Response {
        *self.inner.status_mut() = status;
        self
    }

    /// The same response with a header set (replacing any value it had).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Response {
        self.inner.headers_mut().insert(name, value);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The headers, to change.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        self.inner.headers_mut()
    }

    /// The whole body (at most [`MAX_BUFFERED_BODY_BYTES`]).
    pub async fn into_bytes(self) -> Result<Bytes> {
        Ok(self
            .inner
            .into_body()
            .collect_limited(MAX_BUFFERED_BODY_BYTES)
            .await?)
    }

    /// The whole body as UTF-8 text.
    pub async fn into_text(self) -> Result<String> {
        let bytes = self.into_bytes().await?;
        String::from_utf8(bytes.into()).map_err(|_| Error::new("the body is not valid UTF-8"))
    }

    /// The whole body parsed as JSON.
    pub async fn into_json<T: DeserializeOwned>(self) -> Result<T> {
        let bytes = self.into_bytes().await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// The `http` response inside.
    pub fn into_http(self) -> http::Response<Body> {
        self.inner
    }

    /// The response with its body read whole, as the runtime carries it out of an object.
    pub(crate) async fn into_buffered(self) -> Result<http::Response<Bytes>> {
        let (parts, body) = self.inner.into_parts();
        let body = body.collect_limited(MAX_BUFFERED_BODY_BYTES).await?;
        Ok(http::Response::from_parts(parts, body))
    }

    /// How the ingress answers an error a Worker returned.
    pub(crate) fn from_error(error: &Error) -> Response {
        Response::error(format!("{}\n", error.message()), error.status())
    }
}

impl From<http::Response<Body>> for Response {
    fn from(inner: http::Response<Body>) -> Self {
        Response { inner }
    }
}

impl From<http::Response<Bytes>> for Response {
    fn from(response: http::Response<Bytes>) -> Self {
        Response {
            inner: response.map(Body::from),
        }
    }
}

/// Percent-decodes one query component (`+` is a space); invalid escapes stay as written and
/// invalid UTF-8 becomes U+FFFD, as `URLSearchParams` does.
fn decode_component(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                match (hex_value(bytes[index + 1]), hex_value(bytes[index + 2])) {
                    (Some(high), Some(low)) => {
                        decoded.push(high << 4 | low);
                        index += 2;
                    }
                    _ => decoded.push(b'%'),
                }
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&decoded).into_owned())
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_found_and_decoded() {
        let request = Request::get("/do/counter?x=1&name=a%20b+c&name=second&flag").expect("URI");
        assert_eq!(request.query("name").as_deref(), Some("a b c"));
        assert_eq!(request.query("x").as_deref(), Some("1"));
        assert_eq!(request.query("flag").as_deref(), Some(""));
        assert_eq!(request.query("missing"), None);
        let request = Request::get("/?name=obj42").expect("URI");
        assert!(matches!(
            request.query("name"),
            Some(Cow::Borrowed("obj42"))
        ));
        let request = Request::get("/?k=%zz%4").expect("URI");
        assert_eq!(request.query("k").as_deref(), Some("%zz%4"));
    }

    #[tokio::test]
    async fn responses_carry_status_type_and_body() {
        let response = Response::json(&serde_json::json!({"n": 1})).expect("JSON");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.into_text().await.expect("text"), r#"{"n":1}"#);
        let response = Response::error("nope", StatusCode::NOT_FOUND);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; charset=utf-8"
        );
    }
}
