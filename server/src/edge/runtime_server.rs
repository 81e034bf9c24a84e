//! The `roomhooks.v1.AppRuntime` gRPC service, routed by hand so `Connect` can use [`FrameCodec`]
//! (hook calls whose shared fields are encoded once per fan-out). On the wire it is the service
//! `proto/roomhooks/v1/app_runtime.proto` declares; only the Rust plumbing differs from tonic's
//! generated server.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use roomhooks::v1::AppMessage;
use tonic::{
    Request, Response, Status, Streaming,
    body::Body,
    codegen::{Body as HttpBody, BoxFuture, Service, StdError, http},
    server::{Grpc, NamedService, StreamingService},
};

use crate::{
    apps::frame::{Frame, FrameCodec},
    edge::connection::{AppRuntimeService, OutboundStream},
};

/// The path of the one method.
const CONNECT: &str = "/roomhooks.v1.AppRuntime/Connect";

/// A tower service serving `AppRuntime` with an [`AppRuntimeService`].
#[derive(Clone)]
pub struct AppRuntimeServer {
    inner: Arc<AppRuntimeService>,
    max_decoding_message_size: Option<usize>,
}

impl AppRuntimeServer {
    /// Serves `service`.
    pub fn new(service: AppRuntimeService) -> Self {
        Self {
            inner: Arc::new(service),
            max_decoding_message_size: None,
        }
    }

    /// The largest message an app may send.
    #[must_use]
    pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
        self.max_decoding_message_size = Some(limit);
        self
    }
}

impl NamedService for AppRuntimeServer {
    const NAME: &'static str = "roomhooks.v1.AppRuntime";
}

impl<B> Service<http::Request<B>> for AppRuntimeServer
where
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != CONNECT {
            let unknown = format!(
                "roomhooks.v1.AppRuntime has no method {:?}; apps call {CONNECT}",
                req.uri().path()
            );
            return Box::pin(async move { Ok(Status::unimplemented(unknown).into_http()) });
        }
        let method = Connect(Arc::clone(&self.inner));
        let limit = self.max_decoding_message_size;
        Box::pin(async move {
            let mut grpc = Grpc::new(FrameCodec).apply_max_message_size_config(limit, None);
            Ok(grpc.streaming(method, req).await)
        })
    }
}

/// `Connect`, as tonic's streaming-method plumbing wants it.
struct Connect(Arc<AppRuntimeService>);

impl StreamingService<AppMessage> for Connect {
    type Response = Frame;
    type ResponseStream = OutboundStream;
    type Future = BoxFuture<Response<OutboundStream>, Status>;

    fn call(&mut self, request: Request<Streaming<AppMessage>>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.connect(request).await })
    }
}
