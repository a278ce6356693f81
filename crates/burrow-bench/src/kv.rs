//! `burrow-bench kv`: Workers KV against Redis, the same client load on both, in the same run.
//!
//! - Burrow: `examples/kv_bench` (a Worker whose `GET|PUT /kv/:key` use the KV binding) with a
//!   fresh data directory, driven by `wrk` with a Lua script.
//! - Redis: a local `redis-server` with `appendonly yes` and `appendfsync always`, so that a SET
//!   is acknowledged only once it is on disk, as a Burrow put is; driven by `redis-benchmark`.
//!
//! Both get the same load: 64 connections with one request in flight each, 100-byte values,
//! keys drawn at random from 10,000, writes first (which also fill the key space) and then reads.
//! Each client runs in its own process. The tools come from Debian (`wrk`, `redis-server`,
//! `redis-tools`); the benchmark installs them with apt-get when they are missing.
//!
//! `RESULT kv get_ops_per_s=N put_ops_per_s=N get_ratio_vs_redis=X put_ratio_vs_redis=X`

use crate::process::{Guard, Server, free_port};
use anyhow::{Context, bail};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Connections of every phase, on both systems.
const CONNECTIONS: u32 = 64;
/// Bytes of every value.
const VALUE_BYTES: usize = 100;
/// Distinct keys.
const KEYS: u32 = 10_000;
/// The most failed requests a phase may have (missing keys on reads count; puts must all land).
const MAX_ERROR_FRACTION: f64 = 0.01;
/// How long the server may take to answer its first `GET /hello`.
const READY_LIMIT: Duration = Duration::from_secs(60);

/// What `kv` takes on its command line.
pub(crate) struct Options {
    pub(crate) quick: bool,
    /// A prebuilt kv_bench executable (default: build it with cargo).
    pub(crate) app: Option<PathBuf>,
}

/// How long each part runs.
struct Plan {
    warmup: Duration,
    phase: Duration,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                warmup: Duration::from_secs(1),
                phase: Duration::from_secs(4),
            }
        } else {
            Plan {
                warmup: Duration::from_secs(3),
                phase: Duration::from_secs(15),
            }
        }
    }
}

/// Operations per second of one phase.
#[derive(Debug, Clone, Copy)]
struct Rate {
    ops_per_s: f64,
    requests: u64,
    errors: u64,
}

pub(crate) fn run(options: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let plan = Plan::new(options.quick);
    ensure_tools()?;
    let root = workspace_root();
    let scratch = crate::scratch_dir(None)?;

    let app = match options.app {
        Some(app) => app,
        None => build_app(&root)?,
    };
    eprintln!(
        "[{:>5.1}s] Burrow: {} with a fresh data directory; wrk, {CONNECTIONS} connections",
        started.elapsed().as_secs_f64(),
        app.display()
    );
    let (burrow_put, burrow_get) = burrow(&app, &root, scratch.path(), &plan)?;
    eprintln!(
        "      put {:.0}/s ({} requests, {} errors), get {:.0}/s ({} requests, {} errors)",
        burrow_put.ops_per_s,
        burrow_put.requests,
        burrow_put.errors,
        burrow_get.ops_per_s,
        burrow_get.requests,
        burrow_get.errors
    );

    eprintln!(
        "[{:>5.1}s] Redis: redis-server (appendonly yes, appendfsync always); redis-benchmark, \
         {CONNECTIONS} connections",
        started.elapsed().as_secs_f64()
    );
    let (redis_set, redis_get) = redis(scratch.path(), &plan)?;
    eprintln!(
        "      SET {:.0}/s, GET {:.0}/s",
        redis_set.ops_per_s, redis_get.ops_per_s
    );

    let get_ratio = burrow_get.ops_per_s / redis_get.ops_per_s;
    let put_ratio = burrow_put.ops_per_s / redis_set.ops_per_s;
    eprintln!("[{:>5.1}s] done", started.elapsed().as_secs_f64());
    println!(
        "RESULT kv get_ops_per_s={:.0} put_ops_per_s={:.0} get_ratio_vs_redis={get_ratio:.2} \
         put_ratio_vs_redis={put_ratio:.2}",
        burrow_get.ops_per_s, burrow_put.ops_per_s
    );
    Ok(())
}

/// Installs wrk, redis-server and redis-benchmark from Debian when one is missing.
fn ensure_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = ["wrk", "redis-server", "redis-benchmark"]
        .into_iter()
        .filter(|tool| !on_path(tool))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "      installing {} (apt-get install -y wrk redis-server redis-tools)",
        missing.join(", ")
    );
    let install = |arguments: &[&str]| -> anyhow::Result<bool> {
        Ok(Command::new("apt-get")
            .args(arguments)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running apt-get (the benchmark needs wrk, redis-server, redis-benchmark)")?
            .success())
    };
    let packages = ["install", "-y", "wrk", "redis-server", "redis-tools"];
    // A stale package list is the usual reason an install fails: update once and retry.
    let installed = install(&packages)? || (install(&["update"])? && install(&packages)?);
    if !installed {
        bail!("apt-get could not install wrk, redis-server and redis-tools; install them by hand");
    }
    Ok(())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|directory| directory.join(tool).is_file())
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// `cargo build --release --example kv_bench`, and the executable's path.
fn build_app(root: &Path) -> anyhow::Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--example", "kv_bench"])
        .current_dir(root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release --example kv_bench failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    Ok(target.join("release/examples/kv_bench"))
}

/// The PUT phase, then the GET phase, against a fresh kv_bench.
fn burrow(app: &Path, root: &Path, scratch: &Path, plan: &Plan) -> anyhow::Result<(Rate, Rate)> {
    let port = free_port()?;
    let data = scratch.join("burrow-data");
    let mut server = Server::start(
        "kv_bench server",
        Command::new(app)
            .args(["--port", &port.to_string(), "--persist-to"])
            .arg(&data)
            .current_dir(root),
        port,
        &scratch.join("kv_bench.log"),
    )?;
    server.wait_ready(READY_LIMIT)?;
    let put_script = scratch.join("put.lua");
    let get_script = scratch.join("get.lua");
    std::fs::write(&put_script, lua_script("PUT"))?;
    std::fs::write(&get_script, lua_script("GET"))?;
    let url = server.url("");
    // Warm-ups: the write warm-up also fills most of the key space.
    wrk(&url, &put_script, plan.warmup)?;
    let put = wrk(&url, &put_script, plan.phase)?;
    wrk(&url, &get_script, plan.warmup)?;
    let get = wrk(&url, &get_script, plan.phase)?;
    server.stop()?;
    for (name, rate) in [("PUT", put), ("GET", get)] {
        if rate.errors as f64 > MAX_ERROR_FRACTION * rate.requests as f64 {
            bail!(
                "{} of {} {name} requests failed; the figure would mean nothing",
                rate.errors,
                rate.requests
            );
        }
    }
    Ok((put, get))
}

/// A wrk script: one request per call, a random key of [`KEYS`], a [`VALUE_BYTES`] body for PUT.
fn lua_script(method: &str) -> String {
    let body = if method == "PUT" {
        format!("string.rep(\"v\", {VALUE_BYTES})")
    } else {
        "nil".to_owned()
    };
    format!(
        "-- Generated by burrow-bench kv.\n\
         local body = {body}\n\
         init = function(args)\n  \
           math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1000000))\n\
         end\n\
         request = function()\n  \
           return wrk.format(\"{method}\", \"/kv/key:\" .. math.random(0, {}), nil, body)\n\
         end\n",
        KEYS - 1
    )
}

/// Runs wrk for `duration` and reads its summary.
fn wrk(url: &str, script: &Path, duration: Duration) -> anyhow::Result<Rate> {
    let output = Command::new("wrk")
        .args([
            "-t2".to_owned(),
            format!("-c{CONNECTIONS}"),
            format!("-d{}s", duration.as_secs().max(1)),
            "--timeout".to_owned(),
            "10s".to_owned(),
            "-s".to_owned(),
        ])
        .arg(script)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_wrk(&text).with_context(|| format!("reading wrk's summary:\n{text}"))
}

fn parse_wrk(text: &str) -> anyhow::Result<Rate> {
    let mut ops_per_s = None;
    let mut requests = None;
    let mut errors = 0u64;
    for line in text.lines().map(str::trim) {
        if let Some(rate) = line.strip_prefix("Requests/sec:") {
            ops_per_s = rate.trim().parse::<f64>().ok();
        } else if line.contains(" requests in ") {
            requests = line.split_whitespace().next().and_then(|n| n.parse().ok());
        } else if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += count.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(counts) = line.strip_prefix("Socket errors:") {
            errors += counts
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Ok(Rate {
        ops_per_s: ops_per_s.context("no Requests/sec line")?,
        requests: requests.context("no request count")?,
        errors,
    })
}

/// SET, then GET, on a fresh redis-server that fsyncs every write before answering.
fn redis(scratch: &Path, plan: &Plan) -> anyhow::Result<(Rate, Rate)> {
    let port = free_port()?;
    let data = scratch.join("redis-data");
    std::fs::create_dir_all(&data)?;
    let log = std::fs::File::create(scratch.join("redis.log"))?;
    let _redis = Guard::spawn(
        "redis-server",
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--protected-mode",
                "no",
            ])
            .arg("--dir")
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log),
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if Instant::now() > deadline {
            bail!("redis-server did not listen on port {port} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let set = redis_phase(port, "set", plan)?;
    let get = redis_phase(port, "get", plan)?;
    Ok((set, get))
}

/// One redis-benchmark test sized to run about as long as Burrow's phase: a warm-up run of
/// [`Plan::warmup`] measures the rate, and the measured run asks for that rate × the phase.
fn redis_phase(port: u16, test: &str, plan: &Plan) -> anyhow::Result<Rate> {
    let warm = redis_benchmark(port, test, 2_000)?;
    let requests = (warm.ops_per_s * plan.warmup.as_secs_f64()).max(2_000.0) as u64;
    let warm = redis_benchmark(port, test, requests)?;
    let requests = (warm.ops_per_s * plan.phase.as_secs_f64()).max(10_000.0) as u64;
    redis_benchmark(port, test, requests)
}

fn redis_benchmark(port: u16, test: &str, requests: u64) -> anyhow::Result<Rate> {
    let output = Command::new("redis-benchmark")
        .args([
            "-h".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
            "-c".to_owned(),
            CONNECTIONS.to_string(),
            "-d".to_owned(),
            VALUE_BYTES.to_string(),
            "-r".to_owned(),
            KEYS.to_string(),
            "-n".to_owned(),
            requests.to_string(),
            "-t".to_owned(),
            test.to_owned(),
            "--csv".to_owned(),
        ])
        .stdin(Stdio::null())
        .output()
        .context("running redis-benchmark")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("redis-benchmark failed ({}): {text}", output.status);
    }
    // "test","rps",...  then  "SET","7030.62",...
    let ops_per_s = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(',').map(|field| field.trim_matches('"'));
            let name = fields.next()?;
            let rate = fields.next()?.parse::<f64>().ok()?;
            name.eq_ignore_ascii_case(test).then_some(rate)
        })
        .next()
        .with_context(|| format!("no {test} line in redis-benchmark's output:\n{text}"))?;
    Ok(Rate {
        ops_per_s,
        requests,
        errors: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_summaries_parse() {
        let text = "Running 5s test @ http://127.0.0.1:1\n  2 threads and 64 connections\n  \
                    55894 requests in 5.03s, 3.41MB read\n  Socket errors: connect 0, read 2, \
                    write 0, timeout 1\n  Non-2xx or 3xx responses: 408\nRequests/sec:  11120.70\n\
                    Transfer/sec:    695.04KB\n";
        let rate = parse_wrk(text).unwrap();
        assert_eq!(rate.requests, 55_894);
        assert_eq!(rate.errors, 411);
        assert!((rate.ops_per_s - 11_120.70).abs() < 1e-6);
    }

    #[test]
    fn scripts_name_random_keys() {
        let put = lua_script("PUT");
        assert!(put.contains("string.rep(\"v\", 100)"));
        assert!(put.contains("math.random(0, 9999)"));
        assert!(lua_script("GET").contains("local body = nil"));
    }
}
