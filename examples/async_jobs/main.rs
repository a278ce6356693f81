//! The async-job pattern: `POST /jobs` creates one Durable Object per job (a new unique ID); the
//! object records the job, schedules its alarm for "now" and returns at once, so the client gets
//! 202 with the job's id. The alarm runs the job (here: counting the primes below `n`) and stores
//! the status and result in SQL. `GET /jobs/:id` polls `{"status", "result"}`.
//!
//! If the process stops while a job is queued or running, the alarm is still stored: it fires
//! again after the restart (alarms are at-least-once), so every accepted job finishes.
//!
//! Run it from the repository root with `cargo run --release --example async_jobs`.

use burrow::{AlarmInfo, App, DurableObject, Env, ObjectContext, Request, Response, Result};
use burrow::{Method, StatusCode};
use serde::{Deserialize, Serialize};

/// What a client submits.
#[derive(Debug, Deserialize)]
struct Submit {
    /// Count the primes below this.
    n: u64,
}

/// What a poll returns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobStatus {
    /// `queued`, `running`, `done` or `failed`.
    status: String,
    /// The number of primes below `n`, once done.
    result: Option<u64>,
    /// Why it failed, if it did.
    error: Option<String>,
    /// How many times the alarm ran it (more than 1 after a retry or a restart).
    attempts: u32,
}

/// One job.
pub struct Job {
    ctx: ObjectContext,
}

impl DurableObject for Job {
    fn new(ctx: ObjectContext, _env: Env) -> Self {
        Job { ctx }
    }

    /// Runs the job. An error here would be retried by the runtime with backoff.
    async fn alarm(&self, info: AlarmInfo) -> Result<()> {
        let sql = self.ctx.storage().sql();
        let Some(row) = sql
            .exec(
                "SELECT n FROM job WHERE status IN ('queued', 'running')",
                (),
            )?
            .first()
            .map(|row| row.get::<u64>("n"))
        else {
            return Ok(());
        };
        let n = row?;
        sql.exec(
            "UPDATE job SET status = 'running', attempts = attempts + 1",
            (),
        )?;
        // Let the "running" status commit (and be polled) before the work starts.
        self.ctx.storage().sync().await?;
        let primes = count_primes_below(n).await;
        sql.exec(
            "UPDATE job SET status = 'done', result = ?1",
            (i64::try_from(primes)?,),
        )?;
        if info.is_retry {
            tracing::info!(retry_count = info.retry_count, "job finished on a retry");
        }
        Ok(())
    }
}

impl Job {
    /// Records the job and schedules it; the caller answers 202 without waiting for the work.
    async fn start(&self, n: u64) -> Result<JobStatus> {
        let sql = self.ctx.storage().sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS job(
                n INTEGER NOT NULL,
                status TEXT NOT NULL,
                result INTEGER,
                error TEXT,
                attempts INTEGER NOT NULL DEFAULT 0
            )",
            (),
        )?;
        if sql.exec("SELECT 1 FROM job", ())?.is_empty() {
            sql.exec(
                "INSERT INTO job(n, status) VALUES (?1, 'queued')",
                (i64::try_from(n)?,),
            )?;
            // "Now": the alarm fires as soon as this turn's writes are durable.
            self.ctx.storage().set_alarm(self.ctx.now_ms())?;
        }
        self.status()
            .await?
            .ok_or_else(|| burrow::Error::new("the job vanished"))
    }

    /// The job's status, or `None` if this object holds no job.
    async fn status(&self) -> Result<Option<JobStatus>> {
        let sql = self.ctx.storage().sql();
        let exists = sql.exec(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'job'",
            (),
        )?;
        if exists.is_empty() {
            return Ok(None);
        }
        let rows = sql.exec("SELECT status, result, error, attempts FROM job", ())?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(JobStatus {
            status: row.get("status")?,
            result: row.get("result")?,
            error: row.get("error")?,
            attempts: row.get("attempts")?,
        }))
    }
}

burrow::rpc! {
    /// What a `Stub<Job>` can do.
    pub trait JobRpc for Job {
        async fn start(&self, n: u64) -> Result<JobStatus>;
        async fn status(&self) -> Result<Option<JobStatus>>;
    }
}

/// The simulated work: a sieve, in slices, yielding between them so that polls of this same
/// object are answered while it runs.
async fn count_primes_below(n: u64) -> u64 {
    const SLICE: usize = 1 << 20;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n < 3 {
        return 0;
    }
    let mut composite = vec![false; n];
    let mut count = 0;
    let mut start = 2;
    while start < n {
        let end = (start + SLICE).min(n);
        for candidate in start..end {
            if composite[candidate] {
                continue;
            }
            count += 1;
            let mut multiple = candidate.saturating_mul(candidate);
            while multiple < n {
                composite[multiple] = true;
                multiple += candidate;
            }
        }
        start = end;
        tokio::task::yield_now().await;
    }
    count
}

async fn fetch(request: Request, env: Env) -> Result<Response> {
    let jobs = env.durable_object::<Job>("JOB")?;
    let path = request.path().to_owned();
    match (request.method().clone(), path.as_str()) {
        (Method::POST, "/jobs") => {
            let max_n = env.var_json::<u64>("MAX_N")?.unwrap_or(u64::MAX);
            let submit: Submit = request.json().await?;
            if submit.n > max_n {
                return Ok(Response::error(
                    format!("n is at most {max_n}"),
                    StatusCode::BAD_REQUEST,
                ));
            }
            let id = jobs.new_unique_id();
            let status = jobs.get(id.clone()).start(submit.n).await?;
            Ok(Response::json(&serde_json::json!({
                "id": id.to_string(),
                "status": status.status,
            }))?
            .with_status(StatusCode::ACCEPTED))
        }
        (Method::GET, path) if path.starts_with("/jobs/") => {
            let text = &path["/jobs/".len()..];
            let id = jobs
                .id_from_string(text)
                .map_err(|error| error.with_status(StatusCode::BAD_REQUEST))?;
            match jobs.get(id).status().await? {
                Some(status) => Ok(Response::json(&status)?),
                None => Ok(Response::error("no such job", StatusCode::NOT_FOUND)),
            }
        }
        _ => Ok(Response::error(
            "POST /jobs {\"n\": N}, GET /jobs/:id",
            StatusCode::NOT_FOUND,
        )),
    }
}

fn main() -> std::process::ExitCode {
    App::new()
        .default_config(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/async_jobs/wrangler.toml"
        ))
        .durable_object::<Job>("JOB")
        .fetch(fetch)
        .serve_from_args()
}
