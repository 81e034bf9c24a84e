//! Post events for one app: a bounded queue, durable when a store is configured, delivered at
//! least once and in accepted order to one instance at a time, acknowledged by event id, and
//! redelivered with `attempt + 1` (immediately when the instance vanished, after an ack timeout
//! that doubles per attempt otherwise) until the attempt cap moves the event to the dead letters.
//!
//! An event queued for several apps is stored once (see [`crate::store`]): each queue holds it
//! and the last one to finish with it deletes the record; each queue keeps its cursor current.
//!
//! Owns: accepting post events and answering for them ([`accept`], `outcome`), each app's queue
//! ([`PostQueue`]: admission in `queue`, delivery and acks in `deliver`, `dead_letters`) and
//! what the store recovered for the queues (`recovery`).
//! May use: `apps` (instances, frames, stats, the registry), `store`, `lifecycle::tasks`.

pub mod accept;
mod dead_letters;
mod deliver;
mod event;
mod hold;
mod outcome;
mod queue;
mod recovery;
pub mod sequence;
#[cfg(test)]
mod tests;

pub use deliver::{Delivery, DeliveryWaiter, ack_wait};
pub use event::{PostEventData, unix_ms};
pub use hold::Hold;
pub use queue::{Admitted, Offer, PostQueue};
pub use recovery::Recovery;

use std::time::Duration;

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
