//! `burrow queues` against a running `burrow dev`: the configured queues exist, and list, create,
//! send, stats, pull, ack (with a retry), purge and delete go through the admin API's v4 endpoints.

mod support;

use serde_json::Value;
use support::{burrow, command, start, stderr, stdout, text, write};

const CONFIG: &str = r#"
name = "shop"
main = "index.js"
compatibility_date = "2025-01-01"

[[queues.producers]]
binding = "JOBS"
queue = "jobs"

[[queues.consumers]]
queue = "jobs"
type = "http_pull"
dead_letter_queue = "jobs-dlq"
"#;

#[test]
fn queue_verbs_reach_the_queues_through_the_admin_api() {
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
    let queues = |args: &[&str]| {
        let mut all = vec!["queues"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--admin", &admin]);
        burrow(&all)
    };
    let ok = |output: std::process::Output| {
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };

    let listed = ok(queues(&["list"]));
    assert!(
        listed.contains("jobs") && listed.contains("jobs-dlq"),
        "configured queues and the dead-letter queue exist: {listed}"
    );
    let created = ok(queues(&["create", "extra", "--delivery-delay-secs", "5"]));
    assert!(created.contains("Created queue extra"), "{created}");
    assert!(ok(queues(&["list"])).contains("extra"));

    ok(queues(&["send", "jobs", "hello"]));
    ok(queues(&[
        "send",
        "jobs",
        r#"{"a":1}"#,
        "--content-type",
        "json",
    ]));
    let stats = ok(queues(&["stats", "jobs", "--json"]));
    let stats: Value = serde_json::from_str(&stats).expect("JSON");
    assert_eq!(stats["result"]["backlog_count"], 2, "{stats}");

    let pulled = ok(queues(&["pull", "jobs", "--batch-size", "10"]));
    let pulled: Value = serde_json::from_str(&pulled).expect("JSON");
    assert_eq!(pulled["message_backlog_count"], 2, "{pulled}");
    let messages = pulled["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2);
    let text_message = messages
        .iter()
        .find(|m| m["metadata"]["CF-Content-Type"] == "text")
        .expect("the text message");
    assert_eq!(text_message["body"], "hello");
    assert_eq!(text_message["attempts"], 1);
    let json_message = messages
        .iter()
        .find(|m| m["metadata"]["CF-Content-Type"] == "json")
        .expect("the json message");
    assert_eq!(
        json_message["body"], "eyJhIjoxfQ==",
        "json bodies come in base64"
    );

    let acked = ok(queues(&[
        "ack",
        "jobs",
        text_message["lease_id"].as_str().unwrap(),
        "--retry",
        json_message["lease_id"].as_str().unwrap(),
    ]));
    assert!(acked.contains("Acknowledged 1, retried 1."), "{acked}");
    let stats: Value = serde_json::from_str(&ok(queues(&["stats", "jobs", "--json"]))).unwrap();
    assert_eq!(
        (
            &stats["result"]["backlog_count"],
            &stats["result"]["acked"],
            &stats["result"]["retried"]
        ),
        (&Value::from(1), &Value::from(1), &Value::from(1)),
        "{stats}"
    );
    let table = ok(queues(&["stats", "jobs"]));
    assert!(
        table.contains("backlog") && table.contains("retried"),
        "{table}"
    );

    let missing = queues(&["send", "nowhere", "x"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("10104"),
        "Cloudflare's QueueNotFound code: {}",
        stderr(&missing)
    );

    ok(queues(&["purge", "jobs"]));
    let stats: Value = serde_json::from_str(&ok(queues(&["stats", "jobs", "--json"]))).unwrap();
    assert_eq!(stats["result"]["backlog_count"], 0, "{stats}");

    ok(queues(&["create", "scratch"]));
    assert!(ok(queues(&["delete", "scratch"])).contains("Deleted scratch."));
    assert!(!ok(queues(&["list"])).contains("scratch"));
    let refused = queues(&["delete", "jobs-dlq"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("dead_letter_queue"),
        "{}",
        stderr(&refused)
    );
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
}
