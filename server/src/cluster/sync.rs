//! The registry sync loop: this sidecar's heartbeat record written, everyone's read through a
//! [`Mirror`] of both buckets kept current by their watches, and the cluster view handed to the
//! [`Registry`] when it changed.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_nats::jetstream::kv::Operation;
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{
    Cluster, ClusterError,
    directory::{ClusterApp, ClusterView, Declaration, RemoteInstance},
    members::{ServedApp, ServedInstance, SidecarRecord, ms, now_ms},
    respond::Responder,
};
use crate::{apps::registry::Registry, ids::AppId};

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
