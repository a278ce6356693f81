//! `/metrics` after a workload: Worker requests by status, object activations, storage commits
//! and the journal fsync histogram, a queue's backlog, acks and retries, workflow instances by
//! status, and the lag of the alarm behind a workflow's `step.sleep`.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use burrow_sdk::workflow::WorkflowEntrypoint;
use burrow_sdk::{App, Env, Response, WorkflowError, WorkflowEvent, WorkflowStep};
use serde_json::{Value, json};
use support::{app_options, send};

const TOKEN: &str = "metrics-token";
const ACCOUNT: &str = "/client/v4/accounts/acc";

const CONFIG: &str = r#"
name = "metered"
compatibility_date = "2025-04-01"
kv_namespaces = [ { binding = "SESSIONS", id = "sessions-id" } ]

[[queues.producers]]
binding = "JOBS"
queue = "jobs"

[[queues.consumers]]
queue = "jobs"
type = "http_pull"

[[workflows]]
binding = "NAP"
name = "nap"
class_name = "Nap"
"#;

/// Sleeps (an alarm), then finishes; with `{"wait": true}` it waits for an event instead.
struct Nap;

impl WorkflowEntrypoint for Nap {
    type Params = Value;
    type Output = Value;

    fn new(_env: Env) -> Self {
        Nap
    }

    async fn run(
        &self,
        event: WorkflowEvent<Value>,
        step: &WorkflowStep,
    ) -> Result<Value, WorkflowError> {
        if event.payload["wait"] == json!(true) {
            step.wait_for_event::<Value>("go", burrow_sdk::workflow::WaitOptions::new("go"))
                .await?;
        } else {
            step.sleep("nap", 200u64).await?;
        }
        Ok(json!("done"))
    }
}

/// `name{labels}` → value, for every sample line.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').expect("sample line");
            (name.to_owned(), value.parse().expect("number"))
        })
        .collect()
}

#[test]
fn metrics_report_the_workload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (loaded, options) = app_options(dir.path(), CONFIG, &[TOKEN]);
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = control
        .block_on(
            App::new()
                .workflow::<Nap>("NAP")
                .fetch(|request, _env| async move {
                    if request.path() == "/ok" {
                        Ok(Response::text("ok"))
                    } else {
                        Ok(Response::text("nothing here").with_status(http::StatusCode::NOT_FOUND))
                    }
                })
                .start(&loaded, &options),
        )
        .expect("the app starts");
    let (ingress, admin) = (server.ingress_address(), server.admin_address());
    let bearer = format!("Bearer {TOKEN}");
    let call = |method: &str, path: &str, body: &str| -> Value {
        let (status, text) = send(
            admin,
            method,
            &format!("{ACCOUNT}{path}"),
            &[("authorization", &bearer)],
            body.as_bytes(),
        );
        assert_eq!(status, 200, "{method} {path}: {text}");
        serde_json::from_str(&text).expect("JSON")
    };
    let scrape = || {
        let (status, text) = send(admin, "GET", "/metrics", &[("authorization", &bearer)], b"");
        assert_eq!(status, 200, "{text}");
        text
    };

    // The workload.
    for _ in 0..3 {
        assert_eq!(send(ingress, "GET", "/ok", &[], b"").0, 200);
    }
    for _ in 0..2 {
        assert_eq!(send(ingress, "GET", "/missing", &[], b"").0, 404);
    }
    call("PUT", "/storage/kv/namespaces/sessions-id/values/k", "v");
    let queue = call("GET", "/queues", "")["result"][0]["queue_id"]
        .as_str()
        .expect("queue id")
        .to_owned();
    for n in 0..3 {
        call(
            "POST",
            &format!("/queues/{queue}/messages"),
            &json!({"body": n}).to_string(),
        );
    }
    let pulled = call(
        "POST",
        &format!("/queues/{queue}/messages/pull"),
        r#"{"batch_size": 2}"#,
    );
    let leases: Vec<String> = pulled["result"]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|message| message["lease_id"].as_str().expect("lease").to_owned())
        .collect();
    assert_eq!(leases.len(), 2, "{pulled}");
    call(
        "POST",
        &format!("/queues/{queue}/messages/ack"),
        &json!({"acks": [{"lease_id": leases[0]}], "retries": [{"lease_id": leases[1]}]})
            .to_string(),
    );
    call("POST", "/workflows/nap/instances", r#"{"id": "sleeper"}"#);
    call(
        "POST",
        "/workflows/nap/instances",
        r#"{"id": "waiter", "params": {"wait": true}}"#,
    );

    // Instances settle asynchronously: scrape until both are where they will stay.
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let text = scrape();
        let metrics = samples(&text);
        let complete = metrics
            .get(r#"burrow_workflow_instances{workflow="nap",status="complete"}"#)
            .copied();
        let waiting = metrics
            .get(r#"burrow_workflow_instances{workflow="nap",status="waiting"}"#)
            .copied();
        if complete == Some(1.0) && waiting == Some(1.0) {
            break (text, metrics);
        }
        assert!(
            Instant::now() < deadline,
            "instances never settled:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (text, metrics) = metrics;
    let value = |name: &str| -> f64 {
        *metrics
            .get(name)
            .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
    };

    assert_eq!(
        value(r#"burrow_requests_total{worker="metered",status="200"}"#),
        3.0
    );
    assert_eq!(
        value(r#"burrow_requests_total{worker="metered",status="404"}"#),
        2.0
    );
    // A Rust app runs natively: no JavaScript CPU family (`js_metrics.rs` covers a Worker).
    assert!(!text.contains("burrow_js_cpu_seconds_total"), "{text}");
    assert!(value("burrow_object_activations_total") >= 3.0, "{text}");
    assert!(value("burrow_storage_commits_total") >= 5.0, "{text}");
    let fsyncs = value("burrow_journal_fsync_seconds_count");
    assert!(fsyncs >= 1.0, "{text}");
    assert_eq!(
        value(r#"burrow_journal_fsync_seconds_bucket{le="+Inf"}"#),
        fsyncs
    );
    assert!(value("burrow_journal_fsync_seconds_sum") > 0.0, "{text}");
    let queue_label = |name: &str| format!("{name}{{queue=\"jobs\"}}");
    assert_eq!(
        value(&queue_label("burrow_queue_backlog_messages")),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(&queue_label("burrow_queue_acked_total")),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&queue_label("burrow_queue_retries_total")),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&queue_label("burrow_queue_dead_letters_total")),
        0.0,
        "{text}"
    );
    assert!(
        value("burrow_alarm_lag_seconds_count") >= 1.0,
        "the sleep's alarm ran: {text}"
    );
    assert_eq!(
        value(r#"burrow_alarm_lag_seconds_bucket{le="+Inf"}"#),
        value("burrow_alarm_lag_seconds_count")
    );
    assert!(text.contains("# TYPE burrow_journal_fsync_seconds histogram"));
    assert!(text.contains("# TYPE burrow_requests_total counter"));

    control
        .block_on(server.shutdown(Duration::from_secs(5)))
        .expect("shutdown");
}
