//! Helpers for driving the example apps as real processes: find the example's executable, start
//! it on a free port with a temporary data directory, wait until it listens, talk HTTP to it, and
//! stop it with SIGTERM.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous bound for a step that should take milliseconds: it turns a hang into a failure and
/// is not a timing assertion.
pub(crate) const STEP: Duration = Duration::from_secs(30);

/// The executable of example `name`, which `cargo test` builds next to the test binaries.
pub(crate) fn example(name: &str) -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test's path");
    // target/<profile>/deps/<test> → target/<profile>/examples/<name>
    let profile_dir = test_binary
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the examples first (cargo build -p burrow-sdk --examples)",
        path.display()
    );
    path
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// A running example.
pub(crate) struct App {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Everything it logged so far.
    pub(crate) log: String,
    /// The Worker ingress.
    pub(crate) address: SocketAddr,
}

/// The example's command: `--port PORT --persist-to DATA`, plus `extra`.
pub(crate) fn command(name: &str, port: u16, data: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(example(name));
    command
        .arg("--port")
        .arg(port.to_string())
        .arg("--persist-to")
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "info")
        .env_remove("BURROW_API_TOKEN");
    command
}

/// Starts `command` and waits until its ingress listens. Panics with the log if it exits first.
pub(crate) fn start(command: &mut Command) -> App {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the example starts");
    let stderr = child.stderr.take().expect("stderr");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut app = App {
        child,
        lines,
        log: String::new(),
        address: SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    let line = app.wait_for("Worker ingress listening");
    let start = line.find("http://").expect("url in the line") + "http://".len();
    let rest = &line[start..];
    let end = rest
        .find(|character: char| character.is_whitespace() || character == '"')
        .unwrap_or(rest.len());
    app.address = rest[..end].parse().expect("address");
    app
}

/// Runs `command` to completion and returns its exit status and stderr.
pub(crate) fn run_to_end(command: &mut Command) -> (ExitStatus, String) {
    let output = command.output().expect("the example runs");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl App {
    /// Waits for a log line containing `needle` and returns it.
    pub(crate) fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push_str(&line);
                    self.log.push('\n');
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no log line with {needle:?}; log so far:\n{}", self.log);
                }
            }
        }
    }

    /// One request; returns the status and the body.
    pub(crate) fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        request(self.address, method, path, body)
    }

    /// Sends SIGTERM and waits for the exit; returns the status and the whole log.
    pub(crate) fn terminate(mut self) -> (ExitStatus, String) {
        // The shell's built-in `kill`: present wherever `sh` is.
        let status = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status()
            .expect("sh runs");
        assert!(status.success());
        let deadline = Instant::now() + STEP;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the example did not exit after SIGTERM; log:\n{}", self.log);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(STEP) {
            self.log.push_str(&line);
            self.log.push('\n');
        }
        (status, std::mem::take(&mut self.log))
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // A failed test must not leave a server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; returns the status and the body.
pub(crate) fn request(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    (status, body)
}
