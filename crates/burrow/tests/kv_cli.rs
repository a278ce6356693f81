//! `burrow kv` against a running `burrow dev`: namespaces list, key put/get/list/delete by id and
//! by binding, metadata and TTL, Cloudflare's messages for rejected writes.

mod support;

use support::{burrow, command, start, stderr, stdout, text, write};

const CONFIG: &str = r#"
name = "shop"
main = "index.js"
compatibility_date = "2025-01-01"
kv_namespaces = [
  { binding = "SESSIONS", id = "sessions-id" },
  { binding = "FLAGS" },
]
"#;

#[test]
fn kv_verbs_reach_the_namespaces_through_the_admin_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "wrangler.toml", CONFIG);
    write(
        dir.path(),
        "index.js",
        "export default { fetch() { return new Response('x') } }\n",
    );
    let server = start(&mut command(&[
        "dev",
        text(dir.path()),
        "--port",
        "0",
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(&dir.path().join("data")),
    ]));
    let admin = format!("http://{}", server.admin);
    let kv = |args: &[&str]| {
        let mut all = vec!["kv"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--admin", &admin]);
        burrow(&all)
    };

    let output = kv(&["namespace", "list"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let listed = stdout(&output);
    assert!(
        listed.contains("sessions-id") && listed.contains("shop-SESSIONS"),
        "{listed}"
    );
    assert!(
        listed.contains("FLAGS") && listed.contains("shop-FLAGS"),
        "{listed}"
    );

    let output = kv(&[
        "key",
        "put",
        "user:1",
        "token-1",
        "--namespace-id",
        "sessions-id",
        "--ttl",
        "3600",
        "--metadata",
        r#"{"role":"admin"}"#,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let value_file = write(dir.path(), "value.bin", "from a file");
    let output = kv(&[
        "key",
        "put",
        "user:2",
        "--binding",
        "SESSIONS",
        "--path",
        text(&value_file),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));

    let output = kv(&["key", "get", "user:1", "--binding", "SESSIONS"]);
    assert_eq!(stdout(&output), "token-1");
    let output = kv(&["key", "get", "user:2", "--namespace-id", "sessions-id"]);
    assert_eq!(stdout(&output), "from a file");
    let output = kv(&["key", "get", "nobody", "--namespace-id", "sessions-id"]);
    assert!(output.status.success());
    assert_eq!(stdout(&output).trim(), "Value not found");

    // --json for scripts: put and delete print the server's envelope, get the value.
    let json = |args: &[&str]| -> serde_json::Value {
        let output = kv(args);
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_str(&stdout(&output)).expect("JSON")
    };
    let put = json(&[
        "key",
        "put",
        "json:1",
        "v",
        "--binding",
        "SESSIONS",
        "--json",
    ]);
    assert_eq!(put["success"], true, "{put}");
    let got = json(&["key", "get", "json:1", "--binding", "SESSIONS", "--json"]);
    assert_eq!(
        got,
        serde_json::json!({"key": "json:1", "found": true, "value": "v"})
    );
    let deleted = json(&["key", "delete", "json:1", "--binding", "SESSIONS", "--json"]);
    assert_eq!(deleted["success"], true, "{deleted}");
    let got = json(&["key", "get", "json:1", "--binding", "SESSIONS", "--json"]);
    assert_eq!(got, serde_json::json!({"key": "json:1", "found": false}));

    let output = kv(&["key", "list", "--binding", "SESSIONS", "--prefix", "user:"]);
    let keys: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(keys.as_array().map(Vec::len), Some(2), "{keys}");
    assert_eq!(keys[0]["name"], "user:1");
    assert_eq!(keys[0]["metadata"]["role"], "admin");
    assert!(keys[0]["expiration"].is_i64());
    assert_eq!(keys[1]["name"], "user:2");

    // Rejections carry Cloudflare's message; nothing is stored.
    let output = kv(&[
        "key",
        "put",
        "short",
        "v",
        "--namespace-id",
        "sessions-id",
        "--ttl",
        "5",
    ]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(
            "KV PUT failed: 400 Invalid expiration_ttl of 5. Expiration TTL must be at least 60."
        ),
        "{}",
        stderr(&output)
    );
    let long_key = "k".repeat(513);
    let output = kv(&[
        "key",
        "put",
        &long_key,
        "v",
        "--namespace-id",
        "sessions-id",
    ]);
    assert!(
        stderr(&output)
            .contains("414 UTF-8 encoded length of 513 exceeds key length limit of 512."),
        "{}",
        stderr(&output)
    );
    let output = kv(&["key", "get", "x", "--namespace-id", "nope"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("namespace not found"),
        "{}",
        stderr(&output)
    );
    let output = kv(&["key", "get", "x", "--binding", "NOPE"]);
    assert!(stderr(&output).contains("no KV namespace is bound as \"NOPE\""));

    let output = kv(&["key", "delete", "user:1", "--namespace-id", "sessions-id"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = kv(&["key", "list", "--namespace-id", "sessions-id"]);
    let keys: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");

    // A binding without an id is its own namespace, separate from the others.
    let output = kv(&["key", "list", "--binding", "FLAGS"]);
    assert_eq!(stdout(&output).trim(), "[]");

    // Namespaces made and removed from the CLI; bulk writes and deletes in batches, with progress.
    let output = kv(&["namespace", "create", "bulk-target", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let created: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    let made = created["result"]["id"].as_str().expect("id").to_owned();
    let pairs: Vec<serde_json::Value> = (0..2_500)
        .map(|n| serde_json::json!({"key": format!("k{n:05}"), "value": format!("v{n}")}))
        .collect();
    let pairs_file = write(
        dir.path(),
        "pairs.json",
        &serde_json::to_string(&pairs).expect("JSON"),
    );
    let output = kv(&["bulk", "put", text(&pairs_file), "--namespace-id", &made]);
    assert!(output.status.success(), "{}", stderr(&output));
    let progress = stderr(&output);
    assert!(
        progress.contains("Uploaded 40% (1000 out of 2500)")
            && progress.contains("Uploaded 100% (2500 out of 2500)")
            && progress.contains("Success: uploaded 2500 keys."),
        "{progress}"
    );
    let output = kv(&["key", "get", "k02499", "--namespace-id", &made]);
    assert_eq!(stdout(&output), "v2499");
    let keys: Vec<String> = (0..2_000).map(|n| format!("k{n:05}")).collect();
    let keys_file = write(
        dir.path(),
        "keys.json",
        &serde_json::to_string(&keys).expect("JSON"),
    );
    let output = kv(&["bulk", "delete", text(&keys_file), "--namespace-id", &made]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Success: deleted 2000 keys."),
        "{}",
        stderr(&output)
    );
    let output = kv(&["key", "list", "--namespace-id", &made]);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(500),
        "500 keys are left"
    );
    let bad_file = write(dir.path(), "bad.json", r#"[{"key": "x"}]"#);
    let output = kv(&["bulk", "put", text(&bad_file), "--namespace-id", &made]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("[0]: missing field `value`"),
        "{}",
        stderr(&output)
    );
    let output = kv(&["namespace", "delete", "--namespace-id", &made]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = kv(&["namespace", "list", "--json"]);
    assert!(!stdout(&output).contains(&made), "{}", stdout(&output));
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
