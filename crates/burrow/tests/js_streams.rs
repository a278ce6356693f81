//! Streaming bodies of JavaScript Workers over real TCP: a chunked request body reaches the
//! Worker chunk by chunk while the Worker's streamed response reaches the client chunk by chunk
//! (each answer depends on a chunk the client sends only after reading the previous answer), and
//! a streamed response to a client that stops reading is held to a bounded buffer and cancelled
//! when the client goes away.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{STEP, Server, dev, http, write};

const WORKER: &str = r#"
let produced = 0;
let cancelled = "no";
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/echo") {
      const reader = request.body.getReader();
      const encoder = new TextEncoder();
      return new Response(new ReadableStream({
        async pull(controller) {
          const { value, done } = await reader.read();
          if (done) {
            controller.enqueue(encoder.encode("end\n"));
            controller.close();
          } else {
            controller.enqueue(encoder.encode(`got ${new TextDecoder().decode(value)}\n`));
          }
        },
      }));
    }
    if (url.pathname === "/firehose") {
      const chunk = new Uint8Array(64 * 1024).fill(120);
      return new Response(new ReadableStream({
        pull(controller) {
          produced++;
          controller.enqueue(chunk);
        },
        cancel() {
          cancelled = "yes";
        },
      }, { highWaterMark: 0 }));
    }
    return Response.json({ produced, cancelled });
  },
};
"#;

/// The project, on one shard (the counters live in the one isolate).
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "wrangler.toml",
        "name = \"streams\"\nmain = \"worker.js\"\ncompatibility_date = \"2025-04-01\"\n[burrow]\nshards = 1\n",
    );
    write(dir.path(), "worker.js", WORKER);
    dir
}

/// Reads one chunk of a chunked body: its size line, data and CRLF.
fn read_chunk(reader: &mut BufReader<TcpStream>) -> String {
    let mut size = String::new();
    reader.read_line(&mut size).expect("a chunk size line");
    let size = usize::from_str_radix(size.trim(), 16).expect("a hex chunk size");
    let mut data = vec![0; size + 2];
    reader.read_exact(&mut data).expect("the chunk");
    data.truncate(size);
    String::from_utf8(data).expect("UTF-8")
}

#[test]
fn request_and_response_bodies_stream_chunk_by_chunk() {
    let project = project();
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(project.path(), state.path());

    let stream = TcpStream::connect(server.ingress).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    writer
        .write_all(
            b"POST /echo HTTP/1.1\r\nhost: streams.test\r\ntransfer-encoding: chunked\r\n\
              connection: close\r\n\r\n5\r\nfirst\r\n",
        )
        .expect("write the head and the first chunk");
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    let mut head = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header line");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    // The answer to the first chunk arrives while the request body is still open: neither side
    // is buffered whole.
    assert_eq!(read_chunk(&mut reader), "got first\n");
    writer.write_all(b"6\r\nsecond\r\n").expect("second chunk");
    assert_eq!(read_chunk(&mut reader), "got second\n");
    writer.write_all(b"0\r\n\r\n").expect("end of the body");
    assert_eq!(read_chunk(&mut reader), "end\n");
    assert_eq!(read_chunk(&mut reader), "");

    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}

fn counters(server: &Server) -> (u64, String) {
    let (status, response) = http(server.ingress, "GET", "/count", &[]);
    assert_eq!(status, 200, "{response}");
    let body = support::body(&response);
    let value: serde_json::Value = serde_json::from_str(body).expect("JSON");
    (
        value["produced"].as_u64().expect("produced"),
        value["cancelled"].as_str().expect("cancelled").to_owned(),
    )
}

#[test]
fn a_client_that_stops_reading_holds_the_stream_to_a_bounded_buffer() {
    let project = project();
    let state = tempfile::tempdir().expect("tempdir");
    let server = dev(project.path(), state.path());

    let mut stream = TcpStream::connect(server.ingress).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    stream
        .write_all(b"GET /firehose HTTP/1.1\r\nhost: streams.test\r\n\r\n")
        .expect("request");
    let mut first = [0u8; 1024];
    let read = stream.read(&mut first).expect("the response starts");
    assert!(read > 0);

    // The client reads no more: production stops once the channel, the server's buffers and the
    // kernel's socket buffers are full. Wait until the count stops moving.
    let deadline = Instant::now() + STEP;
    let mut last = counters(&server).0;
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = counters(&server).0;
        if now == last && now > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "production never stopped ({now} chunks)"
        );
        last = now;
    }
    // 64 KiB chunks: a bound far below "everything" (an unbounded stream would grow forever),
    // generous enough for the loopback socket buffers of any kernel.
    assert!(
        last < 400,
        "{last} chunks of 64 KiB were produced for a client that stopped reading"
    );

    // The client goes away: the Worker's stream is cancelled.
    drop(stream);
    let deadline = Instant::now() + STEP;
    while counters(&server).1 != "yes" {
        assert!(Instant::now() < deadline, "the stream was not cancelled");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
