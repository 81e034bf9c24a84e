//! A hold on an event's shared store record. Every queue that took the event holds it, and so
//! does the acceptance until the record is written; letting go of the last hold means no one
//! needs the record any more, and whoever let go deletes it with their next store write.

use std::sync::{Arc, atomic::Ordering};

use super::PostEventData;

/// One holder's claim on the shared store record `seq` of an event. [`Hold::release`] lets go
/// and says whether this was the last hold, so the caller adds the record's deletion to the
/// writes it batches. A hold dropped unreleased (a cancelled acceptance, a queue dropped
/// without [`stop`](super::PostQueue::stop)) lets go all the same — each hold exactly once — but
/// writes nothing: a last one leaves the record to the store's recovery at the next start,
/// which deletes it once every app's cursor is past it.
#[derive(Debug)]
#[must_use = "dropping a hold lets go of it without deleting the record it may have held last"]
pub struct Hold {
    /// The event held; `None` once released.
    event: Option<Arc<PostEventData>>,
    /// The shared record's sequence number.
    seq: u64,
}

impl Hold {
    /// Takes a hold on `event`'s shared record `seq`.
    pub fn new(event: &Arc<PostEventData>, seq: u64) -> Self {
        event.holders().fetch_add(1, Ordering::Relaxed);
        Self {
            event: Some(Arc::clone(event)),
            seq,
        }
    }

    /// Lets go; the sequence number of the record to delete when this was the last hold.
    pub fn release(mut self) -> Option<u64> {
        let event = self.event.take()?;
        let last = event.holders().fetch_sub(1, Ordering::AcqRel) == 1;
        last.then_some(self.seq)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(event) = self.event.take()
            && event.holders().fetch_sub(1, Ordering::AcqRel) == 1
        {
            // At shutdown every queued event is dropped this way: not worth more than a trace.
            tracing::trace!(event_id = %event.id, seq = self.seq,
                "the last hold on a shared post event was dropped unreleased; the store's \
                 recovery deletes its record once every app's cursor is past it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::event::tests::event;

    #[test]
    fn only_the_last_of_three_holds_to_let_go_deletes_the_record() {
        let event = Arc::new(event().0);
        let holds = [
            Hold::new(&event, 7),
            Hold::new(&event, 7),
            Hold::new(&event, 7),
        ];
        let released: Vec<_> = holds.into_iter().map(Hold::release).collect();
        assert_eq!(released, [None, None, Some(7)]);
    }

    #[test]
    fn a_hold_dropped_unreleased_lets_go_so_the_next_release_is_the_last() {
        let event = Arc::new(event().0);
        let (dropped, kept) = (Hold::new(&event, 3), Hold::new(&event, 3));
        drop(dropped);
        assert_eq!(kept.release(), Some(3), "the dropped hold let go");
    }
}
