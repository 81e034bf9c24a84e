//! A queue's state under its lock: the queued events in sequence order with their delivery
//! state, the ids acks look up, the recently acknowledged ids, the cursor and the dead letters.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

use tokio::{sync::oneshot, time::Instant};

use super::super::{
    dead_letters::DeadLetter,
    deliver::{Delivery, Sent},
    event::PostEventData,
    hold::Hold,
};
use crate::{apps::instance::Instance, ids::EventId, store::EventWrite};

/// An event in a queue, with its delivery state.
pub(in crate::post) struct Queued {
    pub(in crate::post) seq: u64,
    pub(in crate::post) event: Arc<PostEventData>,
    /// The queue's hold on the shared store record (`posts`); `None` for a record of the app's
    /// own (`events`).
    pub(in crate::post) hold: Option<Hold>,
    pub(in crate::post) size: usize,
    pub(in crate::post) accepted_at: Instant,
    pub(in crate::post) accepted_unix_ms: i64,
    pub(in crate::post) attempt: u32,
    pub(in crate::post) sent: Option<Sent>,
    pub(in crate::post) waiters: Vec<oneshot::Sender<Delivery>>,
}

impl Queued {
    /// The encoded `StoredEvent` of this app's own record at `attempt`.
    pub(in crate::post) fn stored(&self, attempt: u32) -> Vec<u8> {
        self.event.stored(attempt, self.accepted_unix_ms, None)
    }

    /// The store writes that end this app's hold on the event (acknowledged, dropped or dead).
    pub(in crate::post) fn forget(&mut self, writes: &mut Vec<EventWrite>) {
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
    pub(in crate::post) fn finish(self, how: Delivery) {
        for waiter in self.waiters {
            let _ = waiter.send(how.clone());
        }
    }
}

/// A queue's state, under its lock.
#[derive(Default)]
pub(in crate::post) struct QueueState {
    pub(in crate::post) events: VecDeque<Queued>,
    /// The sequence number of each queued event, by id (acks look events up here).
    pub(in crate::post) ids: HashMap<EventId, u64, foldhash::fast::RandomState>,
    pub(in crate::post) bytes: usize,
    pub(in crate::post) recent: HashMap<EventId, Instant, foldhash::fast::RandomState>,
    pub(in crate::post) recent_order: VecDeque<(EventId, Instant)>,
    pub(in crate::post) instances: Vec<Arc<Instance>>,
    pub(in crate::post) target: Option<Arc<Instance>>,
    /// The highest sequence number ever queued here.
    pub(in crate::post) last_seq: u64,
    /// The cursor last written: every event below it is done for this app.
    pub(in crate::post) cursor: u64,
    /// How many events at the front have been sent to the current target.
    pub(in crate::post) sent_upto: usize,
    /// When the earliest of those is due for redelivery (`None`: none is in flight).
    pub(in crate::post) next_due: Option<Instant>,
    /// Store writes decided by acks, sent by the delivery task with its next group.
    pub(in crate::post) unwritten: Vec<EventWrite>,
    pub(in crate::post) dropped: u64,
    /// When a drop was last logged.
    pub(in crate::post) drop_logged_at: Option<Instant>,
    pub(in crate::post) dead: VecDeque<DeadLetter>,
}

impl QueueState {
    /// Queues `queued` in sequence order: at the back, as every caller numbers events under
    /// the sequence lock; an older number would go to its place, so the queue stays sorted
    /// (acks find events by binary search).
    pub(in crate::post) fn push(&mut self, queued: Queued) {
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
    pub(in crate::post) fn remove(&mut self, pos: usize) -> Option<Queued> {
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
    pub(in crate::post) fn advance_cursor(&mut self) -> Option<EventWrite> {
        let cursor = self.events.front().map_or(self.last_seq + 1, |q| q.seq);
        (cursor > self.cursor).then(|| {
            self.cursor = cursor;
            EventWrite::Cursor(cursor)
        })
    }
}
