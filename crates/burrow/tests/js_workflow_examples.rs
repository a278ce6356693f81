//! The JavaScript Workflow examples under the real binary, driven over HTTP:
//! `examples/js_moderation` (human in the loop: `step.waitForEvent` answered by
//! `instance.sendEvent`, or timing out), `examples/js_onboarding` (the drip with sleeps from
//! vars), and a `kill -9` of `burrow serve` between the onboarding's steps: the completed step
//! never runs again (its emails are counted by an HTTP stand-in this test runs, outside the
//! server).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, body, dev, example, http, send, serve};

/// Generous bound for an instance to get somewhere on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(90);

fn get_json(server: &Server, path: &str) -> Value {
    let (status, response) = http(server.ingress, "GET", path, &[]);
    assert_eq!(status, 200, "{path}: {response}\nlog:\n{}", server.log);
    serde_json::from_str(body(&response)).unwrap_or_else(|e| panic!("{e}: {response}"))
}

fn post_json(server: &Server, path: &str, payload: Value) -> (u16, Value) {
    let (status, response) = send(
        server.ingress,
        "POST",
        path,
        &[("content-type", "application/json")],
        payload.to_string().as_bytes(),
    );
    let value = serde_json::from_str(&response).unwrap_or(Value::String(response));
    (status, value)
}

/// Polls `path` until `done` holds for its JSON, collecting every `status` seen on the way.
fn wait_json(server: &Server, path: &str, done: impl Fn(&Value) -> bool) -> (Value, Vec<String>) {
    let deadline = Instant::now() + DEADLINE;
    let mut seen: Vec<String> = Vec::new();
    loop {
        let value = get_json(server, path);
        if let Some(status) = value["status"].as_str()
            && seen.last().map(String::as_str) != Some(status)
        {
            seen.push(status.to_owned());
        }
        if done(&value) {
            return (value, seen);
        }
        assert!(
            Instant::now() < deadline,
            "{path} never got there; last: {value}\nlog:\n{}",
            server.log
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_moderation_example_waits_for_a_moderator_and_times_out_without_one() {
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(&example("js_moderation"), state.path());
    let posts = [
        json!({"postId": "clean", "content": "hello world"}),
        json!({"postId": "approved", "content": "spam?"}),
        json!({"postId": "rejected", "content": "buy spam"}),
        json!({"postId": "ignored", "content": "fine", "images": ["nsfw.png"]}),
    ];
    for post in &posts {
        let (status, created) = post_json(&server, "/posts", post.clone());
        assert_eq!((status, &created["id"]), (201, &post["postId"]));
    }

    let (clean, _) = wait_json(&server, "/posts/clean", |v| v["status"] == "complete");
    assert_eq!(clean["post"], "published", "{clean}");

    // Flagged posts are held and wait for the decision.
    for id in ["approved", "rejected", "ignored"] {
        let (held, _) = wait_json(&server, &format!("/posts/{id}"), |v| {
            v["status"] == "waiting"
        });
        assert_eq!(held["post"], "held", "{held}");
    }
    assert_eq!(
        post_json(
            &server,
            "/posts/approved/decision",
            json!({"approved": true})
        ),
        (200, json!({"sent": true}))
    );
    assert_eq!(
        post_json(
            &server,
            "/posts/rejected/decision",
            json!({"approved": false})
        )
        .0,
        200
    );
    let (approved, seen) = wait_json(&server, "/posts/approved", |v| v["status"] == "complete");
    assert_eq!(approved["post"], "published", "{approved}");
    assert_eq!(seen.last().map(String::as_str), Some("complete"));
    assert!(!seen.contains(&"errored".to_owned()), "{seen:?}");
    let (rejected, _) = wait_json(&server, "/posts/rejected", |v| v["status"] == "complete");
    assert_eq!(rejected["post"], "rejected", "{rejected}");

    // No decision within REVIEW_TIMEOUT: the wait fails and ends the instance errored.
    let (ignored, seen) = wait_json(&server, "/posts/ignored", |v| v["status"] == "errored");
    assert_eq!(
        ignored["error"]["name"], "WorkflowTimeoutError",
        "{ignored}"
    );
    assert_eq!(ignored["post"], "held", "{ignored}");
    // Waking from the wait the instance may pass through queued/running on its way.
    assert_eq!(
        seen.first().map(String::as_str),
        Some("waiting"),
        "{seen:?}"
    );
    assert!(!seen.contains(&"complete".to_owned()), "{seen:?}");

    let mut sent: Vec<String> = serde_json::from_value(get_json(&server, "/emails")).unwrap();
    sent.sort();
    assert_eq!(
        sent,
        [
            "mod-review-needed",
            "mod-review-needed",
            "mod-review-needed",
            "post-rejected"
        ]
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn the_onboarding_example_sends_the_drip_and_skips_the_nudge_after_a_first_post() {
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(&example("js_onboarding"), state.path());
    // Bea has posted before her day-1 check; Ada never does.
    assert_eq!(post_json(&server, "/users/bea/posts", json!({})).0, 200);
    for (user, email) in [("ada", "ada@example.com"), ("bea", "bea@example.com")] {
        let (status, created) =
            post_json(&server, "/users", json!({"userId": user, "email": email}));
        assert_eq!((status, &created["id"]), (201, &json!(user)));
    }
    let (ada, seen) = wait_json(&server, "/users/ada?email=ada@example.com", |v| {
        v["status"] == "complete"
    });
    assert_eq!(
        ada["emails"],
        json!(["welcome", "nudge-first-post", "getting-started-tips"]),
        "{ada}"
    );
    assert!(seen.contains(&"waiting".to_owned()), "slept: {seen:?}");
    assert_eq!(ada["output"], Value::Null);
    let (bea, _) = wait_json(&server, "/users/bea?email=bea@example.com", |v| {
        v["status"] == "complete"
    });
    assert_eq!(
        bea["emails"],
        json!(["welcome", "getting-started-tips"]),
        "{bea}"
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// An HTTP stand-in for the email service: records each POSTed body, answers 200.
fn email_stand_in() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/send", listener.local_addr().expect("address"));
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut payload = vec![0u8; length.min(1 << 20)];
            if reader.read_exact(&mut payload).is_ok()
                && let Ok(value) = serde_json::from_slice(&payload)
            {
                sink.lock().unwrap().push(value);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (url, received)
}

fn templates(received: &Mutex<Vec<Value>>, to: &str) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|email| email["to"] == to)
        .map(|email| email["template"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_completed_step_never_runs_again_after_kill_9_between_steps() {
    let (url, received) = email_stand_in();
    let project = tempfile::tempdir().expect("tempdir");
    let source = example("js_onboarding");
    std::fs::create_dir_all(project.path().join("src")).expect("mkdir");
    for file in ["src/index.js", "src/ivy.js"] {
        std::fs::copy(source.join(file), project.path().join(file)).expect("copy");
    }
    let config = std::fs::read_to_string(source.join("wrangler.toml")).expect("config");
    // Long enough that the kill lands in the first sleep on a loaded machine.
    let config = config
        .replace("IVY_URL = \"\"", &format!("IVY_URL = \"{url}\""))
        .replace("DAY_1 = \"2 seconds\"", "DAY_1 = \"6 seconds\"");
    assert!(config.contains(&url) && config.contains("6 seconds"));
    let config_path = project.path().join("wrangler.toml");
    std::fs::write(&config_path, config).expect("write config");
    let state = tempfile::tempdir().expect("tempdir");

    let server = serve(&config_path, state.path());
    let (status, _) = post_json(
        &server,
        "/users",
        json!({"userId": "cy", "email": "cy@example.com"}),
    );
    assert_eq!(status, 201);
    // The welcome step completed (its email reached the stand-in) and the instance sleeps.
    wait_json(&server, "/users/cy", |v| v["status"] == "waiting");
    assert_eq!(templates(&received, "cy@example.com"), ["welcome"]);
    // Dropping the server sends SIGKILL (std's Child::kill) and reaps it.
    drop(server);

    let server = serve(&config_path, state.path());
    let (done, _) = wait_json(&server, "/users/cy?email=cy@example.com", |v| {
        v["status"] == "complete"
    });
    assert_eq!(
        templates(&received, "cy@example.com"),
        ["welcome", "nudge-first-post", "getting-started-tips"],
        "each step's email exactly once: {done}"
    );
    assert_eq!(
        done["emails"],
        json!(["welcome", "nudge-first-post", "getting-started-tips"])
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
