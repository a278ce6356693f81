//! Differential tests: every Worker in `tests/js-corpus/` runs under `burrow dev` and under
//! workerd (the binary that wrangler brings, installed into `.cache/npm` by
//! `scripts/install-clients`, which `.ci/run` calls), gets the same request, and must answer with
//! the same status, `content-type` and `x-*` headers, and body. Without workerd the test prints a
//! loud SKIPPED line, except under CI, where it fails.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{STEP, command, start, text, write};

/// The request every corpus Worker gets.
const BODY: &str = r#"{"hello": "world", "n": [1, 2, 3]}"#;

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

/// The parts of a response that must match.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// Sends the corpus request to `address` and keeps what is compared.
fn ask(address: SocketAddr) -> Answer {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    let request = format!(
        "POST /path/to?x=1&y=two HTTP/1.1\r\nhost: corpus.test\r\nconnection: close\r\n\
         x-test: yes\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let mut headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .filter(|(name, _)| name == "content-type" || name == "location" || name.starts_with("x-"))
        .collect();
    headers.sort();
    Answer {
        status,
        headers,
        body: if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    }
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

/// workerd serving `worker` on a free port; killed on drop.
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
    let config = write(
        scratch,
        "config.capnp",
        "using Workerd = import \"/workerd/workerd.capnp\";\n\
         const config :Workerd.Config = (\n\
           services = [(name = \"main\", worker = .w)],\n\
           sockets = [(name = \"http\", address = \"127.0.0.1:0\", http = (), service = \"main\")],\n\
         );\n\
         const w :Workerd.Worker = (\n\
           compatibilityDate = \"2025-04-01\",\n\
           modules = [(name = \"worker.js\", esModule = embed \"worker.js\")],\n\
         );\n",
    );
    let port = support::free_port();
    let child = Command::new(binary)
        .arg("serve")
        .arg(&config)
        .arg(format!("--socket-addr=http=127.0.0.1:{port}"))
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

#[test]
fn the_corpus_answers_alike_under_burrow_and_workerd() {
    let Some(binary) = workerd() else { return };
    let corpus = repository().join("tests/js-corpus");
    let mut workers: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("the corpus directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "js"))
        .collect();
    workers.sort();
    assert!(workers.len() >= 5, "the corpus is in {}", corpus.display());
    let mut differences = Vec::new();
    for worker in &workers {
        let name = worker.file_stem().and_then(|s| s.to_str()).expect("name");
        let scratch = tempfile::tempdir().expect("tempdir");
        let project = scratch.path().join("burrow");
        std::fs::create_dir_all(&project).expect("project dir");
        std::fs::copy(worker, project.join("worker.js")).expect("copy");
        write(
            &project,
            "wrangler.toml",
            &format!(
                "name = \"corpus-{}\"\nmain = \"worker.js\"\ncompatibility_date = \"2025-04-01\"\n",
                name.replace('_', "-")
            ),
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
        let burrow = ask(server.ingress);
        let (status, log) = server.terminate();
        assert!(status.success(), "{log}");

        let reference_dir = scratch.path().join("workerd");
        std::fs::create_dir_all(&reference_dir).expect("workerd dir");
        let reference = start_workerd(&binary, worker, &reference_dir);
        let expected = ask(reference.address);
        drop(reference);
        if burrow != expected {
            differences.push(format!(
                "{name}:\n  burrow:  {burrow:?}\n  workerd: {expected:?}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} corpus Workers differ:\n{}",
        differences.len(),
        workers.len(),
        differences.join("\n")
    );
}
