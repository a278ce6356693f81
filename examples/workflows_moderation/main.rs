//! Human-in-the-loop moderation from the seeds (Thorn and Petal): scan a post's text and
//! images; publish it if both are clean; otherwise hold it, notify a moderator, and wait up to
//! `REVIEW_TIMEOUT` for their decision (`step.wait_for_event`), then publish or reject it. A
//! review nobody answers in time rejects the post and tells the moderators. The instance waiting
//! for a decision costs no memory and survives restarts; a decision sent before the instance
//! waits for it is kept.
//!
//! Local stand-ins for the seed's external calls:
//! - Thorn (text): flags text containing any word of the `FLAGGED_WORDS` var.
//! - Petal (images): flags an image whose name contains `nsfw`.
//! - The post store: the `POSTS` KV namespace (`post:<id>` → `held`, `published`, `rejected`).
//! - Ivy (email): the outbox file `OUTBOX_FILE`, one JSON line per email.
//!
//! Routes:
//! - `POST /posts` `{"post_id", "author", "text", "images": [...]}` → starts moderation
//!   (instance `post-<post_id>`).
//! - `POST /posts/:id/decision` `{"approved": bool, "moderator"}` → sends `mod-decision`.
//! - `GET /posts/:id` → the post's state and the instance's status and output.
//!
//! Run it from the repository root with `cargo run --release --example workflows_moderation`.

use std::io::Write;

use burrow::workflow::{CreateOptions, WaitOptions, WorkflowDuration};
use burrow::{
    App, Env, Method, Request, Response, Result, StatusCode, WorkflowEntrypoint, WorkflowError,
    WorkflowEvent, WorkflowStep,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A post to moderate.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Post {
    post_id: String,
    author: String,
    text: String,
    #[serde(default)]
    images: Vec<String>,
}

/// A scanner's verdict (the step's stored result).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Scan {
    flagged: bool,
    reason: Option<String>,
}

/// A moderator's decision (the event's payload).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Decision {
    approved: bool,
    #[serde(default)]
    moderator: String,
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

async fn set_state(env: &Env, post_id: &str, state: &str) -> Result<(), WorkflowError> {
    env.kv("POSTS")?
        .put(&format!("post:{post_id}"), state)
        .await?;
    Ok(())
}

fn thorn_scan(env: &Env, post: &Post) -> Scan {
    let words = env.var("FLAGGED_WORDS").unwrap_or_default();
    let text = post.text.to_lowercase();
    let hit = words
        .split(',')
        .map(str::trim)
        .filter(|word| !word.is_empty())
        .find(|word| text.contains(&word.to_lowercase()));
    Scan {
        flagged: hit.is_some(),
        reason: hit.map(|word| format!("text contains {word:?}")),
    }
}

fn petal_scan(post: &Post) -> Scan {
    let hit = post.images.iter().find(|image| image.contains("nsfw"));
    Scan {
        flagged: hit.is_some(),
        reason: hit.map(|image| format!("image {image} looks unsafe")),
    }
}

struct Moderation {
    env: Env,
}

impl WorkflowEntrypoint for Moderation {
    type Params = Post;
    /// How the post ended: `published`, `approved`, `rejected` or `expired`.
    type Output = Value;

    fn new(env: Env) -> Self {
        Moderation { env }
    }

    async fn run(
        &self,
        event: WorkflowEvent<Post>,
        step: &WorkflowStep,
    ) -> Result<Value, WorkflowError> {
        let env = &self.env;
        let post = &event.payload;
        let thorn: Scan = step
            .do_("thorn-scan", async |_| Ok(thorn_scan(env, post)))
            .await?;
        let petal: Scan = step
            .do_("petal-scan", async |_| Ok(petal_scan(post)))
            .await?;

        if !(thorn.flagged || petal.flagged) {
            step.do_("publish-post", async |_| {
                set_state(env, &post.post_id, "published").await
            })
            .await?;
            return Ok(json!({"outcome": "published"}));
        }

        let reasons: Vec<String> = [thorn.reason, petal.reason].into_iter().flatten().collect();
        step.do_("flag-for-review", async |_| {
            set_state(env, &post.post_id, "held").await
        })
        .await?;
        step.do_("notify-moderator", async |_| {
            send_email(
                env,
                "moderators",
                "mod-review-needed",
                json!({"post": post.post_id, "reasons": reasons}),
            )
        })
        .await?;

        let timeout = WorkflowDuration::from(
            env.var("REVIEW_TIMEOUT")
                .unwrap_or_else(|| "10 seconds".to_owned()),
        );
        let decision = step
            .wait_for_event::<Decision>(
                "mod-decision",
                WaitOptions::new("mod-decision").with_timeout(timeout),
            )
            .await;
        match decision {
            Ok(decision) if decision.payload.approved => {
                step.do_("approve-post", async |_| {
                    set_state(env, &post.post_id, "published").await
                })
                .await?;
                Ok(json!({"outcome": "approved", "moderator": decision.payload.moderator}))
            }
            Ok(decision) => {
                step.do_("reject-post", async |_| {
                    set_state(env, &post.post_id, "rejected").await
                })
                .await?;
                step.do_("notify-author", async |_| {
                    send_email(
                        env,
                        &post.author,
                        "post-rejected",
                        json!({"post": post.post_id}),
                    )
                })
                .await?;
                Ok(json!({"outcome": "rejected", "moderator": decision.payload.moderator}))
            }
            // Nobody decided in time: the post stays unpublished and the moderators hear of it.
            Err(error) if error.is_timeout() => {
                step.do_("expire-review", async |_| {
                    set_state(env, &post.post_id, "rejected").await
                })
                .await?;
                step.do_("notify-expired", async |_| {
                    send_email(
                        env,
                        "moderators",
                        "mod-review-expired",
                        json!({"post": post.post_id}),
                    )
                })
                .await?;
                Ok(json!({"outcome": "expired"}))
            }
            Err(error) => Err(error),
        }
    }
}

fn not_found() -> Response {
    Response::error("not found", StatusCode::NOT_FOUND)
}

fn bad_request(message: String) -> burrow::Error {
    burrow::Error::new(message).with_status(StatusCode::BAD_REQUEST)
}

async fn fetch(request: Request, env: Env) -> Result<Response> {
    let path = request.path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let workflow = env.workflow("MODERATION")?;
    match (request.method().clone(), segments.as_slice()) {
        (Method::POST, ["posts"]) => {
            let post: Post = request
                .json()
                .await
                .map_err(|error| bad_request(format!("expected a post: {error}")))?;
            let id = format!("post-{}", post.post_id);
            let instance = workflow
                .create(CreateOptions::new(Some(&id), &post)?)
                .await
                .map_err(|error| bad_request(error.to_string()))?;
            Ok(Response::json(&json!({"id": instance.id()}))?.with_status(StatusCode::CREATED))
        }
        (Method::POST, ["posts", post_id, "decision"]) => {
            let decision: Decision = request.json().await.map_err(|error| {
                bad_request(format!("expected {{\"approved\": bool}}: {error}"))
            })?;
            let Ok(instance) = workflow.get(&format!("post-{post_id}")).await else {
                return Ok(not_found());
            };
            instance.send_event("mod-decision", &decision).await?;
            Ok(Response::text("sent"))
        }
        (Method::GET, ["posts", post_id]) => {
            let Ok(instance) = workflow.get(&format!("post-{post_id}")).await else {
                return Ok(not_found());
            };
            let status = instance.status().await?;
            let state = env
                .kv("POSTS")?
                .get_text(&format!("post:{post_id}"))
                .await?;
            Response::json(&json!({
                "state": state,
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
            "/../../examples/workflows_moderation/wrangler.toml"
        ))
        .workflow::<Moderation>("MODERATION")
        .fetch(fetch)
        .serve_from_args()
}
