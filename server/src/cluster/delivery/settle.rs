//! Settling a delivered message with JetStream (ack or nak), and the notice a waiting backend
//! gets.

use async_nats::jetstream::AckKind;

use super::{Inner, Settle};
use crate::{
    cluster::journal::{
        NOTICE_APP, NOTICE_ATTEMPT, NOTICE_DEAD, NOTICE_INSTANCE, NOTICE_SEQ, NOTICE_SIDECAR,
    },
    ids::{AppId, InstanceId},
};

/// Acks or naks one message with JetStream.
pub(super) async fn settle_one(inner: std::sync::Arc<Inner>, app_id: AppId, settle: Settle) {
    match settle {
        Settle::Ack(held) => match held.acker.ack().await {
            Ok(()) => {
                if let (Some(hook), Some(app)) = (held.hook, inner.registry.snapshot().app(&app_id))
                {
                    app.stats.hook(hook).record_ack();
                }
                if let Some(to) = held.notify {
                    notify(
                        &inner,
                        &app_id,
                        Some(&held.instance),
                        held.attempt,
                        held.sequence,
                        to,
                    )
                    .await;
                }
            }
            Err(e) => {
                tracing::warn!(%app_id, sequence = held.sequence,
                    "cannot ack a post event with JetStream: {e}; it will be redelivered");
            }
        },
        Settle::Nak(acker) => {
            if let Err(e) = acker.ack_with(AckKind::Nak(None)).await {
                tracing::debug!(%app_id, "cannot nak a post event: {e}; JetStream redelivers it after the ack timeout");
            }
        }
    }
}

/// Tells a waiting backend's sidecar who acknowledged its event, or that it became a dead
/// letter (`instance` none, `dead`); core NATS, at most once.
pub(super) async fn notify(
    inner: &Inner,
    app_id: &AppId,
    instance: Option<&InstanceId>,
    attempt: u32,
    sequence: u64,
    to: String,
) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(NOTICE_APP, app_id.as_str());
    headers.insert(NOTICE_SEQ, sequence.to_string().as_str());
    match instance {
        Some(instance) => headers.insert(NOTICE_INSTANCE, instance.as_str()),
        None => headers.insert(NOTICE_DEAD, "1"),
    }
    headers.insert(NOTICE_SIDECAR, inner.cluster.sidecar_id());
    headers.insert(NOTICE_ATTEMPT, attempt.to_string().as_str());
    if let Err(e) = inner
        .cluster
        .client()
        .publish_with_headers(to, headers, bytes::Bytes::new())
        .await
    {
        tracing::debug!(%app_id, "cannot send an ack notice: {e}; the waiter reads the consumer");
    }
}
