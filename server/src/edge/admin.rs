//! The operator-facing `Admin` service.

use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use roomhooks::v1::{
    AppInfo, DeadLetter, HookStats, InstanceInfo, ListAppsRequest, ListAppsResponse,
    ListDeadLettersRequest, ListDeadLettersResponse, ListSidecarsRequest, ListSidecarsResponse,
    OutcomeStatus, RemoveAppRequest, RemoveAppResponse, RetryDeadLettersRequest,
    RetryDeadLettersResponse, SetAppEnabledRequest, SetAppEnabledResponse, SidecarInfo,
    admin_server::Admin,
};
use tonic::{Request, Response, Status};

use crate::{
    apps::registry::{AppView, Registry},
    cluster::{ClusterError, Link, dead_letters, delivery, members::ServedInstance},
    hook::Hook,
    ids::{AppId, EventId},
};

/// The statistics of every hook the app was called for.
fn hook_stats(app: &AppView) -> Vec<HookStats> {
    Hook::ALL
        .into_iter()
        .filter_map(|hook| {
            let c = app.stats.hook(hook);
            c.is_used().then(|| HookStats {
                hook: hook.to_wire() as i32,
                calls: c.calls.load(Ordering::Relaxed),
                vetoes: c.status(OutcomeStatus::Prevented),
                timeouts: c.status(OutcomeStatus::Timeout),
                errors: c.status(OutcomeStatus::Error),
                unavailable: c.status(OutcomeStatus::Unavailable),
                rejected: c.status(OutcomeStatus::Rejected),
                p50_us: c.quantile_us(0.5),
                p99_us: c.quantile_us(0.99),
                fail_opens: c.fail_opens.load(Ordering::Relaxed),
                fail_closeds: c.fail_closeds.load(Ordering::Relaxed),
                deliveries: c.deliveries.load(Ordering::Relaxed),
                redeliveries: c.redeliveries.load(Ordering::Relaxed),
                acks: c.acks.load(Ordering::Relaxed),
                shadowed: c.status(OutcomeStatus::Shadowed),
                shadow_disagreements: c.shadow_disagreements.load(Ordering::Relaxed),
                skipped: c.skipped.load(Ordering::Relaxed),
            })
        })
        .collect()
}

fn parse_app_id(raw: &str) -> Result<AppId, Status> {
    AppId::parse(raw).map_err(|e| Status::invalid_argument(format!("app_id {e}")))
}

/// Cluster-mode failures, as the operator sees them.
fn cluster_status(err: ClusterError) -> Status {
    Status::unavailable(format!(
        "cluster mode: {err}; the change was not made everywhere, retry once NATS is reachable"
    ))
}

/// Cluster mode: per app, the post events its consumer holds (pending + unacknowledged) and its
/// dead letters, read from JetStream; apps JetStream did not answer for in time are left out
/// (their local counts, zero in cluster mode, stand).
async fn cluster_counts(link: &Link, apps: &[Arc<AppView>]) -> HashMap<AppId, (u64, u64)> {
    let reads = apps.iter().map(|app| async move {
        let app_id = app.spec.app_id.clone();
        let read = async {
            let queued = delivery::consumer_pending(&link.cluster, &app_id).await;
            let dead = dead_letters::count(&link.cluster, &app_id).await.ok();
            (queued, dead)
        };
        match tokio::time::timeout(Duration::from_secs(2), read).await {
            Ok((queued, dead)) => Some((app_id, (queued.unwrap_or(0), dead.unwrap_or(0)))),
            Err(_) => None,
        }
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// A Unix-ms time as a protobuf timestamp.
fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// An instance at another sidecar, as `ListApps` shows it (its load is that sidecar's to know).
fn remote_instance(sidecar_id: &str, i: &ServedInstance) -> InstanceInfo {
    InstanceInfo {
        instance_id: i.instance_id.clone(),
        version: i.version.clone(),
        peer_address: i.peer.clone(),
        connected_since: Some(timestamp(i.connected_at_ms)),
        sidecar_id: sidecar_id.to_owned(),
        ..InstanceInfo::default()
    }
}

/// Serves `roomhooks.v1.Admin`.
pub struct AdminService {
    registry: Arc<Registry>,
    /// Cluster mode: the cluster view, and changes that apply everywhere.
    link: Option<Link>,
}

impl AdminService {
    /// An admin service over `registry`; in cluster mode (`link`) over the whole cluster.
    pub fn new(registry: Arc<Registry>, link: Option<Link>) -> Self {
        Self { registry, link }
    }

    /// This sidecar's id in the cluster (empty on a single sidecar).
    fn here(&self) -> String {
        self.link
            .as_ref()
            .map(|l| l.cluster.sidecar_id().to_owned())
            .unwrap_or_default()
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn list_apps(
        &self,
        _request: Request<ListAppsRequest>,
    ) -> Result<Response<ListAppsResponse>, Status> {
        let snapshot = self.registry.snapshot();
        let here = self.here();
        // Cluster mode: each app's post events are counted in JetStream (best effort).
        let counts = match &self.link {
            Some(link) => cluster_counts(link, snapshot.apps()).await,
            None => HashMap::new(),
        };
        let apps = snapshot
            .apps()
            .iter()
            .map(|app| {
                let spec = &app.spec;
                let mut versions: Vec<String> = app
                    .instances
                    .iter()
                    .map(|i| i.version.clone())
                    .chain(app.remote.iter().map(|r| r.instance.version.clone()))
                    .collect();
                if versions.is_empty() {
                    versions.push(app.version.clone());
                }
                versions.sort();
                versions.dedup();
                AppInfo {
                    app_id: spec.app_id.to_string(),
                    versions,
                    interfaces: spec.interfaces.iter().map(|h| h.to_wire() as i32).collect(),
                    priority: spec.priority,
                    failure_policy: spec.failure_policy.to_wire() as i32,
                    timeout: prost_types::Duration::try_from(spec.timeout).ok(),
                    room_types: spec.room_types.iter().map(|t| t as i32).collect(),
                    instances: app
                        .instances
                        .iter()
                        .filter(|i| i.is_live())
                        .map(|i| InstanceInfo {
                            instance_id: i.id.to_string(),
                            version: i.version.clone(),
                            peer_address: i.peer.map(|p| p.to_string()).unwrap_or_default(),
                            connected_since: Some(prost_types::Timestamp::from(i.connected_at)),
                            calls_in_flight: i.in_flight(),
                            consecutive_timeouts: i.consecutive_timeouts(),
                            ejected_until: i.ejected_until().map(prost_types::Timestamp::from),
                            sidecar_id: here.clone(),
                        })
                        .chain(
                            app.remote
                                .iter()
                                .map(|r| remote_instance(&r.sidecar_id, &r.instance)),
                        )
                        .collect(),
                    queued_post_events: counts
                        .get(&spec.app_id)
                        .map_or(app.posts.len() as u64, |c| c.0),
                    enabled: app.enabled,
                    essential_hooks: spec.essential.iter().map(|h| h.to_wire() as i32).collect(),
                    stats: hook_stats(app),
                    dead_letters: counts
                        .get(&spec.app_id)
                        .map_or(app.posts.dead_count() as u64, |c| c.1),
                    mode: spec.rollout.mode.name().to_owned(),
                    r#match: spec
                        .rollout
                        .conditions
                        .sources()
                        .map(str::to_owned)
                        .collect(),
                }
            })
            .collect();
        Ok(Response::new(ListAppsResponse { apps }))
    }

    async fn remove_app(
        &self,
        request: Request<RemoveAppRequest>,
    ) -> Result<Response<RemoveAppResponse>, Status> {
        let app_id = parse_app_id(&request.into_inner().app_id)?;
        if let Some(link) = &self.link {
            // Every sidecar removes it when it sees the declaration go.
            link.cluster
                .undeclare(&app_id)
                .await
                .map_err(cluster_status)?;
        }
        let removed = self.registry.remove(&app_id);
        // Cluster mode: its consumer goes, once no loop here can make it again.
        let dropped_in_jetstream = match &self.link {
            Some(link) => link
                .delivery
                .forget(&app_id)
                .await
                .map_err(cluster_status)?,
            None => None,
        };
        let response = match removed {
            Some(removed) => {
                self.registry
                    .store()
                    .delete_app(&app_id, removed.released, removed.cursor)
                    .await;
                tracing::info!(%app_id, instances = removed.instances,
                    dropped_post_events = removed.post_events, "app removed by operator");
                RemoveAppResponse {
                    removed: true,
                    disconnected_instances: u32::try_from(removed.instances).unwrap_or(u32::MAX),
                    dropped_post_events: dropped_in_jetstream.unwrap_or(removed.post_events as u64),
                }
            }
            None => RemoveAppResponse::default(),
        };
        Ok(Response::new(response))
    }

    async fn set_app_enabled(
        &self,
        request: Request<SetAppEnabledRequest>,
    ) -> Result<Response<SetAppEnabledResponse>, Status> {
        let request = request.into_inner();
        let app_id = parse_app_id(&request.app_id)?;
        if let Some(link) = &self.link {
            // Every sidecar applies it when it sees the declaration change.
            link.cluster
                .set_enabled(&app_id, request.enabled)
                .await
                .map_err(cluster_status)?;
        }
        if !self.registry.set_enabled(&app_id, request.enabled) {
            return Err(Status::not_found(format!(
                "app {app_id:?} is not known; Admin.ListApps lists the known apps"
            )));
        }
        tracing::info!(%app_id, enabled = request.enabled, "app enabled state changed by operator");
        Ok(Response::new(SetAppEnabledResponse {
            app_id: app_id.to_string(),
            enabled: request.enabled,
        }))
    }

    async fn list_sidecars(
        &self,
        _request: Request<ListSidecarsRequest>,
    ) -> Result<Response<ListSidecarsResponse>, Status> {
        let Some(link) = &self.link else {
            // A single sidecar: itself alone, with the apps connected to it.
            let apps_served = self
                .registry
                .snapshot()
                .apps()
                .iter()
                .filter(|a| a.instances.iter().any(|i| i.is_live()))
                .map(|a| a.spec.app_id.to_string())
                .collect();
            return Ok(Response::new(ListSidecarsResponse {
                sidecars: vec![SidecarInfo {
                    apps_served,
                    this_sidecar: true,
                    last_seen: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
                    ..SidecarInfo::default()
                }],
            }));
        };
        let members = link.cluster.members().await.map_err(cluster_status)?;
        let here = link.cluster.sidecar_id();
        let sidecars = members
            .into_iter()
            .map(|m| SidecarInfo {
                this_sidecar: m.sidecar_id == here,
                sidecar_id: m.sidecar_id,
                listen_address: m.record.listen,
                started_at: Some(timestamp(m.record.started_at_ms)),
                last_seen: Some(timestamp(m.record.last_seen_ms)),
                apps_served: m.record.apps.into_iter().map(|a| a.app_id).collect(),
            })
            .collect();
        Ok(Response::new(ListSidecarsResponse { sidecars }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        let request = request.into_inner();
        let only = if request.app_id.is_empty() {
            None
        } else {
            Some(parse_app_id(&request.app_id)?)
        };
        let limit = if request.limit == 0 {
            100
        } else {
            request.limit as usize
        };
        let snapshot = self.registry.snapshot();
        if let Some(link) = &self.link {
            let mut dead_letters = Vec::new();
            for app in snapshot
                .apps()
                .iter()
                .filter(|app| only.as_ref().is_none_or(|id| &app.spec.app_id == id))
            {
                let app_id = &app.spec.app_id;
                let letters = dead_letters::list(&link.cluster, app_id, limit)
                    .await
                    .map_err(cluster_status)?;
                dead_letters.extend(letters.into_iter().map(|d| DeadLetter {
                    app_id: app_id.to_string(),
                    event_id: d.event_id,
                    hook: d.hook.map_or(0, |h| h.to_wire() as i32),
                    attempts: d.attempts,
                    reason: d.reason,
                    dead_at: Some(timestamp(d.dead_at_ms)),
                }));
            }
            return Ok(Response::new(ListDeadLettersResponse { dead_letters }));
        }
        let dead_letters = snapshot
            .apps()
            .iter()
            .filter(|app| only.as_ref().is_none_or(|id| &app.spec.app_id == id))
            .flat_map(|app| {
                app.posts
                    .dead_letters(limit)
                    .into_iter()
                    .map(|d| DeadLetter {
                        app_id: app.spec.app_id.to_string(),
                        event_id: d.event.id.to_string(),
                        hook: d.event.hook.to_wire() as i32,
                        attempts: d.attempts,
                        reason: d.reason,
                        dead_at: Some(prost_types::Timestamp::from(d.dead_at)),
                    })
            })
            .collect();
        Ok(Response::new(ListDeadLettersResponse { dead_letters }))
    }

    async fn retry_dead_letters(
        &self,
        request: Request<RetryDeadLettersRequest>,
    ) -> Result<Response<RetryDeadLettersResponse>, Status> {
        let request = request.into_inner();
        let app_id = parse_app_id(&request.app_id)?;
        let snapshot = self.registry.snapshot();
        let Some(app) = snapshot.app(&app_id) else {
            return Err(Status::not_found(format!("app {app_id:?} is not known")));
        };
        let ids: Vec<EventId> = request
            .event_ids
            .iter()
            .map(|id| EventId::from_ack(id))
            .collect();
        let retried = match &self.link {
            Some(link) => dead_letters::retry(&link.cluster, &app_id, &ids)
                .await
                .map_err(cluster_status)?,
            None => app.posts.retry_dead(&ids).await,
        };
        tracing::info!(%app_id, retried, "dead letters queued again by operator");
        Ok(Response::new(RetryDeadLettersResponse {
            retried: u32::try_from(retried).unwrap_or(u32::MAX),
        }))
    }
}
