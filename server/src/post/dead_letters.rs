//! Dead letters: events that reached the attempt cap, kept (in memory up to a bound, in the
//! store all of them) until an admin queues them again.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::time::Instant;

use super::{
    deliver::Delivery,
    event::{PostEventData, unix_ms},
    queue::{PostQueue, QueueState, Queued},
};
use crate::{
    ids::EventId,
    store::{EventWrite, StoredEvent},
};

/// Dead letters kept in memory per app (the store keeps them all).
const MAX_DEAD_IN_MEMORY: usize = 10_000;

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

impl DeadLetter {
    /// A dead letter read back from the store (`None` if its event does not decode).
    pub(super) fn recovered(seq: u64, stored: StoredEvent) -> Option<Self> {
        let (event, attempts) = PostEventData::from_stored(&stored)?;
        Some(DeadLetter {
            seq,
            event: Arc::new(event),
            attempts,
            reason: stored.reason,
            dead_at: UNIX_EPOCH
                + Duration::from_millis(u64::try_from(stored.dead_unix_ms).unwrap_or(0)),
        })
    }
}

// === impl PostQueue ===

impl PostQueue {
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
                    hold: None,
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

    /// Moves the event at `pos`, which reached the attempt cap, to the dead letters, noting the
    /// store writes to make; false if there is no event there.
    pub(super) fn bury(
        &self,
        state: &mut QueueState,
        pos: usize,
        writes: &mut Vec<EventWrite>,
    ) -> bool {
        let Some(mut dead) = state.remove(pos) else {
            return false;
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
        dead.forget(writes);
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
        true
    }
}
