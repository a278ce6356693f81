//! The Worker `burrow-bench kv` drives: a KV namespace behind plain HTTP.
//!
//! - `GET /hello` → `ok`;
//! - `PUT /kv/:key` (the body is the value) → `env.kv("BENCH").put(key, body)`, 204 once durable;
//! - `GET /kv/:key` → the value, or 404.
//!
//! Run it from the repository root:
//! `cargo run --release --example kv_bench -- --port 8787 --persist-to /tmp/kv-bench-data`.

use burrow::{App, Env, Method, Request, Response, Result, StatusCode};

async fn fetch(request: Request, env: Env) -> Result<Response> {
    let path = request.path();
    if path == "/hello" {
        return Ok(Response::text("ok"));
    }
    let Some(key) = path.strip_prefix("/kv/").map(str::to_owned) else {
        return Ok(Response::error("not found", StatusCode::NOT_FOUND));
    };
    let kv = env.kv("BENCH")?;
    match request.method().clone() {
        Method::GET => Ok(match kv.get(&key).await? {
            Some(value) => Response::new(value),
            None => Response::error("no such key", StatusCode::NOT_FOUND),
        }),
        Method::PUT => {
            let value = request.bytes().await?;
            kv.put(&key, &value).await?;
            Ok(Response::empty().with_status(StatusCode::NO_CONTENT))
        }
        _ => Ok(Response::error(
            "GET or PUT",
            StatusCode::METHOD_NOT_ALLOWED,
        )),
    }
}

fn main() -> std::process::ExitCode {
    App::new()
        .default_config(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/kv_bench/wrangler.toml"
        ))
        .fetch(fetch)
        .serve_from_args()
}
