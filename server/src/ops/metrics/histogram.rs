//! Histograms: which of the stats' latency buckets are exported, one histogram's series from
//! per-bucket counters, and the per-app call latency histogram.

use std::{
    fmt::Write,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use crate::{apps::registry::Snapshot, apps::stats::BUCKETS_US, hook::Hook};

/// Bucket indices exported to Prometheus: 1, 2.5 and 5 per decade, up to the max timeout.
pub(super) fn exported_buckets(max: Duration) -> Vec<usize> {
    let max_us = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
    let mut out = Vec::new();
    for (i, &upper) in BUCKETS_US.iter().enumerate() {
        if matches!(i % 10, 0 | 4 | 7) {
            out.push(i);
            if upper >= max_us {
                break;
            }
        }
    }
    out
}

/// Per app and hook: the call latency histogram.
pub(super) fn latency_histograms(out: &mut String, snapshot: &Snapshot, buckets: &[usize]) {
    let _ = writeln!(
        out,
        "# HELP roomhooks_app_call_duration_seconds Time from sending a hook call to its outcome, per app and hook."
    );
    let _ = writeln!(out, "# TYPE roomhooks_app_call_duration_seconds histogram");
    for app in snapshot.apps() {
        for hook in Hook::ALL {
            let c = app.stats.hook(hook);
            let total = c.calls.load(Ordering::Relaxed);
            if total == 0 {
                continue;
            }
            let labels = format!("app_id=\"{}\",hook=\"{}\"", app.spec.app_id, hook.name());
            let sum_us = c.latency_sum_us.load(Ordering::Relaxed);
            histogram_series(
                out,
                "roomhooks_app_call_duration_seconds",
                &labels,
                &c.latency,
                sum_us,
                buckets,
            );
        }
    }
}

/// One histogram's series (`_bucket` at the exported `buckets`, `+Inf`, `_sum`, `_count`) from
/// per-bucket counters of microseconds; `labels` go before `le` (empty: none).
pub(super) fn histogram_series(
    out: &mut String,
    name: &str,
    labels: &str,
    counters: &[AtomicU64],
    sum_us: u64,
    buckets: &[usize],
) {
    let counts: Vec<u64> = counters.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    let sep = if labels.is_empty() { "" } else { "," };
    for &i in buckets {
        let cumulative: u64 = counts[..=i].iter().sum();
        let le = BUCKETS_US[i] as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
        );
    }
    let count: u64 = counts.iter().sum();
    let sum = sum_us as f64 / 1e6;
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let braces = |l: &str| {
        if l.is_empty() {
            String::new()
        } else {
            format!("{{{l}}}")
        }
    };
    let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
    let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_buckets_reach_the_max_timeout() {
        let buckets = exported_buckets(Duration::from_secs(10));
        assert_eq!(BUCKETS_US[buckets[0]], 10);
        assert_eq!(BUCKETS_US[*buckets.last().unwrap()], 10_000_000);
        let long = exported_buckets(Duration::from_secs(30));
        assert!(BUCKETS_US[*long.last().unwrap()] >= 30_000_000);
    }
}
