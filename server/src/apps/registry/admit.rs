//! Admission and departure of app instances: the checks a new instance must pass (same
//! registration as its live siblings, capacity, a unique instance id) and its removal from
//! rotation when its stream ends.

use std::{net::SocketAddr, sync::Arc, time::SystemTime};

use super::Registry;
use crate::{
    apps::{
        instance::{Instance, Outbound},
        spec::AppSpec,
    },
    ids::{AppId, InstanceId},
    post::{PostQueue, Recovery},
};

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

/// How many apps and instances the registry holds at most (`Config::capacity`; `Default` is a
/// blank, zeros).
#[derive(Clone, Copy, Debug, Default)]
pub struct Capacity {
    /// Distinct apps.
    pub max_apps: usize,
    /// Live instances per app.
    pub max_instances_per_app: usize,
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
}
