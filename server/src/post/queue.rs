//! One app's post-event queue: its state, and admission — numbered events queued in order,
//! duplicates turned away, the oldest dropped beyond the limits — and what the queue reports.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::{Notify, oneshot},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{
    PostConfig,
    dead_letters::DeadLetter,
    deliver::{Delivery, DeliveryWaiter, Sent},
    event::PostEventData,
    hold::Hold,
    recovery::Recovery,
    sequence::Sequence,
};
use crate::{
    apps::instance::Instance,
    apps::stats::AppStats,
    ids::{AppId, EventId},
    lifecycle::tasks::Tasks,
    store::{Committed, EventWrite, Store},
};

/// An event in a queue, with its delivery state.
pub(super) struct Queued {
    pub(super) seq: u64,
    pub(super) event: Arc<PostEventData>,
    /// The queue's hold on the shared store record (`posts`); `None` for a record of the app's
    /// own (`events`).
    pub(super) hold: Option<Hold>,
    pub(super) size: usize,
    pub(super) accepted_at: Instant,
    pub(super) accepted_unix_ms: i64,
    pub(super) attempt: u32,
    pub(super) sent: Option<Sent>,
    pub(super) waiters: Vec<oneshot::Sender<Delivery>>,
}

impl Queued {
    /// The encoded `StoredEvent` of this app's own record at `attempt`.
    pub(super) fn stored(&self, attempt: u32) -> Vec<u8> {
        self.event.stored(attempt, self.accepted_unix_ms, None)
    }

    /// The store writes that end this app's hold on the event (acknowledged, dropped or dead).
    pub(super) fn forget(&mut self, writes: &mut Vec<EventWrite>) {
        let Some(hold) = self.hold.take() else {
            writes.push(EventWrite::Delete(self.seq));
            return;
        };
        if self.attempt > 1 {
            writes.push(EventWrite::ForgetAttempt(self.seq));
        }
        writes.extend(hold.release().map(EventWrite::DeletePost));
    }

    /// Tells whoever waits for the event how it ended.
    pub(super) fn finish(self, how: Delivery) {
        for waiter in self.waiters {
            let _ = waiter.send(how.clone());
        }
    }
}

/// A queue's state, under its lock.
#[derive(Default)]
pub(super) struct QueueState {
    pub(super) events: VecDeque<Queued>,
    /// The sequence number of each queued event, by id (acks look events up here).
    pub(super) ids: HashMap<EventId, u64, foldhash::fast::RandomState>,
    pub(super) bytes: usize,
    pub(super) recent: HashMap<EventId, Instant, foldhash::fast::RandomState>,
    pub(super) recent_order: VecDeque<(EventId, Instant)>,
    pub(super) instances: Vec<Arc<Instance>>,
    pub(super) target: Option<Arc<Instance>>,
    /// The highest sequence number ever queued here.
    pub(super) last_seq: u64,
    /// The cursor last written: every event below it is done for this app.
    pub(super) cursor: u64,
    /// How many events at the front have been sent to the current target.
    pub(super) sent_upto: usize,
    /// When the earliest of those is due for redelivery (`None`: none is in flight).
    pub(super) next_due: Option<Instant>,
    /// Store writes decided by acks, sent by the delivery task with its next group.
    pub(super) unwritten: Vec<EventWrite>,
    pub(super) dropped: u64,
    /// When a drop was last logged.
    pub(super) drop_logged_at: Option<Instant>,
    pub(super) dead: VecDeque<DeadLetter>,
}

impl QueueState {
    /// Queues `queued` in sequence order: at the back, as every caller numbers events under
    /// the sequence lock; an older number would go to its place, so the queue stays sorted
    /// (acks find events by binary search).
    pub(super) fn push(&mut self, queued: Queued) {
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
    pub(super) fn remove(&mut self, pos: usize) -> Option<Queued> {
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
    pub(super) fn advance_cursor(&mut self) -> Option<EventWrite> {
        let cursor = self.events.front().map_or(self.last_seq + 1, |q| q.seq);
        (cursor > self.cursor).then(|| {
            self.cursor = cursor;
            EventWrite::Cursor(cursor)
        })
    }
}

/// How often a queue that keeps overflowing says so in the log, at most.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(1);

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
    pub(super) writes: Vec<EventWrite>,
}

/// The post-event queue of one app, with the task that delivers it.
pub struct PostQueue {
    pub(super) app_id: AppId,
    pub(super) config: PostConfig,
    pub(super) store: Store,
    pub(super) sequence: Arc<Sequence>,
    pub(super) state: Mutex<QueueState>,
    pub(super) wake: Notify,
    pub(super) stop: CancellationToken,
    /// The app's statistics: deliveries, redeliveries and acks per hook.
    pub(super) stats: Arc<AppStats>,
}

// === impl PostQueue ===

impl PostQueue {
    /// A queue holding what the store recovered for this app; its delivery task, once
    /// [`PostQueue::start`]ed, runs until `tasks` stop or [`PostQueue::stop`].
    pub fn new(
        app_id: AppId,
        config: PostConfig,
        store: Store,
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
                hold: r.hold,
                accepted_at: Instant::now(),
                accepted_unix_ms: r.accepted_unix_ms,
                attempt: r.attempt,
                sent: None,
                waiters: Vec::new(),
            });
        }
        state.dead.extend(
            recovered_dead
                .into_iter()
                .filter_map(|(seq, stored)| DeadLetter::recovered(seq, stored)),
        );
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
        self.make_room(state, size, writes);
        state.push(Queued {
            seq: offer.seq,
            event: Arc::clone(event),
            hold: Some(Hold::new(event, offer.seq)),
            size,
            accepted_at: Instant::now(),
            accepted_unix_ms: offer.accepted_unix_ms,
            attempt: 0,
            sent: None,
            waiters: tx.into_iter().collect(),
        });
        (waiter, true)
    }

    /// Drops the oldest events until one of `size` bytes fits within the limits (logged at most
    /// once a second, counted always), noting the store writes to make.
    fn make_room(&self, state: &mut QueueState, size: usize, writes: &mut Vec<EventWrite>) {
        while !state.events.is_empty()
            && (state.events.len() >= self.config.max_queued
                || state.bytes + size > self.config.max_bytes)
        {
            let Some(mut oldest) = state.remove(0) else {
                break;
            };
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
                .filter_map(|mut q| q.hold.take()?.release()),
        );
        (dropped, released)
    }

    /// Sends store writes as one group; with `confirm`, returns its commit receiver.
    pub(super) async fn write(&self, writes: Vec<EventWrite>, confirm: bool) -> Option<Committed> {
        if writes.is_empty() {
            return None;
        }
        self.store.write_events(&self.app_id, writes, confirm).await
    }

    /// The queue's state, locked (a poisoned lock is taken over as it is).
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
