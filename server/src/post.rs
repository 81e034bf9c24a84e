//! Post events: a bounded per-app queue, delivered at least once and in accepted order to one
//! instance of the app at a time, acknowledged by event id, redelivered with `attempt + 1` when the
//! instance vanishes or the ack is overdue.

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use roomhooks::v1::{PostEvent, RuntimeMessage, post_event, runtime_message::Msg};
use tokio::{
    sync::{Notify, oneshot},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{
    hook::Hook,
    ids::{AppId, EventId, InstanceId},
    instance::Instance,
};

/// Limits of post-event delivery.
#[derive(Clone, Copy, Debug)]
pub struct PostConfig {
    /// Events kept per app; beyond it the oldest is dropped (logged, counted).
    pub max_queued: usize,
    /// Events sent to an app and not acknowledged yet, at most.
    pub window: usize,
    /// How long an app has to acknowledge before the event is sent again.
    pub ack_timeout: Duration,
}

/// One accepted post event, shared by every app it is queued for.
#[derive(Debug)]
pub struct PostEventData {
    /// Its id.
    pub id: EventId,
    /// Its hook.
    pub hook: Hook,
    /// Its payload.
    pub payload: post_event::Payload,
}

/// How a waited-for event ended for one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The app acknowledged it.
    Acked {
        /// The instance that acknowledged.
        instance: InstanceId,
        /// The delivery attempt that was acknowledged.
        attempt: u32,
    },
    /// The queue overflowed and the event was dropped before it was acknowledged.
    Dropped,
}

/// A waiter's receiving end; an error means the app was removed.
pub type DeliveryWaiter = oneshot::Receiver<Delivery>;

struct Sent {
    to: Arc<Instance>,
    at: Instant,
}

struct Queued {
    event: Arc<PostEventData>,
    accepted_at: Instant,
    attempt: u32,
    sent: Option<Sent>,
    waiters: Vec<oneshot::Sender<Delivery>>,
}

#[derive(Default)]
struct QueueState {
    events: VecDeque<Queued>,
    ids: HashSet<EventId>,
    instances: Vec<Arc<Instance>>,
    target: Option<Arc<Instance>>,
    dropped: u64,
}

/// The post-event queue of one app, with the task that delivers it.
pub struct PostQueue {
    app_id: AppId,
    config: PostConfig,
    state: Mutex<QueueState>,
    wake: Notify,
    stop: CancellationToken,
}

impl PostQueue {
    /// A new queue whose delivery task runs until `parent` is cancelled or [`PostQueue::stop`].
    pub fn spawn(app_id: AppId, config: PostConfig, parent: &CancellationToken) -> Arc<Self> {
        let queue = Arc::new(Self {
            app_id,
            config,
            state: Mutex::new(QueueState::default()),
            wake: Notify::new(),
            stop: parent.child_token(),
        });
        tokio::spawn(Arc::clone(&queue).deliver());
        queue
    }

    /// Accepts an event. With `wait`, the receiver tells when the app acknowledged it.
    /// An event id already queued is not queued again (the backend retried).
    pub fn enqueue(&self, event: &Arc<PostEventData>, wait: bool) -> Option<DeliveryWaiter> {
        let (tx, rx) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let mut state = self.lock();
        if state.ids.contains(&event.id) {
            if let Some(tx) = tx
                && let Some(q) = state.events.iter_mut().find(|q| q.event.id == event.id)
            {
                q.waiters.push(tx);
            }
            return rx;
        }
        if state.events.len() >= self.config.max_queued
            && let Some(oldest) = state.events.pop_front()
        {
            state.ids.remove(&oldest.event.id);
            state.dropped += 1;
            tracing::warn!(
                app_id = %self.app_id,
                event_id = %oldest.event.id,
                dropped_total = state.dropped,
                max_queued = self.config.max_queued,
                "post-event queue full: dropped the oldest unacknowledged event; \
                 connect an instance of this app or raise --post-queue-max-events"
            );
            for waiter in oldest.waiters {
                let _ = waiter.send(Delivery::Dropped);
            }
        }
        state.ids.insert(event.id.clone());
        state.events.push_back(Queued {
            event: Arc::clone(event),
            accepted_at: Instant::now(),
            attempt: 0,
            sent: None,
            waiters: tx.into_iter().collect(),
        });
        drop(state);
        self.wake.notify_one();
        rx
    }

    /// Records an app's acknowledgement. Returns false for an event id not queued here.
    pub fn ack(&self, event_id: &EventId, from: &InstanceId) -> bool {
        let mut state = self.lock();
        // Only the first `window` events were sent, so an ack can only match one of them.
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
        drop(state);
        for waiter in done.waiters {
            let _ = waiter.send(Delivery::Acked {
                instance: from.clone(),
                attempt: done.attempt,
            });
        }
        self.wake.notify_one();
        true
    }

    /// Replaces the app's live instances (on every connect and disconnect).
    pub fn set_instances(&self, instances: Vec<Arc<Instance>>) {
        self.lock().instances = instances;
        self.wake.notify_one();
    }

    /// Events queued and not acknowledged.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// How long the oldest unacknowledged event has waited.
    pub fn oldest_age(&self) -> Duration {
        self.lock()
            .events
            .front()
            .map_or(Duration::ZERO, |q| q.accepted_at.elapsed())
    }

    /// Events dropped because the queue was full, since the app became known.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any instance can receive events now.
    pub fn has_live_instance(&self) -> bool {
        self.lock().instances.iter().any(|i| i.is_live())
    }

    /// Stops delivery and drops what is queued; returns how many events were dropped.
    pub fn stop(&self) -> usize {
        self.stop.cancel();
        let mut state = self.lock();
        state.ids.clear();
        let dropped = state.events.len();
        state.events.clear();
        dropped
    }

    async fn deliver(self: Arc<Self>) {
        loop {
            let (target, batch, next_due) = self.plan();
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

    /// Picks the instance to deliver to and the events to send it now, in accepted order.
    fn plan(&self) -> (Option<Arc<Instance>>, Vec<RuntimeMessage>, Option<Instant>) {
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
            return (None, Vec::new(), None);
        };
        let mut batch = Vec::new();
        let mut next_due: Option<Instant> = None;
        // Only the first `window` events can be in flight, so nothing beyond them is looked at.
        for queued in state.events.iter_mut().take(self.config.window) {
            let resend = match &queued.sent {
                None => true,
                Some(sent) => {
                    !Arc::ptr_eq(&sent.to, &target) || now >= sent.at + self.config.ack_timeout
                }
            };
            if resend {
                queued.attempt += 1;
                if queued.attempt > 1 {
                    tracing::debug!(app_id = %self.app_id, event_id = %queued.event.id,
                        attempt = queued.attempt, "redelivering post event");
                }
                queued.sent = Some(Sent {
                    to: Arc::clone(&target),
                    at: now,
                });
                batch.push(post_message(&queued.event, queued.attempt));
            }
            let due = queued.sent.as_ref().map_or(now, |s| s.at) + self.config.ack_timeout;
            next_due = Some(next_due.map_or(due, |d| d.min(due)));
        }
        (Some(target), batch, next_due)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn post_message(event: &PostEventData, attempt: u32) -> RuntimeMessage {
    RuntimeMessage {
        msg: Some(Msg::PostEvent(PostEvent {
            event_id: event.id.to_string(),
            hook: event.hook.to_wire() as i32,
            attempt,
            payload: Some(event.payload.clone()),
        })),
    }
}
