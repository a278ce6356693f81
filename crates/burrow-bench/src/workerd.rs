//! workerd, Cloudflare's open-source Workers runtime, as a reference: installed from npm into a
//! cache under `./target`, and run with `bench/workerd/config.capnp` (the JavaScript twin of
//! `examples/bench_app`, with SQLite-backed Durable Objects on local disk).

use crate::process::Guard;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The pinned npm version, so that runs compare against the same workerd.
pub(crate) const VERSION: &str = "1.20261117.1";
/// The most time `npm install` may take.
const INSTALL_LIMIT: Duration = Duration::from_secs(300);

/// The workerd binary, installed into `./target/bench-cache/workerd-<VERSION>` on first use.
pub(crate) fn install() -> anyhow::Result<PathBuf> {
    let cache = Path::new("target")
        .join("bench-cache")
        .join(format!("workerd-{VERSION}"));
    if let Some(binary) = installed(&cache) {
        return Ok(binary);
    }
    eprintln!(
        "      installing workerd@{VERSION} from npm into {}",
        cache.display()
    );
    std::fs::create_dir_all(&cache)?;
    let mut command = Command::new("npm");
    command
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&cache)
        .arg(format!("workerd@{VERSION}"))
        .stdin(Stdio::null())
        // Our stdout carries only the RESULT line.
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit());
    let mut npm = Guard::spawn("npm install", &mut command)?;
    let status = npm
        .wait_timeout(INSTALL_LIMIT)?
        .with_context(|| format!("npm install took longer than {INSTALL_LIMIT:?}"))?;
    if !status.success() {
        bail!("npm install workerd@{VERSION} failed ({status})");
    }
    installed(&cache).with_context(|| {
        format!(
            "npm installed workerd@{VERSION}, but no workerd binary for this platform is in {}",
            cache.display()
        )
    })
}

/// The cached binary, if it is there and runs.
fn installed(cache: &Path) -> Option<PathBuf> {
    let platform = match std::env::consts::ARCH {
        "x86_64" => "linux-64",
        "aarch64" => "linux-arm64",
        _ => return None,
    };
    let modules = cache.join("node_modules");
    [
        modules.join(format!("@cloudflare/workerd-{platform}/bin/workerd")),
        modules.join("workerd/bin/workerd"),
    ]
    .into_iter()
    .find(|binary| {
        Command::new(binary)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    })
    .map(|binary| std::path::absolute(&binary).unwrap_or(binary))
}

/// `workerd serve` of the benchmark worker on `127.0.0.1:<port>`, storing objects in `storage`.
pub(crate) fn command(binary: &Path, root: &Path, port: u16, storage: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .arg(root.join("bench/workerd/config.capnp"))
        .arg(format!("--socket-addr=http=127.0.0.1:{port}"))
        .arg(format!("--directory-path=storage={}", storage.display()));
    command
}
