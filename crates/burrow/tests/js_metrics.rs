//! `burrow_js_cpu_seconds_total` of a JavaScript Worker under `burrow dev`: it grows with the
//! time the Worker's code runs, and a Worker that only answers costs little of it.

mod support;

use support::{command, send, start, text, write};

const TOKEN: &str = "metrics-token";

fn js_cpu_seconds(admin: std::net::SocketAddr) -> f64 {
    let bearer = format!("Bearer {TOKEN}");
    let (status, text) = send(admin, "GET", "/metrics", &[("authorization", &bearer)], b"");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|line| line.strip_prefix(r#"burrow_js_cpu_seconds_total{worker="busy"} "#))
        .unwrap_or_else(|| panic!("no JS CPU sample in:\n{text}"))
        .parse()
        .expect("a number")
}

#[test]
fn javascript_cpu_time_counts_the_time_the_worker_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "wrangler.toml",
        "name = \"busy\"\nmain = \"index.js\"\ncompatibility_date = \"2025-01-01\"\n",
    );
    // `/spin?ms=N` keeps the CPU busy for N ms of its own clock, in the handler and in a
    // promise job after it; `/` answers at once.
    write(
        dir.path(),
        "index.js",
        r#"
function spin(ms) {
  const until = Date.now() + ms;
  let x = 0;
  while (Date.now() < until) x++;
  return x;
}
export default {
  async fetch(request) {
    const ms = Number(new URL(request.url).searchParams.get("ms") ?? 0);
    spin(ms / 2);
    await Promise.resolve();
    spin(ms / 2);
    return new Response("ok");
  },
};
"#,
    );
    let server = start(
        command(&[
            "dev",
            text(dir.path()),
            "--port",
            "0",
            "--admin-address",
            "127.0.0.1:0",
            "--persist-to",
            text(&dir.path().join("data")),
        ])
        .env("BURROW_API_TOKEN", TOKEN),
    );
    let (status, _) = send(server.ingress, "GET", "/", &[], b"");
    assert_eq!(status, 200);
    let idle = js_cpu_seconds(server.admin);

    let started = std::time::Instant::now();
    for _ in 0..5 {
        let (status, body) = send(server.ingress, "GET", "/spin?ms=100", &[], b"");
        assert_eq!((status, body.as_str()), (200, "ok"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let busy = js_cpu_seconds(server.admin);
    // Five requests of 100 ms of JavaScript each, by its own clock: a loaded machine makes them
    // longer, and Date.now()'s whole milliseconds make each of the ten spins up to 1 ms
    // shorter. Without the promise jobs' half counted it would be about 0.25 s.
    assert!(
        busy - idle >= 0.45,
        "idle {idle} s, after 0.5 s of JavaScript {busy} s"
    );
    // One shard ran them one after the other: no time counted twice.
    assert!(
        busy - idle <= elapsed,
        "{} s counted in {elapsed} s of requests",
        busy - idle
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
