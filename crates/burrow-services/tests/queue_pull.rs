//! Pull consumers on a manual clock: leases hide messages for the visibility timeout, expired
//! leases redeliver, acks and retries go by lease id, and a stale lease acks nothing. Also:
//! content types round trip, and retention deletes old messages from the partition's alarm.

mod queue_support;

use burrow_runtime::clock::ManualClock;
use burrow_services::queues::{
    Body, ContentType, Error, LeaseRetry, Options, QueueSettings, SendOptions, SendRequest,
};
use burrow_storage::fs::OsFs;
use queue_support::{Node, pull_consumer, wait_for};
use std::sync::Arc;
use std::time::Duration;

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

fn texts(bodies: &[&str]) -> Vec<SendRequest> {
    bodies
        .iter()
        .map(|b| SendRequest::new(Body::text(*b)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_leases_redeliver_and_acks_go_by_lease_id() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let node = node(dir.path(), &clock).await;
    let mut config = pull_consumer("pulled");
    config.retry_delay_seconds = Some(5);
    let consumer = node.queues.pull_consumer(&config).await.unwrap();
    let queue = node.queues.queue("pulled").await.unwrap();
    queue
        .send_batch(texts(&["a", "b", "c"]), Default::default())
        .await
        .unwrap();

    let first = consumer.pull(Some(2), Some(10_000)).await.unwrap();
    assert_eq!(first.backlog_count, 3);
    let bodies: Vec<_> = first
        .messages
        .iter()
        .map(|m| m.body.as_text().unwrap())
        .collect();
    assert_eq!(bodies, vec!["a", "b"]);
    assert!(first.messages.iter().all(|m| m.attempts == 1));
    let second = consumer.pull(Some(5), Some(10_000)).await.unwrap();
    assert_eq!(second.messages.len(), 1, "leased messages stay hidden");
    assert_eq!(second.messages[0].body.as_text(), Some("c"));
    assert!(consumer.pull(None, None).await.unwrap().messages.is_empty());

    // The visibility timeout runs out: a and b come back, attempt 2.
    clock.advance(Duration::from_millis(9_999));
    assert!(consumer.pull(None, None).await.unwrap().messages.is_empty());
    clock.advance(Duration::from_millis(1));
    let again = consumer.pull(Some(10), Some(60_000)).await.unwrap();
    let mut redelivered: Vec<_> = again
        .messages
        .iter()
        .map(|m| (m.body.as_text().unwrap(), m.attempts))
        .collect();
    redelivered.sort();
    assert_eq!(redelivered, vec![("a", 2), ("b", 2), ("c", 2)]);
    assert_eq!(
        again.messages.iter().map(|m| &m.id).collect::<Vec<_>>(),
        [first.messages.iter(), second.messages.iter()]
            .into_iter()
            .flatten()
            .map(|m| &m.id)
            .collect::<Vec<_>>(),
        "the same messages, same ids"
    );

    // The first leases were taken over: acking with them does nothing.
    let stale: Vec<String> = first.messages.iter().map(|m| m.lease_id.clone()).collect();
    let outcome = consumer.ack(&stale, &[]).await.unwrap();
    assert_eq!((outcome.acked, outcome.ignored), (0, 2));

    // Ack a, retry b with its own delay, retry c with the consumer's retry_delay.
    let lease = |body: &str| {
        again
            .messages
            .iter()
            .find(|m| m.body.as_text() == Some(body))
            .unwrap()
            .lease_id
            .clone()
    };
    let outcome = consumer
        .ack(
            &[lease("a")],
            &[
                LeaseRetry {
                    lease_id: lease("b"),
                    delay_seconds: Some(20),
                },
                LeaseRetry {
                    lease_id: lease("c"),
                    delay_seconds: None,
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!((outcome.acked, outcome.retried), (1, 2));
    clock.advance(Duration::from_secs(5));
    let c = consumer.pull(Some(10), None).await.unwrap();
    assert_eq!(
        c.messages
            .iter()
            .map(|m| (m.body.as_text().unwrap(), m.attempts))
            .collect::<Vec<_>>(),
        vec![("c", 3)]
    );
    clock.advance(Duration::from_secs(15));
    let b = consumer.pull(Some(10), None).await.unwrap();
    assert_eq!(b.messages.len(), 1);
    assert_eq!(b.messages[0].body.as_text(), Some("b"));
    consumer
        .ack(
            &[
                b.messages[0].lease_id.clone(),
                c.messages[0].lease_id.clone(),
            ],
            &[],
        )
        .await
        .unwrap();
    let metrics = node.queues.metrics("pulled").await.unwrap();
    assert_eq!(
        (metrics.acked, metrics.retried, metrics.backlog_messages),
        (3, 2, 0)
    );

    // Malformed lease ids are refused before anything is settled.
    assert!(matches!(
        consumer.ack(&["nonsense".to_string()], &[]).await,
        Err(Error::InvalidLeaseId(_))
    ));
    assert!(matches!(
        consumer.pull(Some(101), None).await,
        Err(Error::InvalidPull(_))
    ));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_content_type_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let node = node(dir.path(), &clock).await;
    let consumer = node
        .queues
        .pull_consumer(&pull_consumer("typed"))
        .await
        .unwrap();
    let queue = node.queues.queue("typed").await.unwrap();
    let bodies = vec![
        Body::json(&serde_json::json!({"n": 1, "s": "ü"})).unwrap(),
        Body::text("plain"),
        Body::bytes(vec![0u8, 255, 7]),
        Body::v8(vec![0xff, 0x0f, 0x22, 0x02, 0x68, 0x69]),
    ];
    for body in &bodies {
        queue
            .send(body.clone(), SendOptions::default())
            .await
            .unwrap();
    }
    let pulled = consumer.pull(Some(10), None).await.unwrap();
    let got: Vec<Body> = pulled.messages.into_iter().map(|m| m.body).collect();
    assert_eq!(got, bodies);
    assert_eq!(got[0].content_type(), ContentType::Json);
    assert_eq!(got[3].content_type(), ContentType::V8);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_messages_from_the_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let node = node(dir.path(), &clock).await;
    node.queues
        .create(
            "brief",
            QueueSettings {
                retention_seconds: 60,
                ..QueueSettings::default()
            },
        )
        .await
        .unwrap();
    let queue = node.queues.queue("brief").await.unwrap();
    queue
        .send(Body::text("old"), SendOptions::default())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(30));
    queue
        .send(Body::text("newer"), SendOptions::default())
        .await
        .unwrap();
    clock.advance(Duration::from_secs(30));
    let metrics = || async { node.queues.metrics("brief").await.unwrap() };
    wait_for_async(|| async { metrics().await.expired == 1 }).await;
    assert_eq!(metrics().await.backlog_messages, 1);
    clock.advance(Duration::from_secs(30));
    wait_for_async(|| async { metrics().await.expired == 2 }).await;
    assert_eq!(metrics().await.backlog_messages, 0);
    node.stop().await;
}

async fn wait_for_async<F: std::future::Future<Output = bool>>(mut condition: impl FnMut() -> F) {
    for _ in 0..1_000 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_for("an async condition", || false).await;
}
