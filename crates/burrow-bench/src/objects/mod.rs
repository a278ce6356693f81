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
//!   written, so in memory) and reading one row, measured in the same run.
//!
//! The throughput phases run bench_app with Cloudflare's idle times (hibernation after 10 s), so
//! no object hibernates in the middle of them, with its data under `./target` on the disk. The
//! memory and wake phases run a second bench_app with short idle times ([`hibernation`] says
//! where its data lives, and why). `--vs-workerd` then drives workerd with the same loads, its
//! data on the same disk, and adds the ratios of Burrow's counter rates to workerd's.

pub(crate) mod app;
mod hibernation;

use crate::load::{self, Args, Report};
use crate::process::{Server, free_port};
use crate::workerd;
use anyhow::bail;
use app::Idle;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connections of every throughput phase.
const CONNECTIONS: u16 = 32;
/// Distinct objects of the spread phase.
const SPREAD_OBJECTS: u64 = 10_000;
/// The most requests a measured phase may fail: more and its figure means nothing.
const MAX_ERROR_FRACTION: f64 = 0.01;

/// What `objects` takes on its command line.
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) vs_workerd: bool,
    /// A prebuilt bench_app; otherwise it is built with cargo.
    pub(crate) app: Option<PathBuf>,
    /// Print the figures even when a measured phase fails more than [`MAX_ERROR_FRACTION`] of
    /// its requests (for diagnosis: such figures measure a failing server).
    pub(crate) allow_errors: bool,
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
    let root = app::workspace_root();
    crate::process::clean_up_on_interrupt()?;
    let disk = crate::scratch_dir(None)?;
    crate::process::remove_on_interrupt(disk.path());
    let memory = hibernation::scratch_dir()?;
    crate::process::remove_on_interrupt(memory.path());
    // Declared after the directories, so dropped (joined) before they are removed.
    let mut cleanup = Cleanup::default();
    let mut progress = Progress::new(started, if options.vs_workerd { 5 } else { 4 });
    machine_note(disk.path())?;
    let measured = if options.allow_errors {
        Errors::Report
    } else {
        Errors::Fail
    };

    progress.step("bench_app: building (cargo build --release --example bench_app)");
    let app = match options.app {
        Some(app) => app,
        None => app::build(&root)?,
    };
    eprintln!("      {}", app.display());
    let workerd = if options.vs_workerd {
        progress.step(&format!(
            "workerd@{}: installing (cached)",
            workerd::VERSION
        ));
        let binary = workerd::install()?;
        eprintln!("      {}", binary.display());
        Some(binary)
    } else {
        None
    };

    progress.step(&format!(
        "throughput: bench_app with Cloudflare's idle times{}, data in {}",
        if workerd.is_some() {
            ", and workerd, taking turns"
        } else {
            ""
        },
        disk.path().display()
    ));
    let data = disk.path().join("throughput-data");
    let log = disk.path().join("throughput.log");
    let burrow = app::start(&app, &root, &data, &log, Idle::Cloudflare)?;
    let reference = match &workerd {
        Some(binary) => Some(start_workerd(binary, &root, disk.path())?),
        None => None,
    };
    let mut servers = vec![("Burrow", &burrow, measured)];
    if let Some(reference) = &reference {
        servers.push(("workerd", reference, Errors::Report));
    }
    let mut rates = throughput(&servers, &plan)?.into_iter();
    drop(servers);
    let burrow_rates = rates.next().expect("one result per server");
    let workerd_rates = rates.next();
    app::stop(burrow)?;
    if let Some(reference) = reference {
        eprintln!(
            "      workerd peak RSS {} MiB",
            reference.peak_rss_bytes().unwrap_or(0) >> 20
        );
        reference.stop()?;
        cleanup.remove_in_background(disk.path().join("workerd-data"));
    }
    // Deleting object files is slow on this disk, and the next phases do not use it.
    cleanup.remove_in_background(data);

    progress.step(&format!(
        "memory: bench_app with short idle times (hibernate after {:?}, close storage after \
         {:?}), data in {}",
        hibernation::HIBERNATE_AFTER,
        hibernation::STORAGE_IDLE_AFTER,
        memory.path().display()
    ));
    let short = Idle::Short {
        hibernate_after: hibernation::HIBERNATE_AFTER,
        storage_idle_after: hibernation::STORAGE_IDLE_AFTER,
    };
    let data = memory.path().join("hibernation-data");
    let log = disk.path().join("hibernation.log");
    let server = app::start(&app, &root, &data, &log, short)?;
    let hibernated_object_bytes = hibernation::object_bytes(&server)?;

    progress.step(&format!(
        "wake: the first request to each of {} hibernated objects, and the SQLite reference",
        plan.wake_samples
    ));
    let wake = hibernation::wake(&server, plan.wake_samples, measured)?;
    app::stop(server)?;
    std::fs::remove_dir_all(&data)?;
    let mut sqlite =
        hibernation::sqlite_open_read(&memory.path().join("sqlite-reference"), plan.sqlite_files)?;
    let sqlite_open_read_p99_us = sqlite.percentile(99.0);
    eprintln!(
        "      open a SQLite file and read one row ({} files): p50 {} µs, p99 \
         {sqlite_open_read_p99_us} µs",
        plan.sqlite_files,
        sqlite.percentile(50.0),
    );

    let mut line = format!(
        "RESULT objects hello_rps={:.0} hot_counter_rps={:.0} spread_counter_rps={:.0} \
         wake_p99_us={} hibernated_object_bytes={} sqlite_open_read_p99_us={}",
        burrow_rates.hello.rps,
        burrow_rates.hot.rps,
        burrow_rates.spread.rps,
        wake.p99_us,
        hibernated_object_bytes,
        sqlite_open_read_p99_us
    );
    if let Some(reference) = &workerd_rates {
        let ratio = |ours: &Report, theirs: &Report| ours.rps / theirs.rps.max(1e-9);
        let hot = ratio(&burrow_rates.hot, &reference.hot);
        let spread = ratio(&burrow_rates.spread, &reference.spread);
        eprintln!(
            "      Burrow/workerd: hello {:.2}x, hot counter {hot:.2}x, spread counter {spread:.2}x",
            ratio(&burrow_rates.hello, &reference.hello)
        );
        line.push_str(&format!(
            " hot_counter_ratio_vs_workerd={hot:.2} spread_counter_ratio_vs_workerd={spread:.2}"
        ));
    }

    eprintln!("      removing the temporary directories");
    cleanup.wait();
    disk.close()?;
    memory.close()?;
    let failed = [
        &burrow_rates.hello,
        &burrow_rates.hot,
        &burrow_rates.spread,
        &wake,
    ]
    .into_iter()
    .filter(|report| failing(report))
    .count();
    if failed > 0 {
        eprintln!(
            "WARNING: {failed} measured phase(s) failed more than {:.0} % of their requests \
             (--allow-errors): these figures measure a failing server",
            MAX_ERROR_FRACTION * 100.0
        );
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    println!("{line}");
    Ok(())
}

/// workerd serving bench/workerd, its objects in `scratch/workerd-data`.
fn start_workerd(binary: &Path, root: &Path, scratch: &Path) -> anyhow::Result<Server> {
    let storage = scratch.join("workerd-data");
    std::fs::create_dir_all(&storage)?;
    let port = free_port()?;
    let mut command = workerd::command(binary, root, port, &storage);
    let mut server = Server::start("workerd", &mut command, port, &scratch.join("workerd.log"))?;
    let took = server.wait_ready(app::READY_LIMIT)?;
    eprintln!(
        "      workerd (pid {}) answers on 127.0.0.1:{port} after {took:.1?}",
        server.pid()
    );
    Ok(server)
}

/// hello, hot counter and spread counter, each for the plan's phase after a warm-up. With more
/// than one server, they take turns at each load, so that a change in the machine's other work
/// falls on all of them alike.
fn throughput(servers: &[(&str, &Server, Errors)], plan: &Plan) -> anyhow::Result<Vec<Throughput>> {
    let spread = format!("/do/counter?name=obj{{0..{}}}", SPREAD_OBJECTS - 1);
    let loads = [
        ("hello (GET /hello)", "/hello", "GET"),
        (
            "hot counter (POST /do/counter?name=hot)",
            "/do/counter?name=hot",
            "POST",
        ),
        (
            "spread counter (POST /do/counter?name=obj<0..9999>)",
            spread.as_str(),
            "POST",
        ),
    ];
    let mut reports: Vec<Vec<Report>> = servers.iter().map(|_| Vec::new()).collect();
    for (name, path, method) in loads {
        for ((server_name, server, errors), reports) in servers.iter().zip(&mut reports) {
            let args =
                Args::new(server.url(path), method, CONNECTIONS, plan.phase).warmup(plan.warmup);
            reports.push(phase(&format!("{server_name}: {name}"), args, *errors)?);
        }
    }
    Ok(reports
        .into_iter()
        .map(|reports| {
            let mut reports = reports.into_iter();
            let mut next = || reports.next().expect("one report per load");
            Throughput {
                hello: next(),
                hot: next(),
                spread: next(),
            }
        })
        .collect())
}

/// What failed requests do to a phase.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Errors {
    /// More than [`MAX_ERROR_FRACTION`] of them fail the benchmark (Burrow's figures).
    Fail,
    /// They are only reported (a reference that falls over, or writes that were retried).
    Report,
}

/// Whether more than [`MAX_ERROR_FRACTION`] of a phase's requests failed.
fn failing(report: &Report) -> bool {
    let attempts = (report.requests + report.errors).max(1);
    report.errors as f64 / attempts as f64 > MAX_ERROR_FRACTION
}

/// Runs one load and prints its summary; any failed request prints a warning.
fn phase(name: &str, args: Args, errors: Errors) -> anyhow::Result<Report> {
    eprintln!("      {name}: {} connection(s)", args.connections);
    let report = load::run_in_child(&args)?;
    eprintln!("      {name}: {}", report.summary());
    if report.errors > 0 {
        eprintln!(
            "      WARNING: {name}: {} of {} requests failed",
            report.errors,
            report.requests + report.errors
        );
    }
    if report.requests == 0 || (errors == Errors::Fail && failing(&report)) {
        bail!(
            "{name}: {} of {} requests failed; the figure would mean nothing (--allow-errors \
             prints it anyway)",
            report.errors,
            report.requests + report.errors
        );
    }
    Ok(report)
}

/// Directories being deleted on background threads; dropping it waits for them.
#[derive(Default)]
struct Cleanup(Vec<JoinHandle<()>>);

impl Cleanup {
    fn remove_in_background(&mut self, path: PathBuf) {
        self.0.push(std::thread::spawn(move || {
            if let Err(error) = std::fs::remove_dir_all(&path) {
                eprintln!("      could not remove {}: {error}", path.display());
            }
        }));
    }

    fn wait(&mut self) {
        for handle in self.0.drain(..) {
            // The thread reports its own errors; a panic there has already been printed.
            let _ = handle.join();
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.wait();
    }
}

/// Numbered progress lines on stderr, each with the time since the start.
struct Progress {
    started: Instant,
    step: usize,
    steps: usize,
}

impl Progress {
    fn new(started: Instant, steps: usize) -> Self {
        Progress {
            started,
            step: 0,
            steps,
        }
    }

    fn step(&mut self, what: &str) {
        self.step += 1;
        eprintln!(
            "[{}/{}] {:5.1} s  {what}",
            self.step,
            self.steps,
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Cores, load average and fsync latency: other work on the machine makes every figure noisy,
/// and the counter rates follow the disk's fsync.
fn machine_note(disk: &Path) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    let mut fsync = crate::storage::fsync_latency(disk, 200)?;
    eprintln!(
        "      {cores} cores, load average {load}, fsync of 4 KiB p50 {} µs p99 {} µs, before the run",
        fsync.percentile(50.0),
        fsync.percentile(99.0)
    );
    Ok(())
}
