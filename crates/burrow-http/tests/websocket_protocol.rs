//! WebSockets through the ingress with a real client (tokio-tungstenite): the handshake, echo of
//! whole and fragmented messages, pings, close codes both ways, the auto-response, the message
//! size limit, a client that never reads, the WebSocket cap, and accepting on another shard.

use std::sync::Arc;
use std::time::Duration;

use burrow_http::websocket::{
    self, AutoResponder, AutoResponse, Driver, Event, Flow, Handshake, Message, Sender, Upgrade,
};
use burrow_http::{Body, ServerHandle, ServerOptions, handler_fn};
use burrow_runtime::shard::{Shards, current_shard};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::{self as tungstenite, Message as ClientMessage};
use tokio_tungstenite::{WebSocketStream, client_async};

/// Generous bound for any single step; tests never assert on timing, this only turns a hang
/// into a failure.
const STEP: Duration = Duration::from_secs(20);

/// What each accepted socket does.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Echo every message.
    Echo,
    /// Send `chunk_bytes` binary messages until the send buffer overflows.
    Flood { chunk_bytes: usize },
}

#[derive(Clone)]
struct Setup {
    shards: usize,
    options: ServerOptions,
    config: Arc<websocket::Config>,
    behaviour: Behaviour,
    auto_responder: Option<AutoResponder>,
    /// Accept each socket on the shard after the connection's.
    accept_elsewhere: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            shards: 1,
            options: ServerOptions::ingress(),
            config: Arc::new(websocket::Config::default()),
            behaviour: Behaviour::Echo,
            auto_responder: None,
            accept_elsewhere: false,
        }
    }
}

/// What the application saw.
#[derive(Debug)]
enum Observed {
    Message {
        message: Message,
        shard: Option<usize>,
    },
    Closed {
        code: u16,
        reason: String,
        was_clean: bool,
        error: Option<String>,
    },
}

struct Harness {
    server: ServerHandle,
    observed: mpsc::UnboundedReceiver<Observed>,
    senders: mpsc::UnboundedReceiver<Sender>,
    _shards: Shards,
}

impl Harness {
    async fn next(&mut self) -> Observed {
        tokio::time::timeout(STEP, self.observed.recv())
            .await
            .expect("in time")
            .expect("an event")
    }

    async fn sender(&mut self) -> Sender {
        tokio::time::timeout(STEP, self.senders.recv())
            .await
            .expect("in time")
            .expect("a sender")
    }

    fn nothing_observed(&mut self) -> bool {
        self.observed.try_recv().is_err()
    }

    async fn wait_until(&self, what: &str, condition: impl Fn(&ServerHandle) -> bool) {
        let done = tokio::time::timeout(STEP, async {
            while !condition(&self.server) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(done.is_ok(), "waited too long for {what}");
    }
}

fn start(setup: Setup) -> Harness {
    let shards = Shards::start(setup.shards).expect("shards");
    let (observed_sender, observed) = mpsc::unbounded_channel();
    let (senders_sender, senders) = mpsc::unbounded_channel();
    let handler_shards = shards.clone();
    let options = setup.options.clone();
    let handler = handler_fn(move |request: Request<Body>| {
        let shards = handler_shards.clone();
        let setup = setup.clone();
        let observed = observed_sender.clone();
        let senders = senders_sender.clone();
        async move {
            let connection_shard = current_shard().expect("on a shard");
            let target = if setup.accept_elsewhere {
                (connection_shard + 1) % shards.count()
            } else {
                connection_shard
            };
            // The request (with its upgrade handle) moves to the target shard and the response
            // comes back, as a stub's fetch to an object on another shard would.
            let response = shards
                .run(target, move || async move {
                    accept_and_run(request, &setup, observed, senders)
                })
                .await;
            let mut response = response.unwrap_or_else(|error| {
                burrow_http::text_response(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
            });
            response.headers_mut().insert(
                "x-connection-shard",
                connection_shard.to_string().parse().expect("header"),
            );
            response
        }
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = burrow_http::serve_ingress(listener, &shards, handler, options).expect("serve");
    Harness {
        server,
        observed,
        senders,
        _shards: shards,
    }
}

/// On the accepting shard: the lower-level API (check, pick a subprotocol, accept), then a task
/// that runs the driver once hyper hands the connection over.
fn accept_and_run(
    request: Request<Body>,
    setup: &Setup,
    observed: mpsc::UnboundedSender<Observed>,
    senders: mpsc::UnboundedSender<Sender>,
) -> Response<Body> {
    let handshake = match Handshake::check(request.method(), request.version(), request.headers()) {
        Ok(handshake) => handshake,
        Err(error) => return error.into_response(),
    };
    let Some(upgrade) = request.extensions().get::<Upgrade>() else {
        return websocket::UpgradeError::NotUpgradable.into_response();
    };
    let protocol = handshake.protocols().first().cloned();
    let accepted = match upgrade.accept(&handshake, protocol.as_deref()) {
        Ok(accepted) => accepted,
        Err(error) => return error.into_response(),
    };
    let (sender, mut driver) = Driver::new(Arc::clone(&setup.config));
    if let Some(responder) = &setup.auto_responder {
        driver = driver.with_auto_responder(responder.clone());
    }
    let _ = senders.send(sender.clone());
    let behaviour = setup.behaviour;
    tokio::task::spawn_local(async move {
        let connection = match accepted.connection.connect().await {
            Ok(connection) => connection,
            Err(error) => panic!("upgrade failed: {error}"),
        };
        if let Behaviour::Flood { chunk_bytes } = behaviour {
            tokio::task::spawn_local(flood(sender.clone(), chunk_bytes));
        }
        let echo = sender;
        driver
            .run(connection, move |event| {
                match event {
                    Event::Message(message) => {
                        if let Behaviour::Echo = behaviour {
                            let _ = echo.send(message.clone());
                        }
                        let _ = observed.send(Observed::Message {
                            message,
                            shard: current_shard(),
                        });
                    }
                    Event::Closed(closed) => {
                        let _ = observed.send(Observed::Closed {
                            code: closed.code,
                            reason: closed.reason,
                            was_clean: closed.was_clean,
                            error: closed.error.map(|error| error.to_string()),
                        });
                    }
                }
                Flow::Continue
            })
            .await;
    });
    let mut response = accepted.response;
    response.headers_mut().insert(
        "x-socket-shard",
        current_shard()
            .unwrap_or(usize::MAX)
            .to_string()
            .parse()
            .expect("header"),
    );
    response
}

async fn flood(sender: Sender, chunk_bytes: usize) {
    let payload = Bytes::from(vec![0x5A; chunk_bytes]);
    while sender.send(payload.clone()).is_ok() {
        // Let the driver write between sends, as a real application's sends are spread out.
        tokio::task::yield_now().await;
    }
}

type Client = WebSocketStream<TcpStream>;

async fn connect_with(
    harness: &Harness,
    protocols: Option<&str>,
) -> Result<(Client, tungstenite::handshake::client::Response), tungstenite::Error> {
    let address = harness.server.local_addr();
    let stream = TcpStream::connect(address).await.expect("connect");
    let mut request = format!("ws://{address}/room")
        .into_client_request()
        .expect("request");
    if let Some(protocols) = protocols {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().expect("header"));
    }
    tokio::time::timeout(STEP, client_async(request, stream))
        .await
        .expect("handshake in time")
}

async fn connect(harness: &Harness) -> Client {
    connect_with(harness, None).await.expect("handshake").0
}

async fn receive(client: &mut Client) -> ClientMessage {
    tokio::time::timeout(STEP, client.next())
        .await
        .expect("in time")
        .expect("a message")
        .expect("no error")
}

fn close_of(message: ClientMessage) -> (u16, String) {
    match message {
        ClientMessage::Close(Some(frame)) => (u16::from(frame.code), frame.reason.to_string()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn handshake_answers_101_with_the_accept_key_and_the_chosen_subprotocol() {
    let harness = start(Setup::default());
    let (_client, response) = connect_with(&harness, Some("chat.v2, chat.v1"))
        .await
        .expect("handshake");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    // tungstenite checks Sec-WebSocket-Accept itself; the protocol is the server's choice.
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat.v2");

    // A request with the wrong version is refused with 426 naming the supported one.
    let address = harness.server.local_addr();
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream.set_read_timeout(Some(STEP)).expect("timeout");
        stream
            .write_all(
                b"GET / HTTP/1.1\r\nhost: test\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
                  sec-websocket-version: 8\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  connection: close\r\n\r\n",
            )
            .expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .expect("client");
    assert!(answer.starts_with("HTTP/1.1 426"), "{answer}");
    assert!(answer.contains("sec-websocket-version: 13"), "{answer}");
    assert!(
        answer.contains("Sec-WebSocket-Version: 13` is supported"),
        "{answer}"
    );
}

#[tokio::test]
async fn echoes_text_and_binary_whole_and_fragmented() {
    let mut harness = start(Setup::default());
    let mut client = connect(&harness).await;

    client
        .send(ClientMessage::text("héllo"))
        .await
        .expect("send");
    assert_eq!(receive(&mut client).await, ClientMessage::text("héllo"));
    let binary: Vec<u8> = (0..=255).collect();
    client
        .send(ClientMessage::binary(binary.clone()))
        .await
        .expect("send");
    assert_eq!(receive(&mut client).await, ClientMessage::binary(binary));

    // Fragments, with a ping between them and a character split across frames.
    let text = "fragmented → text";
    let bytes = text.as_bytes();
    let split = text.find('→').expect("arrow") + 1;
    client
        .send(ClientMessage::Frame(Frame::message(
            Bytes::copy_from_slice(&bytes[..split]),
            OpCode::Data(Data::Text),
            false,
        )))
        .await
        .expect("send");
    client
        .send(ClientMessage::Ping(Bytes::from_static(b"between")))
        .await
        .expect("ping");
    client
        .send(ClientMessage::Frame(Frame::message(
            Bytes::copy_from_slice(&bytes[split..]),
            OpCode::Data(Data::Continue),
            true,
        )))
        .await
        .expect("send");
    assert_eq!(
        receive(&mut client).await,
        ClientMessage::Pong(Bytes::from_static(b"between"))
    );
    assert_eq!(receive(&mut client).await, ClientMessage::text(text));

    // A large binary message in many fragments, crossing many reads.
    let large: Vec<u8> = (0..1_000_000_u32).map(|index| index as u8).collect();
    let chunks: Vec<&[u8]> = large.chunks(100_000).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        let opcode = if index == 0 {
            Data::Binary
        } else {
            Data::Continue
        };
        client
            .send(ClientMessage::Frame(Frame::message(
                Bytes::copy_from_slice(chunk),
                OpCode::Data(opcode),
                index + 1 == chunks.len(),
            )))
            .await
            .expect("send");
    }
    assert_eq!(
        receive(&mut client).await,
        ClientMessage::binary(large.clone())
    );

    let mut seen = Vec::new();
    for _ in 0..4 {
        match harness.next().await {
            Observed::Message { message, .. } => seen.push(message),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            Message::from("héllo"),
            Message::from((0..=255).collect::<Vec<u8>>()),
            Message::from(text),
            Message::from(large),
        ]
    );
    assert!(
        harness.nothing_observed(),
        "pings never reach the application"
    );
}

#[tokio::test]
async fn ping_is_answered_with_pong_without_the_application() {
    let mut harness = start(Setup::default());
    let mut client = connect(&harness).await;
    client
        .send(ClientMessage::Ping(Bytes::from_static(b"are you there")))
        .await
        .expect("ping");
    assert_eq!(
        receive(&mut client).await,
        ClientMessage::Pong(Bytes::from_static(b"are you there"))
    );
    client
        .send(ClientMessage::text("after"))
        .await
        .expect("send");
    assert_eq!(receive(&mut client).await, ClientMessage::text("after"));
    assert!(matches!(
        harness.next().await,
        Observed::Message { message, .. } if message == Message::from("after")
    ));
    assert!(harness.nothing_observed());
}

#[tokio::test]
async fn close_codes_and_reasons_reach_the_application_both_ways() {
    let mut harness = start(Setup::default());

    // The client closes: the application sees its code and reason; the client gets its echo.
    let mut client = connect(&harness).await;
    client
        .close(Some(CloseFrame {
            code: CloseCode::from(4001),
            reason: "bye for now".into(),
        }))
        .await
        .expect("close");
    let Observed::Closed {
        code,
        reason,
        was_clean,
        error,
    } = harness.next().await
    else {
        panic!("expected the close");
    };
    assert_eq!(
        (code, reason.as_str(), was_clean, error),
        (4001, "bye for now", true, None)
    );
    assert_eq!(
        close_of(receive(&mut client).await),
        (4001, "bye for now".to_owned())
    );
    let _ = harness.sender().await;

    // The server closes: the client sees the code; its answer completes the handshake.
    let mut client = connect(&harness).await;
    let sender = harness.sender().await;
    sender.close(4002, "server says bye").expect("close");
    assert_eq!(
        sender.send("too late"),
        Err(websocket::SendError::Closed),
        "nothing is sent after the close frame"
    );
    assert_eq!(
        close_of(receive(&mut client).await),
        (4002, "server says bye".to_owned())
    );
    // tungstenite answers the close by itself; drive it so the answer is written.
    assert!(
        tokio::time::timeout(STEP, client.next())
            .await
            .expect("in time")
            .is_none()
    );
    let Observed::Closed {
        code, was_clean, ..
    } = harness.next().await
    else {
        panic!("expected the close");
    };
    assert_eq!((code, was_clean), (4002, true));
    assert_eq!(
        sender.close(1005, ""),
        Err(websocket::SendError::InvalidCloseCode(1005))
    );
}

#[tokio::test]
async fn auto_response_is_answered_without_the_application() {
    let responder = AutoResponder::new();
    responder.set(Some(AutoResponse::new("ping", "pong").expect("pair")));
    let mut harness = start(Setup {
        auto_responder: Some(responder.clone()),
        ..Setup::default()
    });
    let mut client = connect(&harness).await;
    let sender = harness.sender().await;
    assert_eq!(sender.last_auto_response_ms(), None);

    client
        .send(ClientMessage::text("ping"))
        .await
        .expect("send");
    assert_eq!(receive(&mut client).await, ClientMessage::text("pong"));
    assert!(sender.last_auto_response_ms().is_some());
    assert!(harness.nothing_observed(), "the application was not called");

    // Anything else reaches the application; clearing the pair makes "ping" ordinary.
    client
        .send(ClientMessage::text("hello"))
        .await
        .expect("send");
    assert_eq!(receive(&mut client).await, ClientMessage::text("hello"));
    responder.set(None);
    client
        .send(ClientMessage::text("ping"))
        .await
        .expect("send");
    assert_eq!(receive(&mut client).await, ClientMessage::text("ping"));
    for expected in ["hello", "ping"] {
        assert!(matches!(
            harness.next().await,
            Observed::Message { message, .. } if message == Message::from(expected)
        ));
    }
    assert!(AutoResponse::new(&"x".repeat(2_049), "y").is_err());
}

#[tokio::test]
async fn messages_over_the_limit_close_the_socket_with_1009() {
    let mut harness = start(Setup {
        config: Arc::new(websocket::Config {
            max_message_bytes: 1_024,
            ..websocket::Config::default()
        }),
        ..Setup::default()
    });
    let mut client = connect(&harness).await;
    client
        .send(ClientMessage::binary(vec![1_u8; 1_024]))
        .await
        .expect("send");
    assert_eq!(
        receive(&mut client).await,
        ClientMessage::binary(vec![1_u8; 1_024])
    );
    client
        .send(ClientMessage::binary(vec![2_u8; 1_025]))
        .await
        .expect("send");
    let (code, reason) = close_of(receive(&mut client).await);
    assert_eq!(code, 1009);
    assert!(reason.contains("limit is 1024 bytes"), "{reason}");
    let _ = harness.next().await;
    let Observed::Closed {
        code,
        was_clean,
        error,
        ..
    } = harness.next().await
    else {
        panic!("expected the close");
    };
    assert_eq!((code, was_clean), (1009, false));
    assert!(error.expect("an error").contains("too big"));
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_within_the_send_buffer_cap() {
    const CAP: usize = 64 * 1024;
    let mut harness = start(Setup {
        config: Arc::new(websocket::Config {
            max_send_buffer_bytes: CAP,
            close_timeout: STEP,
            ..websocket::Config::default()
        }),
        behaviour: Behaviour::Flood {
            chunk_bytes: 16 * 1024,
        },
        ..Setup::default()
    });
    // The client reads nothing while the server floods it.
    let mut client = connect(&harness).await;
    let sender = harness.sender().await;
    let Observed::Closed {
        code,
        reason,
        was_clean,
        error,
    } = harness.next().await
    else {
        panic!("expected the close");
    };
    assert_eq!((code, was_clean), (1009, false));
    assert!(reason.contains("not reading"), "{reason}");
    assert!(error.expect("an error").contains("send buffer overflow"));
    // What the driver held for this socket never passed the cap (plus the close frame).
    let peak = sender.peak_queued_bytes();
    assert!(
        peak <= CAP + 128,
        "peak {peak} bytes queued over a cap of {CAP}"
    );
    assert!(peak < 2 * CAP);
    assert!(!sender.is_open());

    // Once the client reads, it finds the close frame after the data the kernel held.
    let mut data_messages = 0_usize;
    let close = loop {
        match receive(&mut client).await {
            ClientMessage::Binary(_) => data_messages += 1,
            other => break other,
        }
    };
    assert!(data_messages > 0);
    assert_eq!(close_of(close).0, 1009);
    // Let tungstenite write its answer and see the server close the connection.
    let _ = tokio::time::timeout(STEP, client.next()).await;
    harness
        .wait_until("the socket to close", |server| {
            server.stats().active_websockets() == 0
        })
        .await;
    assert_eq!(sender.queued_bytes(), 0);
}

#[tokio::test]
async fn the_websocket_cap_answers_503_and_upgraded_connections_leave_the_connection_count() {
    let mut harness = start(Setup {
        options: ServerOptions {
            max_websockets: 1,
            ..ServerOptions::ingress()
        },
        ..Setup::default()
    });
    let mut first = connect(&harness).await;
    match connect_with(&harness, None).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            let body =
                String::from_utf8(response.body().clone().unwrap_or_default()).expect("UTF-8");
            assert!(body.contains("limit of 1 open WebSockets"), "{body}");
        }
        other => panic!("expected 503, got {other:?}"),
    }
    harness
        .wait_until("one socket and no HTTP connection", |server| {
            server.stats().active_websockets() == 1 && server.stats().active_connections() == 0
        })
        .await;

    first.close(None).await.expect("close");
    let Observed::Closed { code, .. } = harness.next().await else {
        panic!("expected the close");
    };
    assert_eq!(code, 1005, "a close frame without a code");
    harness
        .wait_until("the slot to be free", |server| {
            server.stats().active_websockets() == 0
        })
        .await;
    let mut third = connect(&harness).await;
    third.send(ClientMessage::text("in")).await.expect("send");
    assert_eq!(receive(&mut third).await, ClientMessage::text("in"));
}

#[tokio::test]
async fn a_socket_accepted_on_another_shard_runs_there() {
    let mut harness = start(Setup {
        shards: 2,
        accept_elsewhere: true,
        ..Setup::default()
    });
    for _ in 0..2 {
        let (mut client, response) = connect_with(&harness, None).await.expect("handshake");
        let connection_shard: usize = response.headers()["x-connection-shard"]
            .to_str()
            .expect("header")
            .parse()
            .expect("number");
        let socket_shard: usize = response.headers()["x-socket-shard"]
            .to_str()
            .expect("header")
            .parse()
            .expect("number");
        assert_ne!(connection_shard, socket_shard);
        for index in 0..3 {
            let text = format!("message {index}");
            client
                .send(ClientMessage::text(text.clone()))
                .await
                .expect("send");
            assert_eq!(
                receive(&mut client).await,
                ClientMessage::text(text.clone())
            );
            match harness.next().await {
                Observed::Message { message, shard } => {
                    assert_eq!(message, Message::from(text));
                    assert_eq!(
                        shard,
                        Some(socket_shard),
                        "the driver runs where it was accepted"
                    );
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        client.close(None).await.expect("close");
        assert!(matches!(harness.next().await, Observed::Closed { .. }));
        let _ = harness.sender().await;
    }
}
