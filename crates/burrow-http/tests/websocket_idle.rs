//! The memory an idle WebSocket costs the server: open many sockets from a client in another
//! process (each side holds one descriptor per socket, and a process here may hold 20,000) and
//! measure the server's RSS growth per socket. It prints
//! `RESULT websocket_idle sockets=<N> rss_growth_bytes=<N> bytes_per_socket=<N>` and fails above
//! 16 KiB per socket, the budget of issue 5.
//!
//! `BURROW_WS_IDLE_SOCKETS` sets the number of sockets (default 10,000). The client is this test
//! binary run again with `--ignored --exact idle_client`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burrow_http::websocket::{self, Driver, Flow, Sender};
use burrow_http::{Body, ServerOptions, handler_fn};
use burrow_runtime::shard::Shards;
use http::Request;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ADDRESS_VARIABLE: &str = "BURROW_WS_IDLE_CLIENT_ADDRESS";
const SOCKETS_VARIABLE: &str = "BURROW_WS_IDLE_SOCKETS";
const DEFAULT_SOCKETS: usize = 10_000;
/// What the client prints once every socket is open.
const READY: &str = "IDLE-CLIENT-READY";
/// Sockets opened before the baseline, so that one-time allocations (runtime tables, the first
/// slab pages) are not charged to the measured ones.
const WARM_UP_SOCKETS: usize = 200;
/// Handshakes the client has in flight at once.
const CLIENT_CONCURRENCY: usize = 64;
/// The budget per idle socket.
const MAX_BYTES_PER_SOCKET: u64 = 16 * 1024;
/// Bound on every wait; this only turns a hang into a failure.
const STEP: Duration = Duration::from_secs(120);

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .expect("resident field")
        .parse()
        .expect("number");
    pages * 4096
}

/// The soft limit on open descriptors, from `/proc/self/limits`.
fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn wait_for(what: &str, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < STEP, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client process holding `count` sockets open until its standard input closes.
struct ClientProcess {
    child: std::process::Child,
    lines: BufReader<std::process::ChildStdout>,
}

impl ClientProcess {
    fn open(address: std::net::SocketAddr, count: usize) -> ClientProcess {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--ignored",
                "--exact",
                "idle_client",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ADDRESS_VARIABLE, address.to_string())
            .env(SOCKETS_VARIABLE, count.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("client process");
        let lines = BufReader::new(child.stdout.take().expect("stdout"));
        let mut client = ClientProcess { child, lines };
        loop {
            let mut line = String::new();
            let read = client.lines.read_line(&mut line).expect("client output");
            assert!(read > 0, "the client process ended before it was ready");
            // libtest prints `test idle_client ... ` on the same line.
            if line.contains(READY) {
                return client;
            }
        }
    }

    fn close(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().expect("client exit");
        assert!(status.success(), "client process failed: {status}");
    }
}

#[test]
fn idle_sockets_cost_little_server_memory() {
    let requested: usize = std::env::var(SOCKETS_VARIABLE)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(DEFAULT_SOCKETS);
    // Each process holds one descriptor per socket, plus a few hundred of its own.
    let available = descriptor_limit()
        .unwrap_or(20_000)
        .saturating_sub(WARM_UP_SOCKETS + 500);
    let sockets = requested.min(available);
    if sockets < requested {
        println!("the descriptor limit allows {sockets} of the {requested} sockets asked for");
    }
    assert!(
        sockets >= 1_000,
        "the descriptor limit is too low for a meaningful measurement"
    );
    let shards = Shards::start(2).expect("shards");
    let config = Arc::new(websocket::Config::default());
    // What a hub keeps per socket, at the least: its sender.
    let kept: Arc<Mutex<Vec<Sender>>> = Arc::new(Mutex::new(Vec::new()));
    let handler_kept = Arc::clone(&kept);
    let handler = handler_fn(move |request: Request<Body>| {
        let config = Arc::clone(&config);
        let kept = Arc::clone(&handler_kept);
        async move {
            let accepted = match websocket::accept(&request, None) {
                Ok(accepted) => accepted,
                Err(error) => return error.into_response(),
            };
            let (sender, driver) = Driver::new(config);
            kept.lock().expect("senders").push(sender);
            tokio::task::spawn_local(async move {
                if let Ok(connection) = accepted.connection.connect().await {
                    // Idle sockets get no messages; a hub would hand them to the object.
                    driver
                        .run(connection, |event| {
                            drop(event);
                            Flow::Continue
                        })
                        .await;
                }
            });
            accepted.response
        }
    });
    let options = ServerOptions {
        max_websockets: WARM_UP_SOCKETS + sockets,
        ..ServerOptions::ingress()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let server = burrow_http::serve_ingress(listener, &shards, handler, options).expect("serve");
    let stats = server.stats();

    let warm_up = ClientProcess::open(address, WARM_UP_SOCKETS);
    wait_for("the warm-up sockets", || {
        stats.active_websockets() == WARM_UP_SOCKETS && stats.active_connections() == 0
    });
    std::thread::sleep(Duration::from_millis(200));
    let before = resident_bytes();

    let client = ClientProcess::open(address, sockets);
    wait_for("every socket", || {
        stats.active_websockets() == WARM_UP_SOCKETS + sockets && stats.active_connections() == 0
    });
    // Let every driver reach its idle state (the first read frees hyper's buffer).
    std::thread::sleep(Duration::from_millis(500));
    let after = resident_bytes();
    let growth = after.saturating_sub(before);
    let per_socket = growth / sockets as u64;
    println!(
        "RESULT websocket_idle sockets={sockets} rss_growth_bytes={growth} \
         bytes_per_socket={per_socket}"
    );

    client.close();
    warm_up.close();
    wait_for("every socket to close", || stats.active_websockets() == 0);
    assert!(
        per_socket <= MAX_BYTES_PER_SOCKET,
        "{per_socket} bytes of RSS per idle socket; the budget is {MAX_BYTES_PER_SOCKET}"
    );
    drop(server);
    shards.shutdown(Duration::from_secs(5));
}

/// The client process: opens the sockets, says `READY`, and holds them until stdin closes.
#[test]
#[ignore = "the client process of idle_sockets_cost_little_server_memory"]
fn idle_client() {
    let (Ok(address), Ok(count)) = (
        std::env::var(ADDRESS_VARIABLE),
        std::env::var(SOCKETS_VARIABLE),
    ) else {
        return;
    };
    let count: usize = count.parse().expect("count");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let streams = runtime.block_on(async {
        let address: std::net::SocketAddr = address.parse().expect("address");
        let mut streams = Vec::with_capacity(count);
        let mut pending = tokio::task::JoinSet::new();
        let mut started = 0;
        while streams.len() < count {
            while started < count && pending.len() < CLIENT_CONCURRENCY {
                pending.spawn(handshake(address));
                started += 1;
            }
            let stream = tokio::time::timeout(STEP, pending.join_next())
                .await
                .expect("handshake in time")
                .expect("a handshake")
                .expect("handshake task");
            streams.push(stream);
        }
        streams
    });
    println!("{READY}");
    std::io::stdout().flush().expect("flush");
    // Hold the sockets until the parent closes our standard input.
    let mut line = String::new();
    while std::io::stdin()
        .read_line(&mut line)
        .map(|read| read > 0)
        .unwrap_or(false)
    {}
    drop(streams);
    drop(runtime);
}

async fn handshake(address: std::net::SocketAddr) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(
            b"GET /idle HTTP/1.1\r\nhost: test\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
              sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .expect("request");
    let mut head = Vec::with_capacity(256);
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = stream.read(&mut byte).await.expect("response");
        assert!(read == 1, "the server closed during the handshake");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    stream
}
