//! Differential test of JavaScript Durable Objects: `tests/js-objects-corpus/storage.js` runs
//! under `burrow dev` and under workerd (the binary wrangler brings, installed into `.cache/npm`
//! by `scripts/install-clients`; SQLite-backed objects on local disk), and every scenario (IDs,
//! KV, structured-clone values, SQL, transactions, alarms, deleteAll, errors over RPC) must
//! answer the same status and body. Without workerd the test prints a loud SKIPPED line, except
//! under CI, where it fails.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{STEP, command, start, text, write};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// workerd from `.cache/npm`, or `None` after a loud note (a failure under CI).
fn workerd() -> Option<PathBuf> {
    let modules = repository().join(".cache/npm/node_modules");
    let found = [
        modules.join("@cloudflare/workerd-linux-64/bin/workerd"),
        modules.join("@cloudflare/workerd-linux-arm64/bin/workerd"),
        modules.join("workerd/bin/workerd"),
    ]
    .into_iter()
    .find(|path| path.is_file());
    if found.is_none() {
        let hint = "run `scripts/install-clients` (as .ci/run does) to install it into .cache/";
        if std::env::var_os("CI").is_some() {
            panic!("workerd is not installed, and CI is set: {hint}");
        }
        eprintln!("\n!!!!! SKIPPED: workerd is not installed; {hint} !!!!!\n");
    }
    found
}

/// `GET path` on a fresh connection: the status and the body.
fn ask(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    let request = format!("GET {path} HTTP/1.1\r\nhost: corpus.test\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

/// The payload of a chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// workerd serving the corpus worker with its `Lab` class on local disk; killed on drop.
struct Workerd {
    child: Child,
    address: SocketAddr,
}

impl Drop for Workerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_workerd(binary: &Path, worker: &Path, scratch: &Path) -> Workerd {
    std::fs::copy(worker, scratch.join("worker.js")).expect("copy the worker");
    let storage = scratch.join("storage");
    std::fs::create_dir_all(&storage).expect("storage dir");
    let config = write(
        scratch,
        "config.capnp",
        "using Workerd = import \"/workerd/workerd.capnp\";\n\
         const config :Workerd.Config = (\n\
           services = [\n\
             (name = \"main\", worker = .w),\n\
             (name = \"storage\", disk = (path = \"/nonexistent\", writable = true)),\n\
           ],\n\
           sockets = [(name = \"http\", address = \"127.0.0.1:0\", http = (), service = \"main\")],\n\
         );\n\
         const w :Workerd.Worker = (\n\
           compatibilityDate = \"2025-04-01\",\n\
           modules = [(name = \"worker.js\", esModule = embed \"worker.js\")],\n\
           durableObjectNamespaces = [(className = \"Lab\", uniqueKey = \"lab\", enableSql = true)],\n\
           durableObjectStorage = (localDisk = \"storage\"),\n\
           bindings = [(name = \"LAB\", durableObjectNamespace = \"Lab\")],\n\
         );\n",
    );
    let port = support::free_port();
    let child = Command::new(binary)
        .arg("serve")
        .arg(&config)
        .arg(format!("--socket-addr=http=127.0.0.1:{port}"))
        .arg(format!("--directory-path=storage={}", storage.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("workerd starts");
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + STEP;
    while TcpStream::connect(address).is_err() {
        assert!(
            Instant::now() < deadline,
            "workerd did not listen on {address}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Workerd { child, address }
}

/// Polls the alarm scenario's state until the alarm ran and is gone.
fn alarm_settled(address: SocketAddr) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = ask(address, "/alarmState/alarm");
        let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if status == 200
            && value["alarm"].is_null()
            && value["runs"]
                .as_array()
                .is_some_and(|runs| !runs.is_empty())
        {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "the alarm never ran: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn durable_object_storage_answers_alike_under_burrow_and_workerd() {
    let Some(binary) = workerd() else { return };
    let worker = repository().join("tests/js-objects-corpus/storage.js");
    let scratch = tempfile::tempdir().expect("tempdir");
    let project = scratch.path().join("burrow");
    std::fs::create_dir_all(&project).expect("project dir");
    std::fs::copy(&worker, project.join("worker.js")).expect("copy");
    write(
        &project,
        "wrangler.toml",
        "name = \"objects-corpus\"\nmain = \"worker.js\"\ncompatibility_date = \"2025-04-01\"\n\
         [[durable_objects.bindings]]\nname = \"LAB\"\nclass_name = \"Lab\"\n\
         [[migrations]]\ntag = \"v1\"\nnew_sqlite_classes = [\"Lab\"]\n",
    );
    let server = start(&mut command(&[
        "dev",
        text(&project),
        "--port",
        "0",
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(&scratch.path().join("state")),
    ]));
    let reference_dir = scratch.path().join("workerd");
    std::fs::create_dir_all(&reference_dir).expect("workerd dir");
    let reference = start_workerd(&binary, &worker, &reference_dir);

    let scenarios = [
        "/ids",
        "/kv",
        "/values",
        "/sql",
        "/transactions",
        "/wipe",
        "/thrower",
        "/armAlarm/alarm",
    ];
    let mut differences = Vec::new();
    for path in scenarios {
        let burrow = ask(server.ingress, path);
        let expected = ask(reference.address, path);
        if burrow != expected {
            differences.push(format!(
                "{path}:\n  burrow:  {burrow:?}\n  workerd: {expected:?}"
            ));
        }
    }
    let burrow = alarm_settled(server.ingress);
    let expected = alarm_settled(reference.address);
    if burrow != expected {
        differences.push(format!(
            "alarm run:\n  burrow:  {burrow:?}\n  workerd: {expected:?}"
        ));
    }
    drop(reference);
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(
        differences.is_empty(),
        "{} of {} scenarios differ:\n{}",
        differences.len(),
        scenarios.len() + 1,
        differences.join("\n")
    );
}
