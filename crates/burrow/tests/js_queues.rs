//! JavaScript queue consumers under the real binary: `examples/js_task_queue` (exponential
//! backoff with `message.retry({delaySeconds})`, the dead-letter queue after `max_retries`, its
//! consumer), and the batch rules of spec §2 seen from JavaScript (an exception retries every
//! message not explicitly acked; `ackAll` and `retryAll` decide for the whole batch; body content
//! types; `timestamp` a Date).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Server, body, dev, http, send, write};

/// Generous bound for the queue's retries to play out on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(120);

fn get_json(server: &Server, path: &str) -> Value {
    let (status, response) = http(server.ingress, "GET", path, &[]);
    assert_eq!(status, 200, "{response}");
    serde_json::from_str(body(&response)).unwrap_or_else(|e| panic!("{e}: {response}"))
}

/// Polls `path` until `done` holds for its JSON; returns that JSON.
fn wait_json(server: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let value = get_json(server, path);
        if done(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never got there; last: {value}\nlog:\n{}",
            server.log
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_task_queue_example_backs_off_exponentially_and_dead_letters_after_max_retries() {
    let state = tempfile::tempdir().expect("tempdir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/js_task_queue");
    let server = dev(&example, state.path());
    let (status, response) = send(
        server.ingress,
        "POST",
        "/tasks",
        &[("content-type", "application/json")],
        br#"[{"id": "ok"}, {"id": "flaky", "failTimes": 2}, {"id": "broken", "failTimes": 99}]"#,
    );
    assert_eq!((status, response.as_str()), (200, r#"{"queued":3}"#));

    let ok = wait_json(&server, "/tasks/ok", |v| v["done"] == true);
    assert_eq!(ok["attempts"].as_array().map(Vec::len), Some(1), "{ok}");

    let flaky = wait_json(&server, "/tasks/flaky", |v| v["done"] == true);
    let attempts = flaky["attempts"].as_array().expect("attempts");
    let numbers: Vec<i64> = attempts
        .iter()
        .map(|a| a["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3], "{flaky}");
    // The backoff doubles (base 1 s from vars), and no retry comes before its delay.
    let delays: Vec<f64> = attempts[..2]
        .iter()
        .map(|a| a["retryDelaySeconds"].as_f64().unwrap())
        .collect();
    assert_eq!(delays, [1.0, 2.0], "{flaky}");
    for pair in attempts.windows(2) {
        let gap = pair[1]["at"].as_i64().unwrap() - pair[0]["at"].as_i64().unwrap();
        let delay_ms = (pair[0]["retryDelaySeconds"].as_f64().unwrap() * 1000.0) as i64;
        assert!(
            gap >= delay_ms,
            "retried after {gap} ms, before its {delay_ms} ms delay: {flaky}"
        );
    }
    assert!(flaky["failed"].is_null(), "{flaky}");

    // max_retries = 3: four attempts, then the dead-letter queue's consumer stores the task.
    let broken = wait_json(&server, "/tasks/broken", |v| !v["failed"].is_null());
    let numbers: Vec<i64> = broken["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4], "{broken}");
    assert_eq!(broken["done"], false, "{broken}");
    assert_eq!(broken["failed"]["task"]["id"], "broken", "{broken}");
    assert_eq!(
        broken["failed"]["attempts"], 1,
        "first delivery from the DLQ: {broken}"
    );
    assert!(
        broken["failed"]["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "timestamp is a Date (serialized as ISO 8601): {broken}"
    );
    // Nothing more arrives for it.
    std::thread::sleep(Duration::from_millis(1500));
    let again = get_json(&server, "/tasks/broken");
    assert_eq!(again["attempts"], broken["attempts"]);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// A consumer that records what it saw in KV, acks some messages and then throws; the messages
/// it did not ack come back with `attempts` 2, the acked ones never do.
#[test]
fn an_exception_retries_every_message_not_explicitly_acked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "wrangler.toml",
        r#"name = "batch-rules"
main = "index.js"
[[kv_namespaces]]
binding = "SEEN"
id = "seen"
[[queues.producers]]
binding = "Q"
queue = "rules"
[[queues.consumers]]
queue = "rules"
max_batch_size = 10
max_batch_timeout = 1
max_retries = 1
retry_delay = 0
"#,
    );
    write(
        root,
        "index.js",
        r#"
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/send") {
      await env.Q.sendBatch([
        { body: { n: 1, ack: true } },
        { body: "plain text", contentType: "text" },
        { body: new Uint8Array([1, 2, 3]), contentType: "bytes" },
        { body: { n: 4 } },
      ]);
      return new Response("sent");
    }
    const list = await env.SEEN.list({ prefix: "seen:" });
    const seen = [];
    for (const key of list.keys) seen.push(await env.SEEN.get(key.name, "json"));
    seen.sort((a, b) => a.order - b.order);
    return Response.json(seen);
  },
  async queue(batch, env) {
    let i = 0;
    for (const message of batch.messages) {
      const body = message.body;
      const shape =
        typeof body === "string" ? `text:${body}` :
        body instanceof ArrayBuffer ? `bytes:${[...new Uint8Array(body)].join(",")}` :
        `json:${JSON.stringify(body)}`;
      await env.SEEN.put(`seen:${message.id}:${message.attempts}`, JSON.stringify({
        order: Date.now() * 100 + i++,
        queue: batch.queue,
        shape,
        attempts: message.attempts,
        idLength: message.id.length,
        timestampIsDate: message.timestamp instanceof Date,
      }));
      if (body && body.ack) message.ack();
    }
    if (batch.messages.some((m) => m.attempts === 1)) throw new Error("boom");
  },
};
"#,
    );
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(root, state.path());
    let (status, response) = http(server.ingress, "GET", "/send", &[]);
    assert_eq!(status, 200, "{response}");
    let seen = wait_json(&server, "/", |v| v.as_array().is_some_and(|a| a.len() >= 7));
    let seen = seen.as_array().unwrap();
    let mut first: Vec<String> = Vec::new();
    let mut second: Vec<String> = Vec::new();
    for entry in seen {
        assert_eq!(entry["queue"], "rules");
        assert_eq!(entry["idLength"], 32, "{entry}");
        assert_eq!(entry["timestampIsDate"], true, "{entry}");
        let shape = entry["shape"].as_str().unwrap().to_owned();
        match entry["attempts"].as_i64() {
            Some(1) => first.push(shape),
            Some(2) => second.push(shape),
            other => panic!("attempts {other:?}: {entry}"),
        }
    }
    first.sort();
    second.sort();
    assert_eq!(
        first,
        [
            "bytes:1,2,3",
            r#"json:{"n":1,"ack":true}"#,
            r#"json:{"n":4}"#,
            "text:plain text"
        ]
    );
    assert_eq!(
        second,
        ["bytes:1,2,3", r#"json:{"n":4}"#, "text:plain text"]
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get_json(&server, "/").as_array().map(Vec::len), Some(7));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

/// `ackAll()` holds even when the handler then throws; `retryAll()` retries every message of a
/// handler that resolved.
#[test]
fn ack_all_and_retry_all_decide_for_the_whole_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "wrangler.toml",
        r#"name = "batch-calls"
main = "index.js"
[[kv_namespaces]]
binding = "SEEN"
id = "seen"
[[queues.producers]]
binding = "ACKED"
queue = "acked"
[[queues.producers]]
binding = "RETRIED"
queue = "retried"
[[queues.consumers]]
queue = "acked"
max_batch_size = 10
max_batch_timeout = 1
[[queues.consumers]]
queue = "retried"
max_batch_size = 10
max_batch_timeout = 1
max_retries = 1
"#,
    );
    write(
        root,
        "index.js",
        r#"
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/send") {
      await env.ACKED.sendBatch([{ body: 1 }, { body: 2 }]);
      await env.RETRIED.sendBatch([{ body: 1 }, { body: 2 }]);
      return new Response("sent");
    }
    const seen = [];
    for (const key of (await env.SEEN.list()).keys) seen.push(key.name);
    return Response.json(seen.sort());
  },
  async queue(batch, env) {
    for (const message of batch.messages) {
      await env.SEEN.put(`${batch.queue}:${message.body}:${message.attempts}`, "1");
    }
    if (batch.queue === "acked") {
      batch.ackAll();
      throw new Error("after ackAll");
    }
    batch.retryAll({ delaySeconds: 0 });
  },
};
"#,
    );
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(root, state.path());
    let (status, response) = http(server.ingress, "GET", "/send", &[]);
    assert_eq!(status, 200, "{response}");
    let all = [
        "acked:1:1",
        "acked:2:1",
        "retried:1:1",
        "retried:1:2",
        "retried:2:1",
        "retried:2:2",
    ];
    let seen = wait_json(&server, "/", |v| {
        v.as_array().is_some_and(|a| a.len() >= all.len())
    });
    assert_eq!(seen, serde_json::json!(all));
    // max_retries = 1: nothing after the second attempt, and the acked batch never comes back.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get_json(&server, "/"), serde_json::json!(all));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
