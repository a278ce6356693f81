//! Processes a benchmark starts: a guard that stops its child by PID when dropped (SIGTERM, then
//! SIGKILL), so an error or a panic leaves nothing running, and a server under test that logs to a
//! file, answers `GET /hello`, and reports its resident memory. An interrupt (SIGINT, SIGTERM)
//! skips destructors, so [`clean_up_on_interrupt`] keeps its own list of children and temporary
//! directories.

use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a stopped process may take to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(35);
/// How often waits poll a child's state.
const POLL: Duration = Duration::from_millis(20);

/// What an interrupt must clean up.
struct Live {
    pids: Vec<u32>,
    dirs: Vec<PathBuf>,
}

static LIVE: Mutex<Live> = Mutex::new(Live {
    pids: Vec::new(),
    dirs: Vec::new(),
});

fn live() -> MutexGuard<'static, Live> {
    // A panic while holding the lock leaves the lists intact: they are plain vectors.
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// On SIGINT or SIGTERM: stop every running child (SIGTERM, up to [`STOP_GRACE`]), remove every
/// registered directory, and exit with status 130.
pub(crate) fn clean_up_on_interrupt() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // Registered here, before any child starts, so no signal is missed.
    let mut interrupt = runtime.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    })?;
    let mut terminate = runtime.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    })?;
    std::thread::Builder::new()
        .name("interrupt".to_owned())
        .spawn(move || {
            let signal = runtime.block_on(async {
                tokio::select! {
                    _ = interrupt.recv() => "SIGINT",
                    _ = terminate.recv() => "SIGTERM",
                }
            });
            eprintln!("{signal}: stopping child processes and removing temporary directories");
            let live = live();
            for pid in &live.pids {
                send_term(*pid);
            }
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline && live.pids.iter().any(|pid| running(*pid)) {
                std::thread::sleep(POLL);
            }
            for dir in &live.dirs {
                let _ = std::fs::remove_dir_all(dir);
            }
            std::process::exit(130);
        })?;
    Ok(())
}

/// Registers a temporary directory for removal on an interrupt.
pub(crate) fn remove_on_interrupt(dir: &Path) {
    live().dirs.push(dir.to_owned());
}

/// Whether a process exists and has not exited (a zombie has).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the command name, which is in parentheses and may hold spaces.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// SIGTERM by PID. std can only send SIGKILL; the graceful signal goes through kill(1).
fn send_term(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A child process that is stopped when the guard drops.
pub(crate) struct Guard {
    name: String,
    child: Option<Child>,
}

impl Guard {
    pub(crate) fn spawn(name: &str, command: &mut Command) -> anyhow::Result<Self> {
        let mut live = live();
        let child = command
            .spawn()
            .with_context(|| format!("starting the {name} ({:?})", command.get_program()))?;
        live.pids.push(child.id());
        Ok(Guard {
            name: name.to_owned(),
            child: Some(child),
        })
    }

    fn child(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("the child is only taken by stop")
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub(crate) fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child().stdout.take()
    }

    pub(crate) fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child().stdin.take()
    }

    /// The exit status, if the child has exited.
    pub(crate) fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        Ok(self.child().try_wait()?)
    }

    /// Waits up to `limit` for the child to exit by itself.
    pub(crate) fn wait_timeout(&mut self, limit: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL. Returns how it exited.
    pub(crate) fn stop(mut self) -> anyhow::Result<ExitStatus> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("the {} was already stopped", self.name);
        };
        let status = Self::terminate(&self.name, &mut child);
        live().pids.retain(|pid| *pid != child.id());
        status
    }

    fn terminate(name: &str, child: &mut Child) -> anyhow::Result<ExitStatus> {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        send_term(child.id());
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(POLL);
        }
        eprintln!(
            "      the {name} (pid {}) ignored SIGTERM for {STOP_GRACE:?}; killing it",
            child.id()
        );
        child.kill()?;
        Ok(child.wait()?)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.child.is_some()
            && let Err(error) = self.stop_inner()
        {
            eprintln!("      could not stop the {}: {error:#}", self.name);
        }
    }
}

/// An HTTP server under test on a loopback port, its output in a log file.
pub(crate) struct Server {
    guard: Guard,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts `command` (which must already listen on `port`) with its output in `log`.
    pub(crate) fn start(
        name: &str,
        command: &mut Command,
        port: u16,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        Ok(Server {
            guard: Guard::spawn(name, command)?,
            port,
            log: log.to_owned(),
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Polls `GET /hello` until it answers `ok`; returns how long that took.
    pub(crate) fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.guard.exited()? {
                bail!(
                    "the {} exited before answering ({status}); its log ends:\n{}",
                    self.guard.name,
                    self.log_tail()
                );
            }
            if let Ok((200, body)) = http_get(self.port, "/hello") {
                if body.trim() == "ok" {
                    return Ok(start.elapsed());
                }
                bail!("GET /hello answered {body:?}, not \"ok\"");
            }
            if start.elapsed() > limit {
                bail!(
                    "the {} did not answer GET /hello within {limit:?}; its log ends:\n{}",
                    self.guard.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Resident memory (VmRSS) of the server process.
    pub(crate) fn rss_bytes(&self) -> anyhow::Result<u64> {
        rss_bytes(self.pid())
    }

    /// File descriptors the server process holds.
    pub(crate) fn open_fds(&self) -> anyhow::Result<usize> {
        let pid = self.pid();
        Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))
            .with_context(|| format!("listing /proc/{pid}/fd"))?
            .count())
    }

    /// Peak resident memory (VmHWM) of the server process.
    pub(crate) fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        peak_rss_bytes(self.pid())
    }

    /// `kill -9`: SIGKILL at once, then reaps the process.
    pub(crate) fn kill(mut self) -> anyhow::Result<()> {
        let mut child = self
            .guard
            .child
            .take()
            .context("the server was already stopped")?;
        child.kill()?;
        child.wait()?;
        live().pids.retain(|pid| *pid != child.id());
        Ok(())
    }

    /// Stops the server; fails if it did not exit cleanly.
    pub(crate) fn stop(self) -> anyhow::Result<()> {
        let name = self.guard.name.clone();
        let status = self.guard.stop()?;
        if !status.success() {
            bail!(
                "the {name} exited with {status} after SIGTERM; its log ends:\n{}",
                tail(&self.log)
            );
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        tail(&self.log)
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A loopback port free at the moment of asking.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// `VmRSS` (resident memory) of a process, from `/proc/<pid>/status`.
pub(crate) fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmRSS")
}

/// `VmHWM` (peak resident memory) of a process.
pub(crate) fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    status_bytes(pid, "VmHWM")
}

fn status_bytes(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kib: u64 = value
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .with_context(|| format!("{field} is not a number"))?;
    Ok(kib * 1024)
}

/// A one-shot `GET` on a fresh connection: the status code and body.
pub(crate) fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http_request(port, "GET", path, "", Duration::from_secs(5))
}

/// A one-shot request on a fresh connection: the status code and body. `read_timeout` bounds
/// each read of the response.
pub(crate) fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    read_timeout: Duration,
) -> std::io::Result<(u16, String)> {
    http_request_counted(port, method, path, body, read_timeout, &AtomicUsize::new(0))
}

/// [`http_request`], counting the request in `outstanding` from the moment it has been written
/// until its response has been read (or the read failed).
pub(crate) fn http_request_counted(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    read_timeout: Duration,
    outstanding: &AtomicUsize,
) -> std::io::Result<(u16, String)> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(read_timeout))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    outstanding.fetch_add(1, Ordering::SeqCst);
    let mut response = Vec::new();
    let read = stream.take(1 << 20).read_to_end(&mut response);
    outstanding.fetch_sub(1, Ordering::SeqCst);
    read?;
    let text = String::from_utf8_lossy(&response);
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(invalid)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(invalid)?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    ))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let (Some(chunk), Some(after)) = (rest.get(..size), rest.get(size..)) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.push_str(chunk);
        body = after.trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_rss() {
        let rss = rss_bytes(std::process::id()).expect("rss");
        assert!(rss > 0);
    }

    #[test]
    fn dechunks_a_body() {
        assert_eq!(dechunk("2\r\nok\r\n0\r\n\r\n"), "ok");
    }
}
