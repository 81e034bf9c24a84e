//! The post-event worker: one per session, handling events in delivery order.

use std::{panic::AssertUnwindSafe, sync::Arc};

use futures_util::FutureExt;
use roomhooks::v1::{AppMessage, HookInterface, PostEvent, PostEventAck, app_message::Msg as Up};
use tokio::sync::mpsc;

use super::{Identity, dispatch::post_handle};
use crate::{answer::HookError, context::PostContext, handler::Handlers};

/// Handles post events one at a time, in delivery order; acknowledges each after its handler
/// returns `Ok`.
pub(super) async fn post_worker(
    handlers: Handlers,
    mut events: mpsc::Receiver<PostEvent>,
    uplink: mpsc::Sender<AppMessage>,
    id: Arc<Identity>,
) {
    while let Some(event) = events.recv().await {
        let hook = HookInterface::try_from(event.hook).unwrap_or(HookInterface::Unspecified);
        let ctx = PostContext {
            event_id: event.event_id.clone(),
            hook,
            attempt: event.attempt,
            app_id: id.app_id.clone(),
            instance_id: id.instance_id.clone(),
        };
        let handled = AssertUnwindSafe(post_handle(&handlers, hook, event.payload, ctx))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(HookError::Failed("the post handler panicked".into())));
        match handled {
            Ok(()) => {
                let ack = AppMessage {
                    msg: Some(Up::PostAck(PostEventAck {
                        event_id: event.event_id,
                    })),
                };
                if uplink.send(ack).await.is_err() {
                    return;
                }
            }
            Err(err) => tracing::warn!(app_id = %id.app_id, event_id = %event.event_id,
                "post handler failed: {err}; not acknowledged, the sidecar will redeliver it"),
        }
    }
}
