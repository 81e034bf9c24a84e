//! The first phase of a graceful shutdown: stop taking new backend calls and wait for the ones in
//! flight. App streams stay open meanwhile, so the calls still being answered keep their apps.
//!
//! Every backend call holds a [`CallGuard`] from [`Drain::admit`] while it runs; [`Drain::begin`]
//! makes further admissions fail and [`Drain::calls_done`] resolves once the last guard is gone.

use tokio_util::{
    sync::CancellationToken,
    task::{TaskTracker, task_tracker::TaskTrackerToken},
};

/// Whether the sidecar still takes new work, and which backend calls are still running.
#[derive(Debug, Default)]
pub struct Drain {
    begun: CancellationToken,
    calls: TaskTracker,
}

/// Held by one backend call while it runs; the drain waits for every one.
#[derive(Debug)]
pub struct CallGuard {
    _token: TaskTrackerToken,
}

/// The sidecar is shutting down and takes no new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the roomhooks sidecar is shutting down")]
pub struct Draining;

impl Drain {
    /// A drain that has not begun.
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits one backend call, or refuses it once the drain has begun.
    pub fn admit(&self) -> Result<CallGuard, Draining> {
        // The guard is counted before the check: a call that passes the check is one
        // `calls_done` waits for, whichever of the two ran first.
        let guard = CallGuard {
            _token: self.calls.token(),
        };
        if self.begun.is_cancelled() {
            return Err(Draining);
        }
        Ok(guard)
    }

    /// Stops admitting; [`Drain::calls_done`] then waits for the calls already admitted.
    pub fn begin(&self) {
        self.begun.cancel();
        self.calls.close();
    }

    /// Whether the drain has begun.
    pub fn has_begun(&self) -> bool {
        self.begun.is_cancelled()
    }

    /// Backend calls still running.
    pub fn in_flight(&self) -> usize {
        self.calls.len()
    }

    /// Resolves once the drain has begun and no admitted call is left.
    pub async fn calls_done(&self) {
        self.calls.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_begun_drain_refuses_new_calls_and_waits_for_admitted_ones() {
        let drain = Drain::new();
        let running = drain.admit().expect("admitted before the drain");
        drain.begin();
        assert_eq!(drain.admit().unwrap_err(), Draining);
        assert_eq!(drain.in_flight(), 1, "the refused call is not counted");
        let mut done = std::pin::pin!(drain.calls_done());
        assert!(
            futures_util::poll!(done.as_mut()).is_pending(),
            "a call is still running"
        );
        drop(running);
        done.await;
    }

    #[tokio::test]
    async fn calls_done_waits_for_the_drain_to_begin() {
        let drain = Drain::new();
        let mut done = std::pin::pin!(drain.calls_done());
        assert!(futures_util::poll!(done.as_mut()).is_pending());
        drain.begin();
        done.await;
    }
}
