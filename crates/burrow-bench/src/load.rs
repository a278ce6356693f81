//! `burrow-bench load`: the HTTP load generator. It runs as its own process, so that its CPU time
//! and file descriptors are not the server's (DESIGN.md, "Resources").
//!
//! Closed loop: each of N keep-alive HTTP/1.1 connections sends a request, reads the whole
//! response, and sends the next, for a fixed time. The URL may hold one `{A..B}` range (inclusive,
//! as in a shell): each request names a random value from it, or, with `--each`, every value is
//! requested exactly once, in order, spread over the connections. Only 2xx responses count as
//! requests; anything else is an error. The process prints one line on stdout, which
//! [`Report::parse`] reads back:
//!
//! `LOAD requests=N errors=N seconds=S rps=R p50_us=N p90_us=N p99_us=N max_us=N`

use crate::stats::Samples;
use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Latency samples kept per connection; requests beyond it still count, unsampled.
const MAX_SAMPLES_PER_CONNECTION: usize = 1 << 20;
/// Pause before reconnecting after a failed connection attempt.
const RECONNECT_DELAY: Duration = Duration::from_millis(20);
/// Pause before the first resend of a failed request; it doubles with each further one.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
/// The longest pause between resends.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);
/// How long a request may run past the end of the measurement before it counts as failed.
const REQUEST_GRACE: Duration = Duration::from_secs(10);
/// How long the parent waits for a load process beyond its planned run time.
const PROCESS_GRACE: Duration = Duration::from_secs(60);

/// One load run: what the `load` subcommand takes.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Args {
    /// Target URL; one `{A..B}` range may stand in it, e.g.
    /// `http://127.0.0.1:8787/do/counter?name=obj{0..9999}`.
    #[arg(long)]
    pub(crate) url: String,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    pub(crate) method: String,
    /// Keep-alive connections, each with one request in flight.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) connections: u16,
    /// Measured time (with `--each`: the most time allowed).
    #[arg(long, default_value_t = 3_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub(crate) duration_ms: u64,
    /// Time before the measured time whose requests do not count.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub(crate) warmup_ms: u64,
    /// Request every value of the URL's range exactly once instead of random ones.
    #[arg(long)]
    pub(crate) each: bool,
    /// With `--each`: send a failed request again, up to this many times, after 50 ms, doubling
    /// up to 1 s (every failure still counts as an error), so that each value is reached despite
    /// transient errors.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub(crate) retries: u32,
    /// Seed for the random choice of values.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// A file whose bytes are the body of every request (sent as `application/json`).
    #[arg(long, value_name = "PATH")]
    pub(crate) body_file: Option<std::path::PathBuf>,
}

impl Args {
    /// A run of `connections` connections for `duration`, random values, no warm-up.
    pub(crate) fn new(url: String, method: &str, connections: u16, duration: Duration) -> Self {
        Args {
            url,
            method: method.to_owned(),
            connections,
            duration_ms: duration.as_millis() as u64,
            warmup_ms: 0,
            each: false,
            retries: 0,
            seed: 1,
            body_file: None,
        }
    }

    /// Sends the bytes of `file` as every request's body.
    pub(crate) fn body_file(mut self, file: &std::path::Path) -> Self {
        self.body_file = Some(file.to_owned());
        self
    }

    /// Ignores the requests of the first `warmup`.
    pub(crate) fn warmup(mut self, warmup: Duration) -> Self {
        self.warmup_ms = warmup.as_millis() as u64;
        self
    }

    /// Requests every value of the range once, resending a failed request up to `retries` times.
    pub(crate) fn each(mut self, retries: u32) -> Self {
        self.each = true;
        self.retries = retries;
        self
    }

    fn command_line(&self) -> Vec<String> {
        let mut line = vec![
            "load".to_owned(),
            format!("--url={}", self.url),
            format!("--method={}", self.method),
            format!("--connections={}", self.connections),
            format!("--duration-ms={}", self.duration_ms),
            format!("--warmup-ms={}", self.warmup_ms),
            format!("--seed={}", self.seed),
            format!("--retries={}", self.retries),
        ];
        if self.each {
            line.push("--each".to_owned());
        }
        if let Some(file) = &self.body_file {
            line.push(format!("--body-file={}", file.display()));
        }
        line
    }
}

/// What one load run measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    /// Requests answered with 2xx in the measured time.
    pub(crate) requests: u64,
    /// Failed requests: transport errors, timeouts and non-2xx answers.
    pub(crate) errors: u64,
    /// Length of the measured time.
    pub(crate) seconds: f64,
    /// `requests / seconds`.
    pub(crate) rps: f64,
    pub(crate) p50_us: u64,
    pub(crate) p90_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) max_us: u64,
}

impl Report {
    fn to_line(&self) -> String {
        format!(
            "LOAD requests={} errors={} seconds={:.3} rps={:.1} p50_us={} p90_us={} p99_us={} max_us={}",
            self.requests,
            self.errors,
            self.seconds,
            self.rps,
            self.p50_us,
            self.p90_us,
            self.p99_us,
            self.max_us
        )
    }

    /// Reads the `LOAD ...` line among a load process's output.
    pub(crate) fn parse(output: &str) -> anyhow::Result<Self> {
        let line = output
            .lines()
            .find_map(|line| line.strip_prefix("LOAD "))
            .context("the load process printed no LOAD line")?;
        let mut fields = std::collections::HashMap::new();
        for pair in line.split_whitespace() {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("malformed LOAD field {pair:?}"))?;
            fields.insert(key, value);
        }
        let field = |key: &str| -> anyhow::Result<&str> {
            fields
                .get(key)
                .copied()
                .with_context(|| format!("the LOAD line has no {key}"))
        };
        let integer = |key: &str| -> anyhow::Result<u64> {
            field(key)?
                .parse()
                .with_context(|| format!("LOAD {key} is not an integer"))
        };
        let real = |key: &str| -> anyhow::Result<f64> {
            field(key)?
                .parse()
                .with_context(|| format!("LOAD {key} is not a number"))
        };
        Ok(Report {
            requests: integer("requests")?,
            errors: integer("errors")?,
            seconds: real("seconds")?,
            rps: real("rps")?,
            p50_us: integer("p50_us")?,
            p90_us: integer("p90_us")?,
            p99_us: integer("p99_us")?,
            max_us: integer("max_us")?,
        })
    }

    /// A one-line summary for progress output.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{:.0} requests/s ({} in {:.1} s, {} errors), p50 {} µs, p99 {} µs, max {} µs",
            self.rps,
            self.requests,
            self.seconds,
            self.errors,
            self.p50_us,
            self.p99_us,
            self.max_us
        )
    }
}

/// Runs `args` in a child process (this executable's `load` subcommand) and reads its report.
pub(crate) fn run_in_child(args: &Args) -> anyhow::Result<Report> {
    let exe = std::env::current_exe().context("locating the burrow-bench executable")?;
    let mut command = Command::new(exe);
    command
        .args(args.command_line())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = crate::process::Guard::spawn("load generator", &mut command)?;
    let mut stdout = child
        .take_stdout()
        .context("the load process has no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).map(|_| text)
    });
    let limit = Duration::from_millis(args.duration_ms + args.warmup_ms) + PROCESS_GRACE;
    let status = child
        .wait_timeout(limit)?
        .with_context(|| format!("the load process ran longer than {limit:?}"))?;
    let output = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the load output reader panicked"))??;
    if !status.success() {
        bail!("the load process failed ({status})");
    }
    Report::parse(&output)
}

/// The `load` subcommand: runs the load and prints the `LOAD` line.
pub(crate) fn main(args: Args) -> anyhow::Result<()> {
    let target = Target::parse(&args.url)?;
    let method: Method = args
        .method
        .parse()
        .with_context(|| format!("{:?} is not an HTTP method", args.method))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(drive(args, target, method))?;
    println!("{}", report.to_line());
    Ok(())
}

/// Where requests go: `http://ADDRESS` + `prefix` + a value of `range` + `suffix`.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    /// `host:port`, also the `Host` header.
    authority: String,
    prefix: String,
    /// Inclusive.
    range: Option<(u64, u64)>,
    suffix: String,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("{url:?}: only http:// URLs are supported"))?;
        let slash = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(slash);
        if authority.is_empty() || !authority.contains(':') {
            bail!("{url:?}: the URL needs an explicit host:port");
        }
        let path = if path.is_empty() { "/" } else { path };
        let Some(open) = path.find('{') else {
            return Ok(Target {
                authority: authority.to_owned(),
                prefix: path.to_owned(),
                range: None,
                suffix: String::new(),
            });
        };
        let close = path[open..]
            .find('}')
            .map(|offset| open + offset)
            .with_context(|| format!("{url:?}: unclosed {{ in the URL"))?;
        let (low, high) = path[open + 1..close]
            .split_once("..")
            .with_context(|| format!("{url:?}: a range is written {{A..B}}"))?;
        let low: u64 = low
            .parse()
            .with_context(|| format!("{url:?}: bad range start"))?;
        let high: u64 = high
            .parse()
            .with_context(|| format!("{url:?}: bad range end"))?;
        if low > high {
            bail!("{url:?}: the range is empty");
        }
        let suffix = &path[close + 1..];
        if suffix.contains('{') {
            bail!("{url:?}: only one {{A..B}} range is supported");
        }
        Ok(Target {
            authority: authority.to_owned(),
            prefix: path[..open].to_owned(),
            range: Some((low, high)),
            suffix: suffix.to_owned(),
        })
    }

    /// How many values `--each` requests.
    fn len(&self) -> u64 {
        self.range.map_or(1, |(low, high)| high - low + 1)
    }

    fn path(&self, value: Option<u64>) -> String {
        match value {
            Some(value) => format!("{}{value}{}", self.prefix, self.suffix),
            None => self.prefix.clone(),
        }
    }
}

struct Plan {
    target: Target,
    method: Method,
    /// Every request's body (empty: none).
    body: Bytes,
    each: bool,
    retries: u32,
    /// With `each`: the index of the next value to request.
    next: AtomicU64,
    warmup_end: Instant,
    deadline: Instant,
}

#[derive(Default)]
struct Tally {
    requests: u64,
    errors: u64,
    samples: Samples,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, error: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
        }
    }
}

async fn drive(args: Args, target: Target, method: Method) -> anyhow::Result<Report> {
    let start = Instant::now();
    let warmup_end = start + Duration::from_millis(args.warmup_ms);
    let body = match &args.body_file {
        Some(file) => {
            Bytes::from(std::fs::read(file).with_context(|| format!("reading {}", file.display()))?)
        }
        None => Bytes::new(),
    };
    let plan = Arc::new(Plan {
        target,
        method,
        body,
        each: args.each,
        retries: args.retries,
        next: AtomicU64::new(0),
        warmup_end,
        deadline: warmup_end + Duration::from_millis(args.duration_ms),
    });
    let mut tasks = Vec::with_capacity(usize::from(args.connections));
    for connection in 0..u64::from(args.connections) {
        let plan = plan.clone();
        let seed = args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ connection;
        tasks.push(tokio::spawn(connection_loop(plan, seed)));
    }
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await.context("a load connection task panicked")?;
        total.requests += tally.requests;
        total.errors += tally.errors;
        total.samples.extend(tally.samples);
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
    }
    let seconds = Instant::now()
        .saturating_duration_since(if args.each { start } else { warmup_end })
        .as_secs_f64();
    if let Some(error) = &total.first_error {
        eprintln!(
            "      load: {} failed requests; the first: {error}",
            total.errors
        );
    }
    let mut samples = total.samples;
    Ok(Report {
        requests: total.requests,
        errors: total.errors,
        seconds,
        rps: crate::stats::rate(total.requests, Duration::from_secs_f64(seconds)),
        p50_us: samples.percentile(50.0),
        p90_us: samples.percentile(90.0),
        p99_us: samples.percentile(99.0),
        max_us: samples.percentile(100.0),
    })
}

async fn connect(authority: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The request side sees any connection error; nothing more to do with it here.
        let _ = connection.await;
    });
    Ok(sender)
}

/// One connection's closed loop, reconnecting after transport errors until the deadline.
async fn connection_loop(plan: Arc<Plan>, seed: u64) -> Tally {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    // With `each`: a value whose request failed, and how many times it has.
    let mut retry: Option<(Option<u64>, u32)> = None;
    while Instant::now() < plan.deadline {
        let connection = match &mut sender {
            Some(connection) => connection,
            None => {
                match tokio::time::timeout_at(plan.deadline.into(), connect(&plan.target.authority))
                    .await
                {
                    Ok(Ok(connection)) => sender.insert(connection),
                    Ok(Err(error)) => {
                        tally.error(format!("connect: {error:#}"));
                        tokio::time::sleep(RECONNECT_DELAY).await;
                        continue;
                    }
                    Err(_) => break,
                }
            }
        };
        let (value, failures) = if let Some(retry) = retry.take() {
            retry
        } else if plan.each {
            let index = plan.next.fetch_add(1, Ordering::Relaxed);
            if index >= plan.target.len() {
                break;
            }
            (plan.target.range.map(|(low, _)| low + index), 0)
        } else {
            let value = plan
                .target
                .range
                .map(|(low, high)| rng.random_range(low..=high));
            (value, 0)
        };
        let mut builder = Request::builder()
            .method(plan.method.clone())
            .uri(plan.target.path(value))
            .header(hyper::header::HOST, &plan.target.authority);
        if !plan.body.is_empty() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = match builder.body(Full::new(plan.body.clone())) {
            Ok(request) => request,
            Err(error) => {
                tally.error(format!("building the request: {error}"));
                break;
            }
        };
        let limit = plan.deadline + REQUEST_GRACE;
        let exchange = async {
            connection.ready().await?;
            let started = Instant::now();
            let response = connection.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((started, status, body))
        };
        match tokio::time::timeout_at(limit.into(), exchange).await {
            Ok(Ok((started, status, _))) if status.is_success() => {
                if started >= plan.warmup_end {
                    tally.requests += 1;
                    if tally.samples.len() < MAX_SAMPLES_PER_CONNECTION {
                        tally.samples.push(started.elapsed());
                    }
                }
                continue;
            }
            Ok(Ok((_, status, body))) => {
                let body = String::from_utf8_lossy(&body[..body.len().min(200)]);
                tally.error(format!("HTTP {status}: {}", body.trim_end()));
            }
            Ok(Err(error)) => {
                tally.error(format!("request: {error}"));
                sender = None;
            }
            Err(_) => {
                tally.error("no response before the deadline");
                break;
            }
        }
        if plan.each && failures < plan.retries {
            retry = Some((value, failures + 1));
            let delay = FIRST_RETRY_DELAY.saturating_mul(1 << failures.min(16));
            tokio::time::sleep(delay.min(MAX_RETRY_DELAY)).await;
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_url_with_a_range() {
        let target =
            Target::parse("http://127.0.0.1:8787/do/counter?name=obj{0..9999}&x=1").expect("valid");
        assert_eq!(target.authority, "127.0.0.1:8787");
        assert_eq!(target.range, Some((0, 9999)));
        assert_eq!(target.len(), 10_000);
        assert_eq!(target.path(Some(42)), "/do/counter?name=obj42&x=1");
    }

    #[test]
    fn parses_a_url_without_a_range() {
        let target = Target::parse("http://127.0.0.1:1/hello").expect("valid");
        assert_eq!(target.range, None);
        assert_eq!(target.path(None), "/hello");
        let root = Target::parse("http://127.0.0.1:1").expect("valid");
        assert_eq!(root.path(None), "/");
    }

    #[test]
    fn rejects_bad_urls() {
        for url in [
            "https://127.0.0.1:1/",
            "http://localhost/",
            "http://127.0.0.1:1/a{1..0}",
            "http://127.0.0.1:1/a{1..2",
            "http://127.0.0.1:1/a{1..2}{3..4}",
            "http://127.0.0.1:1/a{x}",
        ] {
            assert!(Target::parse(url).is_err(), "{url} should be rejected");
        }
    }

    #[test]
    fn a_report_survives_its_line() {
        let report = Report {
            requests: 10,
            errors: 1,
            seconds: 2.5,
            rps: 4.0,
            p50_us: 5,
            p90_us: 6,
            p99_us: 7,
            max_us: 8,
        };
        let parsed = Report::parse(&format!("noise\n{}\n", report.to_line())).expect("parses");
        assert_eq!(parsed, report);
    }
}
