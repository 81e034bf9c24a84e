//! What the hot path reads: each app as an immutable [`AppView`] and the [`Snapshot`] of them
//! all, rebuilt by the registry on each change and read without locking.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use super::AppEntry;
use crate::{
    apps::{instance::Instance, spec::AppSpec, stats::AppStats},
    cluster::directory::RemoteInstance,
    hook::Hook,
    ids::{AppId, InstanceId},
    post::PostQueue,
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

impl Snapshot {
    /// The view of `entries`: apps in dispatch order (priority, then app id), each hook's
    /// subscribers, and the index by id.
    pub(super) fn of(entries: &BTreeMap<AppId, AppEntry>) -> Snapshot {
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
        Snapshot {
            apps,
            by_hook,
            by_id,
        }
    }
}
