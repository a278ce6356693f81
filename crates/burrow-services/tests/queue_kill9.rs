//! At-least-once delivery of 100,000 messages across `kill -9`: the test re-runs its own binary
//! as a child process that hosts a node (real disk, system clock), sends from 32 producers and
//! consumes with a push consumer, printing `A <name>` for every acknowledged send and `D <name>`
//! for every delivery (before the handler returns, so before the ack). The parent SIGKILLs the
//! child mid-stream, twice, restarts it on the same directory, and finally checks that every
//! acknowledged send was delivered at least once. Duplicates are counted and reported.

mod queue_support;

use burrow_config::QueueProducer;
use burrow_runtime::clock::SystemClock;
use burrow_services::queues::{
    Body, HandlerError, MessageBatch, Options, QueueHandler, SendOptions,
};
use burrow_storage::fs::OsFs;
use queue_support::{Node, consumer};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CHILD_VARIABLE: &str = "BURROW_QUEUE_KILL9_DIR";
const ROUND_VARIABLE: &str = "BURROW_QUEUE_KILL9_ROUND";
const PRODUCERS: usize = 32;
/// Messages each life sends (the first two are killed part-way through).
const PER_LIFE: usize = 40_000;
const TOTAL_ACKNOWLEDGED: usize = 100_000;

/// The child: runs until killed.
#[test]
#[ignore = "run by queue_kill9_delivers_every_acknowledged_send as a child process"]
fn queue_kill9_child() {
    let Ok(dir) = std::env::var(CHILD_VARIABLE) else {
        return;
    };
    let round: usize = std::env::var(ROUND_VARIABLE).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(child(std::path::PathBuf::from(dir), round));
}

/// Writes whole lines under one lock so lines never interleave.
fn emit(lines: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(lines.as_bytes()).unwrap();
    out.flush().unwrap();
}

async fn child(dir: std::path::PathBuf, round: usize) {
    let node = Node::start(
        Arc::new(OsFs),
        &dir,
        Arc::new(SystemClock),
        Options::default(),
        2,
    )
    .await;
    let handler = Arc::new(|batch: MessageBatch| {
        let mut lines = String::new();
        for message in batch.messages() {
            lines.push_str("D ");
            lines.push_str(message.body().as_text().unwrap());
            lines.push('\n');
        }
        emit(&lines);
        async { Ok::<(), HandlerError>(()) }
    }) as Arc<dyn QueueHandler>;
    let mut config = consumer("orders");
    config.max_batch_size = 100;
    config.max_batch_timeout_ms = 50;
    config.max_concurrency = Some(4);
    node.queues.start_consumer(&config, handler).await.unwrap();
    let queue = node
        .queues
        .producer(&QueueProducer {
            binding: "ORDERS".into(),
            queue: "orders".into(),
            delivery_delay_seconds: 0,
        })
        .await
        .unwrap();
    emit("READY\n");
    let tasks: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let queue = queue.clone();
            tokio::spawn(async move {
                for k in (p..PER_LIFE).step_by(PRODUCERS) {
                    let name = format!("r{round}-{k}");
                    queue
                        .send(Body::text(name.clone()), SendOptions::default())
                        .await
                        .unwrap();
                    emit(&format!("A {name}\n"));
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    emit("SENT\n");
    // Keep consuming until the parent kills us.
    std::future::pending::<()>().await;
}

#[derive(Default)]
struct Ledger {
    acknowledged: HashSet<String>,
    deliveries: HashMap<String, u32>,
    ready: bool,
    sent: bool,
}

fn spawn_child(dir: &std::path::Path, round: usize, ledger: &Arc<Mutex<Ledger>>) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["queue_kill9_child", "--exact", "--ignored", "--nocapture"])
        .env(CHILD_VARIABLE, dir)
        .env(ROUND_VARIABLE, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ledger = ledger.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut ledger = ledger.lock().unwrap();
            if let Some(name) = line.strip_prefix("A ") {
                ledger.acknowledged.insert(name.to_string());
            } else if let Some(name) = line.strip_prefix("D ") {
                *ledger.deliveries.entry(name.to_string()).or_default() += 1;
            } else if line == "READY" {
                ledger.ready = true;
            } else if line == "SENT" {
                ledger.sent = true;
            }
        }
    });
    child
}

fn wait_until(
    what: &str,
    timeout: Duration,
    ledger: &Mutex<Ledger>,
    done: impl Fn(&Ledger) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done(&ledger.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn queue_kill9_delivers_every_acknowledged_send() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut kills = Vec::new();
    let mut round = 0;
    // Two lives killed mid-stream, then one that finishes.
    while ledger.lock().unwrap().acknowledged.len() < TOTAL_ACKNOWLEDGED || round < 3 {
        round += 1;
        {
            let mut ledger = ledger.lock().unwrap();
            ledger.ready = false;
            ledger.sent = false;
        }
        let mut child = spawn_child(dir.path(), round, &ledger);
        wait_until(
            "the child to start",
            Duration::from_secs(60),
            &ledger,
            |l| l.ready,
        );
        let before = ledger.lock().unwrap().acknowledged.len();
        if round < 3 {
            wait_until(
                "sends to be acknowledged",
                Duration::from_secs(120),
                &ledger,
                |l| l.acknowledged.len() >= before + PER_LIFE / 2,
            );
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills.push(ledger.lock().unwrap().acknowledged.len());
            continue;
        }
        wait_until(
            "the last round to be sent",
            Duration::from_secs(120),
            &ledger,
            |l| l.sent,
        );
        wait_until(
            "every acknowledged send to be delivered",
            Duration::from_secs(120),
            &ledger,
            |l| {
                l.acknowledged
                    .iter()
                    .all(|name| l.deliveries.contains_key(name))
            },
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let ledger = ledger.lock().unwrap();
    let duplicates: u32 = ledger.deliveries.values().map(|n| n - 1).sum();
    let never_acknowledged = ledger
        .deliveries
        .keys()
        .filter(|name| !ledger.acknowledged.contains(*name))
        .count();
    eprintln!(
        "kill -9: killed at {kills:?} acknowledged sends; {} acknowledged in all, every one delivered \
         at least once; {duplicates} duplicate deliveries; {never_acknowledged} delivered whose send \
         was cut off before its acknowledgement",
        ledger.acknowledged.len()
    );
    assert!(ledger.acknowledged.len() >= TOTAL_ACKNOWLEDGED);
}
