//! Admission of backend calls: refused at once, before the request is decoded, while the sidecar
//! drains for shutdown (`UNAVAILABLE`) or when it already serves `--max-concurrent-backend-calls`
//! (`RESOURCE_EXHAUSTED`: load is shed, never queued). An admitted call holds its slot — and the
//! drain waits for it — until its response is ready.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{
    Status,
    body::Body,
    codegen::{Service, http},
    server::NamedService,
};

use crate::lifecycle::drain::{CallGuard, Drain, Draining};

/// A service whose calls are admitted by the drain and a concurrency limit.
#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    drain: Arc<Drain>,
    slots: Arc<Semaphore>,
    max_concurrent: usize,
}

impl<S> Admission<S> {
    /// Admits at most `max_concurrent` calls to `inner` at once, none once `drain` began.
    pub fn new(inner: S, drain: Arc<Drain>, max_concurrent: usize) -> Self {
        Self {
            inner,
            drain,
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
        }
    }

    /// A slot for one call, or the status that refuses it.
    fn admit(&self) -> Result<Slot, Status> {
        let drain = self.drain.admit().map_err(|Draining| {
            Status::unavailable(
                "the roomhooks sidecar is shutting down: retry this call at another sidecar \
                 (its health check already reports NOT_SERVING)",
            )
        })?;
        let permit = Arc::clone(&self.slots).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "the sidecar is serving {} backend calls already (--max-concurrent-backend-calls); \
                 retry with backoff",
                self.max_concurrent
            ))
        })?;
        Ok(Slot {
            _permit: permit,
            _drain: drain,
        })
    }
}

impl<S: NamedService> NamedService for Admission<S> {
    const NAME: &'static str = S::NAME;
}

/// What one admitted call holds while it runs.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _drain: CallGuard,
}

impl<S, B> Service<http::Request<B>> for Admission<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Unpin,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Admitted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self.admit() {
            Ok(slot) => Admitted::Running {
                inner: self.inner.call(request),
                _slot: slot,
            },
            Err(status) => Admitted::Refused(Some(status)),
        }
    }
}

/// An admitted call running with its slot, or a refusal.
pub enum Admitted<F> {
    /// The call runs; the slot is released when its response is ready.
    Running {
        /// The inner service's response.
        inner: F,
        /// Released with this future.
        _slot: Slot,
    },
    /// The call was refused with this status.
    Refused(Option<Status>),
}

impl<F, E> Future for Admitted<F>
where
    F: Future<Output = Result<http::Response<Body>, E>> + Unpin,
{
    type Output = Result<http::Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Admitted::Running { inner, .. } => Pin::new(inner).poll(cx),
            Admitted::Refused(status) => Poll::Ready(Ok(status
                .take()
                .unwrap_or_else(|| Status::internal("polled after completion"))
                .into_http())),
        }
    }
}
