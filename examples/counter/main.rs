//! The counter example: a Durable Object per name, its count in SQL, reached over typed RPC.
//!
//! - `GET /` → the `GREETING` var and the routes;
//! - `POST /counter/:name[?by=N]` → `increment(N)` (default 1) on object `name`, answers the count;
//! - `GET /counter/:name` → `get()`, the count;
//! - `DELETE /counter/:name` → forwards the request to the object's `fetch`, which deletes its
//!   storage.
//!
//! Run it from the repository root with `cargo run --release --example counter`.

use burrow::{
    App, DurableObject, Env, Method, ObjectContext, Request, Response, Result, StatusCode,
};

/// One counter. Its state lives in storage only, so hibernation loses nothing.
pub struct Counter {
    ctx: ObjectContext,
}

impl DurableObject for Counter {
    fn new(ctx: ObjectContext, _env: Env) -> Self {
        Counter { ctx }
    }

    /// Reached through `Stub::fetch`: `DELETE` removes everything the object stored.
    async fn fetch(&self, request: Request) -> Result<Response> {
        if request.method() != Method::DELETE {
            return Ok(Response::error(
                "use DELETE",
                StatusCode::METHOD_NOT_ALLOWED,
            ));
        }
        self.ctx.storage().delete_all()?;
        Ok(Response::text("deleted"))
    }
}

impl Counter {
    fn ensure_table(&self) -> Result<()> {
        self.ctx.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS counter(id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
            (),
        )?;
        Ok(())
    }

    async fn increment(&self, by: i64) -> Result<i64> {
        self.ensure_table()?;
        self.ctx
            .storage()
            .sql()
            .exec(
                "INSERT INTO counter(id, n) VALUES (1, ?1) \
                 ON CONFLICT(id) DO UPDATE SET n = n + ?1 RETURNING n",
                (by,),
            )?
            .one()?
            .get("n")
    }

    async fn get(&self) -> Result<i64> {
        self.ensure_table()?;
        let rows = self
            .ctx
            .storage()
            .sql()
            .exec("SELECT n FROM counter WHERE id = 1", ())?;
        match rows.first() {
            Some(row) => row.get("n"),
            None => Ok(0),
        }
    }
}

burrow::rpc! {
    /// What a `Stub<Counter>` can do.
    pub trait CounterRpc for Counter {
        async fn increment(&self, by: i64) -> Result<i64>;
        async fn get(&self) -> Result<i64>;
    }
}

async fn fetch(request: Request, env: Env) -> Result<Response> {
    if request.path() == "/" {
        let greeting = env.var("GREETING").unwrap_or_default();
        return Ok(Response::text(format!(
            "{greeting}\nPOST /counter/:name[?by=N], GET /counter/:name, DELETE /counter/:name\n"
        )));
    }
    let Some(name) = request.path().strip_prefix("/counter/") else {
        return Ok(Response::error("not found", StatusCode::NOT_FOUND));
    };
    if name.is_empty() || name.contains('/') {
        return Ok(Response::error("not found", StatusCode::NOT_FOUND));
    }
    let counter = env.durable_object::<Counter>("COUNTER")?.get_by_name(name);
    match *request.method() {
        Method::POST => {
            let by = match request.query("by") {
                None => 1,
                Some(text) => text.parse::<i64>().map_err(|_| {
                    burrow::Error::new(format!("?by={text}: not an integer"))
                        .with_status(StatusCode::BAD_REQUEST)
                })?,
            };
            Ok(Response::text(counter.increment(by).await?.to_string()))
        }
        Method::GET => Ok(Response::text(counter.get().await?.to_string())),
        Method::DELETE => counter.fetch(request).await,
        _ => Ok(Response::error(
            "method not allowed",
            StatusCode::METHOD_NOT_ALLOWED,
        )),
    }
}

fn main() -> std::process::ExitCode {
    App::new()
        .default_config(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/counter/wrangler.toml"
        ))
        .durable_object::<Counter>("COUNTER")
        .fetch(fetch)
        .serve_from_args()
}
