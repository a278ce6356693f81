//! HTTP ingress with malformed requests: the real shard server over a real TCP connection.
//!
//! One server (two shards, an echo handler, a 64 KiB body limit) serves every input. Each input
//! is written on a fresh connection as raw bytes, then the client half-closes. The server must
//! answer with HTTP responses or close the connection (never hang, never answer garbage), and
//! must still serve a well-formed request afterwards.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use burrow_http::{Body, ServerHandle, ServerOptions, handler_fn};
use burrow_runtime::shard::Shards;
use http::{Request, Response};

/// Generous: this only turns a hang into a failure, it never measures anything.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_BODY_BYTES: u64 = 64 * 1024;
/// Most response bytes read per input; an echo of a 16 KiB input fits easily.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Requests the mutations start from.
pub const CORPUS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"PUT /x?y=%zz HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
];

/// HTTP tokens.
pub const DICTIONARY: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"Content-Length: ",
    b"Content-Length: 18446744073709551616\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"ffffffffffffffff\r\n",
    b"0\r\n\r\n",
    b"Host: ",
    b"Connection: keep-alive\r\n",
    b"Expect: 100-continue\r\n",
    b" HTTP/1.1",
    b" HTTP/2.0",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"CONNECT a:1",
    b"\x00",
    b"\xff",
    b":",
];

fn server() -> SocketAddr {
    static SERVER: OnceLock<(Shards, ServerHandle)> = OnceLock::new();
    let (_, handle) = SERVER.get_or_init(|| {
        let shards = Shards::start(2).expect("shards");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let options = ServerOptions {
            max_request_body_bytes: MAX_BODY_BYTES,
            ..ServerOptions::ingress()
        };
        let handler = handler_fn(|request: Request<Body>| async move {
            let path = request.uri().path().to_owned();
            let length = match request.into_body().collect_limited(MAX_BODY_BYTES).await {
                Ok(body) => body.len().to_string(),
                Err(error) => error.to_string(),
            };
            Response::new(Body::from(format!("{path} {length}")))
        });
        let handle =
            burrow_http::serve_ingress(listener, &shards, handler, options).expect("serve");
        (shards, handle)
    });
    handle.local_addr()
}

/// Sends `request`, half-closes, and reads until the server closes. Panics on a hang.
fn exchange(address: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("timeout");
    stream
        .set_write_timeout(Some(READ_TIMEOUT))
        .expect("timeout");
    // The server may answer and close before it has read everything: a failed write is fine.
    let _ = stream.write_all(request);
    let _ = stream.shutdown(Shutdown::Write);
    let mut response = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                response.extend_from_slice(&buffer[..read]);
                assert!(
                    response.len() <= MAX_RESPONSE_BYTES,
                    "the server sent more than {MAX_RESPONSE_BYTES} bytes"
                );
            }
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server neither answered nor closed within {READ_TIMEOUT:?}")
            }
            // A reset after the server gave up on the request.
            Err(_) => break,
        }
    }
    response
}

/// Sends `data` as a request and checks the server's behaviour, then its health.
pub fn check(data: &[u8]) {
    let address = server();
    let response = exchange(address, data);
    if !response.is_empty() {
        assert!(
            response.starts_with(b"HTTP/1.1 ") || response.starts_with(b"HTTP/1.0 "),
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&response[..response.len().min(200)])
        );
    }
    let health = exchange(
        address,
        b"POST /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    );
    assert!(
        health.starts_with(b"HTTP/1.1 200 ") && health.ends_with(b"/health 2"),
        "a well-formed request after the input got {:?}",
        String::from_utf8_lossy(&health)
    );
}
