//! Shared by the queue tests: a node (engine, shards, runtime, queue service) started on a
//! directory, and consumers that record what they receive.
#![allow(dead_code, unreachable_pub)] // Each test file uses a different part of this module.

use burrow_config::{ConsumerKind, QueueConsumer};
use burrow_runtime::clock::Clock;
use burrow_runtime::namespace::Namespaces;
use burrow_runtime::shard::Shards;
use burrow_runtime::{Options as RuntimeOptions, Runtime};
use burrow_services::queues::{Options, Queues};
use burrow_storage::engine::{Engine, Options as EngineOptions};
use burrow_storage::fs::Fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub struct Node {
    pub runtime: Runtime,
    pub shards: Shards,
    pub queues: Queues,
}

impl Node {
    /// Starts a node: storage under `dir/storage` on `fs`, namespaces in `dir` on the real disk.
    pub async fn start(
        fs: Arc<dyn Fs>,
        dir: &Path,
        clock: Arc<dyn Clock>,
        options: Options,
        shard_count: usize,
    ) -> Node {
        // The data directory exists before the node starts, durably (as on a real install).
        let root = dir.join("storage");
        fs.create_dir_all(&root).unwrap();
        for ancestor in root.ancestors() {
            let _ = fs.sync_dir(ancestor);
        }
        let engine = Engine::open(fs, &root, EngineOptions::default()).unwrap();
        let namespaces = Namespaces::open(dir).unwrap();
        let shards = Shards::start(shard_count).unwrap();
        let runtime = Runtime::start(
            shards.clone(),
            engine,
            &namespaces,
            Queues::classes(),
            clock.clone(),
            RuntimeOptions {
                seed: Some(1),
                ..RuntimeOptions::default()
            },
        )
        .await
        .unwrap();
        let queues = Queues::new(&runtime, clock, options).unwrap();
        Node {
            runtime,
            shards,
            queues,
        }
    }

    /// A clean stop: dispatchers settle, objects close, the journal is flushed.
    pub async fn stop(self) {
        self.queues.stop(Duration::from_secs(5)).await;
        self.runtime.shutdown(Duration::from_secs(5)).await.unwrap();
        self.shards.shutdown(Duration::from_secs(5));
    }

    /// Abandons the node without draining anything: running tasks are cancelled mid-flight and
    /// nothing is closed or flushed.
    pub fn abandon(self) {
        self.shards.shutdown(Duration::ZERO);
        drop(self.queues);
        drop(self.runtime);
    }
}

/// A push consumer entry with Cloudflare's defaults, for `queue`.
pub fn consumer(queue: &str) -> QueueConsumer {
    QueueConsumer {
        queue: queue.to_string(),
        kind: ConsumerKind::Worker,
        max_batch_size: 10,
        max_batch_timeout_ms: 5_000,
        max_retries: 3,
        dead_letter_queue: None,
        max_concurrency: None,
        retry_delay_seconds: None,
        visibility_timeout_ms: None,
    }
}

/// A pull consumer entry for `queue`.
pub fn pull_consumer(queue: &str) -> QueueConsumer {
    QueueConsumer {
        kind: ConsumerKind::HttpPull,
        ..consumer(queue)
    }
}

/// Polls `condition` every 5 ms for up to 10 s of real time.
pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until no message of `queue` is leased: a delivered batch's outcome (acks, retries with
/// their due times) is on record. Tests on a manual clock call it before moving the clock, so a
/// retry's delay counts from the time the test means.
pub async fn wait_idle(node: &Node, queue: &str) {
    for _ in 0..2_000 {
        if node.queues.metrics(queue).await.unwrap().in_flight == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {queue}'s batches to finish");
}

/// Lets background tasks run for a moment of real time (for "nothing happens" checks).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}
