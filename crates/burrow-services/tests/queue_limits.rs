//! Producer limits: oversized messages and batches, too many messages, bad delays and a full
//! backlog are refused with Cloudflare's errors, and nothing of a refused call is stored.

mod queue_support;

use burrow_runtime::clock::ManualClock;
use burrow_services::queues::{
    BatchOptions, Body, Error, MAX_MESSAGE_BYTES, Operation, Options, QueueSettings, SendOptions,
    SendRequest,
};
use burrow_storage::fs::OsFs;
use queue_support::Node;
use std::sync::Arc;

fn bytes(n: usize) -> Body {
    Body::bytes(vec![b'x'; n])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_and_batches_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let node = Node::start(
        Arc::new(OsFs),
        dir.path(),
        Arc::new(clock),
        Options::default(),
        2,
    )
    .await;
    node.queues
        .create("limited", QueueSettings::default())
        .await
        .unwrap();
    let queue = node.queues.queue("limited").await.unwrap();

    let error = queue
        .send(bytes(MAX_MESSAGE_BYTES + 1), SendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Queue send failed: message length of 128001 bytes exceeds limit of 128000"
    );
    // Exactly at the limit is fine.
    queue
        .send(bytes(MAX_MESSAGE_BYTES), SendOptions::default())
        .await
        .unwrap();

    let too_many: Vec<SendRequest> = (0..101).map(|_| SendRequest::new(bytes(1))).collect();
    assert_eq!(
        queue
            .send_batch(too_many, BatchOptions::default())
            .await
            .unwrap_err()
            .to_string(),
        "Queue sendBatch failed: batch message count of 101 exceeds limit of 100"
    );
    let one_too_big = vec![
        SendRequest::new(bytes(10)),
        SendRequest::new(bytes(MAX_MESSAGE_BYTES + 5)),
    ];
    assert_eq!(
        queue
            .send_batch(one_too_big, BatchOptions::default())
            .await
            .unwrap_err()
            .to_string(),
        "Queue sendBatch failed: message in batch has length 128005 bytes which exceeds single message size limit of 128000"
    );
    let too_big: Vec<SendRequest> = (0..3).map(|_| SendRequest::new(bytes(90_000))).collect();
    assert_eq!(
        queue
            .send_batch(too_big, BatchOptions::default())
            .await
            .unwrap_err()
            .to_string(),
        "Queue sendBatch failed: batch size of 270000 bytes exceeds limit of 256000"
    );
    let empty = queue
        .send_batch(Vec::new(), BatchOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        empty.to_string(),
        "sendBatch() requires at least one message"
    );
    assert!(empty.is_type_error());

    // A bad delay anywhere in a batch refuses the whole batch.
    let mut delayed = vec![SendRequest::new(bytes(1)), SendRequest::new(bytes(1))];
    delayed[1].delay_seconds = Some(43_201);
    assert_eq!(
        queue
            .send_batch(delayed, BatchOptions::default())
            .await
            .unwrap_err(),
        Error::InvalidDelay {
            operation: Operation::SendBatch,
            seconds: 43_201
        }
    );
    assert!(matches!(
        queue
            .send(
                bytes(1),
                SendOptions {
                    delay_seconds: Some(50_000)
                }
            )
            .await,
        Err(Error::InvalidDelay { .. })
    ));

    let metrics = node.queues.metrics("limited").await.unwrap();
    assert_eq!(
        (metrics.backlog_messages, metrics.backlog_bytes),
        (1, MAX_MESSAGE_BYTES as u64),
        "only the message at the limit was stored"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_refuses_whole_batches_with_storage_limit_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let node = Node::start(
        Arc::new(OsFs),
        dir.path(),
        Arc::new(clock),
        Options::default(),
        2,
    )
    .await;
    node.queues
        .create(
            "small",
            QueueSettings {
                max_backlog_messages: 5,
                ..QueueSettings::default()
            },
        )
        .await
        .unwrap();
    let queue = node.queues.queue("small").await.unwrap();
    let batch = |n: usize| -> Vec<SendRequest> {
        (0..n)
            .map(|i| SendRequest::new(Body::text(format!("m{i}"))))
            .collect()
    };
    queue
        .send_batch(batch(4), BatchOptions::default())
        .await
        .unwrap();
    let error = queue
        .send_batch(batch(3), BatchOptions::default())
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("Queue sendBatch failed: Storage Limit Exceeded"),
        "{error}"
    );
    assert!(matches!(
        error,
        Error::BacklogFull {
            backlog_messages: 4,
            max_messages: 5,
            ..
        }
    ));
    assert_eq!(
        node.queues.metrics("small").await.unwrap().backlog_messages,
        4,
        "nothing of the refused batch was stored"
    );
    queue
        .send(Body::text("fits"), SendOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        queue.send(Body::text("full"), SendOptions::default()).await,
        Err(Error::BacklogFull {
            operation: Operation::Send,
            ..
        })
    ));
    assert!(matches!(
        node.queues.queue("missing").await,
        Err(Error::QueueNotFound(_))
    ));
    assert!(matches!(
        node.queues
            .create("bad name", QueueSettings::default())
            .await,
        Err(Error::InvalidQueueName(_))
    ));
    node.stop().await;
}
