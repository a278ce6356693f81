//! Push delivery: batches respect max_batch_size and max_batch_timeout (on a manual clock), and
//! a consumer never runs more than max_concurrency batches at once.

mod queue_support;

use burrow_config::QueueProducer;
use burrow_runtime::clock::ManualClock;
use burrow_services::queues::{
    Body, HandlerError, MessageBatch, Options, QueueHandler, SendOptions, SendRequest,
};
use burrow_storage::fs::OsFs;
use queue_support::{Node, consumer, settle, wait_for};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Batch = (i64, Vec<String>);

fn producer(queue: &str) -> QueueProducer {
    QueueProducer {
        binding: "QUEUE".into(),
        queue: queue.into(),
        delivery_delay_seconds: 0,
    }
}

fn texts(range: std::ops::Range<usize>) -> Vec<SendRequest> {
    range
        .map(|i| SendRequest::new(Body::text(format!("m{i}"))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_fill_to_max_batch_size_and_flush_after_max_batch_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let node = Node::start(
        Arc::new(OsFs),
        dir.path(),
        Arc::new(clock.clone()),
        Options::default(),
        2,
    )
    .await;
    let queue = node.queues.producer(&producer("jobs")).await.unwrap();
    // (clock time, bodies) per batch.
    let batches: Arc<Mutex<Vec<Batch>>> = Arc::default();
    let record = batches.clone();
    let handler_clock = clock.clone();
    let handler = move |batch: MessageBatch| {
        let bodies = batch
            .messages()
            .iter()
            .map(|m| m.body().as_text().unwrap().to_string())
            .collect();
        record
            .lock()
            .unwrap()
            .push((burrow_runtime::clock::Clock::now_ms(&handler_clock), bodies));
        async { Ok::<(), HandlerError>(()) }
    };
    let mut config = consumer("jobs");
    config.max_batch_size = 10;
    config.max_batch_timeout_ms = 5_000;
    config.max_concurrency = Some(1);
    node.queues
        .start_consumer(&config, Arc::new(handler) as Arc<dyn QueueHandler>)
        .await
        .unwrap();

    queue
        .send_batch(texts(0..25), Default::default())
        .await
        .unwrap();
    wait_for("two full batches", || batches.lock().unwrap().len() == 2).await;
    settle().await;
    {
        let seen = batches.lock().unwrap();
        assert_eq!(seen.len(), 2, "the last 5 wait for the batch timeout");
        assert!(seen.iter().all(|(_, b)| b.len() == 10));
    }
    clock.advance(Duration::from_millis(4_999));
    settle().await;
    assert_eq!(batches.lock().unwrap().len(), 2, "not before 5 s");
    clock.advance(Duration::from_millis(1));
    wait_for("the partial batch", || batches.lock().unwrap().len() == 3).await;
    let seen = batches.lock().unwrap().clone();
    assert_eq!(seen[2].1.len(), 5);
    assert_eq!(seen[2].0, 1_005_000, "delivered exactly at the timeout");
    let mut all: Vec<String> = seen.into_iter().flat_map(|(_, b)| b).collect();
    all.sort();
    let mut expected: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(all, expected, "each message exactly once");

    // A lone message also waits for the timeout, then comes alone.
    queue
        .send(Body::text("late"), SendOptions::default())
        .await
        .unwrap();
    settle().await;
    assert_eq!(batches.lock().unwrap().len(), 3);
    clock.advance(Duration::from_secs(5));
    wait_for("the lone message", || batches.lock().unwrap().len() == 4).await;
    assert_eq!(batches.lock().unwrap()[3].1, vec!["late".to_string()]);
    let metrics = node.queues.metrics("jobs").await.unwrap();
    assert_eq!((metrics.acked, metrics.backlog_messages), (26, 0));
    assert_eq!(metrics.batches_delivered, 4);
    node.stop().await;
}

struct Concurrency {
    current: AtomicUsize,
    max: AtomicUsize,
    delivered: AtomicUsize,
    gate: tokio::sync::Semaphore,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_is_never_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let node = Node::start(
        Arc::new(OsFs),
        dir.path(),
        Arc::new(clock.clone()),
        Options::default(),
        2,
    )
    .await;
    let queue = node.queues.producer(&producer("busy")).await.unwrap();
    let probe = Arc::new(Concurrency {
        current: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
        delivered: AtomicUsize::new(0),
        gate: tokio::sync::Semaphore::new(0),
    });
    let handler_probe = probe.clone();
    let handler = move |batch: MessageBatch| {
        let probe = handler_probe.clone();
        async move {
            let now = probe.current.fetch_add(1, Ordering::SeqCst) + 1;
            probe.max.fetch_max(now, Ordering::SeqCst);
            probe.gate.acquire().await.unwrap().forget();
            probe
                .delivered
                .fetch_add(batch.messages().len(), Ordering::SeqCst);
            probe.current.fetch_sub(1, Ordering::SeqCst);
            Ok::<(), HandlerError>(())
        }
    };
    let mut config = consumer("busy");
    config.max_batch_size = 5;
    config.max_batch_timeout_ms = 0;
    config.max_concurrency = Some(2);
    node.queues
        .start_consumer(&config, Arc::new(handler) as Arc<dyn QueueHandler>)
        .await
        .unwrap();
    for chunk in 0..5 {
        queue
            .send_batch(texts(chunk * 10..chunk * 10 + 10), Default::default())
            .await
            .unwrap();
    }
    wait_for("two batches running", || {
        probe.current.load(Ordering::SeqCst) == 2
    })
    .await;
    settle().await;
    assert_eq!(
        probe.current.load(Ordering::SeqCst),
        2,
        "a third batch started"
    );
    let in_flight = node.queues.metrics("busy").await.unwrap().in_flight;
    assert_eq!(in_flight, 10, "two leased batches of five");
    // Release batches one at a time; the bound holds throughout.
    for released in 1..=10 {
        probe.gate.add_permits(1);
        wait_for("a batch to finish", || {
            probe.delivered.load(Ordering::SeqCst) == released * 5
        })
        .await;
        assert!(probe.max.load(Ordering::SeqCst) <= 2);
    }
    assert_eq!(probe.max.load(Ordering::SeqCst), 2);
    wait_for("all acked", || probe.current.load(Ordering::SeqCst) == 0).await;
    let mut metrics = node.queues.metrics("busy").await.unwrap();
    for _ in 0..100 {
        if metrics.acked == 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        metrics = node.queues.metrics("busy").await.unwrap();
    }
    assert_eq!((metrics.acked, metrics.backlog_messages), (50, 0));
    node.stop().await;
}
