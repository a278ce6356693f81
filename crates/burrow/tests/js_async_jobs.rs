//! `examples/js_async_jobs` under the real binary: the sync run, and async jobs accepted at once
//! (202 with a job_id), run from their object's alarm, polled until done or failed.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Server, body, dev, http, send};

fn post(server: &Server, path: &str, payload: &str) -> (u16, Value) {
    let (status, response) = send(server.ingress, "POST", path, &[], payload.as_bytes());
    let value = serde_json::from_str(&response).unwrap_or_else(|e| panic!("{e}: {response}"));
    (status, value)
}

fn get(server: &Server, path: &str) -> (u16, Value) {
    let (status, response) = http(server.ingress, "GET", path, &[]);
    let value = serde_json::from_str(body(&response)).unwrap_or_else(|e| panic!("{e}: {response}"));
    (status, value)
}

/// Polls a job until it leaves `queued`/`running`, collecting the statuses seen.
fn finished(server: &Server, id: &str) -> (Value, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<String> = Vec::new();
    loop {
        let (status, record) = get(server, &format!("/jobs/{id}"));
        assert_eq!(status, 200, "{record}");
        let state = record["status"].as_str().unwrap_or_default().to_owned();
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        if state != "queued" && state != "running" {
            return (record, seen);
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never finished: {record}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn jobs_are_accepted_at_once_run_from_their_alarm_and_polled() {
    let state = tempfile::tempdir().expect("tempdir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/js_async_jobs");
    let server = dev(&example, state.path());

    let (status, report) = post(&server, "/run", r#"{"prompt": "hello"}"#);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["report"]["output"], "done: hello");
    assert_eq!(post(&server, "/run", "{}").0, 400);

    let (status, accepted) = post(&server, "/jobs", r#"{"prompt": "rewrite 40 descriptions"}"#);
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "queued");
    let id = accepted["job_id"].as_str().expect("job_id").to_owned();
    let (_, failing) = post(&server, "/jobs", r#"{"prompt": "please fail"}"#);
    let failing = failing["job_id"].as_str().expect("job_id").to_owned();

    let (done, seen) = finished(&server, &id);
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["report"]["output"], "done: rewrite 40 descriptions");
    assert_eq!(done["attempts"], 1);
    assert!(
        seen.iter()
            .all(|s| ["queued", "running", "done"].contains(&s.as_str())),
        "{seen:?}"
    );
    let (failed, _) = finished(&server, &failing);
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(
        failed["error"],
        json!(format!("provider error while running job {failing}"))
    );

    let (status, missing) = get(&server, "/jobs/00000000-0000-4000-8000-000000000000");
    assert_eq!((status, missing), (404, json!({"error": "no such job"})));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
