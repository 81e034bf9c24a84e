//! Statuses tonic builds before a handler runs, recast as the README promises and gRPC's
//! conventions say: a request that cannot be decoded (invalid UTF-8 in a string, truncated bytes,
//! messages nested deeper than prost's limit of 100) is `INVALID_ARGUMENT`, not `INTERNAL`; one
//! over `--max-message-size` is `RESOURCE_EXHAUSTED` naming the flag, not `OUT_OF_RANGE`.
//!
//! tonic answers both before the request reaches our code, as a trailers-only response (the
//! status in the headers), so this layer looks only at responses that carry `grpc-status` in
//! their headers: an answered call's status comes in trailers and passes untouched.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tonic::{
    Code, Status,
    body::Body,
    codegen::{Service, http},
    server::NamedService,
};

/// The prefix of prost's decode errors, as tonic reports them.
const DECODE_ERROR: &str = "failed to decode Protobuf message: ";
/// What tonic says of a message over the decoding limit.
const TOO_LARGE: &str = "decoded message length too large";

/// A gRPC service whose decode and size errors get the right status.
#[derive(Clone, Debug)]
pub struct RecoverDecodeErrors<S> {
    inner: S,
    max_message_size: usize,
}

impl<S> RecoverDecodeErrors<S> {
    /// Wraps `inner`, which decodes at most `max_message_size` bytes per message.
    pub fn new(inner: S, max_message_size: usize) -> Self {
        Self {
            inner,
            max_message_size,
        }
    }
}

impl<S: NamedService> NamedService for RecoverDecodeErrors<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for RecoverDecodeErrors<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Unpin,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Recovering<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        Recovering {
            inner: self.inner.call(request),
            max_message_size: self.max_message_size,
        }
    }
}

/// The inner service's response, recast when it is a decode or size error.
pub struct Recovering<F> {
    inner: F,
    max_message_size: usize,
}

impl<F, E> Future for Recovering<F>
where
    F: Future<Output = Result<http::Response<Body>, E>> + Unpin,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = std::task::ready!(Pin::new(&mut self.inner).poll(cx))?;
        Poll::Ready(Ok(recast(response, self.max_message_size)))
    }
}

/// The response with its early status recast, or as it was.
fn recast(response: http::Response<Body>, max_message_size: usize) -> http::Response<Body> {
    if !response.headers().contains_key("grpc-status") {
        return response;
    }
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    match recast_status(&status, max_message_size) {
        Some(recast) => recast.into_http(),
        None => response,
    }
}

/// The status a decode or size error should have had; `None` for any other status.
fn recast_status(status: &Status, max_message_size: usize) -> Option<Status> {
    match status.code() {
        Code::Internal => status.message().strip_prefix(DECODE_ERROR).map(|why| {
            Status::invalid_argument(format!(
                "the request could not be decoded: {why} (strings must be valid UTF-8, and \
                 messages may nest at most 100 deep: a google.protobuf.Struct about 30 \
                 objects deep)"
            ))
        }),
        Code::OutOfRange if status.message().contains(TOO_LARGE) => {
            Some(Status::resource_exhausted(format!(
                "the request is larger than --max-message-size ({max_message_size} bytes): {}; \
                 send less, or raise --max-message-size",
                status.message()
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_decode_and_size_errors_are_recast() {
        let decode = Status::internal(format!("{DECODE_ERROR}Room.display_name: invalid string"));
        let recast = recast_status(&decode, 10).unwrap();
        assert_eq!(recast.code(), Code::InvalidArgument);
        assert!(
            recast
                .message()
                .contains("Room.display_name: invalid string")
        );

        let large = Status::out_of_range(
            "Error, decoded message length too large: found 20 bytes, the limit is: 10 bytes",
        );
        let recast = recast_status(&large, 10).unwrap();
        assert_eq!(recast.code(), Code::ResourceExhausted);
        assert!(recast.message().contains("--max-message-size (10 bytes)"));

        assert!(recast_status(&Status::internal("something else"), 10).is_none());
        assert!(recast_status(&Status::invalid_argument("room is required"), 10).is_none());
    }
}
