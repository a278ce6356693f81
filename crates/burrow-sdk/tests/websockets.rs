//! Hibernatable WebSockets end to end, with a real client (tokio-tungstenite) against an app
//! started in process: a Worker forwards `/rooms/<name>/ws` upgrades to a room object with
//! `Stub::fetch`, the object accepts them with tags and an attachment. Covers broadcast by tag,
//! the auto-response while hibernated (the constructor does not run), attachments across
//! hibernation, a message waking the object, close codes reaching the handler, the per-object
//! cap and the tag limit, the event timeout, and a client that never reads being dropped with
//! bounded server memory.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use burrow::server::{Flags, Mode, ServeOptions, Server};
use burrow::websocket::Message;
use burrow::{
    App, DurableObject, Env, Error, ObjectContext, Request, Response, Result, StatusCode, WebSocket,
};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self as tungstenite, Message as ClientMessage};
use tokio_tungstenite::{WebSocketStream, client_async};

use support::STEP;

/// Constructor runs of `Room`, over the whole test binary.
static CONSTRUCTIONS: AtomicU64 = AtomicU64::new(0);
/// What the close and error handlers saw: (who, code, reason, was_clean) and (who, error).
static CLOSES: Mutex<Vec<(String, u16, String, bool)>> = Mutex::new(Vec::new());
static ERRORS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

#[derive(Serialize, Deserialize)]
struct Member {
    name: String,
}

pub struct Room {
    ctx: ObjectContext,
}

impl DurableObject for Room {
    fn new(ctx: ObjectContext, _env: Env) -> Self {
        CONSTRUCTIONS.fetch_add(1, Ordering::SeqCst);
        ctx.set_websocket_auto_response(Some(("ping", "pong")))
            .expect("a short pair");
        Room { ctx }
    }

    async fn fetch(&self, request: Request) -> Result<Response> {
        let tags = request.query("tag").unwrap_or_default().into_owned();
        let tags: Vec<&str> = tags.split(',').collect();
        let name = request.query("name").unwrap_or_default().into_owned();
        let (ws, response) = self.ctx.accept_websocket(&request, &tags)?;
        ws.serialize_attachment(&Member { name })?;
        Ok(response)
    }

    async fn websocket_message(&self, ws: WebSocket, message: Message) -> Result<()> {
        let Message::Text(text) = message else {
            return ws.send(Message::Text("binary?".into()));
        };
        let text = text.as_str();
        let member: Member = ws.deserialize_attachment()?.expect("set at accept");
        if let Some(rest) = text.strip_prefix("broadcast:") {
            let (tag, body) = rest.split_once(':').expect("broadcast:<tag>:<body>");
            for peer in self.ctx.get_websockets(Some(tag)) {
                peer.send(body)?;
            }
        } else if text == "whoami" {
            ws.send(format!(
                "{} {:?} constructions={}",
                member.name,
                ws.tags()?,
                CONSTRUCTIONS.load(Ordering::SeqCst)
            ))?;
        } else if text == "autots" {
            let at = self.ctx.get_websocket_auto_response_timestamp(&ws);
            ws.send(format!("{}", at.is_some_and(|at| at > 0)))?;
        } else if let Some(rest) = text.strip_prefix("flood:") {
            // Distinct payloads (not one shared buffer), with yields so the driver writes what
            // the kernel takes; stops at the first refused send.
            let (count, size) = rest.split_once(':').expect("flood:<count>:<size>");
            let (count, size): (usize, usize) = (count.parse()?, size.parse()?);
            for index in 0..count {
                if ws.send(vec![index as u8; size]).is_err() {
                    break;
                }
                if index % 8 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        } else if let Some(ms) = text.strip_prefix("timeout:") {
            self.ctx.set_websocket_event_timeout(Some(ms.parse()?))?;
            ws.send(format!(
                "timeout {:?}",
                self.ctx.get_websocket_event_timeout()
            ))?;
        } else if text == "hang" {
            // Never finishes: only the event timeout ends it.
            std::future::pending::<()>().await;
        } else if let Some(rest) = text.strip_prefix("close:") {
            let (code, reason) = rest.split_once(':').expect("close:<code>:<reason>");
            ws.close(code.parse()?, reason)?;
        } else {
            ws.send(format!("echo {text}"))?;
        }
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        code: u16,
        reason: String,
        was_clean: bool,
    ) -> Result<()> {
        let member: Member = ws.deserialize_attachment()?.expect("set at accept");
        CLOSES
            .lock()
            .expect("lock")
            .push((member.name, code, reason, was_clean));
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, error: Error) -> Result<()> {
        let member: Member = ws.deserialize_attachment()?.expect("set at accept");
        ERRORS
            .lock()
            .expect("lock")
            .push((member.name, error.message().to_owned()));
        Ok(())
    }
}

impl burrow::Rpc for Room {}

async fn worker(request: Request, env: Env) -> Result<Response> {
    let Some(name) = request
        .path()
        .strip_prefix("/rooms/")
        .and_then(|rest| rest.strip_suffix("/ws"))
    else {
        return Ok(Response::error("not found", StatusCode::NOT_FOUND));
    };
    let room = env.durable_object::<Room>("ROOMS")?.get_by_name(name);
    room.fetch(request).await
}

const CONFIG: &str = r#"
name = "websockets-test"

[[durable_objects.bindings]]
name = "ROOMS"
class_name = "Room"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["Room"]
"#;

/// The send buffer cap of every socket in these tests.
const SEND_BUFFER: usize = 4 << 20;
/// The per-object socket cap of these tests.
const SOCKETS_PER_OBJECT: usize = 6;
/// The ingress's cap on open sockets in these tests (in production, fitted to descriptors).
const SOCKETS_PER_PROCESS: usize = 8;

fn start(dir: &Path) -> (tokio::runtime::Runtime, Server) {
    std::fs::write(dir.join("wrangler.toml"), CONFIG).expect("write config");
    let loaded = burrow_config::load_files(
        &[dir.join("wrangler.toml")],
        &burrow_config::LoadOptions::default(),
    )
    .expect("config loads");
    let flags = Flags {
        port: Some(0),
        admin_address: Some("127.0.0.1:0".parse().expect("address")),
        persist_to: Some(dir.join("data")),
        ..Flags::default()
    };
    let mut options = ServeOptions::resolve(&loaded, &flags, Mode::Serve).expect("options");
    options.runtime.hibernate_after = Duration::from_millis(200);
    options.runtime.sweep_interval = Duration::from_millis(50);
    options.runtime.websocket_max_send_buffer_bytes = SEND_BUFFER;
    options.runtime.max_websockets_per_object = SOCKETS_PER_OBJECT;
    options.max_websockets = SOCKETS_PER_PROCESS;
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = control
        .block_on(
            App::new()
                .durable_object::<Room>("ROOMS")
                .fetch(worker)
                .start(&loaded, &options),
        )
        .expect("the app starts");
    (control, server)
}

type Client = WebSocketStream<TcpStream>;

async fn try_join(
    address: SocketAddr,
    room: &str,
    tag: &str,
    name: &str,
) -> std::result::Result<Client, tungstenite::Error> {
    let stream = TcpStream::connect(address).await.expect("connect");
    let url = format!("ws://{address}/rooms/{room}/ws?tag={tag}&name={name}");
    tokio::time::timeout(STEP, client_async(url, stream))
        .await
        .expect("handshake in time")
        .map(|(client, _)| client)
}

async fn join(address: SocketAddr, room: &str, tag: &str, name: &str) -> Client {
    try_join(address, room, tag, name).await.expect("joined")
}

async fn receive(client: &mut Client) -> ClientMessage {
    tokio::time::timeout(STEP, client.next())
        .await
        .expect("a message in time")
        .expect("a message")
        .expect("no error")
}

async fn receive_text(client: &mut Client) -> String {
    match receive(client).await {
        ClientMessage::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

async fn say(client: &mut Client, text: &str) {
    client.send(ClientMessage::text(text)).await.expect("send");
}

/// Waits (with a generous deadline, not a timing assertion) until `done` holds.
async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !done().await {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn hibernated(server: &Server) {
    wait_for("the room to hibernate", async || {
        server.runtime().stats().await.active == 0
    })
    .await;
}

#[test]
fn rooms_broadcast_by_tag_hibernate_and_wake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (control, server) = start(dir.path());
    let address = server.ingress_address();
    control.block_on(async {
        let mut alice = join(address, "lobby", "red", "alice").await;
        let mut bob = join(address, "lobby", "red", "bob").await;
        let mut carol = join(address, "lobby", "blue", "carol").await;

        // Broadcast to a tag reaches exactly that tag's sockets: carol's first message is the
        // blue broadcast, not the red one.
        say(&mut alice, "broadcast:red:hello reds").await;
        assert_eq!(receive_text(&mut alice).await, "hello reds");
        assert_eq!(receive_text(&mut bob).await, "hello reds");
        say(&mut carol, "broadcast:blue:hello blues").await;
        assert_eq!(receive_text(&mut carol).await, "hello blues");
        say(&mut bob, "broadcast:red:again").await;
        assert_eq!(receive_text(&mut alice).await, "again");
        assert_eq!(receive_text(&mut bob).await, "again");
        say(&mut carol, "whoami").await;
        let reply = receive_text(&mut carol).await;
        assert!(reply.starts_with("carol [\"blue\"]"), "{reply}");

        // Idle: the instance is dropped while the sockets stay open.
        hibernated(&server).await;
        assert_eq!(server.runtime().stats().await.websockets, 3);
        let constructions = CONSTRUCTIONS.load(Ordering::SeqCst);

        // The auto-response and protocol pings are answered by the shard: no constructor runs.
        for _ in 0..3 {
            say(&mut alice, "ping").await;
            assert_eq!(receive_text(&mut alice).await, "pong");
        }
        alice
            .send(ClientMessage::Ping(b"are you there".to_vec().into()))
            .await
            .expect("ping");
        assert_eq!(
            receive(&mut alice).await,
            ClientMessage::Pong(b"are you there".to_vec().into())
        );
        assert_eq!(CONSTRUCTIONS.load(Ordering::SeqCst), constructions);
        assert_eq!(server.runtime().stats().await.active, 0);

        // A message wakes the object (the constructor runs again) and is delivered; the
        // attachment and tags survived hibernation; the timestamp of the auto-response too.
        say(&mut alice, "whoami").await;
        assert_eq!(
            receive_text(&mut alice).await,
            format!("alice [\"red\"] constructions={}", constructions + 1)
        );
        say(&mut alice, "autots").await;
        assert_eq!(receive_text(&mut alice).await, "true");
        // The new instance finds every socket again.
        say(&mut carol, "broadcast:red:after waking").await;
        assert_eq!(receive_text(&mut alice).await, "after waking");
        assert_eq!(receive_text(&mut bob).await, "after waking");

        // Close codes and reasons reach the handler, also after another hibernation.
        hibernated(&server).await;
        bob.close(Some(CloseFrame {
            code: CloseCode::from(4001),
            reason: "bob leaves".into(),
        }))
        .await
        .expect("close");
        wait_for("bob's close to reach the handler", async || {
            CLOSES
                .lock()
                .expect("lock")
                .iter()
                .any(|close| close.0 == "bob")
        })
        .await;
        let closes = CLOSES.lock().expect("lock").clone();
        assert!(
            closes.contains(&("bob".into(), 4001, "bob leaves".into(), true)),
            "{closes:?}"
        );
        // The object closes a socket with its own code and reason; the client sees them.
        say(&mut carol, "close:4002:room closed").await;
        match receive(&mut carol).await {
            ClientMessage::Close(Some(frame)) => {
                assert_eq!(
                    (u16::from(frame.code), frame.reason.as_str()),
                    (4002, "room closed")
                );
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
        // Send the client's half of the closing handshake (tungstenite queued it).
        let _ = carol.flush().await;
        wait_for("carol's closing handshake to complete", async || {
            CLOSES
                .lock()
                .expect("lock")
                .iter()
                .any(|close| close.0 == "carol")
        })
        .await;
        let closes = CLOSES.lock().expect("lock").clone();
        assert!(
            closes.contains(&("carol".into(), 4002, "room closed".into(), true)),
            "{closes:?}"
        );
        // A dropped connection is a close with 1006, not clean.
        drop(alice);
        wait_for("alice's close to reach the handler", async || {
            CLOSES
                .lock()
                .expect("lock")
                .iter()
                .any(|close| close.0 == "alice")
        })
        .await;
        let closes = CLOSES.lock().expect("lock").clone();
        assert!(
            closes.contains(&("alice".into(), 1006, String::new(), false)),
            "{closes:?}"
        );
        wait_for("the hub to drop closed sockets", async || {
            server.runtime().stats().await.websockets == 0
        })
        .await;
    });
    control
        .block_on(server.shutdown(Duration::from_secs(5)))
        .expect("shutdown");
}

#[test]
fn objects_and_the_process_hold_at_most_their_caps_of_sockets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (control, server) = start(dir.path());
    let address = server.ingress_address();
    control.block_on(async {
        let mut clients = Vec::new();
        for index in 0..SOCKETS_PER_OBJECT {
            clients.push(join(address, "full", "t", &format!("m{index}")).await);
        }
        match try_join(address, "full", "t", "extra").await {
            Err(tungstenite::Error::Http(response)) => {
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert_eq!(response.status(), 503, "{body}");
                assert!(
                    body.contains(&format!("already has {SOCKETS_PER_OBJECT} WebSockets")),
                    "{body}"
                );
            }
            Err(other) => panic!("expected an HTTP error, got {other}"),
            Ok(_) => panic!("the room accepted a socket past its cap"),
        }
        // Too many tags is refused with the limit named.
        let tags = (0..11)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join(",");
        match try_join(address, "tags", &tags, "many").await {
            Err(tungstenite::Error::Http(response)) => {
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert!(body.contains("at most 10 tags"), "{body}");
            }
            Err(other) => panic!("expected an HTTP error, got {other}"),
            Ok(_) => panic!("a socket with 11 tags was accepted"),
        }
        let mut tagged = join(
            address,
            "tags",
            &tags[..tags.rfind(',').expect("tags")],
            "ten",
        )
        .await;
        say(&mut tagged, "whoami").await;
        assert!(
            receive_text(&mut tagged)
                .await
                .starts_with("ten [\"t0\", \"t1\"")
        );
        // Another room is not affected by the first one's cap.
        let mut other = join(address, "other", "t", "o").await;
        say(&mut other, "hi").await;
        assert_eq!(receive_text(&mut other).await, "echo hi");
        // The process's cap (here 8 sockets; by default fitted to the descriptor limit): a 503
        // naming it, through the object and the Worker.
        match try_join(address, "another", "t", "ninth").await {
            Err(tungstenite::Error::Http(response)) => {
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned();
                assert_eq!(response.status(), 503, "{body}");
                assert!(
                    body.contains(&format!("limit of {SOCKETS_PER_PROCESS} open WebSockets")),
                    "{body}"
                );
            }
            Err(other) => panic!("expected an HTTP error, got {other}"),
            Ok(_) => panic!("a socket past the process's cap was accepted"),
        }
        drop(other);
        // A slot is free again once a socket closes.
        let deadline = Instant::now() + STEP;
        let mut again = loop {
            match try_join(address, "another", "t", "ninth").await {
                Ok(client) => break client,
                Err(_) => {
                    assert!(Instant::now() < deadline, "no slot came free");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        say(&mut again, "hi").await;
        assert_eq!(receive_text(&mut again).await, "echo hi");
    });
    control
        .block_on(server.shutdown(Duration::from_secs(5)))
        .expect("shutdown");
}

#[test]
fn a_handler_past_the_event_timeout_fails_and_the_socket_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (control, server) = start(dir.path());
    let address = server.ingress_address();
    control.block_on(async {
        let mut client = join(address, "slowpoke", "t", "dora").await;
        say(&mut client, "timeout:604800001").await;
        say(&mut client, "timeout:300").await;
        // The first was over Cloudflare's limit (7 days) and failed: only the second answers.
        assert_eq!(receive_text(&mut client).await, "timeout Some(300)");
        // The socket reads nothing more until an event is handled, so this answer comes only
        // because the hanging handler was ended by the timeout.
        say(&mut client, "hang").await;
        say(&mut client, "after").await;
        assert_eq!(receive_text(&mut client).await, "echo after");
    });
    control
        .block_on(server.shutdown(Duration::from_secs(5)))
        .expect("shutdown");
}

/// A line of /proc/self/status in bytes: `VmRSS` (resident now) or `VmHWM` (peak).
fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .expect("the field");
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number");
    kib * 1024
}

#[test]
fn a_client_that_never_reads_is_dropped_with_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (control, server) = start(dir.path());
    let address = server.ingress_address();
    control.block_on(async {
        let mut reader = join(address, "slow", "t", "never-reads").await;
        say(&mut reader, "whoami").await;
        receive_text(&mut reader).await;
        // Reset the peak (Linux: 5 in clear_refs), so VmHWM afterwards is the peak of the flood.
        std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
        let before = status_bytes("VmRSS:");
        // 64 MiB of distinct 64 KiB messages at a client that reads nothing from now on.
        say(&mut reader, "flood:1024:65536").await;
        wait_for("the error handler to hear of the slow client", async || {
            ERRORS
                .lock()
                .expect("lock")
                .iter()
                .any(|error| error.0 == "never-reads")
        })
        .await;
        let growth = status_bytes("VmHWM:").saturating_sub(before);
        eprintln!("peak RSS growth for the slow client: {growth} bytes (cap {SEND_BUFFER})");
        let errors = ERRORS.lock().expect("lock").clone();
        assert!(
            errors
                .iter()
                .any(|(who, error)| who == "never-reads" && error.contains("send buffer")),
            "{errors:?}"
        );
        assert!(
            growth < 2 * SEND_BUFFER,
            "the server grew by {growth} bytes for one slow client (cap {SEND_BUFFER})"
        );
        // Reading now: what the kernel held, then the close frame with 1009 and the reason.
        let deadline = Instant::now() + STEP;
        loop {
            assert!(Instant::now() < deadline, "no close frame");
            match receive(&mut reader).await {
                ClientMessage::Binary(_) => {}
                ClientMessage::Close(Some(frame)) => {
                    assert_eq!(u16::from(frame.code), 1009);
                    assert!(frame.reason.contains("send buffer"), "{}", frame.reason);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    control
        .block_on(server.shutdown(Duration::from_secs(5)))
        .expect("shutdown");
}
