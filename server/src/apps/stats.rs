//! Live statistics per app and hook: outcome counters and a latency histogram, shared by
//! `Admin.ListApps` (p50/p99) and the Prometheus endpoint (buckets), so both tell the same story.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use roomhooks::v1::OutcomeStatus;

use crate::hook::Hook;

/// Upper bounds of the fine latency buckets, in microseconds: 10 per decade from 10 µs to 100 s.
pub const BUCKETS_US: [u64; 70] = {
    const STEPS: [u64; 10] = [100, 125, 150, 200, 250, 300, 400, 500, 600, 800];
    let mut out = [0u64; 70];
    let mut decade = 0;
    let mut scale = 1u64; // 10 µs × scale / 10 per step
    while decade < 7 {
        let mut i = 0;
        while i < 10 {
            out[decade * 10 + i] = STEPS[i] * scale / 10;
            i += 1;
        }
        scale *= 10;
        decade += 1;
    }
    out
};

/// The outcome counters kept per hook.
pub struct HookCounters {
    /// Calls that ended (any status).
    pub calls: AtomicU64,
    /// Per wire outcome status (index = status value).
    pub by_status: [AtomicU64; 11],
    /// Shadow answers that would have changed the verdict or the room.
    pub shadow_disagreements: AtomicU64,
    /// Calls not made because a match condition was false.
    pub skipped: AtomicU64,
    /// Failures counted as no objection or no change.
    pub fail_opens: AtomicU64,
    /// Failures that prevented the action.
    pub fail_closeds: AtomicU64,
    /// Latency histogram, one slot per entry of [`BUCKETS_US`] plus one for everything above.
    pub latency: [AtomicU64; 71],
    /// Sum of latencies in microseconds.
    pub latency_sum_us: AtomicU64,
    /// Post hooks: events sent to the app, redeliveries included.
    pub deliveries: AtomicU64,
    /// Post hooks: deliveries after the first (the event was not acknowledged in time, or its
    /// instance went away).
    pub redeliveries: AtomicU64,
    /// Post hooks: events the app acknowledged.
    pub acks: AtomicU64,
}

impl Default for HookCounters {
    fn default() -> Self {
        Self {
            calls: AtomicU64::new(0),
            by_status: Default::default(),
            shadow_disagreements: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            fail_opens: AtomicU64::new(0),
            fail_closeds: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_us: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            redeliveries: AtomicU64::new(0),
            acks: AtomicU64::new(0),
        }
    }
}

/// What happened to a failed call, for the fail-open / fail-closed counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyEffect {
    /// Not a failure.
    None,
    /// Failed, counted as no objection / no change.
    FailOpen,
    /// Failed, the action was prevented.
    FailClosed,
}

impl HookCounters {
    /// Records one call.
    pub fn record(&self, status: OutcomeStatus, elapsed: Duration, effect: PolicyEffect) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = self.by_status.get(status as usize) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        match effect {
            PolicyEffect::None => {}
            PolicyEffect::FailOpen => {
                self.fail_opens.fetch_add(1, Ordering::Relaxed);
            }
            PolicyEffect::FailClosed => {
                self.fail_closeds.fetch_add(1, Ordering::Relaxed);
            }
        }
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let slot = BUCKETS_US.partition_point(|&upper| upper < us);
        self.latency[slot].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Records one delivery of a post event (`attempt` 1 is the first).
    pub fn record_delivery(&self, attempt: u32) {
        self.deliveries.fetch_add(1, Ordering::Relaxed);
        if attempt > 1 {
            self.redeliveries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one acknowledged post event.
    pub fn record_ack(&self) {
        self.acks.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a call a match condition skipped.
    pub fn record_skip(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a shadow answer that would have changed the verdict or the room.
    pub fn record_disagreement(&self) {
        self.shadow_disagreements.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether anything was recorded: a call ended or was skipped, or a post event was
    /// delivered.
    pub fn is_used(&self) -> bool {
        self.calls.load(Ordering::Relaxed) > 0
            || self.deliveries.load(Ordering::Relaxed) > 0
            || self.skipped.load(Ordering::Relaxed) > 0
    }

    /// Count for one outcome status.
    pub fn status(&self, status: OutcomeStatus) -> u64 {
        self.by_status[status as usize].load(Ordering::Relaxed)
    }

    /// The latency below which `quantile` of calls fall (a bucket's upper bound), in µs.
    pub fn quantile_us(&self, quantile: f64) -> u64 {
        let counts: Vec<u64> = self
            .latency
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        // The rank is in 1..=total: neither negative nor beyond u64.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = ((total as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return BUCKETS_US.get(i).copied().unwrap_or(u64::MAX);
            }
        }
        u64::MAX
    }
}

/// Statistics of one app, per hook.
#[derive(Default)]
pub struct AppStats {
    hooks: [HookCounters; Hook::COUNT],
}

impl AppStats {
    /// The counters of one hook.
    pub fn hook(&self, hook: Hook) -> &HookCounters {
        &self.hooks[hook.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_rise_from_10_us_to_100_s() {
        assert_eq!(BUCKETS_US[0], 10);
        assert_eq!(BUCKETS_US[9], 80);
        assert_eq!(BUCKETS_US[10], 100);
        assert_eq!(BUCKETS_US[69], 80_000_000);
        assert!(BUCKETS_US.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn quantiles_come_from_the_histogram() {
        let c = HookCounters::default();
        for _ in 0..98 {
            c.record(
                OutcomeStatus::Allowed,
                Duration::from_micros(180),
                PolicyEffect::None,
            );
        }
        for _ in 0..2 {
            c.record(
                OutcomeStatus::Timeout,
                Duration::from_millis(900),
                PolicyEffect::FailOpen,
            );
        }
        assert_eq!(c.quantile_us(0.5), 200);
        assert_eq!(c.quantile_us(0.99), 1_000_000);
        assert_eq!(c.status(OutcomeStatus::Timeout), 2);
        assert_eq!(c.fail_opens.load(Ordering::Relaxed), 2);
    }
}
