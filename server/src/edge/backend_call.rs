//! The backend-call layer: each `RoomHooks` call runs in one `backend_call` span, named for its
//! hook, continuing the backend's trace (with the `otlp` feature), and its handler finds the
//! call's [`CallStart`] — deadline and trace context, read from the headers — as a request
//! extension. Handlers add what only the body says ([`record_pre`], [`record_event`],
//! [`record_batch`]).

use std::{
    task::{Context, Poll},
    time::Duration,
};

use tonic::{
    body::Body,
    codegen::{Service, http},
    server::NamedService,
};
use tracing::{Instrument, Span, field, instrument::Instrumented};

use super::deadline::{CallContext, CallStart};
use crate::hook::Hook;

/// A service whose calls each run in a `backend_call` span, with their [`CallStart`].
#[derive(Clone)]
pub struct BackendCall<S> {
    inner: S,
    max_timeout: Duration,
}

impl<S> BackendCall<S> {
    /// Wraps `inner`; no call's deadline is later than `max_timeout` from its start.
    pub fn new(inner: S, max_timeout: Duration) -> Self {
        Self { inner, max_timeout }
    }
}

impl<S: NamedService> NamedService for BackendCall<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for BackendCall<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let start = CallStart::from_headers(request.headers(), self.max_timeout);
        let span = tracing::info_span!(
            "backend_call",
            hook = hook_of(request.uri().path()),
            dry_run = field::Empty,
            request_id = field::Empty,
            event_id = field::Empty,
            events = field::Empty,
        );
        #[cfg(feature = "otlp")]
        crate::ops::otel::continue_trace(&span, &start.traceparent);
        request.extensions_mut().insert(start);
        let call = span.in_scope(|| self.inner.call(request));
        call.instrument(span)
    }
}

/// The span's `hook`: the hook a `RoomHooks` method runs (`PreRoomCreate` runs three).
fn hook_of(path: &str) -> &'static str {
    match path.rsplit('/').next().unwrap_or_default() {
        "PreRoomCreate" => "PreRoomCreate",
        "PreRoomDelete" => Hook::PreRoomDeletePrevent.name(),
        "PreRoomUserJoin" => Hook::PreRoomUserJoined.name(),
        "PreRoomUserLeave" => Hook::PreRoomUserLeave.name(),
        "PostRoomCreate" => Hook::PostRoomCreate.name(),
        "PostRoomDeleted" => Hook::PostRoomDeleted.name(),
        "PostRoomUserJoined" => Hook::PostRoomUserJoined.name(),
        "PostRoomUserLeave" => Hook::PostRoomUserLeave.name(),
        "PostEvents" => "PostEvents",
        _ => "unknown",
    }
}

/// The context of a call whose body says `dry_run` and `request_id`, from the [`CallStart`] the
/// layer set (or, outside the layer, read from `request`'s metadata); noted on the call's span.
pub fn context<T>(
    request: &tonic::Request<T>,
    max_timeout: Duration,
    dry_run: bool,
    request_id: &str,
) -> CallContext {
    match request.extensions().get::<CallStart>() {
        Some(start) => CallContext::new(start.clone(), dry_run, request_id.to_owned()),
        None => CallContext::from_metadata(
            request.metadata(),
            max_timeout,
            dry_run,
            request_id.to_owned(),
        ),
    }
}

/// Notes a Pre call's dry-run flag and request id (when it has one) on its span.
pub fn record_pre(ctx: &CallContext) {
    let span = Span::current();
    span.record("dry_run", ctx.dry_run);
    if !ctx.request_id.is_empty() {
        span.record("request_id", field::display(&ctx.request_id));
    }
}

/// Notes a single post event's id on its call's span.
pub fn record_event(event_id: &impl std::fmt::Display) {
    Span::current().record("event_id", field::display(event_id));
}

/// Notes how many events a PostEvents call carries on its span.
pub fn record_batch(events: usize) {
    Span::current().record("events", events);
}
