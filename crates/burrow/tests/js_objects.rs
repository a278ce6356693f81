//! JavaScript Durable Objects under the real binary: the examples (`js_counter`,
//! `js_task_queue`) driven over HTTP, the storage API (KV, SQL, transactions, alarms) from a
//! project written here, and what survives a restart.

mod support;

use std::path::{Path, PathBuf};

use support::{Server, body, command, http, send, start, text};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// Starts `burrow dev` on a project directory with its state in `state`.
fn dev(project: &Path, state: &Path) -> Server {
    start(&mut command(&[
        "dev",
        text(project),
        "--port",
        "0",
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(state),
    ]))
}

fn get(server: &Server, path: &str) -> (u16, String) {
    let (status, response) = http(server.ingress, "GET", path, &[]);
    (status, body(&response).to_owned())
}

fn post(server: &Server, path: &str) -> (u16, String) {
    send(server.ingress, "POST", path, &[], b"")
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("not JSON ({error}): {text:?}"))
}

#[test]
fn the_counter_example_counts_over_rpc_rethrows_errors_and_survives_a_restart() {
    let state = tempfile::tempdir().expect("tempdir");
    let project = example("js_counter");
    let server = dev(&project, state.path());
    assert_eq!(
        post(&server, "/counter/a/increment"),
        (200, r#"{"name":"a","count":1}"#.to_owned())
    );
    assert_eq!(
        post(&server, "/counter/a/increment?by=5"),
        (200, r#"{"name":"a","count":6}"#.to_owned())
    );
    assert_eq!(
        post(&server, "/counter/b/increment"),
        (200, r#"{"name":"b","count":1}"#.to_owned())
    );
    let (status, state_a) = get(&server, "/counter/a");
    assert_eq!(status, 200, "{state_a}");
    let state_a = json(&state_a);
    assert_eq!(state_a["count"], 6);
    assert_eq!(state_a["loads"], 1, "blockConcurrencyWhile ran once");
    assert_eq!(
        state_a["idMatches"], true,
        "ctx.id is the id the Worker made"
    );
    // An error thrown in the object comes back to the caller with its class and message.
    let (status, failure) = get(&server, "/counter/a/fail");
    assert_eq!(status, 200, "{failure}");
    assert_eq!(
        json(&failure),
        serde_json::json!({"name": "RangeError", "message": "counter says no", "remote": true})
    );
    // fetch() on the stub reaches the object's own fetch handler.
    let (status, raw) = get(&server, "/counter/a/raw");
    assert_eq!(status, 200, "{raw}");
    assert_eq!(
        json(&raw),
        serde_json::json!({"path": "/counter/a/raw", "count": 6})
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");

    // After a restart the constructor runs again and loads the persisted count.
    let server = dev(&project, state.path());
    let after = json(&get(&server, "/counter/a").1);
    assert_eq!(after["count"], 6);
    assert_eq!(after["loads"], 1);
    assert_eq!(
        post(&server, "/counter/a/increment"),
        (200, r#"{"name":"a","count":7}"#.to_owned())
    );
    // deleteAll through the object's fetch.
    let (status, _) = http(server.ingress, "DELETE", "/counter/b", &[]);
    assert_eq!(status, 204);
    assert_eq!(json(&get(&server, "/counter/b").1)["count"], 0);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
