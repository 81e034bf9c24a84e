//! Post events for one app: a bounded queue, durable when a store is configured, delivered at
//! least once and in accepted order to one instance at a time, acknowledged by event id, and
//! redelivered with `attempt + 1` (immediately when the instance vanished, after an ack timeout
//! that doubles per attempt otherwise) until the attempt cap moves the event to the dead letters.
//!
//! An event queued for several apps is stored once (see [`crate::store`]): each queue holds it
//! and the last one to finish with it deletes the record; each queue keeps its cursor current.

pub mod accept;
mod event;
mod recovery;
pub mod sequence;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::{
    sync::{Notify, oneshot},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

pub use event::{PostEventData, unix_ms};
pub use recovery::Recovery;

use crate::{
    apps::frame::Frame,
    apps::instance::Instance,
    apps::stats::AppStats,
    ids::{AppId, EventId, InstanceId},
    lifecycle::tasks::Tasks,
    post::sequence::Sequence,
    store::{Committed, EventWrite, Store},
};

/// Limits of post-event delivery (`Config::post`; `Default` is a blank, zeros).
#[derive(Clone, Copy, Debug, Default)]
pub struct PostConfig {
    /// Events kept per app; beyond it the oldest is dropped (logged, counted).
    pub max_queued: usize,
    /// Encoded bytes kept per app; beyond it the oldest is dropped (logged, counted).
    pub max_bytes: usize,
    /// Events sent to an app and not acknowledged yet, at most.
    pub window: usize,
    /// How long an app has to acknowledge the first delivery; doubles per attempt (up to 16×).
    pub ack_timeout: Duration,
    /// Deliveries of one event before it becomes a dead letter.
    pub max_attempts: u32,
    /// How long an acknowledged event id is remembered, so a retried Post is accepted once.
    pub dedupe_window: Duration,
}

/// How long an app has to acknowledge attempt `attempt` (from 1) of an event: `ack_timeout`,
/// doubled per attempt up to 16×. The single rule for both the embedded queue and the cluster's
/// consumers (their JetStream `backoff`).
pub fn ack_wait(ack_timeout: Duration, attempt: u32) -> Duration {
    ack_timeout * (1u32 << attempt.saturating_sub(1).min(4))
}

/// How a waited-for event ended for one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The app acknowledged it (or already had, for a retried event id).
    Acked {
        /// The instance that acknowledged (empty for a duplicate of an acknowledged event).
        instance: Option<InstanceId>,
        /// The delivery attempt that was acknowledged.
        attempt: u32,
    },
    /// The queue overflowed and the event was dropped before it was acknowledged.
    Dropped,
    /// It reached the attempt cap and became a dead letter.
    DeadLettered,
}

/// A waiter's receiving end; an error means the app was removed.
pub type DeliveryWaiter = oneshot::Receiver<Delivery>;

/// An event that reached the attempt cap.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its sequence number in the app's queue.
    pub seq: u64,
    /// The event.
    pub event: Arc<PostEventData>,
    /// Deliveries made.
    pub attempts: u32,
    /// Why it was given up on.
    pub reason: String,
    /// When it was given up on.
    pub dead_at: SystemTime,
}

struct Sent {
    to: Arc<Instance>,
    at: Instant,
}

struct Queued {
    seq: u64,
    event: Arc<PostEventData>,
    /// Its store record is the shared one (`posts`), not one of the app's own (`events`).
    shared: bool,
    size: usize,
    accepted_at: Instant,
    accepted_unix_ms: i64,
    attempt: u32,
    sent: Option<Sent>,
    waiters: Vec<oneshot::Sender<Delivery>>,
}

impl Queued {
    fn stored(&self, attempt: u32) -> Vec<u8> {
        self.event.stored(attempt, self.accepted_unix_ms, None)
    }

    /// The store writes that end this app's hold on the event (acknowledged, dropped or dead).
    fn forget(&self, writes: &mut Vec<EventWrite>) {
        if !self.shared {
            writes.push(EventWrite::Delete(self.seq));
            return;
        }
        if self.attempt > 1 {
            writes.push(EventWrite::ForgetAttempt(self.seq));
        }
        if self.event.release() {
            writes.push(EventWrite::DeletePost(self.seq));
        }
    }

    fn finish(self, how: Delivery) {
        for waiter in self.waiters {
            let _ = waiter.send(how.clone());
        }
    }
}

#[derive(Default)]
struct QueueState {
    events: VecDeque<Queued>,
    /// The sequence number of each queued event, by id (acks look events up here).
    ids: HashMap<EventId, u64, foldhash::fast::RandomState>,
    bytes: usize,
    recent: HashMap<EventId, Instant, foldhash::fast::RandomState>,
    recent_order: VecDeque<(EventId, Instant)>,
    instances: Vec<Arc<Instance>>,
    target: Option<Arc<Instance>>,
    /// The highest sequence number ever queued here.
    last_seq: u64,
    /// The cursor last written: every event below it is done for this app.
    cursor: u64,
    /// How many events at the front have been sent to the current target.
    sent_upto: usize,
    /// When the earliest of those is due for redelivery (`None`: none is in flight).
    next_due: Option<Instant>,
    /// Store writes decided by acks, sent by the delivery task with its next group.
    unwritten: Vec<EventWrite>,
    dropped: u64,
    /// When a drop was last logged.
    drop_logged_at: Option<Instant>,
    dead: VecDeque<DeadLetter>,
}

impl QueueState {
    /// Queues `queued` in sequence order: at the back, as every caller numbers events under
    /// the sequence lock; an older number would go to its place, so the queue stays sorted
    /// (acks find events by binary search).
    fn push(&mut self, queued: Queued) {
        self.ids.insert(queued.event.id.clone(), queued.seq);
        self.bytes += queued.size;
        self.last_seq = self.last_seq.max(queued.seq);
        match self.events.back() {
            Some(last) if last.seq > queued.seq => {
                let at = self.events.partition_point(|q| q.seq < queued.seq);
                if at < self.sent_upto {
                    self.sent_upto += 1;
                }
                self.events.insert(at, queued);
            }
            _ => self.events.push_back(queued),
        }
    }

    /// Takes the event at `pos` out of the queue.
    fn remove(&mut self, pos: usize) -> Option<Queued> {
        let queued = self.events.remove(pos)?;
        if pos < self.sent_upto {
            self.sent_upto -= 1;
        }
        self.ids.remove(&queued.event.id);
        self.bytes -= queued.size;
        Some(queued)
    }

    /// Moves the cursor to the oldest event still queued (or past the newest one); the write
    /// to make when it moved.
    fn advance_cursor(&mut self) -> Option<EventWrite> {
        let cursor = self.events.front().map_or(self.last_seq + 1, |q| q.seq);
        (cursor > self.cursor).then(|| {
            self.cursor = cursor;
            EventWrite::Cursor(cursor)
        })
    }
}

/// How often a queue that keeps overflowing says so in the log, at most.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// Dead letters kept in memory per app (the store keeps them all).
const MAX_DEAD_IN_MEMORY: usize = 10_000;
/// Acknowledged ids remembered per app for de-duplication, at most.
const MAX_RECENT: usize = 100_000;

/// An event offered to a queue: numbered, with the time it was accepted.
pub struct Offer<'a> {
    /// The event.
    pub event: &'a Arc<PostEventData>,
    /// Its sequence number (taken under the [`Sequence`] lock still held).
    pub seq: u64,
    /// When it was accepted (Unix ms).
    pub accepted_unix_ms: i64,
    /// Whether the backend waits for its delivery.
    pub wait: bool,
}

/// What a queue did with a batch of offers.
pub struct Admitted {
    /// Each offer's delivery waiter, when it asked to wait.
    pub waiters: Vec<Option<DeliveryWaiter>>,
    /// Whether each offer was queued as a new event (false for a duplicate): the queue now holds
    /// its shared store record.
    pub queued: Vec<bool>,
    /// Store writes the offers caused (the oldest events dropped beyond the limits).
    writes: Vec<EventWrite>,
}

/// The post-event queue of one app, with the task that delivers it.
pub struct PostQueue {
    app_id: AppId,
    config: PostConfig,
    store: Option<Store>,
    sequence: Arc<Sequence>,
    state: Mutex<QueueState>,
    wake: Notify,
    stop: CancellationToken,
    /// The app's statistics: deliveries, redeliveries and acks per hook.
    stats: Arc<AppStats>,
}

impl PostQueue {
    /// A queue holding what the store recovered for this app; its delivery task, once
    /// [`PostQueue::start`]ed, runs until `tasks` stop or [`PostQueue::stop`].
    pub fn new(
        app_id: AppId,
        config: PostConfig,
        store: Option<Store>,
        sequence: Arc<Sequence>,
        recovery: &mut Recovery,
        stats: Arc<AppStats>,
        tasks: &Tasks,
    ) -> Arc<Self> {
        let (recovered, recovered_dead) = recovery.take(&app_id);
        let mut state = QueueState::default();
        for r in recovered {
            state.push(Queued {
                seq: r.seq,
                size: r.event.size(),
                event: r.event,
                shared: r.shared,
                accepted_at: Instant::now(),
                accepted_unix_ms: r.accepted_unix_ms,
                attempt: r.attempt,
                sent: None,
                waiters: Vec::new(),
            });
        }
        for (seq, stored) in recovered_dead {
            if let Some((event, attempts)) = PostEventData::from_stored(&stored) {
                state.dead.push_back(DeadLetter {
                    seq,
                    event: Arc::new(event),
                    attempts,
                    reason: stored.reason,
                    dead_at: UNIX_EPOCH
                        + Duration::from_millis(u64::try_from(stored.dead_unix_ms).unwrap_or(0)),
                });
            }
        }
        state.cursor = state.events.front().map_or(0, |q| q.seq);
        if !state.events.is_empty() {
            tracing::info!(%app_id, pending = state.events.len(), "recovered post events from the store");
        }
        Arc::new(Self {
            app_id,
            config,
            store,
            sequence,
            state: Mutex::new(state),
            wake: Notify::new(),
            stop: tasks.stopping().child_token(),
            stats,
        })
    }

    /// Starts the queue's delivery task, owned by `tasks`. Call it once, with no lock held.
    pub fn start(self: &Arc<Self>, tasks: &Tasks) {
        tasks.spawn(Arc::clone(self).deliver());
    }

    /// Queues offered events in the order given, under one lock, unless an event's id is
    /// already queued or was acknowledged within the de-duplication window. Call with the
    /// [`Sequence`] lock held; then [`PostQueue::commit`] the result once the lock is released.
    pub fn admit_many<'a>(&self, offers: impl IntoIterator<Item = Offer<'a>>) -> Admitted {
        let mut writes = Vec::new();
        let mut state = self.lock();
        if self.stop.is_cancelled() {
            // The app was removed after the caller looked it up: it takes nothing.
            let offers: Vec<_> = offers.into_iter().collect();
            return Admitted {
                waiters: offers.iter().map(|_| None).collect(),
                queued: vec![false; offers.len()],
                writes,
            };
        }
        let (waiters, queued) = offers
            .into_iter()
            .map(|offer| self.admit(&mut state, offer, &mut writes))
            .unzip();
        if !writes.is_empty() {
            writes.extend(state.advance_cursor());
        }
        Admitted {
            waiters,
            queued,
            writes,
        }
    }

    /// Writes what admission dropped and starts delivering what it queued.
    pub async fn commit(&self, admitted: &mut Admitted) {
        self.write(std::mem::take(&mut admitted.writes), false)
            .await;
        self.wake.notify_one();
    }

    /// Queues one event under the lock (unless it is a duplicate), dropping the oldest events
    /// beyond the limits, and notes the store writes to make.
    fn admit(
        &self,
        state: &mut QueueState,
        offer: Offer<'_>,
        writes: &mut Vec<EventWrite>,
    ) -> (Option<DeliveryWaiter>, bool) {
        let event = offer.event;
        let (tx, waiter) = if offer.wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        if state.ids.contains_key(&event.id) {
            if let Some(tx) = tx
                && let Some(q) = state.events.iter_mut().find(|q| q.event.id == event.id)
            {
                q.waiters.push(tx);
            }
            return (waiter, false);
        }
        if let Some(at) = state.recent.get(&event.id)
            && at.elapsed() < self.config.dedupe_window
        {
            if let Some(tx) = tx {
                let _ = tx.send(Delivery::Acked {
                    instance: None,
                    attempt: 0,
                });
            }
            return (waiter, false);
        }
        let size = event.size();
        while !state.events.is_empty()
            && (state.events.len() >= self.config.max_queued
                || state.bytes + size > self.config.max_bytes)
        {
            if let Some(oldest) = state.remove(0) {
                state.dropped += 1;
                let now = Instant::now();
                if state
                    .drop_logged_at
                    .is_none_or(|at| now.duration_since(at) >= DROP_LOG_INTERVAL)
                {
                    state.drop_logged_at = Some(now);
                    tracing::warn!(
                        app_id = %self.app_id,
                        event_id = %oldest.event.id,
                        dropped_total = state.dropped,
                        "post-event queue full (--post-queue-max-events / --post-queue-max-bytes): \
                         dropped the oldest unacknowledged event (logged at most once a second; \
                         dropped_total counts every one); connect or enable this app, or raise \
                         the limits"
                    );
                }
                oldest.forget(writes);
                oldest.finish(Delivery::Dropped);
            }
        }
        event.hold();
        state.push(Queued {
            seq: offer.seq,
            event: Arc::clone(event),
            shared: true,
            size,
            accepted_at: Instant::now(),
            accepted_unix_ms: offer.accepted_unix_ms,
            attempt: 0,
            sent: None,
            waiters: tx.into_iter().collect(),
        });
        (waiter, true)
    }

    /// Records an app's acknowledgement; its store writes go with the delivery task's next
    /// group, so a burst of acks costs one store write. Returns false for an event id not
    /// awaiting one.
    pub fn ack(&self, event_id: &EventId, from: &InstanceId) -> bool {
        let done = {
            let mut state = self.lock();
            // Events are queued in sequence order: the id's number finds it in O(log n), and
            // only the first `window` events can have been sent.
            let Some(&seq) = state.ids.get(event_id) else {
                return false;
            };
            let Ok(pos) = state.events.binary_search_by_key(&seq, |q| q.seq) else {
                return false;
            };
            if pos >= self.config.window {
                return false;
            }
            let Some(done) = state.remove(pos) else {
                return false;
            };
            let now = Instant::now();
            state.recent.insert(event_id.clone(), now);
            state.recent_order.push_back((event_id.clone(), now));
            while let Some((old, at)) = state.recent_order.front().cloned() {
                if state.recent_order.len() <= MAX_RECENT
                    && at.elapsed() < self.config.dedupe_window
                {
                    break;
                }
                state.recent_order.pop_front();
                if state.recent.get(&old) == Some(&at) {
                    state.recent.remove(&old);
                }
            }
            done.forget(&mut state.unwritten);
            let moved = state.advance_cursor();
            state.unwritten.extend(moved);
            done
        };
        let attempt = done.attempt;
        self.stats.hook(done.event.hook).record_ack();
        done.finish(Delivery::Acked {
            instance: Some(from.clone()),
            attempt,
        });
        self.wake.notify_one();
        true
    }

    /// Replaces the instances events may go to (on connect, disconnect, enable, disable).
    pub fn set_instances(&self, instances: Vec<Arc<Instance>>) {
        self.lock().instances = instances;
        self.wake.notify_one();
    }

    /// Events queued and not acknowledged.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How long the oldest unacknowledged event has waited.
    pub fn oldest_age(&self) -> Duration {
        self.lock()
            .events
            .front()
            .map_or(Duration::ZERO, |q| q.accepted_at.elapsed())
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Whether any instance can receive events now.
    pub fn has_live_instance(&self) -> bool {
        self.lock().instances.iter().any(|i| i.is_live())
    }

    /// The dead letters, oldest first, at most `limit`.
    pub fn dead_letters(&self, limit: usize) -> Vec<DeadLetter> {
        self.lock().dead.iter().take(limit).cloned().collect()
    }

    /// How many dead letters there are.
    pub fn dead_count(&self) -> usize {
        self.lock().dead.len()
    }

    /// Queues dead letters again (all when `ids` is empty), attempts reset; returns how many.
    /// A retried event is this app's own again (a new record, not the shared one).
    pub async fn retry_dead(&self, ids: &[EventId]) -> usize {
        let mut writes = Vec::new();
        let mut retried = 0;
        {
            let mut sequence = self.sequence.lock();
            let mut state = self.lock();
            let state = &mut *state;
            let (retry, keep): (Vec<_>, Vec<_>) = state
                .dead
                .drain(..)
                .partition(|d| ids.is_empty() || ids.contains(&d.event.id));
            state.dead = keep.into();
            for letter in retry {
                let seq = sequence.take();
                let queued = Queued {
                    seq,
                    size: letter.event.size(),
                    event: letter.event,
                    shared: false,
                    accepted_at: Instant::now(),
                    accepted_unix_ms: unix_ms(SystemTime::now()),
                    attempt: 0,
                    sent: None,
                    waiters: Vec::new(),
                };
                writes.push(EventWrite::DeleteDead(letter.seq));
                writes.push(EventWrite::Put(seq, queued.stored(0)));
                state.push(queued);
                retried += 1;
            }
        }
        if let Some(persisted) = self.write(writes, true).await {
            let _ = persisted.await;
        }
        self.wake.notify_one();
        retried
    }

    /// Stops delivery and drops what is queued. Returns how many events were dropped, and the
    /// shared events this queue was the last to hold (the caller deletes them with the app).
    /// Call it with the [`Sequence`] lock held: once stopped, the queue admits nothing more.
    pub fn stop(&self) -> (usize, Vec<u64>) {
        self.stop.cancel();
        let mut state = self.lock();
        state.ids.clear();
        state.bytes = 0;
        state.sent_upto = 0;
        let dropped = state.events.len();
        // Of the writes acks left for the delivery task, only the deletes of shared events still
        // matter: the rest belong to the app being forgotten.
        let mut released: Vec<u64> = std::mem::take(&mut state.unwritten)
            .into_iter()
            .filter_map(|write| match write {
                EventWrite::DeletePost(seq) => Some(seq),
                _ => None,
            })
            .collect();
        released.extend(
            state
                .events
                .drain(..)
                .filter(|q| q.shared && q.event.release())
                .map(|q| q.seq),
        );
        (dropped, released)
    }

    /// Sends store writes as one group; with `confirm`, returns its commit receiver.
    async fn write(&self, writes: Vec<EventWrite>, confirm: bool) -> Option<Committed> {
        let store = self.store.as_ref()?;
        if writes.is_empty() {
            return None;
        }
        store.write_events(&self.app_id, writes, confirm).await
    }

    async fn deliver(self: Arc<Self>) {
        loop {
            let (target, batch, writes, next_due) = self.plan();
            self.write(writes, false).await;
            if let Some(target) = target {
                for message in batch {
                    if target.send(message).await.is_err() {
                        break; // the instance went away: the next plan picks another
                    }
                }
            }
            let due = async {
                match next_due {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.stop.cancelled() => {
                    let unwritten = std::mem::take(&mut self.lock().unwritten);
                    self.write(unwritten, false).await;
                    return;
                }
                _ = self.wake.notified() => {}
                _ = due => {}
            }
        }
    }

    /// How long to wait for the ack of attempt `attempt` before sending again.
    fn ack_deadline(&self, attempt: u32) -> Duration {
        ack_wait(self.config.ack_timeout, attempt)
    }

    /// Picks the instance to deliver to and the events to send it now, in accepted order, and
    /// moves events that reached the attempt cap to the dead letters.
    #[allow(clippy::type_complexity)]
    fn plan(
        &self,
    ) -> (
        Option<Arc<Instance>>,
        Vec<Frame>,
        Vec<EventWrite>,
        Option<Instant>,
    ) {
        let mut state = self.lock();
        let state = &mut *state;
        let now = Instant::now();
        let keep = state
            .target
            .as_ref()
            .is_some_and(|t| t.is_live() && state.instances.iter().any(|i| Arc::ptr_eq(i, t)));
        if !keep {
            state.target = state
                .instances
                .iter()
                .filter(|i| i.is_live())
                .min_by_key(|i| i.in_flight())
                .cloned();
        }
        let mut writes = std::mem::take(&mut state.unwritten);
        let Some(target) = state.target.clone() else {
            state.sent_upto = 0;
            return (None, Vec::new(), writes, None);
        };
        // The events before `sent_upto` went to this target and none is due yet, unless the
        // target changed or the earliest due time passed: then everything in the window is
        // looked at again. Otherwise only the events not sent yet are.
        let rescan = !keep || state.next_due.is_some_and(|due| now >= due);
        let (mut i, mut next_due) = if rescan {
            (0, None)
        } else {
            (state.sent_upto, state.next_due)
        };
        let mut batch =
            Vec::with_capacity(state.events.len().min(self.config.window).saturating_sub(i));
        // Only the first `window` events can be in flight, so nothing beyond them is looked at.
        while i < state.events.len().min(self.config.window) {
            let queued = &mut state.events[i];
            let resend = match &queued.sent {
                None => true,
                Some(sent) => {
                    !Arc::ptr_eq(&sent.to, &target)
                        || now >= sent.at + self.ack_deadline(queued.attempt)
                }
            };
            if resend && queued.attempt >= self.config.max_attempts {
                let Some(dead) = state.remove(i) else {
                    break;
                };
                let reason = format!(
                    "not acknowledged after {} deliveries (--post-max-attempts)",
                    dead.attempt
                );
                tracing::warn!(app_id = %self.app_id, event_id = %dead.event.id, attempts = dead.attempt,
                    "post event moved to the dead letters; Admin.RetryDeadLetters queues it again");
                let stored = dead.event.stored(
                    dead.attempt,
                    dead.accepted_unix_ms,
                    Some((&reason, unix_ms(SystemTime::now()))),
                );
                writes.push(EventWrite::PutDead(dead.seq, stored));
                dead.forget(&mut writes);
                if state.dead.len() >= MAX_DEAD_IN_MEMORY {
                    state.dead.pop_front();
                }
                state.dead.push_back(DeadLetter {
                    seq: dead.seq,
                    event: Arc::clone(&dead.event),
                    attempts: dead.attempt,
                    reason,
                    dead_at: SystemTime::now(),
                });
                dead.finish(Delivery::DeadLettered);
                continue;
            }
            if resend {
                queued.attempt += 1;
                if queued.attempt > 1 {
                    tracing::debug!(app_id = %self.app_id, event_id = %queued.event.id,
                        attempt = queued.attempt, "redelivering post event");
                    writes.push(if queued.shared {
                        EventWrite::Attempt(queued.seq, queued.attempt)
                    } else {
                        EventWrite::Put(queued.seq, queued.stored(queued.attempt))
                    });
                }
                queued.sent = Some(Sent {
                    to: Arc::clone(&target),
                    at: now,
                });
                self.stats
                    .hook(queued.event.hook)
                    .record_delivery(queued.attempt);
                batch.push(queued.event.frame(queued.attempt));
            }
            let due =
                queued.sent.as_ref().map_or(now, |s| s.at) + self.ack_deadline(queued.attempt);
            next_due = Some(next_due.map_or(due, |d| d.min(due)));
            i += 1;
        }
        state.sent_upto = i;
        state.next_due = next_due;
        if !writes.is_empty() {
            writes.extend(state.advance_cursor());
        }
        (Some(target), batch, writes, next_due)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    //! The holds on a shared store record. Each queue that took an event holds it, and so does
    //! its acceptance until the record is written; whoever lets go last — by an ack, a drop on
    //! overflow, or a stop — deletes the record, exactly once.
    //!
    //! The queues run without a store and their delivery tasks are never polled (the runtime
    //! they are spawned on is only entered, never driven), so the writes an ack leaves for the
    //! delivery task stay in the queue's state, where these tests read them.

    use roomhooks::v1::{Room, post_event};

    use super::*;
    use crate::hook::Hook;

    /// A runtime to spawn the queues' delivery tasks on, never driven: they never run.
    fn idle_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    }

    fn config(max_queued: usize) -> PostConfig {
        PostConfig {
            max_queued,
            max_bytes: 1 << 20,
            window: 16,
            ack_timeout: Duration::from_secs(30),
            max_attempts: 10,
            dedupe_window: Duration::from_secs(60),
        }
    }

    /// A queue for `app` holding at most `max_queued` events, with no store.
    fn queue(app: &str, max_queued: usize, tasks: &Tasks) -> Arc<PostQueue> {
        queue_with(app, config(max_queued), tasks)
    }

    /// A queue for `app` with `config`, with no store.
    fn queue_with(app: &str, config: PostConfig, tasks: &Tasks) -> Arc<PostQueue> {
        let queue = PostQueue::new(
            AppId::parse(app).expect("a valid app id"),
            config,
            None,
            Arc::new(Sequence::new(1)),
            &mut Recovery::default(),
            Arc::default(),
            tasks,
        );
        queue.start(tasks);
        queue
    }

    fn event(id: &str) -> Arc<PostEventData> {
        Arc::new(PostEventData::new(
            EventId::from_ack(id),
            Hook::PostRoomCreate,
            post_event::Payload::Room(Room {
                id: format!("room-{id}"),
                ..Room::default()
            }),
        ))
    }

    /// Offers `event`, numbered `seq`, to each of `queues`; returns each admission's writes.
    fn offer(
        queues: &[&Arc<PostQueue>],
        event: &Arc<PostEventData>,
        seq: u64,
    ) -> Vec<Vec<EventWrite>> {
        queues
            .iter()
            .map(|queue| {
                let admitted = queue.admit_many([Offer {
                    event,
                    seq,
                    accepted_unix_ms: 0,
                    wait: false,
                }]);
                assert_eq!(admitted.queued, [true], "a new event is queued");
                admitted.writes
            })
            .collect()
    }

    /// Accepts `event` into every queue as `accept` does: held for the acceptance while it is
    /// offered, then let go once its record would be written. True if the acceptance let go
    /// last (and so deletes the record itself).
    fn accept(queues: &[&Arc<PostQueue>], event: &Arc<PostEventData>, seq: u64) -> bool {
        event.hold();
        offer(queues, event, seq);
        event.release()
    }

    fn ack(queue: &PostQueue, id: &str) {
        let instance = InstanceId::parse("instance-1").expect("a valid instance id");
        assert!(
            queue.ack(&EventId::from_ack(id), &instance),
            "{id} awaits an ack"
        );
    }

    /// The shared records `writes` delete.
    fn deleted(writes: &[EventWrite]) -> Vec<u64> {
        writes
            .iter()
            .filter_map(|write| match write {
                EventWrite::DeletePost(seq) => Some(*seq),
                _ => None,
            })
            .collect()
    }

    /// The shared records the queue's next store write deletes (taken, as its delivery task
    /// takes them).
    fn deletes_left_by_acks(queue: &PostQueue) -> Vec<u64> {
        deleted(&std::mem::take(&mut queue.lock().unwritten))
    }

    #[test]
    fn a_record_held_by_three_queues_is_deleted_by_the_last_to_acknowledge_it_and_only_by_it() {
        let runtime = idle_runtime();
        let _entered = runtime.enter();
        let tasks = Tasks::new();
        let (a, b, c) = (
            queue("a", 100, &tasks),
            queue("b", 100, &tasks),
            queue("c", 100, &tasks),
        );
        let e1 = event("e1");
        assert!(!accept(&[&a, &b, &c], &e1, 1), "the queues still hold it");

        ack(&a, "e1");
        assert_eq!(
            deletes_left_by_acks(&a),
            [] as [u64; 0],
            "b and c still hold it"
        );
        ack(&c, "e1");
        assert_eq!(deletes_left_by_acks(&c), [] as [u64; 0], "b still holds it");
        ack(&b, "e1");
        assert_eq!(deletes_left_by_acks(&b), [1], "b let go last");
    }

    #[test]
    fn no_queue_deletes_a_record_its_acceptance_is_still_writing() {
        let runtime = idle_runtime();
        let _entered = runtime.enter();
        let tasks = Tasks::new();
        let (a, b) = (queue("a", 100, &tasks), queue("b", 100, &tasks));
        let e1 = event("e1");
        e1.hold();
        offer(&[&a, &b], &e1, 1);

        // Both apps acknowledge before the acceptance has sent the record to the store.
        ack(&a, "e1");
        ack(&b, "e1");

        assert_eq!(deletes_left_by_acks(&a), [] as [u64; 0]);
        assert_eq!(deletes_left_by_acks(&b), [] as [u64; 0]);
        assert!(
            e1.release(),
            "the acceptance lets go last and deletes the record"
        );
    }

    #[test]
    fn a_queue_that_drops_the_event_on_overflow_deletes_the_record_when_it_held_it_last() {
        let runtime = idle_runtime();
        let _entered = runtime.enter();
        let tasks = Tasks::new();
        let (small, roomy) = (queue("small", 1, &tasks), queue("roomy", 100, &tasks));
        let e1 = event("e1");
        assert!(!accept(&[&small, &roomy], &e1, 1));
        ack(&roomy, "e1");
        assert_eq!(
            deletes_left_by_acks(&roomy),
            [] as [u64; 0],
            "small still holds it"
        );

        // e2 pushes e1 out of the small queue, the last one holding it.
        let writes = offer(&[&small], &event("e2"), 2);

        assert_eq!(deleted(&writes[0]), [1]);
        assert_eq!(small.dropped(), 1);
    }

    #[test]
    fn a_stopped_queue_hands_back_only_the_records_it_held_last() {
        let runtime = idle_runtime();
        let _entered = runtime.enter();
        let tasks = Tasks::new();
        let (kept, removed) = (queue("kept", 100, &tasks), queue("removed", 100, &tasks));
        let (e1, e2) = (event("e1"), event("e2"));
        assert!(!accept(&[&kept, &removed], &e1, 1));
        assert!(!accept(&[&kept, &removed], &e2, 2));
        ack(&kept, "e1");

        let (dropped, released) = removed.stop();

        assert_eq!(dropped, 2);
        assert_eq!(released, [1], "e2 is still held by the queue kept");
        ack(&kept, "e2");
        assert_eq!(deletes_left_by_acks(&kept), [2]);
    }

    #[test]
    fn a_delete_an_ack_left_unwritten_when_its_queue_stops_is_handed_back() {
        let runtime = idle_runtime();
        let _entered = runtime.enter();
        let tasks = Tasks::new();
        let (first, last) = (queue("first", 100, &tasks), queue("last", 100, &tasks));
        let e1 = event("e1");
        assert!(!accept(&[&first, &last], &e1, 1));
        ack(&first, "e1");
        // The last holder's ack decides the delete; its delivery task has not written it yet.
        ack(&last, "e1");

        let (dropped, released) = last.stop();

        assert_eq!(dropped, 0);
        assert_eq!(
            released,
            [1],
            "the stopped queue's caller deletes it with the app"
        );
    }

    #[test]
    fn apps_acknowledging_the_same_events_at_once_on_many_threads_delete_each_record_once() {
        const APPS: usize = 8;
        const EVENTS: u64 = 2_000;
        let runtime = idle_runtime();
        let _entered = runtime.enter();
        let tasks = Tasks::new();
        // Every event in the ack window, so each app can ack them in any order.
        let config = PostConfig {
            window: EVENTS as usize,
            ..config(EVENTS as usize)
        };
        let queues: Vec<_> = (0..APPS)
            .map(|i| queue_with(&format!("app{i}"), config, &tasks))
            .collect();
        let holders: Vec<&Arc<PostQueue>> = queues.iter().collect();
        for seq in 1..=EVENTS {
            assert!(!accept(&holders, &event(&format!("e{seq}")), seq));
        }

        // Each app acks every event on its own thread, all at once, and keeps the deletes its
        // acks decided.
        let deletes: Vec<u64> = std::thread::scope(|scope| {
            let threads: Vec<_> = queues
                .iter()
                .enumerate()
                .map(|(i, queue)| {
                    scope.spawn(move || {
                        let mut mine = Vec::new();
                        // Apps walk the events from different starting points.
                        for k in 0..EVENTS {
                            let seq = (k + i as u64 * EVENTS / APPS as u64) % EVENTS + 1;
                            ack(queue, &format!("e{seq}"));
                            mine.extend(deletes_left_by_acks(queue));
                        }
                        mine
                    })
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|t| t.join().expect("an acking thread"))
                .collect()
        });

        let mut sorted = deletes.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (1..=EVENTS).collect::<Vec<_>>(),
            "each record is deleted exactly once"
        );
    }
}
