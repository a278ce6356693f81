//! Burrow's Rust SDK: write Durable Object classes and a Worker in Rust, and serve them with
//! Burrow's runtime, storage and HTTP ingress. (The package is `burrow-sdk`; the crate is
//! `burrow`.)
//!
//! - A class implements [`DurableObject`] (constructor, optional `fetch` and `alarm`) and
//!   declares its typed RPC methods with [`rpc!`]. Handlers take `&self`: an instance runs on one
//!   shard thread, so state that changes lives in `Cell`/`RefCell` fields or in storage.
//! - [`ObjectContext::storage`] gives the SQL API ([`storage::Sql::exec`]), key-value storage with
//!   serde values, and the alarm. Storage calls are synchronous; writes made without an `.await`
//!   between them commit atomically, and no reply leaves the object before they are durable.
//! - [`App`] binds classes to the `[[durable_objects.bindings]]` of `wrangler.toml`, adds the
//!   Worker's `fetch` handler, and serves: [`App::serve_from_args`] makes the program take the
//!   same flags as `burrow serve` and read the same `wrangler.toml` (migrations, vars, secrets from
//!   `.dev.vars`, `[burrow]` settings).
//!
//! ```no_run
//! use burrow::{App, DurableObject, Env, ObjectContext, Request, Response, Result, StatusCode};
//!
//! pub struct Counter {
//!     ctx: ObjectContext,
//! }
//!
//! impl DurableObject for Counter {
//!     fn new(ctx: ObjectContext, _env: Env) -> Self {
//!         // Storage calls are synchronous, so the constructor can prepare the schema.
//!         ctx.storage()
//!             .sql()
//!             .exec("CREATE TABLE IF NOT EXISTS counter(id INTEGER PRIMARY KEY, n INTEGER)", ())
//!             .expect("the schema is valid");
//!         Counter { ctx }
//!     }
//! }
//!
//! impl Counter {
//!     async fn increment(&self, by: i64) -> Result<i64> {
//!         self.ctx
//!             .storage()
//!             .sql()
//!             .exec(
//!                 "INSERT INTO counter VALUES (1, ?1) \
//!                  ON CONFLICT(id) DO UPDATE SET n = n + ?1 RETURNING n",
//!                 (by,),
//!             )?
//!             .one()?
//!             .get("n")
//!     }
//! }
//!
//! burrow::rpc! {
//!     pub trait CounterRpc for Counter {
//!         async fn increment(&self, by: i64) -> Result<i64>;
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     // wrangler.toml binds COUNTER to class "Counter" and has a migration creating it.
//!     App::new()
//!         .durable_object::<Counter>("COUNTER")
//!         .fetch(|request: Request, env: Env| async move {
//!             let Some(name) = request.path().strip_prefix("/counter/") else {
//!                 return Ok(Response::error("not found", StatusCode::NOT_FOUND));
//!             };
//!             let counter = env.durable_object::<Counter>("COUNTER")?.get_by_name(name);
//!             let n = counter.increment(1).await?;
//!             Ok(Response::text(n.to_string()))
//!         })
//!         .serve_from_args()
//! }
//! ```
//!
//! - Hibernatable WebSockets ([`websocket`]): an object accepts an upgrade request with
//!   [`ObjectContext::accept_websocket`] and handles its sockets' events in
//!   [`DurableObject::websocket_message`] / `websocket_close` / `websocket_error`; the sockets stay
//!   open while the object hibernates.
//!
//! The runnable examples are in the repository's `examples/` (`counter`, `async_jobs`, `chat`,
//! `bench_app`): `cargo run --release --example counter`.
//!
//! [`server`] is the start-up path itself (engine, migrations, shards, runtime, listeners,
//! graceful shutdown); the `burrow` binary runs JavaScript projects through the same code.

mod app;
mod cron;
mod env;
mod error;
pub mod fetch;
pub mod kv;
mod object;
pub mod queue;
pub mod rpc;
pub mod server;
pub mod storage;
pub mod websocket;
pub mod workflow;

pub use app::{App, DEFAULT_CONFIG};
pub use cron::ScheduledController;
pub use env::{Env, Namespace, Stub};
pub use error::{Error, Result};
pub use fetch::{Body, Request, Response};
pub use object::{AlarmInfo, DurableObject, ObjectContext};
pub use rpc::Rpc;
pub use storage::{ListOptions, Row, Rows, Sql, Storage};
pub use websocket::WebSocket;
pub use workflow::{WorkflowEntrypoint, WorkflowError, WorkflowEvent, WorkflowStep};

/// The error the runtime carries across a stub (generated RPC code uses it).
pub use burrow_runtime::ObjectError;
/// Durable Object IDs (`id_from_name`, `new_unique_id`, `id_from_string` give one).
pub use burrow_runtime::id::ObjectId;
/// SQL values (parameters and columns).
pub use burrow_storage::sql::Value;
/// The `http` crate, for headers and methods.
pub use http;
pub use http::{Method, StatusCode};
