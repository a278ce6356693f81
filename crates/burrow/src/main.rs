//! The `burrow` binary: parses the command line, sets up logging, and runs a command. The work
//! lives in the libraries (`burrow-config`, `burrow-runtime`, `burrow-http`, and the server
//! start-up in `burrow-sdk`, which Rust apps share); this crate is glue.

mod cli;
mod kv;
mod objects;
mod queues;
mod reload;
mod remote;
mod server;
mod start;
mod workflows;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Exit code of a subcommand that this build does not have yet.
const EXIT_UNAVAILABLE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = cli.command.name();
    let result = match cli.command {
        Command::Dev(args) => {
            burrow_sdk::server::init_logging(cli.log_format);
            start::dev(args)
        }
        Command::Serve(args) => {
            burrow_sdk::server::init_logging(cli.log_format);
            start::serve(args)
        }
        Command::Workers(args) => remote::workers(args),
        Command::Kv(args) => kv::run(args),
        Command::Queues(args) => queues::run(args),
        Command::Workflows(args) => workflows::run(args),
        Command::Objects(args) => objects::run(args),
        Command::Sql(_) => {
            eprintln!("burrow {name}: not yet available in this build");
            return ExitCode::from(EXIT_UNAVAILABLE);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
