//! What a handler knows about the call it is answering.

use roomhooks::v1::HookInterface;
use tokio::time::Instant;

/// The context of a Pre hook call.
#[derive(Debug, Clone)]
pub struct HookContext {
    /// The sidecar's id of this call.
    pub call_id: u64,
    /// The hook being called.
    pub hook: HookInterface,
    /// The backend's request id.
    pub request_id: String,
    /// True when the action will not happen: do not cause side effects.
    pub dry_run: bool,
    /// When the sidecar stops waiting for the answer.
    pub deadline: Instant,
    /// The backend's W3C trace context, or empty.
    pub traceparent: String,
    /// This app's id.
    pub app_id: String,
    /// This instance's id.
    pub instance_id: String,
}

/// The context of a post event.
#[derive(Debug, Clone)]
pub struct PostContext {
    /// The event's id: events are delivered at least once, so use it to skip duplicates.
    pub event_id: String,
    /// The hook being notified.
    pub hook: HookInterface,
    /// 1 for the first delivery, more on redelivery.
    pub attempt: u32,
    /// This app's id.
    pub app_id: String,
    /// This instance's id.
    pub instance_id: String,
}
