//! One timer for every app call in flight.
//!
//! A tokio timer per call costs a wake-up of the runtime's driver whenever it is the earliest
//! timer (on an idle sidecar: every call), a syscall per app per backend call. Instead each
//! call keeps its deadline next to its reply channel (in [`Instance`](crate::apps::instance::Instance))
//! and tells the alarm about it: the alarm is re-set only when a deadline is earlier than the one
//! it is set for, which with equal app timeouts is almost never. When the alarm goes off, its
//! owner times out every call that is due and sets it for the earliest one still waiting.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;

/// `armed` when the alarm is not set.
const UNSET: u64 = u64::MAX;

/// The alarm: when it goes off, and a way to tell its task it must go off earlier.
pub struct Alarm {
    /// Nanoseconds after `epoch` at which the alarm goes off, or [`UNSET`].
    armed: AtomicU64,
    /// Woken when `armed` moves earlier.
    earlier: Notify,
    epoch: Instant,
}

impl Default for Alarm {
    fn default() -> Self {
        Self::new()
    }
}

impl Alarm {
    /// An alarm that is not set.
    pub fn new() -> Self {
        Self {
            armed: AtomicU64::new(UNSET),
            earlier: Notify::new(),
            epoch: Instant::now(),
        }
    }

    /// Makes sure the alarm goes off no later than `deadline`. Call it after the call with that
    /// deadline is where the alarm's owner will look for it.
    pub fn arm(&self, deadline: Instant) {
        if self.lower_to(deadline) {
            self.earlier.notify_one();
        }
    }

    /// Runs the alarm until `stop`. Each time it goes off, `expire(now)` times out every call
    /// that is due and returns the earliest deadline still waiting, if any.
    pub async fn run(
        &self,
        stop: CancellationToken,
        mut expire: impl FnMut(Instant) -> Option<Instant>,
    ) {
        let sleep = tokio::time::sleep_until(self.epoch);
        tokio::pin!(sleep);
        let mut set_for = UNSET;
        loop {
            let armed = self.armed.load(Ordering::Acquire);
            if armed != UNSET && armed != set_for {
                sleep.as_mut().reset(self.instant(armed));
                set_for = armed;
            }
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = self.earlier.notified() => {}
                () = &mut sleep, if armed != UNSET => {
                    set_for = UNSET;
                    // Unset first: a call armed while `expire` runs lowers it again, so it is
                    // either seen by `expire` or sets the alarm itself. The swap's acquire
                    // makes every call armed before it visible to `expire`.
                    self.armed.swap(UNSET, Ordering::AcqRel);
                    if let Some(next) = expire(Instant::now()) {
                        self.lower_to(next);
                    }
                }
            }
        }
    }

    /// Moves the alarm to `deadline` if that is earlier; true if it moved.
    fn lower_to(&self, deadline: Instant) -> bool {
        let nanos = u64::try_from(deadline.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(UNSET - 1)
            .min(UNSET - 1);
        self.armed.fetch_min(nanos, Ordering::AcqRel) > nanos
    }

    fn instant(&self, nanos: u64) -> Instant {
        self.epoch + Duration::from_nanos(nanos)
    }
}

#[cfg(test)]
mod tests;
