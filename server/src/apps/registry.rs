//! The apps the sidecar knows and their live instances. Writers (register, disconnect, remove)
//! take a lock and publish a fresh [`Snapshot`]; the hot path reads the snapshot without locking,
//! with each hook's subscribers already in dispatch order.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::{
    apps::instance::{Instance, Outbound},
    apps::settings::AppSettings,
    apps::spec::{AppSpec, FailurePolicy, TimeoutLimits},
    apps::stats::AppStats,
    cluster::directory::{ClusterView, RemoteInstance},
    dispatch::alarm::Alarm,
    hook::Hook,
    hook::RoomTypeSet,
    ids::{AppId, InstanceId},
    lifecycle::tasks::Tasks,
    post::sequence::Sequence,
    post::{PostConfig, PostQueue, Recovery},
    store::{Recovered, RecoveredApp, Store},
};

/// An app as the hot path sees it: its spec, live instances and post queue.
pub struct AppView {
    /// What the app registered.
    pub spec: Arc<AppSpec>,
    /// Its live instances.
    pub instances: Vec<Arc<Instance>>,
    /// Its post-event queue.
    pub posts: Arc<PostQueue>,
    /// The version of its newest instance (kept after the last one leaves).
    pub version: String,
    /// False when an operator disabled the app: it is not called, its post events wait.
    pub enabled: bool,
    /// Its live statistics.
    pub stats: Arc<AppStats>,
    /// In cluster mode, its live instances at other sidecars.
    pub remote: Arc<[RemoteInstance]>,
}

impl AppView {
    /// The live instance with the fewest calls in flight, skipping `tried` and instances at
    /// `max_in_flight`; ejected instances only when no other can take the call.
    pub fn pick(&self, tried: &[InstanceId], max_in_flight: u32) -> Option<&Arc<Instance>> {
        self.instances
            .iter()
            .filter(|i| i.is_live() && !tried.contains(&i.id) && i.in_flight() < max_in_flight)
            .min_by_key(|i| (i.is_ejected(), i.in_flight()))
    }
}

/// An immutable view of every known app, rebuilt on each change.
#[derive(Default)]
pub struct Snapshot {
    apps: Vec<Arc<AppView>>,
    by_hook: [Vec<Arc<AppView>>; Hook::COUNT],
    /// Each app's index in `apps`, by id.
    by_id: HashMap<AppId, usize, foldhash::fast::RandomState>,
}

impl Snapshot {
    /// Every known app, in dispatch order.
    pub fn apps(&self) -> &[Arc<AppView>] {
        &self.apps
    }

    /// The app with this id, if known.
    pub fn app(&self, app_id: &AppId) -> Option<&Arc<AppView>> {
        self.apps.get(*self.by_id.get(app_id)?)
    }

    /// The apps registered for `hook`, in dispatch order (room types not yet filtered).
    pub fn subscribers(&self, hook: Hook) -> &[Arc<AppView>] {
        &self.by_hook[hook.index()]
    }
}

/// Why an instance was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// Its registration differs from the app's live instances.
    #[error(
        "app {app_id:?} has live instances registered differently ({diff}); every instance of an \
         app must register the same interfaces, priority, failure policy, timeout and room types"
    )]
    Mismatch {
        /// The app.
        app_id: AppId,
        /// What differs (live vs. new).
        diff: String,
    },
    /// The sidecar already knows --max-apps apps.
    #[error(
        "the sidecar already knows {max} apps (--max-apps); remove unused ones with Admin.RemoveApp"
    )]
    TooManyApps {
        /// The limit.
        max: usize,
    },
    /// The app already has --max-instances-per-app live instances.
    #[error("app {app_id:?} already has {max} live instances (--max-instances-per-app)")]
    TooManyInstances {
        /// The app.
        app_id: AppId,
        /// The limit.
        max: usize,
    },
    /// Another live instance of the app uses that instance id.
    #[error(
        "instance {instance_id:?} of app {app_id:?} is already connected; use a unique instance_id \
         or leave it empty for the sidecar to assign one"
    )]
    DuplicateInstance {
        /// The app.
        app_id: AppId,
        /// The taken id.
        instance_id: InstanceId,
    },
    /// The sidecar is shutting down.
    #[error(
        "the roomhooks sidecar is shutting down and admits no new app instances; reconnect with \
         backoff (to its replacement)"
    )]
    ShuttingDown,
}

impl From<AdmitError> for Status {
    fn from(err: AdmitError) -> Self {
        match err {
            AdmitError::TooManyApps { .. } | AdmitError::TooManyInstances { .. } => {
                Status::resource_exhausted(err.to_string())
            }
            AdmitError::Mismatch { .. } | AdmitError::DuplicateInstance { .. } => {
                Status::failed_precondition(err.to_string())
            }
            AdmitError::ShuttingDown => Status::unavailable(err.to_string()),
        }
    }
}

/// How many apps and instances the registry holds at most (`Config::capacity`; `Default` is a
/// blank, zeros).
#[derive(Clone, Copy, Debug, Default)]
pub struct Capacity {
    /// Distinct apps.
    pub max_apps: usize,
    /// Live instances per app.
    pub max_instances_per_app: usize,
}

/// What a removal took with it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Live instances disconnected.
    pub instances: usize,
    /// Queued post events dropped.
    pub post_events: usize,
    /// Shared post events the app was the last to hold (to delete from the store).
    pub released: Vec<u64>,
    /// The app's cursor from now on: no stored event below it is the app's any more.
    pub cursor: u64,
}

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
    store: Option<Store>,
    sequence: Arc<Sequence>,
    settings: BTreeMap<AppId, AppSettings>,
    entries: Mutex<BTreeMap<AppId, AppEntry>>,
    snapshot: ArcSwap<Snapshot>,
    alarm: Alarm,
    tasks: Tasks,
    /// Set when the sidecar ends every app stream for a shutdown: no instance is admitted after.
    closing: AtomicBool,
}

/// The fields of a new instance besides its spec.
pub struct NewInstance {
    /// Its id (sent or assigned).
    pub id: InstanceId,
    /// Its version.
    pub version: String,
    /// Its peer address.
    pub peer: Option<SocketAddr>,
    /// Its outbound stream.
    pub outbound: Outbound,
}

impl Registry {
    /// A registry whose background work (post delivery) is owned by `tasks`. Apps with essential hooks in
    /// `settings` are known from the start, so those hooks are prevented until the app connects.
    /// Apps the store remembers come back with their pending events and dead letters.
    pub fn new(
        capacity: Capacity,
        post_config: PostConfig,
        store: Option<Store>,
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
            for RecoveredApp {
                mut spec,
                version,
                last_seen,
            } in recovered.apps
            {
                if let Some(settings) = registry.settings.get(&spec.app_id) {
                    spec.essential = settings.essential();
                    spec.unavailable_message = settings.unavailable_message();
                    spec.rollout = settings.rollout();
                    spec.timeout = spec.timeout.min(settings.max_timeout(limits.max));
                }
                let app_id = spec.app_id.clone();
                let mut entry = registry.new_entry(spec, Vec::new(), version, &mut recovery);
                entry.idle_since = Some(last_seen.unwrap_or_else(SystemTime::now));
                entries.insert(app_id, entry);
            }
            for (app_id, settings) in &registry.settings {
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
                let entry = registry.new_entry(spec, Vec::new(), String::new(), &mut recovery);
                entries.insert(app_id.clone(), entry);
            }
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

    /// The operator's settings for an app, if any.
    pub fn settings(&self, app_id: &AppId) -> Option<&AppSettings> {
        self.settings.get(app_id)
    }

    /// The sequence post events are numbered from.
    pub fn sequence(&self) -> &Sequence {
        &self.sequence
    }

    /// The post-event store, when events are durable.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
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

    /// Takes in the cluster's view of the apps: the instances other sidecars hold, the enabled
    /// flag operators set anywhere, and apps declared elsewhere that this sidecar has not seen
    /// (known from now on, so a FAIL app connected only elsewhere protects calls here). An app
    /// with no live instance here takes the declared spec.
    pub fn sync_cluster(&self, view: ClusterView) {
        let mut entries = self.lock();
        let mut changed = false;
        let mut fresh = Vec::new();
        for (app_id, app) in view {
            let remote: Arc<[RemoteInstance]> = app.remote.into();
            match entries.get_mut(&app_id) {
                Some(entry) => {
                    if entry.remote != remote {
                        entry.remote = remote;
                        changed = true;
                    }
                    if let Some(declaration) = &app.declaration {
                        if entry.enabled != declaration.enabled {
                            entry.enabled = declaration.enabled;
                            entry.posts.set_instances(entry.post_targets());
                            changed = true;
                        }
                        if !entry.instances.iter().any(|i| i.is_live()) {
                            let spec = self.with_settings(declaration.spec(app_id.clone()));
                            if spec.differences(&entry.spec).is_some() {
                                entry.spec = Arc::new(spec);
                                entry.version = declaration.version.clone();
                                changed = true;
                            }
                        }
                    }
                }
                None => {
                    let Some(declaration) = app.declaration else {
                        continue;
                    };
                    if entries.len() >= self.capacity.max_apps {
                        continue;
                    }
                    let spec = self.with_settings(declaration.spec(app_id.clone()));
                    let mut entry = self.new_entry(
                        spec,
                        Vec::new(),
                        declaration.version.clone(),
                        &mut Recovery::default(),
                    );
                    entry.enabled = declaration.enabled;
                    entry.remote = remote;
                    entry.posts.set_instances(entry.post_targets());
                    fresh.push(Arc::clone(&entry.posts));
                    entries.insert(app_id, entry);
                    changed = true;
                }
            }
        }
        if changed {
            self.publish(&entries);
        }
        drop(entries);
        // Delivery starts once the lock is released: no task is spawned under it.
        for queue in fresh {
            queue.start(&self.tasks);
        }
    }

    /// `spec` with the operator's essential hooks and message for its app.
    fn with_settings(&self, mut spec: AppSpec) -> AppSpec {
        if let Some(settings) = self.settings.get(&spec.app_id) {
            spec.essential = settings.essential();
            spec.unavailable_message = settings.unavailable_message();
            spec.rollout = settings.rollout();
        }
        spec
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

    /// Adds an instance. A known app with no live instance takes the new spec (an upgrade); with
    /// live instances the spec must match theirs.
    /// Returns the instance and the app's post queue (for its acks).
    pub fn admit(
        &self,
        spec: AppSpec,
        new: NewInstance,
    ) -> Result<(Arc<Instance>, Arc<PostQueue>), AdmitError> {
        let mut entries = self.lock();
        if self.is_closing() {
            return Err(AdmitError::ShuttingDown);
        }
        let mut fresh = None;
        let app_id = spec.app_id.clone();
        let instance = Arc::new(Instance::new(
            app_id.clone(),
            new.id,
            new.version,
            new.peer,
            new.outbound,
        ));
        let posts = match entries.get_mut(&app_id) {
            Some(entry) => {
                entry.instances.retain(|i| i.is_live());
                // In cluster mode, instances at other sidecars count as live instances too.
                if !entry.instances.is_empty() || !entry.remote.is_empty() {
                    if let Some(diff) = spec.differences(&entry.spec) {
                        return Err(AdmitError::Mismatch { app_id, diff });
                    }
                    if entry.instances.len() >= self.capacity.max_instances_per_app {
                        return Err(AdmitError::TooManyInstances {
                            app_id,
                            max: self.capacity.max_instances_per_app,
                        });
                    }
                    if entry.instances.iter().any(|i| i.id == instance.id) {
                        return Err(AdmitError::DuplicateInstance {
                            app_id,
                            instance_id: instance.id.clone(),
                        });
                    }
                } else {
                    entry.spec = Arc::new(spec);
                }
                entry.instances.push(Arc::clone(&instance));
                entry.idle_since = None;
                entry.version = instance.version.clone();
                entry.posts.set_instances(entry.post_targets());
                Arc::clone(&entry.posts)
            }
            None => {
                if entries.len() >= self.capacity.max_apps {
                    return Err(AdmitError::TooManyApps {
                        max: self.capacity.max_apps,
                    });
                }
                let entry = self.new_entry(
                    spec,
                    vec![Arc::clone(&instance)],
                    instance.version.clone(),
                    &mut Recovery::default(),
                );
                let posts = Arc::clone(&entry.posts);
                entries.insert(app_id, entry);
                fresh = Some(Arc::clone(&posts));
                posts
            }
        };
        self.publish(&entries);
        drop(entries);
        // A new app's delivery starts once the lock is released: no task is spawned under it.
        if let Some(queue) = fresh {
            queue.start(&self.tasks);
        }
        Ok((instance, posts))
    }

    /// Takes a closed or closing instance out of rotation. The app stays known; when this was
    /// its last instance, returns what it registered (for the store to note when it was seen).
    pub fn depart(&self, instance: &Arc<Instance>) -> Option<(Arc<AppSpec>, String)> {
        instance.close(None);
        let mut entries = self.lock();
        let entry = entries.get_mut(&instance.app_id)?;
        let before = entry.instances.len();
        entry.instances.retain(|i| !Arc::ptr_eq(i, instance));
        if entry.instances.len() == before {
            return None;
        }
        entry.posts.set_instances(entry.post_targets());
        let last = entry.instances.is_empty().then(|| {
            entry.idle_since = Some(SystemTime::now());
            (Arc::clone(&entry.spec), entry.version.clone())
        });
        self.publish(&entries);
        last
    }

    /// Forgets the apps that have had no instance, no queued post event and no dead letter for
    /// `after` by `now` — except apps the config file declares (FAIL and essential ones among
    /// them), which keep protecting. Returns each forgotten app with what its removal took.
    pub fn forget_idle(&self, now: SystemTime, after: Duration) -> Vec<(AppId, Removed)> {
        let idle: Vec<AppId> = self
            .lock()
            .iter()
            .filter(|(app_id, entry)| {
                // The operator declared it (FAIL and essential apps among them): it stays.
                let protected = self.settings.contains_key(*app_id);
                let quiet = entry.instances.iter().all(|i| !i.is_live())
                    && entry.remote.is_empty()
                    && entry.posts.is_empty()
                    && entry.posts.dead_count() == 0;
                let long_enough = entry
                    .idle_since
                    .is_some_and(|since| now.duration_since(since).unwrap_or_default() >= after);
                !protected && quiet && long_enough
            })
            .map(|(app_id, _)| app_id.clone())
            .collect();
        idle.into_iter()
            .filter_map(|app_id| self.remove(&app_id).map(|removed| (app_id, removed)))
            .collect()
    }

    /// Forgets an app: disconnects its instances and drops its queue.
    pub fn remove(&self, app_id: &AppId) -> Option<Removed> {
        let mut entries = self.lock();
        let entry = entries.remove(app_id)?;
        self.publish(&entries);
        drop(entries);
        let mut removed = Removed::default();
        for instance in &entry.instances {
            if instance.is_live() {
                removed.instances += 1;
            }
            instance.close(Some(Status::not_found(format!(
                "app {app_id:?} was removed by an operator (Admin.RemoveApp); reconnect to \
                 register it again"
            ))));
        }
        {
            // Under the sequence lock no batch is being queued: every number below the next one
            // was either taken by this queue (and is released here) or is not the app's.
            let sequence = self.sequence.lock();
            (removed.post_events, removed.released) = entry.posts.stop();
            removed.cursor = sequence.peek();
        }
        Some(removed)
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
        let mut apps: Vec<Arc<AppView>> = entries
            .values()
            .map(|e| {
                Arc::new(AppView {
                    spec: Arc::clone(&e.spec),
                    instances: e.instances.clone(),
                    posts: Arc::clone(&e.posts),
                    version: e.version.clone(),
                    enabled: e.enabled,
                    stats: Arc::clone(&e.stats),
                    remote: Arc::clone(&e.remote),
                })
            })
            .collect();
        // BTreeMap order is app_id order; a stable sort by priority keeps it as the tie-break.
        apps.sort_by_key(|a| a.spec.priority);
        let by_hook = Hook::ALL.map(|hook| {
            apps.iter()
                .filter(|a| a.spec.interfaces.contains(hook))
                .cloned()
                .collect()
        });
        let by_id = apps
            .iter()
            .enumerate()
            .map(|(i, a)| (a.spec.app_id.clone(), i))
            .collect();
        self.snapshot.store(Arc::new(Snapshot {
            apps,
            by_hook,
            by_id,
        }));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<AppId, AppEntry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
