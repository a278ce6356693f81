//! Retries on a manual clock: retry delays and their precedence, attempts counting up,
//! exhausted messages reaching the dead-letter queue with their attempts (or deleted and counted
//! without one), and a handler that fails after acking some messages.

mod queue_support;

use burrow_config::QueueProducer;
use burrow_runtime::clock::{Clock, ManualClock};
use burrow_services::queues::{
    Body, HandlerError, MessageBatch, Options, QueueHandler, QueueSettings, RetryOptions,
    SendOptions, SendRequest,
};
use burrow_storage::fs::OsFs;
use queue_support::{Node, consumer, pull_consumer, settle, wait_for, wait_idle};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const START: i64 = 1_000_000;

/// One delivery as a handler saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Delivery {
    body: String,
    attempts: u32,
    at_ms: i64,
}

type Log = Arc<Mutex<Vec<Delivery>>>;

async fn node(dir: &std::path::Path, clock: &ManualClock) -> Node {
    Node::start(
        Arc::new(OsFs),
        dir,
        Arc::new(clock.clone()),
        Options::default(),
        2,
    )
    .await
}

fn producer(queue: &str, delay: u32) -> QueueProducer {
    QueueProducer {
        binding: "QUEUE".into(),
        queue: queue.into(),
        delivery_delay_seconds: delay,
    }
}

/// A handler that logs every delivery, then lets `script` act on the batch.
fn logging_handler(
    clock: &ManualClock,
    log: &Log,
    script: impl Fn(&MessageBatch) -> Result<(), HandlerError> + Send + Sync + 'static,
) -> Arc<dyn QueueHandler> {
    let clock = clock.clone();
    let log = log.clone();
    Arc::new(move |batch: MessageBatch| {
        for message in batch.messages() {
            log.lock().unwrap().push(Delivery {
                body: message.body().as_text().unwrap_or("").to_string(),
                attempts: message.attempts(),
                at_ms: clock.now_ms(),
            });
        }
        let result = script(&batch);
        async move { result }
    })
}

fn delivery(body: &str, attempts: u32, after_ms: i64) -> Delivery {
    Delivery {
        body: body.into(),
        attempts,
        at_ms: START + after_ms,
    }
}

fn body_of(message: &burrow_services::queues::Message) -> &str {
    message.body().as_text().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_delays_follow_call_then_retry_delay_then_queue_default() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let node = node(dir.path(), &clock).await;
    let queue = node.queues.producer(&producer("work", 0)).await.unwrap();
    let log: Log = Arc::default();
    let handler = logging_handler(&clock, &log, |batch| {
        for message in batch.messages() {
            if message.attempts() > 1 {
                message.ack();
                continue;
            }
            match body_of(message) {
                "call" => message.retry(RetryOptions::delay(30)),
                "consumer-default" => message.retry(RetryOptions::default()),
                "acked" => message.ack(),
                _ => {}
            }
        }
        // Beats nothing explicit above; "batch" takes its delay.
        batch.retry_all(RetryOptions::delay(60));
        // No effect after retryAll.
        batch.messages()[0].ack();
        Ok(())
    });
    let mut config = consumer("work");
    config.max_batch_size = 4;
    config.max_batch_timeout_ms = 0;
    config.retry_delay_seconds = Some(10);
    config.max_retries = 5;
    node.queues.start_consumer(&config, handler).await.unwrap();
    let bodies = ["call", "consumer-default", "batch", "acked"];
    queue
        .send_batch(
            bodies
                .iter()
                .map(|b| SendRequest::new(Body::text(*b)))
                .collect(),
            Default::default(),
        )
        .await
        .unwrap();
    wait_for("the first batch", || log.lock().unwrap().len() == 4).await;
    wait_idle(&node, "work").await;
    clock.advance(Duration::from_millis(9_999));
    settle().await;
    assert_eq!(log.lock().unwrap().len(), 4, "nothing is due before 10 s");
    clock.advance(Duration::from_millis(1));
    wait_for("the retry_delay retry", || log.lock().unwrap().len() == 5).await;
    wait_idle(&node, "work").await;
    clock.advance(Duration::from_secs(20));
    wait_for("the call's retry", || log.lock().unwrap().len() == 6).await;
    wait_idle(&node, "work").await;
    clock.advance(Duration::from_secs(30));
    wait_for("retryAll's retry", || log.lock().unwrap().len() == 7).await;
    wait_idle(&node, "work").await;
    clock.advance(Duration::from_secs(600));
    settle().await;
    let mut seen = log.lock().unwrap().clone();
    seen[..4].sort_by(|a, b| a.body.cmp(&b.body));
    assert_eq!(
        seen,
        vec![
            delivery("acked", 1, 0),
            delivery("batch", 1, 0),
            delivery("call", 1, 0),
            delivery("consumer-default", 1, 0),
            delivery("consumer-default", 2, 10_000),
            delivery("call", 2, 30_000),
            delivery("batch", 2, 60_000),
        ]
    );
    let metrics = node.queues.metrics("work").await.unwrap();
    assert_eq!((metrics.acked, metrics.retried), (4, 3));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retry_delay_retries_use_the_queue_delay_and_producers_may_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let node = node(dir.path(), &clock).await;
    node.queues
        .create(
            "slow",
            QueueSettings {
                delivery_delay_seconds: 7,
                ..QueueSettings::default()
            },
        )
        .await
        .unwrap();
    let queue = node.queues.producer(&producer("slow", 0)).await.unwrap();
    let fast = node.queues.producer(&producer("slow", 3)).await.unwrap();
    let log: Log = Arc::default();
    let handler = logging_handler(&clock, &log, |batch| {
        for message in batch.messages() {
            if message.attempts() == 1 && body_of(message) == "queue-delay" {
                message.retry(RetryOptions::default());
            }
        }
        Ok(())
    });
    let mut config = consumer("slow");
    config.max_batch_size = 1;
    config.max_batch_timeout_ms = 0;
    node.queues.start_consumer(&config, handler).await.unwrap();
    queue
        .send(Body::text("queue-delay"), SendOptions::default())
        .await
        .unwrap();
    fast.send(Body::text("producer-delay"), SendOptions::default())
        .await
        .unwrap();
    queue
        .send(
            Body::text("own-delay"),
            SendOptions {
                delay_seconds: Some(0),
            },
        )
        .await
        .unwrap();
    wait_for("the undelayed message", || log.lock().unwrap().len() == 1).await;
    wait_idle(&node, "slow").await;
    clock.advance(Duration::from_secs(3));
    wait_for("the producer's delay", || log.lock().unwrap().len() == 2).await;
    wait_idle(&node, "slow").await;
    clock.advance(Duration::from_secs(4));
    wait_for("the queue's delay", || log.lock().unwrap().len() == 3).await;
    wait_idle(&node, "slow").await;
    clock.advance(Duration::from_millis(6_999));
    settle().await;
    assert_eq!(log.lock().unwrap().len(), 3);
    clock.advance(Duration::from_millis(1));
    wait_for("the retry after the queue's delay", || {
        log.lock().unwrap().len() == 4
    })
    .await;
    assert_eq!(
        log.lock().unwrap().clone(),
        vec![
            delivery("own-delay", 1, 0),
            delivery("producer-delay", 1, 3_000),
            delivery("queue-delay", 1, 7_000),
            delivery("queue-delay", 2, 14_000),
        ]
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_messages_reach_the_dead_letter_queue_with_their_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let node = node(dir.path(), &clock).await;
    let queue = node.queues.producer(&producer("fragile", 0)).await.unwrap();
    let log: Log = Arc::default();
    let handler = logging_handler(&clock, &log, |_| {
        Err(HandlerError::new("downstream is down"))
    });
    let mut config = consumer("fragile");
    config.max_batch_size = 10;
    config.max_batch_timeout_ms = 0;
    config.max_retries = 2;
    config.retry_delay_seconds = Some(1);
    config.dead_letter_queue = Some("fragile-dlq".into());
    node.queues.start_consumer(&config, handler).await.unwrap();
    assert!(
        node.queues.info("fragile-dlq").await.unwrap().is_some(),
        "the dead-letter queue was created"
    );
    queue
        .send(Body::text("poison"), SendOptions::default())
        .await
        .unwrap();
    for attempt in 1..=3u32 {
        wait_for("a delivery", || {
            log.lock().unwrap().len() == attempt as usize
        })
        .await;
        wait_idle(&node, "fragile").await;
        clock.advance(Duration::from_secs(1));
    }
    let attempts: Vec<u32> = log.lock().unwrap().iter().map(|d| d.attempts).collect();
    assert_eq!(attempts, vec![1, 2, 3], "max_retries = 2: three deliveries");
    let dead_letters = node
        .queues
        .pull_consumer(&pull_consumer("fragile-dlq"))
        .await
        .unwrap();
    let mut pulled = dead_letters.pull(Some(10), None).await.unwrap();
    for _ in 0..200 {
        if !pulled.messages.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        pulled = dead_letters.pull(Some(10), None).await.unwrap();
    }
    assert_eq!(pulled.messages.len(), 1);
    let dead = &pulled.messages[0];
    assert_eq!(dead.body.as_text(), Some("poison"));
    assert_eq!(
        dead.dead_letter_attempts, 3,
        "its attempts in the source queue"
    );
    assert_eq!(
        dead.attempts, 1,
        "its first delivery from the dead-letter queue"
    );
    assert_eq!(dead.timestamp_ms, START, "the original timestamp");
    clock.advance(Duration::from_secs(60));
    settle().await;
    assert_eq!(log.lock().unwrap().len(), 3, "never delivered again");
    let metrics = node.queues.metrics("fragile").await.unwrap();
    assert_eq!(
        (
            metrics.retried,
            metrics.dead_lettered,
            metrics.dropped,
            metrics.backlog_messages
        ),
        (2, 1, 0, 0)
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_dead_letter_queue_exhausted_messages_are_deleted_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let node = node(dir.path(), &clock).await;
    let queue = node.queues.producer(&producer("lossy", 0)).await.unwrap();
    let log: Log = Arc::default();
    let handler = logging_handler(&clock, &log, |batch| {
        batch.retry_all(RetryOptions::default());
        Ok(())
    });
    let mut config = consumer("lossy");
    config.max_batch_timeout_ms = 0;
    config.max_retries = 0;
    node.queues.start_consumer(&config, handler).await.unwrap();
    queue
        .send_batch(
            vec![
                SendRequest::new(Body::text("a")),
                SendRequest::new(Body::text("b")),
            ],
            Default::default(),
        )
        .await
        .unwrap();
    wait_for("one delivery each", || log.lock().unwrap().len() == 2).await;
    let mut metrics = node.queues.metrics("lossy").await.unwrap();
    for _ in 0..200 {
        if metrics.dropped == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        metrics = node.queues.metrics("lossy").await.unwrap();
    }
    assert_eq!((metrics.dropped, metrics.backlog_messages), (2, 0));
    clock.advance(Duration::from_secs(60));
    settle().await;
    assert_eq!(log.lock().unwrap().len(), 2);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_fails_after_acking_some_retries_only_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let node = node(dir.path(), &clock).await;
    let queue = node.queues.producer(&producer("partial", 0)).await.unwrap();
    let log: Log = Arc::default();
    let handler = logging_handler(&clock, &log, |batch| {
        for message in batch.messages() {
            if message.attempts() > 1 || matches!(body_of(message), "a" | "b") {
                message.ack();
            }
        }
        Err(HandlerError::new("failed halfway"))
    });
    let mut config = consumer("partial");
    config.max_batch_size = 4;
    config.max_batch_timeout_ms = 0;
    node.queues.start_consumer(&config, handler).await.unwrap();
    queue
        .send_batch(
            ["a", "b", "c", "d"]
                .iter()
                .map(|b| SendRequest::new(Body::text(*b)))
                .collect(),
            Default::default(),
        )
        .await
        .unwrap();
    wait_for("the first batch and the retry", || {
        log.lock().unwrap().len() == 6
    })
    .await;
    wait_idle(&node, "partial").await;
    clock.advance(Duration::from_secs(60));
    settle().await;
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 6);
    let mut retried: Vec<(String, u32)> = seen[4..]
        .iter()
        .map(|d| (d.body.clone(), d.attempts))
        .collect();
    retried.sort();
    assert_eq!(retried, vec![("c".into(), 2), ("d".into(), 2)]);
    node.stop().await;
}
