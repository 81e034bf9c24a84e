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
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Deadlines still waiting, as an owner would keep them.
    #[derive(Default)]
    struct Waiting(Mutex<Vec<Instant>>);

    impl Waiting {
        fn add(&self, alarm: &Alarm, deadline: Instant) {
            self.0.lock().unwrap().push(deadline);
            alarm.arm(deadline);
        }

        fn expire(&self, now: Instant, expired: &Mutex<Vec<Instant>>) -> Option<Instant> {
            let mut waiting = self.0.lock().unwrap();
            let (due, left): (Vec<_>, Vec<_>) = waiting.iter().partition(|d| **d <= now);
            expired.lock().unwrap().extend(due);
            *waiting = left;
            waiting.iter().min().copied()
        }
    }

    /// An alarm running on its own task over a [`Waiting`] list, and what it expired.
    struct Running {
        alarm: Arc<Alarm>,
        waiting: Arc<Waiting>,
        expired: Arc<Mutex<Vec<Instant>>>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    impl Running {
        fn start() -> Self {
            let alarm = Arc::new(Alarm::new());
            let waiting = Arc::new(Waiting::default());
            let expired = Arc::new(Mutex::new(Vec::new()));
            let stop = CancellationToken::new();
            let task = tokio::spawn({
                let (alarm, waiting, expired, stop) = (
                    alarm.clone(),
                    waiting.clone(),
                    expired.clone(),
                    stop.clone(),
                );
                async move { alarm.run(stop, |now| waiting.expire(now, &expired)).await }
            });
            Self {
                alarm,
                waiting,
                expired,
                stop,
                task,
            }
        }

        fn add(&self, deadline: Instant) {
            self.waiting.add(&self.alarm, deadline);
        }

        fn expired(&self) -> Vec<Instant> {
            self.expired.lock().unwrap().clone()
        }

        async fn stop(self) {
            self.stop.cancel();
            self.task.await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_deadline_expires_on_time_in_order_whatever_order_it_was_armed_in() {
        let running = Running::start();
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        running.add(ms(300));
        running.add(ms(100));
        running.add(ms(200));
        tokio::time::sleep_until(ms(150)).await;
        assert_eq!(running.expired(), vec![ms(100)]);
        running.add(ms(160));
        tokio::time::sleep_until(ms(250)).await;
        assert_eq!(running.expired(), vec![ms(100), ms(160), ms(200)]);
        tokio::time::sleep_until(ms(400)).await;
        assert_eq!(running.expired(), vec![ms(100), ms(160), ms(200), ms(300)]);
        running.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_armed_after_the_alarm_went_idle_still_expires() {
        let running = Running::start();
        running.add(Instant::now() + Duration::from_millis(10));
        tokio::time::sleep(Duration::from_secs(1)).await;
        running.add(Instant::now() + Duration::from_millis(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(running.expired().len(), 2);
        assert!(running.waiting.0.lock().unwrap().is_empty());
        running.stop().await;
    }
}
