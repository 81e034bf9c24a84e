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
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::message::Acker;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod consumer;
mod pulling;
mod recent;
mod settle;

pub use self::recent::{AckedBy, RecentAcks};
use self::{
    consumer::{ensure_consumer, has_post_hooks},
    pulling::pull_loop,
};

use super::{Cluster, ClusterError, orphans::Orphans};
use crate::{
    apps::{instance::Instance, registry::Registry, spec::AppSpec},
    hook::Hook,
    ids::{AppId, EventId, InstanceId},
    lifecycle::tasks::Tasks,
};

/// How often the set of pull loops and consumers is checked against the registry.
const RECONCILE_EVERY: Duration = Duration::from_millis(500);
/// How often the pending gauge of every app is read from its consumer.
const PENDING_EVERY: Duration = Duration::from_secs(5);
/// Acks remembered for `wait_for_delivery` (which instance took the event), at most.
const MAX_RECENT: usize = 100_000;

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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
