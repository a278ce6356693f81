//! `burrow-bench objects`: Durable Objects over HTTP. `examples/bench_app` serves; a separate
//! load process (`burrow-bench load`) drives it over 32 keep-alive connections.
//!
//! Figures, in the order of the RESULT line:
//! - `hello_rps`: `GET /hello` (no object), requests/s;
//! - `hot_counter_rps`: `POST /do/counter?name=hot`, one object, requests/s;
//! - `spread_counter_rps`: `POST /do/counter?name=obj<random 0..9999>`, requests/s;
//! - `wake_p99_us`: p99 latency of `GET /do/get` as the first request to an object that has
//!   hibernated and closed its storage, one request at a time;
//! - `hibernated_object_bytes`: growth of the server's RSS per object after 20,000 objects each
//!   took one write and then hibernated and closed their storage;
//! - `sqlite_open_read_p99_us`: the reference for the wake, p99 of opening a SQLite file (just
//!   written, so in the page cache) and reading one row, measured here in the same run.
//!
//! The throughput phases run bench_app with Cloudflare's idle times (hibernation after 10 s), so
//! no object hibernates in the middle of them; the memory and wake phases run a second bench_app
//! whose idle times are short. `--vs-workerd` then drives workerd with the same loads and adds the
//! ratios of Burrow's counter rates to workerd's.

use crate::load::{self, Args, Report};
use crate::process::{Server, free_port};
use crate::stats::Samples;
use crate::workerd;
use anyhow::{Context, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Connections of every throughput phase.
const CONNECTIONS: u16 = 32;
/// Distinct objects of the spread phase.
const SPREAD_OBJECTS: u64 = 10_000;
/// Objects whose memory is measured after they hibernate.
const HIBERNATED_OBJECTS: u64 = 20_000;
/// Objects written (and hibernated) before the memory baseline, so that one-time growth (caches,
/// allocator arenas, shard tables) is not charged to the measured objects.
const WARM_OBJECTS: u64 = 1_000;
/// Idle times of the short-idle bench_app: hibernation, then closing storage.
const SHORT_HIBERNATE_AFTER: Duration = Duration::from_secs(1);
const SHORT_STORAGE_IDLE_AFTER: Duration = Duration::from_secs(2);
/// Waiting this long after the last request lets every object hibernate and close its storage:
/// the storage idle time, two sweeps (every second), and a margin.
const SETTLE: Duration = Duration::from_millis(4_500);
/// Most an error-free phase may fail: more and the figure is not worth printing.
const MAX_ERROR_FRACTION: f64 = 0.01;
/// How long a server may take to answer its first `GET /hello`.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// What `objects` takes on its command line.
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) vs_workerd: bool,
    /// A prebuilt bench_app; otherwise it is built with cargo.
    pub(crate) app: Option<PathBuf>,
}

struct Plan {
    phase: Duration,
    warmup: Duration,
    wake_samples: u64,
    sqlite_files: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                phase: Duration::from_secs(3),
                warmup: Duration::from_millis(500),
                wake_samples: 1_000,
                sqlite_files: 1_000,
            }
        } else {
            Plan {
                phase: Duration::from_secs(10),
                warmup: Duration::from_secs(1),
                wake_samples: 5_000,
                sqlite_files: 5_000,
            }
        }
    }
}

/// The three throughput figures of one server.
struct Throughput {
    hello: Report,
    hot: Report,
    spread: Report,
}

pub(crate) fn run(options: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let plan = Plan::new(options.quick);
    let root = workspace_root();
    let scratch = crate::scratch_dir(None)?;
    let steps = if options.vs_workerd { 6 } else { 5 };

    eprintln!("[1/{steps}] bench_app: building (cargo build --release --example bench_app)");
    let app = match options.app {
        Some(app) => app,
        None => build_app(&root)?,
    };
    eprintln!("      {}", app.display());

    eprintln!(
        "[2/{steps}] reference: open a SQLite file and read one row, {} files",
        plan.sqlite_files
    );
    let sqlite_open_read_p99_us =
        sqlite_open_read(&scratch.path().join("sqlite-reference"), plan.sqlite_files)?
            .percentile(99.0);
    eprintln!("      p99 {sqlite_open_read_p99_us} µs");

    eprintln!("[3/{steps}] bench_app with Cloudflare's idle times: throughput");
    let mut server = start_app(&app, scratch.path(), "throughput", Idle::Cloudflare)?;
    let burrow = throughput(&server, &plan, true)?;
    server_stop(server)?;

    eprintln!(
        "[4/{steps}] bench_app with short idle times (hibernate after {SHORT_HIBERNATE_AFTER:?}, \
         close storage after {SHORT_STORAGE_IDLE_AFTER:?}): memory of hibernated objects"
    );
    server = start_app(&app, scratch.path(), "hibernation", Idle::Short)?;
    let hibernated_object_bytes = hibernated_object_bytes(&server)?;

    eprintln!(
        "[5/{steps}] wake: the first request to each of {} hibernated objects",
        plan.wake_samples
    );
    let wake = phase(
        "wake (GET /do/get)",
        Args::new(
            server.url(&format!("/do/get?name=rss{{0..{}}}", plan.wake_samples - 1)),
            "GET",
            1,
            Duration::from_secs(120),
        )
        .each(),
        true,
    )?;
    phase(
        "wake with a write, for comparison (POST /do/counter)",
        Args::new(
            server.url(&format!(
                "/do/counter?name=rss{{{}..{}}}",
                plan.wake_samples,
                2 * plan.wake_samples - 1
            )),
            "POST",
            1,
            Duration::from_secs(120),
        )
        .each(),
        true,
    )?;
    server_stop(server)?;

    let mut line = format!(
        "RESULT objects hello_rps={:.0} hot_counter_rps={:.0} spread_counter_rps={:.0} \
         wake_p99_us={} hibernated_object_bytes={} sqlite_open_read_p99_us={}",
        burrow.hello.rps,
        burrow.hot.rps,
        burrow.spread.rps,
        wake.p99_us,
        hibernated_object_bytes,
        sqlite_open_read_p99_us
    );

    if options.vs_workerd {
        eprintln!(
            "[6/{steps}] workerd@{} with the same loads",
            workerd::VERSION
        );
        let binary = workerd::install()?;
        let storage = scratch.path().join("workerd-storage");
        std::fs::create_dir_all(&storage)?;
        let port = free_port()?;
        let mut command = workerd::command(&binary, &root, port, &storage);
        let mut server = Server::start(
            "workerd",
            &mut command,
            port,
            &scratch.path().join("workerd.log"),
        )?;
        let took = server.wait_ready(READY_LIMIT)?;
        eprintln!("      workerd answers on 127.0.0.1:{port} after {took:.1?}");
        let reference = throughput(&server, &plan, false)?;
        eprintln!(
            "      workerd peak RSS {} MiB",
            server.peak_rss_bytes().unwrap_or(0) >> 20
        );
        server.stop()?;
        let hot = burrow.hot.rps / reference.hot.rps.max(1e-9);
        let spread = burrow.spread.rps / reference.spread.rps.max(1e-9);
        eprintln!(
            "      Burrow/workerd: hello {:.2}x, hot counter {hot:.2}x, spread counter {spread:.2}x",
            burrow.hello.rps / reference.hello.rps.max(1e-9)
        );
        line.push_str(&format!(
            " hot_counter_ratio_vs_workerd={hot:.2} spread_counter_ratio_vs_workerd={spread:.2}"
        ));
    }

    drop(scratch);
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    println!("{line}");
    Ok(())
}

/// The repository root: the workspace that holds this crate.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Builds bench_app in release mode and returns its executable, as cargo reports it.
fn build_app(root: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--example",
            "bench_app",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!(
            "cargo build --release --example bench_app failed ({})",
            output.status
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "bench_app")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .context("cargo built no bench_app executable")
}

/// How long bench_app's objects stay in memory and keep their storage open when idle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Idle {
    /// The defaults, which are Cloudflare's.
    Cloudflare,
    /// [`SHORT_HIBERNATE_AFTER`] and [`SHORT_STORAGE_IDLE_AFTER`].
    Short,
}

/// Starts bench_app on a free port with a fresh data directory under `scratch`.
fn start_app(app: &Path, scratch: &Path, name: &str, idle: Idle) -> anyhow::Result<Server> {
    let port = free_port()?;
    let data = scratch.join(format!("{name}-data"));
    std::fs::create_dir_all(&data)?;
    let mut command = Command::new(app);
    command
        .arg("--port")
        .arg(port.to_string())
        .arg("--persist-to")
        .arg(&data);
    if idle == Idle::Short {
        idle_times(
            &mut command,
            SHORT_HIBERNATE_AFTER,
            SHORT_STORAGE_IDLE_AFTER,
        );
    }
    let mut server = Server::start(
        "bench_app",
        &mut command,
        port,
        &scratch.join(format!("{name}.log")),
    )?;
    let took = server.wait_ready(READY_LIMIT)?;
    eprintln!(
        "      bench_app (pid {}) answers on 127.0.0.1:{port} after {took:.1?}",
        server.pid()
    );
    Ok(server)
}

/// Sets bench_app's idle times.
fn idle_times(command: &mut Command, hibernate_after: Duration, storage_idle_after: Duration) {
    command
        .env(
            "BURROW_HIBERNATE_AFTER_MS",
            hibernate_after.as_millis().to_string(),
        )
        .env(
            "BURROW_STORAGE_IDLE_AFTER_MS",
            storage_idle_after.as_millis().to_string(),
        );
}

fn server_stop(server: Server) -> anyhow::Result<()> {
    server.stop()?;
    eprintln!("      bench_app exited cleanly on SIGTERM");
    Ok(())
}

/// hello, hot counter and spread counter, each for the plan's phase after a warm-up.
fn throughput(server: &Server, plan: &Plan, strict: bool) -> anyhow::Result<Throughput> {
    let args = |path: &str, method: &str| {
        Args::new(server.url(path), method, CONNECTIONS, plan.phase).warmup(plan.warmup)
    };
    Ok(Throughput {
        hello: phase("hello (GET /hello)", args("/hello", "GET"), strict)?,
        hot: phase(
            "hot counter (POST /do/counter?name=hot)",
            args("/do/counter?name=hot", "POST"),
            strict,
        )?,
        spread: phase(
            "spread counter (POST /do/counter?name=obj<0..9999>)",
            args(
                &format!("/do/counter?name=obj{{0..{}}}", SPREAD_OBJECTS - 1),
                "POST",
            ),
            strict,
        )?,
    })
}

/// Runs one load and prints its summary. `strict`: too many errors fail the benchmark (for
/// Burrow); otherwise they are only reported (for a reference that falls over).
fn phase(name: &str, args: Args, strict: bool) -> anyhow::Result<Report> {
    eprintln!("      {name}: {} connection(s)", args.connections);
    let report = load::run_in_child(&args)?;
    eprintln!("      {name}: {}", report.summary());
    let attempts = (report.requests + report.errors).max(1);
    let failing = report.errors as f64 / attempts as f64 > MAX_ERROR_FRACTION;
    if report.requests == 0 || (strict && failing) {
        bail!(
            "{name}: {} of {attempts} requests failed; the figure would mean nothing",
            report.errors
        );
    }
    Ok(report)
}

/// RSS growth per object: [`HIBERNATED_OBJECTS`] objects each take one write, then hibernate and
/// close their storage.
fn hibernated_object_bytes(server: &Server) -> anyhow::Result<i64> {
    let write_each = |name: &str, count: u64| {
        let args = Args::new(
            server.url(&format!("/do/counter?name={name}{{0..{}}}", count - 1)),
            "POST",
            CONNECTIONS,
            Duration::from_secs(300),
        )
        .each();
        phase(&format!("one write to each of {count} objects"), args, true)
    };
    write_each("warm", WARM_OBJECTS)?;
    eprintln!("      waiting {SETTLE:?} for them to hibernate");
    std::thread::sleep(SETTLE);
    let before = server.rss_bytes()?;
    let report = write_each("rss", HIBERNATED_OBJECTS)?;
    if report.requests != HIBERNATED_OBJECTS {
        bail!(
            "only {} of {HIBERNATED_OBJECTS} objects took their write",
            report.requests
        );
    }
    let written = server.rss_bytes()?;
    eprintln!("      waiting {SETTLE:?} for them to hibernate and close their storage");
    std::thread::sleep(SETTLE);
    let after = server.rss_bytes()?;
    let per_object = (after as i64 - before as i64) / HIBERNATED_OBJECTS as i64;
    eprintln!(
        "      RSS {} KiB before, {} KiB after the writes, {} KiB hibernated: {per_object} bytes/object",
        before >> 10,
        written >> 10,
        after >> 10
    );
    Ok(per_object)
}

/// Latencies of opening each of `files` SQLite files with a new connection and reading one row,
/// in random order, after all of them were written and closed.
fn sqlite_open_read(dir: &Path, files: usize) -> anyhow::Result<Samples> {
    std::fs::create_dir_all(dir)?;
    let paths: Vec<PathBuf> = (0..files)
        .map(|index| dir.join(format!("{index:05}.sqlite")))
        .collect();
    for path in &paths {
        let connection = rusqlite::Connection::open(path)?;
        // Only the reads are measured; syncing the setup would just slow the run.
        connection.pragma_update(None, "synchronous", "OFF")?;
        connection.execute_batch(
            "CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER);
             INSERT INTO counter(id, n) VALUES (1, 1);",
        )?;
    }
    let mut order = paths;
    order.shuffle(&mut rand::rngs::SmallRng::seed_from_u64(7));
    let mut samples = Samples::with_capacity(order.len());
    for path in &order {
        let started = Instant::now();
        let connection = rusqlite::Connection::open(path)?;
        let n: i64 =
            connection.query_row("SELECT n FROM counter WHERE id = 1", (), |row| row.get(0))?;
        samples.push(started.elapsed());
        if n != 1 {
            bail!("{} holds n = {n}, not 1", path.display());
        }
    }
    std::fs::remove_dir_all(dir)?;
    Ok(samples)
}
