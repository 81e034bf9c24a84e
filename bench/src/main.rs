//! `roomhooks-bench`: starts the real `roomhooks` sidecar and synthetic apps as child processes,
//! measures latency, throughput and memory against a bare tonic relay (the floor) in the same run,
//! and prints one table. `roomhooks-bench --help` lists the knobs; `--quick` is the CI smoke mode.
//!
//! The hidden subcommands `apps`, `relay` and `echo` are the child processes the bench re-executes
//! itself as; they exit when their standard input closes. `drive` makes a fixed number of calls
//! to a running sidecar or relay, for profiling.

/// The sidecar's allocator for every process the bench starts (the relay and echo peer of the
/// floor, the synthetic apps, the load generator), so the floor is measured on the same footing.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod apps;
mod calls;
mod chart;
mod child;
mod cli;
mod cluster;
mod cpu;
mod drive;
mod echo;
mod error;
mod flavor;
mod load;
mod machine;
mod memory;
mod nats;
mod node_app;
mod placement;
mod plan;
mod relay;
mod relay_proto;
mod report;
mod rss;
mod run;
mod scenario;
mod sidecar;
mod stats;
mod targets;
mod workload;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Progress and child warnings go to stderr; the table is the only thing on stdout.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let flavor = match &cli.command {
        None => cli.bench.runtime,
        Some(Command::Apps(args)) => args.runtime,
        Some(Command::Relay(args)) => args.runtime,
        Some(Command::Echo(args)) => args.runtime,
        Some(Command::Drive(args)) => args.runtime,
    };
    let runtime = match flavor.build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("roomhooks-bench: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            None => run::interruptible(cli.bench).await,
            Some(Command::Apps(args)) => apps::run(args).await,
            Some(Command::Relay(args)) => relay::run(args).await,
            Some(Command::Echo(args)) => echo::run(args).await,
            Some(Command::Drive(args)) => drive::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("roomhooks-bench: {err}");
            ExitCode::FAILURE
        }
    }
}
