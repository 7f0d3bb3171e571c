//! The `trellis` command-line tool.
//!
//! Run `trellis --help` for the list of commands; every command has its own
//! `--help`, every flag that takes a value can also be set through the
//! environment variable named in that help, and `-o json` switches any
//! command to machine-readable output.

mod app;
mod artifacts;
mod build;
mod claims;
mod ctl;
mod dev;
mod host;
mod keys;
mod output;
mod par;
mod up;

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
    /// Run a local development lattice: nats-server (unless one is already
    /// listening), a host trusting the development issuer, and the given
    /// providers, until Ctrl-C.
    Up(Box<up::UpArgs>),
    /// Build actors for wasm32-wasip2 and sign each with the capabilities
    /// its `[package.metadata.trellis]` table lists.
    Build(Box<build::BuildArgs>),
    /// Show hosts, inventories, links and claims.
    Get {
        #[command(subcommand)]
        command: ctl::GetCommand,
        #[command(flatten)]
        lattice: ctl::LatticeArgs,
    },
    /// Start an actor or a provider on a host.
    Start {
        #[command(subcommand)]
        command: ctl::StartCommand,
        #[command(flatten)]
        lattice: ctl::LatticeArgs,
    },
    /// Stop an actor, a provider or a host.
    Stop {
        #[command(subcommand)]
        command: ctl::StopCommand,
        #[command(flatten)]
        lattice: ctl::LatticeArgs,
    },
    /// Push a signed actor module or provider archive into the lattice's
    /// artifact store (by name and version) or an OCI registry.
    Push(Box<artifacts::PushArgs>),
    /// Pull an artifact from the lattice's artifact store or an OCI
    /// registry into a file.
    Pull(Box<artifacts::PullArgs>),
    /// Show an artifact's digest and claims, checked, without running it:
    /// from the lattice's store, a registry or a file.
    Inspect(Box<artifacts::InspectArgs>),
    /// Deploy, inspect and remove applications declared in manifests
    /// (served by wadm).
    App {
        #[command(subcommand)]
        command: app::AppCommand,
        #[command(flatten)]
        lattice: ctl::LatticeArgs,
    },
    /// Run wadm: store manifests and keep the lattice running what they
    /// declare, until Ctrl-C.
    Wadm(Box<app::WadmArgs>),
    /// Put, delete and list link definitions.
    Link {
        #[command(subcommand)]
        command: ctl::LinkCommand,
        #[command(flatten)]
        lattice: ctl::LatticeArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys(cmd) => keys::run(cmd, cli.output),
        Command::Claims(cmd) => claims::run(cmd, cli.output),
        Command::Par(cmd) => par::run(cmd, cli.output),
        Command::Host(args) => host::run(*args, cli.output),
        Command::Up(args) => up::run(*args, cli.output),
        Command::Build(args) => build::run(*args, cli.output),
        Command::Get { command, lattice } => ctl::get(command, lattice, cli.output),
        Command::Push(args) => artifacts::push(*args, cli.output),
        Command::Pull(args) => artifacts::pull(*args, cli.output),
        Command::Inspect(args) => artifacts::inspect(*args, cli.output),
        Command::Start { command, lattice } => ctl::start(command, lattice, cli.output),
        Command::Stop { command, lattice } => ctl::stop(command, lattice, cli.output),
        Command::Link { command, lattice } => ctl::link(command, lattice, cli.output),
        Command::App { command, lattice } => app::run(command, lattice, cli.output),
        Command::Wadm(args) => app::wadm(*args, cli.output),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            output::print_error(cli.output, &err);
            ExitCode::FAILURE
        }
    }
}
