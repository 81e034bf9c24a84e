//! The cluster-mode targets: the forwarded call's added hop, JetStream's delivered rate, and a
//! cluster-mode sidecar's idle memory.

use super::{Check, MB, find};
use crate::{
    memory::AtRest,
    report::Summary,
    scenario::{Key, POST_BATCH},
};

/// The cluster-mode targets (issue 14): the forwarded call's added hop, JetStream's delivered
/// rate, a cluster-mode sidecar's idle memory. `n/a` when the cluster rows did not run.
pub(super) fn cluster_checks(
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
