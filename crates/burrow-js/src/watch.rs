//! `burrow dev`'s reload: a thread polls the modification times of the project's files and
//! starts a new generation of the Worker when one changes, is added or is removed. Polling needs
//! no platform API and stays cheap for a project's few hundred files; the scan is bounded.
//! A change of the configuration (bindings, vars, `.dev.vars`) restarts the whole server
//! instead, which `burrow dev` does itself (`crates/burrow/src/reload.rs`).

use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::JsWorker;

/// Files looked at per scan, at most; a larger tree is only partly watched (and said so).
const MAX_FILES: usize = 20_000;

/// Directories never watched: dependencies, Burrow's state, version control, build output.
const SKIPPED: &[&str] = &[
    "node_modules",
    ".burrow",
    ".git",
    "target",
    ".wrangler",
    "dist",
];

/// Starts the watcher thread.
pub(crate) fn start(
    worker: Weak<JsWorker>,
    root: PathBuf,
    interval: Duration,
) -> std::io::Result<()> {
    let mut last = scan(&root);
    std::thread::Builder::new()
        .name("burrow-js-watch".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                let Some(worker) = worker.upgrade() else { return };
                let now = scan(&root);
                if now != last {
                    let changed = first_difference(&last, &now);
                    worker.reload();
                    info!(worker = %worker.name(), file = %changed.display(), "source changed: reloading the Worker");
                    last = now;
                }
            }
        })
        .map(drop)
}

/// Every watched file with its modification time, sorted by path.
fn scan(root: &Path) -> Vec<(PathBuf, SystemTime)> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                let name = entry.file_name();
                if !SKIPPED.iter().any(|skipped| name == *skipped) {
                    pending.push(path);
                }
            } else if kind.is_file() {
                if files.len() >= MAX_FILES {
                    warn!(root = %root.display(), "more than {MAX_FILES} files: only some are watched for changes");
                    files.sort();
                    return files;
                }
                let modified = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                files.push((path, modified));
            }
        }
    }
    files.sort();
    files
}

/// A file that differs between two scans (for the log line).
fn first_difference(before: &[(PathBuf, SystemTime)], after: &[(PathBuf, SystemTime)]) -> PathBuf {
    for (a, b) in before.iter().zip(after) {
        if a != b {
            return if a.0 <= b.0 { a.0.clone() } else { b.0.clone() };
        }
    }
    before
        .get(after.len())
        .or_else(|| after.get(before.len()))
        .map(|(path, _)| path.clone())
        .unwrap_or_default()
}
