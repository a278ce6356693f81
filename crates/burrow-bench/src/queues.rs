//! `burrow-bench queues`: durable queue sends and end-to-end delivery, with a reliable queue on a
//! local `redis-server` (append-only file, `appendfsync always`) as the same-run reference.
//!
//! - send: 32 producers in a closed loop of `send()` (each resolves once durable) to a queue
//!   with no consumer.
//! - e2e: the same producers, plus a push consumer (batch size 100, a no-op handler) that acks
//!   every batch. Throughput counts messages delivered and acked in the measured window; latency
//!   is from the start of the `send()` call to the handler seeing the message. `fsync_per_msg`
//!   is the journal's fsyncs in that window divided by the messages acked in it (sends, leases
//!   and acks all included).
//! - redis (`--vs-redis`): 32 producers `LPUSH`; consumers `BLMOVE` each message to a processing
//!   list and `LREM` it there on ack, the reliable-queue pattern, with as many consumers as the
//!   Burrow consumer's concurrency.

use crate::stats::{Samples, rate};
use anyhow::{Context, bail};
use burrow_config::{ConsumerKind, QueueConsumer, QueueProducer};
use burrow_runtime::clock::SystemClock;
use burrow_runtime::namespace::Namespaces;
use burrow_runtime::shard::Shards;
use burrow_runtime::{Options as RuntimeOptions, Runtime};
use burrow_services::queues::{
    Body, HandlerError, MessageBatch, Options as QueueOptions, QueueHandler, QueueSettings, Queues,
    SendOptions,
};
use burrow_storage::engine::{Engine, Options as EngineOptions};
use burrow_storage::fs::OsFs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PRODUCERS: usize = 32;
const BATCH_SIZE: u32 = 100;
const CONSUMERS: u32 = 4;
const PAYLOAD_BYTES: usize = 64;

/// What the command line asked for.
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) vs_redis: bool,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) partitions: u32,
}

struct Measured {
    msgs_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    fsync_per_msg: f64,
}

pub(crate) fn run(options: Options) -> anyhow::Result<()> {
    let scratch = crate::scratch_dir(options.dir.clone())?;
    let (warmup, window) = if options.quick {
        (Duration::from_secs(1), Duration::from_secs(5))
    } else {
        (Duration::from_secs(2), Duration::from_secs(15))
    };
    let shard_count = std::thread::available_parallelism().map_or(2, |n| n.get());
    // The producers are light (the work is on the shards): one driver thread runs them all.
    let driver = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (send, e2e) = driver.block_on(burrow(
        scratch.path(),
        shard_count,
        options.partitions,
        warmup,
        window,
    ))?;
    let mut result = format!(
        "RESULT queues send_msgs_per_s={:.0} e2e_msgs_per_s={:.0} e2e_p50_ms={:.1} e2e_p99_ms={:.1} fsync_per_msg={:.4}",
        send.msgs_per_s, e2e.msgs_per_s, e2e.p50_ms, e2e.p99_ms, e2e.fsync_per_msg
    );
    if options.vs_redis {
        eprintln!("[3/3] redis-server (appendfsync always): LPUSH / BLMOVE / LREM");
        let redis = redis_reliable_queue(scratch.path(), warmup, window)?;
        eprintln!(
            "      {:.0} msgs/s end to end, p50 {:.1} ms, p99 {:.1} ms",
            redis.msgs_per_s, redis.p50_ms, redis.p99_ms
        );
        result.push_str(&format!(
            " e2e_ratio_vs_redis={:.2}",
            e2e.msgs_per_s / redis.msgs_per_s.max(1e-9)
        ));
    }
    println!("{result}");
    Ok(())
}

/// Microseconds since `epoch`, in the first 8 bytes of a payload.
fn stamped(epoch: Instant) -> Vec<u8> {
    let mut payload = vec![b'.'; PAYLOAD_BYTES];
    let micros = epoch.elapsed().as_micros() as u64;
    payload[..8].copy_from_slice(&micros.to_le_bytes());
    payload
}

fn sent_at(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.get(..8)?.try_into().ok()?))
}

/// What the consumers saw in the measured window.
#[derive(Default)]
struct Seen {
    measuring: AtomicBool,
    delivered: AtomicU64,
    latencies: Mutex<Samples>,
}

impl Seen {
    fn record(&self, epoch: Instant, payload: &[u8]) {
        if !self.measuring.load(Ordering::Relaxed) {
            return;
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
        if let Some(sent) = sent_at(payload) {
            let now = epoch.elapsed().as_micros() as u64;
            let mut latencies = self.latencies.lock().unwrap_or_else(|e| e.into_inner());
            latencies.push(Duration::from_micros(now.saturating_sub(sent)));
        }
    }
}

async fn burrow(
    dir: &Path,
    shard_count: usize,
    partitions: u32,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<(Measured, Measured)> {
    let root = dir.join("burrow");
    std::fs::create_dir_all(&root)?;
    let engine = Engine::open(Arc::new(OsFs), &root, EngineOptions::default())?;
    let namespaces = Namespaces::open(&root)?;
    let shards = Shards::start(shard_count)?;
    let clock = Arc::new(SystemClock);
    let runtime = Runtime::start(
        shards.clone(),
        engine.clone(),
        &namespaces,
        Queues::classes(),
        clock.clone(),
        RuntimeOptions::default(),
    )
    .await?;
    let queues = Queues::new(&runtime, clock, QueueOptions::default())?;
    let settings = QueueSettings {
        partitions,
        ..QueueSettings::default()
    };
    let producer = |queue: &str| QueueProducer {
        binding: "QUEUE".into(),
        queue: queue.into(),
        delivery_delay_seconds: 0,
    };
    let epoch = Instant::now();
    let syncs = || engine.journal().stats().syncs;
    let journal_bytes = || engine.journal().stats().bytes;
    let journal_records = || engine.journal().stats().records;

    eprintln!(
        "[1/3] Burrow send: {PRODUCERS} producers, durable send() of {PAYLOAD_BYTES}-byte messages, {shard_count} shards, {partitions} partition(s)"
    );
    queues.create("bench-send", settings).await?;
    let queue = queues.producer(&producer("bench-send")).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let tasks = spawn_producers(&queue, epoch, &stop, &sent);
    tokio::time::sleep(warmup).await;
    let (start_sent, start_syncs, start) = (sent.load(Ordering::Relaxed), syncs(), Instant::now());
    let (start_bytes, start_records) = (journal_bytes(), journal_records());
    tokio::time::sleep(window).await;
    let took = start.elapsed();
    let sends = sent.load(Ordering::Relaxed) - start_sent;
    let send_syncs = syncs() - start_syncs;
    eprintln!(
        "      journal: {:.0} bytes and {:.3} records per send",
        (journal_bytes() - start_bytes) as f64 / sends.max(1) as f64,
        (journal_records() - start_records) as f64 / sends.max(1) as f64
    );
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let send = Measured {
        msgs_per_s: rate(sends, took),
        p50_ms: 0.0,
        p99_ms: 0.0,
        fsync_per_msg: send_syncs as f64 / sends.max(1) as f64,
    };
    eprintln!(
        "      {:.0} sends/s, {:.4} fsyncs per send",
        send.msgs_per_s, send.fsync_per_msg
    );
    queues.purge("bench-send").await?;

    eprintln!(
        "[2/3] Burrow end to end: the same producers, a no-op push consumer (batch {BATCH_SIZE}, concurrency {CONSUMERS})"
    );
    queues.create("bench-e2e", settings).await?;
    let seen = Arc::new(Seen::default());
    let handler_seen = seen.clone();
    let handler = move |batch: MessageBatch| {
        for message in batch.messages() {
            handler_seen.record(epoch, message.body().as_bytes());
        }
        async { Ok::<(), HandlerError>(()) }
    };
    queues
        .start_consumer(
            &QueueConsumer {
                queue: "bench-e2e".into(),
                kind: ConsumerKind::Worker,
                max_batch_size: BATCH_SIZE,
                max_batch_timeout_ms: 10,
                max_retries: 3,
                dead_letter_queue: None,
                max_concurrency: Some(CONSUMERS),
                retry_delay_seconds: None,
                visibility_timeout_ms: None,
            },
            Arc::new(handler) as Arc<dyn QueueHandler>,
        )
        .await?;
    let queue = queues.producer(&producer("bench-e2e")).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let tasks = spawn_producers(&queue, epoch, &stop, &sent);
    tokio::time::sleep(warmup).await;
    seen.measuring.store(true, Ordering::Relaxed);
    let (start_syncs, start) = (syncs(), Instant::now());
    let (start_bytes, start_records) = (journal_bytes(), journal_records());
    let start_acked = queues.metrics("bench-e2e").await?.acked;
    tokio::time::sleep(window).await;
    seen.measuring.store(false, Ordering::Relaxed);
    let took = start.elapsed();
    let e2e_syncs = syncs() - start_syncs;
    let metrics = queues.metrics("bench-e2e").await?;
    let acked = metrics.acked - start_acked;
    eprintln!(
        "      journal: {:.0} bytes and {:.3} records per message",
        (journal_bytes() - start_bytes) as f64 / acked.max(1) as f64,
        (journal_records() - start_records) as f64 / acked.max(1) as f64
    );
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let delivered = seen.delivered.load(Ordering::Relaxed);
    let mut latencies =
        std::mem::take(&mut *seen.latencies.lock().unwrap_or_else(|e| e.into_inner()));
    let e2e = Measured {
        msgs_per_s: rate(acked.min(delivered), took),
        p50_ms: latencies.percentile(50.0) as f64 / 1000.0,
        p99_ms: latencies.percentile(99.0) as f64 / 1000.0,
        fsync_per_msg: e2e_syncs as f64 / acked.max(1) as f64,
    };
    eprintln!(
        "      {:.0} msgs/s delivered and acked ({} sent in all, backlog {} at the end), p50 {:.1} ms, p99 {:.1} ms, {:.4} fsyncs per message",
        e2e.msgs_per_s,
        sent.load(Ordering::Relaxed),
        metrics.backlog_messages,
        e2e.p50_ms,
        e2e.p99_ms,
        e2e.fsync_per_msg
    );
    queues.stop(Duration::from_secs(5)).await;
    runtime.shutdown(Duration::from_secs(5)).await?;
    drop(runtime);
    shards.shutdown(Duration::from_secs(5));
    Ok((send, e2e))
}

fn spawn_producers(
    queue: &burrow_services::queues::Queue,
    epoch: Instant,
    stop: &Arc<AtomicBool>,
    sent: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<()>>> {
    (0..PRODUCERS)
        .map(|_| {
            let queue = queue.clone();
            let stop = stop.clone();
            let sent = sent.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    queue
                        .send(Body::bytes(stamped(epoch)), SendOptions::default())
                        .await?;
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The redis reference.

/// A `redis-server` child on a free port, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis(dir: &Path) -> anyhow::Result<RedisServer> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let data = dir.join("redis");
    std::fs::create_dir_all(&data)?;
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &data.display().to_string(),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--protected-mode",
            "yes",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting redis-server (Debian: apt-get install -y redis-server)")?;
    let server = RedisServer { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut connection) = Redis::connect(port)
            && connection.command(&[b"PING"]).is_ok()
        {
            return Ok(server);
        }
        if Instant::now() > deadline {
            bail!("redis-server did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A minimal RESP client: one command, one reply.
struct Redis {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// A reply, reduced to what the benchmark needs.
enum Reply {
    Nil,
    Bulk(Vec<u8>),
    Other,
}

impl Redis {
    fn connect(port: u16) -> std::io::Result<Redis> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        Ok(Redis {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    fn command(&mut self, parts: &[&[u8]]) -> anyhow::Result<Reply> {
        let mut request = format!("*{}\r\n", parts.len()).into_bytes();
        for part in parts {
            request.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
            request.extend_from_slice(part);
            request.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&request)?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> anyhow::Result<Reply> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        let text = std::str::from_utf8(&line)?.trim_end();
        match text.as_bytes().first() {
            Some(b'$') => {
                let len: i64 = text[1..].parse()?;
                if len < 0 {
                    return Ok(Reply::Nil);
                }
                let mut bulk = vec![0u8; len as usize + 2];
                self.reader.read_exact(&mut bulk)?;
                bulk.truncate(len as usize);
                Ok(Reply::Bulk(bulk))
            }
            Some(b'-') => bail!("redis error: {text}"),
            Some(b'*') if text == "*-1" => Ok(Reply::Nil),
            Some(_) => Ok(Reply::Other),
            None => bail!("redis closed the connection"),
        }
    }
}

fn redis_reliable_queue(
    dir: &Path,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<Measured> {
    let server = start_redis(dir)?;
    let port = server.port;
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let mut threads = Vec::new();
    for _ in 0..PRODUCERS {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let mut redis = Redis::connect(port)?;
            while !stop.load(Ordering::Relaxed) {
                redis.command(&[b"LPUSH", b"queue", &stamped(epoch)])?;
            }
            Ok(())
        }));
    }
    for consumer in 0..CONSUMERS {
        let stop = stop.clone();
        let seen = seen.clone();
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let mut redis = Redis::connect(port)?;
            let processing = format!("processing-{consumer}");
            while !stop.load(Ordering::Relaxed) {
                let reply = redis.command(&[
                    b"BLMOVE",
                    b"queue",
                    processing.as_bytes(),
                    b"RIGHT",
                    b"LEFT",
                    b"1",
                ])?;
                if let Reply::Bulk(message) = reply {
                    seen.record(epoch, &message);
                    redis.command(&[b"LREM", processing.as_bytes(), b"1", &message])?;
                }
            }
            Ok(())
        }));
    }
    std::thread::sleep(warmup);
    seen.measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    std::thread::sleep(window);
    seen.measuring.store(false, Ordering::Relaxed);
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        match thread.join() {
            Ok(result) => result?,
            Err(_) => bail!("a redis client thread panicked"),
        }
    }
    drop(server);
    let mut latencies =
        std::mem::take(&mut *seen.latencies.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Measured {
        msgs_per_s: rate(seen.delivered.load(Ordering::Relaxed), took),
        p50_ms: latencies.percentile(50.0) as f64 / 1000.0,
        p99_ms: latencies.percentile(99.0) as f64 / 1000.0,
        fsync_per_msg: 0.0,
    })
}
