//! WebSockets in a plain JavaScript Worker under the real binary, driven by a WebSocket client
//! over TCP (RFC 6455 frames written and read here): `new WebSocketPair()`, `server.accept()`,
//! `send` before and after the `101`, text and binary messages through `addEventListener`,
//! a close started by the client (the Worker's close listener sees its code and reason) and one
//! started by the Worker.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{STEP, Server, dev, http, write};

const WORKER: &str = r#"
const closes = [];
export default {
  fetch(request) {
    if (request.headers.get("upgrade") !== "websocket") {
      return Response.json({ closes });
    }
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    server.send("welcome");
    server.addEventListener("message", (event) => {
      if (event.data === "close") server.close(1000, "bye");
      else if (typeof event.data === "string") server.send(`echo: ${event.data}`);
      else server.send(new Uint8Array(event.data).reverse());
    });
    server.onclose = (event) => closes.push(`${event.code} ${event.reason} ${event.wasClean}`);
    return new Response(null, { status: 101, webSocket: client, headers: { "x-room": "lobby" } });
  },
};
"#;

/// A client's WebSocket over a plain TCP stream.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects and upgrades; returns the client and the response head.
    fn connect(server: &Server) -> (Client, String) {
        let stream = TcpStream::connect(server.ingress).expect("connect");
        stream.set_read_timeout(Some(STEP)).expect("timeout");
        let mut writer = stream.try_clone().expect("clone");
        writer
            .write_all(
                b"GET /ws HTTP/1.1\r\nhost: ws.test\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
                  sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
            )
            .expect("handshake");
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("head line");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        (Client { reader, writer }, head)
    }

    /// Sends one masked frame.
    fn send(&mut self, opcode: u8, payload: &[u8]) {
        assert!(payload.len() < 126);
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.writer.write_all(&frame).expect("send a frame");
    }

    /// Reads one unfragmented frame: (opcode, payload).
    fn read(&mut self) -> (u8, Vec<u8>) {
        let mut head = [0u8; 2];
        self.reader.read_exact(&mut head).expect("frame head");
        assert_eq!(head[0] & 0x80, 0x80, "a final frame");
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let length = match head[1] & 0x7f {
            126 => {
                let mut bytes = [0u8; 2];
                self.reader.read_exact(&mut bytes).expect("length");
                u16::from_be_bytes(bytes) as usize
            }
            127 => panic!("unexpectedly long frame"),
            n => n as usize,
        };
        let mut payload = vec![0; length];
        self.reader.read_exact(&mut payload).expect("payload");
        (head[0] & 0x0f, payload)
    }

    fn read_text(&mut self) -> String {
        let (opcode, payload) = self.read();
        assert_eq!(opcode, 1, "a text frame");
        String::from_utf8(payload).expect("UTF-8")
    }
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}

fn closes(server: &Server) -> Vec<String> {
    let (status, response) = http(server.ingress, "GET", "/closes", &[]);
    assert_eq!(status, 200, "{response}");
    let value: serde_json::Value = serde_json::from_str(support::body(&response)).expect("JSON");
    value["closes"]
        .as_array()
        .expect("closes")
        .iter()
        .map(|close| close.as_str().expect("text").to_owned())
        .collect()
}

#[test]
fn a_websocket_pair_echoes_over_a_real_connection_and_closes_both_ways() {
    let project = tempfile::tempdir().expect("tempdir");
    write(
        project.path(),
        "wrangler.toml",
        "name = \"sockets\"\nmain = \"worker.js\"\ncompatibility_date = \"2025-04-01\"\n[burrow]\nshards = 1\n",
    );
    write(project.path(), "worker.js", WORKER);
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(project.path(), state.path());

    let (mut client, head) = Client::connect(&server);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    assert!(lower.contains("x-room: lobby"), "{head}");
    // Sent before the Response went out: queued until the connection was there.
    assert_eq!(client.read_text(), "welcome");
    client.send(1, b"hi");
    assert_eq!(client.read_text(), "echo: hi");
    client.send(2, &[1, 2, 3]);
    assert_eq!(client.read(), (2, vec![3, 2, 1]));
    // The client closes: the server answers the close frame and the Worker hears of it.
    client.send(8, &close_payload(4000, "done"));
    let (opcode, payload) = client.read();
    assert_eq!(opcode, 8, "a close frame");
    assert_eq!(&payload[..2], &4000u16.to_be_bytes());
    let deadline = Instant::now() + STEP;
    while !closes(&server).contains(&"4000 done true".to_owned()) {
        assert!(
            Instant::now() < deadline,
            "the close listener ran: {:?}",
            closes(&server)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The Worker closes.
    let (mut client, _) = Client::connect(&server);
    assert_eq!(client.read_text(), "welcome");
    client.send(1, b"close");
    let (opcode, payload) = client.read();
    assert_eq!(opcode, 8, "a close frame");
    assert_eq!(payload, close_payload(1000, "bye"));
    client.send(8, &close_payload(1000, "bye"));

    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
