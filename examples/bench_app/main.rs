//! The benchmark app (`burrow-bench objects` drives it; bench/workerd/worker.js is the same app for
//! workerd):
//!
//! - `GET /hello` → `ok` (no object);
//! - `POST /do/counter?name=X` → object `id_from_name(X)` runs
//!   `INSERT INTO counter(id, n) VALUES (1, 1) ON CONFLICT(id) DO UPDATE SET n = n + 1 RETURNING n`
//!   and answers `n`;
//! - `POST /do/kvput?name=X` → a KV put of a 100-byte value under a new key (and of that key under
//!   `last`), answers the key;
//! - `GET /do/get?name=X` → a KV get of one key (`last`), answers its value or nothing.
//!
//! Objects are reached over RPC. The hot path logs nothing and allocates little: the name is
//! borrowed from the query string, and the table is created once per activation, lazily, so a
//! wake that only reads (`/do/get`) runs no DDL.
//!
//! Run it from the repository root:
//! `cargo run --release --example bench_app -- --port 8787 --persist-to /tmp/bench-data`.

use std::cell::Cell;
use std::fmt::Write as _;

use burrow::{App, DurableObject, Env, Method, ObjectContext, Request, Response, Result};
use burrow::{Namespace, StatusCode};

/// The value every `kvput` stores.
const VALUE: [u8; 100] = [b'v'; 100];

/// One benchmark object.
pub struct Counter {
    ctx: ObjectContext,
    /// Whether this activation has created the counter table.
    table_ready: Cell<bool>,
    /// Puts by this activation; with the activation's start time it makes each key new.
    puts: Cell<u64>,
    started_ms: i64,
}

impl DurableObject for Counter {
    fn new(ctx: ObjectContext, _env: Env) -> Self {
        let started_ms = ctx.now_ms();
        Counter {
            ctx,
            table_ready: Cell::new(false),
            puts: Cell::new(0),
            started_ms,
        }
    }
}

impl Counter {
    async fn counter(&self) -> Result<i64> {
        let sql = self.ctx.storage().sql();
        if !self.table_ready.get() {
            sql.exec(
                "CREATE TABLE IF NOT EXISTS counter(id INTEGER PRIMARY KEY, n INTEGER)",
                (),
            )?;
            self.table_ready.set(true);
        }
        sql.exec(
            "INSERT INTO counter(id, n) VALUES (1, 1) ON CONFLICT(id) DO UPDATE SET n = n + 1 RETURNING n",
            (),
        )?
        .one()?
        .get("n")
    }

    async fn kvput(&self) -> Result<String> {
        let puts = self.puts.get() + 1;
        self.puts.set(puts);
        let mut key = String::with_capacity(32);
        let _ = write!(key, "key-{}-{puts}", self.started_ms);
        let storage = self.ctx.storage();
        // No await between the puts: they commit together.
        storage.put_bytes(&key, &VALUE)?;
        storage.put_bytes("last", key.as_bytes())?;
        Ok(key)
    }

    async fn get(&self) -> Result<String> {
        let value = self.ctx.storage().get_bytes("last")?;
        Ok(value
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default())
    }
}

burrow::rpc! {
    /// What a `Stub<Counter>` can do.
    pub trait CounterRpc for Counter {
        async fn counter(&self) -> Result<i64>;
        async fn kvput(&self) -> Result<String>;
        async fn get(&self) -> Result<String>;
    }
}

async fn fetch(request: Request, env: Env) -> Result<Response> {
    let path = request.path();
    if path == "/hello" {
        return Ok(Response::text("ok"));
    }
    let Some(action) = path.strip_prefix("/do/") else {
        return Ok(Response::error("not found", StatusCode::NOT_FOUND));
    };
    let Some(name) = request.query("name") else {
        return Ok(Response::error("missing ?name=", StatusCode::BAD_REQUEST));
    };
    let counters: Namespace<Counter> = env.durable_object("COUNTER")?;
    let stub = counters.get_by_name(&name);
    let body = match (request.method(), action) {
        (&Method::POST, "counter") => stub.counter().await?.to_string(),
        (&Method::POST, "kvput") => stub.kvput().await?,
        (&Method::GET, "get") => stub.get().await?,
        _ => return Ok(Response::error("not found", StatusCode::NOT_FOUND)),
    };
    Ok(Response::text(body))
}

fn main() -> std::process::ExitCode {
    App::new()
        .default_config(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/bench_app/wrangler.toml"
        ))
        .durable_object::<Counter>("COUNTER")
        .fetch(fetch)
        .serve_from_args()
}
