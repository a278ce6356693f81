//! KV namespaces: the `env.kv("BINDING")` binding of `[[kv_namespaces]]`, and the KV endpoints of
//! the admin API (a Cloudflare v4 subset that `burrow kv …` and wrangler talk to).
//!
//! The namespace handle is [`burrow_services::kv::KvNamespace`]: Cloudflare's `get` (text, JSON,
//! bytes, stream), bulk `get_many`, `get_with_metadata`, `put_with` (expiration, TTL, metadata),
//! `delete` and `list`, with Cloudflare's limits and messages. Reads see every write that
//! resolved before them (stronger than Cloudflare's eventual consistency).
//!
//! ```no_run
//! use burrow::{App, Env, Request, Response, Result};
//! use burrow::kv::PutOptions;
//!
//! async fn handle(request: Request, env: Env) -> Result<Response> {
//!     let sessions = env.kv("SESSIONS")?;
//!     let ttl = PutOptions { expiration_ttl: Some(3600), ..PutOptions::default() };
//!     sessions.put_with("user:1", "token", ttl).await?;
//!     let token = sessions.get_text("user:1").await?;
//!     Ok(Response::text(token.unwrap_or_default()))
//! }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use burrow_config::LoadedConfig;
use burrow_http::Body;
use burrow_http::admin::envelope::codes;
use burrow_http::admin::{self, AdminRequest, AdminRouter, ApiError};
use burrow_runtime::Runtime;
use burrow_runtime::clock::SystemClock;
use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use serde_json::json;

pub use burrow_services::kv::{
    Error, KvNamespace, ListKey, ListOptions, ListResult, PutOptions, ValueStream,
    ValueWithMetadata,
};

use crate::env::Env;

/// The KV bindings of one Worker, by binding name.
pub(crate) type Bindings = HashMap<String, KvNamespace>;

/// The system class that keeps KV data; the server adds it to every runtime.
pub(crate) fn class() -> (String, Arc<dyn burrow_runtime::ObjectClass>) {
    burrow_services::kv::class()
}

/// The node's KV service (the server's runtime runs on the system clock).
pub(crate) fn service(runtime: &Runtime) -> Option<burrow_services::kv::Kv> {
    burrow_services::kv::Kv::new(runtime, Arc::new(SystemClock)).ok()
}

/// Resolves a Worker's `[[kv_namespaces]]` to handles, once the runtime runs.
pub(crate) fn bindings(
    runtime: &Runtime,
    namespaces: &[burrow_config::KvNamespaceBinding],
) -> Bindings {
    let Some(kv) = service(runtime) else {
        return Bindings::new();
    };
    namespaces
        .iter()
        .map(|binding| (binding.binding.clone(), kv.namespace(binding.namespace())))
        .collect()
}

impl Env {
    /// The KV namespace of binding `binding` (`[[kv_namespaces]]` in `wrangler.toml`).
    pub fn kv(&self, binding: &str) -> crate::Result<KvNamespace> {
        let bindings = self.kv_bindings().get().ok_or_else(|| {
            crate::Error::new("KV bindings are not available until the runtime has started")
        })?;
        bindings.get(binding).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = bindings.keys().map(String::as_str).collect();
            known.sort_unstable();
            crate::Error::new(format!(
                "env has no KV namespace binding {binding:?} (KV bindings: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Admin API.

const NAMESPACES_PATH: &str = "/client/v4/accounts/:account/storage/kv/namespaces";
const VALUE_PATH: &str =
    "/client/v4/accounts/:account/storage/kv/namespaces/:namespace/values/:key";
const METADATA_PATH: &str =
    "/client/v4/accounts/:account/storage/kv/namespaces/:namespace/metadata/:key";
const KEYS_PATH: &str = "/client/v4/accounts/:account/storage/kv/namespaces/:namespace/keys";

/// Cloudflare's error codes for the KV API.
mod kv_codes {
    /// A KV call was rejected (key, value, metadata, expiration or list arguments).
    pub(super) const INVALID: u32 = 10_001;
    /// `get: 'key not found'`.
    pub(super) const KEY_NOT_FOUND: u32 = 10_009;
    /// The namespace id is not configured.
    pub(super) const NAMESPACE_NOT_FOUND: u32 = 10_013;
}

/// The namespaces the admin API serves: every `[[kv_namespaces]]` of every loaded Worker, by id.
#[derive(Clone)]
struct Namespaces {
    /// id → (title, handle).
    by_id: Arc<BTreeMap<String, (String, KvNamespace)>>,
}

impl Namespaces {
    fn get(&self, request: &AdminRequest) -> Result<KvNamespace, ApiError> {
        let id = request.param("namespace").unwrap_or_default();
        self.by_id
            .get(id)
            .map(|(_, namespace)| namespace.clone())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    kv_codes::NAMESPACE_NOT_FOUND,
                    format!("namespace not found: {id:?} is not in any [[kv_namespaces]]"),
                )
            })
    }
}

fn api_error(error: Error) -> ApiError {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let code = if status.is_server_error() {
        codes::INTERNAL
    } else {
        kv_codes::INVALID
    };
    ApiError::new(status, code, error.to_string())
}

fn key_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        kv_codes::KEY_NOT_FOUND,
        "get: 'key not found'",
    )
}

fn integer_query(request: &AdminRequest, name: &str) -> Result<Option<i64>, ApiError> {
    request
        .query(name)
        .filter(|value| !value.is_empty())
        .map(|value| {
            value.parse::<i64>().map_err(|_| {
                ApiError::bad_request(
                    kv_codes::INVALID,
                    format!("Invalid {name} of {value}. Please specify an integer."),
                )
            })
        })
        .transpose()
}

/// The boundary of a `multipart/form-data` content type.
fn multipart_boundary(content_type: &str) -> Option<String> {
    let (kind, parameters) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    parameters.split(';').find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The `value` and `metadata` fields of a `multipart/form-data` body; `None` if it is malformed
/// or has no `value`.
fn parse_form(body: &[u8], boundary: &str) -> Option<(Bytes, Option<Bytes>)> {
    let delimiter = format!("--{boundary}");
    let find = |haystack: &[u8], needle: &[u8]| {
        haystack
            .windows(needle.len())
            .position(|window| window == needle)
    };
    let mut rest = &body[find(body, delimiter.as_bytes())? + delimiter.len()..];
    let (mut value, mut metadata) = (None, None);
    // Each part: CRLF, headers, CRLF CRLF, content, CRLF, delimiter; "--" after the last.
    while !rest.starts_with(b"--") {
        rest = rest.strip_prefix(b"\r\n")?;
        let headers_end = find(rest, b"\r\n\r\n")?;
        let headers = String::from_utf8_lossy(&rest[..headers_end]).to_ascii_lowercase();
        let content = &rest[headers_end + 4..];
        let end = find(content, format!("\r\n{delimiter}").as_bytes())?;
        let name = headers
            .split("name=\"")
            .nth(1)
            .and_then(|after| after.split('"').next())
            .unwrap_or_default()
            .to_owned();
        let bytes = Bytes::copy_from_slice(&content[..end]);
        match name.as_str() {
            "value" => value = Some(bytes),
            "metadata" => metadata = Some(bytes),
            _ => {}
        }
        rest = &content[end + 2 + delimiter.len()..];
    }
    Some((value?, metadata))
}

/// Adds the KV routes to the admin router: namespaces list; values get, put and delete; metadata;
/// keys list. Values travel raw: a PUT's body is the value, or, as wrangler sends a value with
/// metadata, a `multipart/form-data` body with `value` and `metadata` fields; Burrow also takes
/// metadata as JSON in the `metadata` query parameter. Expiry comes in `expiration` /
/// `expiration_ttl`.
pub(crate) fn admin_routes(router: &mut AdminRouter, loaded: &LoadedConfig, runtime: &Runtime) {
    let Some(kv) = service(runtime) else {
        return;
    };
    let mut by_id = BTreeMap::new();
    for worker in loaded.workers() {
        for binding in &worker.config.kv_namespaces {
            let id = binding.namespace().to_owned();
            let title = format!("{}-{}", worker.name(), binding.binding);
            let namespace = kv.namespace(&id);
            by_id.entry(id).or_insert((title, namespace));
        }
    }
    let namespaces = Namespaces {
        by_id: Arc::new(by_id),
    };

    let list = namespaces.clone();
    router.route(Method::GET, NAMESPACES_PATH, move |_request| {
        let result: Vec<serde_json::Value> = list
            .by_id
            .iter()
            .map(|(id, (title, _))| json!({"id": id, "title": title, "supports_url_encoding": true}))
            .collect();
        let count = result.len();
        async move {
            Ok(admin::success_with_info(
                result,
                Some(json!({"page": 1, "per_page": count.max(20), "count": count, "total_count": count})),
            ))
        }
    });

    let get = namespaces.clone();
    router.route(Method::GET, VALUE_PATH, move |request| {
        let found = get.get(&request);
        async move {
            let namespace = found?;
            let key = request.param("key").unwrap_or_default();
            let found = namespace
                .get_with_metadata(key)
                .await
                .map_err(api_error)?
                .ok_or_else(key_not_found)?;
            let mut response = Response::new(Body::from_bytes(found.value));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/octet-stream"),
            );
            if let Some(expiration) = found.expiration
                && let Ok(value) = header::HeaderValue::from_str(&expiration.to_string())
            {
                response.headers_mut().insert("expiration", value);
            }
            Ok(response)
        }
    });

    let metadata = namespaces.clone();
    router.route(Method::GET, METADATA_PATH, move |request| {
        let found = metadata.get(&request);
        async move {
            let namespace = found?;
            let key = request.param("key").unwrap_or_default();
            let found = namespace
                .get_with_metadata(key)
                .await
                .map_err(api_error)?
                .ok_or_else(key_not_found)?;
            Ok(admin::success(found.metadata))
        }
    });

    let put = namespaces.clone();
    router.route(Method::PUT, VALUE_PATH, move |request| {
        let found = put.get(&request);
        async move {
            let namespace = found?;
            let key = request.param("key").unwrap_or_default().to_owned();
            let metadata = request
                .query("metadata")
                .map(|text| {
                    serde_json::from_str::<serde_json::Value>(&text).map_err(|error| {
                        ApiError::bad_request(
                            kv_codes::INVALID,
                            format!("metadata is not valid JSON: {error}"),
                        )
                    })
                })
                .transpose()?;
            let options = PutOptions {
                expiration: integer_query(&request, "expiration")?,
                expiration_ttl: integer_query(&request, "expiration_ttl")?,
                metadata,
            };
            let content_type = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let value: Bytes = request
                .into_body()
                .collect_limited(burrow_services::kv::error::MAX_VALUE_BYTES as u64 + 1)
                .await
                .map_err(|error| {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        codes::PAYLOAD_TOO_LARGE,
                        format!("cannot read the value: {error}"),
                    )
                })?;
            // wrangler sends a value with metadata as multipart/form-data (`value`, `metadata`).
            let (value, options) = match content_type.as_deref().and_then(multipart_boundary) {
                Some(boundary) => {
                    let (value, metadata) = parse_form(&value, &boundary).ok_or_else(|| {
                        ApiError::bad_request(
                            kv_codes::INVALID,
                            "malformed multipart/form-data body",
                        )
                    })?;
                    let metadata = metadata
                        .map(|text| {
                            serde_json::from_slice::<serde_json::Value>(&text).map_err(|error| {
                                ApiError::bad_request(
                                    kv_codes::INVALID,
                                    format!("metadata is not valid JSON: {error}"),
                                )
                            })
                        })
                        .transpose()?;
                    let options = PutOptions {
                        metadata: metadata.or(options.metadata),
                        ..options
                    };
                    (value, options)
                }
                None => (value, options),
            };
            namespace
                .put_with(&key, &value, options)
                .await
                .map_err(api_error)?;
            Ok(admin::success(json!({})))
        }
    });

    let delete = namespaces.clone();
    router.route(Method::DELETE, VALUE_PATH, move |request| {
        let found = delete.get(&request);
        async move {
            let namespace = found?;
            let key = request.param("key").unwrap_or_default();
            namespace.delete(key).await.map_err(api_error)?;
            Ok(admin::success(json!({})))
        }
    });

    let keys = namespaces;
    router.route(Method::GET, KEYS_PATH, move |request| {
        let found = keys.get(&request);
        async move {
            let namespace = found?;
            let limit = integer_query(&request, "limit")?;
            let options = ListOptions {
                prefix: request.query("prefix").filter(|prefix| !prefix.is_empty()),
                limit: limit.map(|limit| usize::try_from(limit).unwrap_or(0)),
                cursor: request.query("cursor").filter(|cursor| !cursor.is_empty()),
            };
            let page = namespace.list(options).await.map_err(api_error)?;
            let info = json!({
                "count": page.keys.len(),
                "cursor": page.cursor.clone().unwrap_or_default(),
            });
            Ok(admin::success_with_info(page.keys, Some(info)))
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_values_and_metadata_are_read_as_wrangler_sends_them() {
        let content_type = "multipart/form-data; boundary=\"----b42\"";
        let boundary = multipart_boundary(content_type).unwrap();
        assert_eq!(boundary, "----b42");
        let body = b"------b42\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\nline 1\r\nline 2\r\n------b42\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"a\":1}\r\n------b42--\r\n";
        let (value, metadata) = parse_form(body, &boundary).unwrap();
        assert_eq!(&value[..], b"line 1\r\nline 2");
        assert_eq!(metadata.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(multipart_boundary("application/octet-stream"), None);
        assert!(parse_form(b"garbage", &boundary).is_none());
    }
}
