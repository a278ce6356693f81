//! `burrow-bench`: Burrow's benchmarks. Each prints ratios against a reference measured in the same run.
//!
//! Every benchmark ends with one `RESULT <name> key=value ...` line; scripts parse that line.

mod js;
mod js_objects;
mod kv;
mod load;
mod objects;
mod process;
mod queues;
mod soak;
mod stats;
mod storage;
mod websockets;
mod workerd;
mod workflows;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "burrow-bench",
    about = "Burrow's benchmarks, with same-run references"
)]
struct Cli {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Group commit of many objects vs one SQLite database with synchronous=FULL.
    Storage {
        /// A short run (under 60 s) with 100 objects only.
        #[arg(long)]
        quick: bool,
        /// Directory on the disk to measure (default: a temporary directory under ./target).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Durable Objects over HTTP: examples/bench_app under load from a separate process.
    Objects {
        /// A short run (under 90 s).
        #[arg(long)]
        quick: bool,
        /// Also run workerd (from npm) with the same worker and loads, and print the ratios.
        #[arg(long)]
        vs_workerd: bool,
        /// A prebuilt bench_app executable (default: build it with cargo).
        #[arg(long, value_name = "PATH")]
        app: Option<PathBuf>,
        /// Print the figures even when over 1 % of a measured phase's requests fail (diagnosis).
        #[arg(long)]
        allow_errors: bool,
    },
    /// Queues: durable sends and end-to-end delivery, against a redis reliable queue.
    Queues {
        /// A short run (under 90 s).
        #[arg(long)]
        quick: bool,
        /// Also run the reliable-queue pattern on a local redis-server (appendfsync always).
        #[arg(long)]
        vs_redis: bool,
        /// Directory on the disk to measure (default: a temporary directory under ./target).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Partition objects per queue.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
    },
    /// Workers KV (GET|PUT through a Worker's binding, wrk) vs redis-server with appendfsync
    /// always (redis-benchmark): 64 connections, 100-byte values, 10,000 keys.
    Kv {
        /// A short run (under 60 s).
        #[arg(long)]
        quick: bool,
        /// A prebuilt kv_bench executable (default: build it with cargo).
        #[arg(long, value_name = "PATH")]
        app: Option<PathBuf>,
    },
    /// Workflows: instances of a 3-step no-op workflow, 100 in flight, steps durable one by one.
    Workflows {
        /// A short run (under 90 s).
        #[arg(long)]
        quick: bool,
        /// Also run the same workflow on Restate (server and TypeScript SDK from npm).
        #[arg(long)]
        vs_restate: bool,
        /// Directory on the disk to measure (default: a temporary directory under ./target).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Hibernatable WebSockets on examples/chat: idle sockets in hibernated rooms (server RSS
    /// per socket), fan-out from one sender to 1,000 sockets, broadcast latency.
    Websockets {
        /// A short run (under 90 s once the example is built).
        #[arg(long)]
        quick: bool,
        /// A prebuilt chat example executable (default: build it with cargo).
        #[arg(long, value_name = "PATH")]
        app: Option<PathBuf>,
    },
    /// The whole-system crash soak: examples/soak under a mixed load, `kill -9` at random moments,
    /// restart, and every invariant checked against the client's log of acknowledged operations.
    Soak {
        /// At least 20 cycles and 10,000 acknowledged operations (under 300 s).
        #[arg(long)]
        quick: bool,
        /// A prebuilt soak executable (default: build it with cargo).
        #[arg(long, value_name = "PATH")]
        app: Option<PathBuf>,
        /// Where the data directory goes (default: a temporary directory under ./target).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The seed of the kill times and the operation mix (default: random, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Exactly this many cycles, whatever the operation count (the CI test's short soak).
        #[arg(long, conflicts_with = "quick")]
        cycles: Option<usize>,
    },
    /// JavaScript Workers: bench/js/worker.js under Burrow and under workerd (from npm), hello
    /// and 1 KB JSON at 32 connections, and the cold start of a 1 MB bundle.
    Js {
        /// A short run (under 120 s once built).
        #[arg(long)]
        quick: bool,
        /// A prebuilt burrow executable (default: build it with cargo).
        #[arg(long, value_name = "PATH")]
        burrow: Option<PathBuf>,
    },
    /// JavaScript Durable Objects: bench/js-objects/worker.js (a SQLite-backed counter over RPC)
    /// under Burrow and under workerd (from npm, local-disk storage), one hot counter and 10,000
    /// counters at random, at 32 connections.
    JsObjects {
        /// A short run (under 120 s once built).
        #[arg(long)]
        quick: bool,
        /// A prebuilt burrow executable (default: build it with cargo).
        #[arg(long, value_name = "PATH")]
        burrow: Option<PathBuf>,
    },
    /// The HTTP load generator the other benchmarks start as a separate process.
    Load(load::Args),
    /// The WebSocket clients the websockets benchmark starts as a separate process.
    WsClients(websockets::clients::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().bench {
        Bench::Storage { quick, dir } => storage::run(quick, dir),
        Bench::Objects {
            quick,
            vs_workerd,
            app,
            allow_errors,
        } => objects::run(objects::Options {
            quick,
            vs_workerd,
            app,
            allow_errors,
        }),
        Bench::Queues {
            quick,
            vs_redis,
            dir,
            partitions,
        } => queues::run(queues::Options {
            quick,
            vs_redis,
            dir,
            partitions,
        }),
        Bench::Kv { quick, app } => kv::run(kv::Options { quick, app }),
        Bench::Workflows {
            quick,
            vs_restate,
            dir,
        } => workflows::run(workflows::Options {
            quick,
            vs_restate,
            dir,
        }),
        Bench::Websockets { quick, app } => websockets::run(websockets::Options { quick, app }),
        Bench::Soak {
            quick,
            app,
            dir,
            seed,
            cycles,
        } => soak::run(soak::Options {
            quick,
            app,
            dir,
            seed,
            cycles,
        }),
        Bench::Js { quick, burrow } => js::run(js::Options { quick, burrow }),
        Bench::JsObjects { quick, burrow } => {
            js_objects::run(js_objects::Options { quick, burrow })
        }
        Bench::Load(args) => load::main(args),
        Bench::WsClients(args) => websockets::clients::main(args),
    }
}

/// A scratch directory on the disk under test, removed on drop.
pub(crate) fn scratch_dir(dir: Option<PathBuf>) -> anyhow::Result<tempfile::TempDir> {
    let parent = dir.unwrap_or_else(|| PathBuf::from("target"));
    std::fs::create_dir_all(&parent)?;
    Ok(tempfile::Builder::new()
        .prefix("burrow-bench-")
        .tempdir_in(parent)?)
}
