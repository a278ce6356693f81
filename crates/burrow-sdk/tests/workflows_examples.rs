//! The three seed workflows (examples/workflows_*) as processes: the onboarding drip sequence,
//! moderation with a human decision, and provisioning with a polling step and a teardown; each
//! with its durations scaled down through `.dev.vars`, its side effects counted in an outbox
//! file, and `kill -9` between and during steps. The admin API's Workflows endpoints are driven
//! too.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{App, STEP, command, free_port, request, start};

/// A copy of the example's `wrangler.toml` in `dir`, with `.dev.vars` beside it overriding
/// `vars` (secrets win over vars of the same name, as in `wrangler dev`).
fn config(example: &str, dir: &Path, vars: &[(&str, String)]) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(example)
        .join("wrangler.toml");
    let path = dir.join("wrangler.toml");
    std::fs::copy(&source, &path).expect("copy wrangler.toml");
    let dev_vars: String = vars
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect();
    std::fs::write(dir.join(".dev.vars"), dev_vars).expect("write .dev.vars");
    path
}

struct Running {
    app: App,
    admin: std::net::SocketAddr,
}

fn launch(example: &str, config: &Path, data: &Path, admin_port: u16) -> Running {
    let admin = format!("127.0.0.1:{admin_port}");
    let app = start(&mut command(
        example,
        free_port(),
        data,
        &[
            "--config",
            config.to_str().expect("utf-8 path"),
            "--admin-address",
            &admin,
        ],
    ));
    Running {
        app,
        admin: admin.parse().expect("address"),
    }
}

fn json_body(status: u16, body: &str) -> Value {
    assert!((200..300).contains(&status), "{status}: {body}");
    serde_json::from_str(body).unwrap_or_else(|error| panic!("{error}: {body}"))
}

/// Polls `GET path` until `done` holds for its JSON body.
fn poll(app: &App, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + STEP;
    loop {
        let (status, body) = app.request("GET", path, "");
        if status == 200 {
            let value: Value = serde_json::from_str(&body).expect("JSON");
            if done(&value) {
                return value;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{path} never got there: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The outbox's complete lines: the server may be writing the last one while the test reads.
fn outbox(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|line| serde_json::from_str(line).expect("an outbox line"))
        .collect()
}

fn count(lines: &[Value], key: &str, template: &str) -> usize {
    lines
        .iter()
        .filter(|line| line[key] == json!(template))
        .count()
}

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + STEP;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn onboarding_sends_the_drip_sequence_and_skips_the_nudge_after_a_first_post() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox_file = dir.path().join("outbox.jsonl");
    let config = config(
        "workflows_onboarding",
        dir.path(),
        &[
            ("DAY_1_WAIT", "1 second".into()),
            ("WEEK_1_WAIT", "300 ms".into()),
            ("MONTH_1_WAIT", "300 ms".into()),
            ("OUTBOX_FILE", outbox_file.display().to_string()),
        ],
    );
    let running = launch(
        "workflows_onboarding",
        &config,
        &dir.path().join("data"),
        free_port(),
    );
    let app = &running.app;
    for user in ["ada", "bo"] {
        let (status, body) = app.request(
            "POST",
            "/users",
            &json!({"user_id": user, "email": format!("{user}@example.com")}).to_string(),
        );
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            json_body(status, &body)["id"],
            json!(format!("user-{user}"))
        );
    }
    // bo posts before the day-1 check.
    assert_eq!(app.request("POST", "/users/bo/posts", "").0, 200);
    let ada = poll(app, "/users/ada", |value| value["status"] == "complete");
    let bo = poll(app, "/users/bo", |value| value["status"] == "complete");
    assert_eq!(
        ada["output"],
        json!([
            "welcome",
            "nudge-first-post",
            "getting-started-tips",
            "monthly-recap"
        ])
    );
    assert_eq!(
        bo["output"],
        json!(["welcome", "getting-started-tips", "monthly-recap"])
    );
    let lines = outbox(&outbox_file);
    assert_eq!(lines.len(), 7, "{lines:?}");
    // A duplicate id is refused with Cloudflare's message.
    let (status, body) = app.request("POST", "/users", r#"{"user_id": "ada", "email": "x"}"#);
    assert_eq!(status, 409);
    assert!(body.contains("(instance.already_exists)"), "{body}");

    // The admin API lists and describes the instances in Cloudflare's shapes.
    let admin = running.admin;
    let (status, body) = request(admin, "GET", "/client/v4/accounts/local/workflows", "");
    let listed = json_body(status, &body);
    assert_eq!(listed["result"][0]["name"], json!("onboarding"));
    assert_eq!(listed["result"][0]["class_name"], json!("Onboarding"));
    let (status, body) = request(
        admin,
        "GET",
        "/client/v4/accounts/local/workflows/onboarding/instances?status=complete",
        "",
    );
    let instances = json_body(status, &body);
    assert_eq!(
        instances["result_info"]["total_count"],
        json!(2),
        "{instances}"
    );
    assert_eq!(instances["result"][0]["status"], json!("complete"));
    let (status, body) = request(
        admin,
        "GET",
        "/client/v4/accounts/local/workflows/onboarding/instances/user-ada",
        "",
    );
    let details = json_body(status, &body)["result"].clone();
    let kinds: Vec<&str> = details["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| step["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        ["step", "sleep", "step", "sleep", "step", "sleep", "step"]
    );
    assert_eq!(details["params"]["email"], json!("ada@example.com"));
    assert_eq!(details["success"], json!(true));
    let (status, body) = request(
        admin,
        "GET",
        "/client/v4/accounts/local/workflows/onboarding/instances/nobody",
        "",
    );
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("(instance.not_found) Instance does not exist"),
        "{body}"
    );
    // Create, pause, resume and terminate through the admin API.
    let (status, body) = request(
        admin,
        "POST",
        "/client/v4/accounts/local/workflows/onboarding/instances",
        &json!({"instance_id": "user-cy", "params": {"user_id": "cy", "email": "cy@example.com"}})
            .to_string(),
    );
    assert_eq!(json_body(status, &body)["result"]["id"], json!("user-cy"));
    poll(app, "/users/cy", |value| value["status"] == "waiting");
    let patch = |action: &str| {
        let (status, body) = request(
            admin,
            "PATCH",
            "/client/v4/accounts/local/workflows/onboarding/instances/user-cy/status",
            &json!({"status": action}).to_string(),
        );
        json_body(status, &body)["result"]["status"].clone()
    };
    assert_eq!(patch("pause"), json!("paused"));
    assert_eq!(patch("resume"), json!("queued"));
    assert_eq!(patch("terminate"), json!("terminated"));
    let (status, body) = request(
        admin,
        "PATCH",
        "/client/v4/accounts/local/workflows/onboarding/instances/user-cy/status",
        r#"{"status": "terminate"}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("(instance.cannot_terminate)"), "{body}");

    let (status, log) = running.app.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn onboarding_survives_kill_9_between_steps_and_during_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let outbox_file = dir.path().join("outbox.jsonl");
    let config = config(
        "workflows_onboarding",
        dir.path(),
        &[
            ("DAY_1_WAIT", "1 second".into()),
            ("WEEK_1_WAIT", "500 ms".into()),
            ("MONTH_1_WAIT", "500 ms".into()),
            ("IVY_LATENCY_MS", "2500".into()),
            ("OUTBOX_FILE", outbox_file.display().to_string()),
        ],
    );
    let running = launch("workflows_onboarding", &config, &data, free_port());
    let (status, body) = running.app.request(
        "POST",
        "/users",
        r#"{"user_id": "ada", "email": "ada@example.com"}"#,
    );
    assert_eq!(status, 201, "{body}");
    // Between steps: the welcome step is durable and the instance sleeps.
    poll(&running.app, "/users/ada", |value| {
        value["status"] == "waiting"
    });
    drop(running); // SIGKILL

    let running = launch("workflows_onboarding", &config, &data, free_port());
    // During a step: the tips email is being sent (it takes IVY_LATENCY_MS).
    wait_until("the tips email to start", || {
        count(&outbox(&outbox_file), "sending", "getting-started-tips") == 1
    });
    drop(running); // SIGKILL

    let running = launch("workflows_onboarding", &config, &data, free_port());
    let ada = poll(&running.app, "/users/ada", |value| {
        value["status"] == "complete"
    });
    assert_eq!(
        ada["output"],
        json!([
            "welcome",
            "nudge-first-post",
            "getting-started-tips",
            "monthly-recap"
        ])
    );
    let lines = outbox(&outbox_file);
    assert_eq!(count(&lines, "sent", "welcome"), 1, "{lines:?}");
    assert_eq!(count(&lines, "sending", "welcome"), 1, "{lines:?}");
    assert_eq!(count(&lines, "sent", "nudge-first-post"), 1, "{lines:?}");
    assert_eq!(
        count(&lines, "sending", "getting-started-tips"),
        2,
        "the interrupted step ran again: {lines:?}"
    );
    assert_eq!(
        count(&lines, "sent", "getting-started-tips"),
        1,
        "{lines:?}"
    );
    assert_eq!(count(&lines, "sent", "monthly-recap"), 1, "{lines:?}");
    let (status, log) = running.app.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn moderation_publishes_clean_posts_and_holds_flagged_ones_for_a_decision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox_file = dir.path().join("outbox.jsonl");
    let config = config(
        "workflows_moderation",
        dir.path(),
        &[
            ("REVIEW_TIMEOUT", "2 seconds".into()),
            ("OUTBOX_FILE", outbox_file.display().to_string()),
        ],
    );
    let running = launch(
        "workflows_moderation",
        &config,
        &dir.path().join("data"),
        free_port(),
    );
    let app = &running.app;
    let submit = |id: &str, text: &str, images: Value| {
        let post = json!({"post_id": id, "author": format!("author-{id}"), "text": text, "images": images});
        let (status, body) = app.request("POST", "/posts", &post.to_string());
        assert_eq!(status, 201, "{body}");
    };
    submit("clean", "a lovely day", json!(["sunset.png"]));
    submit("approve", "cheap spam here", json!([]));
    submit("reject", "hello", json!(["nsfw-1.png"]));
    submit("expire", "a scam", json!([]));
    // A decision sent before the instance waits for it is kept.
    submit("early", "more spam", json!([]));
    let (status, body) = app.request(
        "POST",
        "/posts/early/decision",
        r#"{"approved": true, "moderator": "eve"}"#,
    );
    assert_eq!(status, 200, "{body}");

    let clean = poll(app, "/posts/clean", |value| value["status"] == "complete");
    assert_eq!(clean["state"], json!("published"));
    assert_eq!(clean["output"], json!({"outcome": "published"}));
    for id in ["approve", "reject"] {
        let held = poll(app, &format!("/posts/{id}"), |value| {
            value["status"] == "waiting"
        });
        assert_eq!(held["state"], json!("held"));
    }
    let decide = |id: &str, approved: bool| {
        let (status, body) = app.request(
            "POST",
            &format!("/posts/{id}/decision"),
            &json!({"approved": approved, "moderator": "mo"}).to_string(),
        );
        assert_eq!(status, 200, "{body}");
    };
    decide("approve", true);
    decide("reject", false);
    let approved = poll(app, "/posts/approve", |value| value["status"] == "complete");
    assert_eq!(approved["state"], json!("published"));
    assert_eq!(
        approved["output"],
        json!({"outcome": "approved", "moderator": "mo"})
    );
    let rejected = poll(app, "/posts/reject", |value| value["status"] == "complete");
    assert_eq!(rejected["state"], json!("rejected"));
    let early = poll(app, "/posts/early", |value| value["status"] == "complete");
    assert_eq!(
        early["output"],
        json!({"outcome": "approved", "moderator": "eve"})
    );
    let expired = poll(app, "/posts/expire", |value| value["status"] == "complete");
    assert_eq!(expired["output"], json!({"outcome": "expired"}));
    assert_eq!(expired["state"], json!("rejected"));

    let lines = outbox(&outbox_file);
    assert_eq!(
        count(&lines, "template", "mod-review-needed"),
        4,
        "{lines:?}"
    );
    assert_eq!(count(&lines, "template", "post-rejected"), 1, "{lines:?}");
    assert_eq!(
        count(&lines, "template", "mod-review-expired"),
        1,
        "{lines:?}"
    );
    let (status, log) = running.app.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn provisioning_polls_the_boot_survives_kill_9_and_tears_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let outbox_file = dir.path().join("outbox.jsonl");
    let config = config(
        "workflows_provisioning",
        dir.path(),
        &[
            ("BOOT_MS", "2500".into()),
            ("POLL_INTERVAL", "200 ms".into()),
            ("SERVER_LIFETIME", "2 seconds".into()),
            ("OUTBOX_FILE", outbox_file.display().to_string()),
        ],
    );
    let running = launch("workflows_provisioning", &config, &data, free_port());
    let submit = |app: &App, id: &str, lifetime: Option<&str>| {
        let body =
            json!({"request_id": id, "user": "ada", "spec": "mc-small", "lifetime": lifetime});
        let (status, body) = app.request("POST", "/servers", &body.to_string());
        assert_eq!(status, 201, "{body}");
    };
    submit(&running.app, "expires", None);
    submit(&running.app, "requested", Some("1 hour"));
    // Both servers are booting and both instances poll: request-compute is durable (no step
    // starts before the previous one's result is). Kill the process in the middle.
    for id in ["expires", "requested"] {
        wait_until("the boot polling to start", || {
            let (status, body) = request(
                running.admin,
                "GET",
                &format!(
                    "/client/v4/accounts/local/workflows/provisioning/instances/provision-{id}"
                ),
                "",
            );
            status == 200
                && json_body(status, &body)["result"]["steps"][1]["name"] == "wait-for-boot"
        });
    }
    let (status, body) = running.app.request("GET", "/fleet", "");
    let fleet = json_body(status, &body);
    assert_eq!(fleet.as_array().map(Vec::len), Some(2), "{fleet}");
    assert!(
        fleet
            .as_array()
            .expect("servers")
            .iter()
            .all(|server| server["state"] == "booting"),
        "{fleet}"
    );
    drop(running); // SIGKILL

    let running = launch("workflows_provisioning", &config, &data, free_port());
    let app = &running.app;
    poll(app, "/servers/requested", |value| {
        value["status"] == "waiting"
    });
    let (status, body) = app.request("POST", "/servers/requested/teardown", "");
    assert_eq!(status, 200, "{body}");
    let requested = poll(app, "/servers/requested", |value| {
        value["status"] == "complete"
    });
    assert_eq!(requested["output"]["teardown"], json!("requested"));
    let expired = poll(app, "/servers/expires", |value| {
        value["status"] == "complete"
    });
    assert_eq!(expired["output"]["teardown"], json!("expired"));
    let (status, body) = app.request("GET", "/fleet", "");
    let fleet = json_body(status, &body);
    let servers = fleet.as_array().expect("servers");
    assert_eq!(servers.len(), 2, "request-compute ran again: {fleet}");
    assert!(
        servers
            .iter()
            .all(|server| server["state"] == "deprovisioned"),
        "{fleet}"
    );
    let lines = outbox(&outbox_file);
    assert_eq!(count(&lines, "template", "server-ready"), 2, "{lines:?}");
    assert_eq!(
        count(&lines, "template", "server-torn-down"),
        2,
        "{lines:?}"
    );

    // The polling shows in the history: several attempts of wait-for-boot.
    let (status, body) = request(
        running.admin,
        "GET",
        "/client/v4/accounts/local/workflows/provisioning/instances/provision-expires",
        "",
    );
    let details = json_body(status, &body)["result"].clone();
    let boot = details["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|step| step["name"] == "wait-for-boot")
        .cloned()
        .expect("the polling step");
    assert!(
        boot["attempts"].as_array().expect("attempts").len() >= 2,
        "{boot}"
    );
    assert_eq!(boot["success"], json!(true));
    let (status, log) = running.app.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
}
