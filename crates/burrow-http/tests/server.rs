//! The shard HTTP server end to end over real sockets: keep-alive, streaming in both directions,
//! the request body limit, the connection cap and graceful shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burrow_http::{Body, BodyError, PeerAddr, ServerHandle, ServerOptions, handler_fn};
use burrow_runtime::shard::Shards;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

/// Generous bound for any single step; tests never assert on timing, this only turns a hang
/// into a failure.
const STEP: Duration = Duration::from_secs(20);

fn start(
    shards: &Shards,
    options: ServerOptions,
    handler: Arc<dyn burrow_http::MakeHandler>,
) -> ServerHandle {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    burrow_http::serve_ingress(listener, shards, handler, options).expect("serve")
}

fn echo_handler() -> Arc<dyn burrow_http::MakeHandler> {
    handler_fn(|request: Request<Body>| async move {
        let peer = request
            .extensions()
            .get::<PeerAddr>()
            .map(|peer| peer.0.port())
            .unwrap_or(0);
        let shard = burrow_runtime::shard::current_shard().unwrap_or(usize::MAX);
        let path = request.uri().path().to_owned();
        let body = match request.into_body().collect_limited(1 << 30).await {
            Ok(body) => body,
            Err(error) => Bytes::from(error.to_string()),
        };
        Response::builder()
            .header("x-peer-port", peer.to_string())
            .header("x-shard", shard.to_string())
            .body(Body::from(format!("{path} {}", body.len())))
            .expect("response")
    })
}

type Sender = hyper::client::conn::http1::SendRequest<Body>;

async fn connect(address: std::net::SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

async fn send(sender: &mut Sender, request: Request<Body>) -> Response<hyper::body::Incoming> {
    tokio::time::timeout(STEP, async {
        sender.ready().await.expect("ready");
        sender.send_request(request).await.expect("response")
    })
    .await
    .expect("in time")
}

async fn text(response: Response<hyper::body::Incoming>) -> String {
    let bytes = Body::new(response.into_body())
        .collect_limited(1 << 20)
        .await
        .expect("body");
    String::from_utf8(bytes.to_vec()).expect("UTF-8")
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "test")
        .body(Body::empty())
        .expect("request")
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let shards = Shards::start(2).expect("shards");
    let server = start(&shards, ServerOptions::ingress(), echo_handler());
    let mut sender = connect(server.local_addr()).await;
    let mut ports = Vec::new();
    let mut served_on = Vec::new();
    for index in 0..5 {
        let response = send(&mut sender, get(&format!("/r{index}"))).await;
        assert_eq!(response.status(), StatusCode::OK);
        ports.push(
            response.headers()["x-peer-port"]
                .to_str()
                .expect("port")
                .to_owned(),
        );
        served_on.push(
            response.headers()["x-shard"]
                .to_str()
                .expect("shard")
                .to_owned(),
        );
        assert_eq!(text(response).await, format!("/r{index} 0"));
    }
    ports.dedup();
    served_on.dedup();
    assert_eq!(ports.len(), 1, "one client port: one connection");
    assert_eq!(served_on.len(), 1, "a connection stays on its shard");

    // Connections are spread over the shards round-robin.
    let mut shards_seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let mut sender = connect(server.local_addr()).await;
        let response = send(&mut sender, get("/")).await;
        shards_seen.insert(
            response.headers()["x-shard"]
                .to_str()
                .expect("shard")
                .to_owned(),
        );
    }
    assert_eq!(shards_seen.len(), 2, "{shards_seen:?}");
    server.shutdown(Duration::from_secs(5)).await;
    shards.shutdown(Duration::from_secs(5));
}

#[tokio::test]
async fn request_and_response_bodies_stream() {
    let shards = Shards::start(1).expect("shards");
    // The handler reports each request chunk as it arrives, then streams its response in two
    // chunks with a pause that only the test can end.
    let (seen_sender, mut seen) = mpsc::unbounded_channel::<Bytes>();
    let (go_sender, go) = mpsc::unbounded_channel::<()>();
    let go = Arc::new(Mutex::new(Some(go)));
    let handler = handler_fn(move |request: Request<Body>| {
        let seen_sender = seen_sender.clone();
        let go = go.lock().expect("lock").take();
        async move {
            let mut body = request.into_body();
            let mut total = 0;
            while let Some(chunk) = body.chunk().await {
                let chunk = chunk.expect("chunk");
                total += chunk.len();
                seen_sender.send(chunk).expect("test listening");
            }
            let (sender, response_body) = Body::channel(1);
            tokio::task::spawn_local(async move {
                sender.send(format!("first {total};")).await.expect("send");
                if let Some(mut go) = go {
                    go.recv().await;
                }
                sender.send("second").await.expect("send");
            });
            Response::new(response_body)
        }
    });
    let server = start(&shards, ServerOptions::ingress(), handler);
    let mut sender = connect(server.local_addr()).await;

    let (body_sender, body) = Body::channel(1);
    let request = Request::post("/upload")
        .header("host", "test")
        .body(body)
        .expect("request");
    let response = tokio::spawn(async move { send(&mut sender, request).await });
    // Each chunk reaches the handler before the next one is even sent.
    for chunk in ["alpha", "beta", "gamma"] {
        body_sender.send(chunk).await.expect("send");
        let arrived = tokio::time::timeout(STEP, seen.recv())
            .await
            .expect("the chunk reached the handler on its own")
            .expect("handler alive");
        assert_eq!(arrived, chunk);
    }
    drop(body_sender);

    let response = tokio::time::timeout(STEP, response)
        .await
        .expect("in time")
        .expect("task");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    let mut body = response.into_body();
    let first = tokio::time::timeout(STEP, body.frame())
        .await
        .expect("the first chunk arrives while the second is held back")
        .expect("frame")
        .expect("ok")
        .into_data()
        .expect("data");
    assert_eq!(first, "first 14;");
    go_sender.send(()).expect("go");
    let rest = Body::new(body)
        .collect_limited(1 << 20)
        .await
        .expect("rest");
    assert_eq!(rest, "second");
    server.shutdown(Duration::from_secs(5)).await;
    shards.shutdown(Duration::from_secs(5));
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_naming_it() {
    let shards = Shards::start(1).expect("shards");
    let options = ServerOptions {
        max_request_body_bytes: 1_024,
        ..ServerOptions::ingress()
    };
    let server = start(&shards, options, echo_handler());

    // Declared too long: refused before the handler runs.
    let mut sender = connect(server.local_addr()).await;
    let request = Request::post("/declared")
        .header("host", "test")
        .body(Body::from(vec![b'x'; 2_000]))
        .expect("request");
    let response = send(&mut sender, request).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.headers()["connection"], "close");
    let message = text(response).await;
    assert!(message.contains("limit of 1024 bytes"), "{message}");

    // Chunked, no length: the handler's read fails and its answer becomes the 413.
    let mut sender = connect(server.local_addr()).await;
    let (body_sender, body) = Body::channel(4);
    tokio::spawn(async move {
        for _ in 0..2 {
            if body_sender.send(vec![b'y'; 1_000]).await.is_err() {
                break;
            }
        }
    });
    let request = Request::post("/chunked")
        .header("host", "test")
        .body(body)
        .expect("request");
    let response = send(&mut sender, request).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let message = text(response).await;
    assert!(message.contains("limit of 1024 bytes"), "{message}");

    // At the limit is fine.
    let mut sender = connect(server.local_addr()).await;
    let request = Request::post("/exact")
        .header("host", "test")
        .body(Body::from(vec![b'z'; 1_024]))
        .expect("request");
    let response = send(&mut sender, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "/exact 1024");

    // The limit error is typed for handlers that read bodies themselves.
    let error = BodyError::TooLarge { limit: 1_024 };
    assert_eq!(
        error.to_string(),
        "the body exceeds the limit of 1024 bytes"
    );
    server.shutdown(Duration::from_secs(5)).await;
    shards.shutdown(Duration::from_secs(5));
}

/// Sends one request on a blocking socket and reads one response (headers and a
/// content-length body), or everything up to EOF.
fn raw_exchange(stream: &mut TcpStream, path: &str) -> String {
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nhost: test\r\n\r\n").expect("write");
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4_096];
    loop {
        let read = stream.read(&mut buffer).expect("read");
        if read == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&received);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if received.len() >= head_end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

async fn wait_for_connections(server: &ServerHandle, at_most: usize) {
    let stats = server.stats();
    tokio::time::timeout(STEP, async {
        while stats.active_connections() > at_most {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("connections closed in time");
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_are_closed() {
    let shards = Shards::start(2).expect("shards");
    let options = ServerOptions {
        max_connections: 2,
        ..ServerOptions::ingress()
    };
    let server = start(&shards, options, echo_handler());
    let address = server.local_addr();
    tokio::task::spawn_blocking(move || {
        let mut first = TcpStream::connect(address).expect("connect");
        let mut second = TcpStream::connect(address).expect("connect");
        assert!(raw_exchange(&mut first, "/a").starts_with("HTTP/1.1 200"));
        assert!(raw_exchange(&mut second, "/b").starts_with("HTTP/1.1 200"));

        let mut third = TcpStream::connect(address).expect("connect");
        let answer = raw_exchange(&mut third, "/c");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("limit of 2 open connections"), "{answer}");
        // The server closed it: the next read sees EOF.
        let mut rest = Vec::new();
        third.read_to_end(&mut rest).expect("read");
        assert!(rest.is_empty());
        drop(first);
    })
    .await
    .expect("clients");
    wait_for_connections(&server, 1).await;
    tokio::task::spawn_blocking(move || {
        let mut fourth = TcpStream::connect(address).expect("connect");
        let answer = raw_exchange(&mut fourth, "/d");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    })
    .await
    .expect("client");
    server.shutdown(Duration::from_secs(5)).await;
    shards.shutdown(Duration::from_secs(5));
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_closes_idle_connections() {
    let shards = Shards::start(2).expect("shards");
    let (started_sender, mut started) = mpsc::unbounded_channel::<()>();
    let handler = handler_fn(move |request: Request<Body>| {
        let started_sender = started_sender.clone();
        async move {
            if request.uri().path() == "/slow" {
                started_sender.send(()).expect("test listening");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Response::new(Body::from(request.uri().path().to_owned()))
        }
    });
    let server = start(&shards, ServerOptions::ingress(), handler);
    let address = server.local_addr();

    let mut idle = connect(address).await;
    let response = send(&mut idle, get("/warm")).await;
    assert_eq!(text(response).await, "/warm");

    let mut busy = connect(address).await;
    let in_flight = tokio::spawn(async move {
        let response = send(&mut busy, get("/slow")).await;
        (response.status(), text(response).await)
    });
    tokio::time::timeout(STEP, started.recv())
        .await
        .expect("the slow request started")
        .expect("handler alive");

    let report = server.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.abandoned_connections, 0);
    let (status, body) = in_flight.await.expect("in flight");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "/slow");
    // The idle keep-alive connection was closed, and nothing listens any more.
    tokio::time::timeout(STEP, idle.ready())
        .await
        .expect("in time")
        .expect_err("closed by the server");
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
    shards.shutdown(Duration::from_secs(5));
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_connection_lives_on() {
    let shards = Shards::start(1).expect("shards");
    let handler = handler_fn(|request: Request<Body>| async move {
        assert_ne!(request.uri().path(), "/panic", "deliberate test panic");
        Response::new(Body::from("fine"))
    });
    let server = start(&shards, ServerOptions::ingress(), handler);
    let mut sender = connect(server.local_addr()).await;
    let response = send(&mut sender, get("/panic")).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let _ = text(response).await;
    let response = send(&mut sender, get("/after")).await;
    assert_eq!(text(response).await, "fine");
    server.shutdown(Duration::from_secs(5)).await;
    shards.shutdown(Duration::from_secs(5));
}

/// Found by the ingress fuzz target: a client that shut down its sending half right after its
/// request (as `nc -N` does) got the connection closed without a response.
#[test]
fn a_request_followed_by_a_half_close_is_answered() {
    let shards = Shards::start(1).expect("shards");
    let server = start(&shards, ServerOptions::ingress(), echo_handler());
    let mut stream = TcpStream::connect(server.local_addr()).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    stream
        .write_all(b"POST /half HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        .expect("write");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half close");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200 "), "{response:?}");
    assert!(response.ends_with("/half 3"), "{response:?}");
}
