//! At-least-once delivery across a power loss: many producers send while a consumer (which
//! fails some batches) drains; mid-stream the simulated disk loses every unsynced write and the
//! node is abandoned without draining; a new node on the same disk must deliver every send that
//! was acknowledged, at least once. Duplicates are counted and reported.

mod queue_support;

use burrow_config::QueueProducer;
use burrow_runtime::clock::SystemClock;
use burrow_services::queues::{
    Body, HandlerError, MessageBatch, Options, QueueHandler, Queues, SendOptions, SendRequest,
};
use burrow_storage::fs::sim::SimFs;
use queue_support::{Node, consumer};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PRODUCERS: usize = 16;
const PER_PRODUCER: usize = 1_000;

#[derive(Default)]
struct Ledger {
    acknowledged: Mutex<HashSet<String>>,
    deliveries: Mutex<HashMap<String, u32>>,
    batches: AtomicUsize,
}

fn handler(ledger: &Arc<Ledger>) -> Arc<dyn QueueHandler> {
    let ledger = ledger.clone();
    Arc::new(move |batch: MessageBatch| {
        let n = ledger.batches.fetch_add(1, Ordering::SeqCst);
        {
            let mut deliveries = ledger.deliveries.lock().unwrap();
            for message in batch.messages() {
                *deliveries
                    .entry(message.body().as_text().unwrap().to_string())
                    .or_default() += 1;
            }
        }
        // Every seventh batch fails after acking its first message: retries are part of the mix.
        let result = if n % 7 == 3 {
            batch.messages()[0].ack();
            Err(HandlerError::new("flaky consumer"))
        } else {
            Ok(())
        };
        async move { result }
    })
}

async fn start(sim: &SimFs, dir: &std::path::Path, ledger: &Arc<Ledger>) -> Node {
    let node = Node::start(
        Arc::new(sim.clone()),
        dir,
        Arc::new(SystemClock),
        Options::default(),
        2,
    )
    .await;
    let mut config = consumer("events");
    config.max_batch_size = 50;
    config.max_batch_timeout_ms = 20;
    config.max_concurrency = Some(4);
    config.max_retries = 100;
    node.queues
        .start_consumer(&config, handler(ledger))
        .await
        .unwrap();
    node
}

/// Sends `range` from `PRODUCERS` tasks (singles and batches of 10) until done or `stop`.
async fn produce(queues: &Queues, ledger: &Arc<Ledger>, round: usize, stop: &Arc<AtomicBool>) {
    let producer = QueueProducer {
        binding: "EVENTS".into(),
        queue: "events".into(),
        delivery_delay_seconds: 0,
    };
    let queue = queues.producer(&producer).await.unwrap();
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let queue = queue.clone();
            let ledger = ledger.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut i = 0;
                while i < PER_PRODUCER && !stop.load(Ordering::SeqCst) {
                    let names: Vec<String> = (i..(i + 10).min(PER_PRODUCER))
                        .map(|k| format!("r{round}-p{p}-{k}"))
                        .collect();
                    let result = if i % 20 == 0 {
                        queue
                            .send_batch(
                                names
                                    .iter()
                                    .map(|n| SendRequest::new(Body::text(n.clone())))
                                    .collect(),
                                Default::default(),
                            )
                            .await
                            .map(|()| names)
                    } else {
                        let name = names[0].clone();
                        queue
                            .send(Body::text(name.clone()), SendOptions::default())
                            .await
                            .map(|()| vec![name])
                    };
                    match result {
                        Ok(sent) => {
                            i += sent.len();
                            ledger.acknowledged.lock().unwrap().extend(sent);
                        }
                        // After the power cut sends fail; what failed was never acknowledged.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_send_is_delivered_at_least_once_across_a_power_loss() {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimFs::new(42);
    let ledger = Arc::new(Ledger::default());

    // Life 1: produce; cut the power once about half of the first round is acknowledged.
    let node = start(&sim, dir.path(), &ledger).await;
    let stop = Arc::new(AtomicBool::new(false));
    let cutter = {
        let ledger = ledger.clone();
        let sim = sim.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while ledger.acknowledged.lock().unwrap().len() < PRODUCERS * PER_PRODUCER / 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            sim.crash();
            stop.store(true, Ordering::SeqCst);
        })
    };
    produce(&node.queues, &ledger, 1, &stop).await;
    cutter.await.unwrap();
    let acknowledged_before = ledger.acknowledged.lock().unwrap().len();
    let delivered_before = ledger.deliveries.lock().unwrap().len();
    eprintln!("life 1 over: {acknowledged_before} acknowledged, {delivered_before} delivered");
    node.abandon();

    // Life 2: recover from what was durable, send a second round, drain everything.
    let node = start(&sim, dir.path(), &ledger).await;
    let started = Instant::now();
    produce(&node.queues, &ledger, 2, &Arc::new(AtomicBool::new(false))).await;
    eprintln!("life 2: second round sent in {:?}", started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let missing = {
            let acknowledged = ledger.acknowledged.lock().unwrap();
            let deliveries = ledger.deliveries.lock().unwrap();
            acknowledged
                .iter()
                .filter(|name| !deliveries.contains_key(*name))
                .count()
        };
        if missing == 0 {
            break;
        }
        if Instant::now() >= deadline {
            let lost = {
                let acknowledged = ledger.acknowledged.lock().unwrap();
                let deliveries = ledger.deliveries.lock().unwrap();
                let mut lost: Vec<String> = acknowledged
                    .iter()
                    .filter(|name| !deliveries.contains_key(*name))
                    .cloned()
                    .collect();
                lost.sort();
                lost
            };
            let metrics = node.queues.metrics("events").await.unwrap();
            panic!("{missing} acknowledged messages were never delivered: {lost:?}; {metrics:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acknowledged = ledger.acknowledged.lock().unwrap().len();
    let (delivered, duplicates) = {
        let deliveries = ledger.deliveries.lock().unwrap();
        let duplicates: u32 = deliveries.values().map(|n| n - 1).sum();
        (deliveries.len(), duplicates)
    };
    let unacknowledged_but_delivered = delivered - acknowledged;
    eprintln!(
        "power loss: {acknowledged_before} acknowledged and {delivered_before} delivered before the cut; \
         {acknowledged} acknowledged in all, every one delivered; {duplicates} duplicate deliveries \
         (retries of failed batches and redeliveries after the cut); {unacknowledged_but_delivered} \
         delivered whose send was never acknowledged"
    );
    assert!(acknowledged >= PRODUCERS * PER_PRODUCER);
    node.stop().await;
}
