//! `burrow-bench js-objects`: JavaScript Durable Objects under Burrow (`burrow serve`) and under
//! workerd (from npm, with local-disk object storage), the same `bench/js-objects/worker.js` (a
//! SQLite-backed counter reached over RPC) and the same load (`load`, 32 connections), taking
//! turns:
//!
//! - hot: every request increments one counter (one object);
//! - spread: every request increments one of 10,000 counters, chosen at random.
//!
//! Burrow runs with its durability guarantee on (every acknowledged increment is fsynced, in
//! group commits). Ends with `RESULT js-objects hot_counter_rps=N spread_counter_rps=N
//! hot_counter_ratio_vs_workerd=X spread_counter_ratio_vs_workerd=X`.

use crate::js::{build_burrow, start_burrow, wait_ok};
use crate::load::{self, Args, Report};
use crate::objects::app::workspace_root;
use crate::process::{Server, free_port};
use crate::workerd;
use anyhow::{Context, bail};
use std::process::Command;
use std::time::{Duration, Instant};

/// Connections of every load.
const CONNECTIONS: u16 = 32;
/// How long a server may take to answer its first request.
const READY_LIMIT: Duration = Duration::from_secs(60);
/// Counters of the spread load.
const SPREAD_OBJECTS: u32 = 10_000;

/// What the `js-objects` subcommand takes.
pub(crate) struct Options {
    /// A short run (under 120 s once built).
    pub(crate) quick: bool,
    /// A prebuilt burrow executable (default: build it with cargo).
    pub(crate) burrow: Option<std::path::PathBuf>,
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
        "js-objects: Burrow vs workerd on bench/js-objects/worker.js, {CONNECTIONS} connections, \
         {}s per load (the machine may be shared: figures are what this run got)",
        phase.as_secs()
    );

    eprintln!("[1/3] burrow: building (cargo build --release -p burrow)");
    let burrow = match options.burrow {
        Some(burrow) => burrow,
        None => build_burrow(&root)?,
    };
    eprintln!("      {}", burrow.display());
    eprintln!("[2/3] workerd@{}: installing (cached)", workerd::VERSION);
    let workerd_binary = workerd::install()?;
    eprintln!("      {}", workerd_binary.display());

    eprintln!("[3/3] throughput: hot and spread counters, Burrow and workerd taking turns");
    let (burrow_server, burrow_port) = start_burrow(
        &burrow,
        &root.join("bench/js-objects/wrangler.toml"),
        scratch.path(),
    )?;
    wait_ok(burrow_port)?;
    let workerd_port = free_port()?;
    let storage = scratch.path().join("workerd-storage");
    std::fs::create_dir_all(&storage)?;
    let mut workerd_command = Command::new(&workerd_binary);
    workerd_command
        .arg("serve")
        .arg(root.join("bench/js-objects/config.capnp"))
        .arg(format!("--socket-addr=http=127.0.0.1:{workerd_port}"))
        .arg(format!("--directory-path=storage={}", storage.display()));
    let mut workerd_server = Server::start(
        "workerd",
        &mut workerd_command,
        workerd_port,
        &scratch.path().join("workerd.log"),
    )?;
    workerd_server.wait_ready(READY_LIMIT)?;

    let spread = format!("/counter/c{{0..{}}}", SPREAD_OBJECTS - 1);
    let mut results: Vec<(Report, Report)> = Vec::new();
    for (name, path) in [("hot", "/counter/hot"), ("spread", spread.as_str())] {
        let mut pair = Vec::new();
        for (server_name, server) in [("burrow", &burrow_server), ("workerd", &workerd_server)] {
            let args = Args::new(server.url(path), "GET", CONNECTIONS, phase).warmup(warmup);
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

    let (hot, hot_ref) = &results[0];
    let (spread, spread_ref) = &results[1];
    eprintln!("js-objects: done in {:.0?}", started.elapsed());
    println!(
        "RESULT js-objects hot_counter_rps={:.0} spread_counter_rps={:.0} \
         hot_counter_ratio_vs_workerd={:.2} spread_counter_ratio_vs_workerd={:.2}",
        hot.rps,
        spread.rps,
        hot.rps / hot_ref.rps.max(1.0),
        spread.rps / spread_ref.rps.max(1.0),
    );
    Ok(())
}
