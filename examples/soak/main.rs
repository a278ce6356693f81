//! The crash-soak workload that `burrow-bench soak` drives and kills: every durable feature, each
//! shaped so that a verifying client can tell a lost or torn write from outside.
//!
//! - `POST /do/:name?seq=N` → object `name` writes `N` under each of its `KEYS_PER_TRANSACTION`
//!   keys in one turn (one transaction), answers `N`. `GET /do/:name` → the keys' values as a
//!   JSON array: all equal unless a transaction was partially applied.
//! - `PUT /kv/:key` (body: the value) and `GET /kv/:key`: Workers KV.
//! - `POST /queue/:id` sends the text `id` to the `EVENTS` queue. The consumer (and the
//!   dead-letter queue's) records each id in one of the `Sink` objects before acking;
//!   `GET /sink/:shard` lists the ids a sink holds.
//! - `POST /flow/:id` creates workflow instance `id` (three steps with sleeps between them);
//!   `GET /flow/:id` → its status and output. Each step callback appends
//!   `<instance> <step> <token>` to `SIDE_EFFECTS_FILE` (one write, then fsync) and returns the
//!   fresh token, so the output names the run whose result was recorded: a line for the same
//!   step after that one is a step run again after its result was durable.
//! - `GET /stats` → `{"duplicate_activations": N}`: times an `Account` instance was constructed
//!   while another instance of the same object was still alive in this process.
//! - `GET /hello` → `ok`.
//!
//! Run it by hand from the repository root with `cargo run --release --example soak`.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use burrow::queue::{Body, MessageBatch, SendOptions};
use burrow::workflow::{CreateOptions, WorkflowDuration};
use burrow::{
    App, DurableObject, Env, Method, ObjectContext, Request, Response, Result, StatusCode,
    WorkflowEntrypoint, WorkflowError, WorkflowEvent, WorkflowStep,
};
use serde_json::json;

/// Sink objects the consumer spreads received ids over.
const SINKS: u64 = 8;

/// Object ids with a live `Account` instance in this process.
static LIVE_ACCOUNTS: Mutex<Option<HashSet<String>>> = Mutex::new(None);
static DUPLICATE_ACTIVATIONS: AtomicU64 = AtomicU64::new(0);
/// Makes step tokens unique within the process (the pid makes them unique across restarts).
static TOKENS: AtomicU64 = AtomicU64::new(0);

/// One account: a few keys written together.
pub struct Account {
    ctx: ObjectContext,
    keys: usize,
    name: String,
}

impl DurableObject for Account {
    fn new(ctx: ObjectContext, env: Env) -> Self {
        let name = ctx.id().to_string();
        let mut live = LIVE_ACCOUNTS
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if !live.get_or_insert_with(HashSet::new).insert(name.clone()) {
            DUPLICATE_ACTIVATIONS.fetch_add(1, Ordering::Relaxed);
        }
        let keys = env
            .var_json::<usize>("KEYS_PER_TRANSACTION")
            .ok()
            .flatten()
            .unwrap_or(4);
        Account { ctx, keys, name }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let mut live = LIVE_ACCOUNTS
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(live) = live.as_mut() {
            live.remove(&self.name);
        }
    }
}

impl Account {
    /// Writes `seq` under every key: no await in between, so one turn, one commit.
    async fn write(&self, seq: u64) -> Result<u64> {
        let storage = self.ctx.storage();
        for key in 0..self.keys {
            storage.put(&format!("k{key}"), &seq)?;
        }
        Ok(seq)
    }

    async fn read(&self) -> Result<Vec<Option<u64>>> {
        let storage = self.ctx.storage();
        (0..self.keys)
            .map(|key| storage.get::<u64>(&format!("k{key}")))
            .collect()
    }
}

burrow::rpc! {
    /// What a `Stub<Account>` can do.
    pub trait AccountRpc for Account {
        async fn write(&self, seq: u64) -> Result<u64>;
        async fn read(&self) -> Result<Vec<Option<u64>>>;
    }
}

/// Where the queue consumers record what they received.
pub struct Sink {
    ctx: ObjectContext,
}

impl DurableObject for Sink {
    fn new(ctx: ObjectContext, _env: Env) -> Self {
        Sink { ctx }
    }
}

impl Sink {
    fn ensure_table(&self) -> Result<()> {
        self.ctx.storage().sql().exec(
            "CREATE TABLE IF NOT EXISTS received(id INTEGER PRIMARY KEY, deliveries INTEGER NOT NULL)",
            (),
        )?;
        Ok(())
    }

    async fn record(&self, ids: Vec<u64>) -> Result<()> {
        self.ensure_table()?;
        let sql = self.ctx.storage().sql();
        for id in ids {
            sql.exec(
                "INSERT INTO received(id, deliveries) VALUES (?1, 1) \
                 ON CONFLICT(id) DO UPDATE SET deliveries = deliveries + 1",
                (i64::try_from(id)?,),
            )?;
        }
        Ok(())
    }

    async fn ids(&self) -> Result<Vec<u64>> {
        self.ensure_table()?;
        let rows = self
            .ctx
            .storage()
            .sql()
            .exec("SELECT id FROM received ORDER BY id", ())?;
        rows.iter().map(|row| row.get::<u64>("id")).collect()
    }
}

burrow::rpc! {
    /// What a `Stub<Sink>` can do.
    pub trait SinkRpc for Sink {
        async fn record(&self, ids: Vec<u64>) -> Result<()>;
        async fn ids(&self) -> Result<Vec<u64>>;
    }
}

/// Three steps with sleeps between them; each step's result is the token of the run recorded.
struct Flow {
    env: Env,
}

/// Appends one side-effect line and makes it durable; returns the line's token.
fn side_effect(env: &Env, instance: &str, step: &str) -> Result<String, WorkflowError> {
    let path = env
        .var("SIDE_EFFECTS_FILE")
        .unwrap_or_else(|| "side-effects.log".to_owned());
    let token = format!(
        "{}-{}",
        std::process::id(),
        TOKENS.fetch_add(1, Ordering::Relaxed)
    );
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    // One write per line, so a kill never leaves half of one.
    file.write_all(format!("{instance} {step} {token}\n").as_bytes())?;
    file.sync_data()?;
    Ok(token)
}

impl WorkflowEntrypoint for Flow {
    type Params = String;
    /// The recorded token of each step.
    type Output = Vec<String>;

    fn new(env: Env) -> Self {
        Flow { env }
    }

    async fn run(
        &self,
        event: WorkflowEvent<String>,
        step: &WorkflowStep,
    ) -> Result<Vec<String>, WorkflowError> {
        let env = &self.env;
        let instance = &event.payload;
        let pause = WorkflowDuration::from(
            env.var("STEP_SLEEP")
                .unwrap_or_else(|| "1 second".to_owned()),
        );
        let mut tokens = Vec::new();
        for (index, name) in ["a", "b", "c"].into_iter().enumerate() {
            if index > 0 {
                step.sleep(&format!("pause-{name}"), pause.clone()).await?;
            }
            tokens.push(
                step.do_(name, async |_| side_effect(env, instance, name))
                    .await?,
            );
        }
        Ok(tokens)
    }
}

async fn consume(batch: MessageBatch, env: Env) -> Result<()> {
    let sinks = env.durable_object::<Sink>("SINK")?;
    let mut by_sink: Vec<Vec<u64>> = vec![Vec::new(); SINKS as usize];
    for message in batch.messages() {
        let Some(id) = message
            .body()
            .as_text()
            .and_then(|text| text.parse::<u64>().ok())
        else {
            // Not ours: nothing to record.
            continue;
        };
        by_sink[(id % SINKS) as usize].push(id);
    }
    for (shard, ids) in by_sink.into_iter().enumerate() {
        if !ids.is_empty() {
            sinks
                .get(sinks.id_from_name(&format!("sink-{shard}")))
                .record(ids)
                .await?;
        }
    }
    // Resolving acks every message: each is recorded durably by now.
    Ok(())
}

fn bad_request(message: impl Into<String>) -> Response {
    Response::error(message.into(), StatusCode::BAD_REQUEST)
}

async fn fetch(request: Request, env: Env) -> Result<Response> {
    let path = request.path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (request.method().clone(), segments.as_slice()) {
        (Method::GET, ["hello"]) => Ok(Response::text("ok")),
        (Method::GET, ["stats"]) => Response::json(&json!({
            "duplicate_activations": DUPLICATE_ACTIVATIONS.load(Ordering::Relaxed),
        })),
        (Method::POST, ["do", name]) => {
            let Some(seq) = request
                .query("seq")
                .and_then(|value| value.parse::<u64>().ok())
            else {
                return Ok(bad_request("POST /do/:name?seq=N"));
            };
            let accounts = env.durable_object::<Account>("ACCOUNT")?;
            let seq = accounts.get(accounts.id_from_name(name)).write(seq).await?;
            Ok(Response::text(seq.to_string()))
        }
        (Method::GET, ["do", name]) => {
            let accounts = env.durable_object::<Account>("ACCOUNT")?;
            let values = accounts.get(accounts.id_from_name(name)).read().await?;
            Response::json(&values)
        }
        (Method::PUT, ["kv", key]) => {
            let key = (*key).to_owned();
            let value = request.text().await?;
            env.kv("KV")?.put(&key, value.as_str()).await?;
            Ok(Response::text("ok"))
        }
        (Method::GET, ["kv", key]) => match env.kv("KV")?.get_text(key).await? {
            Some(value) => Ok(Response::text(value)),
            None => Ok(Response::error("no such key", StatusCode::NOT_FOUND)),
        },
        (Method::POST, ["queue", id]) => {
            let Ok(id) = id.parse::<u64>() else {
                return Ok(bad_request("POST /queue/:id with a numeric id"));
            };
            env.queue("EVENTS")?
                .send(Body::text(id.to_string()), SendOptions::default())
                .await?;
            Ok(Response::text("sent"))
        }
        (Method::GET, ["sink", shard]) => {
            let sinks = env.durable_object::<Sink>("SINK")?;
            let ids = sinks
                .get(sinks.id_from_name(&format!("sink-{shard}")))
                .ids()
                .await?;
            Response::json(&ids)
        }
        (Method::POST, ["flow", id]) => {
            let id = (*id).to_owned();
            env.workflow("FLOW")?
                .create(CreateOptions::new(Some(&id), &id)?)
                .await?;
            Ok(Response::text("created").with_status(StatusCode::CREATED))
        }
        (Method::GET, ["flow", id]) => {
            let instance = env.workflow("FLOW")?.get(id).await?;
            let status = instance.status().await?;
            Response::json(&json!({
                "status": status.status,
                "output": status.output,
            }))
        }
        _ => Ok(Response::error("not found", StatusCode::NOT_FOUND)),
    }
}

fn main() -> std::process::ExitCode {
    App::new()
        .default_config(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/soak/wrangler.toml"
        ))
        .durable_object::<Account>("ACCOUNT")
        .durable_object::<Sink>("SINK")
        .workflow::<Flow>("FLOW")
        .queue(consume)
        .fetch(fetch)
        .serve_from_args()
}
