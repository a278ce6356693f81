//! `burrow-bench js`: JavaScript Workers under Burrow (`burrow serve`) and under workerd (from
//! npm), the same `bench/js/worker.js` and the same load (`load`, 32 connections), taking turns:
//!
//! - hello: `GET /hello` answers "ok";
//! - json: `POST /json` with a 1 KB JSON body, parsed and answered transformed;
//! - cold start: from spawning `burrow serve` to the first successful response, for a Worker
//!   bundle of about 1 MB (the bench worker followed by generated functions).
//!
//! Ends with `RESULT js hello_rps=N json_rps=N hello_ratio_vs_workerd=X json_ratio_vs_workerd=X
//! cold_start_ms=N`.

use crate::load::{self, Args, Report};
use crate::objects::app::workspace_root;
use crate::process::{Server, free_port, http_get};
use crate::workerd;
use anyhow::{Context, bail};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Connections of every load.
const CONNECTIONS: u16 = 32;
/// How long a server may take to answer its first request.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// The size of the cold-start bundle.
const BUNDLE_BYTES: usize = 1024 * 1024;

/// What the `js` subcommand takes.
pub(crate) struct Options {
    /// A short run (under 120 s once built).
    pub(crate) quick: bool,
    /// A prebuilt burrow executable (default: build it with cargo).
    pub(crate) burrow: Option<PathBuf>,
}

pub(crate) fn run(options: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let (warmup, phase) = if options.quick {
        (Duration::from_secs(1), Duration::from_secs(5))
    } else {
        (Duration::from_secs(3), Duration::from_secs(15))
    };
    let root = workspace_root();
    crate::process::clean_up_on_interrupt()?;
    let scratch = crate::scratch_dir(None)?;
    crate::process::remove_on_interrupt(scratch.path());
    eprintln!(
        "js: Burrow vs workerd on bench/js/worker.js, {CONNECTIONS} connections, {}s per load \
         (the machine may be shared: figures are what this run got)",
        phase.as_secs()
    );

    eprintln!("[1/4] burrow: building (cargo build --release -p burrow)");
    let burrow = match options.burrow {
        Some(burrow) => burrow,
        None => build_burrow(&root)?,
    };
    eprintln!("      {}", burrow.display());
    eprintln!("[2/4] workerd@{}: installing (cached)", workerd::VERSION);
    let workerd_binary = workerd::install()?;
    eprintln!("      {}", workerd_binary.display());

    let body = scratch.path().join("order.json");
    std::fs::write(&body, order_json())?;

    eprintln!("[3/4] throughput: hello and json, Burrow and workerd taking turns");
    let (burrow_server, burrow_port) = start_burrow(
        &burrow,
        &root.join("bench/js/wrangler.toml"),
        scratch.path(),
    )?;
    wait_ok(burrow_port)?;
    let workerd_port = free_port()?;
    let mut workerd_command = Command::new(&workerd_binary);
    workerd_command
        .arg("serve")
        .arg(root.join("bench/js/config.capnp"))
        .arg(format!("--socket-addr=http=127.0.0.1:{workerd_port}"));
    let mut workerd_server = Server::start(
        "workerd",
        &mut workerd_command,
        workerd_port,
        &scratch.path().join("workerd.log"),
    )?;
    workerd_server.wait_ready(READY_LIMIT)?;

    let mut results: Vec<(Report, Report)> = Vec::new();
    for (name, path, method) in [("hello", "/hello", "GET"), ("json", "/json", "POST")] {
        let mut pair = Vec::new();
        for (server_name, server) in [("burrow", &burrow_server), ("workerd", &workerd_server)] {
            let mut args = Args::new(server.url(path), method, CONNECTIONS, phase).warmup(warmup);
            if method == "POST" {
                args = args.body_file(&body);
            }
            eprintln!("      {server_name}: {name}: {CONNECTIONS} connections");
            let report = load::run_in_child(&args)?;
            eprintln!("      {server_name}: {name}: {}", report.summary());
            if report.requests == 0 || report.errors * 100 > report.requests + report.errors {
                bail!(
                    "{server_name}: {name}: {} of {} requests failed; the figure would mean nothing",
                    report.errors,
                    report.requests + report.errors
                );
            }
            pair.push(report);
        }
        let workerd_report = pair.pop().context("workerd report")?;
        let burrow_report = pair.pop().context("burrow report")?;
        results.push((burrow_report, workerd_report));
    }
    burrow_server.stop()?;
    workerd_server.stop()?;

    eprintln!(
        "[4/4] cold start: a {} KB bundle, from spawn to the first answer",
        BUNDLE_BYTES / 1024
    );
    let cold = cold_start(&burrow, scratch.path())?;
    eprintln!("      {:.1} ms", cold.as_secs_f64() * 1000.0);

    let (hello, hello_ref) = &results[0];
    let (json, json_ref) = &results[1];
    eprintln!("js: done in {:.0?}", started.elapsed());
    println!(
        "RESULT js hello_rps={:.0} json_rps={:.0} hello_ratio_vs_workerd={:.2} \
         json_ratio_vs_workerd={:.2} cold_start_ms={:.0}",
        hello.rps,
        json.rps,
        hello.rps / hello_ref.rps.max(1.0),
        json.rps / json_ref.rps.max(1.0),
        cold.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// Builds the burrow binary in release mode and returns its executable.
pub(crate) fn build_burrow(root: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "burrow",
            "--bin",
            "burrow",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!("cargo build --release -p burrow failed ({})", output.status);
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "burrow")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .context("cargo built no burrow executable")
}

/// `burrow serve -c CONFIG` on a free port, its data and log under `scratch`.
pub(crate) fn start_burrow(
    burrow: &Path,
    config: &Path,
    scratch: &Path,
) -> anyhow::Result<(Server, u16)> {
    let port = free_port()?;
    let mut command = Command::new(burrow);
    command
        .arg("serve")
        .arg("-c")
        .arg(config)
        .arg(format!("--port={port}"))
        .arg("--admin-address=127.0.0.1:0")
        .arg("--persist-to")
        .arg(scratch.join("burrow-data"))
        .env("RUST_LOG", "warn");
    let server = Server::start("burrow", &mut command, port, &scratch.join("burrow.log"))?;
    Ok((server, port))
}

/// Polls `GET /hello` on `port` until it answers "ok".
pub(crate) fn wait_ok(port: u16) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if let Ok((200, body)) = http_get(port, "/hello") {
            if body.trim() == "ok" {
                return Ok(());
            }
            bail!("GET /hello answered {body:?}, not \"ok\"");
        }
        if start.elapsed() > READY_LIMIT {
            bail!("no answer to GET /hello within {READY_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Spawns `burrow serve` on a ~1 MB bundle and polls until `GET /hello` answers "ok".
fn cold_start(burrow: &Path, scratch: &Path) -> anyhow::Result<Duration> {
    let project = scratch.join("cold");
    std::fs::create_dir_all(&project)?;
    let worker = std::fs::read_to_string(workspace_root().join("bench/js/worker.js"))?;
    std::fs::write(project.join("worker.js"), bundle(&worker))?;
    std::fs::write(
        project.join("wrangler.toml"),
        "name = \"cold\"\nmain = \"worker.js\"\ncompatibility_date = \"2025-04-01\"\n",
    )?;
    let port = free_port()?;
    let mut command = Command::new(burrow);
    command
        .arg("serve")
        .arg("-c")
        .arg(project.join("wrangler.toml"))
        .arg(format!("--port={port}"))
        .arg("--admin-address=127.0.0.1:0")
        .arg("--persist-to")
        .arg(scratch.join("cold-data"))
        .env("RUST_LOG", "warn");
    let spawned = Instant::now();
    let server = Server::start(
        "burrow (cold start)",
        &mut command,
        port,
        &scratch.join("cold.log"),
    )?;
    let took = loop {
        if let Ok((200, body)) = http_get(port, "/hello")
            && body.trim() == "ok"
        {
            break spawned.elapsed();
        }
        if spawned.elapsed() > READY_LIMIT {
            bail!("the cold-start server did not answer within {READY_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    server.stop()?;
    Ok(took)
}

/// The bench worker followed by generated functions and data up to [`BUNDLE_BYTES`], as a
/// bundler's output would carry a framework and its dependencies.
fn bundle(worker: &str) -> String {
    let mut out = String::with_capacity(BUNDLE_BYTES + 4096);
    out.push_str(worker);
    out.push_str("\nconst registry = [];\n");
    let mut index = 0u32;
    while out.len() < BUNDLE_BYTES {
        let _ = writeln!(
            out,
            "function helper{index}(input) {{ const table = {{ key: \"value-{index}\", list: [{index}, {}, {}] }}; \
             return typeof input === \"string\" ? input.split(\",\").map((part) => part.trim() + table.key).join(\";\") : table.list.reduce((a, b) => a + b, input | 0); }}\nregistry.push(helper{index});",
            index * 7,
            index * 13
        );
        index += 1;
    }
    out.push_str("export { registry };\n");
    out
}

/// About 1 KB of JSON: a customer and order lines.
fn order_json() -> String {
    let items: Vec<serde_json::Value> = (0..12)
        .map(|i| {
            serde_json::json!({
                "sku": format!("sku-{i:04}-blue"),
                "price": 9.99 + f64::from(i),
                "quantity": i % 4 + 1,
            })
        })
        .collect();
    serde_json::json!({
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com", "tier": "gold"},
        "items": items,
        "note": "Leave the parcel at the door; ring twice.",
    })
    .to_string()
}
