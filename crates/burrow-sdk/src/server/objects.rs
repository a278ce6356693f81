//! The Durable Objects endpoints of the admin API: namespaces list
//! (`GET …/workers/durable_objects/namespaces`) and the objects of one namespace
//! (`GET …/durable_objects/namespaces/{id}/objects`, paginated by cursor), in Cloudflare's
//! shapes. A namespace's id is its 32-hex-digit id in the runtime; objects are those with a
//! database on disk (`hasStoredData: true`), listed by the storage engine in id order.
//!
//! Beyond Cloudflare, for debugging: `POST …/namespaces/{id}/objects/{object}/query` with
//! `{"sql": "…"}` runs read-only SQL on one object's database (by its 64-hex-digit id, or by name)
//! and answers in D1's query shape (`[{results, success, meta}]`). The object's instance is not
//! constructed; the query follows `ctx.storage.sql.exec`'s rules, runs between the object's
//! events, and whatever it would change is rolled back (a writing query is refused).

use std::sync::Arc;

use burrow_config::LoadedConfig;
use burrow_http::admin::envelope::codes;
use burrow_http::admin::{self, AdminRouter, ApiError, Page};
use burrow_runtime::Runtime;
use http::{Method, StatusCode};
use serde_json::{Value, json};

const NAMESPACES_PATH: &str = "/client/v4/accounts/:account/workers/durable_objects/namespaces";
const OBJECTS_PATH: &str =
    "/client/v4/accounts/:account/workers/durable_objects/namespaces/:namespace/objects";
const QUERY_PATH: &str = "/client/v4/accounts/:account/workers/durable_objects/namespaces/:namespace/objects/:object/query";

/// Rows a debugging query returns at most; more are cut and `meta.truncated` says so.
const MAX_QUERY_ROWS: usize = 1_000;

/// The body of a query.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    sql: String,
}

fn sql_value(value: &burrow_storage::sql::Value) -> Value {
    use base64::Engine as _;
    match value {
        burrow_storage::sql::Value::Null => Value::Null,
        burrow_storage::sql::Value::Integer(number) => json!(number),
        burrow_storage::sql::Value::Real(number) => json!(number),
        burrow_storage::sql::Value::Text(text) => json!(text),
        burrow_storage::sql::Value::Blob(bytes) => {
            json!(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
    }
}

/// Cloudflare's bounds on `limit` for the objects list (default 1,000).
const MIN_LIMIT: usize = 10;
const MAX_LIMIT: usize = 10_000;
const DEFAULT_LIMIT: usize = 1_000;

/// Burrow's own (Cloudflare documents none): the namespace id is not one of this server's.
const NAMESPACE_NOT_FOUND: u32 = 99_404;

fn namespace_not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        NAMESPACE_NOT_FOUND,
        format!(
            "Durable Object namespace {id:?} not found: it is not the id of a class bound in \
             [[durable_objects.bindings]]"
        ),
    )
}

/// One user namespace: Cloudflare's namespace object.
fn namespaces(loaded: &LoadedConfig, runtime: &Runtime) -> Vec<Value> {
    let mut seen = std::collections::BTreeSet::new();
    let mut result = Vec::new();
    for worker in loaded.workers() {
        for binding in &worker.config.durable_objects {
            if binding.script_name.is_some() || !seen.insert(binding.class_name.clone()) {
                continue;
            }
            let Some(namespace) = runtime.namespace(&binding.class_name) else {
                continue;
            };
            result.push(json!({
                "id": namespace.id().to_string(),
                "name": format!("{}_{}", worker.name(), binding.class_name),
                "script": worker.name(),
                "class": binding.class_name,
                "use_sqlite": true,
            }));
        }
    }
    result
}

/// Adds the Durable Objects routes.
pub(super) fn admin_routes(router: &mut AdminRouter, loaded: &LoadedConfig, runtime: &Runtime) {
    let listed: Arc<Vec<Value>> = Arc::new(namespaces(loaded, runtime));
    let all = Arc::clone(&listed);
    router.route(Method::GET, NAMESPACES_PATH, move |request| {
        let all = Arc::clone(&all);
        async move {
            let page = Page::from_request(&request, 20, 1000)?;
            let (result, info) = page.slice(all.to_vec());
            Ok(admin::success_with_info(result, Some(info)))
        }
    });

    let runtime_for_query = runtime.clone();
    let known = Arc::clone(&listed);
    router.route(Method::POST, QUERY_PATH, move |request| {
        let runtime = runtime_for_query.clone();
        let known = Arc::clone(&known);
        async move {
            let namespace_id = request.param("namespace").unwrap_or_default().to_owned();
            let class = known
                .iter()
                .find(|namespace| namespace["id"] == namespace_id.as_str())
                .and_then(|namespace| namespace["class"].as_str())
                .map(str::to_owned)
                .ok_or_else(|| namespace_not_found(&namespace_id))?;
            let namespace = runtime
                .namespace(&class)
                .ok_or_else(|| namespace_not_found(&namespace_id))?;
            let object = request.param("object").unwrap_or_default().to_owned();
            let id = if object.len() == 64 && object.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                namespace.id_from_string(&object).map_err(|error| {
                    ApiError::bad_request(codes::INVALID_QUERY, format!("object id: {error}"))
                })?
            } else {
                namespace.id_from_name(&object)
            };
            let body: Query = request.json().await?;
            if body.sql.trim().is_empty() {
                return Err(ApiError::malformed_json("sql: must not be empty"));
            }
            // Querying must not create the object: only existing databases are opened.
            let engine = runtime.engine().clone();
            let (namespace_key, object_key) = (namespace_id.clone(), id.to_string());
            let exists =
                tokio::task::spawn_blocking(move || engine.has_object(&namespace_key, &object_key))
                    .await
                    .map_err(|error| {
                        ApiError::internal(format!("the object lookup failed: {error}"))
                    })?
                    .map_err(|error| {
                        ApiError::internal(format!("cannot look the object up: {error}"))
                    })?;
            if !exists {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    NAMESPACE_NOT_FOUND,
                    format!("object {object:?} has no stored data in namespace {namespace_id}"),
                ));
            }
            let cursor = namespace
                .get(id)
                .read_only_sql(&body.sql)
                .await
                .map_err(|error| {
                    if error.remote {
                        ApiError::bad_request(codes::INVALID_QUERY, error.message)
                    } else {
                        ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            codes::INTERNAL,
                            error.message,
                        )
                    }
                })?;
            let truncated = cursor.rows.len() > MAX_QUERY_ROWS;
            let results: Vec<Value> = cursor
                .rows
                .iter()
                .take(MAX_QUERY_ROWS)
                .map(|row| {
                    let mut object = serde_json::Map::new();
                    for (name, value) in cursor.column_names.iter().zip(row) {
                        object.insert(name.clone(), sql_value(value));
                    }
                    Value::Object(object)
                })
                .collect();
            Ok(admin::success(json!([{
                "results": results,
                "success": true,
                "meta": {
                    "columns": cursor.column_names,
                    "rows_read": cursor.rows_read,
                    "rows_written": cursor.rows_written,
                    "truncated": truncated,
                },
            }])))
        }
    });

    let engine = runtime.engine().clone();
    router.route(Method::GET, OBJECTS_PATH, move |request| {
        let listed = Arc::clone(&listed);
        let engine = engine.clone();
        async move {
            let id = request.param("namespace").unwrap_or_default().to_owned();
            if !listed
                .iter()
                .any(|namespace| namespace["id"] == id.as_str())
            {
                return Err(namespace_not_found(&id));
            }
            let limit = match request.query("limit").filter(|text| !text.is_empty()) {
                None => DEFAULT_LIMIT,
                Some(text) => text
                    .parse::<usize>()
                    .ok()
                    .filter(|limit| (MIN_LIMIT..=MAX_LIMIT).contains(limit))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            codes::INVALID_QUERY,
                            format!(
                                "limit must be an integer from {MIN_LIMIT} to {MAX_LIMIT}, not \
                                 {text:?}"
                            ),
                        )
                    })?,
            };
            // The cursor is the last id of the previous page: 64 hex digits.
            let cursor = request.query("cursor").filter(|text| !text.is_empty());
            if let Some(cursor) = &cursor
                && !(cursor.len() == 64 && cursor.bytes().all(|byte| byte.is_ascii_hexdigit()))
            {
                return Err(ApiError::bad_request(
                    codes::INVALID_QUERY,
                    format!("cursor {cursor:?} is not one this API returned"),
                ));
            }
            // Directory reads: off the shard thread.
            let ids = tokio::task::spawn_blocking(move || {
                engine.list_objects(&id, cursor.as_deref(), limit + 1)
            })
            .await
            .map_err(|error| ApiError::internal(format!("the object listing failed: {error}")))?
            .map_err(|error| ApiError::internal(format!("cannot list objects: {error}")))?;
            let more = ids.len() > limit;
            let ids = &ids[..ids.len().min(limit)];
            let cursor = if more {
                ids.last().cloned().unwrap_or_default()
            } else {
                String::new()
            };
            let result: Vec<Value> = ids
                .iter()
                .map(|id| json!({"id": id, "hasStoredData": true}))
                .collect();
            let info = json!({"count": result.len(), "cursor": cursor});
            Ok(admin::success_with_info(result, Some(info)))
        }
    });
}
