//! Queues through the SDK: `env.queue(..)` in `fetch` sends (singles and batches), the app's
//! `queue` handler receives them by the consumer's batch settings with retries, and the admin
//! API's Queues endpoints see the same queues.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burrow::queue::{Body, MessageBatch, RetryOptions, SendOptions, SendRequest};
use burrow::server::{Flags, Mode, ServeOptions, Server};
use burrow::{App, Env, Request, Response, Result, StatusCode};

const CONFIG: &str = r#"
name = "queues-app"
main = "src/lib.rs"
compatibility_date = "2025-01-01"

[[queues.producers]]
binding = "JOBS"
queue = "jobs"

[[queues.consumers]]
queue = "jobs"
max_batch_size = 10
max_batch_timeout = 0
max_retries = 2
dead_letter_queue = "jobs-dlq"
"#;

/// (body, attempts) of every delivery, in order.
static DELIVERED: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());

async fn fetch(request: Request, env: Env) -> Result<Response> {
    let jobs = env.queue("JOBS")?;
    let body = request
        .query("body")
        .map(|body| body.into_owned())
        .unwrap_or_default();
    match request.path() {
        "/send" => {
            jobs.send(Body::text(body), SendOptions::default()).await?;
            Ok(Response::text("sent"))
        }
        "/batch" => {
            let messages = body
                .split(',')
                .map(|part| SendRequest::new(Body::text(part)))
                .collect();
            jobs.send_batch(messages, Default::default()).await?;
            Ok(Response::text("sent"))
        }
        "/too-big" => match jobs
            .send(Body::bytes(vec![0u8; 200_000]), SendOptions::default())
            .await
        {
            Ok(()) => Ok(Response::text("accepted?")),
            Err(error) => Ok(Response::text(error.to_string())),
        },
        "/missing-binding" => Ok(Response::text(
            env.queue("NOPE").unwrap_err().message().to_owned(),
        )),
        _ => Ok(Response::error("not found", StatusCode::NOT_FOUND)),
    }
}

async fn consume(batch: MessageBatch, _env: Env) -> Result<()> {
    for message in batch.messages() {
        let body = message.body().as_text().unwrap_or_default().to_owned();
        DELIVERED
            .lock()
            .unwrap()
            .push((body.clone(), message.attempts()));
        match body.as_str() {
            "flaky" if message.attempts() == 1 => message.retry(RetryOptions::default()),
            "poison" => message.retry(RetryOptions::default()),
            _ => message.ack(),
        }
    }
    Ok(())
}

fn start(dir: &Path) -> (tokio::runtime::Runtime, Server) {
    std::fs::write(dir.join("wrangler.toml"), CONFIG).expect("write config");
    let loaded = burrow_config::load_files(
        &[dir.join("wrangler.toml")],
        &burrow_config::LoadOptions::default(),
    )
    .expect("config loads");
    let flags = Flags {
        port: Some(0),
        admin_address: Some("127.0.0.1:0".parse().expect("address")),
        persist_to: Some(dir.join("data")),
        ..Flags::default()
    };
    let options = ServeOptions::resolve(&loaded, &flags, Mode::Dev).expect("options");
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = control
        .block_on(
            App::new()
                .fetch(fetch)
                .queue(consume)
                .start(&loaded, &options),
        )
        .expect("the app starts");
    (control, server)
}

/// One HTTP/1.1 request; the status and the body.
fn request(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn wait_for(what: &str, condition: impl Fn(&[(String, u32)]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition(&DELIVERED.lock().unwrap()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            DELIVERED.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn producers_consumers_retries_and_the_admin_queues_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (control, server) = start(dir.path());
    let ingress = server.ingress_address();
    let admin = server.admin_address();

    assert_eq!(
        request(ingress, "GET", "/send?body=hello", ""),
        (200, "sent".into())
    );
    assert_eq!(
        request(ingress, "GET", "/batch?body=a,b,flaky,poison", ""),
        (200, "sent".into())
    );
    wait_for("every message, the retries and the exhausted one", |seen| {
        seen.iter().filter(|(body, _)| body == "poison").count() == 3
            && seen
                .iter()
                .any(|(body, attempts)| body == "flaky" && *attempts == 2)
            && ["hello", "a", "b"]
                .iter()
                .all(|body| seen.iter().any(|(b, _)| b == body))
    });
    {
        let seen = DELIVERED.lock().unwrap();
        let poison: Vec<u32> = seen
            .iter()
            .filter(|(body, _)| body == "poison")
            .map(|(_, attempts)| *attempts)
            .collect();
        assert_eq!(poison, vec![1, 2, 3], "max_retries = 2");
        assert_eq!(seen.iter().filter(|(body, _)| body == "hello").count(), 1);
    }
    let (_, message) = request(ingress, "GET", "/too-big", "");
    assert_eq!(
        message,
        "Queue send failed: message length of 200000 bytes exceeds limit of 128000"
    );
    let (_, message) = request(ingress, "GET", "/missing-binding", "");
    assert_eq!(
        message,
        "env has no queue binding \"NOPE\" (queue bindings: JOBS)"
    );

    // The admin API: the queues exist, the exhausted message waits in the dead-letter queue.
    let base = "/client/v4/accounts/local/queues";
    let (status, body) = request(admin, "GET", base, "");
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let names: Vec<&str> = listed["result"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|queue| queue["queue_name"].as_str())
        .collect();
    assert_eq!(names, vec!["jobs", "jobs-dlq"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let (status, body) = request(
            admin,
            "POST",
            &format!("{base}/jobs-dlq/messages/pull"),
            r#"{"batch_size": 10}"#,
        );
        assert_eq!(status, 200, "{body}");
        let pulled: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        if pulled["result"]["messages"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
        {
            break pulled;
        }
        assert!(
            Instant::now() < deadline,
            "nothing reached the dead-letter queue"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let message = &dead["result"]["messages"][0];
    assert_eq!(message["body"], "poison");
    assert_eq!(message["metadata"]["Burrow-Dead-Letter-Attempts"], 3);
    let (status, body) = request(admin, "GET", &format!("{base}/jobs/metrics"), "");
    assert_eq!(status, 200, "{body}");
    let metrics: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(metrics["result"]["backlog_count"], 0, "{metrics}");
    assert_eq!(metrics["result"]["dead_lettered"], 1, "{metrics}");
    assert_eq!(metrics["result"]["acked"], 4, "{metrics}");
    let (status, body) = request(
        admin,
        "POST",
        &format!("{base}/jobs/messages"),
        r#"{"body": "from the API", "content_type": "text"}"#,
    );
    assert_eq!(status, 200, "{body}");
    wait_for("the message sent through the API", |seen| {
        seen.iter().any(|(body, _)| body == "from the API")
    });
    let (status, body) = request(admin, "GET", &format!("{base}/nowhere/metrics"), "");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("10104"), "{body}");

    // The push consumer's settings change at runtime: with max_retries 0, a message that is
    // retried goes to the dead-letter queue after its first attempt.
    let (status, body) = request(admin, "GET", &format!("{base}/jobs/consumers"), "");
    assert_eq!(status, 200, "{body}");
    let consumers: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let consumer_id = consumers["result"][0]["consumer_id"]
        .as_str()
        .expect("consumer id")
        .to_owned();
    let (status, body) = request(
        admin,
        "PUT",
        &format!("{base}/jobs/consumers/{consumer_id}"),
        r#"{"settings": {"max_retries": 0, "batch_size": 1}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let changed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(changed["result"]["settings"]["max_retries"], 0, "{changed}");
    assert_eq!(changed["result"]["settings"]["batch_size"], 1, "{changed}");
    assert_eq!(
        request(ingress, "GET", "/send?body=poison", ""),
        (200, "sent".into())
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let (status, body) = request(
            admin,
            "POST",
            &format!("{base}/jobs-dlq/messages/pull"),
            r#"{"batch_size": 10}"#,
        );
        assert_eq!(status, 200, "{body}");
        let pulled: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        if pulled["result"]["messages"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
        {
            break pulled;
        }
        assert!(
            Instant::now() < deadline,
            "nothing reached the dead-letter queue"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let message = &dead["result"]["messages"][0];
    assert_eq!(
        message["metadata"]["Burrow-Dead-Letter-Attempts"], 1,
        "{dead}"
    );

    control
        .block_on(server.shutdown(Duration::from_secs(5)))
        .expect("clean shutdown");
}
