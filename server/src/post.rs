//! Post events for one app: a bounded queue, durable when a store is configured, delivered at
//! least once and in accepted order to one instance at a time, acknowledged by event id, and
//! redelivered with `attempt + 1` (immediately when the instance vanished, after an ack timeout
//! that doubles per attempt otherwise) until the attempt cap moves the event to the dead letters.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use prost::Message;
use roomhooks::v1::{PostEvent, post_event};
use tokio::{
    sync::{Notify, oneshot},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{
    frame::{self, Frame},
    hook::Hook,
    ids::{AppId, EventId, InstanceId},
    instance::Instance,
    store::{EventWrite, Store, StoreError, StoredEvent},
};

/// Limits of post-event delivery.
#[derive(Clone, Copy, Debug)]
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

/// One accepted post event, shared by every app it is queued for.
#[derive(Debug)]
pub struct PostEventData {
    /// Its id.
    pub id: EventId,
    /// Its hook.
    pub hook: Hook,
    /// The `PostEvent` without its attempt (id, hook, payload), encoded once when accepted: every
    /// app's delivery and store write reuses these bytes.
    encoded: Bytes,
}

impl PostEventData {
    /// An accepted event; its payload is encoded here, once for every app and delivery.
    pub fn new(id: EventId, hook: Hook, payload: post_event::Payload) -> Self {
        let encoded = PostEvent {
            event_id: id.as_str().to_owned(),
            hook: hook.to_wire() as i32,
            attempt: 0,
            payload: Some(payload),
        }
        .encode_to_vec()
        .into();
        Self { id, hook, encoded }
    }

    /// The frame that makes delivery `attempt`.
    fn frame(&self, attempt: u32) -> Frame {
        Frame::Post {
            attempt,
            event: self.encoded.clone(),
        }
    }

    /// The encoded `StoredEvent` of this event at `attempt`.
    fn stored(&self, attempt: u32, accepted_unix_ms: i64, dead: Option<(&str, i64)>) -> Vec<u8> {
        let (reason, dead_unix_ms) = dead.unwrap_or(("", 0));
        let rest = StoredEvent {
            event: None,
            accepted_unix_ms,
            reason: reason.to_owned(),
            dead_unix_ms,
        };
        let head = PostEvent {
            attempt,
            ..PostEvent::default()
        };
        let mut bytes = Vec::with_capacity(self.encoded.len() + 16 + rest.encoded_len());
        // A Vec grows as needed, so neither write can fail.
        let _ = frame::write_merged(STORED_EVENT_KEY, &head, &self.encoded, &mut bytes);
        let _ = rest.encode(&mut bytes);
        bytes
    }

    fn from_stored(stored: &StoredEvent) -> Option<(Self, u32)> {
        let event = stored.event.as_ref()?;
        let data = PostEventData::new(
            EventId::from_ack(&event.event_id),
            Hook::from_wire(event.hook)?,
            event.payload.clone()?,
        );
        Some((data, event.attempt))
    }
}

/// The key of `StoredEvent.event` (field 1, length-delimited).
const STORED_EVENT_KEY: u8 = (1 << 3) | 2;

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

    fn finish(self, how: Delivery) {
        for waiter in self.waiters {
            let _ = waiter.send(how.clone());
        }
    }
}

/// Store writes decided under the lock and sent after it is released.
enum Write {
    Put(u64, Vec<u8>),
    Update(u64, Vec<u8>),
    Delete(u64),
    Dead(u64, Vec<u8>),
    DeleteDead(u64),
}

#[derive(Default)]
struct QueueState {
    events: VecDeque<Queued>,
    ids: HashSet<EventId, foldhash::fast::RandomState>,
    bytes: usize,
    recent: HashMap<EventId, Instant, foldhash::fast::RandomState>,
    recent_order: VecDeque<(EventId, Instant)>,
    instances: Vec<Arc<Instance>>,
    target: Option<Arc<Instance>>,
    next_seq: u64,
    dropped: u64,
    dead: VecDeque<DeadLetter>,
}

/// Dead letters kept in memory per app (the store keeps them all).
const MAX_DEAD_IN_MEMORY: usize = 10_000;
/// Acknowledged ids remembered per app for de-duplication, at most.
const MAX_RECENT: usize = 100_000;

fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The post-event queue of one app, with the task that delivers it.
pub struct PostQueue {
    app_id: AppId,
    config: PostConfig,
    store: Option<Store>,
    state: Mutex<QueueState>,
    wake: Notify,
    stop: CancellationToken,
}

impl PostQueue {
    /// A queue (holding what the store recovered for this app) whose delivery task runs until
    /// `parent` is cancelled or [`PostQueue::stop`].
    pub fn spawn(
        app_id: AppId,
        config: PostConfig,
        store: Option<Store>,
        recovered: Vec<(u64, StoredEvent)>,
        recovered_dead: Vec<(u64, StoredEvent)>,
        parent: &CancellationToken,
    ) -> Arc<Self> {
        let mut state = QueueState {
            next_seq: 1,
            ..QueueState::default()
        };
        for (seq, stored) in recovered {
            let Some((event, attempt)) = PostEventData::from_stored(&stored) else {
                continue;
            };
            let size = stored.encoded_len();
            state.ids.insert(event.id.clone());
            state.bytes += size;
            state.next_seq = state.next_seq.max(seq + 1);
            state.events.push_back(Queued {
                seq,
                event: Arc::new(event),
                size,
                accepted_at: Instant::now(),
                accepted_unix_ms: stored.accepted_unix_ms,
                attempt,
                sent: None,
                waiters: Vec::new(),
            });
        }
        for (seq, stored) in recovered_dead {
            if let Some((event, attempts)) = PostEventData::from_stored(&stored) {
                state.next_seq = state.next_seq.max(seq + 1);
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
        if !state.events.is_empty() {
            tracing::info!(%app_id, pending = state.events.len(), "recovered post events from the store");
        }
        let queue = Arc::new(Self {
            app_id,
            config,
            store,
            state: Mutex::new(state),
            wake: Notify::new(),
            stop: parent.child_token(),
        });
        tokio::spawn(Arc::clone(&queue).deliver());
        queue
    }

    /// Accepts events in the order given, under one lock and with one store write: each is
    /// queued (and written to the store) unless its id is already queued or was acknowledged
    /// within the de-duplication window. Returns each event's waiter (when asked to wait) and
    /// the commit receiver of the group (when it holds a new event).
    pub async fn enqueue_many<'a>(
        &self,
        events: impl IntoIterator<Item = (&'a Arc<PostEventData>, bool)>,
    ) -> (
        Vec<Option<DeliveryWaiter>>,
        Option<oneshot::Receiver<Result<(), StoreError>>>,
    ) {
        let mut writes = Vec::new();
        let waiters = {
            let mut state = self.lock();
            events
                .into_iter()
                .map(|(event, wait)| self.admit(&mut state, event, wait, &mut writes))
                .collect()
        };
        let persisted = self.write(writes).await;
        self.wake.notify_one();
        (waiters, persisted)
    }

    /// Queues one event under the lock (unless it is a duplicate), dropping the oldest events
    /// beyond the limits, and notes the store writes to make.
    fn admit(
        &self,
        state: &mut QueueState,
        event: &Arc<PostEventData>,
        wait: bool,
        writes: &mut Vec<Write>,
    ) -> Option<DeliveryWaiter> {
        let (tx, waiter) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        if state.ids.contains(&event.id) {
            if let Some(tx) = tx
                && let Some(q) = state.events.iter_mut().find(|q| q.event.id == event.id)
            {
                q.waiters.push(tx);
            }
            return waiter;
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
            return waiter;
        }
        let now = SystemTime::now();
        let seq = state.next_seq;
        state.next_seq += 1;
        let mut queued = Queued {
            seq,
            event: Arc::clone(event),
            size: 0,
            accepted_at: Instant::now(),
            accepted_unix_ms: unix_ms(now),
            attempt: 0,
            sent: None,
            waiters: tx.into_iter().collect(),
        };
        let stored = queued.stored(0);
        queued.size = stored.len();
        while !state.events.is_empty()
            && (state.events.len() >= self.config.max_queued
                || state.bytes + queued.size > self.config.max_bytes)
        {
            if let Some(oldest) = state.events.pop_front() {
                state.ids.remove(&oldest.event.id);
                state.bytes -= oldest.size;
                state.dropped += 1;
                tracing::warn!(
                    app_id = %self.app_id,
                    event_id = %oldest.event.id,
                    dropped_total = state.dropped,
                    "post-event queue full (--post-queue-max-events / --post-queue-max-bytes): \
                     dropped the oldest unacknowledged event; connect or enable this app, or \
                     raise the limits"
                );
                writes.push(Write::Delete(oldest.seq));
                oldest.finish(Delivery::Dropped);
            }
        }
        state.ids.insert(event.id.clone());
        state.bytes += queued.size;
        writes.push(Write::Put(seq, stored));
        state.events.push_back(queued);
        waiter
    }

    /// Records an app's acknowledgement. Returns false for an event id not awaiting one.
    pub async fn ack(&self, event_id: &EventId, from: &InstanceId) -> bool {
        let done = {
            let mut state = self.lock();
            let window = self.config.window;
            let Some(pos) = state
                .events
                .iter()
                .take(window)
                .position(|q| &q.event.id == event_id)
            else {
                return false;
            };
            let Some(done) = state.events.remove(pos) else {
                return false;
            };
            state.ids.remove(event_id);
            state.bytes -= done.size;
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
            done
        };
        let (seq, attempt) = (done.seq, done.attempt);
        done.finish(Delivery::Acked {
            instance: Some(from.clone()),
            attempt,
        });
        self.write(vec![Write::Delete(seq)]).await;
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
    pub async fn retry_dead(&self, ids: &[EventId]) -> usize {
        let mut writes = Vec::new();
        {
            let mut state = self.lock();
            let state = &mut *state;
            let (retry, keep): (Vec<_>, Vec<_>) = state
                .dead
                .drain(..)
                .partition(|d| ids.is_empty() || ids.contains(&d.event.id));
            state.dead = keep.into();
            for letter in retry {
                let seq = state.next_seq;
                state.next_seq += 1;
                let mut queued = Queued {
                    seq,
                    event: letter.event,
                    size: 0,
                    accepted_at: Instant::now(),
                    accepted_unix_ms: unix_ms(SystemTime::now()),
                    attempt: 0,
                    sent: None,
                    waiters: Vec::new(),
                };
                let stored = queued.stored(0);
                queued.size = stored.len();
                writes.push(Write::DeleteDead(letter.seq));
                writes.push(Write::Put(seq, stored));
                state.ids.insert(queued.event.id.clone());
                state.bytes += queued.size;
                state.events.push_back(queued);
            }
        }
        let retried = writes.len() / 2;
        if let Some(persisted) = self.write(writes).await {
            let _ = persisted.await;
        }
        self.wake.notify_one();
        retried
    }

    /// Stops delivery and drops what is queued; returns how many events were dropped.
    pub fn stop(&self) -> usize {
        self.stop.cancel();
        let mut state = self.lock();
        state.ids.clear();
        state.bytes = 0;
        let dropped = state.events.len();
        state.events.clear();
        dropped
    }

    /// Sends store writes as one group; returns its commit receiver when it holds a new event
    /// (the caller waits for it before answering the backend).
    async fn write(&self, writes: Vec<Write>) -> Option<oneshot::Receiver<Result<(), StoreError>>> {
        let store = self.store.as_ref()?;
        if writes.is_empty() {
            return None;
        }
        let mut has_new = false;
        let mut ops = Vec::with_capacity(writes.len());
        for write in writes {
            match write {
                Write::Put(seq, event) => {
                    has_new = true;
                    ops.push(EventWrite::Put(seq, event));
                }
                Write::Update(seq, event) => ops.push(EventWrite::Put(seq, event)),
                Write::Delete(seq) => ops.push(EventWrite::Delete(seq)),
                Write::Dead(seq, event) => {
                    ops.push(EventWrite::PutDead(seq, event));
                    ops.push(EventWrite::Delete(seq));
                }
                Write::DeleteDead(seq) => ops.push(EventWrite::DeleteDead(seq)),
            }
        }
        store.write_events(&self.app_id, ops, has_new).await
    }

    async fn deliver(self: Arc<Self>) {
        loop {
            let (target, batch, writes, next_due) = self.plan();
            self.write(writes).await;
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
                _ = self.stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = due => {}
            }
        }
    }

    /// How long to wait for the ack of attempt `attempt` before sending again.
    fn ack_deadline(&self, attempt: u32) -> Duration {
        self.config.ack_timeout * (1u32 << attempt.saturating_sub(1).min(4))
    }

    /// Picks the instance to deliver to and the events to send it now, in accepted order, and
    /// moves events that reached the attempt cap to the dead letters.
    #[allow(clippy::type_complexity)]
    fn plan(
        &self,
    ) -> (
        Option<Arc<Instance>>,
        Vec<Frame>,
        Vec<Write>,
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
        let Some(target) = state.target.clone() else {
            return (None, Vec::new(), Vec::new(), None);
        };
        let mut batch = Vec::new();
        let mut writes = Vec::new();
        let mut next_due: Option<Instant> = None;
        let mut i = 0;
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
                let Some(dead) = state.events.remove(i) else {
                    break;
                };
                state.ids.remove(&dead.event.id);
                state.bytes -= dead.size;
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
                writes.push(Write::Dead(dead.seq, stored));
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
                    writes.push(Write::Update(queued.seq, queued.stored(queued.attempt)));
                }
                queued.sent = Some(Sent {
                    to: Arc::clone(&target),
                    at: now,
                });
                batch.push(queued.event.frame(queued.attempt));
            }
            let due =
                queued.sent.as_ref().map_or(now, |s| s.at) + self.ack_deadline(queued.attempt);
            next_due = Some(next_due.map_or(due, |d| d.min(due)));
            i += 1;
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
    use super::*;
    use roomhooks::v1::{Room, RuntimeMessage, runtime_message::Msg};

    fn event() -> (PostEventData, PostEvent) {
        let room = Room {
            id: "r1".into(),
            ..Room::default()
        };
        let data = PostEventData::new(
            EventId::from_ack("evt-1"),
            Hook::PostRoomCreate,
            post_event::Payload::Room(room.clone()),
        );
        let whole = PostEvent {
            event_id: "evt-1".into(),
            hook: Hook::PostRoomCreate.to_wire() as i32,
            attempt: 3,
            payload: Some(post_event::Payload::Room(room)),
        };
        (data, whole)
    }

    #[test]
    fn a_delivery_frame_decodes_as_the_post_event_with_its_attempt() {
        let (data, whole) = event();
        let mut buf = Vec::new();
        data.frame(3).encode(&mut buf).expect("a Vec grows");
        let decoded = RuntimeMessage::decode(buf.as_slice()).expect("a valid RuntimeMessage");
        assert_eq!(decoded.msg, Some(Msg::PostEvent(whole)));
    }

    #[test]
    fn the_stored_bytes_decode_as_the_stored_event() {
        let (data, whole) = event();
        let bytes = data.stored(3, 1234, Some(("gave up", 5678)));
        let decoded = StoredEvent::decode(bytes.as_slice()).expect("a valid StoredEvent");
        assert_eq!(
            decoded,
            StoredEvent {
                event: Some(whole),
                accepted_unix_ms: 1234,
                reason: "gave up".into(),
                dead_unix_ms: 5678,
            }
        );
    }
}
