//! `burrow-bench websockets`: hibernatable WebSockets on examples/chat, with the clients in a
//! separate process (`burrow-bench ws-clients`, see [`clients`]).
//!
//! Figures, in the order of the RESULT line:
//! - `idle_sockets`: sockets joined to [`Plan::rooms`] rooms and left idle until every room has
//!   hibernated (instance dropped, storage closed; the sockets held by the shards);
//! - `idle_bytes_per_socket`: the server's RSS growth from before the clients joined to once the
//!   rooms hibernated, divided by `idle_sockets`;
//! - `fanout_msgs_per_s`: one sender broadcasting back to back to [`Plan::receivers`] sockets in
//!   one room: lines delivered per second, until every receiver has every line;
//! - `broadcast_p99_ms`: p99 of the time from sending a broadcast to a receiver getting it,
//!   broadcasts sent one at a time (each awaited by every receiver).
//!
//! Same-run references: the clients' own RSS per socket (tokio-tungstenite with 4 KiB buffers),
//! and the round trip of `ping` → `pong`, which the server answers without waking a room (the
//! floor under any broadcast's latency).

pub(crate) mod clients;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::objects::app::{build_example, workspace_root};
use crate::process::{Guard, Server, free_port};

/// How long a room stays awake when idle, and its storage open, in this run.
const HIBERNATE_AFTER: Duration = Duration::from_millis(500);
const STORAGE_IDLE_AFTER: Duration = Duration::from_millis(1_000);
/// The runtime's sweep interval (its default).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// What `websockets` takes on its command line.
pub(crate) struct Options {
    pub(crate) quick: bool,
    /// A prebuilt chat example; otherwise it is built with cargo.
    pub(crate) app: Option<std::path::PathBuf>,
}

/// The sizes of one run.
struct Plan {
    rooms: usize,
    per_room: usize,
    receivers: usize,
    broadcasts: usize,
    burst: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                rooms: 100,
                per_room: 100,
                receivers: 1_000,
                broadcasts: 200,
                burst: 200,
            }
        } else {
            Plan {
                rooms: 120,
                per_room: 100,
                receivers: 1_000,
                broadcasts: 1_000,
                burst: 1_000,
            }
        }
    }
}

/// `key=value` from a line the clients printed.
fn field(line: &str, key: &str) -> anyhow::Result<f64> {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .with_context(|| format!("no {key}= in {line:?}"))?
        .parse()
        .with_context(|| format!("{key} in {line:?}"))
}

/// The server's RSS once it stops falling (the allocator gives freed memory back in its own
/// time), or after ten seconds.
fn steady_rss(server: &Server) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reference = server.rss_bytes()?;
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let rss = server.rss_bytes()?;
        if (rss as f64) < reference as f64 * 0.99 {
            reference = rss;
            since = Instant::now();
        }
        if since.elapsed() >= Duration::from_secs(1) || Instant::now() >= deadline {
            return Ok(rss.min(reference));
        }
    }
}

pub(crate) fn run(options: Options) -> anyhow::Result<()> {
    crate::process::clean_up_on_interrupt()?;
    let started = Instant::now();
    let plan = Plan::new(options.quick);
    let root = workspace_root();
    let app = match options.app {
        Some(app) => app,
        None => build_example(&root, "chat")?,
    };
    let scratch = crate::scratch_dir(None)?;
    crate::process::remove_on_interrupt(scratch.path());
    let data = scratch.path().join("data");
    std::fs::create_dir_all(&data)?;
    let sockets = plan.rooms * plan.per_room + plan.receivers + 1;
    eprintln!(
        "websockets: examples/chat, {} idle rooms of {} sockets, then a fan-out room of {} \
         receivers (clients in a separate process)",
        plan.rooms, plan.per_room, plan.receivers
    );

    let port = free_port()?;
    let mut command = Command::new(&app);
    command
        .current_dir(&root)
        .arg("--port")
        .arg(port.to_string())
        .arg("--admin-address")
        .arg(format!("127.0.0.1:{}", free_port()?))
        .arg("--persist-to")
        .arg(&data)
        .env(
            "BURROW_HIBERNATE_AFTER_MS",
            HIBERNATE_AFTER.as_millis().to_string(),
        )
        .env(
            "BURROW_STORAGE_IDLE_AFTER_MS",
            STORAGE_IDLE_AFTER.as_millis().to_string(),
        )
        .env("BURROW_MAX_WEBSOCKETS", (sockets + 100).to_string())
        .env("RUST_LOG", "warn");
    let mut server = Server::start("chat", &mut command, port, &scratch.path().join("chat.log"))?;
    server.wait_ready(Duration::from_secs(60))?;
    let baseline = steady_rss(&server)?;

    let mut clients = Guard::spawn(
        "ws-clients",
        Command::new(std::env::current_exe()?)
            .arg("ws-clients")
            .arg("--address")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--rooms")
            .arg(plan.rooms.to_string())
            .arg("--per-room")
            .arg(plan.per_room.to_string())
            .arg("--receivers")
            .arg(plan.receivers.to_string())
            .arg("--broadcasts")
            .arg(plan.broadcasts.to_string())
            .arg("--burst")
            .arg(plan.burst.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    )?;
    let mut to_clients = clients.take_stdin().context("the clients' stdin")?;
    let mut from_clients = BufReader::new(clients.take_stdout().context("the clients' stdout")?);
    let mut read_line = |expect: &str| -> anyhow::Result<String> {
        let mut line = String::new();
        from_clients.read_line(&mut line)?;
        if !line.starts_with(expect) {
            bail!("the clients printed {line:?}, not {expect}…");
        }
        Ok(line.trim().to_owned())
    };

    let connected = read_line("connected")?;
    eprintln!("  {connected}");
    let idle_sockets = field(&connected, "sockets")? as u64;
    // Every room idles past hibernation and the closing of its storage, then a sweep.
    std::thread::sleep(HIBERNATE_AFTER + STORAGE_IDLE_AFTER + 2 * SWEEP_INTERVAL);
    let idle = steady_rss(&server)?;
    let idle_bytes_per_socket = idle.saturating_sub(baseline) / idle_sockets.max(1);
    eprintln!(
        "  server RSS {} KiB before the clients, {} KiB with {idle_sockets} sockets in hibernated \
         rooms: {idle_bytes_per_socket} bytes per socket ({} open descriptors)",
        baseline / 1024,
        idle / 1024,
        server.open_fds()?
    );

    writeln!(to_clients, "ping")?;
    let pinged = read_line("pinged")?;
    eprintln!("  {pinged} (auto-response from hibernated rooms)");
    writeln!(to_clients, "fanout")?;
    let fanout = read_line("fanout")?;
    eprintln!("  {fanout}");
    drop(to_clients);
    if clients.wait_timeout(Duration::from_secs(30))?.is_none() {
        bail!("the clients did not exit");
    }
    server.stop()?;

    let fanout_msgs_per_s = field(&fanout, "deliveries_per_s")?;
    let broadcast_p99_ms = field(&fanout, "p99_us")? / 1000.0;
    let client_bytes = field(&connected, "client_bytes_per_socket")?;
    let ping_p99_ms = field(&pinged, "p99_us")? / 1000.0;
    eprintln!(
        "  reference (same run): a client socket (tokio-tungstenite, 4 KiB buffers) costs \
         {client_bytes:.0} bytes in the clients' process, {:.2}x a hibernated server socket; \
         ping→pong p99 {ping_p99_ms:.2} ms, broadcast p99 is {:.1}x that",
        client_bytes / idle_bytes_per_socket.max(1) as f64,
        broadcast_p99_ms / ping_p99_ms.max(0.001)
    );
    eprintln!("  took {:.1?}", started.elapsed());
    println!(
        "RESULT websockets idle_sockets={idle_sockets} idle_bytes_per_socket={idle_bytes_per_socket} \
         fanout_msgs_per_s={fanout_msgs_per_s:.0} broadcast_p99_ms={broadcast_p99_ms:.2}"
    );
    Ok(())
}
