//! examples/counter as a process: RPC increments and reads, concurrent increments on one object,
//! `Stub::fetch`, vars, a client error, a clean exit on SIGTERM, and the counts after a restart.
//! Also the start-up errors of an app whose configuration does not match its code.

mod support;

use std::path::Path;

use support::{command, free_port, request, run_to_end, start};

fn start_counter(data: &Path) -> support::App {
    start(&mut command(
        "counter",
        free_port(),
        data,
        &["--admin-address", "127.0.0.1:0"],
    ))
}

#[test]
fn counts_per_name_over_rpc_and_keeps_the_counts_across_a_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_counter(data.path());

    let (status, body) = app.request("GET", "/", "");
    assert_eq!(status, 200);
    assert!(body.starts_with("Burrow counter example\n"), "{body}");

    for expected in 1..=3 {
        assert_eq!(
            app.request("POST", "/counter/a", ""),
            (200, expected.to_string())
        );
    }
    assert_eq!(
        app.request("POST", "/counter/a?by=10", ""),
        (200, "13".into())
    );
    assert_eq!(app.request("GET", "/counter/a", ""), (200, "13".into()));
    assert_eq!(app.request("GET", "/counter/b", ""), (200, "0".into()));

    // 20 clients at once on one object: every increment counts exactly once.
    let address = app.address;
    let clients: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || request(address, "POST", "/counter/busy", "")))
        .collect();
    let mut seen: Vec<i64> = clients
        .into_iter()
        .map(|client| {
            let (status, body) = client.join().expect("client");
            assert_eq!(status, 200, "{body}");
            body.parse().expect("a count")
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=20).collect::<Vec<_>>());

    let (status, body) = app.request("POST", "/counter/a?by=x", "");
    assert_eq!((status, body.as_str()), (400, "?by=x: not an integer\n"));
    assert_eq!(app.request("GET", "/nowhere", "").0, 404);

    // DELETE goes through Stub::fetch to the object's own fetch handler.
    assert_eq!(
        app.request("DELETE", "/counter/b", ""),
        (200, "deleted".into())
    );

    let (status, log) = app.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("signal=\"SIGTERM\""), "{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !log.contains("cancelled"),
        "shutdown should not wait out its grace period: {log}"
    );

    let app = start_counter(data.path());
    assert_eq!(app.request("GET", "/counter/a", ""), (200, "13".into()));
    assert_eq!(app.request("GET", "/counter/busy", ""), (200, "20".into()));
    assert_eq!(app.request("POST", "/counter/a", ""), (200, "14".into()));
    let (status, log) = app.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    // The migration was applied once, on the first start.
    assert!(!log.contains("created Durable Object class"), "{log}");
}

#[test]
fn a_configuration_that_does_not_match_the_code_fails_naming_what_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");

    // The binding exists but no migration creates its class.
    let config = dir.path().join("no-migration.toml");
    std::fs::write(
        &config,
        "name = \"counter\"\n[[durable_objects.bindings]]\nname = \"COUNTER\"\nclass_name = \"Counter\"\n",
    )
    .expect("write");
    let (status, stderr) = run_to_end(&mut command(
        "counter",
        free_port(),
        &data,
        &[
            "--config",
            config.to_str().expect("UTF-8"),
            "--admin-address",
            "127.0.0.1:0",
        ],
    ));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("class 'Counter'"), "{stderr}");
    assert!(
        stderr.contains("new_sqlite_classes = [\"Counter\"]"),
        "{stderr}"
    );

    // No binding for what the code implements.
    let config = dir.path().join("no-binding.toml");
    std::fs::write(
        &config,
        "name = \"counter\"\n[[migrations]]\ntag = \"v1\"\nnew_sqlite_classes = [\"Counter\"]\n",
    )
    .expect("write");
    let (status, stderr) = run_to_end(&mut command(
        "counter",
        free_port(),
        &data,
        &[
            "--config",
            config.to_str().expect("UTF-8"),
            "--admin-address",
            "127.0.0.1:0",
        ],
    ));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("binding \"COUNTER\"")
            && stderr.contains("no [[durable_objects.bindings]] entry named \"COUNTER\""),
        "{stderr}"
    );
}
