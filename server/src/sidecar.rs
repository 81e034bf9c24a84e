//! Assembles the sidecar: binds the listener, serves every service on it, and shuts down cleanly.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use roomhooks::v1::{admin_server::AdminServer, room_hooks_server::RoomHooksServer};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::{
    Status,
    service::interceptor::InterceptedService,
    transport::{Certificate, Identity, Server, ServerTlsConfig, server::TcpIncoming},
};

use crate::{
    admin::AdminService,
    auth::BackendAuth,
    config::{Config, ConfigError, MaybeAddr},
    connection::AppRuntimeService,
    connection::Liveness,
    dispatch::Dispatcher,
    ids::AppId,
    metrics::{self, BackendCounters, Sources},
    registry::{Capacity, Registry},
    runtime_server::AppRuntimeServer,
    service::{Limits, RoomHooksService},
    store::{Recovered, Store, StoreError, StoreWriter},
};

/// Why the sidecar could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error(
        "cannot listen on {addr}: {source} (is another process using the port? pick another with --listen)"
    )]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
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
    #[error("{0} (check --data-dir, or run with --ephemeral to keep post events in memory)")]
    Store(#[from] StoreError),
    /// The server task panicked or was aborted.
    #[error("the server task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A running sidecar.
pub struct Sidecar {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    registry: Arc<Registry>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    metrics: Option<JoinHandle<()>>,
    /// Times out app calls; stopped after the server, so calls still draining time out too.
    alarm: JoinHandle<()>,
    /// Stops `alarm`.
    alarm_stop: CancellationToken,
    store_writer: Option<StoreWriter>,
    drain_timeout: Duration,
}

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
            "no tokens configured: backends and apps are not authenticated \
            (set backend_token and apps.<id>.token, or --backend-token / --app-token)"
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
    /// Validates `config`, binds its listen address and starts serving.
    pub async fn start(config: Config) -> Result<Self, SidecarError> {
        config.validate()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| SidecarError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| SidecarError::Bind {
            addr: config.listen,
            source,
        })?;

        let metrics_listener = match config.metrics_listen {
            MaybeAddr::On(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| SidecarError::Bind { addr, source })?,
            ),
            MaybeAddr::Off => None,
        };

        let (store, store_writer, recovered) = if config.ephemeral {
            tracing::warn!("--ephemeral: post events are kept in memory only and lost on restart");
            (None, None, Recovered::default())
        } else {
            let (store, writer, recovered) = Store::open(&config.data_dir, config.fsync)?;
            tracing::info!(data_dir = %config.data_dir.display(), fsync = config.fsync,
                "post events are stored on disk");
            (Some(store), Some(writer), recovered)
        };

        let shutdown = CancellationToken::new();
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
            shutdown.child_token(),
        ));
        let dispatcher = Dispatcher::new(Arc::clone(&registry), config.call_limits());
        let counters = Arc::new(BackendCounters::default());
        warn_if_open(&config, local_addr);

        let metrics = match metrics_listener {
            Some(listener) => {
                let bound = listener.local_addr().map_err(|source| SidecarError::Bind {
                    addr: config.listen,
                    source,
                })?;
                tracing::info!(metrics_addr = %bound, "Prometheus metrics at http://{bound}/metrics");
                let addr = Some(bound);
                let sources = Arc::new(Sources {
                    registry: Arc::clone(&registry),
                    backend: Arc::clone(&counters),
                    max_timeout: config.max_timeout,
                });
                Some((
                    addr,
                    tokio::spawn(metrics::serve(listener, sources, shutdown.child_token())),
                ))
            }
            None => None,
        };
        let backend_auth = BackendAuth::new(config.backend_token.as_deref());
        let app_auth = config.apps.values().any(|a| a.token.is_some());

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<RoomHooksServer<RoomHooksService>>()
            .await;
        health_reporter.set_serving::<AppRuntimeServer>().await;
        health_reporter
            .set_serving::<AdminServer<AdminService>>()
            .await;

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(roomhooks::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(roomhooks::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let mut builder = Server::builder();
        if let Some(tls) = tls_config(&config)? {
            builder = builder
                .tls_config(tls)
                .map_err(|e| SidecarError::Tls(e.to_string()))?;
        }
        let router = builder
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_service(InterceptedService::new(
                RoomHooksServer::new(RoomHooksService::new(
                    dispatcher,
                    config.max_timeout,
                    counters,
                    Limits {
                        max_concurrent: config.max_concurrent_backend_calls,
                        max_custom_field_bytes: config.max_custom_field_bytes,
                    },
                ))
                .max_decoding_message_size(config.max_message_size)
                .max_encoding_message_size(config.max_message_size),
                backend_auth.clone(),
            ))
            .add_service(
                AppRuntimeServer::new(AppRuntimeService::new(
                    Liveness {
                        interval: config.heartbeat_interval,
                        timeout: config.heartbeat_timeout,
                    },
                    Arc::clone(&registry),
                    app_auth,
                    config.timeout_limits(),
                    config.register_timeout,
                    shutdown.child_token(),
                ))
                .max_decoding_message_size(config.max_message_size),
            )
            .add_service(InterceptedService::new(
                AdminServer::new(AdminService::new(Arc::clone(&registry)))
                    .max_decoding_message_size(config.max_message_size),
                backend_auth,
            ))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        // tonic does not apply tcp_nodelay to a listener we pass in: set it on the incoming side.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let stop = shutdown.clone();
        let closing = Arc::clone(&registry);
        let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move {
            stop.cancelled().await;
            // App streams never end by themselves: end them so the server can drain.
            closing.close_all(Status::unavailable(
                "the roomhooks sidecar is shutting down; reconnect to its replacement",
            ));
        }));
        let alarm_stop = CancellationToken::new();
        let alarm = tokio::spawn({
            let (registry, stop) = (Arc::clone(&registry), alarm_stop.clone());
            async move { registry.time_out_calls(stop).await }
        });
        tracing::info!(%local_addr, "roomhooks sidecar listening");
        let (metrics_addr, metrics_task) = match metrics {
            Some((addr, task)) => (addr, Some(task)),
            None => (None, None),
        };
        Ok(Self {
            local_addr,
            metrics_addr,
            shutdown,
            registry,
            server,
            metrics: metrics_task,
            alarm,
            alarm_stop,
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

    /// Stops accepting, ends app streams, and waits up to the drain timeout for in-flight calls.
    pub async fn shutdown(mut self) -> Result<(), SidecarError> {
        self.shutdown.cancel();
        if let Some(metrics) = self.metrics.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), metrics).await;
        }
        let served = match tokio::time::timeout(self.drain_timeout, &mut self.server).await {
            Ok(joined) => joined.map_err(SidecarError::from).and_then(|r| Ok(r?)),
            Err(_) => {
                tracing::warn!(drain_timeout = ?self.drain_timeout,
                    "in-flight calls did not finish within the drain timeout; stopping anyway");
                self.server.abort();
                Ok(())
            }
        };
        self.alarm_stop.cancel();
        let _ = (&mut self.alarm).await;
        self.close_store().await;
        served
    }

    /// Flushes the store: every post event accepted so far is on disk when this returns.
    async fn close_store(&mut self) {
        if let Some(store) = self.registry.store()
            && let Err(err) = store.flush().await
        {
            tracing::error!("{err}");
        }
        // The writer thread ends once every handle is gone (background tasks may hold one a
        // little longer), then persists with fsync; nothing waits on it here.
        drop(self.store_writer.take());
    }

    /// Waits until the server stops by itself (it only does on error).
    pub async fn wait(&mut self) -> Result<(), SidecarError> {
        Ok((&mut self.server).await??)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.alarm_stop.cancel();
    }
}
