//! One instance's stream as it is read: answers, post acks and heartbeat acks in; heartbeats
//! out on a timer; an instance silent past the liveness timeout closed; and, when the stream
//! ends, the instance taken out of rotation.

use std::sync::Arc;

use roomhooks::v1::{AppMessage, app_message::Msg as In, hook_result};
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use super::Liveness;
use crate::{
    apps::instance::{Completion, Instance},
    apps::registry::Registry,
    cluster::Link,
    ids::{CallId, EventId},
    post::PostQueue,
};

/// Counts peer mistakes and logs the first few, then every 1000th, so a flood cannot flood logs.
#[derive(Default)]
struct Strikes(u64);

impl Strikes {
    fn hit(&mut self) -> Option<u64> {
        self.0 += 1;
        (self.0 <= 10 || self.0.is_multiple_of(1000)).then_some(self.0)
    }
}

/// Reads one instance's answers until its stream ends, then takes it out of rotation.
pub(super) async fn read_loop(
    liveness: Liveness,
    registry: Arc<Registry>,
    instance: Arc<Instance>,
    posts: Arc<PostQueue>,
    mut inbound: Streaming<AppMessage>,
    shutdown: CancellationToken,
    link: Option<Link>,
) {
    let mut mistakes = Mistakes::default();
    let mut heartbeat = tokio::time::interval(liveness.interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_heard = tokio::time::Instant::now();
    let mut nonce = 0u64;
    // Made once: a fresh cancellation future per message would re-register its waker each time.
    let closed = instance.closed_token().clone().cancelled_owned();
    let stopping = shutdown.clone().cancelled_owned();
    tokio::pin!(closed, stopping);
    loop {
        let next = tokio::select! {
            // A waiting message first: the other branches are polled only while the stream is
            // idle (polling a cancellation future costs about as much as decoding a message).
            // A message that keeps the stream busy is followed by the cheap checks below.
            biased;
            next = inbound.message() => next,
            () = &mut closed => break,
            () = &mut stopping => break,
            _ = heartbeat.tick() => {
                if !beat(&instance, &liveness, last_heard, &mut nonce) {
                    break;
                }
                continue;
            }
        };
        if !instance.is_live() || shutdown.is_cancelled() {
            break;
        }
        last_heard = tokio::time::Instant::now();
        let message = match next {
            Ok(Some(AppMessage { msg: Some(message) })) => message,
            Ok(Some(AppMessage { msg: None })) => {
                if let Some(n) = mistakes.other.hit() {
                    tracing::warn!(app_id = %instance.app_id, instance_id = %instance.id, count = n,
                        "ignored an empty AppMessage (no register, result or post_ack set)");
                }
                continue;
            }
            Ok(None) => {
                tracing::info!(app_id = %instance.app_id, instance_id = %instance.id,
                    "app instance closed its stream");
                break;
            }
            Err(status) => {
                tracing::info!(app_id = %instance.app_id, instance_id = %instance.id,
                    code = ?status.code(), "app instance stream ended: {}", status.message());
                // Tell the app why, if it is still listening (e.g. it sent an undecodable message).
                instance.close(Some(Status::invalid_argument(format!(
                    "the sidecar could not read this stream: {}",
                    status.message()
                ))));
                break;
            }
        };
        handle(&instance, &posts, link.as_ref(), message, &mut mistakes);
    }
    leave(&registry, &instance, link.as_ref()).await;
}

/// A heartbeat tick: closes an instance silent for longer than the liveness timeout (false),
/// else sends it the next heartbeat.
fn beat(
    instance: &Instance,
    liveness: &Liveness,
    last_heard: tokio::time::Instant,
    nonce: &mut u64,
) -> bool {
    if last_heard.elapsed() > liveness.timeout {
        tracing::warn!(app_id = %instance.app_id, instance_id = %instance.id,
            silent_for = ?last_heard.elapsed(),
            "app instance stopped answering heartbeats: disconnecting it");
        instance.close(Some(Status::unavailable(format!(
            "no message or HeartbeatAck from this instance within {:?}; answer every \
             Heartbeat, then reconnect",
            liveness.timeout
        ))));
        return false;
    }
    *nonce += 1;
    instance.send_heartbeat(*nonce);
    true
}

/// An instance's stream ended: out of the registry (the store notes when the app's last
/// instance left, for --forget-apps-after across restarts) and out of the cluster's view.
async fn leave(registry: &Registry, instance: &Arc<Instance>, link: Option<&Link>) {
    if let Some((spec, version)) = registry.depart(instance) {
        registry.store().put_app(&spec, &version).await;
    }
    if let Some(link) = link {
        link.departed(instance);
    }
    tracing::info!(app_id = %instance.app_id, instance_id = %instance.id, "app instance left");
}

/// Peer mistakes counted per stream, so each kind is logged only now and then.
#[derive(Default)]
struct Mistakes {
    bad_results: Strikes,
    bad_acks: Strikes,
    other: Strikes,
}

/// Takes one message from an instance: an answer to its call, a post ack (for the local queue,
/// or in cluster mode for the JetStream message it was sent from), a heartbeat ack, or a stray
/// second Register (ignored, logged now and then).
fn handle(
    instance: &Instance,
    posts: &PostQueue,
    link: Option<&Link>,
    message: In,
    mistakes: &mut Mistakes,
) {
    match message {
        In::Result(result) => {
            let call_id = CallId(result.call_id);
            let answer = result.result.unwrap_or_else(|| {
                hook_result::Result::Error(roomhooks::v1::AppError {
                    message: "HookResult had no result set".into(),
                })
            });
            if instance.complete(call_id, answer) == Completion::Unknown
                && let Some(n) = mistakes.bad_results.hit()
            {
                tracing::warn!(app_id = %instance.app_id, instance_id = %instance.id,
                    %call_id, count = n,
                    "ignored a HookResult for an unknown, timed-out or already-answered call_id");
            }
        }
        In::PostAck(ack) => {
            let event_id = EventId::from_ack(&ack.event_id);
            let known = match link {
                Some(link) => link.delivery.ack(&instance.app_id, &event_id, &instance.id),
                None => posts.ack(&event_id, &instance.id),
            };
            if !known && let Some(n) = mistakes.bad_acks.hit() {
                tracing::warn!(app_id = %instance.app_id, instance_id = %instance.id,
                    event_id = %ack.event_id, count = n,
                    "ignored a PostEventAck for an event not awaiting an ack (unknown or already acknowledged)");
            }
        }
        In::HeartbeatAck(_) => {}
        In::Register(_) => {
            if let Some(n) = mistakes.other.hit() {
                tracing::warn!(app_id = %instance.app_id, instance_id = %instance.id, count = n,
                    "ignored a second Register on the same stream; the first registration stands");
            }
        }
    }
}
