//! The gRPC server the sidecar serves: `RoomHooks` and `Admin` with their layers (see
//! [`crate::edge`]), `AppRuntime` for the app streams, health and reflection, over TLS when a
//! certificate is configured.

use std::{sync::Arc, time::Duration};

use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig, server::Router};

use super::SidecarError;
use crate::{
    apps::registry::Registry,
    cluster::Link,
    config::Config,
    dispatch::Dispatcher,
    edge::{
        self, admin::AdminService, auth::BackendAuth, connection::AppRuntimeService,
        requests::RequestCounters, runtime_server::AppRuntimeServer, service::RoomHooksService,
    },
    lifecycle::{drain::Drain, tasks::Tasks},
    post::accept::Accept,
};

/// What the gRPC services share with the sidecar.
pub(super) struct Services<'a> {
    pub(super) registry: &'a Arc<Registry>,
    pub(super) drain: &'a Arc<Drain>,
    pub(super) tasks: &'a Tasks,
    pub(super) requests: &'a Arc<RequestCounters>,
    /// Cluster mode, when on.
    pub(super) link: Option<&'a Link>,
}

/// The gRPC server with RoomHooks, AppRuntime, Admin and reflection (v1 and v1alpha).
pub(super) fn routes(config: &Config, services: Services<'_>) -> Result<Router, SidecarError> {
    let Services {
        registry,
        drain,
        tasks,
        requests,
        link,
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
        max_timeout: config.timeouts.max,
    };
    let app_auth = config.apps.values().any(|a| a.token.is_some());
    let dispatcher = Dispatcher::new(
        Arc::clone(registry),
        config.calls,
        link.map(|l| l.forwarder.clone()),
    );

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
                Accept::new(Arc::clone(registry), link.map(|l| l.journal.clone())),
                config.timeouts.max,
                config.calls.max_custom_field_bytes,
            ),
            &layers,
        ))
        .add_service(
            AppRuntimeServer::new(AppRuntimeService::new(
                config.liveness,
                Arc::clone(registry),
                app_auth,
                config.timeouts,
                config.register_timeout,
                Arc::clone(drain),
                tasks.clone(),
                link.cloned(),
            ))
            .max_decoding_message_size(config.max_message_size),
        )
        .add_service(edge::admin(
            AdminService::new(Arc::clone(registry), link.cloned()),
            &layers,
        ))
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha))
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
