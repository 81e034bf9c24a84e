//! Assembles the sidecar: binds the listener, serves every service on it (`routes`), starts
//! what runs beside the server (`startup`), and shuts down cleanly, in order.

mod routes;
mod startup;

use self::{
    routes::Services,
    startup::{
        bind, bind_listen, cluster_link, join_cluster, log_remembered_apps, metric_sources,
        new_registry, open_store, run_background, run_cluster, serve, serve_metrics, warn_if_open,
        watch_nats,
    },
};

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    apps::registry::Registry,
    cluster::ClusterError,
    config::{Config, ConfigError, MaybeAddr},
    edge::requests::{CountRequests, RequestCounters},
    lifecycle::{drain::Drain, tasks::Tasks},
    store::{StoreError, StoreWriter},
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
    /// Cluster mode could not start.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
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

impl Sidecar {
    /// Validates `config`, binds its listen addresses, opens the store and starts serving; the
    /// start-up stages in order.
    pub async fn start(config: Config) -> Result<Self, SidecarError> {
        config.validate()?;
        let (listener, local_addr) = bind_listen(config.listen).await?;
        let metrics_listener = match config.metrics_listen {
            MaybeAddr::On(addr) => Some(bind(addr, "--metrics-listen").await?),
            MaybeAddr::Off => None,
        };
        let cluster = join_cluster(&config, local_addr).await?;
        // In cluster mode post events live in JetStream, not on this sidecar's disk.
        let (store, store_writer, recovered) = match cluster {
            Some(_) => Default::default(),
            None => open_store(&config).await?,
        };
        let tasks = Tasks::new();
        let drain = Arc::new(Drain::new());
        let registry = new_registry(&config, store, recovered, &tasks);
        log_remembered_apps(&registry, &config);
        warn_if_open(&config, local_addr);
        let requests = Arc::new(RequestCounters::default());
        let link = cluster.map(|cluster| cluster_link(cluster, &registry, &tasks));
        let metrics_addr = match metrics_listener {
            Some(listener) => {
                let sources = metric_sources(&config, &registry, &requests, &drain, link.as_ref());
                Some(serve_metrics(listener, sources, &tasks)?)
            }
            None => None,
        };
        if let Some(link) = &link {
            run_cluster(link, &registry, config.calls, &tasks);
        }
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, ServingStatus::Serving).await;
        if let Some(link) = &link {
            tasks.spawn(watch_nats(
                health.clone(),
                link.cluster.clone(),
                tasks.stopping().child_token(),
            ));
        }
        let services = Services {
            registry: &registry,
            drain: &drain,
            tasks: &tasks,
            requests: &requests,
            link: link.as_ref(),
        };
        let router = routes::routes(&config, services)?
            .add_service(CountRequests::new(health_service, Arc::clone(&requests)));
        let (server_stop, server) = serve(router, listener);
        run_background(&registry, &config, &tasks);
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
        if let Err(err) = self.registry.store().close().await {
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

/// Sets the overall health status and every service's.
async fn set_health(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    for service in HEALTH_SERVICES {
        health.set_service_status(service, status).await;
    }
}
