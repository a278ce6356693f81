//! Random and malformed requests to every admin endpoint of a running server (KV, Queues,
//! Workflows, Durable Objects, scripts, metrics): random methods, path parameters, query
//! strings, content types and bodies (bytes, broken JSON, JSON of the wrong shape, near-valid
//! bodies with one field wrong, broken multipart). No answer may be a 5xx, every error must be Cloudflare's envelope,
//! and the server must keep answering `/healthz`.
//!
//! Seeded and repeatable: `BURROW_FUZZ_SEED=N` replays or explores another sequence,
//! `BURROW_FUZZ_REQUESTS=N` changes how many requests are sent (default 5,000, a few seconds).

mod support;

use std::time::Duration;

use burrow_sdk::workflow::{WaitOptions, WorkflowEntrypoint};
use burrow_sdk::{App, Env, WorkflowError, WorkflowEvent, WorkflowStep};
use serde_json::{Value, json};
use support::{app_options, send};

const TOKEN: &str = "fuzz-token";

const CONFIG: &str = r#"
name = "fuzzed"
compatibility_date = "2025-04-01"
kv_namespaces = [ { binding = "SESSIONS", id = "sessions-id" } ]

[[queues.producers]]
binding = "JOBS"
queue = "jobs"

[[queues.consumers]]
queue = "jobs"
type = "http_pull"

[[workflows]]
binding = "APPROVAL"
name = "approval"
class_name = "Approval"
"#;

/// Waits for an event, then finishes.
struct Approval;

impl WorkflowEntrypoint for Approval {
    type Params = Value;
    type Output = Value;

    fn new(_env: Env) -> Self {
        Approval
    }

    async fn run(
        &self,
        _event: WorkflowEvent<Value>,
        step: &WorkflowStep,
    ) -> Result<Value, WorkflowError> {
        let approval = step
            .wait_for_event::<Value>("approval", WaitOptions::new("approval"))
            .await?;
        Ok(approval.payload)
    }
}

/// xorshift64*: small, seeded, and enough to pick among choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Every admin endpoint: method and path below `/client/v4/accounts/:account` (or absolute).
const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/storage/kv/namespaces"),
    ("POST", "/storage/kv/namespaces"),
    ("GET", "/storage/kv/namespaces/{ns}"),
    ("DELETE", "/storage/kv/namespaces/{ns}"),
    ("GET", "/storage/kv/namespaces/{ns}/values/{key}"),
    ("PUT", "/storage/kv/namespaces/{ns}/values/{key}"),
    ("DELETE", "/storage/kv/namespaces/{ns}/values/{key}"),
    ("GET", "/storage/kv/namespaces/{ns}/metadata/{key}"),
    ("GET", "/storage/kv/namespaces/{ns}/keys"),
    ("PUT", "/storage/kv/namespaces/{ns}/bulk"),
    ("DELETE", "/storage/kv/namespaces/{ns}/bulk"),
    ("POST", "/storage/kv/namespaces/{ns}/bulk/delete"),
    ("GET", "/queues"),
    ("POST", "/queues"),
    ("GET", "/queues/{queue}"),
    ("GET", "/queues/{queue}/metrics"),
    ("GET", "/queues/{queue}/consumers"),
    ("PUT", "/queues/{queue}/consumers/{consumer}"),
    ("POST", "/queues/{queue}/messages"),
    ("POST", "/queues/{queue}/messages/batch"),
    ("POST", "/queues/{queue}/messages/pull"),
    ("POST", "/queues/{queue}/messages/ack"),
    ("POST", "/queues/{queue}/purge"),
    ("DELETE", "/queues/{queue}"),
    ("GET", "/workflows"),
    ("GET", "/workflows/{workflow}"),
    ("GET", "/workflows/{workflow}/instances"),
    ("POST", "/workflows/{workflow}/instances"),
    ("POST", "/workflows/{workflow}/instances/batch"),
    ("GET", "/workflows/{workflow}/instances/{id}"),
    ("PATCH", "/workflows/{workflow}/instances/{id}/status"),
    (
        "POST",
        "/workflows/{workflow}/instances/{id}/events/{event}",
    ),
    ("GET", "/workers/scripts"),
    ("GET", "/workers/durable_objects/namespaces"),
    ("GET", "/workers/durable_objects/namespaces/{ns}/objects"),
    (
        "POST",
        "/workers/durable_objects/namespaces/{ns}/objects/{key}/query",
    ),
    ("GET", "!/metrics"),
    ("GET", "!/healthz"),
];

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// A path segment: usually a real name, often junk.
fn segment(rng: &mut Rng, real: &[&str]) -> String {
    match rng.below(10) {
        0..=4 => (*rng.pick(real)).to_owned(),
        5 => String::new(),
        6 => "%ff%fe%00%2F..".to_owned(),
        7 => "x".repeat(rng.below(2000) + 1),
        8 => "..".to_owned(),
        _ => junk_text(rng, 40)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.~".contains(c) {
                    c.to_string()
                } else {
                    format!("%{:02X}", c as u32 & 0xff)
                }
            })
            .collect(),
    }
}

fn junk_text(rng: &mut Rng, max: usize) -> String {
    let length = rng.below(max + 1);
    (0..length)
        .map(|_| match rng.below(6) {
            0 => char::from_u32(rng.below(0x2FFF) as u32).unwrap_or('?'),
            _ => (b' ' + rng.below(95) as u8) as char,
        })
        .collect()
}

/// A random JSON value, nested up to `depth`.
fn junk_json(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => json!(rng.next() as i64),
        3 => json!(f64::from(rng.below(1000) as u32) / 7.0 - 50.0),
        4 => json!(junk_text(rng, 30)),
        5 => json!(*rng.pick(&["", "0", "-1", "1e309", "approval", "queued", "terminate"])),
        6 => Value::Array(
            (0..rng.below(5))
                .map(|_| junk_json(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let keys = [
                "body",
                "messages",
                "acks",
                "retries",
                "lease_id",
                "delay_seconds",
                "key",
                "value",
                "base64",
                "metadata",
                "expiration",
                "expiration_ttl",
                "title",
                "queue_name",
                "settings",
                "status",
                "instance_id",
                "id",
                "params",
                "payload",
                "batch_size",
                "visibility_timeout_ms",
                "content_type",
                "action",
            ];
            let mut object = serde_json::Map::new();
            for _ in 0..rng.below(6) {
                object.insert((*rng.pick(&keys)).to_owned(), junk_json(rng, depth - 1));
            }
            Value::Object(object)
        }
    }
}

/// Bodies that are close to what an endpoint takes, with one part wrong or missing.
fn near_valid(rng: &mut Rng) -> Value {
    let mut value = rng
        .pick(&[
            json!({"title": "fuzz-ns"}),
            json!([{"key": "a", "value": "b", "expiration_ttl": 3600, "metadata": {"x": 1}}]),
            json!(["a", "b"]),
            json!({"queue_name": "q-fuzz"}),
            json!({"body": {"n": 1}, "content_type": "json", "delay_seconds": 0}),
            json!({"messages": [{"body": "x"}, {"body": "y", "content_type": "text"}]}),
            json!({"batch_size": 5, "visibility_timeout_ms": 1000}),
            json!({"acks": [{"lease_id": "0-1-abc"}], "retries": [{"lease_id": "x", "delay_seconds": 1}]}),
            json!({"instance_id": "fuzz-1", "params": {"n": 1}}),
            json!([{"instance_id": "fuzz-2"}, {"params": 3}]),
            json!({"status": "pause"}),
            json!({"status": "terminate"}),
            json!({"n": 1}),
        ])
        .clone();
    mutate(rng, &mut value);
    value
}

/// Changes one leaf of `value` to a random value, or removes one field.
fn mutate(rng: &mut Rng, value: &mut Value) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            let key = map
                .keys()
                .nth(rng.below(map.len()))
                .cloned()
                .unwrap_or_default();
            if rng.chance(30) {
                map.remove(&key);
            } else if let Some(child) = map.get_mut(&key) {
                mutate(rng, child);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let index = rng.below(items.len());
            mutate(rng, &mut items[index]);
        }
        _ => *value = junk_json(rng, 2),
    }
}

fn body(rng: &mut Rng) -> (Vec<u8>, Option<String>) {
    match rng.below(10) {
        0 => (Vec::new(), None),
        1 => {
            let length = rng.below(3000);
            ((0..length).map(|_| rng.next() as u8).collect(), None)
        }
        2 => {
            let text = near_valid(rng).to_string();
            let cut = rng.below(text.len().max(1));
            (
                text.as_bytes()[..cut].to_vec(),
                Some("application/json".into()),
            )
        }
        3 => (
            junk_json(rng, 4).to_string().into_bytes(),
            Some("application/json".into()),
        ),
        4 => {
            let boundary = junk_text(rng, 10).replace(['"', '\r', '\n'], "");
            let mut form = format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\nv\r\n"
            );
            if rng.chance(50) {
                form.push_str(&format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{}\r\n",
                    junk_text(rng, 50)
                ));
            }
            if rng.chance(70) {
                form.push_str(&format!("--{boundary}--\r\n"));
            }
            (
                form.into_bytes(),
                Some(format!("multipart/form-data; boundary=\"{boundary}\"")),
            )
        }
        5 => (
            format!("[{}]", "[".repeat(rng.below(5000))).into_bytes(),
            Some("application/json".into()),
        ),
        _ => (
            near_valid(rng).to_string().into_bytes(),
            Some("application/json".into()),
        ),
    }
}

fn query(rng: &mut Rng) -> String {
    let names = [
        "page",
        "per_page",
        "cursor",
        "limit",
        "prefix",
        "expiration",
        "expiration_ttl",
        "metadata",
        "status",
        "order",
        "direction",
        "key_count",
    ];
    let values = [
        "0",
        "1",
        "-1",
        "abc",
        "99999999999999999999",
        "1000",
        "1001",
        "3600",
        "%zz",
        "",
        "running",
        "eyJ",
        "AAAA",
        "%7B%22a%22%3A1%7D",
        "title",
        "desc",
        "1e3",
    ];
    let mut pairs = Vec::new();
    for _ in 0..rng.below(4) {
        let name = *rng.pick(&names);
        let value = if rng.chance(20) {
            junk_text(rng, 20)
                .bytes()
                .map(|byte| format!("%{byte:02X}"))
                .collect()
        } else {
            (*rng.pick(&values)).to_owned()
        };
        pairs.push(format!("{name}={value}"));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

#[test]
fn random_and_malformed_requests_never_get_a_5xx() {
    let seed: u64 = std::env::var("BURROW_FUZZ_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0x5EED_0B5E_55ED);
    let requests: usize = std::env::var("BURROW_FUZZ_REQUESTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(5_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let (loaded, options) = app_options(dir.path(), CONFIG, &[TOKEN]);
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
    let admin = server.admin_address();
    let bearer = format!("Bearer {TOKEN}");
    let healthy = || {
        let (status, text) = send(admin, "GET", "/healthz", &[], b"");
        assert_eq!(status, 200, "the server stopped answering /healthz: {text}");
    };

    let mut rng = Rng((seed ^ 0x9E37_79B9_7F4A_7C15).max(1));
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for n in 0..requests {
        let (mut method, template) = *rng.pick(ENDPOINTS);
        if rng.chance(10) {
            method = *rng.pick(METHODS);
        }
        let mut path = match template.strip_prefix('!') {
            Some(absolute) => absolute.to_owned(),
            None => {
                let account = if rng.chance(90) {
                    "acc".to_owned()
                } else {
                    segment(&mut rng, &["x"])
                };
                format!("/client/v4/accounts/{account}{template}")
            }
        };
        for (name, real) in [
            (
                "{ns}",
                &["sessions-id", "nope", "__burrow_kv_namespaces"][..],
            ),
            ("{key}", &["a", "user:1", "%F0%9F%A6%80", "k"][..]),
            ("{queue}", &["6a6f6273", "jobs", "nope"][..]),
            ("{workflow}", &["approval", "nope"][..]),
            ("{id}", &["fuzz-1", "fuzz-2", "nope"][..]),
            ("{event}", &["approval", "other"][..]),
            ("{consumer}", &["nope", "x"][..]),
        ] {
            if path.contains(name) {
                let value = segment(&mut rng, real);
                path = path.replacen(name, &value, 1);
            }
        }
        path.push_str(&query(&mut rng));
        let (payload, content_type) = body(&mut rng);
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if rng.chance(95) {
            headers.push(("authorization", &bearer));
        }
        if let Some(content_type) = &content_type
            && rng.chance(90)
        {
            headers.push(("content-type", content_type));
        }
        let (status, text) = send(admin, method, &path, &headers, &payload);
        *by_status.entry(status).or_default() += 1;
        assert!(
            status < 500,
            "seed {seed}, request {n}: {method} {path} with {} body bytes ({content_type:?}) got \
             {status}: {text}",
            payload.len()
        );
        if status >= 400 && method != "HEAD" && !text.is_empty() {
            let envelope: Value = serde_json::from_str(&text).unwrap_or_else(|error| {
                panic!("seed {seed}, request {n}: {method} {path}: {status} is not JSON ({error}): {text}")
            });
            assert_eq!(envelope["success"], false, "{method} {path}: {text}");
            assert!(
                envelope["errors"][0]["code"].is_u64()
                    && envelope["errors"][0]["message"].is_string(),
                "{method} {path}: {text}"
            );
        }
        if n % 100 == 0 {
            healthy();
        }
    }
    healthy();
    eprintln!("seed {seed}: {requests} requests, answers by status: {by_status:?}");
    assert!(
        by_status.keys().any(|status| *status == 200)
            && by_status.keys().any(|status| *status == 400),
        "the requests reached both success and validation paths: {by_status:?}"
    );
    control
        .block_on(server.shutdown(Duration::from_secs(5)))
        .expect("shutdown");
}
