//! The operator-facing `Admin` service.

use std::sync::{Arc, atomic::Ordering};

use roomhooks::v1::{
    AppInfo, DeadLetter, HookStats, InstanceInfo, ListAppsRequest, ListAppsResponse,
    ListDeadLettersRequest, ListDeadLettersResponse, OutcomeStatus, RemoveAppRequest,
    RemoveAppResponse, RetryDeadLettersRequest, RetryDeadLettersResponse, SetAppEnabledRequest,
    SetAppEnabledResponse, admin_server::Admin,
};
use tonic::{Request, Response, Status};

use crate::{
    apps::registry::{AppView, Registry},
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

/// Serves `roomhooks.v1.Admin`.
pub struct AdminService {
    registry: Arc<Registry>,
}

impl AdminService {
    /// An admin service over `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn list_apps(
        &self,
        _request: Request<ListAppsRequest>,
    ) -> Result<Response<ListAppsResponse>, Status> {
        let snapshot = self.registry.snapshot();
        let apps = snapshot
            .apps()
            .iter()
            .map(|app| {
                let spec = &app.spec;
                let mut versions: Vec<String> =
                    app.instances.iter().map(|i| i.version.clone()).collect();
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
                        })
                        .collect(),
                    queued_post_events: app.posts.len() as u64,
                    enabled: app.enabled,
                    essential_hooks: spec.essential.iter().map(|h| h.to_wire() as i32).collect(),
                    stats: hook_stats(app),
                    dead_letters: app.posts.dead_count() as u64,
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
        let response = match self.registry.remove(&app_id) {
            Some(removed) => {
                if let Some(store) = self.registry.store() {
                    store
                        .delete_app(&app_id, removed.released, removed.cursor)
                        .await;
                }
                tracing::info!(%app_id, instances = removed.instances,
                    dropped_post_events = removed.post_events, "app removed by operator");
                RemoveAppResponse {
                    removed: true,
                    disconnected_instances: removed.instances as u32,
                    dropped_post_events: removed.post_events as u64,
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
        let retried = app.posts.retry_dead(&ids).await;
        tracing::info!(%app_id, retried, "dead letters queued again by operator");
        Ok(Response::new(RetryDeadLettersResponse {
            retried: u32::try_from(retried).unwrap_or(u32::MAX),
        }))
    }
}
