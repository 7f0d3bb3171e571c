//! The `trellis` command-line tool.
//!
//! Run `trellis --help` for the list of commands; every command has its own
//! `--help`, every flag that takes a value can also be set through the
//! environment variable named in that help, and `-o json` switches any
//! command to machine-readable output.

mod claims;
mod host;
mod keys;
mod output;
mod par;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::Output;

/// Trellis: run WebAssembly actors on a lattice of hosts connected over NATS.
#[derive(Debug, Parser)]
#[command(name = "trellis", version, propagate_version = true)]
struct Cli {
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Text, env = "TRELLIS_OUTPUT")]
    output: Output,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate nkeys key pairs.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Sign and inspect the claims embedded in actors.
    #[command(subcommand)]
    Claims(claims::ClaimsCommand),
    /// Create and inspect provider archives (`.par.gz`).
    #[command(subcommand)]
    Par(par::ParCommand),
    /// Run a lattice host until Ctrl-C or a `host.stop` request; prints its
    /// id (`N…`) on stdout.
    Host(Box<host::HostArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys(cmd) => keys::run(cmd, cli.output),
        Command::Claims(cmd) => claims::run(cmd, cli.output),
        Command::Par(cmd) => par::run(cmd, cli.output),
        Command::Host(args) => host::run(*args, cli.output),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            output::print_error(cli.output, &err);
            ExitCode::FAILURE
        }
    }
}
