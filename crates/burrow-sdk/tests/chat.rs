//! examples/chat as a process, with real WebSocket clients: members of a room get each other's
//! lines, `/who` and `/to` work through the sockets' tags and attachments, `ping` is answered
//! `pong`, a room hibernates between messages and keeps its members, a plain request is refused
//! with 426, a departure is announced, and the server exits cleanly on SIGTERM.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{WebSocketStream, client_async};

use support::{STEP, command, free_port, start};

type Client = WebSocketStream<TcpStream>;

async fn join(address: SocketAddr, room: &str, user: &str) -> Client {
    let stream = TcpStream::connect(address).await.expect("connect");
    let url = format!("ws://{address}/rooms/{room}/ws?user={user}");
    tokio::time::timeout(STEP, client_async(url, stream))
        .await
        .expect("handshake in time")
        .expect("joined")
        .0
}

async fn say(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.expect("send");
}

async fn hear(client: &mut Client) -> String {
    match tokio::time::timeout(STEP, client.next())
        .await
        .expect("a line in time")
        .expect("a line")
        .expect("no error")
    {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[test]
fn a_chat_room_over_hibernatable_websockets() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut command = command(
        "chat",
        free_port(),
        data.path(),
        &["--admin-address", "127.0.0.1:0"],
    );
    command.env("BURROW_HIBERNATE_AFTER_MS", "100");
    let app = start(&mut command);
    let address = app.address;
    let (status, body) = app.request("GET", "/rooms/lobby/ws?user=x", "");
    assert_eq!(
        (status, body.as_str()),
        (426, "Expected Upgrade: websocket")
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut ann = join(address, "lobby", "ann").await;
        let mut ben = join(address, "lobby", "ben").await;
        let mut other = join(address, "elsewhere", "cy").await;

        say(&mut ann, "hello").await;
        assert_eq!(hear(&mut ann).await, "ann: hello");
        assert_eq!(hear(&mut ben).await, "ann: hello");
        say(&mut ben, "/who").await;
        assert_eq!(hear(&mut ben).await, "members: ann, ben");
        say(&mut ben, "/to ann psst").await;
        assert_eq!(hear(&mut ann).await, "ben (to you): psst");
        say(&mut ann, "ping").await;
        assert_eq!(hear(&mut ann).await, "pong");
        // The other room heard none of it.
        say(&mut other, "anyone?").await;
        assert_eq!(hear(&mut other).await, "cy: anyone?");

        // Idle long enough to hibernate (100 ms here): the members are still there after.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        say(&mut ann, "/who").await;
        assert_eq!(hear(&mut ann).await, "members: ann, ben");
        ben.close(None).await.expect("close");
        assert_eq!(hear(&mut ann).await, "* ben left");
        // Over RPC: ann is still a member (her client is open until this block ends).
        let (status, body) = app.request("GET", "/rooms/lobby", "");
        assert_eq!((status, body.as_str()), (200, "[\"ann\"]"));
    });
    let (status, log) = app.terminate();
    assert!(status.success(), "{log}");
}
