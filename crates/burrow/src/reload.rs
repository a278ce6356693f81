//! `burrow dev` restarts its server when the configuration changes: a watcher thread polls the
//! configuration files and `.dev.vars`, loads the new configuration, and only when it loads
//! asks the running server to stop gracefully; `dev` then starts again with it on the same
//! ports. A configuration that does not load is reported and the running server keeps going.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use burrow_config::LoadedConfig;
use tokio::sync::Notify;
use tracing::{error, info};

/// How often the watched files are looked at.
const INTERVAL: Duration = Duration::from_millis(300);

/// A running watcher; dropping it stops the thread.
pub(crate) struct ConfigWatch {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    next: Arc<Mutex<Option<LoadedConfig>>>,
}

/// The files whose change restarts the server: every configuration file and its `.dev.vars`.
pub(crate) fn watched_files(loaded: &LoadedConfig) -> Vec<PathBuf> {
    loaded
        .workers()
        .flat_map(|worker| [worker.file.clone(), worker.dir.join(".dev.vars")])
        .collect()
}

/// Each file's modification time (`None` while it does not exist).
fn stamps(files: &[PathBuf]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .map(|file| std::fs::metadata(file).and_then(|m| m.modified()).ok())
        .collect()
}

/// Starts watching `files`; when they change and `load` succeeds, keeps the new configuration
/// for [`ConfigWatch::take`] and notifies `restart`.
pub(crate) fn watch(
    files: Vec<PathBuf>,
    load: impl Fn() -> anyhow::Result<LoadedConfig> + Send + 'static,
    restart: Arc<Notify>,
) -> std::io::Result<ConfigWatch> {
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(Mutex::new(None));
    let handle = {
        let stop = Arc::clone(&stop);
        let next = Arc::clone(&next);
        std::thread::Builder::new()
            .name("burrow-config-watch".to_owned())
            .spawn(move || {
                let mut last = stamps(&files);
                while !stop.load(Ordering::Acquire) {
                    std::thread::sleep(INTERVAL);
                    let now = stamps(&files);
                    if now == last {
                        continue;
                    }
                    last = now;
                    match load() {
                        Ok(loaded) => {
                            info!("configuration changed: restarting the server with it");
                            *next.lock().unwrap_or_else(PoisonError::into_inner) = Some(loaded);
                            restart.notify_one();
                            return;
                        }
                        Err(problem) => error!(
                            "configuration changed but does not load; the server keeps running the previous one: {problem:#}"
                        ),
                    }
                }
            })?
    };
    Ok(ConfigWatch {
        stop,
        handle: Some(handle),
        next,
    })
}

impl ConfigWatch {
    /// The configuration that triggered the restart, once.
    pub(crate) fn take(&self) -> Option<LoadedConfig> {
        self.next
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
