//! Delivery of one app's queue: the task that sends events to one instance at a time within
//! the window, the acks that end them, and the plan of what to send (or send again) next.

use std::{sync::Arc, time::Duration};

use tokio::{sync::oneshot, time::Instant};

use super::queue::{PostQueue, QueueState, Queued};
use crate::{
    apps::frame::Frame,
    apps::instance::Instance,
    ids::{EventId, InstanceId},
    store::EventWrite,
};

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

/// Where and when an event was last sent.
pub(super) struct Sent {
    pub(super) to: Arc<Instance>,
    pub(super) at: Instant,
}

/// Acknowledged ids remembered per app for de-duplication, at most.
const MAX_RECENT: usize = 100_000;

/// What the delivery task does next: the frames to send to the target, the store writes to
/// make first, and when to look again.
struct Plan {
    target: Option<Arc<Instance>>,
    batch: Vec<Frame>,
    writes: Vec<EventWrite>,
    next_due: Option<Instant>,
}

// === impl PostQueue ===

impl PostQueue {
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
            let Some(mut done) = state.remove(pos) else {
                return false;
            };
            self.remember_acked(&mut state, event_id);
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

    /// Remembers an acknowledged id for the de-duplication window, forgetting the ids past it
    /// (or beyond [`MAX_RECENT`]).
    fn remember_acked(&self, state: &mut QueueState, event_id: &EventId) {
        let now = Instant::now();
        state.recent.insert(event_id.clone(), now);
        state.recent_order.push_back((event_id.clone(), now));
        while let Some((old, at)) = state.recent_order.front().cloned() {
            if state.recent_order.len() <= MAX_RECENT && at.elapsed() < self.config.dedupe_window {
                break;
            }
            state.recent_order.pop_front();
            if state.recent.get(&old) == Some(&at) {
                state.recent.remove(&old);
            }
        }
    }

    /// Replaces the instances events may go to (on connect, disconnect, enable, disable).
    pub fn set_instances(&self, instances: Vec<Arc<Instance>>) {
        self.lock().instances = instances;
        self.wake.notify_one();
    }

    /// Whether any instance can receive events now.
    pub fn has_live_instance(&self) -> bool {
        self.lock().instances.iter().any(|i| i.is_live())
    }

    /// The delivery task: plans, writes, sends, then sleeps until woken, the next event is due,
    /// or the queue stops (writing what acks left unwritten).
    pub(super) async fn deliver(self: Arc<Self>) {
        loop {
            let Plan {
                target,
                batch,
                writes,
                next_due,
            } = self.plan();
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
                () = self.stop.cancelled() => {
                    let unwritten = std::mem::take(&mut self.lock().unwritten);
                    self.write(unwritten, false).await;
                    return;
                }
                () = self.wake.notified() => {}
                () = due => {}
            }
        }
    }

    /// How long to wait for the ack of attempt `attempt` before sending again.
    fn ack_deadline(&self, attempt: u32) -> Duration {
        ack_wait(self.config.ack_timeout, attempt)
    }

    /// Picks the instance to deliver to and the events to send it now, in accepted order, and
    /// moves events that reached the attempt cap to the dead letters.
    fn plan(&self) -> Plan {
        let mut state = self.lock();
        let state = &mut *state;
        let now = Instant::now();
        let keep = retarget(state);
        let mut writes = std::mem::take(&mut state.unwritten);
        let Some(target) = state.target.clone() else {
            state.sent_upto = 0;
            return Plan {
                target: None,
                batch: Vec::new(),
                writes,
                next_due: None,
            };
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
                if !self.bury(state, i, &mut writes) {
                    break;
                }
                continue;
            }
            if resend {
                batch.push(self.send_again(queued, &target, now, &mut writes));
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
        Plan {
            target: Some(target),
            batch,
            writes,
            next_due,
        }
    }

    /// Marks `queued` sent to `target` now as its next attempt (noting the store write of a
    /// redelivery) and returns the frame that delivers it.
    fn send_again(
        &self,
        queued: &mut Queued,
        target: &Arc<Instance>,
        now: Instant,
        writes: &mut Vec<EventWrite>,
    ) -> Frame {
        queued.attempt += 1;
        if queued.attempt > 1 {
            tracing::debug!(app_id = %self.app_id, event_id = %queued.event.id,
                attempt = queued.attempt, "redelivering post event");
            writes.push(if queued.hold.is_some() {
                EventWrite::Attempt(queued.seq, queued.attempt)
            } else {
                EventWrite::Put(queued.seq, queued.stored(queued.attempt))
            });
        }
        queued.sent = Some(Sent {
            to: Arc::clone(target),
            at: now,
        });
        self.stats
            .hook(queued.event.hook)
            .record_delivery(queued.attempt);
        queued.event.frame(queued.attempt)
    }
}

/// Keeps the target while it is live and still one of the app's instances, or else picks the
/// live instance with the fewest calls in flight; true when the target was kept.
fn retarget(state: &mut QueueState) -> bool {
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
    keep
}
