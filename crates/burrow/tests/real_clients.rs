//! Cloudflare's own clients against Burrow's admin API, unchanged: wrangler (npm) with
//! `CLOUDFLARE_API_BASE_URL` pointing at a `burrow serve` process, and the official Python SDK
//! (`cloudflare` on PyPI) with `base_url=`. `.ci/run` installs both into `.cache/` (see
//! `scripts/install-clients`). Without them a test prints a loud SKIPPED line, except under CI
//! (`CI` set), where a missing client is a failure.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use burrow_sdk::workflow::{WaitOptions, WorkflowEntrypoint};
use burrow_sdk::{App, Env, WorkflowError, WorkflowEvent, WorkflowStep};
use serde_json::{Value, json};
use support::{app_options, command, start, stderr, stdout, text, write};

const TOKEN: &str = "real-clients-token";
const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

const CONFIG: &str = r#"
name = "shop"
main = "index.js"
compatibility_date = "2025-01-01"
kv_namespaces = [ { binding = "SESSIONS", id = "sessions-id" } ]

[[queues.producers]]
binding = "JOBS"
queue = "jobs"

[[queues.consumers]]
queue = "jobs"
type = "http_pull"
"#;

/// The folder `.ci/run` installs the clients into.
fn cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache")
}

/// `found`, or `None` after a loud note; under CI a missing client fails the test.
fn require(what: &str, found: Option<PathBuf>) -> Option<PathBuf> {
    if found.is_some() {
        return found;
    }
    let hint = "run `scripts/install-clients` (as .ci/run does) to install it into .cache/";
    if std::env::var_os("CI").is_some() {
        panic!("{what} is not installed, and CI is set: {hint}");
    }
    eprintln!("\n!!!!! SKIPPED: {what} is not installed; {hint} !!!!!\n");
    None
}

fn wrangler() -> Option<PathBuf> {
    let path = cache().join("npm/node_modules/wrangler/bin/wrangler.js");
    require("wrangler (npm)", path.is_file().then_some(path))
}

fn python() -> Option<PathBuf> {
    let path = cache().join("venv/bin/python");
    let usable = path.is_file()
        && Command::new(&path)
            .args(["-c", "import cloudflare"])
            .output()
            .is_ok_and(|output| output.status.success());
    require("the cloudflare Python SDK (PyPI)", usable.then_some(path))
}

/// Runs wrangler against the admin API at `admin`, in `dir` (no wrangler.toml there), with its
/// home and config under `dir` so nothing from the machine's own login leaks in.
fn run_wrangler(wrangler: &Path, dir: &Path, admin: std::net::SocketAddr, args: &[&str]) -> Output {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("home");
    Command::new("node")
        .arg(wrangler)
        .args(args)
        .current_dir(dir)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env(
            "CLOUDFLARE_API_BASE_URL",
            format!("http://{admin}/client/v4"),
        )
        .env("CLOUDFLARE_API_TOKEN", TOKEN)
        .env("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
        .env("WRANGLER_SEND_METRICS", "false")
        .env("NO_COLOR", "1")
        .env_remove("CLOUDFLARE_API_KEY")
        .env_remove("CLOUDFLARE_EMAIL")
        .output()
        .expect("node runs wrangler")
}

fn ok(what: &str, output: Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

fn serve(dir: &Path) -> support::Server {
    let config = write(dir, "wrangler.toml", CONFIG);
    write(
        dir,
        "index.js",
        "export default { fetch() { return new Response('x') } }\n",
    );
    start(
        command(&[
            "serve",
            "-c",
            text(&config),
            "--port",
            "0",
            "--admin-address",
            "127.0.0.1:0",
            "--persist-to",
            text(&dir.join("data")),
        ])
        .env("BURROW_API_TOKEN", TOKEN),
    )
}

#[test]
fn wrangler_manages_kv_and_queues() {
    let Some(wrangler) = wrangler() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(dir.path());
    // Apart from the server's directory: wrangler reads any wrangler.toml above it.
    let client = tempfile::tempdir().expect("tempdir");
    let work = client.path().to_owned();
    let run = |args: &[&str]| {
        let output = run_wrangler(&wrangler, &work, server.admin, args);
        ok(&format!("wrangler {}", args.join(" ")), output)
    };

    let listed = run(&["kv", "namespace", "list"]);
    let namespaces: Value = serde_json::from_str(listed.trim()).expect("JSON list");
    assert_eq!(namespaces[0]["id"], "sessions-id", "{listed}");
    assert_eq!(namespaces[0]["title"], "shop-SESSIONS", "{listed}");

    fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--namespace-id", "sessions-id", "--remote"]);
        all
    }
    run(&with(&[
        "kv",
        "key",
        "put",
        "greeting",
        "hello from wrangler",
    ]));
    run(&with(&[
        "kv",
        "key",
        "put",
        "tagged",
        "with metadata",
        "--metadata",
        r#"{"owner":"ops"}"#,
        "--ttl",
        "3600",
    ]));
    let value = run(&with(&["kv", "key", "get", "greeting", "--text"]));
    assert_eq!(value.trim(), "hello from wrangler");
    let keys: Value =
        serde_json::from_str(run(&with(&["kv", "key", "list"])).trim()).expect("JSON keys");
    let names: Vec<&str> = keys
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|key| key["name"].as_str())
        .collect();
    assert_eq!(names, ["greeting", "tagged"], "{keys}");
    assert_eq!(keys[1]["metadata"], json!({"owner": "ops"}), "{keys}");
    assert!(keys[1]["expiration"].is_i64(), "{keys}");
    run(&with(&["kv", "key", "delete", "greeting"]));
    let keys: Value =
        serde_json::from_str(run(&with(&["kv", "key", "list"])).trim()).expect("JSON keys");
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");
    // A missing key is Cloudflare's 404, which wrangler reports as a failure.
    let missing = run_wrangler(
        &wrangler,
        &work,
        server.admin,
        &with(&["kv", "key", "get", "greeting", "--text"]),
    );
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("404"), "{}", stderr(&missing));

    // Namespaces made and removed through wrangler.
    let created = run(&["kv", "namespace", "create", "made-by-wrangler"]);
    assert!(created.contains("made-by-wrangler"), "{created}");
    let listed: Value =
        serde_json::from_str(run(&["kv", "namespace", "list"]).trim()).expect("JSON");
    let made = listed
        .as_array()
        .expect("array")
        .iter()
        .find(|namespace| namespace["title"] == "made-by-wrangler")
        .unwrap_or_else(|| panic!("created namespace is listed: {listed}"))["id"]
        .as_str()
        .expect("id")
        .to_owned();
    run(&[
        "kv",
        "namespace",
        "delete",
        "--namespace-id",
        &made,
        "--skip-confirmation",
    ]);
    let listed = run(&["kv", "namespace", "list"]);
    assert!(!listed.contains(&made), "{listed}");

    let queues = run(&["queues", "list"]);
    assert!(queues.contains("jobs"), "{queues}");
    run(&["queues", "create", "made-by-wrangler"]);
    assert!(run(&["queues", "list"]).contains("made-by-wrangler"));
    run(&["queues", "delete", "made-by-wrangler"]);
    let queues = run(&["queues", "list"]);
    assert!(!queues.contains("made-by-wrangler"), "{queues}");
}

#[test]
fn the_python_sdk_uses_kv_and_pulls_queue_messages() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(dir.path());
    let script = r#"
import json, os, cloudflare
client = cloudflare.Cloudflare(api_token=os.environ["TOKEN"], base_url=os.environ["BASE_URL"])
account = os.environ["ACCOUNT"]
out = {}
out["namespaces"] = [[n.id, n.title] for n in client.kv.namespaces.list(account_id=account)]
client.kv.namespaces.values.update(
    "user:1", account_id=account, namespace_id="sessions-id", value=b"token-1",
    metadata='{"role": "admin"}')
out["value"] = client.kv.namespaces.values.get(
    "user:1", account_id=account, namespace_id="sessions-id").text()
out["metadata"] = client.kv.namespaces.metadata.get(
    "user:1", account_id=account, namespace_id="sessions-id")
queues = list(client.queues.list(account_id=account))
queue = next(q for q in queues if q.queue_name == "jobs").queue_id
for n in range(3):
    client.queues.messages.push(queue, account_id=account, body={"n": n})
pulled = client.queues.messages.pull(
    queue, account_id=account, batch_size=10, visibility_timeout_ms=60000)
messages = list(pulled.messages)
out["pulled"] = len(messages)
acked = client.queues.messages.ack(
    queue, account_id=account, acks=[{"lease_id": m.lease_id} for m in messages])
out["ack_count"] = acked.ack_count
again = client.queues.messages.pull(queue, account_id=account, batch_size=10)
out["after_ack"] = len(list(again.messages))
try:
    cloudflare.Cloudflare(api_token="wrong", base_url=os.environ["BASE_URL"]).kv.namespaces.list(
        account_id=account).next_page_info()
    out["wrong_token"] = "accepted"
except cloudflare.AuthenticationError as error:
    out["wrong_token"] = error.status_code
print(json.dumps(out))
"#;
    let output = Command::new(&python)
        .args(["-c", script])
        .env("TOKEN", TOKEN)
        .env("ACCOUNT", ACCOUNT)
        .env("BASE_URL", format!("http://{}/client/v4", server.admin))
        .output()
        .expect("python runs");
    let printed = ok("the Python SDK script", output);
    let result: Value = serde_json::from_str(printed.trim()).expect("JSON");
    assert_eq!(
        result["namespaces"],
        json!([["sessions-id", "shop-SESSIONS"]])
    );
    assert_eq!(result["value"], "token-1");
    assert_eq!(result["metadata"], json!({"role": "admin"}));
    assert_eq!(result["pulled"], 3, "{result}");
    assert_eq!(result["ack_count"].as_f64(), Some(3.0), "{result}");
    assert_eq!(result["after_ack"], 0, "{result}");
    assert_eq!(result["wrong_token"], 401, "{result}");
}

/// Greets, then waits for an `approval` event, then finishes.
struct Approval;

impl WorkflowEntrypoint for Approval {
    type Params = Value;
    type Output = Value;

    fn new(_env: Env) -> Self {
        Approval
    }

    async fn run(
        &self,
        event: WorkflowEvent<Value>,
        step: &WorkflowStep,
    ) -> Result<Value, WorkflowError> {
        let greeting: String = step
            .do_("greet", async |_| {
                Ok(format!(
                    "hello {}",
                    event.payload["name"].as_str().unwrap_or("?")
                ))
            })
            .await?;
        let approval = step
            .wait_for_event::<Value>("approval", WaitOptions::new("approval"))
            .await?;
        Ok(json!({"greeting": greeting, "approved_by": approval.payload["by"]}))
    }
}

const WORKFLOW_CONFIG: &str = r#"
name = "approvals"
compatibility_date = "2025-04-01"

[[workflows]]
binding = "APPROVAL"
name = "approval"
class_name = "Approval"
"#;

#[test]
fn wrangler_drives_workflow_instances() {
    let Some(wrangler) = wrangler() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let (loaded, options) = app_options(dir.path(), WORKFLOW_CONFIG, &[TOKEN]);
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = control
        .block_on(
            App::new()
                .workflow::<Approval>("APPROVAL")
                .start(&loaded, &options),
        )
        .expect("the app starts");
    let admin = server.admin_address();
    // Apart from the server's directory: wrangler reads any wrangler.toml above it.
    let client = tempfile::tempdir().expect("tempdir");
    let work = client.path().to_owned();
    let run = |args: &[&str]| {
        let output = run_wrangler(&wrangler, &work, admin, args);
        ok(&format!("wrangler {}", args.join(" ")), output)
    };
    let describe = |id: &str| run(&["workflows", "instances", "describe", "approval", id]);
    let wait_for = |id: &str, needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = describe(id);
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never showed {needle:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    let listed = run(&["workflows", "list"]);
    assert!(listed.contains("approval"), "{listed}");
    let triggered = run(&["workflows", "trigger", "approval", r#"{"name":"ada"}"#]);
    let id = triggered
        .split_whitespace()
        .find_map(|word| {
            let word = word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-');
            (word.len() >= 32 && word.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
                .then(|| word.to_owned())
        })
        .unwrap_or_else(|| panic!("an instance id in: {triggered}"));
    let instances = run(&["workflows", "instances", "list", "approval"]);
    assert!(instances.contains(&id), "{instances}");
    let details = wait_for(&id, "Waiting");
    assert!(details.contains("greet"), "{details}");

    run(&["workflows", "instances", "pause", "approval", &id]);
    wait_for(&id, "Paused");
    run(&["workflows", "instances", "resume", "approval", &id]);
    wait_for(&id, "Waiting");
    run(&[
        "workflows",
        "instances",
        "send-event",
        "approval",
        &id,
        "--type",
        "approval",
        "--payload",
        r#"{"by":"grace"}"#,
    ]);
    let done = wait_for(&id, "Completed");
    assert!(done.contains("grace"), "{done}");

    run(&["workflows", "instances", "restart", "approval", &id]);
    wait_for(&id, "Waiting");
    run(&["workflows", "instances", "terminate", "approval", &id]);
    wait_for(&id, "Terminated");

    control
        .block_on(server.shutdown(Duration::from_secs(5)))
        .expect("shutdown");
}
