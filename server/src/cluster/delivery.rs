//! Post-event delivery in cluster mode. Each app id has one durable pull consumer on the posts
//! stream (`<name>_app_<app>`), made when the app is first known (at its registration at any
//! sidecar, and by every sidecar for the apps the cluster declares). It filters the post
//! subjects of the app's post hooks (room types included, as subject tokens) and the app's
//! retry subject, and starts at `DeliverPolicy::New`: events accepted before an app ever
//! registered are not its (with interest retention, an event nobody wants is not kept).
//!
//! Every sidecar holding live local instances of an enabled app runs one pull loop on the app's
//! consumer (started when its first instance connects here, stopped when the last one leaves).
//! It sends each message to a local instance as a `PostEvent` (attempt = JetStream's delivery
//! count) and keeps it until the app's `PostEventAck` for that event id, which acks it (a plain
//! ack, not JetStream's confirmed `double_ack`: delivery is at least once anyway, so an ack lost on
//! the way only means one more delivery, and it saves NATS a reply per delivery).
//! An instance that leaves has its unacknowledged messages `nak`ed: they are redelivered at
//! once, here or at another sidecar. An app that does not acknowledge within `--post-ack-timeout`
//! gets the event again from JetStream, the wait doubling per attempt up to 16× as on a single
//! sidecar (the consumer's `backoff` list, from [`crate::post::ack_wait`]).
//! A message delivered more than `--post-max-attempts` times is a dead letter
//! ([`super::dead_letters`]): the consumer's `max_deliver` is one more than the cap, so that
//! last delivery reaches the pull loop, which buries it instead of sending it.
//!
//! Order: one sidecar sends an app's events in the consumer's order; with instances at several
//! sidecars, each pulls its share, so events of one app may be handled out of order across
//! sidecars, and a redelivery comes after later events (`--post-window 1` makes it strict).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{
    AckKind,
    consumer::{AckPolicy, DeliverPolicy, pull},
    message::Acker,
};
use futures_util::{StreamExt, stream::FuturesUnordered};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    Cluster, ClusterError, dead_letters,
    journal::{
        EVENT_ID, HOOK, NOTICE_APP, NOTICE_ATTEMPT, NOTICE_DEAD, NOTICE_INSTANCE, NOTICE_SEQ,
        NOTICE_SIDECAR, NOTIFY,
    },
    orphans::Orphans,
};
use crate::{
    apps::{frame::Frame, instance::Instance, registry::Registry, spec::AppSpec},
    hook::{Hook, Stage},
    ids::{AppId, EventId, InstanceId},
    lifecycle::tasks::Tasks,
};

/// How often the set of pull loops and consumers is checked against the registry.
const RECONCILE_EVERY: Duration = Duration::from_millis(500);
/// How often the pending gauge of every app is read from its consumer.
const PENDING_EVERY: Duration = Duration::from_secs(5);
/// Acks remembered for `wait_for_delivery` (which instance took the event), at most.
const MAX_RECENT: usize = 100_000;

/// Who acknowledged an event, when this sidecar saw it.
#[derive(Clone, Debug, Default)]
pub struct AckedBy {
    /// The instance that acknowledged.
    pub instance: Option<InstanceId>,
    /// The sidecar it is connected to.
    pub sidecar: Option<String>,
    /// The delivery attempt it acknowledged (for a dead letter: the deliveries made).
    pub attempt: Option<u32>,
    /// Not acknowledged: it became a dead letter.
    pub dead: bool,
}

/// The acks this sidecar took recently, by app and stream sequence.
#[derive(Clone, Default)]
pub struct RecentAcks {
    inner: Arc<Mutex<RecentInner>>,
}

#[derive(Default)]
struct RecentInner {
    by_seq: HashMap<(AppId, u64), AckedBy>,
    order: VecDeque<(AppId, u64)>,
}

impl RecentAcks {
    /// Who acknowledged `app_id`'s message at `sequence`, if it was acknowledged here.
    pub fn get(&self, app_id: &AppId, sequence: u64) -> Option<AckedBy> {
        self.lock().by_seq.get(&(app_id.clone(), sequence)).cloned()
    }

    fn put(&self, app_id: AppId, sequence: u64, by: AckedBy) {
        let mut inner = self.lock();
        if inner
            .by_seq
            .insert((app_id.clone(), sequence), by)
            .is_none()
        {
            inner.order.push_back((app_id, sequence));
        }
        while inner.order.len() > MAX_RECENT {
            if let Some(old) = inner.order.pop_front() {
                inner.by_seq.remove(&old);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecentInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A message sent to an instance and not acknowledged yet.
struct Held {
    acker: Acker,
    instance: InstanceId,
    attempt: u32,
    sequence: u64,
    hook: Option<Hook>,
    /// Where to say it was acknowledged (a backend waits for it).
    notify: Option<String>,
}

/// What the read loops ask of an app's pull loop.
enum Settle {
    /// The app acknowledged: ack it.
    Ack(Held),
    /// The instance left before acknowledging: `nak` it for immediate redelivery.
    Nak(Acker),
}

/// One app's pull loop, as the reconciler sees it.
struct Running {
    stop: CancellationToken,
    held: Arc<Mutex<HashMap<EventId, Held>>>,
    /// Unbounded, yet bounded in practice: only held messages (at most `max_ack_pending` of the
    /// consumer) are ever sent on it.
    settle: mpsc::UnboundedSender<Settle>,
}

/// Consumers, pull loops and acks of post events in cluster mode.
#[derive(Clone)]
pub struct Delivery {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Cluster,
    registry: Arc<Registry>,
    tasks: Tasks,
    running: Mutex<HashMap<AppId, Running>>,
    /// The filters each app's consumer was last given here.
    ensured: Mutex<HashMap<AppId, Vec<String>>>,
    recent: RecentAcks,
    /// Messages pending per app (not delivered yet + delivered and not acknowledged).
    pending: Mutex<BTreeMap<AppId, u64>>,
}

impl Delivery {
    /// Delivery of `registry`'s apps over `cluster`; its loops are owned by `tasks`.
    pub fn new(cluster: Cluster, registry: Arc<Registry>, tasks: Tasks) -> Self {
        Self {
            inner: Arc::new(Inner {
                cluster,
                registry,
                tasks,
                running: Mutex::new(HashMap::new()),
                ensured: Mutex::new(HashMap::new()),
                recent: RecentAcks::default(),
                pending: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The acks taken here, shared with the journal for `wait_for_delivery`.
    pub fn recent(&self) -> RecentAcks {
        self.inner.recent.clone()
    }

    /// Messages pending per app, as last read from the consumers (for the metrics).
    pub fn pending(&self) -> BTreeMap<AppId, u64> {
        lock(&self.inner.pending).clone()
    }

    /// Creates `spec`'s consumer, or updates its filters to `spec`'s hooks and room types (at
    /// each registration: another sidecar may have removed it meanwhile).
    pub async fn ensure_consumer(&self, spec: &AppSpec) -> Result<(), ClusterError> {
        lock(&self.inner.ensured).remove(&spec.app_id);
        ensure_consumer(&self.inner, spec).await
    }

    /// An operator removed the app: its pull loop stops and its consumer is deleted, with the
    /// events it still held (as a single sidecar drops a removed app's queue). Returns how
    /// many events the consumer held, when NATS said.
    pub async fn forget(&self, app_id: &AppId) -> Result<Option<u64>, ClusterError> {
        if let Some(run) = lock(&self.inner.running).remove(app_id) {
            run.stop.cancel();
        }
        lock(&self.inner.ensured).remove(app_id);
        let held = consumer_pending(&self.inner.cluster, app_id).await;
        let names = self.inner.cluster.names();
        match self
            .inner
            .cluster
            .jetstream()
            .delete_consumer_from_stream(names.app_consumer(app_id), names.posts_stream())
            .await
        {
            Ok(_) => Ok(held),
            Err(e) if held.is_none() => {
                tracing::debug!(%app_id, "no consumer to delete: {e}");
                Ok(None)
            }
            Err(e) => Err(ClusterError::Nats(format!(
                "deleting the consumer of app {app_id}: {e}"
            ))),
        }
    }

    /// Starts the pull loop of every enabled app with a live instance here and stops the others.
    pub fn serve(&self) {
        let snapshot = self.inner.registry.snapshot();
        let here: Vec<AppId> = snapshot
            .apps()
            .iter()
            .filter(|app| {
                app.enabled
                    && has_post_hooks(&app.spec)
                    && app.instances.iter().any(|i| i.is_live())
            })
            .map(|app| app.spec.app_id.clone())
            .collect();
        let mut running = lock(&self.inner.running);
        running.retain(|app_id, run| {
            let keep = here.contains(app_id) && !run.stop.is_cancelled();
            if !keep {
                run.stop.cancel();
            }
            keep
        });
        for app_id in here {
            if running.contains_key(&app_id) {
                continue;
            }
            let stop = self.inner.tasks.stopping().child_token();
            let held = Arc::new(Mutex::new(HashMap::new()));
            let (settle, settled) = mpsc::unbounded_channel();
            running.insert(
                app_id.clone(),
                Running {
                    stop: stop.clone(),
                    held: Arc::clone(&held),
                    settle,
                },
            );
            self.inner.tasks.spawn(pull_loop(
                Arc::clone(&self.inner),
                app_id,
                held,
                settled,
                stop,
            ));
        }
    }

    /// An app's `PostEventAck`: the held message is acked by its pull loop. False when
    /// no message of that event id awaits an ack here.
    pub fn ack(&self, app_id: &AppId, event_id: &EventId, from: &InstanceId) -> bool {
        let running = lock(&self.inner.running);
        let Some(run) = running.get(app_id) else {
            return false;
        };
        let Some(held) = lock(&run.held).remove(event_id) else {
            return false;
        };
        self.inner.recent.put(
            app_id.clone(),
            held.sequence,
            AckedBy {
                instance: Some(from.clone()),
                sidecar: Some(self.inner.cluster.sidecar_id().to_owned()),
                attempt: Some(held.attempt),
                dead: false,
            },
        );
        run.settle.send(Settle::Ack(held)).is_ok()
    }

    /// An instance left: the messages it held go back to JetStream at once.
    pub fn departed(&self, instance: &Instance) {
        let running = lock(&self.inner.running);
        if let Some(run) = running.get(&instance.app_id) {
            let mut held = lock(&run.held);
            let gone: Vec<EventId> = held
                .iter()
                .filter(|(_, h)| h.instance == instance.id)
                .map(|(id, _)| id.clone())
                .collect();
            for id in gone {
                if let Some(h) = held.remove(&id) {
                    let _ = run.settle.send(Settle::Nak(h.acker));
                }
            }
        }
        drop(running);
        self.serve();
    }

    /// Keeps consumers and pull loops in step with the registry until `stop`: every app known
    /// here (declared anywhere in the cluster) gets its consumer, consumers of removed apps are
    /// swept ([`Orphans`]) once per member TTL, and the pending gauge is read.
    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(RECONCILE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_pending = tokio::time::Instant::now() - PENDING_EVERY;
        let (mut orphans, mut last_sweep) = (Orphans::default(), tokio::time::Instant::now());
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if !self.inner.cluster.is_connected() {
                continue;
            }
            let snapshot = self.inner.registry.snapshot();
            for app in snapshot.apps() {
                if !has_post_hooks(&app.spec) {
                    continue;
                }
                if let Err(e) = ensure_consumer(&self.inner, &app.spec).await {
                    tracing::warn!(app_id = %app.spec.app_id, "cannot create the app's JetStream consumer: {e}; retrying");
                }
            }
            self.serve();
            if last_sweep.elapsed() >= self.inner.cluster.settings().member_ttl {
                last_sweep = tokio::time::Instant::now();
                match orphans
                    .sweep(&self.inner.cluster, &self.inner.registry)
                    .await
                {
                    Ok(deleted) => {
                        for app_id in deleted {
                            lock(&self.inner.ensured).remove(&app_id);
                        }
                    }
                    Err(e) => tracing::debug!("cannot sweep orphaned consumers: {e}"),
                }
            }
            if last_pending.elapsed() >= PENDING_EVERY {
                last_pending = tokio::time::Instant::now();
                let mut pending = BTreeMap::new();
                for app in snapshot.apps() {
                    if let Some(n) = consumer_pending(&self.inner.cluster, &app.spec.app_id).await {
                        pending.insert(app.spec.app_id.clone(), n);
                    }
                }
                *lock(&self.inner.pending) = pending;
            }
        }
        for (_, run) in lock(&self.inner.running).drain() {
            run.stop.cancel();
        }
    }
}

/// Messages of `app_id` not delivered yet plus delivered and not acknowledged, from its
/// consumer; `None` when it has none or NATS could not be asked.
pub async fn consumer_pending(cluster: &Cluster, app_id: &AppId) -> Option<u64> {
    let names = cluster.names();
    let stream = cluster
        .jetstream()
        .get_stream_no_info(names.posts_stream())
        .await
        .ok()?;
    let info = stream
        .consumer_info(names.app_consumer(app_id))
        .await
        .ok()?;
    Some(info.num_pending + info.num_ack_pending as u64)
}

/// Whether `spec` registered any post hook (apps with only Pre hooks have no consumer).
fn has_post_hooks(spec: &AppSpec) -> bool {
    spec.interfaces.iter().any(|h| h.stage() == Stage::Post)
}

/// The ack wait of each delivery of an event, attempt 1 to `max_attempts`.
fn backoff(ack_timeout: Duration, max_attempts: u32) -> Vec<Duration> {
    (1..=max_attempts)
        .map(|attempt| crate::post::ack_wait(ack_timeout, attempt))
        .collect()
}

async fn ensure_consumer(inner: &Inner, spec: &AppSpec) -> Result<(), ClusterError> {
    let names = inner.cluster.names();
    let filters = names.app_filters(&spec.app_id, spec.interfaces, spec.room_types);
    if lock(&inner.ensured).get(&spec.app_id) == Some(&filters) {
        return Ok(());
    }
    let settings = inner.cluster.settings();
    let name = names.app_consumer(&spec.app_id);
    let config = pull::Config {
        durable_name: Some(name.clone()),
        description: Some(format!("roomhooks post events of app {}", spec.app_id)),
        // An app gets the events accepted from its first registration on.
        deliver_policy: DeliverPolicy::New,
        ack_policy: AckPolicy::Explicit,
        ack_wait: settings.ack_timeout,
        // Replaces `ack_wait` per delivery; JetStream wants it shorter than `max_deliver`.
        backoff: backoff(settings.ack_timeout, settings.max_attempts),
        // One delivery past the cap: the pull loop sees it and makes it a dead letter.
        max_deliver: i64::from(settings.max_attempts) + 1,
        max_ack_pending: i64::try_from(settings.window).unwrap_or(i64::MAX),
        filter_subjects: filters.clone(),
        // Never deleted for being idle: an app away for a while keeps its events.
        inactive_threshold: Duration::ZERO,
        ..Default::default()
    };
    inner
        .cluster
        .jetstream()
        .create_consumer_on_stream(config, names.posts_stream())
        .await
        .map_err(|e| ClusterError::Nats(format!("creating consumer {name}: {e}")))?;
    tracing::debug!(app_id = %spec.app_id, consumer = %name, ?filters, "app consumer ready");
    lock(&inner.ensured).insert(spec.app_id.clone(), filters);
    Ok(())
}

/// Pulls `app_id`'s consumer and delivers to local instances until `stop`.
async fn pull_loop(
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

/// Sends one pulled message to a local instance (or to the dead letters past the cap); false
/// when the app cannot take events here any more (the loop ends).
async fn deliver(
    inner: &Arc<Inner>,
    app_id: &AppId,
    held: &Mutex<HashMap<EventId, Held>>,
    target: &mut Option<Arc<Instance>>,
    message: async_nats::jetstream::Message,
) -> bool {
    let (attempt, sequence) = match message.info() {
        Ok(info) => (
            u32::try_from(info.delivered).unwrap_or(u32::MAX),
            info.stream_sequence,
        ),
        Err(e) => {
            tracing::warn!(%app_id, "a post event without JetStream metadata: {e}; terminated");
            let _ = message.ack_with(AckKind::Term).await;
            return true;
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
        let _ = message.ack_with(AckKind::Term).await;
        return true;
    };
    let hook = header(HOOK)
        .and_then(|raw| raw.parse::<i32>().ok())
        .and_then(Hook::from_wire);
    let max_attempts = inner.cluster.settings().max_attempts;
    if attempt > max_attempts {
        let reason = format!(
            "not acknowledged after {} deliveries (--post-max-attempts)",
            attempt - 1
        );
        tracing::warn!(%app_id, %event_id, attempts = attempt - 1,
            "post event moved to the dead letters; Admin.RetryDeadLetters queues it again");
        if let Err(e) =
            dead_letters::bury(&inner.cluster, app_id, &message, attempt - 1, &reason).await
        {
            tracing::warn!(%app_id, %event_id, "cannot store the dead letter: {e}; it is redelivered");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return true;
        }
        // Told before the ack floor moves past it, so a waiter hears "dead", not "acknowledged".
        if let Some(to) = header(NOTIFY) {
            notify(inner, app_id, None, attempt - 1, sequence, to).await;
        }
        if let Err(e) = message.double_ack_with(AckKind::Term).await {
            tracing::warn!(%app_id, %event_id, "cannot end a dead letter's deliveries: {e}");
        }
        return true;
    }
    let snapshot = inner.registry.snapshot();
    let app = snapshot.app(app_id);
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
    let (Some(to), Some(app)) = (target.clone(), app.filter(|a| a.enabled)) else {
        // Disabled, removed, or no live instance here any more: back to JetStream (for another
        // sidecar, or for later), and this loop ends (the reconciler starts it again when the
        // app can take events here). The delivery counts as an attempt: JetStream counts naks.
        let _ = message.ack_with(AckKind::Nak(None)).await;
        return false;
    };
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
    let notify = header(NOTIFY);
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

/// Acks or naks one message with JetStream.
async fn settle_one(inner: Arc<Inner>, app_id: AppId, settle: Settle) {
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
async fn notify(
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_redelivery_waits_twice_as_long_as_the_last_up_to_sixteen_times_the_ack_timeout() {
        let waits = backoff(Duration::from_secs(1), 7);
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 16, 16]);
        // JetStream refuses a backoff list that is not shorter than max_deliver (attempts + 1).
        assert!(waits.len() < 7 + 1);
    }
}
