//! The stages of start-up that `Sidecar::start` lists: bind its listeners (naming the flag of a
//! port that clashes), join the cluster, open the store off the async runtime, build the
//! registry, serve metrics and gRPC, say what an operator should know (open mode, apps
//! remembered), and start what runs beside the server (the call alarm, forgetting idle apps).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Router, TcpIncoming};

use super::SidecarError;
use crate::{
    apps::{registry::Registry, spec::FailurePolicy},
    cluster::{
        self, Cluster, ClusterSettings, Link, delivery::Delivery, forward::Forwarder,
        journal::Journal, respond::Responder,
    },
    config::Config,
    dispatch::call::CallLimits,
    edge::requests::RequestCounters,
    ids::AppId,
    lifecycle::{drain::Drain, tasks::Tasks},
    ops::metrics::{self, ClusterPosts, Sources},
    store::{Recovered, Store, StoreWriter},
};

// === the start-up stages ===

/// Binds the gRPC address; returns the listener and the address actually bound.
pub(super) async fn bind_listen(
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), SidecarError> {
    let listener = bind(addr, "--listen").await?;
    let local_addr = listener.local_addr().map_err(|source| SidecarError::Bind {
        addr,
        flag: "--listen",
        source,
    })?;
    Ok((listener, local_addr))
}

/// Connects to NATS and claims this sidecar's id, when cluster mode is on.
pub(super) async fn join_cluster(
    config: &Config,
    local_addr: SocketAddr,
) -> Result<Option<Cluster>, SidecarError> {
    let Some(settings) = ClusterSettings::from_config(config, local_addr) else {
        return Ok(None);
    };
    let cluster = Cluster::connect(settings).await?;
    cluster.claim_id().await?;
    Ok(Some(cluster))
}

/// The registry of apps, with the apps of the config file and those the store remembers.
pub(super) fn new_registry(
    config: &Config,
    store: Store,
    recovered: Recovered,
    tasks: &Tasks,
) -> Arc<Registry> {
    let settings = config
        .apps
        .iter()
        .filter_map(|(id, s)| AppId::parse(id).ok().map(|id| (id, s.clone())))
        .collect();
    Arc::new(Registry::new(
        config.capacity,
        config.post,
        store,
        recovered,
        settings,
        config.timeouts,
        tasks.clone(),
    ))
}

/// What cluster mode shares with the services: forwarding, the journal and delivery.
pub(super) fn cluster_link(cluster: Cluster, registry: &Arc<Registry>, tasks: &Tasks) -> Link {
    let delivery = Delivery::new(cluster.clone(), Arc::clone(registry), tasks.clone());
    Link {
        forwarder: Forwarder::new(cluster.clone(), tasks),
        changed: Arc::new(tokio::sync::Notify::new()),
        journal: Journal::new(cluster.clone(), delivery.recent()),
        delivery,
        cluster,
    }
}

/// What `/metrics` reads.
pub(super) fn metric_sources(
    config: &Config,
    registry: &Arc<Registry>,
    requests: &Arc<RequestCounters>,
    drain: &Arc<Drain>,
    link: Option<&Link>,
) -> Sources {
    Sources {
        registry: Arc::clone(registry),
        requests: Arc::clone(requests),
        drain: Arc::clone(drain),
        max_timeout: config.timeouts.max,
        cluster: link.map(|l| l.cluster.clone()),
        cluster_posts: link.map(|l| ClusterPosts {
            latency: Arc::clone(l.journal.latency()),
            delivery: l.delivery.clone(),
        }),
    }
}

/// Starts cluster mode's tasks: the directory sync (answering calls forwarded here) and
/// delivery (every app the cluster knows gets its consumer; apps with instances here get a pull
/// loop).
pub(super) fn run_cluster(
    link: &Link,
    registry: &Arc<Registry>,
    limits: CallLimits,
    tasks: &Tasks,
) {
    let responder = Responder::new(
        link.cluster.clone(),
        Arc::clone(registry),
        limits,
        tasks.clone(),
    );
    tasks.spawn(cluster::sync::sync(
        link.cluster.clone(),
        Arc::clone(registry),
        responder,
        Arc::clone(&link.changed),
        tasks.stopping().child_token(),
    ));
    tasks.spawn(link.delivery.clone().run(tasks.stopping().child_token()));
}

/// Serves `router` on `listener` until the returned token is cancelled.
pub(super) fn serve(
    router: Router,
    listener: TcpListener,
) -> (
    CancellationToken,
    JoinHandle<Result<(), tonic::transport::Error>>,
) {
    // tonic does not apply tcp_nodelay to a listener we pass in: set it on the incoming side.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let server_stop = CancellationToken::new();
    let server = tokio::spawn(
        router.serve_with_incoming_shutdown(incoming, server_stop.clone().cancelled_owned()),
    );
    (server_stop, server)
}

/// Starts what runs beside the server: the call alarm, and forgetting idle apps.
pub(super) fn run_background(registry: &Arc<Registry>, config: &Config, tasks: &Tasks) {
    tasks.spawn({
        let (registry, stop) = (Arc::clone(registry), tasks.stopping().child_token());
        async move { registry.time_out_calls(stop).await }
    });
    if !config.forget_apps_after.is_zero() {
        tasks.spawn(forget_idle_apps(
            Arc::clone(registry),
            config.forget_apps_after,
            tasks.stopping().child_token(),
        ));
    }
}

/// Binds `addr`, set by `flag`.
pub(super) async fn bind(
    addr: SocketAddr,
    flag: &'static str,
) -> Result<TcpListener, SidecarError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SidecarError::Bind { addr, flag, source })
}

/// Opens the post-event store off the async runtime (it reads the whole journal back), or the
/// one that keeps nothing when the sidecar is ephemeral.
pub(super) async fn open_store(
    config: &Config,
) -> Result<(Store, Option<StoreWriter>, Recovered), SidecarError> {
    if config.ephemeral {
        tracing::warn!("--ephemeral: post events are kept in memory only and lost on restart");
        return Ok((Store::ephemeral(), None, Recovered::default()));
    }
    let (dir, fsync) = (config.data_dir.clone(), config.fsync);
    let (store, writer, recovered) =
        tokio::task::spawn_blocking(move || Store::open(&dir, fsync)).await??;
    tracing::info!(data_dir = %config.data_dir.display(), fsync = config.fsync,
        "post events are stored on disk");
    Ok((store, Some(writer), recovered))
}

/// Serves `/metrics` on `listener` as a background task; returns the bound address.
pub(super) fn serve_metrics(
    listener: TcpListener,
    sources: Sources,
    tasks: &Tasks,
) -> Result<SocketAddr, SidecarError> {
    let bound = listener.local_addr().map_err(|source| SidecarError::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        flag: "--metrics-listen",
        source,
    })?;
    tracing::info!(metrics_addr = %bound, "Prometheus metrics at http://{bound}/metrics");
    tasks.spawn(metrics::serve(
        listener,
        Arc::new(sources),
        tasks.stopping().child_token(),
    ));
    Ok(bound)
}

/// Says loudly when the sidecar runs without authentication.
pub(super) fn warn_if_open(config: &Config, addr: SocketAddr) {
    if !config.has_tokens() {
        tracing::warn!(
            "no tokens configured: backends and apps are not authenticated, and any process \
            that can reach the sidecar can register any app id (set backend_token and \
            apps.<id>.token, or --backend-token / --app-token)"
        );
        if !addr.ip().is_loopback() && config.tls_client_ca.is_none() {
            tracing::warn!(%addr, "listening beyond loopback WITHOUT authentication: anyone who \
                can reach this address can register apps and veto rooms");
        }
    } else if config.backend_token.is_none() {
        tracing::warn!("no backend_token: RoomHooks and Admin accept unauthenticated calls");
    } else if !config.apps.values().any(|a| a.token.is_some()) {
        tracing::warn!("no app tokens: any process can register as any app");
    }
}

/// Lists at start the apps the sidecar knows before any connects (remembered from the store,
/// or declared essential in the config), so a FAIL app that is gone is no mystery.
pub(super) fn log_remembered_apps(registry: &Registry, config: &Config) {
    let snapshot = registry.snapshot();
    if snapshot.apps().is_empty() {
        return;
    }
    let apps: Vec<String> = snapshot
        .apps()
        .iter()
        .map(|app| {
            let policy = match app.spec.failure_policy {
                FailurePolicy::Fail => "FAIL",
                FailurePolicy::Ignore => "IGNORE",
            };
            format!("{} ({policy})", app.spec.app_id)
        })
        .collect();
    let from = if config.ephemeral {
        "the config file".to_owned()
    } else {
        std::path::absolute(&config.data_dir)
            .unwrap_or_else(|_| config.data_dir.clone())
            .display()
            .to_string()
    };
    let count = match apps.len() {
        1 => "1 app".to_owned(),
        n => format!("{n} apps"),
    };
    tracing::info!(
        "remembering {count} from {from}: {}; Admin.RemoveApp forgets one",
        apps.join(", ")
    );
}

/// Forgets, from time to time until `stop`, the apps idle for `after` (`--forget-apps-after`).
pub(super) async fn forget_idle_apps(
    registry: Arc<Registry>,
    after: Duration,
    stop: CancellationToken,
) {
    // Looked at often enough that an app is forgotten at most a tenth later than due.
    let every = (after / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (app_id, removed) in registry.forget_idle(std::time::SystemTime::now(), after) {
            registry
                .store()
                .delete_app(&app_id, removed.released, removed.cursor)
                .await;
            tracing::info!(%app_id, idle_for = ?after,
                "forgot an app with no instance and no pending post event for \
                 --forget-apps-after; it is known again when it registers");
        }
    }
}

/// The health entry of the NATS connection in cluster mode: `SERVING` while it is up,
/// `NOT_SERVING` while it is lost (Pre calls with local instances still work then; post events
/// are refused). The overall status stays as the drain sets it.
pub const CLUSTER_HEALTH: &str = "roomhooks.cluster";

/// Keeps [`CLUSTER_HEALTH`] in step with the NATS connection until `stop`.
pub(super) async fn watch_nats(
    health: tonic_health::server::HealthReporter,
    cluster: crate::cluster::Cluster,
    stop: CancellationToken,
) {
    let mut was = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let up = cluster.is_connected();
        if was != Some(up) {
            let status = if up {
                tonic_health::ServingStatus::Serving
            } else {
                tonic_health::ServingStatus::NotServing
            };
            health.set_service_status(CLUSTER_HEALTH, status).await;
            was = Some(up);
        }
    }
}
