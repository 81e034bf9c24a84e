//! The apps the sidecar knows and their live instances. Writers (register, disconnect, remove)
//! take a lock and publish a fresh [`Snapshot`]; the hot path reads the snapshot without locking,
//! with each hook's subscribers already in dispatch order.
//!
//! [`view`]: what the hot path reads; [`admit`]: instances joining and leaving; [`remove`]:
//! forgetting apps; [`cluster`]: the cluster's view taken in. It may use apps, post (each app's
//! queue) and the store; it never calls apps.

mod admit;
mod cluster;
mod remove;
mod view;

pub use self::{
    admit::{AdmitError, Capacity, NewInstance},
    view::{AppView, Snapshot},
};

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use std::time::SystemTime;

use tokio::time::Instant;

use crate::{
    apps::instance::Instance,
    apps::settings::AppSettings,
    apps::spec::{AppSpec, FailurePolicy, TimeoutLimits},
    apps::stats::AppStats,
    cluster::directory::RemoteInstance,
    dispatch::alarm::Alarm,
    hook::RoomTypeSet,
    ids::AppId,
    lifecycle::tasks::Tasks,
    post::sequence::Sequence,
    post::{PostConfig, PostQueue, Recovery},
    store::{Recovered, RecoveredApp, Store},
};

struct AppEntry {
    spec: Arc<AppSpec>,
    instances: Vec<Arc<Instance>>,
    version: String,
    posts: Arc<PostQueue>,
    enabled: bool,
    stats: Arc<AppStats>,
    /// Since when the app has had no instance (`None` while one is connected).
    idle_since: Option<SystemTime>,
    /// In cluster mode, its live instances at other sidecars.
    remote: Arc<[RemoteInstance]>,
}

impl AppEntry {
    /// The instances post events may go to: none while disabled.
    fn post_targets(&self) -> Vec<Arc<Instance>> {
        if self.enabled {
            self.instances.clone()
        } else {
            Vec::new()
        }
    }
}

/// The registry of apps and instances.
pub struct Registry {
    capacity: Capacity,
    post_config: PostConfig,
    store: Store,
    sequence: Arc<Sequence>,
    settings: BTreeMap<AppId, AppSettings>,
    entries: Mutex<BTreeMap<AppId, AppEntry>>,
    snapshot: ArcSwap<Snapshot>,
    alarm: Alarm,
    tasks: Tasks,
    /// Set when the sidecar ends every app stream for a shutdown: no instance is admitted after.
    closing: AtomicBool,
}

impl Registry {
    /// A registry whose background work (post delivery) is owned by `tasks`. Apps with essential hooks in
    /// `settings` are known from the start, so those hooks are prevented until the app connects.
    /// Apps the store remembers come back with their pending events and dead letters.
    pub fn new(
        capacity: Capacity,
        post_config: PostConfig,
        store: Store,
        recovered: Recovered,
        settings: BTreeMap<AppId, AppSettings>,
        limits: TimeoutLimits,
        tasks: Tasks,
    ) -> Self {
        let sequence = Arc::new(Sequence::new(recovered.next_seq));
        let mut recovery = Recovery::new(recovered.events, recovered.dead, recovered.posts);
        let registry = Self {
            capacity,
            post_config,
            store,
            sequence,
            settings,
            entries: Mutex::new(BTreeMap::new()),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            alarm: Alarm::new(),
            tasks,
            closing: AtomicBool::new(false),
        };
        {
            let mut entries = registry.lock();
            registry.remember(&mut entries, recovered.apps, limits, &mut recovery);
            registry.declare(&mut entries, limits, &mut recovery);
            registry.publish(&entries);
        }
        // Delivery starts once the lock is released: no task is spawned under it.
        for app in registry.snapshot().apps() {
            app.posts.start(&registry.tasks);
        }
        let unclaimed = recovery.unclaimed();
        if unclaimed > 0 {
            tracing::warn!(
                unclaimed,
                "the store holds post events for apps it does not \
                remember; they stay stored and are not delivered"
            );
        }
        registry
    }

    /// Takes back the apps the store remembers, idle since they were last seen, with the
    /// operator's settings applied.
    fn remember(
        &self,
        entries: &mut BTreeMap<AppId, AppEntry>,
        apps: Vec<RecoveredApp>,
        limits: TimeoutLimits,
        recovery: &mut Recovery,
    ) {
        for RecoveredApp {
            mut spec,
            version,
            last_seen,
        } in apps
        {
            if let Some(settings) = self.settings.get(&spec.app_id) {
                spec.essential = settings.essential();
                spec.unavailable_message = settings.unavailable_message();
                spec.rollout = settings.rollout();
                spec.timeout = spec.timeout.min(settings.max_timeout(limits.max));
            }
            let app_id = spec.app_id.clone();
            let mut entry = self.new_entry(spec, Vec::new(), version, recovery);
            entry.idle_since = Some(last_seen.unwrap_or_else(SystemTime::now));
            entries.insert(app_id, entry);
        }
    }

    /// Knows the apps the config file gives essential hooks from the start (so those hooks are
    /// prevented until the app connects), unless the store already remembered them.
    fn declare(
        &self,
        entries: &mut BTreeMap<AppId, AppEntry>,
        limits: TimeoutLimits,
        recovery: &mut Recovery,
    ) {
        for (app_id, settings) in &self.settings {
            if entries.contains_key(app_id) {
                continue;
            }
            if settings.essential_hooks.is_empty() {
                continue;
            }
            let spec = AppSpec {
                app_id: app_id.clone(),
                interfaces: settings.essential(),
                priority: settings.priority.unwrap_or(0),
                failure_policy: settings.failure_policy.unwrap_or(FailurePolicy::Fail),
                timeout: settings
                    .timeout
                    .unwrap_or(limits.default)
                    .min(settings.max_timeout(limits.max)),
                room_types: RoomTypeSet::default(),
                essential: settings.essential(),
                unavailable_message: settings.unavailable_message(),
                rollout: settings.rollout(),
            };
            let entry = self.new_entry(spec, Vec::new(), String::new(), recovery);
            entries.insert(app_id.clone(), entry);
        }
    }

    /// The operator's settings for an app, if any.
    pub fn settings(&self, app_id: &AppId) -> Option<&AppSettings> {
        self.settings.get(app_id)
    }

    /// The sequence post events are numbered from.
    pub fn sequence(&self) -> &Sequence {
        &self.sequence
    }

    /// The store every post-event and registration write goes through.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn new_entry(
        &self,
        spec: AppSpec,
        instances: Vec<Arc<Instance>>,
        version: String,
        recovery: &mut Recovery,
    ) -> AppEntry {
        let enabled = self
            .settings
            .get(&spec.app_id)
            .and_then(|s| s.enabled)
            .unwrap_or(true);
        let stats = Arc::<AppStats>::default();
        let posts = PostQueue::new(
            spec.app_id.clone(),
            self.post_config,
            self.store.clone(),
            Arc::clone(&self.sequence),
            recovery,
            Arc::clone(&stats),
            &self.tasks,
        );
        let idle_since = instances.is_empty().then(SystemTime::now);
        let entry = AppEntry {
            spec: Arc::new(spec),
            instances,
            version,
            posts,
            enabled,
            stats,
            idle_since,
            remote: Arc::from([]),
        };
        entry.posts.set_instances(entry.post_targets());
        entry
    }

    /// Enables or disables an app; returns false when the app is unknown.
    pub fn set_enabled(&self, app_id: &AppId, enabled: bool) -> bool {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(app_id) else {
            return false;
        };
        entry.enabled = enabled;
        entry.posts.set_instances(entry.post_targets());
        self.publish(&entries);
        true
    }

    /// The current view, lock-free.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The owner of background work: post delivery, and shadow calls nobody waits for.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// The one timer of every app call in flight: arm it with each call's deadline.
    pub fn alarm(&self) -> &Alarm {
        &self.alarm
    }

    /// Times out app calls whose deadline passed, until `stop`. Every call waits on this: run it
    /// for as long as calls are made.
    pub async fn time_out_calls(&self, stop: CancellationToken) {
        self.alarm.run(stop, |now| self.expire_calls(now)).await;
    }

    /// Times out the calls due by `now` on every instance (a closed one has none left: closing
    /// ends its calls); returns the earliest deadline still waiting.
    fn expire_calls(&self, now: Instant) -> Option<Instant> {
        let snapshot = self.snapshot();
        snapshot
            .apps()
            .iter()
            .flat_map(|app| &app.instances)
            .filter_map(|instance| instance.expire(now))
            .min()
    }

    /// Ends every app stream cleanly for a shutdown and admits no instance after: calls still
    /// waiting end as [`CallEnd::ShutDown`](crate::apps::instance::CallEnd::ShutDown).
    pub fn close_all(&self) {
        // Under the lock, so an instance is either admitted before (and closed here) or refused.
        let entries = self.lock();
        self.closing.store(true, Ordering::Release);
        for entry in entries.values() {
            for instance in &entry.instances {
                instance.close_for_shutdown();
            }
        }
    }

    /// Whether [`Registry::close_all`] ran: the sidecar is shutting down.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    fn publish(&self, entries: &BTreeMap<AppId, AppEntry>) {
        self.snapshot.store(Arc::new(Snapshot::of(entries)));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<AppId, AppEntry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
