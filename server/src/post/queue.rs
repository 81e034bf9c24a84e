//! One app's post-event queue: its state, and admission — numbered events queued in order,
//! duplicates turned away, the oldest dropped beyond the limits — and what the queue reports.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::{Notify, oneshot},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

mod state;

pub(super) use state::{QueueState, Queued};

use super::{
    PostConfig,
    dead_letters::DeadLetter,
    deliver::{Delivery, DeliveryWaiter},
    event::PostEventData,
    hold::Hold,
    recovery::Recovery,
    sequence::Sequence,
};
use crate::{
    apps::stats::AppStats,
    ids::AppId,
    lifecycle::tasks::Tasks,
    store::{Committed, EventWrite, Store},
};

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
