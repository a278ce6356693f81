//! The admin API of a running `burrow dev`, spoken to over raw HTTP: KV namespaces (list with
//! pages, create, delete), queues created and deleted, bulk write and delete, and every endpoint's error cases (wrong or
//! missing token, unknown namespace or queue, bad cursor, bad page, oversize value, malformed
//! bodies) in Cloudflare's error shape.

mod support;

use serde_json::{Value, json};
use support::{command, send, start, text, write};

const CONFIG: &str = r#"
name = "shop"
main = "index.js"
compatibility_date = "2025-01-01"
kv_namespaces = [ { binding = "SESSIONS", id = "sessions-id" } ]

[[queues.producers]]
binding = "JOBS"
queue = "jobs"

[[queues.consumers]]
queue = "jobs"
type = "http_pull"
"#;

const TOKEN: &str = "test-token";
const ACCOUNT: &str = "/client/v4/accounts/acc";

struct Api {
    address: std::net::SocketAddr,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let bearer = format!("Bearer {TOKEN}");
        let (status, text) = send(
            self.address,
            method,
            &format!("{ACCOUNT}{path}"),
            &[("authorization", &bearer)],
            body,
        );
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{method} {path}: not JSON ({error}): {text:?}"));
        (status, value)
    }

    fn ok(&self, method: &str, path: &str, body: &[u8]) -> Value {
        let (status, value) = self.call(method, path, body);
        assert_eq!(status, 200, "{method} {path}: {value}");
        assert_eq!(value["success"], true, "{value}");
        value
    }

    /// Asserts Cloudflare's error shape with `status` and `code`; returns the first message.
    fn fails(&self, method: &str, path: &str, body: &[u8], status: u16, code: u64) -> String {
        let (got, value) = self.call(method, path, body);
        assert_error(got, &value, status, code, &format!("{method} {path}"));
        value["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

fn assert_error(got: u16, value: &Value, status: u16, code: u64, what: &str) {
    assert_eq!(got, status, "{what}: {value}");
    assert_eq!(value["success"], false, "{what}: {value}");
    assert_eq!(value["result"], Value::Null, "{what}: {value}");
    assert!(value["messages"].is_array(), "{what}: {value}");
    assert_eq!(value["errors"][0]["code"], code, "{what}: {value}");
    assert!(
        !value["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{what}: {value}"
    );
}

fn server(dir: &std::path::Path) -> support::Server {
    write(dir, "wrangler.toml", CONFIG);
    write(
        dir,
        "index.js",
        "export default { fetch() { return new Response('x') } }\n",
    );
    start(
        command(&[
            "dev",
            text(dir),
            "--port",
            "0",
            "--admin-address",
            "127.0.0.1:0",
            "--persist-to",
            text(&dir.join("data")),
        ])
        .env("BURROW_API_TOKEN", TOKEN),
    )
}

#[test]
fn queues_are_created_and_deleted_unless_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path());
    let api = Api {
        address: server.admin,
    };
    let names = |api: &Api| -> Vec<String> {
        api.ok("GET", "/queues", b"")["result"]
            .as_array()
            .expect("queue list")
            .iter()
            .map(|queue| queue["queue_name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };

    let created = api.ok("POST", "/queues", br#"{"queue_name":"scratch"}"#);
    let id = created["result"]["queue_id"]
        .as_str()
        .expect("queue id")
        .to_owned();
    api.ok(
        "POST",
        "/queues/scratch/messages",
        br#"{"body":"left behind"}"#,
    );
    assert_eq!(names(&api), ["jobs", "scratch"]);
    let filtered = api.ok("GET", "/queues?name=scratch", b"");
    assert_eq!(
        filtered["result"].as_array().map(Vec::len),
        Some(1),
        "{filtered}"
    );
    assert_eq!(filtered["result"][0]["queue_id"], id.as_str(), "{filtered}");

    // Deleting by id removes the queue and its messages.
    let deleted = api.ok("DELETE", &format!("/queues/{id}"), b"");
    assert_eq!(deleted["result"], Value::Null, "{deleted}");
    assert_eq!(names(&api), ["jobs"]);
    api.fails("GET", "/queues/scratch", b"", 404, 10104);
    api.fails("DELETE", "/queues/scratch", b"", 404, 10104);
    api.fails(
        "POST",
        "/queues/scratch/messages",
        br#"{"body":1}"#,
        404,
        10104,
    );

    // A queue of the same name starts empty.
    api.ok("POST", "/queues", br#"{"queue_name":"scratch"}"#);
    let metrics = api.ok("GET", "/queues/scratch/metrics", b"");
    assert_eq!(metrics["result"]["backlog_count"], 0, "{metrics}");
    api.ok("DELETE", "/queues/scratch", b"");

    // A queue the configuration binds would come back at the next start: refused, kept.
    let message = api.fails("DELETE", "/queues/jobs", b"", 409, 11004);
    assert!(
        message.contains("\"jobs\"") && message.contains("[[queues.producers]] binding \"JOBS\""),
        "{message}"
    );
    assert_eq!(names(&api), ["jobs"]);
}

#[test]
fn consumer_settings_change_at_runtime_and_apply_to_the_next_pull() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path());
    let api = Api {
        address: server.admin,
    };
    let consumer_id = api.ok("GET", "/queues/jobs/consumers", b"")["result"][0]["consumer_id"]
        .as_str()
        .expect("consumer id")
        .to_owned();
    let path = format!("/queues/jobs/consumers/{consumer_id}");

    // Out of range, the wrong kind of setting, an unknown consumer, another dead-letter queue.
    let message = api.fails(
        "PUT",
        &path,
        br#"{"settings":{"max_retries":101}}"#,
        400,
        10207,
    );
    assert!(
        message.contains("max_retries is 101; it must be between 0 and 100"),
        "{message}"
    );
    let message = api.fails(
        "PUT",
        &path,
        br#"{"settings":{"batch_size":5}}"#,
        400,
        10207,
    );
    assert!(message.contains("push consumers"), "{message}");
    api.fails(
        "PUT",
        "/queues/jobs/consumers/nobody",
        br#"{"settings":{}}"#,
        404,
        11000,
    );
    api.fails(
        "PUT",
        &path,
        br#"{"settings":{},"dead_letter_queue":"elsewhere"}"#,
        400,
        10207,
    );

    // Pulls one message, retries it, and pulls again: what comes back.
    let retry_and_pull = |body: &str| -> Value {
        api.ok(
            "POST",
            "/queues/jobs/messages",
            json!({ "body": body }).to_string().as_bytes(),
        );
        let pulled = api.ok(
            "POST",
            "/queues/jobs/messages/pull",
            br#"{"batch_size":10}"#,
        );
        let messages = pulled["result"]["messages"].as_array().expect("messages");
        assert_eq!(messages.len(), 1, "{pulled}");
        let lease = messages[0]["lease_id"].as_str().expect("lease").to_owned();
        api.ok(
            "POST",
            "/queues/jobs/messages/ack",
            json!({"retries": [{"lease_id": lease}]})
                .to_string()
                .as_bytes(),
        );
        api.ok(
            "POST",
            "/queues/jobs/messages/pull",
            br#"{"batch_size":10}"#,
        )["result"]["messages"]
            .clone()
    };

    // With the configured max_retries (3), a retried message comes back for a second attempt.
    let back = retry_and_pull("first");
    assert_eq!(back.as_array().map(Vec::len), Some(1), "{back}");
    assert_eq!(back[0]["attempts"], 2, "{back}");
    let lease = back[0]["lease_id"].as_str().expect("lease").to_owned();
    api.ok(
        "POST",
        "/queues/jobs/messages/ack",
        json!({"acks": [{"lease_id": lease}]})
            .to_string()
            .as_bytes(),
    );

    // With max_retries 0, the same retry ends the message (there is no dead-letter queue).
    let changed = api.ok(
        "PUT",
        &path,
        br#"{"settings":{"max_retries":0,"visibility_timeout_ms":60000}}"#,
    );
    assert_eq!(changed["result"]["settings"]["max_retries"], 0, "{changed}");
    assert_eq!(
        changed["result"]["settings"]["visibility_timeout_ms"], 60000,
        "{changed}"
    );
    let listed = api.ok("GET", "/queues/jobs/consumers", b"");
    assert_eq!(
        listed["result"][0]["settings"],
        changed["result"]["settings"]
    );
    assert_eq!(retry_and_pull("once"), json!([]));
    let metrics = api.ok("GET", "/queues/jobs/metrics", b"");
    assert_eq!(metrics["result"]["backlog_count"], 0, "{metrics}");
}

#[test]
fn kv_namespaces_are_created_listed_in_pages_and_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path());
    let api = Api {
        address: server.admin,
    };

    let created = api.ok(
        "POST",
        "/storage/kv/namespaces",
        br#"{"title":"made-by-api"}"#,
    );
    let id = created["result"]["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 32, "{created}");
    assert_eq!(created["result"]["title"], "made-by-api");
    let message = api.fails(
        "POST",
        "/storage/kv/namespaces",
        br#"{"title":"made-by-api"}"#,
        400,
        10014,
    );
    assert!(message.contains("already exists"), "{message}");

    // Two namespaces, one per page; the page after the last is empty (the SDKs stop there).
    let first = api.ok(
        "GET",
        "/storage/kv/namespaces?per_page=1&page=1&order=title&direction=asc",
        b"",
    );
    assert_eq!(first["result"][0]["title"], "made-by-api", "{first}");
    assert_eq!(
        first["result_info"],
        json!({"page": 1, "per_page": 1, "count": 1, "total_count": 2, "total_pages": 2})
    );
    let second = api.ok(
        "GET",
        "/storage/kv/namespaces?per_page=1&page=2&order=title",
        b"",
    );
    assert_eq!(second["result"][0]["id"], "sessions-id", "{second}");
    let third = api.ok("GET", "/storage/kv/namespaces?per_page=1&page=3", b"");
    assert_eq!(third["result"], json!([]), "{third}");
    let message = api.fails("GET", "/storage/kv/namespaces?per_page=0", b"", 400, 99400);
    assert!(message.starts_with("per_page"), "{message}");
    api.fails(
        "GET",
        "/storage/kv/namespaces?direction=up",
        b"",
        400,
        99400,
    );
    api.ok("GET", &format!("/storage/kv/namespaces/{id}"), b"");

    // Bulk write (text and base64), read back, bulk delete (both of Cloudflare's forms).
    let pairs = json!([
        {"key": "a", "value": "one"},
        {"key": "b", "value": "dHdv", "base64": true, "metadata": {"n": 2}},
        {"key": "c", "value": "three", "expiration_ttl": 3600},
    ]);
    let written = api.ok(
        "PUT",
        &format!("/storage/kv/namespaces/{id}/bulk"),
        pairs.to_string().as_bytes(),
    );
    assert_eq!(
        written["result"],
        json!({"successful_key_count": 3, "unsuccessful_keys": []})
    );
    let (status, text) = send(
        server.admin,
        "GET",
        &format!("{ACCOUNT}/storage/kv/namespaces/{id}/values/b"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        b"",
    );
    assert_eq!((status, text.as_str()), (200, "two"));
    let metadata = api.ok(
        "GET",
        &format!("/storage/kv/namespaces/{id}/metadata/b"),
        b"",
    );
    assert_eq!(metadata["result"], json!({"n": 2}));
    let keys = api.ok("GET", &format!("/storage/kv/namespaces/{id}/keys"), b"");
    let names: Vec<&str> = keys["result"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|key| key["name"].as_str())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(keys["result"][2]["expiration"].is_i64(), "{keys}");
    let deleted = api.ok(
        "POST",
        &format!("/storage/kv/namespaces/{id}/bulk/delete"),
        br#"["a"]"#,
    );
    assert_eq!(deleted["result"]["successful_key_count"], 1);
    api.ok(
        "DELETE",
        &format!("/storage/kv/namespaces/{id}/bulk"),
        br#"["b"]"#,
    );
    let keys = api.ok("GET", &format!("/storage/kv/namespaces/{id}/keys"), b"");
    assert_eq!(keys["result"].as_array().map(Vec::len), Some(1), "{keys}");

    // A bad pair rejects the whole bulk write, naming its index; nothing is written.
    let message = api.fails(
        "PUT",
        &format!("/storage/kv/namespaces/{id}/bulk"),
        br#"[{"key":"ok","value":"x"},{"key":"","value":"y"}]"#,
        400,
        10001,
    );
    assert!(message.starts_with("[1]"), "{message}");
    let message = api.fails(
        "PUT",
        &format!("/storage/kv/namespaces/{id}/bulk"),
        br#"[{"key":"ok"}]"#,
        400,
        6007,
    );
    assert!(
        message.contains("value"),
        "names the missing field: {message}"
    );
    let message = api.fails(
        "PUT",
        &format!("/storage/kv/namespaces/{id}/bulk"),
        br#"[{"key":"ok","value":"x"},{"key":7,"value":"y"}]"#,
        400,
        6007,
    );
    assert!(
        message.contains("[1].key"),
        "names the field's path: {message}"
    );
    let too_many: Vec<Value> = (0..10_001)
        .map(|n| json!({"key": n.to_string(), "value": ""}))
        .collect();
    let message = api.fails(
        "PUT",
        &format!("/storage/kv/namespaces/{id}/bulk"),
        serde_json::to_vec(&too_many).expect("json").as_slice(),
        400,
        10001,
    );
    assert!(message.contains("10000"), "{message}");
    let keys = api.ok("GET", &format!("/storage/kv/namespaces/{id}/keys"), b"");
    assert_eq!(keys["result"].as_array().map(Vec::len), Some(1), "{keys}");

    // Configured namespaces cannot be deleted; created ones can, with their keys.
    api.fails(
        "DELETE",
        "/storage/kv/namespaces/sessions-id",
        b"",
        400,
        10001,
    );
    api.ok("DELETE", &format!("/storage/kv/namespaces/{id}"), b"");
    api.fails(
        "GET",
        &format!("/storage/kv/namespaces/{id}/keys"),
        b"",
        404,
        10013,
    );
    let listed = api.ok("GET", "/storage/kv/namespaces", b"");
    assert_eq!(listed["result_info"]["total_count"], 1, "{listed}");
}

#[test]
fn every_endpoint_fails_in_cloudflares_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(dir.path());
    let api = Api {
        address: server.admin,
    };

    // Wrong and missing tokens: 401, code 10000, before anything else (even unknown paths).
    for path in [
        "/storage/kv/namespaces",
        "/queues",
        "/queues/jobs/messages/pull",
        "/workflows",
        "/no/such/path",
    ] {
        for headers in [
            vec![("authorization", "Bearer wrong")],
            vec![("authorization", "Basic dGVzdA==")],
            vec![],
        ] {
            let (status, text) = send(
                server.admin,
                "GET",
                &format!("{ACCOUNT}{path}"),
                &headers,
                b"",
            );
            let value: Value = serde_json::from_str(&text).expect("JSON");
            assert_error(status, &value, 401, 10000, path);
        }
    }
    let (status, text) = send(server.admin, "GET", "/metrics", &[], b"");
    let value: Value = serde_json::from_str(&text).expect("JSON");
    assert_error(status, &value, 401, 10000, "/metrics");

    // Unknown namespace, unknown key, bad cursor, bad limit, oversize value.
    for (method, path) in [
        ("GET", "/storage/kv/namespaces/nope/keys"),
        ("GET", "/storage/kv/namespaces/nope/values/k"),
        ("PUT", "/storage/kv/namespaces/nope/values/k"),
        ("DELETE", "/storage/kv/namespaces/nope/values/k"),
        ("GET", "/storage/kv/namespaces/nope/metadata/k"),
        ("PUT", "/storage/kv/namespaces/nope/bulk"),
        ("POST", "/storage/kv/namespaces/nope/bulk/delete"),
        ("DELETE", "/storage/kv/namespaces/nope"),
        ("GET", "/storage/kv/namespaces/__burrow_kv_namespaces/keys"),
    ] {
        api.fails(method, path, b"[]", 404, 10013);
    }
    api.fails(
        "GET",
        "/storage/kv/namespaces/sessions-id/values/missing",
        b"",
        404,
        10009,
    );
    let message = api.fails(
        "GET",
        "/storage/kv/namespaces/sessions-id/keys?cursor=not-a-cursor!",
        b"",
        400,
        10001,
    );
    assert!(message.to_lowercase().contains("cursor"), "{message}");
    api.fails(
        "GET",
        "/storage/kv/namespaces/sessions-id/keys?limit=x",
        b"",
        400,
        10001,
    );
    api.fails(
        "GET",
        "/storage/kv/namespaces/sessions-id/keys?limit=5000",
        b"",
        400,
        10001,
    );
    let oversize = vec![b'x'; 25 * 1024 * 1024 + 1];
    let (status, text) = send(
        server.admin,
        "PUT",
        &format!("{ACCOUNT}/storage/kv/namespaces/sessions-id/values/big"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        &oversize,
    );
    let value: Value = serde_json::from_str(&text).expect("JSON");
    assert_error(status, &value, 413, 10001, "oversize value");
    assert!(text.contains("exceeds limit of 26214400"), "{text}");
    let long_key = "k".repeat(513);
    api.fails(
        "PUT",
        &format!("/storage/kv/namespaces/sessions-id/values/{long_key}"),
        b"v",
        414,
        10001,
    );
    api.fails(
        "PUT",
        "/storage/kv/namespaces/sessions-id/values/k?expiration_ttl=abc",
        b"v",
        400,
        10001,
    );
    api.fails("POST", "/storage/kv/namespaces", b"{", 400, 6007);
    api.fails(
        "POST",
        "/storage/kv/namespaces",
        br#"{"name":"x"}"#,
        400,
        6007,
    );

    // Queues: unknown queue, malformed bodies, bad page.
    for (method, path) in [
        ("GET", "/queues/nope"),
        ("POST", "/queues/nope/messages"),
        ("POST", "/queues/nope/messages/pull"),
        ("POST", "/queues/nope/messages/ack"),
    ] {
        let (status, value) = api.call(method, path, br#"{"body":"x"}"#);
        assert!(
            status == 404 || status == 400,
            "{method} {path}: {status} {value}"
        );
        assert_eq!(value["success"], false, "{value}");
    }
    let message = api.fails(
        "POST",
        "/queues/jobs/messages",
        br#"{"bodyy":1}"#,
        400,
        6007,
    );
    assert!(!message.is_empty());
    api.fails("POST", "/queues/jobs/messages/ack", b"[1,2]", 400, 6007);
    api.fails("POST", "/queues", b"{}", 400, 6007);
    api.fails("GET", "/queues?page=zero", b"", 400, 99400);

    // Consumer settings, from the configuration, by queue id or name.
    let queue_id = api.ok("GET", "/queues", b"")["result"][0]["queue_id"]
        .as_str()
        .expect("queue id")
        .to_owned();
    for queue in [queue_id.as_str(), "jobs"] {
        let consumers = api.ok("GET", &format!("/queues/{queue}/consumers"), b"");
        let consumer = &consumers["result"][0];
        assert_eq!(consumer["type"], "http_pull", "{consumers}");
        assert_eq!(consumer["queue_id"], queue_id.as_str(), "{consumers}");
        assert_eq!(
            consumer["settings"],
            json!({
                "batch_size": 10,
                "max_retries": 3,
                "max_wait_time_ms": 5000,
                "max_concurrency": null,
                "retry_delay": 0,
                "visibility_timeout_ms": 30000,
            }),
            "{consumers}"
        );
    }
    let (status, value) = api.call("GET", "/queues/nope/consumers", b"");
    assert_eq!(status, 404, "{value}");
    assert_eq!(value["success"], false, "{value}");

    // Unknown routes and methods (this project declares no workflows, so they have no routes).
    api.fails("GET", "/workflows/nope/instances", b"", 404, 7003);
    api.fails("GET", "/no/such/path", b"", 404, 7003);
    api.fails("PATCH", "/storage/kv/namespaces", b"", 405, 7003);
}
