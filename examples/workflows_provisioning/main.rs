//! Server provisioning from the seeds (Firefly): request compute, wait for it to boot (a polling
//! step: each poll is one attempt, retried every `POLL_INTERVAL`), configure it, register it,
//! tell the requester, then keep it until its lifetime ends or the user asks for a teardown
//! (`wait_for_event` with the lifetime as timeout), and tear it down. Every step resumes where
//! it left off after a crash; the teardown happens even if the server restarts in between.
//!
//! Local stand-ins for the seed's external calls:
//! - Heather (compute): the `Fleet` Durable Object; a server it provisions is ready `BOOT_MS`
//!   milliseconds later.
//! - Grove's service registry: the `REGISTRY` KV namespace (`service:<server>`).
//! - Ivy (email): the outbox file `OUTBOX_FILE`, one JSON line per email.
//!
//! Routes:
//! - `POST /servers` `{"request_id", "user", "spec", "lifetime"?}` → starts provisioning
//!   (instance `provision-<request_id>`).
//! - `POST /servers/:request_id/teardown` → asks for an early teardown.
//! - `GET /servers/:request_id` → the instance's status and output.
//! - `GET /fleet` → every server Heather knows, with its state.
//!
//! Run it from the repository root with `cargo run --release --example workflows_provisioning`.

use std::io::Write;

use burrow::workflow::{Backoff, CreateOptions, StepConfig, WaitOptions, WorkflowDuration};
use burrow::{
    App, DurableObject, Env, Method, ObjectContext, Request, Response, Result, StatusCode,
    WorkflowEntrypoint, WorkflowError, WorkflowEvent, WorkflowStep,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One server, as Heather reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Server {
    id: String,
    spec: String,
    /// `booting`, `ready`, `configured` or `deprovisioned`.
    state: String,
}

/// Heather's stand-in: the fleet of servers, in one Durable Object.
pub struct Fleet {
    ctx: ObjectContext,
    env: Env,
}

impl DurableObject for Fleet {
    fn new(ctx: ObjectContext, env: Env) -> Self {
        ctx.storage()
            .sql()
            .exec(
                "CREATE TABLE IF NOT EXISTS servers(seq INTEGER PRIMARY KEY, spec TEXT NOT NULL, \
                 ready_at INTEGER NOT NULL, state TEXT NOT NULL)",
                (),
            )
            .expect("the schema is valid");
        Fleet { ctx, env }
    }
}

fn server_seq(id: &str) -> Result<i64> {
    id.strip_prefix("srv-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| burrow::Error::new(format!("no server {id}")))
}

impl Fleet {
    async fn provision(&self, spec: String) -> Result<String> {
        let boot_ms: i64 = self
            .env
            .var("BOOT_MS")
            .and_then(|text| text.parse().ok())
            .unwrap_or(1_500);
        let seq: i64 = self
            .ctx
            .storage()
            .sql()
            .exec(
                "INSERT INTO servers(spec, ready_at, state) VALUES (?1, ?2, 'booting') RETURNING seq",
                (spec, self.ctx.now_ms() + boot_ms),
            )?
            .one()?
            .get("seq")?;
        Ok(format!("srv-{seq}"))
    }

    async fn is_ready(&self, id: String) -> Result<bool> {
        let seq = server_seq(&id)?;
        let ready_at: i64 = self
            .ctx
            .storage()
            .sql()
            .exec("SELECT ready_at FROM servers WHERE seq = ?1", (seq,))?
            .one()?
            .get("ready_at")?;
        Ok(self.ctx.now_ms() >= ready_at)
    }

    async fn set_state(&self, id: String, state: String) -> Result<()> {
        self.ctx.storage().sql().exec(
            "UPDATE servers SET state = ?2 WHERE seq = ?1",
            (server_seq(&id)?, state),
        )?;
        Ok(())
    }

    async fn servers(&self) -> Result<Vec<Server>> {
        let rows = self.ctx.storage().sql().exec(
            "SELECT seq, spec, ready_at, state FROM servers ORDER BY seq",
            (),
        )?;
        let now = self.ctx.now_ms();
        rows.iter()
            .map(|row| {
                let state: String = row.get("state")?;
                let ready_at: i64 = row.get("ready_at")?;
                Ok(Server {
                    id: format!("srv-{}", row.get::<i64>("seq")?),
                    spec: row.get("spec")?,
                    state: if state == "booting" && now >= ready_at {
                        "ready".to_owned()
                    } else {
                        state
                    },
                })
            })
            .collect()
    }
}

burrow::rpc! {
    /// Heather's API.
    pub trait FleetRpc for Fleet {
        async fn provision(&self, spec: String) -> Result<String>;
        async fn is_ready(&self, id: String) -> Result<bool>;
        async fn set_state(&self, id: String, state: String) -> Result<()>;
        async fn servers(&self) -> Result<Vec<Server>>;
    }
}

fn heather(env: &Env) -> Result<burrow::Stub<Fleet>> {
    Ok(env
        .durable_object::<Fleet>("HEATHER")?
        .get_by_name("heather"))
}

/// A provisioning request.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Provision {
    request_id: String,
    user: String,
    spec: String,
    /// How long to keep the server (the seed's `durationHours + " hours"`); default the
    /// `SERVER_LIFETIME` var.
    lifetime: Option<String>,
}

fn send_email(env: &Env, to: &str, template: &str, data: Value) -> Result<(), WorkflowError> {
    let path = env
        .var("OUTBOX_FILE")
        .unwrap_or_else(|| "outbox.jsonl".to_owned());
    let line = json!({"to": to, "template": template, "data": data});
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    file.write_all(format!("{line}\n").as_bytes())?; // one write: no half lines
    file.sync_all()?;
    Ok(())
}

struct Provisioning {
    env: Env,
}

impl WorkflowEntrypoint for Provisioning {
    type Params = Provision;
    type Output = Value;

    fn new(env: Env) -> Self {
        Provisioning { env }
    }

    async fn run(
        &self,
        event: WorkflowEvent<Provision>,
        step: &WorkflowStep,
    ) -> Result<Value, WorkflowError> {
        let env = &self.env;
        let request = &event.payload;
        let server: String = step
            .do_("request-compute", async |_| {
                Ok(heather(env)?.provision(request.spec.clone()).await?)
            })
            .await?;

        // Polls until the server has booted: each poll is one attempt, so the wait survives
        // restarts and shows in the history.
        let poll = env
            .var("POLL_INTERVAL")
            .unwrap_or_else(|| "500 ms".to_owned());
        step.do_with(
            "wait-for-boot",
            StepConfig::retries(60, poll, Backoff::Constant),
            async |_| {
                if heather(env)?.is_ready(server.clone()).await? {
                    Ok(())
                } else {
                    Err(WorkflowError::new(format!("{server} is still booting")))
                }
            },
        )
        .await?;

        step.do_("configure-server", async |_| {
            Ok(heather(env)?
                .set_state(server.clone(), "configured".to_owned())
                .await?)
        })
        .await?;
        step.do_("register-service", async |_| {
            let entry = json!({"server": server, "user": request.user, "spec": request.spec});
            env.kv("REGISTRY")?
                .put(&format!("service:{server}"), entry.to_string())
                .await?;
            Ok(())
        })
        .await?;
        step.do_("notify-requester", async |_| {
            send_email(
                env,
                &request.user,
                "server-ready",
                json!({"server": server}),
            )
        })
        .await?;

        // Keep the server until its lifetime ends, or until the user asks for a teardown.
        let lifetime = WorkflowDuration::from(request.lifetime.clone().unwrap_or_else(|| {
            env.var("SERVER_LIFETIME")
                .unwrap_or_else(|| "10 seconds".to_owned())
        }));
        let reason = match step
            .wait_for_event::<Value>(
                "server-lifetime",
                WaitOptions::new("teardown").with_timeout(lifetime),
            )
            .await
        {
            Ok(_) => "requested",
            Err(error) if error.is_timeout() => "expired",
            Err(error) => return Err(error),
        };

        step.do_("teardown", async |_| {
            heather(env)?
                .set_state(server.clone(), "deprovisioned".to_owned())
                .await?;
            env.kv("REGISTRY")?
                .delete(&format!("service:{server}"))
                .await?;
            Ok(())
        })
        .await?;
        step.do_("notify-teardown", async |_| {
            send_email(
                env,
                &request.user,
                "server-torn-down",
                json!({"server": server, "reason": reason}),
            )
        })
        .await?;
        Ok(json!({"server": server, "teardown": reason}))
    }
}

fn not_found() -> Response {
    Response::error("not found", StatusCode::NOT_FOUND)
}

async fn fetch(request: Request, env: Env) -> Result<Response> {
    let path = request.path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let workflow = env.workflow("PROVISIONING")?;
    match (request.method().clone(), segments.as_slice()) {
        (Method::POST, ["servers"]) => {
            let provision: Provision = request.json().await.map_err(|error| {
                burrow::Error::new(format!("expected a provisioning request: {error}"))
                    .with_status(StatusCode::BAD_REQUEST)
            })?;
            let id = format!("provision-{}", provision.request_id);
            let instance = workflow
                .create(CreateOptions::new(Some(&id), &provision)?)
                .await
                .map_err(|error| {
                    burrow::Error::new(error.to_string()).with_status(StatusCode::BAD_REQUEST)
                })?;
            Ok(Response::json(&json!({"id": instance.id()}))?.with_status(StatusCode::CREATED))
        }
        (Method::POST, ["servers", request_id, "teardown"]) => {
            let Ok(instance) = workflow.get(&format!("provision-{request_id}")).await else {
                return Ok(not_found());
            };
            instance
                .send_event("teardown", &json!({"by": "user"}))
                .await?;
            Ok(Response::text("teardown requested"))
        }
        (Method::GET, ["servers", request_id]) => {
            let Ok(instance) = workflow.get(&format!("provision-{request_id}")).await else {
                return Ok(not_found());
            };
            let status = instance.status().await?;
            Response::json(&json!({
                "status": status.status,
                "output": status.output,
                "error": status.error.map(|error| error.to_string()),
            }))
        }
        (Method::GET, ["fleet"]) => Response::json(&heather(&env)?.servers().await?),
        _ => Ok(not_found()),
    }
}

fn main() -> std::process::ExitCode {
    App::new()
        .default_config(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/workflows_provisioning/wrangler.toml"
        ))
        .durable_object::<Fleet>("HEATHER")
        .workflow::<Provisioning>("PROVISIONING")
        .fetch(fetch)
        .serve_from_args()
}
