//! The performance targets, checked against one run's medians.

mod cluster;

use std::fmt::Write;

use self::cluster::cluster_checks;

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

impl Check {
    /// `value / base <= max`.
    fn ratio_at_most(
        what: impl Into<String>,
        value: Option<f64>,
        base: Option<f64>,
        max: f64,
    ) -> Self {
        let ratio = ratio(value, base);
        Self {
            what: what.into(),
            actual: times(ratio),
            met: ratio.map(|r| r <= max),
        }
    }

    /// `value / base >= min`.
    fn ratio_at_least(
        what: impl Into<String>,
        value: Option<f64>,
        base: Option<f64>,
        min: f64,
    ) -> Self {
        let ratio = ratio(value, base);
        Self {
            what: what.into(),
            actual: times(ratio),
            met: ratio.map(|r| r >= min),
        }
    }

    /// A ratio reported without a target.
    fn reported(what: impl Into<String>, value: Option<f64>, base: Option<f64>) -> Self {
        Self {
            what: what.into(),
            actual: times(ratio(value, base)),
            met: None,
        }
    }

    /// `value <= max`, in `unit`.
    fn at_most(what: impl Into<String>, value: Option<f64>, max: f64, unit: &str) -> Self {
        Self {
            what: what.into(),
            actual: value.map_or("n/a".into(), |v| format!("{v:.0} {unit}")),
            met: value.map(|v| v <= max),
        }
    }

    /// `value >= min`, in `unit`.
    fn at_least(what: impl Into<String>, value: Option<f64>, min: f64, unit: &str) -> Self {
        Self {
            what: what.into(),
            actual: value.map_or("n/a".into(), |v| format!("{v:.0} {unit}")),
            met: value.map(|v| v >= min),
        }
    }
}

/// `value / base`, when both are known and the base is not zero.
fn ratio(value: Option<f64>, base: Option<f64>) -> Option<f64> {
    value
        .zip(base)
        .filter(|(_, b)| *b > 0.0)
        .map(|(v, b)| v / b)
}

/// A ratio as the checks print it.
fn times(ratio: Option<f64>) -> String {
    ratio.map_or("n/a".into(), |r| format!("{r:.3}x"))
}

fn find(summaries: &[Summary], key: Key) -> Option<&Summary> {
    summaries.iter().find(|s| s.key == key)
}

/// What the checks compare with: the floor's figures and the Rust SDK's 1-app join.
struct Bases<'a> {
    summaries: &'a [Summary],
    floor_p50: Option<f64>,
    floor_p99: Option<f64>,
    floor_rate: Option<f64>,
    join1: Option<&'a Summary>,
    in_flight: usize,
}

impl<'a> Bases<'a> {
    /// The floor is the better of the two relays (same runtime as the sidecar, and the other
    /// flavour): the strictest reading of "the physical limit of one hop".
    fn of(summaries: &'a [Summary], in_flight: usize) -> Self {
        let floors = [floor(summaries), find(summaries, Key::FloorOtherRuntime)];
        let best = |of: fn(&Summary) -> f64, better: fn(f64, f64) -> f64| {
            floors.iter().flatten().map(|s| of(s)).reduce(better)
        };
        Self {
            summaries,
            floor_p50: best(|s| s.latency.p50, f64::min),
            floor_p99: best(|s| s.latency.p99, f64::min),
            floor_rate: best(|s| s.per_sec, f64::max),
            join1: find(summaries, Key::Join(1)),
            in_flight,
        }
    }

    fn find(&self, key: Key) -> Option<&'a Summary> {
        find(self.summaries, key)
    }
}

fn p50(summary: Option<&Summary>) -> Option<f64> {
    summary.map(|s| s.latency.p50)
}

fn rate(summary: Option<&Summary>) -> Option<f64> {
    summary.map(|s| s.per_sec)
}

/// Lists every target with this run's figure and whether it is met. Ratios to "the floor" use
/// the faster of the two floor rows for each figure.
pub fn render(summaries: &[Summary], at_rest: &AtRest, in_flight: usize) -> String {
    let bases = Bases::of(summaries, in_flight);
    let mut checks = fan_out_checks(&bases);
    checks.extend(node_checks(&bases));
    checks.extend(throughput_checks(&bases));
    checks.push(Check::at_most(
        "sidecar idle RSS <= 30 MB",
        Some(at_rest.idle as f64 / MB),
        30.0,
        "MB",
    ));
    cluster_checks(
        &mut checks,
        summaries,
        at_rest,
        bases.floor_p50,
        bases.join1,
    );
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

/// One app against the floor, and what more apps (or skipped ones) cost.
fn fan_out_checks(b: &Bases<'_>) -> Vec<Check> {
    vec![
        Check::ratio_at_most(
            "PreRoomUserJoin 1 app sequential p50 <= 1.2x floor p50",
            p50(b.join1),
            b.floor_p50,
            1.2,
        ),
        Check::ratio_at_most(
            "PreRoomUserJoin 1 app sequential p99 <= 1.5x floor p99",
            b.join1.map(|s| s.latency.p99),
            b.floor_p99,
            1.5,
        ),
        Check::ratio_at_most(
            "PreRoomUserJoin 16 apps p50 <= 2x the 1-app p50",
            p50(b.find(Key::Join(16))),
            p50(b.join1),
            2.0,
        ),
        Check::ratio_at_most(
            "PreRoomUserJoin 16 apps on one connection p50 <= 2x the 1-app p50",
            p50(b.find(Key::JoinShared(16))),
            p50(b.join1),
            2.0,
        ),
        Check::ratio_at_most(
            "PreRoomUserJoin 16 apps all skipped by match conditions p50 <= 1.1x no apps p50",
            p50(b.find(Key::JoinSkipped(16))),
            p50(b.find(Key::JoinNoApps)),
            1.1,
        ),
    ]
}

/// The Node apps against the Rust SDK app: the TypeScript SDK's targets, and the Apps-Engine
/// runner's figures, which have no target of their own (its cost over the TypeScript SDK it is
/// built on, and its distance from the Rust SDK app, are reported).
fn node_checks(b: &Bases<'_>) -> Vec<Check> {
    let in_flight = b.in_flight;
    let ts = b.find(Key::JoinNode(NodeSdk::TypeScript, 1));
    let runner = b.find(Key::JoinNode(NodeSdk::AppsEngine, 1));
    let mut checks = vec![
        Check::ratio_at_most(
            "PreRoomUserJoin 1 TypeScript SDK app sequential p50 <= 1.3x the Rust SDK app's",
            p50(ts),
            p50(b.join1),
            1.3,
        ),
        Check::ratio_at_least(
            format!(
                "PreRoomUserJoin 1 TypeScript SDK app calls/s @{in_flight} >= 0.5x the Rust SDK \
                 app's"
            ),
            rate(ts),
            rate(b.join1),
            0.5,
        ),
        Check::reported(
            "PreRoomUserJoin 1 Apps-Engine runner app sequential p50 / the TypeScript SDK app's \
             (reported; no target)",
            p50(runner),
            p50(ts),
        ),
        Check::reported(
            format!(
                "PreRoomUserJoin 1 Apps-Engine runner app calls/s @{in_flight} / the TypeScript SDK \
                 app's (reported; no target)"
            ),
            rate(runner),
            rate(ts),
        ),
        Check::reported(
            "PreRoomUserJoin 1 Apps-Engine runner app sequential p50 / the Rust SDK app's \
             (reported; no target)",
            p50(runner),
            p50(b.join1),
        ),
        Check::reported(
            format!(
                "PreRoomUserJoin 1 Apps-Engine runner app calls/s @{in_flight} / the Rust SDK \
                 app's (reported; no target)"
            ),
            rate(runner),
            rate(b.join1),
        ),
    ];
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
    checks
}

/// Calls and events per second in flight, and PreRoomCreate's absolute latency.
fn throughput_checks(b: &Bases<'_>) -> Vec<Check> {
    let in_flight = b.in_flight;
    let create = b.find(Key::Create(3));
    let post = b.find(Key::Post(3));
    let batch = b.find(Key::PostBatch(3));
    vec![
        Check::ratio_at_least(
            format!("PreRoomUserJoin 3 apps calls/s @{in_flight} >= 0.5x floor's"),
            rate(b.find(Key::Join(3))),
            b.floor_rate,
            0.5,
        ),
        Check::at_most(
            "PreRoomCreate 3 apps sequential p50 <= 600 µs",
            p50(create),
            600.0,
            "µs",
        ),
        Check::at_most(
            "PreRoomCreate 3 apps sequential p99 <= 1200 µs",
            create.map(|s| s.latency.p99),
            1200.0,
            "µs",
        ),
        Check::at_least(
            format!("PreRoomCreate 3 apps >= 15000 calls/s @{in_flight}"),
            rate(create),
            15_000.0,
            "calls/s",
        ),
        Check::at_least(
            format!("PreRoomCreate 3 apps on one connection >= 15000 calls/s @{in_flight}"),
            rate(b.find(Key::CreateShared(3))),
            15_000.0,
            "calls/s",
        ),
        Check::at_least(
            "PostRoomCreate >= 50000 events/s accepted",
            rate(post),
            50_000.0,
            "events/s",
        ),
        Check::at_least(
            "PostRoomCreate >= 50000 events/s delivered to 3 apps",
            post.and_then(|s| s.delivered_per_sec),
            50_000.0,
            "events/s",
        ),
        Check::at_least(
            format!("PostEvents (batches of {POST_BATCH}) >= 50000 events/s accepted"),
            rate(batch),
            50_000.0,
            "events/s",
        ),
        Check::at_least(
            format!("PostEvents (batches of {POST_BATCH}) >= 50000 events/s delivered to 3 apps"),
            batch.and_then(|s| s.delivered_per_sec),
            50_000.0,
            "events/s",
        ),
    ]
}
