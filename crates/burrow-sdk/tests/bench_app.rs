//! examples/bench_app as the benchmark runs it (`--port P --persist-to DIR`, nothing else): the
//! four routes, loopback only, and a clean exit on SIGTERM.

mod support;

use support::{command, free_port, start};

#[test]
fn serves_the_benchmark_routes_on_loopback_and_exits_cleanly() {
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let app = start(&mut command("bench_app", port, data.path(), &[]));
    assert_eq!(app.address.to_string(), format!("127.0.0.1:{port}"));

    assert_eq!(app.request("GET", "/hello", ""), (200, "ok".into()));
    for expected in ["1", "2", "3"] {
        assert_eq!(
            app.request("POST", "/do/counter?name=hot", ""),
            (200, expected.into())
        );
    }
    assert_eq!(
        app.request("POST", "/do/counter?name=other", ""),
        (200, "1".into())
    );

    let (status, first) = app.request("POST", "/do/kvput?name=kv", "");
    assert_eq!(status, 200, "{first}");
    let (status, second) = app.request("POST", "/do/kvput?name=kv", "");
    assert_eq!(status, 200, "{second}");
    assert_ne!(first, second, "every put uses a new key");
    assert_eq!(app.request("GET", "/do/get?name=kv", ""), (200, second));
    assert_eq!(
        app.request("GET", "/do/get?name=empty", ""),
        (200, String::new())
    );

    assert_eq!(app.request("POST", "/do/counter", "").0, 400);
    assert_eq!(app.request("GET", "/do/counter?name=hot", "").0, 404);
    assert_eq!(app.request("GET", "/elsewhere", "").0, 404);

    let (status, log) = app.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    // Requests are not logged one by one.
    assert!(!log.contains("/do/counter"), "{log}");
}
