//! The one sequence every post-event queue numbers its events from: an event queued for several
//! apps keeps one number in all of their queues (and one record in the store), and every queue
//! holds its events in ascending order, so a cursor per app says what it has finished.

use std::sync::{Mutex, MutexGuard};

/// Hands out sequence numbers; hold [`Sequence::lock`] while queueing what was numbered, so that
/// no queue ever takes a number lower than one it already holds.
#[derive(Debug)]
pub struct Sequence {
    next: Mutex<u64>,
}

/// The sequence, locked: numbers taken through it are queued before anyone else takes one.
pub struct SequenceGuard<'a> {
    next: MutexGuard<'a, u64>,
}

impl Sequence {
    /// A sequence whose first number is `first` (the store's next unused one).
    pub fn new(first: u64) -> Self {
        Self {
            next: Mutex::new(first.max(1)),
        }
    }

    /// Locks the sequence (briefly: only while numbering and queueing in memory).
    pub fn lock(&self) -> SequenceGuard<'_> {
        SequenceGuard {
            next: self
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        }
    }
}

impl SequenceGuard<'_> {
    /// The number the next [`SequenceGuard::take`] returns.
    pub fn peek(&self) -> u64 {
        *self.next
    }

    /// The next number.
    pub fn take(&mut self) -> u64 {
        let seq = *self.next;
        *self.next += 1;
        seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_ascend_from_the_first_unused_one() {
        let sequence = Sequence::new(7);
        let mut guard = sequence.lock();
        assert_eq!((guard.take(), guard.take()), (7, 8));
        assert_eq!(guard.peek(), 9);
        drop(guard);
        assert_eq!(sequence.lock().take(), 9);
    }
}
