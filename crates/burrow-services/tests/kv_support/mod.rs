//! Starts a node with the KV partition class for the KV tests: storage engine, shards, runtime
//! and the [`Kv`] service, on a temporary directory and a clock of the test's choosing.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use burrow_runtime::clock::Clock;
use burrow_runtime::namespace::Namespaces;
use burrow_runtime::shard::Shards;
use burrow_runtime::{Options, Runtime};
use burrow_services::kv::{self, Kv};
use burrow_storage::engine::{Engine, Options as EngineOptions};
use burrow_storage::fs::OsFs;

/// A running node.
pub(crate) struct Node {
    pub(crate) runtime: Runtime,
    pub(crate) shards: Shards,
    pub(crate) kv: Kv,
}

impl Node {
    /// Starts a node with its data in `dir`.
    pub(crate) async fn start(dir: &Path, clock: Arc<dyn Clock>) -> Node {
        let engine = Engine::open(
            Arc::new(OsFs),
            &dir.join("storage"),
            EngineOptions::default(),
        )
        .expect("engine opens");
        let namespaces = Namespaces::open(dir).expect("namespaces open");
        let shards = Shards::start(2).expect("shards start");
        let runtime = Runtime::start(
            shards.clone(),
            engine,
            &namespaces,
            vec![kv::class()],
            clock.clone(),
            Options::default(),
        )
        .await
        .expect("runtime starts");
        let kv = Kv::new(&runtime, clock).expect("KV class is registered");
        Node {
            runtime,
            shards,
            kv,
        }
    }

    /// Stops the node, making everything durable.
    pub(crate) async fn stop(self) {
        self.runtime
            .shutdown(Duration::from_secs(5))
            .await
            .expect("runtime stops");
        self.shards.shutdown(Duration::from_secs(5));
    }
}

/// Polls `condition` every 10 ms for up to 10 s.
pub(crate) async fn wait_until<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1000 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 10 s");
}
