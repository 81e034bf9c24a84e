//! Building an app from handlers, and running it: connect, register, answer, reconnect.
//!
//! [`AppBuilder`] (builder.rs) gathers the options and handlers; [`App`]'s entry points (here)
//! run it in place or in a task, on its own connection or a shared one; the reconnect loop
//! (reconnect.rs) runs one session after another; [`AppHandle`] (handle.rs) is a running app.

mod builder;
mod handle;
mod reconnect;

use std::{future::Future, time::Duration};

use roomhooks::v1::{FailurePolicy, Register, RoomType};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::ClientTlsConfig;

pub use self::{builder::AppBuilder, handle::AppHandle};
use crate::{
    SdkError,
    connection::{Connection, Link},
    handler::Handlers,
};

/// How an app connects and behaves; every field has a sensible default.
#[derive(Clone, Debug)]
pub struct AppOptions {
    /// The app's id.
    pub app_id: String,
    /// The app's version.
    pub version: String,
    /// This instance's id; empty = the sidecar assigns one.
    pub instance_id: String,
    /// Apps run in ascending priority, then app id.
    pub priority: i32,
    /// What the sidecar does when this app fails.
    pub failure_policy: FailurePolicy,
    /// The sidecar's per-call timeout for this app; `None` = the sidecar's default.
    pub timeout: Option<Duration>,
    /// The room types to be called for; empty = all.
    pub room_types: Vec<RoomType>,
    /// Calls handled at once; more are answered with an error (the failure policy applies).
    pub max_concurrent_calls: usize,
    /// How long shutdown waits for calls in flight.
    pub drain_timeout: Duration,
    /// The first reconnect delay.
    pub reconnect_min: Duration,
    /// The longest reconnect delay.
    pub reconnect_max: Duration,
    /// The app's token, sent as `authorization: Bearer <token>` when the sidecar requires one.
    pub token: Option<String>,
    /// TLS settings (CA, server name, client identity for mutual TLS) for the app's own
    /// connection; use an `https://` endpoint. A shared [`Connection`] has its own.
    pub tls: Option<ClientTlsConfig>,
}

/// A roomhooks app: its options and handlers. Build one with [`App::builder`].
#[derive(Clone)]
pub struct App {
    pub(crate) options: AppOptions,
    pub(crate) handlers: Handlers,
}

impl App {
    /// The options the app was built with.
    pub fn options(&self) -> &AppOptions {
        &self.options
    }

    pub(crate) fn register_message(&self) -> Register {
        let o = &self.options;
        Register {
            app_id: o.app_id.clone(),
            version: o.version.clone(),
            instance_id: o.instance_id.clone(),
            interfaces: self
                .handlers
                .interfaces()
                .into_iter()
                .map(|h| h as i32)
                .collect(),
            priority: o.priority,
            failure_policy: o.failure_policy as i32,
            timeout: o
                .timeout
                .and_then(|t| prost_types::Duration::try_from(t).ok()),
            room_types: o.room_types.iter().map(|t| *t as i32).collect(),
        }
    }

    /// Runs the app against the sidecar at `endpoint` (e.g. `http://127.0.0.1:50051`) on a
    /// connection of its own until `shutdown` completes, reconnecting with capped exponential
    /// backoff and jitter whenever the connection drops. In cluster mode `endpoint` may list
    /// several sidecars, comma-separated (`http://a:50051,http://b:50051`): when the one in use
    /// cannot be reached, the next is tried. On shutdown, calls in flight finish (up
    /// to the drain timeout) first. Returns an error only when the sidecar refuses the
    /// registration for good.
    pub async fn run_until(
        self,
        endpoint: impl Into<String>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), SdkError> {
        let link = Link::own(endpoint.into(), self.options.tls.as_ref());
        self.run_on_link(link, shutdown).await
    }

    /// Like [`run_until`](Self::run_until), on a connection shared with the other apps of this
    /// process.
    pub async fn run_on(
        self,
        connection: &Connection,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), SdkError> {
        let link = self.shared(connection);
        self.run_on_link(link, shutdown).await
    }

    async fn run_on_link(
        self,
        link: Result<Link, SdkError>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), SdkError> {
        let token = CancellationToken::new();
        let (registered, _) = watch::channel(None);
        let run = self.run_with(link, token.clone(), registered);
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => result,
            () = shutdown => {
                token.cancel();
                run.await
            }
        }
    }

    /// Runs the app in a background task on a connection of its own (to `endpoint`, or to
    /// several comma-separated sidecars, as [`run_until`](Self::run_until) takes); the handle
    /// waits for registration and stops it.
    pub fn spawn(self, endpoint: impl Into<String>) -> AppHandle {
        let link = Link::own(endpoint.into(), self.options.tls.as_ref());
        self.spawn_with(link)
    }

    /// Runs the app in a background task on a connection shared with the other apps of this
    /// process (one stream each); the handle waits for registration and stops it.
    pub fn spawn_on(self, connection: &Connection) -> AppHandle {
        let link = self.shared(connection);
        self.spawn_with(link)
    }

    /// The link for a shared connection, which carries its own TLS settings.
    fn shared(&self, connection: &Connection) -> Result<Link, SdkError> {
        if self.options.tls.is_some() {
            tracing::warn!(app_id = %self.options.app_id,
                "this app's TLS settings are not used on a shared Connection; set them with Connection::tls");
        }
        Ok(Link::Shared(connection.clone()))
    }

    fn spawn_with(self, link: Result<Link, SdkError>) -> AppHandle {
        let token = CancellationToken::new();
        let (registered, watcher) = watch::channel(None);
        let task = tokio::spawn(self.run_with(link, token.clone(), registered));
        AppHandle {
            token,
            registered: watcher,
            task: Some(task),
        }
    }
}
