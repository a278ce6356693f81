//! Workflows across restarts of the node (in-process; `examples/workflows_*` have the `kill -9`
//! variants): a completed step never runs again, a step interrupted by the restart runs again
//! and only it, and a sleep survives the restart and wakes on time on the real clock.
//! Side effects are counted in a file outside the node's storage.

mod workflow_support;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use burrow_runtime::clock::{ManualClock, SystemClock};
use burrow_services::workflows::{
    Builder, Options, Status, WorkflowEntrypoint, WorkflowError, WorkflowEvent, WorkflowStep,
    Workflows, definition,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use workflow_support::{Node, append, create, eventually, lines, settle, wait_for_status};

#[derive(Serialize, Deserialize)]
struct Params {
    log: PathBuf,
    sleep_ms: u64,
    #[serde(default)]
    gated: bool,
}

/// While false, step "two" blocks (so the test can stop the node in the middle of it).
static STEP_TWO_MAY_FINISH: AtomicBool = AtomicBool::new(true);

/// Three steps that each log a line, with a sleep between the first two.
struct Logged;

impl WorkflowEntrypoint for Logged {
    type Params = Params;
    type Output = String;

    async fn run(
        &self,
        event: WorkflowEvent<Params>,
        step: &WorkflowStep,
    ) -> Result<String, WorkflowError> {
        let log = &event.payload.log;
        step.do_("one", async |_| {
            append(log, "one");
            Ok(())
        })
        .await?;
        if event.payload.sleep_ms > 0 {
            step.sleep("between", event.payload.sleep_ms).await?;
        }
        step.do_("two", async |_| {
            append(log, "two");
            while event.payload.gated && !STEP_TWO_MAY_FINISH.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok(())
        })
        .await?;
        step.do_("three", async |_| {
            append(log, "three");
            Ok(())
        })
        .await?;
        Ok("done".to_owned())
    }
}

fn builder() -> Builder {
    Workflows::builder(Options::default()).workflow("logged", definition(|| Logged))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_between_and_during_steps_rerun_only_the_interrupted_step() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("side-effects.log");
    let clock = ManualClock::new(1_700_000_000_000);

    // Between steps: "one" completes, the instance sleeps, the node restarts.
    let node = Node::start(dir.path(), Arc::new(clock.clone()), builder()).await;
    let params = json!({"log": log, "sleep_ms": 60_000, "gated": true});
    let instance = create(&node.workflow("logged"), "between", params).await;
    wait_for_status(&instance, Status::Waiting).await;
    assert_eq!(lines(&log), ["one"]);
    node.stop(Duration::from_secs(5)).await;

    // During a step: "two" has started when the node stops; it is stopped in the middle.
    STEP_TWO_MAY_FINISH.store(false, Ordering::SeqCst);
    let node = Node::start(dir.path(), Arc::new(clock.clone()), builder()).await;
    clock.advance(Duration::from_secs(60));
    eventually("step two to start", || async {
        lines(&log) == ["one", "two"]
    })
    .await;
    settle().await;
    node.stop(Duration::from_millis(300)).await;

    STEP_TWO_MAY_FINISH.store(true, Ordering::SeqCst);
    let node = Node::start(dir.path(), Arc::new(clock.clone()), builder()).await;
    let instance = node.workflow("logged").get("between").await.unwrap();
    wait_for_status(&instance, Status::Complete).await;
    assert_eq!(
        lines(&log),
        ["one", "two", "two", "three"],
        "only the interrupted step ran again"
    );
    let details = instance.details().await.unwrap();
    let two = &details["steps"][2];
    assert_eq!(two["name"], json!("two"));
    let attempts = two["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attempts[0]["error"]["message"],
        json!("Attempt failed due to internal workflows error")
    );
    assert_eq!(attempts[1]["success"], json!(true));
    node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleep_survives_a_restart_on_the_real_clock_and_wakes_within_ten_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("side-effects.log");
    let node = Node::start(dir.path(), Arc::new(SystemClock), builder()).await;
    let created_ms = now_ms();
    let params = json!({"log": log, "sleep_ms": 3_000});
    let instance = create(&node.workflow("logged"), "real-time", params).await;
    wait_for_status(&instance, Status::Waiting).await;
    let details = instance.details().await.unwrap();
    let sleep = &details["steps"][1];
    assert_eq!(sleep["type"], json!("sleep"));
    let wake = sleep["end"].as_str().unwrap().to_owned();
    node.stop(Duration::from_secs(5)).await;

    let node = Node::start(dir.path(), Arc::new(SystemClock), builder()).await;
    let instance = node.workflow("logged").get("real-time").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if instance.status().await.unwrap().status == Status::Complete {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let woke_ms = now_ms();
    let details = instance.details().await.unwrap();
    let two_started = details["steps"][2]["start"].as_str().unwrap().to_owned();
    // Same format, so the times compare as text.
    assert!(
        two_started >= wake,
        "woke at {two_started}, before its time {wake}"
    );
    assert!(
        woke_ms <= created_ms + 3_000 + 10_000,
        "woke more than 10 s late (step two started at {two_started})"
    );
    assert_eq!(lines(&log), ["one", "two", "three"]);
    node.stop(Duration::from_secs(5)).await;
}
