//! One registry for the cluster. Each app's declaration (what it registered, whether an
//! operator enabled it) is a key of the apps bucket; which sidecars hold its live instances is
//! in those sidecars' heartbeat records ([`super::members`]). A sync loop keeps this sidecar's
//! [`Registry`] in step: it writes this sidecar's record, reads everyone's, and hands the
//! cluster view to the registry, so a FAIL app connected elsewhere (or nowhere) protects calls
//! here, and `SetAppEnabled` / `RemoveApp` at any sidecar apply at every one.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_nats::jetstream::kv::Operation;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{
    Cluster, ClusterError,
    members::{ServedApp, ServedInstance, SidecarRecord, ms, now_ms},
    respond::Responder,
};
use crate::{
    apps::{
        registry::Registry,
        spec::{AppSpec, FailurePolicy},
    },
    hook::{Hook, HookSet, RoomTypeSet},
    ids::AppId,
};

/// An app's declaration, as the apps bucket holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declaration {
    /// The hooks it answers (names, as in `Hook::name`).
    pub interfaces: Vec<String>,
    /// Its priority.
    pub priority: i32,
    /// `fail` or `ignore`.
    pub failure_policy: String,
    /// Its per-call timeout in milliseconds.
    pub timeout_ms: u64,
    /// The room types it wants (wire values; empty: all).
    pub room_types: Vec<i32>,
    /// The version its newest instance registered.
    pub version: String,
    /// False when an operator disabled it (anywhere in the cluster).
    pub enabled: bool,
}

impl Declaration {
    /// The declaration of `spec`.
    pub fn of(spec: &AppSpec, version: &str, enabled: bool) -> Self {
        Self {
            interfaces: spec
                .interfaces
                .iter()
                .map(|h| h.name().to_owned())
                .collect(),
            priority: spec.priority,
            failure_policy: match spec.failure_policy {
                FailurePolicy::Fail => "fail",
                FailurePolicy::Ignore => "ignore",
            }
            .to_owned(),
            timeout_ms: u64::try_from(spec.timeout.as_millis()).unwrap_or(u64::MAX),
            room_types: spec.room_types.iter().map(|t| t as i32).collect(),
            version: version.to_owned(),
            enabled,
        }
    }

    /// The spec it declares, for the app `app_id`.
    pub fn spec(&self, app_id: AppId) -> AppSpec {
        AppSpec {
            app_id,
            interfaces: HookSet::of(
                self.interfaces
                    .iter()
                    .filter_map(|h| h.parse::<Hook>().ok()),
            ),
            priority: self.priority,
            failure_policy: if self.failure_policy == "fail" {
                FailurePolicy::Fail
            } else {
                FailurePolicy::Ignore
            },
            timeout: Duration::from_millis(self.timeout_ms),
            room_types: RoomTypeSet::from_wire(&self.room_types),
            essential: HookSet::default(),
            unavailable_message: None,
            rollout: Default::default(),
        }
    }
}

/// A live instance of an app at another sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteInstance {
    /// The sidecar it is connected to.
    pub sidecar_id: Arc<str>,
    /// What that sidecar says about it.
    pub instance: ServedInstance,
}

/// What the cluster knows of one app, besides this sidecar's own instances.
#[derive(Clone, Debug, Default)]
pub struct ClusterApp {
    /// Its declaration, if the apps bucket holds one.
    pub declaration: Option<Declaration>,
    /// Its live instances at other sidecars.
    pub remote: Vec<RemoteInstance>,
}

/// The cluster's apps as one sync pass read them.
pub type ClusterView = BTreeMap<AppId, ClusterApp>;

impl Cluster {
    /// Declares an app (on each registration): its spec and version. The enabled flag an
    /// operator set stays as it is; a first declaration takes `enabled` (this sidecar's
    /// `[apps.<id>] enabled`).
    pub async fn declare(
        &self,
        spec: &AppSpec,
        version: &str,
        enabled: bool,
    ) -> Result<(), ClusterError> {
        let bucket = &self.buckets().apps;
        let key = spec.app_id.as_str();
        let enabled = match bucket.get(key).await {
            Ok(Some(value)) => serde_json::from_slice::<Declaration>(&value)
                .map(|d| d.enabled)
                .unwrap_or(enabled),
            Ok(None) => enabled,
            Err(e) => return Err(ClusterError::Nats(format!("reading app {key}: {e}"))),
        };
        self.put_declaration(key, &Declaration::of(spec, version, enabled))
            .await
    }

    /// Sets an app's enabled flag for the whole cluster; false when no declaration exists.
    pub async fn set_enabled(&self, app_id: &AppId, enabled: bool) -> Result<bool, ClusterError> {
        let bucket = &self.buckets().apps;
        let key = app_id.as_str();
        let Some(value) = bucket
            .get(key)
            .await
            .map_err(|e| ClusterError::Nats(format!("reading app {key}: {e}")))?
        else {
            return Ok(false);
        };
        let mut declaration: Declaration = serde_json::from_slice(&value)
            .map_err(|e| ClusterError::Nats(format!("app {key}'s declaration: {e}")))?;
        declaration.enabled = enabled;
        self.put_declaration(key, &declaration).await?;
        Ok(true)
    }

    /// Forgets an app in the whole cluster: every sidecar removes it when it sees the delete.
    pub async fn undeclare(&self, app_id: &AppId) -> Result<(), ClusterError> {
        self.buckets()
            .apps
            .delete(app_id.as_str())
            .await
            .map_err(|e| ClusterError::Nats(format!("removing app {app_id}: {e}")))
    }

    async fn put_declaration(
        &self,
        key: &str,
        declaration: &Declaration,
    ) -> Result<(), ClusterError> {
        let value = serde_json::to_vec(declaration)
            .map_err(|e| ClusterError::Nats(format!("encoding app {key}: {e}")))?;
        self.buckets()
            .apps
            .put(key, Bytes::from(value))
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::Nats(format!("declaring app {key}: {e}")))
    }

    /// Every declaration in the apps bucket.
    async fn declarations(&self) -> Result<BTreeMap<AppId, Declaration>, ClusterError> {
        let bucket = &self.buckets().apps;
        let mut keys = bucket
            .keys()
            .await
            .map_err(|e| ClusterError::Nats(format!("listing apps: {e}")))?;
        let mut out = BTreeMap::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| ClusterError::Nats(format!("listing apps: {e}")))?;
            let (Ok(app_id), Ok(Some(value))) = (AppId::parse(&key), bucket.get(&key).await) else {
                continue;
            };
            if let Ok(declaration) = serde_json::from_slice(&value) {
                out.insert(app_id, declaration);
            }
        }
        Ok(out)
    }
}

/// This sidecar's copy of both buckets: read whole at start and once per member TTL, kept
/// current in between by the changes the watches see. So a heartbeat elsewhere costs one
/// watched entry here, not a read of every key (which would grow as N² with N sidecars).
#[derive(Debug, Default)]
struct Mirror {
    declarations: BTreeMap<AppId, Declaration>,
    /// Every other sidecar's last record, by id.
    members: BTreeMap<String, SidecarRecord>,
    /// Whether a whole read has succeeded yet (before one, the copy is not the cluster's view).
    read: bool,
}

/// Whether a change seen by a watch alters the cluster view (a heartbeat that only moves
/// `last_seen_ms` does not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Changed,
    Same,
}

impl Mirror {
    /// Reads both buckets whole.
    async fn refresh(&mut self, cluster: &Cluster) -> Result<(), ClusterError> {
        let declarations = cluster.declarations().await?;
        let members = cluster
            .members()
            .await?
            .into_iter()
            .filter(|m| m.sidecar_id != cluster.sidecar_id())
            .map(|m| (m.sidecar_id, m.record))
            .collect();
        self.declarations = declarations;
        self.members = members;
        self.read = true;
        Ok(())
    }

    /// Applies a watched change of another sidecar's record.
    fn apply_member(&mut self, entry: &async_nats::jetstream::kv::Entry) -> Seen {
        if matches!(entry.operation, Operation::Delete | Operation::Purge) {
            return seen(self.members.remove(&entry.key).is_some());
        }
        let Ok(record) = serde_json::from_slice::<SidecarRecord>(&entry.value) else {
            tracing::warn!(sidecar_id = %entry.key, "skipping an unreadable sidecar record");
            return Seen::Same;
        };
        match self.members.insert(entry.key.clone(), record) {
            Some(before) => seen(before.apps != self.members[&entry.key].apps),
            None => Seen::Changed,
        }
    }

    /// Applies a watched change of an app's declaration.
    fn apply_declaration(&mut self, app_id: AppId, entry: &async_nats::jetstream::kv::Entry) {
        if matches!(entry.operation, Operation::Delete | Operation::Purge) {
            self.declarations.remove(&app_id);
        } else if let Ok(declaration) = serde_json::from_slice(&entry.value) {
            self.declarations.insert(app_id, declaration);
        }
    }

    /// The cluster view: every declaration, and the instances of every other sidecar seen
    /// within `ttl` (older records are dropped: their sidecars are gone).
    fn view(&mut self, ttl: Duration) -> ClusterView {
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        self.members
            .retain(|_, record| now.saturating_sub(record.last_seen_ms) <= ttl);
        let mut view: ClusterView = self
            .declarations
            .iter()
            .map(|(app_id, declaration)| {
                (
                    app_id.clone(),
                    ClusterApp {
                        declaration: Some(declaration.clone()),
                        remote: Vec::new(),
                    },
                )
            })
            .collect();
        for (sidecar_id, record) in &self.members {
            let sidecar_id: Arc<str> = sidecar_id.as_str().into();
            for served in &record.apps {
                let Ok(app_id) = AppId::parse(&served.app_id) else {
                    continue;
                };
                let app = view.entry(app_id).or_default();
                app.remote
                    .extend(served.instances.iter().map(|instance| RemoteInstance {
                        sidecar_id: Arc::clone(&sidecar_id),
                        instance: instance.clone(),
                    }));
            }
        }
        view
    }
}

fn seen(changed: bool) -> Seen {
    if changed { Seen::Changed } else { Seen::Same }
}

/// The apps with live instances here, as this sidecar's heartbeat record lists them.
fn served(registry: &Registry) -> Vec<ServedApp> {
    registry
        .snapshot()
        .apps()
        .iter()
        .filter_map(|app| {
            let instances: Vec<ServedInstance> = app
                .instances
                .iter()
                .filter(|i| i.is_live())
                .map(|i| ServedInstance {
                    instance_id: i.id.as_str().to_owned(),
                    version: i.version.clone(),
                    peer: i.peer.map(|p| p.to_string()).unwrap_or_default(),
                    connected_at_ms: ms(i.connected_at),
                })
                .collect();
            (!instances.is_empty()).then(|| ServedApp {
                app_id: app.spec.app_id.as_str().to_owned(),
                instances,
            })
        })
        .collect()
}

/// Keeps this sidecar and the cluster in step until `stop`: heartbeats (with the instances
/// served here) every quarter of the member TTL and at once when local instances change;
/// applies each change another sidecar's record or an app's declaration sees, re-reading both
/// buckets whole once per member TTL (and at every heartbeat while a watch is down); and answers
/// forwarded calls for the apps with instances here.
pub async fn sync(
    cluster: Cluster,
    registry: Arc<Registry>,
    responder: Responder,
    changed: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(cluster.settings().heartbeat_every());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sidecars = watch(&cluster.buckets().sidecars).await;
    let mut apps = watch(&cluster.buckets().apps).await;
    let ttl = cluster.settings().member_ttl;
    let mut mirror = Mirror::default();
    // Beats since the last whole read; a whole read is due at the first one.
    let mut beats_since_refresh = REFRESH_EVERY_BEATS;
    loop {
        let mut beat = false;
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => beat = true,
            () = changed.notified() => beat = true,
            Some(entry) = next(&mut sidecars) => {
                if entry.key == cluster.sidecar_id() || mirror.apply_member(&entry) == Seen::Same {
                    continue;
                }
            }
            Some(entry) = next(&mut apps) => {
                let Ok(app_id) = AppId::parse(&entry.key) else { continue };
                mirror.apply_declaration(app_id.clone(), &entry);
                if matches!(entry.operation, Operation::Delete | Operation::Purge)
                    && registry.remove(&app_id).is_some()
                {
                    tracing::info!(%app_id, "an operator removed the app at another sidecar (Admin.RemoveApp); removed here too");
                }
            }
        }
        if beat {
            responder.serve(&registry);
            let record = cluster.record(served(&registry));
            if let Err(e) = cluster.put_record(&record).await {
                tracing::warn!("cluster heartbeat failed: {e}; retrying");
            }
            beats_since_refresh += 1;
            let watching = sidecars.is_some() && apps.is_some();
            if !watching || beats_since_refresh >= REFRESH_EVERY_BEATS {
                match mirror.refresh(&cluster).await {
                    Ok(()) => beats_since_refresh = 0,
                    Err(e) => tracing::warn!("cannot read the cluster's apps: {e}; retrying"),
                }
            }
        }
        if mirror.read {
            registry.sync_cluster(mirror.view(ttl));
        }
    }
    responder.stop_all();
    cluster.leave().await;
}

/// Heartbeats between two whole reads of the buckets (one member TTL).
const REFRESH_EVERY_BEATS: u32 = 4;

type Watch = Option<async_nats::jetstream::kv::Watch>;

/// A watch of every key of `bucket` from now on (`None` when NATS refused: the ticks still sync).
async fn watch(bucket: &async_nats::jetstream::kv::Store) -> Watch {
    match bucket.watch_all().await {
        Ok(watch) => Some(watch),
        Err(e) => {
            tracing::warn!(
                "cannot watch the cluster's registry ({e}); changes elsewhere are seen at the next heartbeat"
            );
            None
        }
    }
}

/// The next change a watch saw; pends for ever once the watch ended.
async fn next(watch: &mut Watch) -> Option<async_nats::jetstream::kv::Entry> {
    match watch {
        Some(w) => match w.next().await {
            Some(Ok(entry)) => Some(entry),
            Some(Err(e)) => {
                tracing::warn!("the cluster registry's watch failed: {e}");
                *watch = None;
                None
            }
            None => {
                *watch = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}
