//! The edge: the gRPC services (`RoomHooks` for backends, `AppRuntime` for apps, `Admin` for
//! operators), authentication, request validation and the call context read from metadata.
//! It owns every `tonic::Status` the sidecar builds; it may use everything below it
//! (dispatch, apps, post, lifecycle, ops).

pub mod admin;
pub mod admission;
pub mod auth;
pub mod backend_call;
pub mod connection;
pub mod deadline;
pub mod recover;
pub mod requests;
pub mod runtime_server;
pub mod service;
pub mod validate;

use std::sync::Arc;

use roomhooks::v1::{admin_server::AdminServer, room_hooks_server::RoomHooksServer};
use tonic::service::interceptor::InterceptedService;

use crate::lifecycle::drain::Drain;

use self::{
    admin::AdminService, admission::Admission, auth::BackendAuth, backend_call::BackendCall,
    recover::RecoverDecodeErrors, requests::CountRequests, requests::RequestCounters,
    service::RoomHooksService,
};

/// `RoomHooks` with its layers.
pub type RoomHooksStack = CountRequests<
    InterceptedService<
        Admission<BackendCall<RecoverDecodeErrors<RoomHooksServer<RoomHooksService>>>>,
        BackendAuth,
    >,
>;

/// `Admin` with its layers.
pub type AdminStack =
    CountRequests<InterceptedService<RecoverDecodeErrors<AdminServer<AdminService>>, BackendAuth>>;

/// What the backend-side layers share.
pub struct Layers {
    /// The backend token check (RoomHooks and Admin).
    pub auth: BackendAuth,
    /// Refuses new calls once the shutdown drain begins.
    pub drain: Arc<Drain>,
    /// Counts every answer.
    pub requests: Arc<RequestCounters>,
    /// `--max-message-size`.
    pub max_message_size: usize,
    /// `--max-concurrent-backend-calls`.
    pub max_concurrent: usize,
    /// `--max-timeout`: the latest deadline of a backend call without one of its own.
    pub max_timeout: std::time::Duration,
}

/// The backend's `RoomHooks` service and its layers, outermost first.
pub fn room_hooks(service: RoomHooksService, layers: &Layers) -> RoomHooksStack {
    // 1. Count every answer by service, method and code — the refusals below included.
    CountRequests::new(
        // 2. Authenticate the backend by its bearer token.
        InterceptedService::new(
            // 3. Admit: refuse while draining or at the concurrency limit, before decoding.
            Admission::new(
                // 4. One `backend_call` span per call, continuing the backend's trace; the
                //    call's deadline and trace context, from its headers, for the handler.
                BackendCall::new(
                    // 5. Recast tonic's decode and size errors (INVALID_ARGUMENT, RESOURCE_EXHAUSTED).
                    RecoverDecodeErrors::new(
                        // 6. Decode within --max-message-size and run the handler.
                        RoomHooksServer::new(service)
                            .max_decoding_message_size(layers.max_message_size)
                            .max_encoding_message_size(layers.max_message_size),
                        layers.max_message_size,
                    ),
                    layers.max_timeout,
                ),
                Arc::clone(&layers.drain),
                layers.max_concurrent,
            ),
            layers.auth.clone(),
        ),
        Arc::clone(&layers.requests),
    )
}

/// The operators' `Admin` service and its layers, outermost first: counted, authenticated like
/// the backend, decode errors recast. It is not admitted by the drain: operators can look at a
/// draining sidecar.
pub fn admin(service: AdminService, layers: &Layers) -> AdminStack {
    CountRequests::new(
        InterceptedService::new(
            RecoverDecodeErrors::new(
                AdminServer::new(service).max_decoding_message_size(layers.max_message_size),
                layers.max_message_size,
            ),
            layers.auth.clone(),
        ),
        Arc::clone(&layers.requests),
    )
}
