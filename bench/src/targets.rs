//! The performance targets, checked against one run's medians.

use std::fmt::Write;

use crate::{
    memory::AtRest,
    node_app::NodeSdk,
    report::{Summary, floor},
    scenario::{Key, POST_BATCH},
};

/// Bytes per megabyte.
const MB: f64 = 1_000_000.0;

/// One target and how this run did.
struct Check {
    what: String,
    actual: String,
    /// `None` when this run cannot tell (a scenario did not run, or a smaller memory setup).
    met: Option<bool>,
}

fn find(summaries: &[Summary], key: Key) -> Option<&Summary> {
    summaries.iter().find(|s| s.key == key)
}

/// Lists every target with this run's figure and whether it is met. Ratios to "the floor" use
/// the faster of the two floor rows for each figure.
pub fn render(summaries: &[Summary], at_rest: &AtRest, in_flight: usize) -> String {
    let mut checks = Vec::new();
    // The floor is the better of the two relays (same runtime as the sidecar, and the other
    // flavour): the strictest reading of "the physical limit of one hop".
    let floors = [floor(summaries), find(summaries, Key::FloorOtherRuntime)];
    let best = |of: fn(&Summary) -> f64, better: fn(f64, f64) -> f64| {
        floors.iter().flatten().map(|s| of(s)).reduce(better)
    };
    let floor_p50 = best(|s| s.latency.p50, f64::min);
    let floor_p99 = best(|s| s.latency.p99, f64::min);
    let floor_rate = best(|s| s.per_sec, f64::max);
    let join1 = find(summaries, Key::Join(1));
    let ratio_check = |what: &str, value: Option<f64>, base: Option<f64>, max: f64| {
        let ratio = value
            .zip(base)
            .filter(|(_, b)| *b > 0.0)
            .map(|(v, b)| v / b);
        Check {
            what: what.to_owned(),
            actual: ratio.map_or("n/a".into(), |r| format!("{r:.3}x")),
            met: ratio.map(|r| r <= max),
        }
    };
    checks.push(ratio_check(
        "PreRoomUserJoin 1 app sequential p50 <= 1.2x floor p50",
        join1.map(|s| s.latency.p50),
        floor_p50,
        1.2,
    ));
    checks.push(ratio_check(
        "PreRoomUserJoin 1 app sequential p99 <= 1.5x floor p99",
        join1.map(|s| s.latency.p99),
        floor_p99,
        1.5,
    ));
    checks.push(ratio_check(
        "PreRoomUserJoin 16 apps p50 <= 2x the 1-app p50",
        find(summaries, Key::Join(16)).map(|s| s.latency.p50),
        join1.map(|s| s.latency.p50),
        2.0,
    ));
    checks.push(ratio_check(
        "PreRoomUserJoin 16 apps on one connection p50 <= 2x the 1-app p50",
        find(summaries, Key::JoinShared(16)).map(|s| s.latency.p50),
        join1.map(|s| s.latency.p50),
        2.0,
    ));
    checks.push(ratio_check(
        "PreRoomUserJoin 16 apps all skipped by match conditions p50 <= 1.1x no apps p50",
        find(summaries, Key::JoinSkipped(16)).map(|s| s.latency.p50),
        find(summaries, Key::JoinNoApps).map(|s| s.latency.p50),
        1.1,
    ));
    let ts = find(summaries, Key::JoinNode(NodeSdk::TypeScript, 1));
    checks.push(ratio_check(
        "PreRoomUserJoin 1 TypeScript SDK app sequential p50 <= 1.3x the Rust SDK app's",
        ts.map(|s| s.latency.p50),
        join1.map(|s| s.latency.p50),
        1.3,
    ));
    let tput_ratio = |of: Option<&Summary>, to: Option<&Summary>| {
        of.zip(to)
            .filter(|(_, r)| r.per_sec > 0.0)
            .map(|(t, r)| t.per_sec / r.per_sec)
    };
    let ts_tput = tput_ratio(ts, join1);
    checks.push(Check {
        what: format!(
            "PreRoomUserJoin 1 TypeScript SDK app calls/s @{in_flight} >= 0.5x the Rust SDK app's"
        ),
        actual: ts_tput.map_or("n/a".into(), |r| format!("{r:.3}x")),
        met: ts_tput.map(|r| r >= 0.5),
    });
    // The Apps-Engine runner has no target of its own: its cost over the TypeScript SDK it is
    // built on, and its distance from the Rust SDK app, are reported.
    let runner = find(summaries, Key::JoinNode(NodeSdk::AppsEngine, 1));
    let reported = |what: String, value: Option<f64>| Check {
        what,
        actual: value.map_or("n/a".into(), |r| format!("{r:.3}x")),
        met: None,
    };
    let p50_ratio = |of: Option<&Summary>, to: Option<&Summary>| {
        of.zip(to)
            .filter(|(_, b)| b.latency.p50 > 0.0)
            .map(|(v, b)| v.latency.p50 / b.latency.p50)
    };
    checks.push(reported(
        "PreRoomUserJoin 1 Apps-Engine runner app sequential p50 / the TypeScript SDK app's \
         (reported; no target)"
            .into(),
        p50_ratio(runner, ts),
    ));
    checks.push(reported(
        format!(
            "PreRoomUserJoin 1 Apps-Engine runner app calls/s @{in_flight} / the TypeScript SDK \
             app's (reported; no target)"
        ),
        tput_ratio(runner, ts),
    ));
    checks.push(reported(
        "PreRoomUserJoin 1 Apps-Engine runner app sequential p50 / the Rust SDK app's \
         (reported; no target)"
            .into(),
        p50_ratio(runner, join1),
    ));
    checks.push(reported(
        format!(
            "PreRoomUserJoin 1 Apps-Engine runner app calls/s @{in_flight} / the Rust SDK app's \
             (reported; no target)"
        ),
        tput_ratio(runner, join1),
    ));
    for (sdk, summary) in [(NodeSdk::TypeScript, ts), (NodeSdk::AppsEngine, runner)] {
        checks.push(Check {
            what: format!(
                "the {} app's Node process CPU per call (reported; no target)",
                sdk.label()
            ),
            actual: summary
                .and_then(|s| s.app_cpu_us_per_call)
                .map_or("n/a".into(), |us| format!("{us:.1} µs")),
            met: None,
        });
    }
    let join3 = find(summaries, Key::Join(3)).map(|s| s.per_sec);
    let tput = join3
        .zip(floor_rate)
        .filter(|(_, f)| *f > 0.0)
        .map(|(v, f)| v / f);
    checks.push(Check {
        what: format!("PreRoomUserJoin 3 apps calls/s @{in_flight} >= 0.5x floor's"),
        actual: tput.map_or("n/a".into(), |r| format!("{r:.3}x")),
        met: tput.map(|r| r >= 0.5),
    });
    let create = find(summaries, Key::Create(3));
    let at_most = |what: &str, value: Option<f64>, max: f64, unit: &str| Check {
        what: what.to_owned(),
        actual: value.map_or("n/a".into(), |v| format!("{v:.0} {unit}")),
        met: value.map(|v| v <= max),
    };
    let at_least = |what: &str, value: Option<f64>, min: f64, unit: &str| Check {
        what: what.to_owned(),
        actual: value.map_or("n/a".into(), |v| format!("{v:.0} {unit}")),
        met: value.map(|v| v >= min),
    };
    checks.push(at_most(
        "PreRoomCreate 3 apps sequential p50 <= 600 µs",
        create.map(|s| s.latency.p50),
        600.0,
        "µs",
    ));
    checks.push(at_most(
        "PreRoomCreate 3 apps sequential p99 <= 1200 µs",
        create.map(|s| s.latency.p99),
        1200.0,
        "µs",
    ));
    checks.push(at_least(
        &format!("PreRoomCreate 3 apps >= 15000 calls/s @{in_flight}"),
        create.map(|s| s.per_sec),
        15_000.0,
        "calls/s",
    ));
    checks.push(at_least(
        &format!("PreRoomCreate 3 apps on one connection >= 15000 calls/s @{in_flight}"),
        find(summaries, Key::CreateShared(3)).map(|s| s.per_sec),
        15_000.0,
        "calls/s",
    ));
    let post = find(summaries, Key::Post(3));
    checks.push(at_least(
        "PostRoomCreate >= 50000 events/s accepted",
        post.map(|s| s.per_sec),
        50_000.0,
        "events/s",
    ));
    checks.push(at_least(
        "PostRoomCreate >= 50000 events/s delivered to 3 apps",
        post.and_then(|s| s.delivered_per_sec),
        50_000.0,
        "events/s",
    ));
    let batch = find(summaries, Key::PostBatch(3));
    checks.push(at_least(
        &format!("PostEvents (batches of {POST_BATCH}) >= 50000 events/s accepted"),
        batch.map(|s| s.per_sec),
        50_000.0,
        "events/s",
    ));
    checks.push(at_least(
        &format!("PostEvents (batches of {POST_BATCH}) >= 50000 events/s delivered to 3 apps"),
        batch.and_then(|s| s.delivered_per_sec),
        50_000.0,
        "events/s",
    ));
    checks.push(at_most(
        "sidecar idle RSS <= 30 MB",
        Some(at_rest.idle as f64 / MB),
        30.0,
        "MB",
    ));
    cluster_checks(&mut checks, summaries, at_rest, floor_p50, join1);
    let instances = at_rest.apps * at_rest.instances;
    let connected = at_rest.connected as f64 / MB;
    checks.push(Check {
        what: "sidecar RSS with 1000 app instances <= 150 MB".into(),
        actual: format!("{connected:.1} MB with {instances} instances"),
        met: (instances == 1000).then_some(connected <= 150.0),
    });

    let mut out = String::new();
    for check in checks {
        let verdict = match check.met {
            Some(true) => "met   ",
            Some(false) => "MISSED",
            None => "n/a   ",
        };
        let _ = writeln!(out, "[{verdict}] {}: {}", check.what, check.actual);
    }
    out
}

/// The cluster-mode targets (issue 14): the forwarded call's added hop, JetStream's delivered
/// rate, a cluster-mode sidecar's idle memory. `n/a` when the cluster rows did not run.
fn cluster_checks(
    checks: &mut Vec<Check>,
    summaries: &[Summary],
    at_rest: &AtRest,
    floor_p50: Option<f64>,
    join1: Option<&Summary>,
) {
    let forwarded = find(summaries, Key::JoinForwarded);
    let local = join1.map(|s| s.latency.p50);
    let bound = local.zip(floor_p50).map(|(l, f)| l + 2.0 * f);
    checks.push(Check {
        what: "PreRoomUserJoin 1 app forwarded to another sidecar p50 <= local p50 + 2x floor p50"
            .into(),
        actual: match (forwarded, bound) {
            (Some(f), Some(b)) => format!("{:.0} µs (bound {b:.0} µs)", f.latency.p50),
            _ => "n/a".into(),
        },
        met: forwarded.zip(bound).map(|(f, b)| f.latency.p50 <= b),
    });
    let added = |of: fn(&Summary) -> f64| {
        forwarded
            .zip(join1)
            .map(|(f, l)| format!("{:.0} µs", of(f) - of(l)))
            .unwrap_or_else(|| "n/a".into())
    };
    checks.push(Check {
        what: "the hop forwarding adds, p50 / p99 (reported; no target)".into(),
        actual: format!(
            "{} / {}",
            added(|s| s.latency.p50),
            added(|s| s.latency.p99)
        ),
        met: None,
    });
    for sidecars in [1, 3] {
        for replicas in [1, 3] {
            let row = find(summaries, Key::PostBatchCluster { sidecars, replicas });
            let delivered = row.and_then(|s| s.delivered_per_sec);
            checks.push(Check {
                what: format!(
                    "PostEvents (batches of {POST_BATCH}) through JetStream, {sidecars} \
                     sidecar(s), R{replicas}: >= 20000 events/s delivered to 3 apps"
                ),
                actual: delivered.map_or("n/a".into(), |v| format!("{v:.0} events/s")),
                met: delivered.map(|v| v >= 20_000.0),
            });
            if let Some(cpu) = row.and_then(|s| s.cpu_per_event) {
                checks.push(Check {
                    what: format!(
                        "  where the CPU goes, {sidecars} sidecar(s), R{replicas}, per event \
                         delivered to 3 apps (reported; no target)"
                    ),
                    actual: format!(
                        "{:.0} µs: NATS {:.0}, sidecars {:.0}, apps {:.0}, load generator {:.0}",
                        cpu.total(),
                        cpu.nats,
                        cpu.sidecars,
                        cpu.apps,
                        cpu.load
                    ),
                    met: None,
                });
            }
        }
    }
    let idle = at_rest.cluster_idle.map(|b| b as f64 / MB);
    checks.push(Check {
        what: "cluster-mode sidecar idle RSS <= 40 MB".into(),
        actual: idle.map_or("n/a".into(), |v| format!("{v:.1} MB")),
        met: idle.map(|v| v <= 40.0),
    });
}
