//! The running server, driven over HTTP: the Worker ingress (the hello example's JavaScript),
//! the admin API (`/healthz`, the Workers list, tokens) and the CLI's client for it, and a clean
//! exit on SIGTERM.

mod support;

use std::path::{Path, PathBuf};

use support::{body, burrow, command, http, start, stderr, stdout, text, write};

fn hello() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello")
}

#[test]
fn dev_serves_the_hello_example_and_exits_cleanly_on_sigterm() {
    let state = tempfile::tempdir().expect("tempdir");
    let port = support::free_port();
    let port_text = port.to_string();
    let mut command = command(&[
        "dev",
        text(&hello()),
        "--port",
        &port_text,
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(state.path()),
    ]);
    let server = start(&mut command);
    assert_eq!(server.ingress.to_string(), format!("127.0.0.1:{port}"));

    // Several requests, one of them with a body: the Worker greets every one.
    for path in ["/", "/anything?x=1"] {
        let (status, response) = http(server.ingress, "GET", path, &[]);
        assert_eq!(status, 200, "{response}");
        assert_eq!(body(&response), "Hello from Burrow");
    }
    let (status, _) = http(server.ingress, "POST", "/", &[("content-length", "0")]);
    assert_eq!(status, 200);

    let (status, response) = http(server.admin, "GET", "/healthz", &[]);
    assert_eq!(status, 200, "{response}");
    let health: serde_json::Value = serde_json::from_str(body(&response)).expect("JSON");
    assert_eq!(health["success"], true);

    let (status, response) = http(
        server.admin,
        "GET",
        "/client/v4/accounts/any-account/workers/scripts",
        &[],
    );
    assert_eq!(status, 200, "{response}");
    let scripts: serde_json::Value = serde_json::from_str(body(&response)).expect("JSON");
    assert_eq!(scripts["result"][0]["id"], "hello");
    assert_eq!(scripts["result"][0]["compatibility_date"], "2025-04-01");

    let (status, response) = http(server.admin, "GET", "/client/v4/accounts/a/nothing", &[]);
    assert_eq!(status, 404, "{response}");
    assert!(body(&response).contains("\"code\":7003"), "{response}");

    // The CLI's client: a table, and the envelope with --json.
    let admin_url = format!("http://{}", server.admin);
    let output = burrow(&["workers", "list", "--admin", &admin_url]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    let mut lines = table.lines();
    assert!(lines.next().expect("header").starts_with("NAME"), "{table}");
    assert!(lines.next().expect("row").starts_with("hello "), "{table}");
    let output = burrow(&["workers", "list", "--json", "--admin", &admin_url]);
    assert!(output.status.success(), "{}", stderr(&output));
    let envelope: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(envelope["result"][0]["id"], "hello");

    let (status, log) = server.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    // Nothing listens afterwards.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_configured_token_guards_the_admin_api_but_not_the_health_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "loopback-token-0123456789";
    let config = write(
        dir.path(),
        "wrangler.toml",
        &format!("name = \"guarded\"\n[burrow]\napi_tokens = [\"{token}\"]\n"),
    );
    let mut command = command(&[
        "serve",
        "-c",
        text(&config),
        "--port",
        "0",
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(&dir.path().join("data")),
    ]);
    let server = start(&mut command);
    let scripts = "/client/v4/accounts/a/workers/scripts";

    let (status, response) = http(server.admin, "GET", scripts, &[]);
    assert_eq!(status, 401, "{response}");
    let error: serde_json::Value = serde_json::from_str(body(&response)).expect("JSON");
    assert_eq!(
        error["errors"],
        serde_json::json!([{"code": 10000, "message": "Authentication error"}])
    );
    let (status, _) = http(
        server.admin,
        "GET",
        scripts,
        &[("authorization", "Bearer wrong-token-0123456789")],
    );
    assert_eq!(status, 401);
    let bearer = format!("Bearer {token}");
    let (status, response) = http(server.admin, "GET", scripts, &[("authorization", &bearer)]);
    assert_eq!(status, 200, "{response}");
    let (status, _) = http(server.admin, "GET", "/healthz", &[]);
    assert_eq!(status, 200);

    let admin_url = format!("http://{}", server.admin);
    let output = burrow(&["workers", "list", "--admin", &admin_url]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("401 Unauthorized: Authentication error [code: 10000]"),
        "{}",
        stderr(&output)
    );
    let output = burrow(&["workers", "list", "--admin", &admin_url, "--token", token]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("guarded"), "{}", stdout(&output));
    // The server's own environment variable works for the client too.
    let output = support::command(&["workers", "list", "--admin", &admin_url])
        .env("BURROW_API_TOKEN", token)
        .output()
        .expect("burrow runs");
    assert!(output.status.success(), "{}", stderr(&output));

    let (status, log) = server.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn the_client_says_when_no_server_answers() {
    let admin_url = format!("http://127.0.0.1:{}", support::free_port());
    let output = burrow(&["workers", "list", "--admin", &admin_url]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(&format!("cannot reach the Burrow admin API at {admin_url}")),
        "{message}"
    );
    let output = burrow(&["workers", "list", "--admin", "ftp://x"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("only http:// is supported"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_busy_port_fails_with_a_clear_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    let state = tempfile::tempdir().expect("tempdir");
    let output = burrow(&[
        "dev",
        text(&hello()),
        "--port",
        &port,
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(state.path()),
    ]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains(&format!("cannot listen on 127.0.0.1:{port} for the Worker")),
        "{message}"
    );
}
