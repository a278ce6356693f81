//! Helpers shared by the binary's integration tests: run `burrow` to completion, or start a
//! server, wait until it listens, talk to it over HTTP, and stop it with SIGTERM.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous bound for a step that should take milliseconds: it turns a hang into a failure and
/// is not a timing assertion.
pub(crate) const STEP: Duration = Duration::from_secs(30);

pub(crate) fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_burrow"));
    command
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("BURROW_API_TOKEN")
        .env_remove("BURROW_ADMIN_URL")
        .env_remove("CLOUDFLARE_ACCOUNT_ID");
    command
}

/// Runs `burrow` to completion.
pub(crate) fn burrow(args: &[&str]) -> Output {
    command(args).output().expect("burrow runs")
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create dir");
    }
    std::fs::write(&path, text).expect("write");
    path
}

pub(crate) fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// A `burrow dev` or `burrow serve` process that is listening.
pub(crate) struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Everything it logged so far.
    pub(crate) log: String,
    /// The Worker ingress.
    pub(crate) ingress: SocketAddr,
    /// The admin API.
    pub(crate) admin: SocketAddr,
}

/// Starts `burrow ARGS` and waits until both listeners are up. Panics with the log if the
/// process exits first.
pub(crate) fn start(command: &mut Command) -> Server {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("burrow starts");
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
    let mut server = Server {
        child,
        lines,
        log: String::new(),
        ingress: SocketAddr::from(([0, 0, 0, 0], 0)),
        admin: SocketAddr::from(([0, 0, 0, 0], 0)),
    };
    let ingress = server.wait_for("Worker ingress listening");
    server.ingress = url_address(&ingress);
    let admin = server.wait_for("admin API listening");
    server.admin = url_address(&admin);
    server
}

/// The address in the line's `url` field, in the human (`url=http://…`) or JSON
/// (`"url":"http://…"`) log format.
fn url_address(line: &str) -> SocketAddr {
    let start = line.find("http://").expect("url in the line") + "http://".len();
    let rest = &line[start..];
    let end = rest
        .find(|character: char| character.is_whitespace() || character == '"')
        .unwrap_or(rest.len());
    rest[..end].parse().expect("address")
}

impl Server {
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

    /// Sends SIGTERM and waits for the exit; returns the status and the whole log.
    pub(crate) fn terminate(mut self) -> (ExitStatus, String) {
        // The shell's built-in `kill`: present wherever `sh` is, unlike a kill binary.
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
                panic!("burrow did not exit after SIGTERM; log:\n{}", self.log);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends at EOF, so this collects the rest of the log.
        while let Ok(line) = self.lines.recv_timeout(STEP) {
            self.log.push_str(&line);
            self.log.push('\n');
        }
        (status, std::mem::take(&mut self.log))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test must not leave a server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; returns (status, headers and body as text).
pub(crate) fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    (status, response)
}

/// The body of a response from [`http`].
pub(crate) fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// One HTTP/1.1 request with a body on a fresh connection; returns the status and the body.
/// The admin API answers with `Content-Length` bodies, which this reads whole.
pub(crate) fn send(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(STEP)).expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\ncontent-length: {}\r\n",
        payload.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(payload);
    // The server may answer (413) before reading the whole body and close; that is fine.
    let _ = stream.write_all(&bytes);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    (status, body(&response).to_owned())
}

/// An in-process app's configuration and options: `config` written to `dir/wrangler.toml`, both
/// listeners on free loopback ports, data under `dir/data`, and `tokens` as the admin API's tokens.
pub(crate) fn app_options(
    dir: &Path,
    config: &str,
    tokens: &[&str],
) -> (
    burrow_config::LoadedConfig,
    burrow_sdk::server::ServeOptions,
) {
    use burrow_sdk::server::{Flags, Mode, ServeOptions};
    let config = write(dir, "wrangler.toml", config);
    let loaded = burrow_config::load_files(&[config], &burrow_config::LoadOptions::default())
        .expect("config loads");
    let flags = Flags {
        port: Some(0),
        admin_address: Some("127.0.0.1:0".parse().expect("address")),
        persist_to: Some(dir.join("data")),
        ..Flags::default()
    };
    let mut options = ServeOptions::resolve(&loaded, &flags, Mode::Serve).expect("options");
    options.api_tokens = tokens.iter().map(|token| (*token).to_owned()).collect();
    (loaded, options)
}

/// A project under `examples/`.
pub(crate) fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

/// Starts `burrow dev` on a project directory with its state in `state`.
pub(crate) fn dev(project: &Path, state: &Path) -> Server {
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

/// Starts `burrow serve -c config` with its state in `state`.
pub(crate) fn serve(config: &Path, state: &Path) -> Server {
    start(&mut command(&[
        "serve",
        "-c",
        text(config),
        "--port",
        "0",
        "--admin-address",
        "127.0.0.1:0",
        "--persist-to",
        text(state),
    ]))
}
