//! The counts and durations of one benchmark run, resolved from the flags.

use std::{path::PathBuf, time::Duration};

use crate::{
    cli::BenchArgs,
    error::Error,
    flavor::Flavor,
    placement::{Cpus, Pinning},
    scenario::Key,
};

/// Everything a run needs to know, with `--quick` or full defaults filled in.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Tiny counts for CI; the numbers mean nothing.
    pub quick: bool,
    /// The sidecar binary, if given.
    pub sidecar_bin: Option<PathBuf>,
    /// Runtime of the bench, the apps and the echo peer.
    pub runtime: Flavor,
    /// Runtime of the sidecar and the relay.
    pub hop_runtime: Flavor,
    /// Whether the sidecar keeps post events in memory only (`--ephemeral`).
    pub sidecar_ephemeral: bool,
    /// `--pin`: the CPUs of the hops and of everything else.
    pub pinning: Option<Pinning>,
    /// Measured runs per scenario.
    pub runs: u32,
    /// Sequential calls before measuring.
    pub warmup_calls: u64,
    /// Throughput load before measuring.
    pub warmup_load: Duration,
    /// Sequential calls per run.
    pub seq_calls: u64,
    /// Length of a throughput run.
    pub load_time: Duration,
    /// Calls in flight in throughput runs.
    pub in_flight: usize,
    /// Post events per throughput run.
    pub post_events: u64,
    /// App ids in the memory measurement.
    pub memory_apps: usize,
    /// Instances per app id in the memory measurement.
    pub memory_instances: usize,
    /// Time given to a process to settle before its RSS is read.
    pub settle: Duration,
    /// Where to write the fan-out chart, if anywhere.
    pub svg: Option<PathBuf>,
    /// `--nats-server`, if given.
    pub nats_server: Option<PathBuf>,
    /// `--no-cluster`: no cluster-mode rows.
    pub no_cluster: bool,
    /// `--only`: the label fragments of the scenarios to run (empty: all), lower-cased.
    pub only: Vec<String>,
}

impl Plan {
    /// Resolves the flags (with `--pin`, splits the CPUs this process may use).
    pub fn from_args(args: &BenchArgs) -> Result<Self, Error> {
        let quick = args.quick;
        let pinning = if args.pin {
            Some(Pinning::split()?)
        } else {
            None
        };
        Ok(Self {
            quick,
            sidecar_bin: args.sidecar_bin.clone(),
            runtime: args.runtime,
            hop_runtime: args.hop_runtime.unwrap_or_else(Flavor::sidecar_default),
            sidecar_ephemeral: args.sidecar_ephemeral,
            pinning,
            runs: args.runs.unwrap_or(3),
            warmup_calls: pick(quick, 2_000, 10),
            warmup_load: pick(quick, Duration::from_secs(1), Duration::from_millis(50)),
            seq_calls: args.seq_calls.unwrap_or(pick(quick, 10_000, 50)).max(1),
            load_time: args.load_time.unwrap_or(pick(
                quick,
                Duration::from_secs(3),
                Duration::from_millis(100),
            )),
            in_flight: args.in_flight.max(1),
            post_events: args.post_events.unwrap_or(pick(quick, 50_000, 200)).max(1),
            memory_apps: args.memory_apps.unwrap_or(pick(quick, 10, 2)).max(1),
            memory_instances: args.memory_instances.unwrap_or(pick(quick, 100, 10)).max(1),
            settle: pick(
                quick,
                Duration::from_millis(500),
                Duration::from_millis(100),
            ),
            svg: args.svg.clone(),
            nats_server: args.nats_server.clone(),
            no_cluster: args.no_cluster,
            only: args.only.iter().map(|t| t.to_lowercase()).collect(),
        })
    }

    /// Whether the scenario `key` is to run (`--only`; the floor always is).
    pub fn runs_scenario(&self, key: Key) -> bool {
        let label = key.label().to_lowercase();
        key == Key::Floor || self.only.is_empty() || self.only.iter().any(|t| label.contains(t))
    }

    /// Where a hop runs (`--pin`: alone on the last CPU).
    pub fn hop_cpus(&self) -> Option<Cpus> {
        self.pinning.map(|p| p.hop)
    }

    /// Where every other process runs (`--pin`: the other CPUs).
    pub fn rest_cpus(&self) -> Option<Cpus> {
        self.pinning.map(|p| p.rest)
    }
}

/// The full-run value, or the `--quick` one.
fn pick<T>(quick: bool, full: T, small: T) -> T {
    if quick { small } else { full }
}
