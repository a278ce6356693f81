//! Workflow semantics on one node with a manual clock: retries and backoff, NonRetryable, sleeps,
//! events and their timeouts, pause/resume/terminate/restart, size and step limits, the
//! binding's validation, concurrency limits, history and retention.

mod workflow_support;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burrow_runtime::clock::{Clock, ManualClock};
use burrow_services::workflows::{
    Backoff, CreateOptions, Error, Options, Status, StepConfig, WaitOptions, WorkflowEntrypoint,
    WorkflowError, WorkflowEvent, WorkflowStep, Workflows, definition,
};
use serde_json::{Value, json};
use workflow_support::{Node, create, eventually, settle, wait_for_status};

const START_MS: i64 = 1_700_000_000_000;

/// What the test workflows report.
#[derive(Default)]
struct Probe {
    /// (label, clock time) of every step callback call.
    calls: Mutex<Vec<(String, i64)>>,
    /// While false, callbacks labelled "gated" wait.
    open: AtomicBool,
}

impl Probe {
    fn count(&self, label: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _)| l == label)
            .count()
    }

    fn times(&self, label: &str) -> Vec<i64> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _)| l == label)
            .map(|(_, t)| *t)
            .collect()
    }

    fn record(&self, label: &str, clock: &ManualClock) {
        self.calls
            .lock()
            .unwrap()
            .push((label.to_owned(), clock.now_ms()));
    }

    async fn gate(&self) {
        while !self.open.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// One workflow whose behaviour the params choose, so each test reads as a script.
struct Scripted {
    probe: Arc<Probe>,
    clock: ManualClock,
}

impl WorkflowEntrypoint for Scripted {
    type Params = Value;
    type Output = Value;

    async fn run(
        &self,
        event: WorkflowEvent<Value>,
        step: &WorkflowStep,
    ) -> Result<Value, WorkflowError> {
        let probe = &self.probe;
        let clock = &self.clock;
        match event.payload["script"].as_str().unwrap_or("") {
            "flaky" => {
                let config = StepConfig::retries(5, "1 second", Backoff::Exponential);
                let charged: String = step
                    .do_with("charge", config, async |ctx| {
                        probe.record("charge", clock);
                        if ctx.attempt < 3 {
                            Err(WorkflowError::new(format!(
                                "declined on attempt {}",
                                ctx.attempt
                            )))
                        } else {
                            Ok("charged".to_owned())
                        }
                    })
                    .await?;
                Ok(json!(charged))
            }
            "linear" => {
                let config = StepConfig::retries(2, 100u64, Backoff::Linear);
                let result: Result<u32, WorkflowError> = step
                    .do_with("always fails", config, async |_| {
                        probe.record("fails", clock);
                        Err(WorkflowError::new("nope"))
                    })
                    .await;
                Ok(json!(result.unwrap_err().message))
            }
            "non-retryable" => {
                step.do_("validate", async |_| {
                    probe.record("validate", clock);
                    Err::<(), _>(WorkflowError::non_retryable("card number is invalid"))
                })
                .await?;
                Ok(json!("unreachable"))
            }
            "sleepy" => {
                step.do_("before", async |_| {
                    probe.record("before", clock);
                    Ok(1)
                })
                .await?;
                step.sleep("nap", "1 hour").await?;
                step.do_("after", async |_| {
                    probe.record("after", clock);
                    Ok(2)
                })
                .await?;
                Ok(json!("rested"))
            }
            "approval" => {
                let decision = step
                    .wait_for_event::<Value>(
                        "decision",
                        WaitOptions::new("approval").with_timeout("1 hour"),
                    )
                    .await;
                Ok(match decision {
                    Ok(event) => {
                        json!({"approved": event.payload["approved"], "type": event.event_type})
                    }
                    Err(error) if error.is_timeout() => json!(format!("timed out: {error}")),
                    Err(error) => return Err(error),
                })
            }
            "late-waiter" => {
                step.sleep("first a nap", "10 minutes").await?;
                let first = step
                    .wait_for_event::<u32>("first", WaitOptions::new("number"))
                    .await?;
                let second = step
                    .wait_for_event::<u32>("second", WaitOptions::new("number"))
                    .await?;
                Ok(json!([first.payload, second.payload]))
            }
            "gated" => {
                step.do_("one", async |_| {
                    probe.record("one", clock);
                    Ok(())
                })
                .await?;
                step.do_("gated", async |_| {
                    probe.record("gated", clock);
                    probe.gate().await;
                    Ok(())
                })
                .await?;
                step.do_("three", async |_| {
                    probe.record("three", clock);
                    Ok(())
                })
                .await?;
                Ok(json!("done"))
            }
            "big" => {
                step.do_("big", async |_| Ok("x".repeat(1_100_000))).await?;
                Ok(json!("unreachable"))
            }
            "many" => {
                for index in 0..5 {
                    step.do_(&format!("step {index}"), async |_| Ok(index))
                        .await?;
                }
                Ok(json!("done"))
            }
            "long-name" => {
                step.do_(&"n".repeat(257), async |_| Ok(())).await?;
                Ok(json!("unreachable"))
            }
            "panics" => {
                step.do_("fine", async |_| Ok(())).await?;
                let missing = event.payload.get("missing").and_then(Value::as_u64);
                Ok(json!(missing.expect("a value the workflow counted on")))
            }
            "counter" => {
                let n: u64 = step
                    .do_("count", async |_| {
                        probe.record("count", clock);
                        Ok(probe.count("count") as u64)
                    })
                    .await?;
                Ok(json!(n))
            }
            other => Err(WorkflowError::new(format!("unknown script {other}"))),
        }
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    clock: ManualClock,
    probe: Arc<Probe>,
    node: Node,
}

fn builder(
    probe: &Arc<Probe>,
    clock: &ManualClock,
    options: Options,
    limit: Option<u32>,
) -> burrow_services::workflows::Builder {
    let (probe, clock) = (probe.clone(), clock.clone());
    let builder = Workflows::builder(options).workflow(
        "scripted",
        definition(move || Scripted {
            probe: probe.clone(),
            clock: clock.clone(),
        }),
    );
    match limit {
        Some(limit) => builder.concurrency_limit("scripted", limit),
        None => builder,
    }
}

async fn harness_with(options: Options, limit: Option<u32>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let probe = Arc::new(Probe::default());
    let node = Node::start(
        dir.path(),
        Arc::new(clock.clone()),
        builder(&probe, &clock, options, limit),
    )
    .await;
    Harness {
        _dir: dir,
        clock,
        probe,
        node,
    }
}

async fn harness() -> Harness {
    harness_with(Options::default(), None).await
}

fn script(name: &str) -> Value {
    json!({ "script": name })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_fails_twice_then_succeeds_runs_three_times_with_exponential_backoff() {
    let h = harness().await;
    let workflow = h.node.workflow("scripted");
    let instance = create(&workflow, "flaky", script("flaky")).await;
    eventually("the first attempt", || async {
        h.probe.count("charge") == 1
    })
    .await;
    wait_for_status(&instance, Status::Waiting).await;
    // The first retry waits 1 s (delay × 2^0): not a millisecond less.
    h.clock.advance(Duration::from_millis(999));
    settle().await;
    assert_eq!(h.probe.count("charge"), 1);
    h.clock.advance(Duration::from_millis(1));
    eventually("the second attempt", || async {
        h.probe.count("charge") == 2
    })
    .await;
    wait_for_status(&instance, Status::Waiting).await;
    // The second retry waits 2 s (delay × 2^1).
    h.clock.advance(Duration::from_millis(1_999));
    settle().await;
    assert_eq!(h.probe.count("charge"), 2);
    h.clock.advance(Duration::from_millis(1));
    wait_for_status(&instance, Status::Complete).await;
    assert_eq!(
        h.probe.times("charge"),
        vec![START_MS, START_MS + 1_000, START_MS + 3_000]
    );
    let status = instance.status().await.unwrap();
    assert_eq!(status.output, Some(json!("charged")));
    // The history has the three attempts, the first two with their errors.
    let details = instance.details().await.unwrap();
    let attempts = details["steps"][0]["attempts"].as_array().unwrap().clone();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["success"], json!(false));
    assert_eq!(
        attempts[0]["error"]["message"],
        json!("declined on attempt 1")
    );
    assert_eq!(attempts[2]["success"], json!(true));
    assert_eq!(
        details["steps"][0]["config"]["retries"]["delay"],
        json!(1000)
    );
    assert_eq!(details["status"], json!("complete"));
    // Nothing runs again later.
    h.clock.advance(Duration::from_secs(3_600));
    settle().await;
    assert_eq!(h.probe.count("charge"), 3);
    h.node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_run_out_with_linear_backoff_and_the_workflow_can_handle_the_error() {
    let h = harness().await;
    let instance = create(&h.node.workflow("scripted"), "linear", script("linear")).await;
    eventually("attempt 1", || async { h.probe.count("fails") == 1 }).await;
    wait_for_status(&instance, Status::Waiting).await;
    h.clock.advance(Duration::from_millis(100));
    eventually("attempt 2", || async { h.probe.count("fails") == 2 }).await;
    wait_for_status(&instance, Status::Waiting).await;
    h.clock.advance(Duration::from_millis(199));
    settle().await;
    assert_eq!(h.probe.count("fails"), 2);
    h.clock.advance(Duration::from_millis(1));
    wait_for_status(&instance, Status::Complete).await;
    assert_eq!(h.probe.count("fails"), 3, "1 attempt + 2 retries");
    assert_eq!(instance.status().await.unwrap().output, Some(json!("nope")));
    h.node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_retryable_ends_the_instance_errored_without_a_retry() {
    let h = harness().await;
    let instance = create(
        &h.node.workflow("scripted"),
        "bad-card",
        script("non-retryable"),
    )
    .await;
    wait_for_status(&instance, Status::Errored).await;
    h.clock.advance(Duration::from_secs(3_600));
    settle().await;
    assert_eq!(h.probe.count("validate"), 1);
    let status = instance.status().await.unwrap();
    let error = status.error.unwrap();
    assert_eq!(error.name, "NonRetryableError");
    assert_eq!(error.message, "card number is invalid");
    h.node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleep_wakes_not_before_its_time_and_survives_a_restart() {
    let h = harness().await;
    let instance = create(&h.node.workflow("scripted"), "sleepy", script("sleepy")).await;
    wait_for_status(&instance, Status::Waiting).await;
    assert_eq!(h.probe.count("before"), 1);
    h.clock.advance(Duration::from_secs(1_800));
    // Restart the node half way through the sleep.
    let Harness {
        _dir: dir,
        clock,
        probe,
        node,
    } = h;
    node.stop(Duration::from_secs(5)).await;
    let node = Node::start(
        dir.path(),
        Arc::new(clock.clone()),
        builder(&probe, &clock, Options::default(), None),
    )
    .await;
    let instance = node.workflow("scripted").get("sleepy").await.unwrap();
    assert_eq!(instance.status().await.unwrap().status, Status::Waiting);
    clock.advance(Duration::from_millis(1_800_000 - 1));
    settle().await;
    assert_eq!(probe.count("after"), 0, "woke before its time");
    clock.advance(Duration::from_millis(1));
    wait_for_status(&instance, Status::Complete).await;
    assert_eq!(probe.count("before"), 1, "a completed step ran again");
    assert_eq!(probe.times("after"), vec![START_MS + 3_600_000]);
    let details = instance.details().await.unwrap();
    assert_eq!(details["steps"][1]["type"], json!("sleep"));
    assert_eq!(details["steps"][1]["finished"], json!(true));
    node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_event_resolves_on_send_event_and_times_out_into_a_catchable_error() {
    let h = harness().await;
    let workflow = h.node.workflow("scripted");
    let approved = create(&workflow, "approved", script("approval")).await;
    let ignored = create(&workflow, "ignored", script("approval")).await;
    wait_for_status(&approved, Status::Waiting).await;
    wait_for_status(&ignored, Status::Waiting).await;
    approved
        .send_event("approval", &json!({"approved": true}))
        .await
        .unwrap();
    wait_for_status(&approved, Status::Complete).await;
    assert_eq!(
        approved.status().await.unwrap().output,
        Some(json!({"approved": true, "type": "approval"}))
    );
    h.clock.advance(Duration::from_millis(3_600_000 - 1));
    settle().await;
    assert_eq!(ignored.status().await.unwrap().status, Status::Waiting);
    h.clock.advance(Duration::from_millis(1));
    wait_for_status(&ignored, Status::Complete).await;
    assert_eq!(
        ignored.status().await.unwrap().output,
        Some(json!(
            "timed out: WorkflowTimeoutError: Execution timed out after 3600000ms"
        ))
    );
    // An event for a type nobody waits for is refused only if its type is invalid.
    assert_eq!(
        approved.send_event("not valid!", &1).await,
        Err(Error::InvalidEventType("not valid!".into()))
    );
    h.node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_before_the_instance_waits_are_not_lost() {
    let h = harness().await;
    let instance = create(&h.node.workflow("scripted"), "early", script("late-waiter")).await;
    // Both events arrive while the instance still sleeps, before any wait_for_event.
    instance.send_event("number", &1).await.unwrap();
    wait_for_status(&instance, Status::Waiting).await;
    instance.send_event("number", &2).await.unwrap();
    h.clock.advance(Duration::from_secs(600));
    wait_for_status(&instance, Status::Complete).await;
    assert_eq!(instance.status().await.unwrap().output, Some(json!([1, 2])));
    h.node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_waits_for_the_running_step_and_resume_goes_on() {
    let h = harness().await;
    let instance = create(&h.node.workflow("scripted"), "gated", script("gated")).await;
    eventually("the gated step", || async { h.probe.count("gated") == 1 }).await;
    assert_eq!(instance.pause().await.unwrap(), Status::WaitingForPause);
    assert_eq!(
        instance.status().await.unwrap().status,
        Status::WaitingForPause
    );
    h.probe.open.store(true, Ordering::SeqCst);
    wait_for_status(&instance, Status::Paused).await;
    settle().await;
    assert_eq!(
        h.probe.count("three"),
        0,
        "a paused instance started a step"
    );
    assert_eq!(instance.resume().await.unwrap(), Status::Queued);
    wait_for_status(&instance, Status::Complete).await;
    assert_eq!(h.probe.count("gated"), 1);
    assert_eq!(h.probe.count("three"), 1);
    h.node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_sleep_resumes_with_its_remaining_time() {
    let h = harness().await;
    let instance = create(&h.node.workflow("scripted"), "nap", script("sleepy")).await;
    wait_for_status(&instance, Status::Waiting).await;
    h.clock.advance(Duration::from_secs(600));
    assert_eq!(instance.pause().await.unwrap(), Status::Paused);
    h.clock.advance(Duration::from_secs(7_200));
    settle().await;
    assert_eq!(h.probe.count("after"), 0);
    assert_eq!(instance.status().await.unwrap().status, Status::Paused);
    instance.resume().await.unwrap();
    wait_for_status(&instance, Status::Waiting).await;
    h.clock.advance(Duration::from_millis(3_000_000 - 1));
    settle().await;
    assert_eq!(h.probe.count("after"), 0);
    h.clock.advance(Duration::from_millis(1));
    wait_for_status(&instance, Status::Complete).await;
    h.node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_stops_for_good_and_restart_runs_again_from_the_start() {
    let h = harness().await;
    let workflow = h.node.workflow("scripted");
    let sleeper = create(&workflow, "to-terminate", script("sleepy")).await;
    wait_for_status(&sleeper, Status::Waiting).await;
    assert_eq!(sleeper.terminate().await.unwrap(), Status::Terminated);
    h.clock.advance(Duration::from_secs(7_200));
    settle().await;
    assert_eq!(h.probe.count("after"), 0);
    assert_eq!(
        sleeper.terminate().await,
        Err(Error::CannotTerminate),
        "terminating a finished instance"
    );
    assert_eq!(
        Error::CannotTerminate.to_string(),
        "(instance.cannot_terminate) Cannot terminate instance since its on a finite state"
    );
    let details = sleeper.details().await.unwrap();
    assert_eq!(
        details["steps"].as_array().unwrap().last().unwrap()["type"],
        json!("termination")
    );

    let counter = create(&workflow, "counter", script("counter")).await;
    wait_for_status(&counter, Status::Complete).await;
    assert_eq!(counter.status().await.unwrap().output, Some(json!(1)));
    assert_eq!(counter.restart().await.unwrap(), Status::Queued);
    eventually("the restarted run", || async {
        h.probe.count("count") == 2
    })
    .await;
    wait_for_status(&counter, Status::Complete).await;
    assert_eq!(counter.status().await.unwrap().output, Some(json!(2)));

    // A terminated instance can be restarted too.
    sleeper.restart().await.unwrap();
    wait_for_status(&sleeper, Status::Waiting).await;
    assert_eq!(h.probe.count("before"), 2);
    h.node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_results_are_rejected_with_the_documented_message() {
    let h = harness().await;
    let instance = create(&h.node.workflow("scripted"), "big", script("big")).await;
    wait_for_status(&instance, Status::Errored).await;
    let error = instance.status().await.unwrap().error.unwrap();
    assert_eq!(
        error.message,
        "Step big-1 output is too large. Maximum allowed size is 1MiB."
    );
    // Params and event payloads have the same limit.
    let workflow = h.node.workflow("scripted");
    let huge = json!("y".repeat(1 << 20));
    assert_eq!(
        workflow
            .create(CreateOptions {
                id: None,
                params: huge.clone()
            })
            .await
            .err(),
        Some(Error::ParamsTooLarge)
    );
    assert_eq!(
        instance.send_event("big", &huge).await,
        Err(Error::EventTooLarge)
    );
    h.node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_workflow_ends_the_instance_errored() {
    let h = harness().await;
    let instance = create(&h.node.workflow("scripted"), "panics", script("panics")).await;
    wait_for_status(&instance, Status::Errored).await;
    let error = instance.status().await.unwrap().error.unwrap();
    assert_eq!(
        error.message,
        "the workflow panicked: a value the workflow counted on"
    );
    // The instance is not wedged: it can be restarted (and panics again).
    instance.restart().await.unwrap();
    wait_for_status(&instance, Status::Errored).await;
    h.node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_step_limit_and_step_name_rules_hold() {
    let h = harness_with(
        Options {
            max_steps: 3,
            ..Options::default()
        },
        None,
    )
    .await;
    let workflow = h.node.workflow("scripted");
    let many = create(&workflow, "many", script("many")).await;
    wait_for_status(&many, Status::Errored).await;
    assert_eq!(
        many.status().await.unwrap().error.unwrap().message,
        "The limit of 3 steps has been reached. This limit can be changed in your worker configuration."
    );
    let named = create(&workflow, "long-name", script("long-name")).await;
    wait_for_status(&named, Status::Errored).await;
    assert!(
        named
            .status()
            .await
            .unwrap()
            .error
            .unwrap()
            .message
            .ends_with("exceeds max length (256 chars) or invalid characters found")
    );
    h.node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binding_validates_ids_and_refuses_duplicates() {
    let h = harness().await;
    let workflow = h.node.workflow("scripted");
    let invalid = workflow
        .create(CreateOptions {
            id: Some("-nope".into()),
            params: json!(null),
        })
        .await;
    assert_eq!(invalid.err(), Some(Error::InvalidId("-nope".into())));
    create(&workflow, "once", script("counter")).await;
    let duplicate = workflow
        .create(CreateOptions {
            id: Some("once".into()),
            params: json!(null),
        })
        .await;
    assert_eq!(
        duplicate.err().map(|error| error.to_string()),
        Some("(instance.already_exists) Instance already exists".to_owned())
    );
    assert_eq!(
        workflow.create_batch(vec![]).await.err(),
        Some(Error::EmptyBatch)
    );
    let batch: Vec<CreateOptions> = (0..101).map(|_| CreateOptions::default()).collect();
    assert_eq!(
        workflow.create_batch(batch).await.err(),
        Some(Error::BatchTooLarge)
    );
    // A batch with a taken id creates nothing.
    let batch = vec![
        CreateOptions {
            id: Some("fresh".into()),
            params: script("counter"),
        },
        CreateOptions {
            id: Some("once".into()),
            params: script("counter"),
        },
    ];
    assert!(matches!(
        workflow.create_batch(batch).await,
        Err(Error::AlreadyExists(_))
    ));
    assert_eq!(
        workflow.get("fresh").await.err(),
        Some(Error::NotFound("fresh".into()))
    );
    let made = workflow
        .create_batch(vec![
            CreateOptions {
                id: None,
                params: script("counter"),
            },
            CreateOptions {
                id: Some("second".into()),
                params: script("counter"),
            },
        ])
        .await
        .unwrap();
    assert_eq!(made.len(), 2);
    for instance in &made {
        wait_for_status(instance, Status::Complete).await;
    }
    let page = workflow.list(Default::default()).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.instances[0].id, "second", "newest first");
    h.node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_instances_queue_behind_the_concurrency_limit() {
    let h = harness_with(Options::default(), Some(2)).await;
    let workflow = h.node.workflow("scripted");
    let mut instances = Vec::new();
    for index in 0..5 {
        instances.push(create(&workflow, &format!("gated-{index}"), script("gated")).await);
    }
    eventually("two running", || async { h.probe.count("gated") == 2 }).await;
    settle().await;
    assert_eq!(h.probe.count("gated"), 2, "more than the limit ran");
    let mut queued = 0;
    for instance in &instances {
        if instance.status().await.unwrap().status == Status::Queued {
            queued += 1;
        }
    }
    assert_eq!(queued, 3);
    h.probe.open.store(true, Ordering::SeqCst);
    for instance in &instances {
        wait_for_status(instance, Status::Complete).await;
    }
    assert_eq!(h.probe.count("gated"), 5);
    h.node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_instances_are_deleted_after_their_retention() {
    let h = harness_with(
        Options {
            retention: Duration::from_secs(86_400),
            ..Options::default()
        },
        None,
    )
    .await;
    let workflow = h.node.workflow("scripted");
    let instance = create(&workflow, "short-lived", script("counter")).await;
    wait_for_status(&instance, Status::Complete).await;
    h.clock.advance(Duration::from_secs(86_399));
    settle().await;
    assert!(workflow.get("short-lived").await.is_ok());
    h.clock.advance(Duration::from_secs(2));
    eventually("the purge", || async {
        workflow.get("short-lived").await.err() == Some(Error::NotFound("short-lived".into()))
    })
    .await;
    // The id can be used again.
    let again = create(&workflow, "short-lived", script("counter")).await;
    wait_for_status(&again, Status::Complete).await;
    assert_eq!(again.status().await.unwrap().output, Some(json!(2)));
    h.node.stop(Duration::from_secs(5)).await;
}

/// Counts how often a `join!` of two steps' callbacks ran, for the concurrency test below.
static BRANCHES: AtomicU32 = AtomicU32::new(0);

struct Parallel;

impl WorkflowEntrypoint for Parallel {
    type Params = ();
    type Output = Vec<u32>;

    async fn run(
        &self,
        _event: WorkflowEvent<()>,
        step: &WorkflowStep,
    ) -> Result<Vec<u32>, WorkflowError> {
        let (a, b, c) = tokio::join!(
            step.do_("a", async |_| {
                BRANCHES.fetch_add(1, Ordering::SeqCst);
                Ok(1u32)
            }),
            async {
                step.sleep("pause", "1 minute").await?;
                step.do_("b", async |_| {
                    BRANCHES.fetch_add(1, Ordering::SeqCst);
                    Ok(2u32)
                })
                .await
            },
            step.wait_for_event::<u32>("c", WaitOptions::new("c")),
        );
        Ok(vec![a?, b?, c?.payload])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_steps_in_one_run_each_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START_MS);
    let node = Node::start(
        dir.path(),
        Arc::new(clock.clone()),
        Workflows::builder(Options::default()).workflow("parallel", definition(|| Parallel)),
    )
    .await;
    let instance = node
        .workflow("parallel")
        .create(CreateOptions::default())
        .await
        .unwrap();
    wait_for_status(&instance, Status::Waiting).await;
    instance.send_event("c", &3).await.unwrap();
    settle().await;
    clock.advance(Duration::from_secs(60));
    wait_for_status(&instance, Status::Complete).await;
    assert_eq!(
        instance.status().await.unwrap().output,
        Some(json!([1, 2, 3]))
    );
    assert_eq!(BRANCHES.load(Ordering::SeqCst), 2, "a step ran twice");
    node.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiting_instances_share_a_small_concurrency_limit() {
    let h = harness_with(Options::default(), Some(3)).await;
    let workflow = h.node.workflow("scripted");
    let mut sleepers = Vec::new();
    let mut approvals = Vec::new();
    for index in 0..40 {
        sleepers.push(create(&workflow, &format!("sleepy-{index}"), script("sleepy")).await);
        approvals.push(create(&workflow, &format!("approval-{index}"), script("approval")).await);
    }
    // Waiting instances give their slot back, so all 80 reach their wait despite a limit of 3.
    for instance in sleepers.iter().chain(&approvals) {
        wait_for_status(instance, Status::Waiting).await;
    }
    for (index, instance) in approvals.iter().enumerate() {
        instance
            .send_event("approval", &json!({"approved": index % 2 == 0}))
            .await
            .unwrap();
    }
    h.clock.advance(Duration::from_secs(3_600));
    for instance in sleepers.iter().chain(&approvals) {
        wait_for_status(instance, Status::Complete).await;
    }
    assert_eq!(h.probe.count("before"), 40);
    assert_eq!(h.probe.count("after"), 40);
    let page = workflow
        .list(burrow_services::workflows::ListOptions {
            status: Some(Status::Complete),
            page: 1,
            per_page: 1000,
        })
        .await
        .unwrap();
    assert_eq!(page.total, 80);
    h.node.stop(Duration::from_secs(5)).await;
}
