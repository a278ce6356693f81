//! Differential tests for queues and Workflows: `tests/js-services/worker.js` runs under
//! `burrow dev` and under Miniflare (from npm, installed into `.cache/npm` with wrangler by
//! `scripts/install-clients`, which `.ci/run` calls), the same driver runs the same scenario
//! against both, and the observations must match: which deliveries happened with which
//! `attempts` and batch sizes (retries, `max_retries`, the dead-letter queue), and the instances'
//! final statuses, outputs and errors.
//!
//! Where Miniflare deviates from Cloudflare's documentation the test follows the documentation
//! and says so where it checks:
//! - An instance waiting for an event is `waiting` (the documented status for "sleeping or
//!   waiting for an event"); Miniflare reports `running`.
//! - An uncaught `NonRetryableError` ends the instance with the error's own name and message, as
//!   the `workflows_preserve_non_retryable_error_message` compatibility flag documents (now the
//!   default); this Miniflare predates that default and replaces it with a generic
//!   `WorkflowFatalError`.
//!
//! Without Node.js or Miniflare the test prints a loud SKIPPED line, except under CI, where it
//! fails.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{STEP, Server, body, command, http, start, text};

/// Generous bound for the scenario to play out on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(90);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Miniflare's entry module from `.cache/npm`, or `None` after a loud note (a failure under CI).
fn miniflare() -> Option<PathBuf> {
    let entry = repository().join(".cache/npm/node_modules/miniflare/dist/src/index.js");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if node && entry.is_file() {
        return Some(entry);
    }
    let hint = "run `scripts/install-clients` (as .ci/run does) to install Node.js and Miniflare";
    if std::env::var_os("CI").is_some() {
        panic!("Miniflare is not installed, and CI is set: {hint}");
    }
    eprintln!("\n!!!!! SKIPPED: Miniflare is not installed; {hint} !!!!!\n");
    None
}

/// Miniflare serving the Worker; stopped with SIGTERM (it then stops its workerd) on drop.
struct Miniflare {
    child: Child,
    address: SocketAddr,
}

impl Drop for Miniflare {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status();
        let deadline = Instant::now() + STEP;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_miniflare(entry: &Path, project: &Path) -> Miniflare {
    let mut child = Command::new("node")
        .arg(project.join("miniflare.mjs"))
        .arg(entry)
        .arg(project.join("worker.js"))
        .current_dir(project)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("READY http://") {
                    let address = url.trim_end_matches('/').parse().expect("address");
                    return Miniflare { child, address };
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("Miniflare did not start");
            }
        }
    }
}

fn get(address: SocketAddr, path: &str) -> Value {
    let (status, response) = http(address, "GET", path, &[]);
    assert_eq!(status, 200, "{path}: {response}");
    serde_json::from_str(body(&response)).unwrap_or_else(|e| panic!("{e}: {response}"))
}

/// Polls `path` until `done` holds; returns the value and every distinct `status` seen.
fn wait(address: SocketAddr, path: &str, done: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + DEADLINE;
    let mut seen: Vec<Value> = Vec::new();
    loop {
        let value = get(address, path);
        if seen.last() != Some(&value["status"]) && !value["status"].is_null() {
            seen.push(value["status"].clone());
        }
        if done(&value) {
            return (value, seen);
        }
        assert!(Instant::now() < deadline, "{path} never got there: {value}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// What one runtime did with the scenario.
#[derive(Debug)]
struct Observed {
    /// `queue:i:attempts` → the size of the batch that delivered it.
    deliveries: Value,
    /// The workflow instances: final status, output and error; statuses seen while waiting.
    instances: Value,
    waiting_status: Value,
    refused_error: Value,
}

/// Runs the scenario; `documented` waits for the documented `waiting` status where Miniflare
/// reports `running` (see the module documentation).
fn run_scenario(address: SocketAddr, documented: bool) -> Observed {
    // Queues: message 2 always retries: 3 attempts (max_retries 2), then the dead-letter queue.
    assert_eq!(get(address, "/send"), json!({"sent": 3}));
    let (deliveries, _) = wait(address, "/deliveries", |v| {
        v.as_array()
            .is_some_and(|list| list.iter().any(|d| d["key"] == "jobs-dlq:2:1"))
    });
    // Nothing more arrives after the dead-letter delivery.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(get(address, "/deliveries"), deliveries);
    let deliveries: serde_json::Map<String, Value> = deliveries
        .as_array()
        .expect("a list")
        .iter()
        .map(|d| {
            (
                d["key"].as_str().expect("key").to_owned(),
                d["batchSize"].clone(),
            )
        })
        .collect();

    // Workflows.
    for path in ["/create?id=ok", "/create?id=bad&fail", "/create?id=stop"] {
        get(address, path);
    }
    let mut waiting_status = Value::Null;
    for id in ["ok", "bad", "stop"] {
        // Past the cached step, the retried step and the sleep, the instance waits for its event.
        let (status, _) = wait(address, &format!("/status?id={id}"), |v| {
            v["status"] == "waiting" || (!documented && v["status"] == "running")
        });
        waiting_status = status["status"].clone();
    }
    // Under Miniflare, whose status does not show the wait, give every instance time to reach it
    // (the flaky step retries twice, 50 ms apart); events sent before the wait are kept anyway.
    std::thread::sleep(Duration::from_millis(1500));
    get(address, "/terminate?id=stop");
    get(address, "/event?id=ok");
    get(address, "/event?id=bad");
    let finished = |v: &Value| {
        ["complete", "errored", "terminated"].contains(&v["status"].as_str().unwrap_or(""))
    };
    let (ok, _) = wait(address, "/status?id=ok", finished);
    let (bad, _) = wait(address, "/status?id=bad", finished);
    let (stop, _) = wait(address, "/status?id=stop", finished);
    Observed {
        deliveries: Value::Object(deliveries),
        instances: json!({
            "ok": {"status": ok["status"], "output": ok["output"]},
            "bad": {"status": bad["status"], "output": bad["output"]},
            "stop": {"status": stop["status"], "output": stop["output"], "error": stop["error"]},
        }),
        waiting_status,
        refused_error: bad["error"].clone(),
    }
}

#[test]
fn queues_and_workflows_behave_alike_under_burrow_and_miniflare() {
    let Some(entry) = miniflare() else { return };
    let project = repository().join("tests/js-services");

    let state = tempfile::tempdir().expect("tempdir");
    let server: Server = start(&mut command(&[
        "dev",
        text(&project),
        "--port",
        "0",
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(state.path()),
    ]));
    let burrow = run_scenario(server.ingress, true);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");

    let reference = start_miniflare(&entry, &project);
    let expected = run_scenario(reference.address, false);
    drop(reference);

    assert_eq!(
        burrow.deliveries, expected.deliveries,
        "queue deliveries (queue:i:attempts → batch size)"
    );
    assert_eq!(
        burrow.deliveries,
        json!({
            "jobs:1:1": 3, "jobs:2:1": 3, "jobs:3:1": 3,
            "jobs:2:2": 1, "jobs:2:3": 1,
            "jobs-dlq:2:1": 1,
        })
    );
    assert_eq!(burrow.instances, expected.instances, "workflow outcomes");
    assert_eq!(
        burrow.instances["ok"]["output"],
        json!({"doubled": {"n": 42}, "attempts": 3, "approval": {"by": "ada"}})
    );
    assert_eq!(burrow.instances["bad"]["status"], "errored");
    assert_eq!(burrow.instances["stop"]["status"], "terminated");

    // Documented: "waiting" while waiting for an event. Miniflare says "running".
    assert_eq!(burrow.waiting_status, "waiting");
    assert!(
        expected.waiting_status == "waiting" || expected.waiting_status == "running",
        "{:?}",
        expected.waiting_status
    );
    // Documented (workflows_preserve_non_retryable_error_message): the error's own name and
    // message. This Miniflare predates that default and reports the generic replacement.
    let preserved = json!({"name": "NonRetryableError", "message": "refused for good"});
    assert_eq!(burrow.refused_error, preserved);
    let replaced = json!({
        "name": "WorkflowFatalError",
        "message": "The execution of the Workflow instance was terminated, as a step threw an NonRetryableError and it was not handled"
    });
    assert!(
        expected.refused_error == preserved || expected.refused_error == replaced,
        "{}",
        expected.refused_error
    );
}
