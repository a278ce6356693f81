//! The admin API's router: routes keyed by method and path pattern (`/client/v4/accounts/:account/
//! storage/kv/namespaces/:namespace_id`), and [`AdminRequest`], what a route's handler receives.
//!
//! Matching: a pattern is `/`-separated segments, each literal or `:name` (one whole segment,
//! percent-decoded). One trailing slash on the request path is ignored. When several patterns
//! match, the one with a literal segment where the others have a parameter wins, leftmost first
//! (`/queues/:id/messages/pull` beats `/queues/:id/messages/:lease`). HEAD is served by the GET
//! route when no HEAD route exists.

use std::future::Future;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, Method, Response, Uri};
use serde::de::DeserializeOwned;

use super::envelope::{ApiError, codes};
use crate::body::{Body, BodyError};
use crate::server::LocalBoxFuture;

/// What an admin handler returns: a response (usually from [`super::success`]) or an error that
/// becomes Cloudflare's error envelope.
pub type AdminResult = Result<Response<Body>, ApiError>;

type BoxedHandler = Arc<dyn Fn(AdminRequest) -> LocalBoxFuture<'static, AdminResult> + Send + Sync>;

/// The largest JSON body [`AdminRequest::json`] reads: Cloudflare's request limit, which bulk KV
/// writes (up to 10,000 pairs) can approach.
pub const MAX_JSON_BODY_BYTES: u64 = 100 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Clone)]
pub(crate) struct Route {
    method: Method,
    pattern: String,
    segments: Vec<Segment>,
    /// Served without a token (`/healthz`).
    pub(crate) public: bool,
    pub(crate) handler: BoxedHandler,
}

/// The admin API's routes. Register them before [`super::serve_admin`]; the router is then
/// shared by every shard.
#[derive(Clone, Default)]
pub struct AdminRouter {
    routes: Vec<Route>,
}

impl std::fmt::Debug for AdminRouter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_list()
            .entries(
                self.routes
                    .iter()
                    .map(|route| format!("{} {}", route.method, route.pattern)),
            )
            .finish()
    }
}

pub(crate) enum Found<'a> {
    Route(&'a Route, Vec<(String, String)>),
    WrongMethod,
    Nothing,
}

impl AdminRouter {
    /// A router with no routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes `method pattern` to `handler`, behind the bearer token.
    ///
    /// # Panics
    /// On a malformed pattern (not starting with `/`, an empty segment or parameter name, a
    /// repeated parameter) or one already routed for this method: both are programming errors.
    pub fn route<F, Fut>(&mut self, method: Method, pattern: &str, handler: F) -> &mut Self
    where
        F: Fn(AdminRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AdminResult> + 'static,
    {
        self.add(method, pattern, false, handler)
    }

    /// Like [`AdminRouter::route`], but served without a token (health checks).
    pub fn public_route<F, Fut>(&mut self, method: Method, pattern: &str, handler: F) -> &mut Self
    where
        F: Fn(AdminRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AdminResult> + 'static,
    {
        self.add(method, pattern, true, handler)
    }

    fn add<F, Fut>(&mut self, method: Method, pattern: &str, public: bool, handler: F) -> &mut Self
    where
        F: Fn(AdminRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AdminResult> + 'static,
    {
        let segments = parse_pattern(pattern);
        let shape = |segments: &[Segment]| {
            segments
                .iter()
                .map(|segment| match segment {
                    Segment::Literal(text) => Some(text.clone()),
                    Segment::Param(_) => None,
                })
                .collect::<Vec<_>>()
        };
        assert!(
            !self
                .routes
                .iter()
                .any(|route| route.method == method && shape(&route.segments) == shape(&segments)),
            "admin route {method} {pattern} is registered twice"
        );
        self.routes.push(Route {
            method,
            pattern: pattern.to_owned(),
            segments,
            public,
            handler: Arc::new(move |request| Box::pin(handler(request))),
        });
        self
    }

    pub(crate) fn find(&self, method: &Method, path: &str) -> Found<'_> {
        let Some(parts) = split_path(path) else {
            return Found::Nothing;
        };
        let mut best: Option<(&Route, Vec<bool>)> = None;
        let mut path_matched = false;
        for route in &self.routes {
            let Some(literals) = specificity(&route.segments, &parts) else {
                continue;
            };
            path_matched = true;
            let method_matches = route.method == *method
                || (*method == Method::HEAD
                    && route.method == Method::GET
                    && !self.routes.iter().any(|other| {
                        other.method == Method::HEAD
                            && specificity(&other.segments, &parts).is_some()
                    }));
            if !method_matches {
                continue;
            }
            if best.as_ref().is_none_or(|(_, current)| literals > *current) {
                best = Some((route, literals));
            }
        }
        match best {
            Some((route, _)) => {
                let params = route
                    .segments
                    .iter()
                    .zip(&parts)
                    .filter_map(|(segment, part)| match segment {
                        Segment::Param(name) => Some((name.clone(), percent_decode(part, false))),
                        Segment::Literal(_) => None,
                    })
                    .collect();
                Found::Route(route, params)
            }
            None if path_matched => Found::WrongMethod,
            None => Found::Nothing,
        }
    }
}

/// `None` when the pattern does not match; otherwise which segments matched literally.
fn specificity(segments: &[Segment], parts: &[&str]) -> Option<Vec<bool>> {
    if segments.len() != parts.len() {
        return None;
    }
    segments
        .iter()
        .zip(parts)
        .map(|(segment, part)| match segment {
            Segment::Literal(text) => (text == part).then_some(true),
            Segment::Param(_) => Some(false),
        })
        .collect()
}

fn parse_pattern(pattern: &str) -> Vec<Segment> {
    let parts = split_path(pattern)
        .unwrap_or_else(|| panic!("admin route pattern {pattern:?} is malformed"));
    let mut names = Vec::new();
    parts
        .into_iter()
        .map(|part| match part.strip_prefix(':') {
            Some(name) => {
                assert!(
                    !name.is_empty() && !names.contains(&name),
                    "admin route pattern {pattern:?} has an empty or repeated parameter"
                );
                names.push(name);
                Segment::Param(name.to_owned())
            }
            None => Segment::Literal(part.to_owned()),
        })
        .collect()
}

/// The segments of an absolute path, ignoring one trailing slash; `None` for a relative path or
/// an empty segment.
fn split_path(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix('/')?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    parts.iter().all(|part| !part.is_empty()).then_some(parts)
}

/// Decodes `%XX` escapes (and `+` as a space in query strings). Invalid escapes stay as written;
/// bytes that are not UTF-8 become U+FFFD.
fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte == b'%'
            && let Some(high) = bytes.get(index + 1).and_then(|digit| hex(*digit))
            && let Some(low) = bytes.get(index + 2).and_then(|digit| hex(*digit))
        {
            decoded.push(high << 4 | low);
            index += 3;
            continue;
        }
        decoded.push(if plus_is_space && byte == b'+' {
            b' '
        } else {
            byte
        });
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|value| value as u8)
}

/// A request routed to an admin handler.
#[derive(Debug)]
pub struct AdminRequest {
    parts: Parts,
    params: Vec<(String, String)>,
    body: Body,
}

impl AdminRequest {
    pub(crate) fn new(parts: Parts, params: Vec<(String, String)>, body: Body) -> Self {
        AdminRequest {
            parts,
            params,
            body,
        }
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.parts.method
    }

    /// The URI as sent.
    pub fn uri(&self) -> &Uri {
        &self.parts.uri
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    /// The value of pattern parameter `name` (`:account` → `param("account")`), decoded.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every query parameter in order, decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(key, true), percent_decode(value, true))
            })
            .collect()
    }

    /// The first value of query parameter `name`, decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The body, streaming.
    pub fn into_body(self) -> Body {
        self.body
    }

    /// The body parsed as JSON; a 400 naming the problem (and the field, where serde knows it)
    /// when it is not.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        let bytes = self
            .body
            .collect_limited(MAX_JSON_BODY_BYTES)
            .await
            .map_err(|error| match error {
                BodyError::TooLarge { limit } => ApiError::new(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    codes::PAYLOAD_TOO_LARGE,
                    format!("the request body exceeds the limit of {limit} bytes"),
                ),
                BodyError::Stream(error) => ApiError::bad_request(
                    codes::MALFORMED_JSON,
                    format!("cannot read the request body: {error}"),
                ),
            })?;
        // The error names the field it is about (`[1].key: missing field …`).
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if path == "." {
                ApiError::malformed_json(inner)
            } else {
                ApiError::malformed_json(format!("{path}: {inner}"))
            }
        })?;
        deserializer.end().map_err(ApiError::malformed_json)?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::envelope::success;

    fn router() -> AdminRouter {
        let mut router = AdminRouter::new();
        router
            .route(
                Method::GET,
                "/client/v4/accounts/:account/queues/:queue/messages/:lease",
                |_| async { Ok(success("param")) },
            )
            .route(
                Method::GET,
                "/client/v4/accounts/:account/queues/:queue/messages/pull",
                |_| async { Ok(success("literal")) },
            )
            .route(
                Method::POST,
                "/client/v4/accounts/:account/queues",
                |_| async { Ok(success("create")) },
            );
        router
    }

    fn pattern_of(found: Found<'_>) -> Option<(String, Vec<(String, String)>)> {
        match found {
            Found::Route(route, params) => Some((route.pattern.clone(), params)),
            _ => None,
        }
    }

    #[test]
    fn literal_segments_win_and_parameters_are_decoded() {
        let router = router();
        let (pattern, params) = pattern_of(router.find(
            &Method::GET,
            "/client/v4/accounts/acc/queues/q%2F1/messages/pull",
        ))
        .expect("found");
        assert!(pattern.ends_with("/pull"), "{pattern}");
        assert_eq!(
            params,
            [
                ("account".to_owned(), "acc".to_owned()),
                ("queue".to_owned(), "q/1".to_owned())
            ]
        );
        let (pattern, _) = pattern_of(router.find(
            &Method::HEAD,
            "/client/v4/accounts/acc/queues/q/messages/lease-1/",
        ))
        .expect("HEAD uses GET");
        assert!(pattern.ends_with(":lease"), "{pattern}");
    }

    #[test]
    fn misses_are_told_apart() {
        let router = router();
        assert!(matches!(
            router.find(&Method::DELETE, "/client/v4/accounts/acc/queues"),
            Found::WrongMethod
        ));
        for path in [
            "/client/v4/accounts/acc/nothing",
            "/client/v4/accounts//queues",
            "relative",
            "/",
        ] {
            assert!(
                matches!(router.find(&Method::GET, path), Found::Nothing),
                "{path}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_route_cannot_be_registered_twice() {
        let mut router = router();
        router.route(
            Method::POST,
            "/client/v4/accounts/:other/queues",
            |_| async { Ok(success(())) },
        );
    }

    #[test]
    fn query_parameters_are_decoded() {
        let (parts, ()) = http::Request::get("/x?prefix=a%20b&limit=10&cursor=c+d&flag")
            .body(())
            .expect("request")
            .into_parts();
        let request = AdminRequest::new(parts, Vec::new(), Body::empty());
        assert_eq!(request.query("prefix").as_deref(), Some("a b"));
        assert_eq!(request.query("cursor").as_deref(), Some("c d"));
        assert_eq!(request.query("flag").as_deref(), Some(""));
        assert_eq!(request.query("missing"), None);
    }
}
