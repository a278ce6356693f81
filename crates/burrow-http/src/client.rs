//! [`AdminClient`]: how the `burrow` CLI talks to a running server, over the admin API only
//! (nothing outside the server opens its data directory). Plain HTTP/1.1 on hyper's client, one
//! connection per call: the CLI makes a handful of calls, so pooling would only add code.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;

use crate::admin::{ApiMessage, Envelope};
use crate::body::{Body, BodyError};

/// The largest response the client reads.
pub const MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not `http://HOST[:PORT][/PATH]`.
    #[error("invalid admin URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Nothing answered at the address.
    #[error(
        "cannot reach the Burrow admin API at {url}: {error} (is `burrow dev` or `burrow serve` \
         running? pass --admin URL to point elsewhere)"
    )]
    Connect {
        /// The base URL.
        url: String,
        /// The connection error.
        error: std::io::Error,
    },
    /// The HTTP exchange failed midway.
    #[error("the admin API at {url} failed mid-request: {error}")]
    Http {
        /// The base URL.
        url: String,
        /// hyper's error.
        error: hyper::Error,
    },
    /// The response body could not be read.
    #[error("cannot read the admin API's response: {0}")]
    Body(BodyError),
    /// No answer within the timeout.
    #[error("the admin API did not answer within {0:?}")]
    Timeout(Duration),
    /// The server answered with Cloudflare's error envelope.
    #[error("{status}: {}", describe(.errors))]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The envelope's `errors`.
        errors: Vec<ApiMessage>,
    },
    /// The server answered with something that is not the envelope.
    #[error("unexpected answer from the admin API ({status}): {body}")]
    NotEnvelope {
        /// The HTTP status.
        status: StatusCode,
        /// The start of the body.
        body: String,
    },
    /// A request body could not be serialized.
    #[error("cannot encode the request: {0}")]
    Encode(serde_json::Error),
}

fn describe(errors: &[ApiMessage]) -> String {
    if errors.is_empty() {
        return "the call failed without saying why".to_owned();
    }
    errors
        .iter()
        .map(|error| format!("{} [code: {}]", error.message, error.code))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A raw answer, for endpoints that do not use the envelope (KV values, `/metrics`).
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

/// A client for one admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    url: String,
    authority: String,
    base_path: String,
    token: Option<String>,
    timeout: Duration,
}

impl AdminClient {
    /// A client for the admin API at `base_url` (e.g. `http://127.0.0.1:8788`), sending `token`
    /// as a bearer token when there is one.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, ClientError> {
        let invalid = |reason| ClientError::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let uri: Uri = base_url
            .parse()
            .map_err(|_| invalid("not a URL (expected http://HOST:PORT)"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(invalid("only http:// is supported")),
            None => return Err(invalid("missing http://")),
        }
        let authority = uri.authority().ok_or_else(|| invalid("missing host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid(
                "credentials in the URL are not supported; use --token",
            ));
        }
        let port = authority.port_u16().unwrap_or(80);
        let authority = format!("{}:{port}", authority.host());
        if uri.query().is_some() {
            return Err(invalid("a query string is not allowed"));
        }
        Ok(AdminClient {
            url: base_url.trim_end_matches('/').to_owned(),
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            token: token.filter(|token| !token.is_empty()),
            timeout: Duration::from_secs(60),
        })
    }

    /// Sets how long one call may take (default 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET path`, parsed as an envelope.
    pub async fn get(&self, path: &str) -> Result<Envelope, ClientError> {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with `body` as JSON.
    pub async fn post(&self, path: &str, body: &impl Serialize) -> Result<Envelope, ClientError> {
        self.call(Method::POST, path, Some(json(body)?)).await
    }

    /// `PUT path` with `body` as JSON.
    pub async fn put(&self, path: &str, body: &impl Serialize) -> Result<Envelope, ClientError> {
        self.call(Method::PUT, path, Some(json(body)?)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Envelope, ClientError> {
        self.call(Method::DELETE, path, None).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<Envelope, ClientError> {
        let raw = self.send(method, path, body).await?;
        let envelope: Envelope = match serde_json::from_slice(&raw.body) {
            Ok(envelope) => envelope,
            Err(_) => {
                let text = String::from_utf8_lossy(&raw.body);
                return Err(ClientError::NotEnvelope {
                    status: raw.status,
                    body: text.chars().take(500).collect(),
                });
            }
        };
        if !envelope.success || !raw.status.is_success() {
            return Err(ClientError::Api {
                status: raw.status,
                errors: envelope.errors,
            });
        }
        Ok(envelope)
    }

    /// Sends one request with an optional `(content type, bytes)` body and returns the raw
    /// answer, whatever its status.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<RawResponse, ClientError> {
        tokio::time::timeout(self.timeout, self.send_now(method, path, body))
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))?
    }

    async fn send_now(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<RawResponse, ClientError> {
        let uri = format!("{}/{}", self.base_path, path.trim_start_matches('/'));
        let mut request = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::HOST, &self.authority)
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("burrow/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(token) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                ClientError::InvalidUrl {
                    url: self.url.clone(),
                    reason: "the token holds characters a header cannot carry",
                }
            })?;
            request = request.header(header::AUTHORIZATION, value);
        }
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let request = request.body(body).map_err(|_| ClientError::InvalidUrl {
            url: format!("{}{uri}", self.url),
            reason: "the path is not a valid URI path",
        })?;

        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|error| ClientError::Connect {
                url: self.url.clone(),
                error,
            })?;
        let _ = stream.set_nodelay(true);
        let http_error = |error| ClientError::Http {
            url: self.url.clone(),
            error,
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http_error)?;
        // The connection task ends when the sender and the response body are gone.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let response = sender.send_request(request).await.map_err(http_error)?;
        let (parts, body) = response.into_parts();
        let body = Body::new(body)
            .collect_limited(MAX_RESPONSE_BYTES)
            .await
            .map_err(ClientError::Body)?;
        Ok(RawResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

fn json(body: &impl Serialize) -> Result<(&'static str, Bytes), ClientError> {
    let bytes = serde_json::to_vec(body).map_err(ClientError::Encode)?;
    Ok(("application/json", Bytes::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        let client = AdminClient::new("http://127.0.0.1:8788/", None).expect("valid");
        assert_eq!(client.authority, "127.0.0.1:8788");
        assert_eq!(client.base_path, "");
        let client =
            AdminClient::new("http://localhost/burrow/", Some(String::new())).expect("valid");
        assert_eq!(client.authority, "localhost:80");
        assert_eq!(client.base_path, "/burrow");
        assert_eq!(client.token, None);
        for bad in [
            "https://x",
            "127.0.0.1:8788",
            "not a url",
            "http://u:p@host/",
        ] {
            assert!(AdminClient::new(bad, None).is_err(), "{bad}");
        }
    }
}
