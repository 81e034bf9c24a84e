//! Cluster mode: the registry takes in the cluster's view of the apps (instances at other
//! sidecars, enabled flags, apps declared elsewhere).

use std::sync::Arc;

use super::Registry;
use crate::{
    apps::spec::AppSpec,
    cluster::directory::{ClusterView, RemoteInstance},
    post::Recovery,
};

impl Registry {
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
}
