//! Counts every RPC the sidecar answers on its backend and operator side — `RoomHooks`, `Admin`
//! and `grpc.health.v1.Health` — by service, method and gRPC code. It wraps each service whole,
//! so statuses made before a handler runs (authentication, decoding, size limits) count too.
//!
//! A unary call's error status comes in the response headers (a trailers-only response); a
//! response without one is counted `OK` — for a Health `Watch` stream, when the stream starts.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use tonic::{
    Code, Status,
    codegen::{Service, http},
    server::NamedService,
};

macro_rules! rpcs {
    ($($rpc:ident => $service:literal, $method:literal;)*) => {
        /// An RPC whose answers are counted.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Rpc {
            $(
                #[doc = concat!("`", $service, "/", $method, "`.")]
                $rpc,
            )*
        }

        impl Rpc {
            /// Every counted RPC, in exposition order.
            pub const ALL: [Rpc; [$(Rpc::$rpc),*].len()] = [$(Rpc::$rpc),*];

            /// The full service name, as in the request path.
            pub fn service(self) -> &'static str {
                match self {
                    $(Rpc::$rpc => $service,)*
                }
            }

            /// The method name.
            pub fn method(self) -> &'static str {
                match self {
                    $(Rpc::$rpc => $method,)*
                }
            }

            /// The RPC a request path names, if it is a counted one.
            pub fn from_path(path: &str) -> Option<Rpc> {
                match path {
                    $(concat!("/", $service, "/", $method) => Some(Rpc::$rpc),)*
                    _ => None,
                }
            }
        }
    };
}

rpcs! {
    PreRoomCreate => "roomhooks.v1.RoomHooks", "PreRoomCreate";
    PreRoomDelete => "roomhooks.v1.RoomHooks", "PreRoomDelete";
    PreRoomUserJoin => "roomhooks.v1.RoomHooks", "PreRoomUserJoin";
    PreRoomUserLeave => "roomhooks.v1.RoomHooks", "PreRoomUserLeave";
    PostRoomCreate => "roomhooks.v1.RoomHooks", "PostRoomCreate";
    PostRoomDeleted => "roomhooks.v1.RoomHooks", "PostRoomDeleted";
    PostRoomUserJoined => "roomhooks.v1.RoomHooks", "PostRoomUserJoined";
    PostRoomUserLeave => "roomhooks.v1.RoomHooks", "PostRoomUserLeave";
    PostEvents => "roomhooks.v1.RoomHooks", "PostEvents";
    ListApps => "roomhooks.v1.Admin", "ListApps";
    RemoveApp => "roomhooks.v1.Admin", "RemoveApp";
    SetAppEnabled => "roomhooks.v1.Admin", "SetAppEnabled";
    ListDeadLetters => "roomhooks.v1.Admin", "ListDeadLetters";
    RetryDeadLetters => "roomhooks.v1.Admin", "RetryDeadLetters";
    HealthCheck => "grpc.health.v1.Health", "Check";
    HealthWatch => "grpc.health.v1.Health", "Watch";
}

/// The gRPC codes, by value.
const CODES: usize = 17;

/// The canonical name of a gRPC code, as gRPC's status code table spells it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Answered requests by RPC and gRPC code.
pub struct RequestCounters {
    counts: [[AtomicU64; CODES]; Rpc::ALL.len()],
}

impl Default for RequestCounters {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

impl RequestCounters {
    /// Counts one answered request.
    pub fn record(&self, rpc: Rpc, code: Code) {
        let code = (code as usize).min(CODES - 1);
        self.counts[rpc as usize][code].fetch_add(1, Ordering::Relaxed);
    }

    /// Every RPC's counts: `(rpc, code, count)`, with `OK` always present (at 0 until a
    /// request is answered) and other codes once they occurred.
    pub fn samples(&self) -> impl Iterator<Item = (Rpc, Code, u64)> + '_ {
        Rpc::ALL.into_iter().flat_map(move |rpc| {
            self.counts[rpc as usize]
                .iter()
                .enumerate()
                .filter_map(move |(code, count)| {
                    let n = count.load(Ordering::Relaxed);
                    let code = Code::from_i32(i32::try_from(code).unwrap_or(2));
                    (n > 0 || code == Code::Ok).then_some((rpc, code, n))
                })
        })
    }
}

/// A service whose answers are counted in [`RequestCounters`].
#[derive(Clone)]
pub struct CountRequests<S> {
    inner: S,
    counters: Arc<RequestCounters>,
}

impl<S> CountRequests<S> {
    /// Counts what `inner` answers.
    pub fn new(inner: S, counters: Arc<RequestCounters>) -> Self {
        Self { inner, counters }
    }
}

impl<S: NamedService> NamedService for CountRequests<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> Service<http::Request<B>> for CountRequests<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Unpin,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Counting<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let rpc = Rpc::from_path(request.uri().path());
        Counting {
            inner: self.inner.call(request),
            counted: rpc.map(|rpc| (rpc, Arc::clone(&self.counters))),
        }
    }
}

/// The inner service's response, counted when it arrives.
pub struct Counting<F> {
    inner: F,
    counted: Option<(Rpc, Arc<RequestCounters>)>,
}

impl<F, R, E> Future for Counting<F>
where
    F: Future<Output = Result<http::Response<R>, E>> + Unpin,
{
    type Output = Result<http::Response<R>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = std::task::ready!(Pin::new(&mut self.inner).poll(cx));
        if let (Some((rpc, counters)), Ok(response)) = (self.counted.take(), &result) {
            let code = Status::from_header_map(response.headers()).map_or(Code::Ok, |s| s.code());
            counters.record(rpc, code);
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_rpc_and_every_rpc_has_an_ok_sample() {
        assert_eq!(
            Rpc::from_path("/roomhooks.v1.RoomHooks/PreRoomCreate"),
            Some(Rpc::PreRoomCreate)
        );
        assert_eq!(
            Rpc::from_path("/grpc.health.v1.Health/Check"),
            Some(Rpc::HealthCheck)
        );
        assert_eq!(Rpc::from_path("/roomhooks.v1.RoomHooks/Nope"), None);
        let counters = RequestCounters::default();
        counters.record(Rpc::ListApps, Code::Unauthenticated);
        let samples: Vec<_> = counters.samples().collect();
        assert_eq!(samples.len(), Rpc::ALL.len() + 1);
        assert!(samples.contains(&(Rpc::ListApps, Code::Unauthenticated, 1)));
        assert!(samples.contains(&(Rpc::PostEvents, Code::Ok, 0)));
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
    }
}
