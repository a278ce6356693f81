//! `burrow-bench soak`: the whole-system crash soak. `examples/soak` (a Rust SDK app using
//! Durable Objects, KV, a queue with a consumer, and workflows with sleeps) runs under a mixed
//! load from client threads; at a random moment of every cycle the server gets `kill -9`, is
//! restarted on the same data directory, and the state is checked against the client's log of
//! acknowledged operations.
//!
//! Each client lane owns its objects, keys, message ids and workflow instances and runs one
//! operation at a time, so for every object and key the last acknowledged value is known, and at
//! most one later write (the one in flight at the kill) may also have landed:
//! - Durable Object: `POST /do/:name?seq=N` writes `N` under several keys in one transaction.
//!   After each restart every object must hold one value under all its keys (else a partial
//!   transaction) that is at least its last acknowledged `N` (else a lost op).
//! - KV: `PUT /kv/:key` with an increasing number; the value read back after a restart must be at
//!   least the last acknowledged one.
//! - Queue: `POST /queue/:id`; by the end, every acknowledged id must have reached a sink (the
//!   consumer's or the dead-letter queue's), else `queue_lost`.
//! - Workflow: `POST /flow/:id`; by the end, every acknowledged instance must be complete, and no
//!   step's callback may have run again after the run whose result was recorded
//!   (`workflow_double_steps`, from the side-effect log).
//! - `duplicate_activations`: the app counts an object constructed while another live instance
//!   of it existed in the process (read just before each kill, and at the end).
//!
//! A kill counts as mid-commit when, at the moment of SIGKILL, some client request had been
//! written to the server's socket and not yet answered.
//!
//! `RESULT soak cycles=N acked_ops=N mid_commit_kills=N lost_ops=0 partial_txns=0
//! duplicate_activations=0 queue_lost=0 workflow_double_steps=0`

use crate::process::{Server, free_port, http_request, http_request_counted};
use anyhow::{Context, bail};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Client threads, each with its own objects, keys, ids and instances.
const LANES: usize = 12;
/// Durable Objects and KV keys per lane.
const OBJECTS_PER_LANE: usize = 4;
/// Workflow instances a lane creates per cycle at most (each runs three steps over ~2 s).
const FLOWS_PER_LANE_PER_CYCLE: usize = 1;
/// Keys each Durable Object transaction writes.
const KEYS_PER_TRANSACTION: usize = 4;
/// How long the server may take to start (recovery included).
const READY_LIMIT: Duration = Duration::from_secs(120);
/// How long, at the end, queued messages and workflows may take to finish.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// Bounds one read of a response; requests in flight at a kill fail with a reset before this.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// What the run was asked for.
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) app: Option<PathBuf>,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) seed: Option<u64>,
    pub(crate) cycles: Option<usize>,
}

/// The figures a run reaches before it stops cycling.
struct Plan {
    min_cycles: usize,
    min_acked_ops: u64,
    max_cycles: usize,
    /// The random wait before each kill, in milliseconds.
    kill_after_ms: (u64, u64),
}

/// The client's log for one lane.
#[derive(Default)]
struct Lane {
    /// Per object: the last acknowledged sequence number and the highest one sent.
    objects: Vec<(u64, u64)>,
    /// Per KV key: the same.
    keys: Vec<(u64, u64)>,
    next_message: u64,
    acked_messages: Vec<u64>,
    next_flow: u64,
    acked_flows: Vec<String>,
    acked_ops: u64,
}

impl Lane {
    fn new() -> Lane {
        Lane {
            objects: vec![(0, 0); OBJECTS_PER_LANE],
            keys: vec![(0, 0); OBJECTS_PER_LANE],
            ..Lane::default()
        }
    }
}

#[derive(Default, Debug)]
struct Violations {
    lost_ops: u64,
    partial_txns: u64,
    duplicate_activations: u64,
    queue_lost: u64,
    workflow_double_steps: u64,
}

pub(crate) fn run(options: Options) -> anyhow::Result<()> {
    let plan = if let Some(cycles) = options.cycles {
        Plan {
            min_cycles: cycles,
            min_acked_ops: 0,
            max_cycles: cycles,
            kill_after_ms: (700, 2_500),
        }
    } else if options.quick {
        Plan {
            min_cycles: 20,
            min_acked_ops: 10_000,
            max_cycles: 60,
            kill_after_ms: (700, 2_500),
        }
    } else {
        Plan {
            min_cycles: 100,
            min_acked_ops: 100_000,
            max_cycles: 400,
            kill_after_ms: (500, 6_000),
        }
    };
    let started = Instant::now();
    let root = workspace_root();
    let app = match options.app {
        Some(app) => app,
        None => build_app(&root)?,
    };
    let scratch = crate::scratch_dir(options.dir)?;
    crate::process::remove_on_interrupt(scratch.path());
    let seed = options
        .seed
        .unwrap_or_else(|| SmallRng::from_os_rng().random());
    println!(
        "soak: {} (seed {seed}), {LANES} client lanes, data in {}",
        app.display(),
        scratch.path().display()
    );
    let config = write_config(scratch.path())?;
    let data = scratch.path().join("data");
    let mut rng = SmallRng::seed_from_u64(seed);
    let lanes: Vec<Arc<Mutex<Lane>>> = (0..LANES)
        .map(|_| Arc::new(Mutex::new(Lane::new())))
        .collect();
    let mut violations = Violations::default();
    let mut cycles = 0;
    let mut mid_commit_kills = 0;
    let mut server_index = 0;
    let start = |index: &mut usize| -> anyhow::Result<(Server, u16)> {
        *index += 1;
        let port = free_port()?;
        let mut server = Server::start(
            "soak app",
            Command::new(&app)
                .args([
                    "--port",
                    &port.to_string(),
                    "--admin-address",
                    "127.0.0.1:0",
                ])
                .arg("--config")
                .arg(&config)
                .arg("--persist-to")
                .arg(&data)
                .current_dir(scratch.path()),
            port,
            &scratch.path().join(format!("server-{index}.log")),
        )?;
        server.wait_ready(READY_LIMIT)?;
        Ok((server, port))
    };
    let (mut server, mut port) = start(&mut server_index)?;
    loop {
        let acked: u64 = lanes.iter().map(|lane| lock(lane).acked_ops).sum();
        if cycles >= plan.max_cycles || (cycles >= plan.min_cycles && acked >= plan.min_acked_ops) {
            break;
        }
        cycles += 1;
        // Load, then a kill at a random moment while the lanes are busy.
        let stop = Arc::new(AtomicBool::new(false));
        let outstanding = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = lanes
            .iter()
            .enumerate()
            .map(|(index, lane)| {
                let lane = Arc::clone(lane);
                let stop = Arc::clone(&stop);
                let outstanding = Arc::clone(&outstanding);
                let lane_seed = rng.random();
                std::thread::Builder::new()
                    .name(format!("soak-lane-{index}"))
                    .spawn(move || drive(index, &lane, port, &stop, &outstanding, lane_seed))
            })
            .collect::<Result<_, _>>()?;
        let wait_ms = rng.random_range(plan.kill_after_ms.0..=plan.kill_after_ms.1);
        std::thread::sleep(Duration::from_millis(wait_ms));
        violations.duplicate_activations += duplicate_activations(port)?;
        let in_flight = outstanding.load(Ordering::SeqCst);
        server.kill()?;
        stop.store(true, Ordering::SeqCst);
        if in_flight > 0 {
            mid_commit_kills += 1;
        }
        for thread in threads {
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("a client lane panicked"))??;
        }
        (server, port) = start(&mut server_index)?;
        let found = verify_state(port, &lanes)?;
        violations.lost_ops += found.lost_ops;
        violations.partial_txns += found.partial_txns;
        let acked: u64 = lanes.iter().map(|lane| lock(lane).acked_ops).sum();
        println!(
            "[{:>5.1}s] cycle {cycles}: killed after {wait_ms} ms with {in_flight} requests in flight; \
             {acked} ops acknowledged so far; lost {} partial {}",
            started.elapsed().as_secs_f64(),
            violations.lost_ops,
            violations.partial_txns
        );
    }
    let (queue_lost, double_steps) = match drain(port, &lanes, scratch.path(), started) {
        Ok(found) => found,
        Err(error) => {
            let kept = scratch.keep();
            return Err(error.context(format!("the data is kept in {}", kept.display())));
        }
    };
    violations.queue_lost = queue_lost;
    violations.workflow_double_steps = double_steps;
    violations.duplicate_activations += duplicate_activations(port)?;
    server.stop()?;
    let acked: u64 = lanes.iter().map(|lane| lock(lane).acked_ops).sum();
    println!(
        "soak: {cycles} cycles in {:.1} s; seed {seed}",
        started.elapsed().as_secs_f64()
    );
    println!(
        "RESULT soak cycles={cycles} acked_ops={acked} mid_commit_kills={mid_commit_kills} \
         lost_ops={} partial_txns={} duplicate_activations={} queue_lost={} workflow_double_steps={}",
        violations.lost_ops,
        violations.partial_txns,
        violations.duplicate_activations,
        violations.queue_lost,
        violations.workflow_double_steps
    );
    if violations.lost_ops
        + violations.partial_txns
        + violations.duplicate_activations
        + violations.queue_lost
        + violations.workflow_double_steps
        > 0
    {
        bail!(
            "the soak found violations: {violations:?}; the data is in {}",
            {
                let kept = scratch.keep();
                kept.display().to_string()
            }
        );
    }
    Ok(())
}

fn lock(lane: &Mutex<Lane>) -> std::sync::MutexGuard<'_, Lane> {
    lane.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// One lane's loop: random operations, one at a time, until `stop`. A failed request (the
/// server was killed under it) is neither acknowledged nor retried.
fn drive(
    index: usize,
    lane: &Mutex<Lane>,
    port: u16,
    stop: &AtomicBool,
    outstanding: &AtomicUsize,
    seed: u64,
) -> anyhow::Result<()> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut flows_this_cycle = 0;
    let request = |method: &str, path: &str, body: &str| {
        http_request_counted(port, method, path, body, READ_TIMEOUT, outstanding)
    };
    while !stop.load(Ordering::SeqCst) {
        let choice = rng.random_range(0..100);
        let slot = rng.random_range(0..OBJECTS_PER_LANE);
        if choice < 45 {
            let seq = lock(lane).objects[slot].1 + 1;
            lock(lane).objects[slot].1 = seq;
            let path = format!("/do/{}?seq={seq}", object_name(index, slot));
            if let Ok((200, body)) = request("POST", &path, "") {
                if body.trim() != seq.to_string() {
                    bail!("POST {path} answered {body:?}");
                }
                let mut lane = lock(lane);
                lane.objects[slot].0 = seq;
                lane.acked_ops += 1;
            }
        } else if choice < 80 {
            let seq = lock(lane).keys[slot].1 + 1;
            lock(lane).keys[slot].1 = seq;
            let path = format!("/kv/{}", key_name(index, slot));
            if let Ok((200, _)) = request("PUT", &path, &seq.to_string()) {
                let mut lane = lock(lane);
                lane.keys[slot].0 = seq;
                lane.acked_ops += 1;
            }
        } else if choice < 98 || flows_this_cycle >= FLOWS_PER_LANE_PER_CYCLE {
            let id = {
                let mut lane = lock(lane);
                lane.next_message += 1;
                index as u64 * 1_000_000_000 + lane.next_message
            };
            if let Ok((200, _)) = request("POST", &format!("/queue/{id}"), "") {
                let mut lane = lock(lane);
                lane.acked_messages.push(id);
                lane.acked_ops += 1;
            }
        } else {
            flows_this_cycle += 1;
            let id = {
                let mut lane = lock(lane);
                lane.next_flow += 1;
                format!("flow-{index}-{}", lane.next_flow)
            };
            if let Ok((201, _)) = request("POST", &format!("/flow/{id}"), "") {
                let mut lane = lock(lane);
                lane.acked_flows.push(id);
                lane.acked_ops += 1;
            }
        }
    }
    Ok(())
}

fn object_name(lane: usize, slot: usize) -> String {
    format!("account-{lane}-{slot}")
}

fn key_name(lane: usize, slot: usize) -> String {
    format!("key-{lane}-{slot}")
}

/// A request of the verifier: it must succeed.
fn get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    http_request(port, "GET", path, "", READ_TIMEOUT).with_context(|| format!("GET {path}"))
}

fn duplicate_activations(port: u16) -> anyhow::Result<u64> {
    let (status, body) = get(port, "/stats")?;
    if status != 200 {
        bail!("GET /stats answered {status}: {body}");
    }
    let stats: serde_json::Value = serde_json::from_str(&body).context("GET /stats")?;
    stats["duplicate_activations"]
        .as_u64()
        .context("GET /stats has no duplicate_activations")
}

/// Checks every object and key against the lanes' logs. Reports (without failing) what it finds.
fn verify_state(port: u16, lanes: &[Arc<Mutex<Lane>>]) -> anyhow::Result<Violations> {
    let mut found = Violations::default();
    for (index, lane) in lanes.iter().enumerate() {
        let lane = lock(lane);
        for (slot, &(acked, sent)) in lane.objects.iter().enumerate() {
            let name = object_name(index, slot);
            let (status, body) = get(port, &format!("/do/{name}"))?;
            if status != 200 {
                bail!("GET /do/{name} answered {status}: {body}");
            }
            let values: Vec<Option<u64>> =
                serde_json::from_str(&body).with_context(|| format!("GET /do/{name}: {body}"))?;
            let distinct: BTreeSet<Option<u64>> = values.iter().copied().collect();
            if values.len() != KEYS_PER_TRANSACTION || distinct.len() != 1 {
                eprintln!("      partial transaction on {name}: {values:?}");
                found.partial_txns += 1;
                continue;
            }
            let value = values[0].unwrap_or(0);
            if value < acked || value > sent {
                eprintln!("      {name} holds {value}; acknowledged {acked}, highest sent {sent}");
                found.lost_ops += 1;
            }
        }
        for (slot, &(acked, sent)) in lane.keys.iter().enumerate() {
            let key = key_name(index, slot);
            let (status, body) = get(port, &format!("/kv/{key}"))?;
            let value = match status {
                200 => body
                    .trim()
                    .parse::<u64>()
                    .with_context(|| format!("GET /kv/{key}: {body:?}"))?,
                404 => 0,
                _ => bail!("GET /kv/{key} answered {status}: {body}"),
            };
            if value < acked || value > sent {
                eprintln!(
                    "      KV {key} holds {value}; acknowledged {acked}, highest sent {sent}"
                );
                found.lost_ops += 1;
            }
        }
    }
    Ok(found)
}

/// After the last restart: waits for every acknowledged message to reach a sink and every
/// acknowledged workflow to complete, then checks the side-effect log. Returns
/// `(queue_lost, workflow_double_steps)`.
fn drain(
    port: u16,
    lanes: &[Arc<Mutex<Lane>>],
    scratch: &Path,
    started: Instant,
) -> anyhow::Result<(u64, u64)> {
    let messages: BTreeSet<u64> = lanes
        .iter()
        .flat_map(|lane| lock(lane).acked_messages.clone())
        .collect();
    let flows: Vec<String> = lanes
        .iter()
        .flat_map(|lane| lock(lane).acked_flows.clone())
        .collect();
    println!(
        "[{:>5.1}s] draining: {} acknowledged messages, {} acknowledged workflow instances",
        started.elapsed().as_secs_f64(),
        messages.len(),
        flows.len()
    );
    let deadline = Instant::now() + DRAIN_LIMIT;
    let missing = loop {
        let mut received = BTreeSet::new();
        for shard in 0..8 {
            let (status, body) = get(port, &format!("/sink/{shard}"))?;
            if status != 200 {
                bail!("GET /sink/{shard} answered {status}: {body}");
            }
            let ids: Vec<u64> = serde_json::from_str(&body).context("sink ids")?;
            received.extend(ids);
        }
        let missing = messages.difference(&received).count() as u64;
        if missing == 0 || Instant::now() > deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut outputs: HashMap<String, Vec<String>> = HashMap::new();
    let mut stuck = Vec::new();
    for flow in &flows {
        loop {
            let (status, body) = get(port, &format!("/flow/{flow}"))?;
            if status != 200 {
                bail!("GET /flow/{flow} answered {status}: {body}");
            }
            let state: serde_json::Value = serde_json::from_str(&body).context("flow status")?;
            match state["status"].as_str() {
                Some("complete") => {
                    let tokens: Vec<String> = serde_json::from_value(state["output"].clone())
                        .with_context(|| format!("flow {flow} output: {body}"))?;
                    outputs.insert(flow.clone(), tokens);
                    break;
                }
                Some("errored" | "terminated") => bail!("workflow {flow} ended as {body}"),
                _ if Instant::now() > deadline => {
                    stuck.push(format!("{flow}: {body}"));
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
    if !stuck.is_empty() {
        bail!(
            "{} of {} acknowledged workflow instances did not complete within {DRAIN_LIMIT:?}:\n{}",
            stuck.len(),
            flows.len(),
            stuck.join("\n")
        );
    }
    let log = std::fs::read_to_string(scratch.join("side-effects.log")).unwrap_or_default();
    let double_steps = double_steps(&log, &outputs)?;
    println!(
        "[{:>5.1}s] drained: {missing} messages missing, {} workflows complete, {} side-effect lines",
        started.elapsed().as_secs_f64(),
        outputs.len(),
        log.lines().count()
    );
    Ok((missing, double_steps))
}

/// Counts step callbacks that ran after the run whose result the workflow recorded.
fn double_steps(log: &str, outputs: &HashMap<String, Vec<String>>) -> anyhow::Result<u64> {
    // (instance, step) → the tokens of its runs, in log order.
    let mut runs: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for line in log.lines() {
        let mut fields = line.split(' ');
        let (Some(instance), Some(step), Some(token), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        runs.entry((instance, step)).or_default().push(token);
    }
    let mut doubles = 0;
    for (instance, tokens) in outputs {
        for (step, token) in ["a", "b", "c"].iter().zip(tokens) {
            let logged = runs
                .get(&(instance.as_str(), *step))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let Some(position) = logged.iter().position(|logged| logged == token) else {
                bail!(
                    "workflow {instance} step {step} recorded token {token}, which its side-effect \
                     log does not hold"
                );
            };
            let again = (logged.len() - position - 1) as u64;
            if again > 0 {
                eprintln!(
                    "      workflow {instance} step {step} ran {again} more times after its recorded run"
                );
            }
            doubles += again;
        }
    }
    Ok(doubles)
}

/// The app's configuration, with the side-effect log in the scratch directory.
fn write_config(scratch: &Path) -> anyhow::Result<PathBuf> {
    let template = std::fs::read_to_string(workspace_root().join("examples/soak/wrangler.toml"))
        .context("reading examples/soak/wrangler.toml")?;
    let log = scratch.join("side-effects.log");
    let text = template.replace(
        "SIDE_EFFECTS_FILE = \"side-effects.log\"",
        &format!("SIDE_EFFECTS_FILE = {:?}", log.display().to_string()),
    );
    if text == template {
        bail!("examples/soak/wrangler.toml no longer sets SIDE_EFFECTS_FILE");
    }
    let path = scratch.join("wrangler.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// `cargo build --release --example soak`, and the executable's path.
fn build_app(root: &Path) -> anyhow::Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--example", "soak"])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release --example soak failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    Ok(target.join("release/examples/soak"))
}
