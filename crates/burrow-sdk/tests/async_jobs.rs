//! examples/async_jobs as a process: a job is accepted at once (202), runs from its object's
//! alarm, and is polled until done; bad submissions and bad ids are the client's errors.

mod support;

use std::time::{Duration, Instant};

use support::{STEP, command, free_port, start};

#[test]
fn a_job_runs_from_its_alarm_and_is_polled_until_done() {
    let data = tempfile::tempdir().expect("tempdir");
    let app = start(&mut command(
        "async_jobs",
        free_port(),
        data.path(),
        &["--admin-address", "127.0.0.1:0"],
    ));

    let mut ids = Vec::new();
    for n in [100_000, 10] {
        let (status, body) = app.request("POST", "/jobs", &format!("{{\"n\": {n}}}"));
        assert_eq!(status, 202, "{body}");
        let accepted: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(accepted["status"], "queued", "{body}");
        let id = accepted["id"].as_str().expect("an id").to_owned();
        assert_eq!(id.len(), 64, "{id}");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "one object per job");

    for (id, primes) in ids.iter().zip([9_592, 4]) {
        let deadline = Instant::now() + STEP;
        let status = loop {
            let (code, body) = app.request("GET", &format!("/jobs/{id}"), "");
            assert_eq!(code, 200, "{body}");
            let status: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            if status["status"] == "done" {
                break status;
            }
            assert!(
                ["queued", "running"].contains(&status["status"].as_str().unwrap_or("")),
                "{body}"
            );
            assert!(Instant::now() < deadline, "the job never finished: {body}");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status["result"], primes, "{status}");
        assert_eq!(status["attempts"], 1, "{status}");
        assert_eq!(status["error"], serde_json::Value::Null, "{status}");
    }

    let (status, body) = app.request("POST", "/jobs", "{\"n\": 100000000}");
    assert_eq!((status, body.as_str()), (400, "n is at most 50000000"));
    let (status, body) = app.request("POST", "/jobs", "not json");
    assert_eq!(status, 400, "{body}");
    let (status, body) = app.request("GET", "/jobs/not-an-id", "");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Invalid Durable Object ID"), "{body}");
    // A well-formed ID from another namespace is refused the same way as on Cloudflare.
    let (status, body) = app.request("GET", &format!("/jobs/{}", "0".repeat(64)), "");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not valid for this namespace"), "{body}");

    let (status, log) = app.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
}
