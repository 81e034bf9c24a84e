//! A whole benchmark run: memory at rest, then every scenario started side by side, warmed up,
//! and measured in interleaved rounds (so a noisy neighbour hurts every scenario alike), then the
//! table.

use std::path::Path;

use crate::{
    chart,
    cli::BenchArgs,
    cluster::ClusterNats,
    error::Error,
    machine,
    memory::{self, AtRest},
    nats,
    node_app::{self, NodeSdk},
    plan::Plan,
    report::{self, Summary},
    rss::PeakSampler,
    scenario::{Key, Scenario},
    sidecar, targets, workload,
};

/// The scenarios, in table order.
const SCENARIOS: [Key; 14] = [
    Key::Floor,
    Key::FloorOtherRuntime,
    Key::Unary,
    Key::JoinNoApps,
    Key::JoinSkipped(16),
    Key::Join(1),
    Key::Join(3),
    Key::Join(4),
    Key::Join(16),
    Key::JoinShared(16),
    Key::Create(3),
    Key::CreateShared(3),
    Key::Post(3),
    Key::PostBatch(3),
];

/// The cluster-mode rows, in table order (left out alone when no `nats-server` is found).
const CLUSTER_SCENARIOS: [Key; 6] = [
    Key::JoinClusterLocal,
    Key::JoinForwarded,
    Key::PostBatchCluster {
        sidecars: 1,
        replicas: 1,
    },
    Key::PostBatchCluster {
        sidecars: 3,
        replicas: 1,
    },
    Key::PostBatchCluster {
        sidecars: 1,
        replicas: 3,
    },
    Key::PostBatchCluster {
        sidecars: 3,
        replicas: 3,
    },
];

/// Runs the benchmark; Ctrl-C stops it, and every child process with it.
pub async fn interruptible(args: BenchArgs) -> Result<(), Error> {
    tokio::select! {
        result = bench(args) => result,
        _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
    }
}

/// The run's stages: say what runs where, start NATS (for the cluster rows), measure memory at
/// rest, start every scenario, warm them up, measure them in interleaved rounds, then report.
async fn bench(args: BenchArgs) -> Result<(), Error> {
    let plan = Plan::from_args(&args)?;
    let sidecar_bin = sidecar::locate(plan.sidecar_bin.as_deref())?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("cannot find the bench's own executable", e))?;
    announce(&plan, &sidecar_bin)?;
    let nats = start_nats(&plan).await?;
    eprintln!(
        "memory: a fresh sidecar, then {} x {} app instances",
        plan.memory_apps, plan.memory_instances
    );
    let at_rest = memory::at_rest(&plan, &exe, &sidecar_bin, nats.as_ref()).await?;
    let mut scenarios = Vec::new();
    for key in scenario_keys(&plan, nats.is_some()) {
        eprintln!("starting: {}", key.label());
        scenarios.push(Scenario::start(key, &plan, &exe, &sidecar_bin, nats.as_ref()).await?);
    }
    let summaries = measure(&plan, &mut scenarios).await?;
    drop(scenarios);
    drop(nats);
    report(&plan, &summaries, &at_rest)
}

/// Prints the machine, the binaries, the pinning and the plan (pinning this process first).
fn announce(plan: &Plan, sidecar_bin: &Path) -> Result<(), Error> {
    eprintln!(
        "roomhooks-bench: {} cores, {}; runtime {} (hops: {}); sidecar {}",
        machine::cores(),
        machine::cpu_model(),
        plan.runtime.as_arg(),
        plan.hop_runtime.as_arg(),
        sidecar_bin.display()
    );
    if let Some(pinning) = &plan.pinning {
        // The load generator runs here: with the apps, off the hops' CPU.
        pinning.rest.apply_to_this_process()?;
        eprintln!(
            "pinned: hops on CPUs {:?}, everything else on {:?}",
            pinning.hop, pinning.rest
        );
    }
    eprintln!(
        "plan: {} runs x ({} sequential calls + {} in flight for {:?}; post: {} events); \
         floor payload {} bytes",
        plan.runs,
        plan.seq_calls,
        plan.in_flight,
        plan.load_time,
        plan.post_events,
        workload::floor_body().len()
    );
    Ok(())
}

/// The NATS servers of the cluster rows, or `None` (saying why) when they are skipped.
async fn start_nats(plan: &Plan) -> Result<Option<ClusterNats>, Error> {
    let found = if plan.no_cluster {
        Err("--no-cluster".to_owned())
    } else {
        nats::locate(plan.nats_server.as_deref())
    };
    match found {
        Ok(bin) => {
            eprintln!("cluster rows: NATS {}", bin.display());
            Ok(Some(ClusterNats::start(&bin, plan.rest_cpus()).await?))
        }
        Err(why) => {
            eprintln!("skipping the cluster rows: {why}");
            Ok(None)
        }
    }
}

/// The rows this run measures, in table order.
fn scenario_keys(plan: &Plan, with_nats: bool) -> Vec<Key> {
    let mut keys = SCENARIOS.to_vec();
    // Right after the Rust SDK's 1-app row, which they are compared with: the TypeScript SDK,
    // then the Apps-Engine runner. Each is left out alone when its packages are not built.
    let mut at = keys
        .iter()
        .position(|k| *k == Key::Join(1))
        .map_or(keys.len(), |i| i + 1);
    for sdk in NodeSdk::ALL {
        match node_app::locate(sdk) {
            Ok(_) => {
                keys.insert(at, Key::JoinNode(sdk, 1));
                at += 1;
            }
            Err(why) => eprintln!("skipping the {} row: {why}", sdk.label()),
        }
    }
    if with_nats {
        keys.extend(CLUSTER_SCENARIOS);
    }
    keys.retain(|&key| plan.runs_scenario(key));
    keys
}

/// Warms every scenario up, then measures them in interleaved rounds while sampling each hop's
/// peak RSS; the medians of each.
async fn measure(plan: &Plan, scenarios: &mut [Scenario]) -> Result<Vec<Summary>, Error> {
    let pids = scenarios
        .iter()
        .map(Scenario::hop_pid)
        .collect::<Result<Vec<_>, _>>()?;
    let sampler = PeakSampler::start(pids.clone());
    for scenario in scenarios.iter_mut() {
        eprintln!("warming up: {}", scenario.key.label());
        scenario.warm_up(plan).await?;
    }
    for round in 1..=plan.runs {
        for scenario in scenarios.iter_mut() {
            let r = scenario.measure(plan).await?;
            eprintln!(
                "run {round}/{}: {:<45} p50 {:>7.1} µs  p99 {:>7.1} µs  p999 {:>7.1} µs  {:>8.0}/s{}",
                plan.runs,
                scenario.key.label(),
                r.latency.p50,
                r.latency.p99,
                r.latency.p999,
                r.per_sec,
                r.delivered_per_sec
                    .map(|d| format!("  delivered {d:.0}/s"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(scenarios
        .iter()
        .zip(&pids)
        .map(|(s, &pid)| Summary::of(s.key, &s.rounds, sampler.peak(pid), s.is_sidecar()))
        .collect())
}

/// Prints the table and the targets, and writes the chart when `--svg` asks for it.
fn report(plan: &Plan, summaries: &[Summary], at_rest: &AtRest) -> Result<(), Error> {
    if plan.quick {
        println!("(--quick: smoke-test counts; these numbers are not measurements)");
        println!();
    }
    print!("{}", report::table(plan, summaries, at_rest));
    println!();
    print!("{}", targets::render(summaries, at_rest, plan.in_flight));
    let Some(path) = &plan.svg else {
        return Ok(());
    };
    let runs = format!(
        "roomhooks-bench{}: medians of {} runs x {} sequential calls",
        if plan.quick {
            " --quick (counts too small to be measurements)"
        } else {
            ""
        },
        plan.runs,
        plan.seq_calls
    );
    let machine = format!("{} cores, {}", machine::cores(), machine::cpu_model());
    let doc = chart::svg(&chart::points(summaries), &[&runs, &machine]);
    std::fs::write(path, doc)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    eprintln!("chart: {}", path.display());
    Ok(())
}
