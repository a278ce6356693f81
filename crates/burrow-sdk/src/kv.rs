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
const NAMESPACE_PATH: &str = "/client/v4/accounts/:account/storage/kv/namespaces/:namespace";
const BULK_PATH: &str = "/client/v4/accounts/:account/storage/kv/namespaces/:namespace/bulk";
const BULK_DELETE_PATH: &str =
    "/client/v4/accounts/:account/storage/kv/namespaces/:namespace/bulk/delete";

/// Cloudflare's error codes for the KV API.
mod kv_codes {
    /// A KV call was rejected (key, value, metadata, expiration or list arguments).
    pub(super) const INVALID: u32 = 10_001;
    /// `get: 'key not found'`.
    pub(super) const KEY_NOT_FOUND: u32 = 10_009;
    /// The namespace id is not configured.
    pub(super) const NAMESPACE_NOT_FOUND: u32 = 10_013;
    /// A namespace with this title exists.
    pub(super) const TITLE_EXISTS: u32 = 10_014;
}

/// The namespaces the admin API serves: every `[[kv_namespaces]]` of every loaded Worker, by id,
/// and those created through the API, which are kept in the reserved namespace
/// [`REGISTRY_NAMESPACE`] (key: id, value: title), so they survive restarts.
#[derive(Clone)]
struct Namespaces {
    kv: burrow_services::kv::Kv,
    /// Configured: id → (title, handle).
    configured: Arc<BTreeMap<String, (String, KvNamespace)>>,
    registry: KvNamespace,
}

/// The reserved namespace that records namespaces created through the admin API. Its id cannot
/// be configured or created: it starts with `__burrow`.
const REGISTRY_NAMESPACE: &str = "__burrow_kv_namespaces";

/// How many namespaces the API may create: every list walks them all.
const MAX_CREATED_NAMESPACES: usize = 1_000;

/// At most this many pairs in one bulk write or keys in one bulk delete (Cloudflare's limit).
const MAX_BULK_PAIRS: usize = 10_000;

impl Namespaces {
    fn not_found(id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            kv_codes::NAMESPACE_NOT_FOUND,
            format!(
                "namespace not found: {id:?} is not in any [[kv_namespaces]] and was not created \
                 through the API"
            ),
        )
    }

    /// Every namespace: (id, title), configured and created, in id order.
    async fn all(&self) -> Result<Vec<(String, String)>, ApiError> {
        let mut all: BTreeMap<String, String> = self
            .configured
            .iter()
            .map(|(id, (title, _))| (id.clone(), title.clone()))
            .collect();
        let listed = self
            .registry
            .list(ListOptions::default())
            .await
            .map_err(api_error)?;
        for key in listed.keys {
            let title = self
                .registry
                .get_text(&key.name)
                .await
                .map_err(api_error)?
                .unwrap_or_default();
            all.entry(key.name).or_insert(title);
        }
        Ok(all.into_iter().collect())
    }

    async fn get(&self, request: &AdminRequest) -> Result<KvNamespace, ApiError> {
        let id = request.param("namespace").unwrap_or_default();
        if let Some((_, namespace)) = self.configured.get(id) {
            return Ok(namespace.clone());
        }
        if id.starts_with("__burrow") || id.is_empty() || id.len() > 512 {
            return Err(Self::not_found(id));
        }
        match self.registry.get(id).await.map_err(api_error)? {
            Some(_) => Ok(self.kv.namespace(id)),
            None => Err(Self::not_found(id)),
        }
    }
}

/// `POST …/namespaces`'s body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateNamespace {
    title: String,
}

/// One pair of a bulk write (`PUT …/bulk`).
#[derive(Debug, serde::Deserialize)]
struct BulkPair {
    key: String,
    value: String,
    #[serde(default)]
    expiration: Option<i64>,
    #[serde(default)]
    expiration_ttl: Option<i64>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    base64: bool,
}

fn bulk_limit(count: usize, what: &str) -> Result<(), ApiError> {
    if count > MAX_BULK_PAIRS {
        return Err(ApiError::bad_request(
            kv_codes::INVALID,
            format!("a bulk {what} takes at most {MAX_BULK_PAIRS} keys; this one has {count}"),
        ));
    }
    Ok(())
}

/// Cloudflare's bulk result: how many keys were written or deleted, and which were not.
fn bulk_result(successful: usize, unsuccessful: Vec<String>) -> serde_json::Value {
    json!({"successful_key_count": successful, "unsuccessful_keys": unsuccessful})
}

/// Deletes `keys`, already checked; how many.
async fn delete_keys(namespace: &KvNamespace, keys: Vec<String>) -> Result<usize, ApiError> {
    let mut deleted = 0;
    for key in keys {
        namespace.delete(&key).await.map_err(api_error)?;
        deleted += 1;
    }
    Ok(deleted)
}

fn check<T>(result: Result<T, Error>) -> Result<T, ApiError> {
    result.map_err(api_error)
}

/// A fresh namespace id: 32 hex digits, as Cloudflare's.
fn new_namespace_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut id = String::with_capacity(32);
    for _ in 0..2 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        id.push_str(&format!("{:016x}", hasher.finish()));
    }
    id
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

/// Adds the KV routes to the admin router: namespaces list, create and delete; values get, put
/// and delete; metadata; keys list; bulk write and bulk delete. Values travel raw: a PUT's body is
/// the value, or, as wrangler sends a value with metadata, a `multipart/form-data` body with
/// `value` and `metadata` fields; Burrow also takes metadata as JSON in the `metadata` query
/// parameter. Expiry comes in `expiration` / `expiration_ttl`.
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
        registry: kv.namespace(REGISTRY_NAMESPACE),
        kv,
        configured: Arc::new(by_id),
    };

    let list = namespaces.clone();
    router.route(Method::GET, NAMESPACES_PATH, move |request| {
        let list = list.clone();
        async move {
            let page = admin::Page::from_request(&request, 20, 1000)?;
            let by_title = request.query("order").as_deref() == Some("title");
            let descending = match request.query("direction").as_deref() {
                None | Some("" | "asc") => false,
                Some("desc") => true,
                Some(other) => {
                    return Err(ApiError::bad_request(
                        codes::INVALID_QUERY,
                        format!("direction must be asc or desc, not {other:?}"),
                    ));
                }
            };
            let mut all = list.all().await?;
            if by_title {
                all.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            }
            if descending {
                all.reverse();
            }
            let all: Vec<serde_json::Value> = all
                .into_iter()
                .map(|(id, title)| json!({"id": id, "title": title, "supports_url_encoding": true}))
                .collect();
            let (result, info) = page.slice(all);
            Ok(admin::success_with_info(result, Some(info)))
        }
    });

    let create = namespaces.clone();
    router.route(Method::POST, NAMESPACES_PATH, move |request| {
        let create = create.clone();
        async move {
            let body: CreateNamespace = request.json().await?;
            let title = body.title.trim().to_owned();
            if title.is_empty() || title.len() > 512 {
                return Err(ApiError::bad_request(
                    kv_codes::INVALID,
                    "title must be 1 to 512 bytes long",
                ));
            }
            let all = create.all().await?;
            if all.iter().any(|(_, existing)| *existing == title) {
                return Err(ApiError::bad_request(
                    kv_codes::TITLE_EXISTS,
                    "a namespace with this account ID and title already exists",
                ));
            }
            if all.len() - create.configured.len() >= MAX_CREATED_NAMESPACES {
                return Err(ApiError::bad_request(
                    kv_codes::INVALID,
                    format!("at most {MAX_CREATED_NAMESPACES} namespaces can be created"),
                ));
            }
            let id = new_namespace_id();
            create.registry.put(&id, &title).await.map_err(api_error)?;
            Ok(admin::success(
                json!({"id": id, "title": title, "supports_url_encoding": true}),
            ))
        }
    });

    let remove = namespaces.clone();
    router.route(Method::DELETE, NAMESPACE_PATH, move |request| {
        let remove = remove.clone();
        async move {
            let id = request.param("namespace").unwrap_or_default().to_owned();
            if remove.configured.contains_key(&id) {
                return Err(ApiError::bad_request(
                    kv_codes::INVALID,
                    format!(
                        "namespace {id:?} is declared in [[kv_namespaces]]; remove it from the \
                         configuration instead"
                    ),
                ));
            }
            let namespace = remove.get(&request).await?;
            // Delete the keys first: a crash halfway leaves the namespace listed, and deleting
            // it again finishes the job.
            loop {
                let page = namespace
                    .list(ListOptions::default())
                    .await
                    .map_err(api_error)?;
                if page.keys.is_empty() {
                    break;
                }
                let keys = page.keys.into_iter().map(|key| key.name).collect();
                delete_keys(&namespace, keys).await?;
            }
            remove.registry.delete(&id).await.map_err(api_error)?;
            Ok(admin::success(json!({})))
        }
    });

    let describe = namespaces.clone();
    router.route(Method::GET, NAMESPACE_PATH, move |request| {
        let describe = describe.clone();
        async move {
            describe.get(&request).await?;
            let id = request.param("namespace").unwrap_or_default();
            let all = describe.all().await?;
            let title = all
                .iter()
                .find(|(candidate, _)| candidate == id)
                .map(|(_, title)| title.clone())
                .unwrap_or_default();
            Ok(admin::success(
                json!({"id": id, "title": title, "supports_url_encoding": true}),
            ))
        }
    });

    let bulk_write = namespaces.clone();
    router.route(Method::PUT, BULK_PATH, move |request| {
        let bulk_write = bulk_write.clone();
        async move {
            let namespace = bulk_write.get(&request).await?;
            let pairs: Vec<BulkPair> = request.json().await?;
            bulk_limit(pairs.len(), "write")?;
            // Check every pair before writing any, so a bad one rejects the whole request.
            let now_ms = burrow_runtime::clock::Clock::now_ms(&SystemClock);
            let mut writes = Vec::with_capacity(pairs.len());
            for (index, pair) in pairs.into_iter().enumerate() {
                let value = if pair.base64 {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(pair.value.as_bytes())
                        .map_err(|error| {
                            ApiError::bad_request(
                                kv_codes::INVALID,
                                format!("[{index}].value is not valid base64: {error}"),
                            )
                        })?
                } else {
                    pair.value.into_bytes()
                };
                let checked = check(burrow_services::kv::error::check_key(
                    burrow_services::kv::Method::Put,
                    &pair.key,
                ))
                .and_then(|()| check(burrow_services::kv::error::check_value(&value)))
                .and_then(|()| {
                    check(burrow_services::kv::error::resolve_expiration(
                        pair.expiration,
                        pair.expiration_ttl,
                        now_ms,
                    ))
                })
                .and_then(|_| match &pair.metadata {
                    Some(metadata) => check(burrow_services::kv::error::check_metadata(
                        &metadata.to_string(),
                    )),
                    None => Ok(()),
                });
                if let Err(error) = checked {
                    return Err(ApiError::bad_request(
                        kv_codes::INVALID,
                        format!(
                            "[{index}] (key {:?}): {}",
                            pair.key, error.errors[0].message
                        ),
                    ));
                }
                let options = PutOptions {
                    expiration: pair.expiration,
                    expiration_ttl: pair.expiration_ttl,
                    metadata: pair.metadata,
                };
                writes.push((pair.key, value, options));
            }
            let total = writes.len();
            for (key, value, options) in writes {
                namespace
                    .put_with(&key, &value, options)
                    .await
                    .map_err(api_error)?;
            }
            Ok(admin::success(bulk_result(total, Vec::new())))
        }
    });

    for (method, path) in [
        (Method::POST, BULK_DELETE_PATH),
        (Method::DELETE, BULK_PATH),
    ] {
        let bulk_delete = namespaces.clone();
        router.route(method, path, move |request| {
            let bulk_delete = bulk_delete.clone();
            async move {
                let namespace = bulk_delete.get(&request).await?;
                let keys: Vec<String> = request.json().await?;
                bulk_limit(keys.len(), "delete")?;
                for (index, key) in keys.iter().enumerate() {
                    check(burrow_services::kv::error::check_key(
                        burrow_services::kv::Method::Delete,
                        key,
                    ))
                    .map_err(|error| {
                        ApiError::bad_request(
                            kv_codes::INVALID,
                            format!("[{index}] (key {key:?}): {}", error.errors[0].message),
                        )
                    })?;
                }
                let deleted = delete_keys(&namespace, keys).await?;
                Ok(admin::success(bulk_result(deleted, Vec::new())))
            }
        });
    }

    let get = namespaces.clone();
    router.route(Method::GET, VALUE_PATH, move |request| {
        let get = get.clone();
        async move {
            let namespace = get.get(&request).await?;
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
        let metadata = metadata.clone();
        async move {
            let namespace = metadata.get(&request).await?;
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
        let put = put.clone();
        async move {
            let namespace = put.get(&request).await?;
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
        let delete = delete.clone();
        async move {
            let namespace = delete.get(&request).await?;
            let key = request.param("key").unwrap_or_default();
            namespace.delete(key).await.map_err(api_error)?;
            Ok(admin::success(json!({})))
        }
    });

    let keys = namespaces;
    router.route(Method::GET, KEYS_PATH, move |request| {
        let keys = keys.clone();
        async move {
            let namespace = keys.get(&request).await?;
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
