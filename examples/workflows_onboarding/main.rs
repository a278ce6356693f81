//! The onboarding drip sequence from the seeds (Ivy): welcome at once, a nudge a day later if
//! the user has not posted, tips after a week, a recap after a month. Each email is a
//! `step.do`; the waits are `step.sleep`s, so a user in the middle of the sequence costs no
//! memory and the sequence survives restarts. The durations come from vars (scaled down to
//! seconds here; `"24 hours"` works the same).
//!
//! Local stand-ins for the seed's external calls:
//! - Ivy (email): the outbox file `OUTBOX_FILE` gets one JSON line per email sent
//!   (`{"sent": template, "to": address}`).
//! - "has the user posted?": the `POSTS` KV namespace, written by `POST /users/:id/posts`.
//!
//! Routes:
//! - `POST /users` `{"user_id", "email"}` → starts the sequence (instance `user-<user_id>`).
//! - `POST /users/:id/posts` → records a first post (the day-1 nudge is skipped).
//! - `GET /users/:id` → the instance's status and output.
//!
//! Run it from the repository root with `cargo run --release --example workflows_onboarding`.

use std::io::Write;

use burrow::workflow::{CreateOptions, WorkflowDuration};
use burrow::{
    App, Env, Method, Request, Response, Result, StatusCode, WorkflowEntrypoint, WorkflowError,
    WorkflowEvent, WorkflowStep,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The params of one sequence.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Signup {
    user_id: String,
    email: String,
}

/// Ivy's stand-in: appends the email to the outbox file and syncs it. With `IVY_LATENCY_MS` set,
/// it first logs a `"sending"` line and takes that long, like a slow email API (the restart
/// tests stop the server in the middle of it).
async fn send_email(env: &Env, to: &str, template: &str) -> Result<String, WorkflowError> {
    let path = env
        .var("OUTBOX_FILE")
        .unwrap_or_else(|| "outbox.jsonl".to_owned());
    let append = |line: serde_json::Value| -> Result<(), WorkflowError> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        // One write per line, so a reader (or a kill) never sees half of one.
        file.write_all(format!("{line}\n").as_bytes())?;
        file.sync_all()?;
        Ok(())
    };
    let latency_ms: u64 = env
        .var("IVY_LATENCY_MS")
        .and_then(|text| text.parse().ok())
        .unwrap_or(0);
    if latency_ms > 0 {
        append(json!({"sending": template, "to": to}))?;
        tokio::time::sleep(std::time::Duration::from_millis(latency_ms)).await;
    }
    append(json!({"sent": template, "to": to}))?;
    Ok(template.to_owned())
}

fn duration(env: &Env, name: &str, default: &str) -> WorkflowDuration {
    WorkflowDuration::from(env.var(name).unwrap_or_else(|| default.to_owned()))
}

/// The sequence.
struct Onboarding {
    env: Env,
}

impl WorkflowEntrypoint for Onboarding {
    type Params = Signup;
    /// The templates sent.
    type Output = Vec<String>;

    fn new(env: Env) -> Self {
        Onboarding { env }
    }

    async fn run(
        &self,
        event: WorkflowEvent<Signup>,
        step: &WorkflowStep,
    ) -> Result<Vec<String>, WorkflowError> {
        let env = &self.env;
        let user = &event.payload;
        let mut sent = Vec::new();

        // Day 0: runs immediately.
        sent.push(
            step.do_("send-welcome-email", async |_| {
                send_email(env, &user.email, "welcome").await
            })
            .await?,
        );

        // Day 1: sleeps, holding no memory, then nudges if there is no first post yet.
        step.sleep("wait-day-1", duration(env, "DAY_1_WAIT", "2 seconds"))
            .await?;
        let nudge: Option<String> = step
            .do_("day-1-nudge", async |_| {
                let posted = env
                    .kv("POSTS")?
                    .get_text(&format!("posted:{}", user.user_id))
                    .await?
                    .is_some();
                if posted {
                    Ok(None)
                } else {
                    send_email(env, &user.email, "nudge-first-post")
                        .await
                        .map(Some)
                }
            })
            .await?;
        sent.extend(nudge);

        // Day 7.
        step.sleep("wait-week-1", duration(env, "WEEK_1_WAIT", "3 seconds"))
            .await?;
        sent.push(
            step.do_("week-1-tips", async |_| {
                send_email(env, &user.email, "getting-started-tips").await
            })
            .await?,
        );

        // Day 30.
        step.sleep("wait-month-1", duration(env, "MONTH_1_WAIT", "4 seconds"))
            .await?;
        sent.push(
            step.do_("month-1-recap", async |_| {
                send_email(env, &user.email, "monthly-recap").await
            })
            .await?,
        );
        Ok(sent)
    }
}

fn not_found() -> Response {
    Response::error("not found", StatusCode::NOT_FOUND)
}

async fn fetch(request: Request, env: Env) -> Result<Response> {
    let path = request.path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let workflow = env.workflow("ONBOARDING")?;
    match (request.method().clone(), segments.as_slice()) {
        (Method::POST, ["users"]) => {
            let signup: Signup = request.json().await.map_err(|error| {
                burrow::Error::new(format!("expected {{\"user_id\", \"email\"}}: {error}"))
                    .with_status(StatusCode::BAD_REQUEST)
            })?;
            let id = format!("user-{}", signup.user_id);
            let instance = workflow
                .create(CreateOptions::new(Some(&id), &signup)?)
                .await
                .map_err(|error| {
                    burrow::Error::new(error.to_string()).with_status(StatusCode::CONFLICT)
                })?;
            Ok(Response::json(&json!({"id": instance.id()}))?.with_status(StatusCode::CREATED))
        }
        (Method::POST, ["users", user, "posts"]) => {
            env.kv("POSTS")?
                .put(&format!("posted:{user}"), "yes")
                .await?;
            Ok(Response::text("posted"))
        }
        (Method::GET, ["users", user]) => {
            let instance = match workflow.get(&format!("user-{user}")).await {
                Ok(instance) => instance,
                Err(_) => return Ok(not_found()),
            };
            let status = instance.status().await?;
            Response::json(&json!({
                "status": status.status,
                "output": status.output,
                "error": status.error.map(|error| error.to_string()),
            }))
        }
        _ => Ok(not_found()),
    }
}

fn main() -> std::process::ExitCode {
    App::new()
        .default_config(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/workflows_onboarding/wrangler.toml"
        ))
        .workflow::<Onboarding>("ONBOARDING")
        .fetch(fetch)
        .serve_from_args()
}
