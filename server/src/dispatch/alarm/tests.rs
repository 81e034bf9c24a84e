//! Deterministic (paused-time) tests of the alarm.

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

// The cases below check *when* each deadline expires, not only that it did: under paused
// time the alarm's sleep ends exactly at the instant it was set for, so a deadline that
// expired late shows as a later instant.

/// Deadlines still waiting, with the instant each one expired at, and deadlines to arm from
/// inside the next `expire` (as a call on another thread may while the alarm's owner runs).
#[derive(Default)]
struct Clocked {
    waiting: Mutex<Vec<Instant>>,
    expired: Mutex<Vec<(Instant, Instant)>>,
    arm_during_expire: Mutex<Vec<Instant>>,
}

/// An alarm running on its own task over a [`Clocked`] list.
struct Timed {
    alarm: Arc<Alarm>,
    clocked: Arc<Clocked>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Timed {
    fn start() -> Self {
        let alarm = Arc::new(Alarm::new());
        let clocked = Arc::new(Clocked::default());
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (alarm, clocked, stop) = (alarm.clone(), clocked.clone(), stop.clone());
            async move {
                alarm
                    .run(stop, |now| {
                        let next = {
                            let mut waiting = clocked.waiting.lock().unwrap();
                            let (due, left): (Vec<_>, Vec<_>) =
                                waiting.iter().partition(|d| **d <= now);
                            clocked
                                .expired
                                .lock()
                                .unwrap()
                                .extend(due.into_iter().map(|d| (d, now)));
                            *waiting = left;
                            waiting.iter().min().copied()
                        };
                        // Armed after `next` was taken: `expire`'s answer cannot know them.
                        let late: Vec<_> =
                            std::mem::take(&mut *clocked.arm_during_expire.lock().unwrap());
                        for deadline in late {
                            clocked.waiting.lock().unwrap().push(deadline);
                            alarm.arm(deadline);
                        }
                        next
                    })
                    .await;
            }
        });
        Self {
            alarm,
            clocked,
            stop,
            task,
        }
    }

    fn add(&self, deadline: Instant) {
        self.clocked.waiting.lock().unwrap().push(deadline);
        self.alarm.arm(deadline);
    }

    /// Each expired deadline with the instant it expired at, sorted by deadline.
    fn expired(&self) -> Vec<(Instant, Instant)> {
        let mut expired = self.clocked.expired.lock().unwrap().clone();
        expired.sort();
        expired
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_deadline_earlier_than_the_one_the_alarm_is_set_for_expires_at_its_own_time() {
    let timed = Timed::start();
    let start = Instant::now();
    let ms = |n| start + Duration::from_millis(n);
    timed.add(ms(300));
    // The alarm's task now sleeps until 300 ms.
    tokio::time::sleep_until(ms(10)).await;

    timed.add(ms(100));
    tokio::time::sleep_until(ms(400)).await;

    assert_eq!(
        timed.expired(),
        vec![(ms(100), ms(100)), (ms(300), ms(300))],
        "the earlier deadline re-set the alarm instead of waiting for 300 ms"
    );
    timed.stop().await;
}

#[tokio::test(start_paused = true)]
async fn many_deadlines_armed_concurrently_by_many_calls_each_expire_at_their_own_time() {
    const CALLERS: u64 = 32;
    const CALLS_EACH: u64 = 20;
    let timed = Arc::new(Timed::start());
    let start = Instant::now();
    // Each caller arms a deadline, waits a little, arms the next: 640 deadlines in all,
    // interleaved across callers, earlier and later than whatever the alarm is set for.
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let timed = Arc::clone(&timed);
            tokio::spawn(async move {
                let mut armed = Vec::new();
                let mut seed = caller * 7919 + 1;
                for _ in 0..CALLS_EACH {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let timeout = Duration::from_millis(1 + (seed >> 33) % 50);
                    let pause = Duration::from_millis((seed >> 45) % 7);
                    let deadline = Instant::now() + timeout;
                    timed.add(deadline);
                    armed.push(deadline);
                    tokio::time::sleep(pause).await;
                }
                armed
            })
        })
        .collect();
    let mut armed = Vec::new();
    for caller in callers {
        armed.extend(caller.await.unwrap());
    }
    tokio::time::sleep_until(start + Duration::from_secs(1)).await;

    let expired = timed.expired();
    armed.sort();
    let deadlines: Vec<Instant> = expired.iter().map(|(d, _)| *d).collect();
    assert_eq!(deadlines, armed, "every deadline expired exactly once");
    let late: Vec<Duration> = expired
        .iter()
        .map(|(deadline, at)| *at - *deadline)
        .filter(|lateness| *lateness > Duration::ZERO)
        .collect();
    assert!(
        late.is_empty(),
        "{} deadlines expired late: {late:?}",
        late.len()
    );
    Arc::into_inner(timed)
        .expect("the callers ended")
        .stop()
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_deadline_armed_while_the_alarm_is_expiring_others_is_not_missed() {
    let timed = Timed::start();
    let start = Instant::now();
    let ms = |n| start + Duration::from_millis(n);
    timed.add(ms(100));
    // Armed during the expiry at 100 ms, after `expire` found nothing else waiting.
    timed
        .clocked
        .arm_during_expire
        .lock()
        .unwrap()
        .push(ms(150));

    tokio::time::sleep_until(ms(300)).await;

    assert_eq!(
        timed.expired(),
        vec![(ms(100), ms(100)), (ms(150), ms(150))]
    );
    timed.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stopping_an_armed_alarm_ends_its_task_at_once_without_expiring_anything() {
    let timed = Timed::start();
    let start = Instant::now();
    timed.add(start + Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(10)).await;

    let expired = Arc::clone(&timed.clocked);
    tokio::time::timeout(Duration::from_secs(5), timed.stop())
        .await
        .expect("the alarm's task ends when told to stop");

    assert!(
        start.elapsed() < Duration::from_secs(1),
        "stopped before the deadline ({:?})",
        start.elapsed()
    );
    assert!(expired.expired.lock().unwrap().is_empty());
}
