//! One app's pull loop: messages from its consumer to local instances, held until acknowledged.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{AckKind, consumer::pull};
use futures_util::{StreamExt, stream::FuturesUnordered};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    Held, Inner, Settle, consumer::ensure_consumer, lock, settle::notify, settle::settle_one,
};
use crate::{
    apps::{frame::Frame, instance::Instance, registry::AppView},
    cluster::{
        ClusterError, dead_letters,
        journal::{EVENT_ID, HOOK, NOTIFY},
    },
    hook::Hook,
    ids::{AppId, EventId},
};

/// Pulls `app_id`'s consumer and delivers to local instances until `stop`.
pub(super) async fn pull_loop(
    inner: Arc<Inner>,
    app_id: AppId,
    held: Arc<Mutex<HashMap<EventId, Held>>>,
    mut settled: mpsc::UnboundedReceiver<Settle>,
    stop: CancellationToken,
) {
    tracing::debug!(%app_id, "pulling the app's post events from JetStream");
    let mut settling = FuturesUnordered::new();
    let mut target: Option<Arc<Instance>> = None;
    let mut pause = Duration::from_millis(100);
    'connect: while !stop.is_cancelled() {
        let mut messages = match messages(&inner, &app_id).await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(%app_id, "cannot pull the app's post events: {e}; retrying");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break 'connect,
                Some(settle) = settled.recv() => settling.push(settle_one(Arc::clone(&inner), app_id.clone(), settle)),
                Some(()) = settling.next(), if !settling.is_empty() => {}
                next = messages.next() => match next {
                    Some(Ok(message)) => {
                        pause = Duration::from_millis(100);
                        if !deliver(&inner, &app_id, &held, &mut target, message).await {
                            stop.cancel();
                        }
                    }
                    Some(Err(e)) => {
                        use async_nats::jetstream::consumer::pull::MessagesErrorKind as K;
                        match e.kind() {
                            K::MissingHeartbeat => {
                                tracing::debug!(%app_id, "pull: {e}");
                            }
                            _ => {
                                tracing::warn!(%app_id, "pulling post events failed: {e}; pulling again");
                                lock(&inner.ensured).remove(&app_id);
                                tokio::select! {
                                    () = stop.cancelled() => break 'connect,
                                    () = tokio::time::sleep(pause) => {}
                                }
                                pause = (pause * 2).min(Duration::from_secs(2));
                                continue 'connect;
                            }
                        }
                    }
                    None => continue 'connect,
                },
            }
        }
    }
    // Whatever is still held goes back to JetStream for another sidecar (or a later loop here).
    let left: Vec<Held> = lock(&held).drain().map(|(_, h)| h).collect();
    while let Ok(settle) = settled.try_recv() {
        settling.push(settle_one(Arc::clone(&inner), app_id.clone(), settle));
    }
    for h in left {
        settling.push(settle_one(
            Arc::clone(&inner),
            app_id.clone(),
            Settle::Nak(h.acker),
        ));
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while settling.next().await.is_some() {}
    })
    .await;
    tracing::debug!(%app_id, "stopped pulling the app's post events");
}

/// The app's consumer's message stream (the consumer made first if it is missing).
async fn messages(inner: &Inner, app_id: &AppId) -> Result<pull::Stream, ClusterError> {
    if let Some(app) = inner.registry.snapshot().app(app_id) {
        ensure_consumer(inner, &app.spec).await?;
    }
    let names = inner.cluster.names();
    let consumer: async_nats::jetstream::consumer::Consumer<pull::Config> = match inner
        .cluster
        .jetstream()
        .get_consumer_from_stream(names.app_consumer(app_id), names.posts_stream())
        .await
    {
        Ok(consumer) => consumer,
        Err(e) => {
            // Made again on the next try (another sidecar may have deleted it).
            lock(&inner.ensured).remove(app_id);
            return Err(ClusterError::Nats(format!(
                "opening the app's consumer: {e}"
            )));
        }
    };
    let window = inner.cluster.settings().window.clamp(1, 10_000);
    consumer
        .stream()
        .max_messages_per_batch(window)
        .expires(Duration::from_secs(10))
        .heartbeat(Duration::from_secs(3))
        .messages()
        .await
        .map_err(|e| ClusterError::Nats(format!("pulling the app's consumer: {e}")))
}

/// What a pulled message says of itself: its JetStream metadata and our headers.
struct Pulled {
    /// JetStream's delivery count: 1 on the first delivery.
    attempt: u32,
    /// Its sequence number in the stream.
    sequence: u64,
    event_id: EventId,
    /// The hook it is for (none when the header is missing or unknown, as from a newer sidecar).
    hook: Option<Hook>,
    /// Where the backend waits to hear how it ended, if it waits.
    notify: Option<String>,
}

impl Pulled {
    /// Reads `message`'s metadata and headers; what is missing, logged (the message cannot be
    /// delivered and is terminated).
    fn read(app_id: &AppId, message: &async_nats::jetstream::Message) -> Option<Self> {
        let (attempt, sequence) = match message.info() {
            Ok(info) => (
                u32::try_from(info.delivered).unwrap_or(u32::MAX),
                info.stream_sequence,
            ),
            Err(e) => {
                tracing::warn!(%app_id, "a post event without JetStream metadata: {e}; terminated");
                return None;
            }
        };
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        let Some(event_id) = header(EVENT_ID).map(|id| EventId::from_ack(&id)) else {
            tracing::warn!(%app_id, sequence, "a post event without its event id header; terminated");
            return None;
        };
        Some(Self {
            attempt,
            sequence,
            event_id,
            hook: header(HOOK)
                .and_then(|raw| raw.parse::<i32>().ok())
                .and_then(Hook::from_wire),
            notify: header(NOTIFY),
        })
    }
}

/// Sends one pulled message to a local instance (or to the dead letters past the cap); false
/// when the app cannot take events here any more (the loop ends).
async fn deliver(
    inner: &Arc<Inner>,
    app_id: &AppId,
    held: &Mutex<HashMap<EventId, Held>>,
    target: &mut Option<Arc<Instance>>,
    message: async_nats::jetstream::Message,
) -> bool {
    let Some(pulled) = Pulled::read(app_id, &message) else {
        let _ = message.ack_with(AckKind::Term).await;
        return true;
    };
    if pulled.attempt > inner.cluster.settings().max_attempts {
        bury(inner, app_id, pulled, message).await;
        return true;
    }
    let snapshot = inner.registry.snapshot();
    let app = snapshot.app(app_id);
    choose_target(target, app);
    let (Some(to), Some(app)) = (target.clone(), app.filter(|a| a.enabled)) else {
        // Disabled, removed, or no live instance here any more: back to JetStream (for another
        // sidecar, or for later), and this loop ends (the reconciler starts it again when the
        // app can take events here). The delivery counts as an attempt: JetStream counts naks.
        let _ = message.ack_with(AckKind::Nak(None)).await;
        return false;
    };
    let Pulled {
        attempt,
        sequence,
        event_id,
        hook,
        notify,
    } = pulled;
    if let Some(hook) = hook {
        app.stats.hook(hook).record_delivery(attempt);
    }
    if attempt > 1 {
        tracing::debug!(%app_id, %event_id, attempt, "redelivering post event");
    }
    let frame = Frame::Post {
        attempt,
        event: message.payload.clone(),
    };
    let (_, acker) = message.split();
    // Held before it is sent: the ack may come back before `send` returns.
    lock(held).insert(
        event_id.clone(),
        Held {
            acker,
            instance: to.id.clone(),
            attempt,
            sequence,
            hook,
            notify,
        },
    );
    if to.send(frame).await.is_err() {
        // The instance went away; `departed` naks what it held (this one included, if still here).
        let back = lock(held).remove(&event_id);
        if let Some(h) = back {
            let _ = h.acker.ack_with(AckKind::Nak(None)).await;
        }
        *target = None;
    }
    true
}

/// Keeps sending to `target` while it is live and still the app's; otherwise picks the app's
/// live instance with the fewest calls in flight (none if it has none here).
fn choose_target(target: &mut Option<Arc<Instance>>, app: Option<&Arc<AppView>>) {
    let keep = target.as_ref().is_some_and(|t| {
        t.is_live() && app.is_some_and(|a| a.instances.iter().any(|i| Arc::ptr_eq(i, t)))
    });
    if !keep {
        *target = app.and_then(|a| {
            a.instances
                .iter()
                .filter(|i| i.is_live())
                .min_by_key(|i| i.in_flight())
                .cloned()
        });
    }
}

/// Makes a message delivered past the attempt cap without an ack a dead letter: stored in the
/// dead letters, the waiting backend told, its deliveries ended. If it cannot be stored, it is
/// redelivered a second later.
async fn bury(
    inner: &Arc<Inner>,
    app_id: &AppId,
    pulled: Pulled,
    message: async_nats::jetstream::Message,
) {
    let Pulled {
        attempt,
        sequence,
        event_id,
        notify: notify_to,
        ..
    } = pulled;
    let attempts = attempt - 1;
    let reason = format!("not acknowledged after {attempts} deliveries (--post-max-attempts)");
    tracing::warn!(%app_id, %event_id, attempts,
        "post event moved to the dead letters; Admin.RetryDeadLetters queues it again");
    if let Err(e) = dead_letters::bury(&inner.cluster, app_id, &message, attempts, &reason).await {
        tracing::warn!(%app_id, %event_id, "cannot store the dead letter: {e}; it is redelivered");
        let _ = message
            .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
            .await;
        return;
    }
    // Told before the ack floor moves past it, so a waiter hears "dead", not "acknowledged".
    if let Some(to) = notify_to {
        notify(inner, app_id, None, attempts, sequence, to).await;
    }
    if let Err(e) = message.double_ack_with(AckKind::Term).await {
        tracing::warn!(%app_id, %event_id, "cannot end a dead letter's deliveries: {e}");
    }
}
