//! Assembles the sidecar: binds the listener, serves every service on it, and shuts down cleanly.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use roomhooks::v1::{
    admin_server::AdminServer, app_runtime_server::AppRuntimeServer,
    room_hooks_server::RoomHooksServer,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::{
    Status,
    transport::{Server, server::TcpIncoming},
};

use crate::{
    admin::AdminService,
    config::{Config, ConfigError},
    connection::AppRuntimeService,
    dispatch::Dispatcher,
    registry::Registry,
    service::RoomHooksService,
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
    /// The server task panicked or was aborted.
    #[error("the server task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A running sidecar.
pub struct Sidecar {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    registry: Arc<Registry>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    drain_timeout: Duration,
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

        let shutdown = CancellationToken::new();
        let registry = Arc::new(Registry::new(config.post_config(), shutdown.child_token()));
        let dispatcher = Dispatcher::new(Arc::clone(&registry));

        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<RoomHooksServer<RoomHooksService>>()
            .await;
        health_reporter
            .set_serving::<AppRuntimeServer<AppRuntimeService>>()
            .await;
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

        let router = Server::builder()
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_service(RoomHooksServer::new(RoomHooksService::new(
                dispatcher,
                config.max_timeout,
            )))
            .add_service(AppRuntimeServer::new(AppRuntimeService::new(
                Arc::clone(&registry),
                config.timeout_limits(),
                config.register_timeout,
                shutdown.child_token(),
            )))
            .add_service(AdminServer::new(AdminService::new(Arc::clone(&registry))))
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
        tracing::info!(%local_addr, "roomhooks sidecar listening");
        Ok(Self {
            local_addr,
            shutdown,
            registry,
            server,
            drain_timeout: config.drain_timeout,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The registry (for embedding and tests).
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Stops accepting, ends app streams, and waits up to the drain timeout for in-flight calls.
    pub async fn shutdown(mut self) -> Result<(), SidecarError> {
        self.shutdown.cancel();
        match tokio::time::timeout(self.drain_timeout, &mut self.server).await {
            Ok(joined) => Ok(joined??),
            Err(_) => {
                tracing::warn!(drain_timeout = ?self.drain_timeout,
                    "in-flight calls did not finish within the drain timeout; stopping anyway");
                self.server.abort();
                Ok(())
            }
        }
    }

    /// Waits until the server stops by itself (it only does on error).
    pub async fn wait(&mut self) -> Result<(), SidecarError> {
        Ok((&mut self.server).await??)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
