//! What the backend hears for each app a post event went to: delivered, timed out, dead, or
//! unavailable — from the app's own queue, or in cluster mode from its JetStream consumer.

use std::sync::Arc;

use roomhooks::v1::{AppOutcome, OutcomeStatus};
use tokio::time::Instant;

use super::{Delivery, DeliveryWaiter};
use crate::{
    apps::registry::AppView,
    cluster::journal::{Journal, Notices, Stored},
    edge::deadline::CallContext,
    hook::Hook,
};

/// Cluster mode: waits until `app`'s consumer acknowledged the stored event, until the app's
/// timeout capped by the deadline.
pub(super) async fn cluster_outcome(
    journal: &Journal,
    notices: Option<&Notices>,
    app: &AppView,
    stored: Stored,
    hook: Hook,
    started: Instant,
    ctx: &CallContext,
) -> AppOutcome {
    let deadline = ctx.deadline.min(started + app.spec.timeout);
    let live = app.enabled && (app.instances.iter().any(|i| i.is_live()) || !app.remote.is_empty());
    // An app with no live instance anywhere cannot acknowledge: say so at once.
    let acked = if live {
        journal
            .wait_acked(&app.spec.app_id, stored.sequence, deadline, notices)
            .await
    } else {
        None
    };
    let (status, instance, sidecar, detail) = match acked {
        Some(by) if by.dead => (
            OutcomeStatus::Error,
            String::new(),
            by.sidecar.unwrap_or_default(),
            format!(
                "moved to the dead letters after {} deliveries",
                by.attempt.unwrap_or_default()
            ),
        ),
        Some(by) => {
            let detail = match (by.attempt, stored.duplicate) {
                (_, true) => "already acknowledged (a retried event_id within the de-duplication \
                     window)"
                    .to_owned(),
                (Some(attempt), false) => format!("acknowledged on attempt {attempt}"),
                (None, false) => format!(
                    "acknowledged (the app's JetStream consumer passed stream sequence {})",
                    stored.sequence
                ),
            };
            (
                OutcomeStatus::Delivered,
                by.instance
                    .map(|i| i.as_str().to_owned())
                    .unwrap_or_default(),
                by.sidecar.unwrap_or_default(),
                detail,
            )
        }
        None if !live => (
            OutcomeStatus::Unavailable,
            String::new(),
            String::new(),
            "no live instance in the cluster (or the app is disabled); the event stays stored \
             in JetStream until one can take it"
                .to_owned(),
        ),
        None => (
            OutcomeStatus::Timeout,
            String::new(),
            String::new(),
            format!(
                "not acknowledged within {:?}; the event stays stored in JetStream and will be \
                 redelivered",
                deadline.saturating_duration_since(started)
            ),
        ),
    };
    AppOutcome {
        app_id: app.spec.app_id.as_str().to_owned(),
        instance_id: instance,
        hook: hook.to_wire() as i32,
        status: status as i32,
        duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        detail,
        sidecar_id: sidecar,
    }
}

/// Waits for one app's ack of a post event, until the app's timeout capped by the deadline.
pub(super) async fn outcome(
    app: Arc<AppView>,
    live: bool,
    waiter: DeliveryWaiter,
    hook: Hook,
    started: Instant,
    ctx: &CallContext,
) -> AppOutcome {
    let deadline = ctx.deadline.min(started + app.spec.timeout);
    let (status, instance, detail) = if live {
        match tokio::time::timeout_at(deadline, waiter).await {
            Ok(Ok(Delivery::Acked {
                instance: Some(instance),
                attempt,
            })) => (
                OutcomeStatus::Delivered,
                instance.as_str().to_owned(),
                format!("acknowledged on attempt {attempt}"),
            ),
            Ok(Ok(Delivery::Acked { instance: None, .. })) => (
                OutcomeStatus::Delivered,
                String::new(),
                "already acknowledged (a retried event_id within the de-duplication window)"
                    .to_owned(),
            ),
            Ok(Ok(Delivery::DeadLettered)) => (
                OutcomeStatus::Error,
                String::new(),
                "moved to the dead letters after too many deliveries".to_owned(),
            ),
            Ok(Ok(Delivery::Dropped)) => (
                OutcomeStatus::Error,
                String::new(),
                "dropped: the app's post-event queue overflowed".to_owned(),
            ),
            Ok(Err(_)) => (
                OutcomeStatus::Error,
                String::new(),
                "the app was removed before acknowledging".to_owned(),
            ),
            Err(_) => (
                OutcomeStatus::Timeout,
                String::new(),
                format!(
                    "not acknowledged within {:?}; the event stays queued and will be redelivered",
                    deadline - started
                ),
            ),
        }
    } else {
        (
            OutcomeStatus::Unavailable,
            String::new(),
            "no live instance (or the app is disabled); the event stays queued until one can \
             take it"
                .to_owned(),
        )
    };
    AppOutcome {
        app_id: app.spec.app_id.as_str().to_owned(),
        instance_id: instance,
        hook: hook.to_wire() as i32,
        status: status as i32,
        duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        detail,
        sidecar_id: String::new(),
    }
}
