//! Assembles the sidecar: binds the listener, serves every service on it, and shuts down cleanly.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::transport::{
    Certificate, Identity, Server, ServerTlsConfig,
    server::{Router, TcpIncoming},
};
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    apps::{
        registry::{Capacity, Registry},
        spec::FailurePolicy,
    },
    config::{Config, ConfigError, MaybeAddr},
    dispatch::Dispatcher,
    edge::{
        self,
        admin::AdminService,
        auth::BackendAuth,
        connection::{AppRuntimeService, Liveness},
        requests::{CountRequests, RequestCounters},
        runtime_server::AppRuntimeServer,
        service::RoomHooksService,
    },
    ids::AppId,
    lifecycle::{drain::Drain, tasks::Tasks},
    ops::metrics::{self, Sources},
    post::accept::Accept,
    store::{Recovered, Store, StoreError, StoreWriter},
};

/// Why the sidecar could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listen address could not be bound.
    #[error(
        "cannot listen on {addr}: {source} (is another process using the port? pick another with {flag})"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The flag that set it.
        flag: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reflection could not load the descriptor set (a build problem).
    #[error("cannot build the gRPC reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("the gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// The TLS files could not be used.
    #[error("TLS: {0} (check --tls-cert, --tls-key and --tls-client-ca)")]
    Tls(String),
    /// The post-event store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server task panicked or was aborted.
    #[error("the server task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A running sidecar.
pub struct Sidecar {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    registry: Arc<Registry>,
    /// Refuses new backend calls and registrations once begun, and counts the calls in flight.
    drain: Arc<Drain>,
    /// Reports NOT_SERVING once the drain begins.
    health: HealthReporter,
    /// Ends the gRPC server's accept loop and connections (after the drain).
    server_stop: CancellationToken,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    /// Read loops, post delivery, the call alarm and the metrics endpoint.
    tasks: Tasks,
    store_writer: Option<StoreWriter>,
    drain_timeout: Duration,
}

/// How long shutdown waits, after the drain, for connections and background tasks to end.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The services the health check reports on, besides the overall status ("").
const HEALTH_SERVICES: [&str; 3] = [
    "roomhooks.v1.RoomHooks",
    "roomhooks.v1.AppRuntime",
    "roomhooks.v1.Admin",
];

/// The server's TLS settings, when a certificate is configured.
fn tls_config(config: &Config) -> Result<Option<ServerTlsConfig>, SidecarError> {
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Ok(None);
    };
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| SidecarError::Tls(format!("cannot read {}: {e}", path.display())))
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
    if let Some(ca) = &config.tls_client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    tracing::info!(
        mutual = config.tls_client_ca.is_some(),
        "serving gRPC over TLS"
    );
    Ok(Some(tls))
}

/// Says loudly when the sidecar runs without authentication.
fn warn_if_open(config: &Config, addr: SocketAddr) {
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

impl Sidecar {
    /// Validates `config`, binds its listen addresses, opens the store and starts serving.
    pub async fn start(config: Config) -> Result<Self, SidecarError> {
        config.validate()?;
        let listener = bind(config.listen, "--listen").await?;
        let local_addr = listener.local_addr().map_err(|source| SidecarError::Bind {
            addr: config.listen,
            flag: "--listen",
            source,
        })?;
        let metrics_listener = match config.metrics_listen {
            MaybeAddr::On(addr) => Some(bind(addr, "--metrics-listen").await?),
            MaybeAddr::Off => None,
        };
        let (store, store_writer, recovered) = open_store(&config).await?;

        let tasks = Tasks::new();
        let drain = Arc::new(Drain::new());
        let settings = config
            .apps
            .iter()
            .filter_map(|(id, s)| AppId::parse(id).ok().map(|id| (id, s.clone())))
            .collect();
        let registry = Arc::new(Registry::new(
            Capacity {
                max_apps: config.max_apps,
                max_instances_per_app: config.max_instances_per_app,
            },
            config.post_config(),
            store,
            recovered,
            settings,
            config.timeout_limits(),
            tasks.clone(),
        ));
        log_remembered_apps(&registry, &config);
        warn_if_open(&config, local_addr);
        let requests = Arc::new(RequestCounters::default());
        let metrics_addr = match metrics_listener {
            Some(listener) => Some(serve_metrics(
                listener,
                Sources {
                    registry: Arc::clone(&registry),
                    requests: Arc::clone(&requests),
                    drain: Arc::clone(&drain),
                    max_timeout: config.max_timeout,
                },
                &tasks,
            )?),
            None => None,
        };

        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::Serving).await;
        let router = routes(
            &config,
            Services {
                registry: &registry,
                drain: &drain,
                tasks: &tasks,
                requests: &requests,
            },
        )?
        .add_service(CountRequests::new(health_service, Arc::clone(&requests)));
        // tonic does not apply tcp_nodelay to a listener we pass in: set it on the incoming side.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let server_stop = CancellationToken::new();
        let server = tokio::spawn(
            router.serve_with_incoming_shutdown(incoming, server_stop.clone().cancelled_owned()),
        );
        tasks.spawn({
            let (registry, stop) = (Arc::clone(&registry), tasks.stopping().child_token());
            async move { registry.time_out_calls(stop).await }
        });
        if !config.forget_apps_after.is_zero() {
            tasks.spawn(forget_idle_apps(
                Arc::clone(&registry),
                config.forget_apps_after,
                tasks.stopping().child_token(),
            ));
        }
        tracing::info!(%local_addr, "roomhooks sidecar listening");
        Ok(Self {
            local_addr,
            metrics_addr,
            registry,
            drain,
            health,
            server_stop,
            server,
            tasks,
            store_writer,
            drain_timeout: config.drain_timeout,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound metrics address, when the endpoint is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The registry (for embedding and tests).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Shuts down gracefully, in this order:
    /// 1. health reports NOT_SERVING, and new backend calls and app registrations are refused
    ///    with UNAVAILABLE;
    /// 2. the backend calls in flight finish with their apps, which stay connected, for up to the
    ///    drain timeout (calls still running then get their apps' failure policy);
    /// 3. every app stream ends with status OK (apps reconnect with backoff, to a replacement);
    /// 4. the listener and the connections close;
    /// 5. the background tasks (read loops, post delivery, alarm, metrics) stop and are awaited;
    /// 6. the store commits what was accepted and closes.
    pub async fn shutdown(mut self) -> Result<(), SidecarError> {
        self.drain.begin();
        set_health(&self.health, ServingStatus::NotServing).await;
        tracing::info!(in_flight = self.drain.in_flight(), drain_timeout = ?self.drain_timeout,
            "draining: health reports NOT_SERVING, new calls are refused, calls in flight finish");
        if tokio::time::timeout(self.drain_timeout, self.drain.calls_done())
            .await
            .is_err()
        {
            tracing::warn!(in_flight = self.drain.in_flight(), drain_timeout = ?self.drain_timeout,
                "backend calls were still running when the drain timeout passed; their apps' \
                 failure policy applies (raise --drain-timeout to let them finish)");
        }
        self.registry.close_all();
        // The calls cut short by the drain timeout answer their backends now.
        let _ = tokio::time::timeout(CLOSE_GRACE, self.drain.calls_done()).await;

        self.server_stop.cancel();
        let served = match tokio::time::timeout(CLOSE_GRACE, &mut self.server).await {
            Ok(joined) => joined.map_err(SidecarError::from).and_then(|r| Ok(r?)),
            Err(_) => {
                tracing::warn!(grace = ?CLOSE_GRACE,
                    "connections were still open after every app stream ended; closing them");
                self.server.abort();
                Ok(())
            }
        };
        let left = self.tasks.stop(CLOSE_GRACE).await;
        if left > 0 {
            tracing::error!(left, grace = ?CLOSE_GRACE,
                "background tasks did not stop in time; closing the store anyway");
        }
        self.close_store().await;
        served
    }

    /// Commits every post event accepted so far and stops the store's writer.
    async fn close_store(&mut self) {
        if let Some(store) = self.registry.store()
            && let Err(err) = store.close().await
        {
            tracing::error!("{err}");
        }
        if let Some(writer) = self.store_writer.take()
            && let Err(err) = tokio::task::spawn_blocking(move || writer.join()).await
        {
            tracing::error!("the post-event store's writer thread ended abnormally: {err}");
        }
    }

    /// Waits until the server stops by itself (it only does on error).
    pub async fn wait(&mut self) -> Result<(), SidecarError> {
        Ok((&mut self.server).await??)
    }
}

impl Drop for Sidecar {
    /// A sidecar dropped without [`Sidecar::shutdown`] stops at once: app streams end, the
    /// server and background tasks are told to stop (the store closes once they are gone).
    fn drop(&mut self) {
        self.drain.begin();
        self.registry.close_all();
        self.server_stop.cancel();
        self.tasks.stopping().cancel();
    }
}

/// Forgets, from time to time until `stop`, the apps idle for `after` (`--forget-apps-after`).
async fn forget_idle_apps(registry: Arc<Registry>, after: Duration, stop: CancellationToken) {
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
            if let Some(store) = registry.store() {
                store
                    .delete_app(&app_id, removed.released, removed.cursor)
                    .await;
            }
            tracing::info!(%app_id, idle_for = ?after,
                "forgot an app with no instance and no pending post event for \
                 --forget-apps-after; it is known again when it registers");
        }
    }
}

/// Binds `addr`, set by `flag`.
async fn bind(addr: SocketAddr, flag: &'static str) -> Result<TcpListener, SidecarError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SidecarError::Bind { addr, flag, source })
}

/// Opens the post-event store off the async runtime (it reads the whole journal back), unless
/// the sidecar is ephemeral.
async fn open_store(
    config: &Config,
) -> Result<(Option<Store>, Option<StoreWriter>, Recovered), SidecarError> {
    if config.ephemeral {
        tracing::warn!("--ephemeral: post events are kept in memory only and lost on restart");
        return Ok((None, None, Recovered::default()));
    }
    let (dir, fsync) = (config.data_dir.clone(), config.fsync);
    let (store, writer, recovered) =
        tokio::task::spawn_blocking(move || Store::open(&dir, fsync)).await??;
    tracing::info!(data_dir = %config.data_dir.display(), fsync = config.fsync,
        "post events are stored on disk");
    Ok((Some(store), Some(writer), recovered))
}

/// Serves `/metrics` on `listener` as a background task; returns the bound address.
fn serve_metrics(
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

/// Sets the overall health status and every service's.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    for service in HEALTH_SERVICES {
        health.set_service_status(service, status).await;
    }
}

/// What the gRPC services share with the sidecar.
struct Services<'a> {
    registry: &'a Arc<Registry>,
    drain: &'a Arc<Drain>,
    tasks: &'a Tasks,
    requests: &'a Arc<RequestCounters>,
}

/// The gRPC server with RoomHooks, AppRuntime, Admin and reflection (v1 and v1alpha).
fn routes(config: &Config, services: Services<'_>) -> Result<Router, SidecarError> {
    let Services {
        registry,
        drain,
        tasks,
        requests,
    } = services;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(roomhooks::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(roomhooks::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let layers = edge::Layers {
        auth: BackendAuth::new(config.backend_token.as_deref()),
        drain: Arc::clone(drain),
        requests: Arc::clone(requests),
        max_message_size: config.max_message_size,
        max_concurrent: config.max_concurrent_backend_calls,
    };
    let app_auth = config.apps.values().any(|a| a.token.is_some());
    let dispatcher = Dispatcher::new(Arc::clone(registry), config.call_limits());

    let mut builder = Server::builder();
    if let Some(tls) = tls_config(config)? {
        builder = builder
            .tls_config(tls)
            .map_err(|e| SidecarError::Tls(e.to_string()))?;
    }
    Ok(builder
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(edge::room_hooks(
            RoomHooksService::new(
                dispatcher,
                Accept::new(Arc::clone(registry)),
                config.max_timeout,
                config.max_custom_field_bytes,
            ),
            &layers,
        ))
        .add_service(
            AppRuntimeServer::new(AppRuntimeService::new(
                Liveness {
                    interval: config.heartbeat_interval,
                    timeout: config.heartbeat_timeout,
                },
                Arc::clone(registry),
                app_auth,
                config.timeout_limits(),
                config.register_timeout,
                Arc::clone(drain),
                tasks.clone(),
            ))
            .max_decoding_message_size(config.max_message_size),
        )
        .add_service(edge::admin(
            AdminService::new(Arc::clone(registry)),
            &layers,
        ))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha))
}

/// Lists at start the apps the sidecar knows before any connects (remembered from the store,
/// or declared essential in the config), so a FAIL app that is gone is no mystery.
fn log_remembered_apps(registry: &Registry, config: &Config) {
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
