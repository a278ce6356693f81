//! `burrow dev` and `burrow serve`: load and validate the configuration, report warnings and a
//! summary of what will run, then hand over to the server.

use anyhow::bail;
use burrow_config::LoadedConfig;
use burrow_sdk::server::{Flags, Mode, ServeOptions, Stopped, log_summary};
use std::sync::Arc;
use tokio::sync::Notify;
use tracing::warn;

use crate::cli::{DevArgs, ServeArgs};
use crate::reload;
use crate::server::{run_server, run_server_until};

pub(crate) fn dev(args: DevArgs) -> anyhow::Result<()> {
    if args.config.is_empty() && args.dir.is_file() {
        bail!(
            "{}: burrow dev takes a project directory; use -c {} for a configuration file",
            args.dir.display(),
            args.dir.display()
        );
    }
    let load = {
        let options = args.common.load_options();
        let (dir, config) = (args.dir.clone(), args.config.clone());
        move || -> anyhow::Result<LoadedConfig> {
            Ok(if config.is_empty() {
                burrow_config::load_dir(&dir, &options)?
            } else {
                burrow_config::load_files(&config, &options)?
            })
        }
    };
    let mut loaded = load()?;
    let mut addresses = None;
    loop {
        for warning in &loaded.warnings {
            warn!("{warning}");
        }
        let mut options = ServeOptions::resolve(&loaded, &args.common, Mode::Dev)?;
        // After a restart, the same ports (they may have been chosen by the system).
        if let Some((ingress, admin)) = addresses {
            options.listen = ingress;
            options.admin_address = admin;
        }
        log_summary(&loaded, &options);
        let restart = Arc::new(Notify::new());
        let watch = if options.watch {
            Some(reload::watch(
                reload::watched_files(&loaded),
                load.clone(),
                Arc::clone(&restart),
            )?)
        } else {
            None
        };
        match run_server_until(loaded, options, restart)? {
            Stopped::Signal => return Ok(()),
            Stopped::Restart { ingress, admin } => {
                addresses = Some((ingress, admin));
                loaded = watch
                    .as_ref()
                    .and_then(reload::ConfigWatch::take)
                    .ok_or_else(|| anyhow::anyhow!("restarted without a new configuration"))?;
            }
        }
    }
}

pub(crate) fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let loaded = burrow_config::load_files(&args.config, &args.common.load_options())?;
    start(loaded, &args.common, Mode::Serve)
}

fn start(loaded: LoadedConfig, common: &Flags, mode: Mode) -> anyhow::Result<()> {
    for warning in &loaded.warnings {
        warn!("{warning}");
    }
    let options = ServeOptions::resolve(&loaded, common, mode)?;
    log_summary(&loaded, &options);
    run_server(loaded, options)
}
