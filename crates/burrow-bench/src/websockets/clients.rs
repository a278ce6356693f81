//! `burrow-bench ws-clients`: the WebSocket clients of the `websockets` benchmark, in a process
//! of their own (so the server's RSS holds only the server). They join the chat example's rooms
//! and run one phase per line read on stdin, printing one line of figures per phase on stdout:
//!
//! 1. at start: `rooms × per_room` idle sockets (`idle<r>`, users `u<i>`), 64 handshakes in
//!    flight → `connected sockets=<N> secs=<S> client_bytes_per_socket=<B>`;
//! 2. `ping`: one socket per room sends `ping` and waits for `pong` (answered by the server
//!    without waking the room) → `pinged sockets=<N> p50_us=<..> p99_us=<..>`;
//! 3. `fanout`: `receivers` sockets and one sender join room `fanout`; the sender broadcasts
//!    `broadcasts` timestamped lines one at a time (each awaited by every receiver: latency), then
//!    `burst` lines back to back (throughput: deliveries per second until every receiver has
//!    every line) → `fanout deliveries=<N> deliveries_per_s=<..> p50_us=<..> p99_us=<..>`.
//!
//! End of stdin closes every socket and exits.

use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use crate::stats::{Samples, rate};

/// Handshakes in flight while joining.
const CONCURRENT_JOINS: usize = 64;
/// Generous bound on any one wait (turns a hang into an error, measures nothing).
const STEP: Duration = Duration::from_secs(60);

/// What `ws-clients` takes on its command line.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The chat server's ingress.
    #[arg(long)]
    address: SocketAddr,
    /// Idle rooms.
    #[arg(long)]
    rooms: usize,
    /// Idle sockets per room.
    #[arg(long)]
    per_room: usize,
    /// Receivers in the fan-out room.
    #[arg(long)]
    receivers: usize,
    /// Broadcasts of the latency phase.
    #[arg(long)]
    broadcasts: usize,
    /// Broadcasts of the throughput phase.
    #[arg(long)]
    burst: usize,
}

type Client = WebSocketStream<TcpStream>;

/// Small buffers: tungstenite's defaults (128 KiB each way) would cost 2.5 GiB for 10,000 sockets.
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

async fn join(address: SocketAddr, room: String, user: String) -> anyhow::Result<Client> {
    let stream = TcpStream::connect(address).await?;
    let url = format!("ws://{address}/rooms/{room}/ws?user={user}");
    let (client, _) =
        tokio::time::timeout(STEP, client_async_with_config(url, stream, Some(config())))
            .await
            .context("handshake timed out")?
            .with_context(|| format!("joining room {room} as {user}"))?;
    Ok(client)
}

async fn next_text(client: &mut Client) -> anyhow::Result<String> {
    loop {
        match tokio::time::timeout(STEP, client.next()).await {
            Err(_) => bail!("no message within {STEP:?}"),
            Ok(None) => bail!("the server closed the socket"),
            Ok(Some(message)) => match message? {
                Message::Text(text) => return Ok(text.to_string()),
                Message::Close(frame) => bail!("the server closed the socket: {frame:?}"),
                _ => {}
            },
        }
    }
}

fn own_rss() -> u64 {
    crate::process::rss_bytes(std::process::id()).unwrap_or(0)
}

pub(crate) fn main(args: Args) -> anyhow::Result<()> {
    burrow_storage::fs::raise_open_file_limit().context("raising the open-file limit")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stdin = std::io::stdin();
    let commands = stdin.lock().lines();

    let before = own_rss();
    let started = Instant::now();
    let mut idle = runtime.block_on(connect_idle(&args))?;
    let took = started.elapsed();
    let client_bytes = own_rss().saturating_sub(before) / idle.len().max(1) as u64;
    println!(
        "connected sockets={} secs={:.2} client_bytes_per_socket={client_bytes}",
        idle.len(),
        took.as_secs_f64()
    );

    for command in commands {
        match command?.trim() {
            "ping" => {
                let mut samples = runtime.block_on(ping(&mut idle, args.per_room))?;
                println!(
                    "pinged sockets={} p50_us={} p99_us={}",
                    samples.len(),
                    samples.percentile(50.0),
                    samples.percentile(99.0)
                );
            }
            "fanout" => {
                let line = runtime.block_on(fanout(&args))?;
                println!("{line}");
            }
            other => bail!("unknown command {other:?}"),
        }
    }
    drop(idle);
    Ok(())
}

async fn connect_idle(args: &Args) -> anyhow::Result<Vec<Client>> {
    let total = args.rooms * args.per_room;
    let mut clients = Vec::with_capacity(total);
    let mut joining = tokio::task::JoinSet::new();
    for index in 0..total {
        if joining.len() >= CONCURRENT_JOINS
            && let Some(joined) = joining.join_next().await
        {
            clients.push(joined??);
        }
        let room = format!("idle{}", index / args.per_room);
        joining.spawn(join(args.address, room, format!("u{index}")));
    }
    while let Some(joined) = joining.join_next().await {
        clients.push(joined??);
    }
    Ok(clients)
}

/// One `ping` per room (the first socket of each `per_room`), one at a time.
async fn ping(idle: &mut [Client], per_room: usize) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    for client in idle.iter_mut().step_by(per_room.max(1)) {
        let sent = Instant::now();
        client.send(Message::text("ping")).await?;
        let reply = next_text(client).await?;
        if reply != "pong" {
            bail!("ping was answered {reply:?}, not \"pong\"");
        }
        samples.push(sent.elapsed());
    }
    Ok(samples)
}

async fn fanout(args: &Args) -> anyhow::Result<String> {
    let epoch = Instant::now();
    let deliveries = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(Notify::new());
    let latencies = Arc::new(Mutex::new(Samples::with_capacity(
        args.receivers * args.broadcasts,
    )));
    let mut joining = tokio::task::JoinSet::new();
    let mut receivers = Vec::with_capacity(args.receivers);
    for index in 0..args.receivers {
        if joining.len() >= CONCURRENT_JOINS
            && let Some(joined) = joining.join_next().await
        {
            receivers.push(joined??);
        }
        joining.spawn(join(args.address, "fanout".into(), format!("r{index}")));
    }
    while let Some(joined) = joining.join_next().await {
        receivers.push(joined??);
    }
    let mut readers = tokio::task::JoinSet::new();
    let mut keep = Vec::with_capacity(receivers.len());
    for client in receivers {
        let (sink, mut stream) = client.split();
        keep.push(sink);
        let (deliveries, delivered, latencies) =
            (deliveries.clone(), delivered.clone(), latencies.clone());
        readers.spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                // "s: <kind> <sent µs since epoch>"
                let mut fields = text.split(' ').skip(1);
                let (Some(kind), Some(sent)) = (fields.next(), fields.next()) else {
                    continue;
                };
                if kind == "l"
                    && let Ok(sent) = sent.parse::<u64>()
                {
                    let now = epoch.elapsed().as_micros() as u64;
                    latencies
                        .lock()
                        .expect("not poisoned")
                        .push(Duration::from_micros(now.saturating_sub(sent)));
                }
                deliveries.fetch_add(1, Ordering::Relaxed);
                delivered.notify_waiters();
            }
        });
    }
    let (mut sender, mut echoes) = join(args.address, "fanout".into(), "s".into())
        .await?
        .split();
    // The sender hears its own lines too; they are read and dropped.
    readers.spawn(async move { while let Some(Ok(_)) = echoes.next().await {} });

    let receivers = args.receivers as u64;
    let wait_for = |target: u64| {
        let (deliveries, delivered) = (deliveries.clone(), delivered.clone());
        async move {
            loop {
                let notified = delivered.notified();
                if deliveries.load(Ordering::Relaxed) >= target {
                    return Ok::<_, anyhow::Error>(());
                }
                if tokio::time::timeout(STEP, notified).await.is_err() {
                    bail!(
                        "the receivers got {} of {target} lines",
                        deliveries.load(Ordering::Relaxed)
                    );
                }
            }
        }
    };
    for sent in 1..=args.broadcasts as u64 {
        let at = epoch.elapsed().as_micros();
        sender.send(Message::text(format!("l {at}"))).await?;
        wait_for(sent * receivers).await?;
    }
    let base = deliveries.load(Ordering::Relaxed);
    let started = Instant::now();
    for _ in 0..args.burst {
        let at = epoch.elapsed().as_micros();
        sender.feed(Message::text(format!("b {at}"))).await?;
    }
    sender.flush().await?;
    let target = base + args.burst as u64 * receivers;
    wait_for(target).await?;
    let took = started.elapsed();
    readers.abort_all();
    let mut latencies = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    Ok(format!(
        "fanout deliveries={} deliveries_per_s={:.0} p50_us={} p99_us={}",
        target - base,
        rate(target - base, took),
        latencies.percentile(50.0),
        latencies.percentile(99.0)
    ))
}
