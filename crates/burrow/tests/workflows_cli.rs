//! `burrow workflows` against a running server that hosts a workflow (a Rust app started in this
//! process with the SDK): list, create, status, event, pause, resume, terminate and restart go
//! through the admin API's v4 endpoints, and errors keep Cloudflare's messages.

mod support;

use std::time::{Duration, Instant};

use burrow_sdk::workflow::{WaitOptions, WorkflowEntrypoint};
use burrow_sdk::{App, Env, WorkflowError, WorkflowEvent, WorkflowStep};
use serde_json::{Value, json};
use support::{app_options, burrow, stderr, stdout};

/// Greets, then waits for an `approval` event, then finishes.
struct Approval;

impl WorkflowEntrypoint for Approval {
    type Params = Value;
    type Output = Value;

    fn new(_env: Env) -> Self {
        Approval
    }

    async fn run(
        &self,
        event: WorkflowEvent<Value>,
        step: &WorkflowStep,
    ) -> Result<Value, WorkflowError> {
        let greeting: String = step
            .do_("greet", async |_| {
                Ok(format!(
                    "hello {}",
                    event.payload["name"].as_str().unwrap_or("?")
                ))
            })
            .await?;
        let approval = step
            .wait_for_event::<Value>("approval", WaitOptions::new("approval"))
            .await?;
        Ok(json!({"greeting": greeting, "approved_by": approval.payload["by"]}))
    }
}

const CONFIG: &str = r#"
name = "approvals"
compatibility_date = "2025-04-01"

[[workflows]]
binding = "APPROVAL"
name = "approval"
class_name = "Approval"
"#;

#[test]
fn workflow_verbs_drive_instances_through_the_admin_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (loaded, options) = app_options(dir.path(), CONFIG, &[]);
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = control
        .block_on(
            App::new()
                .workflow::<Approval>("APPROVAL")
                .start(&loaded, &options),
        )
        .expect("the app starts");
    let admin = format!("http://{}", server.admin_address());
    let workflows = |args: &[&str]| {
        let mut all = vec!["workflows"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--admin", &admin]);
        burrow(&all)
    };
    let ok = |output: std::process::Output| {
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    let status_of = |id: &str| -> Value {
        let output = ok(workflows(&["status", "approval", id, "--json"]));
        let envelope: Value = serde_json::from_str(&output).expect("JSON");
        envelope["result"].clone()
    };
    let wait_for = |id: &str, status: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let details = status_of(id);
            if details["status"] == json!(status) {
                return details;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never got {status}: {details}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    let listed = ok(workflows(&["list"]));
    assert!(
        listed.contains("approval") && listed.contains("Approval"),
        "{listed}"
    );

    let created = ok(workflows(&[
        "create",
        "approval",
        "--id",
        "req-1",
        "--params",
        r#"{"name": "ada"}"#,
    ]));
    assert!(created.contains("Created instance req-1"), "{created}");
    wait_for("req-1", "waiting");
    let table = ok(workflows(&["status", "approval", "req-1"]));
    assert!(table.contains("Status:    waiting"), "{table}");
    assert!(
        table.contains("greet") && table.contains("approval"),
        "{table}"
    );

    // A duplicate id is refused with Cloudflare's message.
    let duplicate = workflows(&["create", "approval", "--id", "req-1"]);
    assert!(!duplicate.status.success());
    assert!(
        stderr(&duplicate).contains("(instance.already_exists) Instance already exists"),
        "{}",
        stderr(&duplicate)
    );

    ok(workflows(&[
        "event",
        "approval",
        "req-1",
        "approval",
        "--payload",
        r#"{"by": "bo"}"#,
    ]));
    let done = wait_for("req-1", "complete");
    assert_eq!(
        done["output"],
        json!({"greeting": "hello ada", "approved_by": "bo"})
    );

    // Pause, resume, terminate, restart.
    ok(workflows(&[
        "create",
        "approval",
        "--id",
        "req-2",
        "--params",
        r#"{"name": "cy"}"#,
    ]));
    wait_for("req-2", "waiting");
    assert!(ok(workflows(&["pause", "approval", "req-2"])).contains("paused"));
    assert!(ok(workflows(&["resume", "approval", "req-2"])).contains("queued"));
    wait_for("req-2", "waiting");
    assert!(ok(workflows(&["terminate", "approval", "req-2"])).contains("terminated"));
    let again = workflows(&["terminate", "approval", "req-2"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("(instance.cannot_terminate)"),
        "{}",
        stderr(&again)
    );
    ok(workflows(&["restart", "approval", "req-2"]));
    wait_for("req-2", "waiting");

    let instances = ok(workflows(&["list", "approval", "--status", "complete"]));
    assert!(
        instances.contains("req-1") && !instances.contains("req-2"),
        "{instances}"
    );
    let missing = workflows(&["status", "approval", "nobody"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("(instance.not_found) Instance does not exist"),
        "{}",
        stderr(&missing)
    );
    let unknown = workflows(&["list", "nothing-here"]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no Workflow named"),
        "{}",
        stderr(&unknown)
    );

    control
        .block_on(server.shutdown(Duration::from_secs(5)))
        .expect("clean shutdown");
}
