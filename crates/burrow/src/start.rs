//! `burrow dev` and `burrow serve`: load and validate the configuration, report warnings and a
//! summary of what will run, then hand over to the server.

use anyhow::bail;
use burrow_config::LoadedConfig;
use burrow_sdk::server::{Flags, Mode, ServeOptions, log_summary};
use tracing::warn;

use crate::cli::{DevArgs, ServeArgs};
use crate::server::run_server;

pub(crate) fn dev(args: DevArgs) -> anyhow::Result<()> {
    let options = args.common.load_options();
    let loaded = if args.config.is_empty() {
        if args.dir.is_file() {
            bail!(
                "{}: burrow dev takes a project directory; use -c {} for a configuration file",
                args.dir.display(),
                args.dir.display()
            );
        }
        burrow_config::load_dir(&args.dir, &options)?
    } else {
        burrow_config::load_files(&args.config, &options)?
    };
    start(loaded, &args.common, Mode::Dev)
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
