//! Command-line flags of the bench and of its hidden child-process subcommands.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::flavor::Flavor;

/// Benchmarks the roomhooks sidecar against a bare tonic relay (the floor) on this machine and
/// prints one table: sequential latency p50/p99/p999, throughput at 64 calls in flight, ratios to
/// the floor, and the sidecar's memory.
#[derive(Parser, Debug)]
#[command(
    name = "roomhooks-bench",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A child-process role (used by the bench itself).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The benchmark's settings.
    #[command(flatten)]
    pub bench: BenchArgs,
}

/// The benchmark's settings; unset counts take the full or `--quick` defaults.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// The sidecar binary [default: `roomhooks` next to this executable].
    #[arg(long, value_name = "PATH")]
    pub sidecar_bin: Option<PathBuf>,

    /// Tiny counts for a CI smoke test: proves every scenario runs; the numbers mean nothing.
    #[arg(long)]
    pub quick: bool,

    /// Pin each hop (the sidecar, the floor's relay) to the last CPU and every other process
    /// (the apps, the echo peer, this load generator) to the other CPUs, instead of leaving
    /// placement to the kernel (Linux; at least 2 CPUs).
    #[arg(long)]
    pub pin: bool,

    /// The runtime of every process the bench starts, and of the bench itself.
    #[arg(long, value_enum, default_value = "multi-thread")]
    pub runtime: Flavor,

    /// The runtime of the hop processes only (the sidecar and the floor's relay)
    /// [default: the sidecar's own default, `auto`: current-thread on hosts with 2 cores or
    /// fewer, multi-thread on bigger ones; the relay gets the same].
    #[arg(long, value_enum)]
    pub hop_runtime: Option<Flavor>,

    /// Run the sidecar with --ephemeral (post events in memory) instead of its on-disk store.
    #[arg(long)]
    pub sidecar_ephemeral: bool,

    /// Measured runs of each scenario; the table shows their medians (at least 3).
    #[arg(long, value_parser = clap::value_parser!(u32).range(3..))]
    pub runs: Option<u32>,

    /// Sequential calls per run (for p50/p99/p999) [default: 10000; quick: 50].
    #[arg(long)]
    pub seq_calls: Option<u64>,

    /// How long each throughput run lasts [default: 3s; quick: 100ms].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub load_time: Option<Duration>,

    /// Calls in flight during throughput runs.
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,

    /// Post events per throughput run of the Post scenario [default: 50000; quick: 200].
    #[arg(long)]
    pub post_events: Option<u64>,

    /// App ids in the memory measurement [default: 10; quick: 2].
    #[arg(long)]
    pub memory_apps: Option<usize>,

    /// Instances of each app id in the memory measurement [default: 100; quick: 10].
    #[arg(long)]
    pub memory_instances: Option<usize>,

    /// The `nats-server` (>= 2.10) of the cluster-mode rows [default: the one `cargo test`
    /// installs into target/nats-venv, else `nats-server` on PATH; without one, those rows are
    /// left out].
    #[arg(long, value_name = "PATH", conflicts_with = "no_cluster")]
    pub nats_server: Option<PathBuf>,
    /// Leave out the cluster-mode rows even when a `nats-server` is found.
    #[arg(long)]
    pub no_cluster: bool,
    /// Run only the scenarios whose row label contains TEXT (case-insensitive; repeat for
    /// several); the floor always runs, since the ratios need it.
    #[arg(long, value_name = "TEXT")]
    pub only: Vec<String>,
    /// Also write the fan-out chart (sequential p50 by number of veto apps, the sidecar next to
    /// the floor) as an SVG file here [default: no chart].
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// The roles the bench re-executes itself as.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Synthetic apps connected to a sidecar.
    #[command(hide = true)]
    Apps(AppsArgs),
    /// The floor's relay.
    #[command(hide = true)]
    Relay(RelayArgs),
    /// The floor's echo peer.
    #[command(hide = true)]
    Echo(EchoArgs),
    /// Makes a fixed number of calls to a running sidecar or relay and prints the rate: a load
    /// to profile under (perf, callgrind); see docs/performance.md.
    Drive(DriveArgs),
}

/// What `roomhooks-bench drive` calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DriveCall {
    /// `Relay.Call` (through the relay to its echo peer).
    Floor,
    /// `Relay.Echo` (answered by the relay itself).
    Unary,
    /// PreRoomUserJoin (the apps must be `apps --kind veto`).
    Join,
    /// PreRoomCreate (the apps must be `apps --kind create`).
    Create,
    /// PostRoomCreate (the apps must be `apps --kind post`).
    Post,
    /// PostEvents with 100 PostRoomCreate events per call (the apps must be `apps --kind post`).
    PostBatch,
}

/// Flags of `roomhooks-bench drive`.
#[derive(Args, Debug, Clone)]
pub struct DriveArgs {
    /// The sidecar or relay, e.g. `http://127.0.0.1:50051`.
    #[arg(long)]
    pub endpoint: String,
    /// Which call to make.
    #[arg(long, value_enum)]
    pub call: DriveCall,
    /// Apps connected to the sidecar (every answer is checked against it).
    #[arg(long, default_value_t = 1)]
    pub apps: usize,
    /// Calls to make.
    #[arg(long, default_value_t = 10_000)]
    pub calls: u64,
    /// Calls in flight (1 = sequential).
    #[arg(long, default_value_t = 1)]
    pub in_flight: usize,
    /// This process's runtime.
    #[arg(long, value_enum, default_value = "multi-thread")]
    pub runtime: Flavor,
}

/// What the synthetic apps answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AppKind {
    /// PreRoomUserJoined: always allow.
    Veto,
    /// PreRoomCreate Prevent (allow) + Extend (one field) + Modify (a new description).
    Create,
    /// PostRoomCreate: count each event.
    Post,
}

impl AppKind {
    /// The flag value, as passed to the child process.
    pub fn as_arg(self) -> &'static str {
        match self {
            AppKind::Veto => "veto",
            AppKind::Create => "create",
            AppKind::Post => "post",
        }
    }
}

/// Flags of `roomhooks-bench apps`.
#[derive(Args, Debug, Clone)]
pub struct AppsArgs {
    /// The sidecar, e.g. `http://127.0.0.1:50051`.
    #[arg(long)]
    pub endpoint: String,
    /// What the apps do.
    #[arg(long, value_enum)]
    pub kind: AppKind,
    /// Distinct app ids.
    #[arg(long, default_value_t = 1)]
    pub apps: usize,
    /// Instances (streams) of each app id.
    #[arg(long, default_value_t = 1)]
    pub instances: usize,
    /// Put every instance on one shared connection (`roomhooks_sdk::Connection`) instead of a
    /// connection each.
    #[arg(long)]
    pub shared_connection: bool,
    /// Connect app number i to the i-th of the comma-separated `--endpoint`s (round robin), as
    /// apps spread over the sidecars of a cluster are; without it, every app gets them all.
    #[arg(long, conflicts_with = "shared_connection")]
    pub spread: bool,
    /// This process's runtime.
    #[arg(long, value_enum, default_value = "multi-thread")]
    pub runtime: Flavor,
}

/// Flags of `roomhooks-bench relay`.
#[derive(Args, Debug, Clone)]
pub struct RelayArgs {
    /// This process's runtime.
    #[arg(long, value_enum, default_value = "multi-thread")]
    pub runtime: Flavor,
}

/// Flags of `roomhooks-bench echo`.
#[derive(Args, Debug, Clone)]
pub struct EchoArgs {
    /// The relay, e.g. `http://127.0.0.1:40000`.
    #[arg(long)]
    pub endpoint: String,
    /// This process's runtime.
    #[arg(long, value_enum, default_value = "multi-thread")]
    pub runtime: Flavor,
}
