//! Shared by the workflow tests: a node (storage engine, shards, runtime, workflow service) that
//! can be stopped and started again on the same directory, and polling helpers.

#![allow(dead_code)] // Each test file uses a different part of the support module.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burrow_runtime::clock::Clock;
use burrow_runtime::namespace::Namespaces;
use burrow_runtime::shard::Shards;
use burrow_runtime::{Options as RuntimeOptions, Runtime};
use burrow_services::workflows::{
    Builder, CreateOptions, Status, Workflow, WorkflowInstance, Workflows,
};
use burrow_storage::engine::{Engine, Options as EngineOptions};
use burrow_storage::fs::OsFs;

/// A running node.
pub(crate) struct Node {
    pub(crate) runtime: Runtime,
    pub(crate) shards: Shards,
    pub(crate) workflows: Workflows,
}

impl Node {
    /// Starts a node on `dir` with the workflows `builder` declares.
    pub(crate) async fn start(dir: &Path, clock: Arc<dyn Clock>, builder: Builder) -> Node {
        let engine = Engine::open(
            Arc::new(OsFs),
            &dir.join("storage"),
            EngineOptions::default(),
        )
        .unwrap();
        let namespaces = Namespaces::open(dir).unwrap();
        let shards = Shards::start(2).unwrap();
        let workflows = builder.build(clock.clone());
        let runtime = Runtime::start(
            shards.clone(),
            engine,
            &namespaces,
            workflows.classes(),
            clock,
            RuntimeOptions {
                seed: Some(7),
                ..RuntimeOptions::default()
            },
        )
        .await
        .unwrap();
        workflows.attach(&runtime).await.unwrap();
        Node {
            runtime,
            shards,
            workflows,
        }
    }

    /// Stops the node; running events get `grace` to finish, then are dropped.
    pub(crate) async fn stop(self, grace: Duration) {
        self.runtime.shutdown(grace).await.unwrap();
        self.shards.shutdown(grace);
    }

    /// The binding of `name`.
    pub(crate) fn workflow(&self, name: &str) -> Workflow {
        self.workflows.get(name).unwrap()
    }
}

/// Creates an instance with `id` and `params`.
pub(crate) async fn create(
    workflow: &Workflow,
    id: &str,
    params: serde_json::Value,
) -> WorkflowInstance {
    workflow
        .create(CreateOptions {
            id: Some(id.to_owned()),
            params,
        })
        .await
        .unwrap()
}

/// Polls `condition` every few milliseconds for up to 20 s (real time).
pub(crate) async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits until the instance has `status`.
pub(crate) async fn wait_for_status(instance: &WorkflowInstance, status: Status) {
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let now = instance.status().await.unwrap();
        if now.status == status {
            return;
        }
        last = Some(now);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "instance {} never reached {status}; last: {last:?}",
        instance.id()
    );
}

/// Gives background work a moment (for checks that something does *not* happen).
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Lines of a side-effect log file.
pub(crate) fn lines(path: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Appends a line to a side-effect log file (and syncs it, like an external system would).
pub(crate) fn append(path: &PathBuf, line: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(file, "{line}").unwrap();
    file.sync_all().unwrap();
}
