//! Building an app from handlers, and running it: connect, register, answer, reconnect.

use std::{future::Future, time::Duration};

use roomhooks::v1::{FailurePolicy, Register, Room, RoomType, RoomUserJoined, RoomUserLeave};
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::transport::ClientTlsConfig;

use crate::{
    SdkError,
    answer::{Extension, HookError, Modification, Veto},
    backoff::Backoff,
    connection::{Connection, Link},
    context::{HookContext, PostContext},
    handler::{self, Handlers},
    session::{self, SessionEnd},
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

/// Builds an [`App`]. Implement only the hooks you need: registration follows the handlers given.
#[derive(Clone)]
pub struct AppBuilder {
    app: App,
}

impl App {
    /// Starts building an app with this id.
    pub fn builder(app_id: impl Into<String>) -> AppBuilder {
        AppBuilder {
            app: App {
                options: AppOptions {
                    app_id: app_id.into(),
                    version: "0.0.0".into(),
                    instance_id: String::new(),
                    priority: 0,
                    failure_policy: FailurePolicy::Ignore,
                    timeout: None,
                    room_types: Vec::new(),
                    max_concurrent_calls: 1024,
                    drain_timeout: Duration::from_secs(10),
                    reconnect_min: Duration::from_millis(100),
                    reconnect_max: Duration::from_secs(5),
                    token: None,
                    tls: None,
                },
                handlers: Handlers::default(),
            },
        }
    }

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

    async fn run_with(
        self,
        link: Result<Link, SdkError>,
        shutdown: CancellationToken,
        registered: watch::Sender<Option<String>>,
    ) -> Result<(), SdkError> {
        let link = match link {
            Ok(link) => link,
            Err(err) => {
                report(&self.options.app_id, &format!("cannot start: {err}"));
                return Err(err);
            }
        };
        let mut backoff = Backoff::new(self.options.reconnect_min, self.options.reconnect_max);
        // Failed attempts since the app was last registered; after a few, say why once even
        // when the process has no tracing subscriber.
        let mut failures = 0u32;
        let mut reported = false;
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            match session::run(&self, &link, &shutdown, &registered).await {
                Ok(SessionEnd::Shutdown) => return Ok(()),
                Ok(SessionEnd::Disconnected { was_registered }) => {
                    if was_registered {
                        backoff.reset();
                        failures = 0;
                    }
                    tracing::info!(app_id = %self.options.app_id, "connection to the sidecar ended; reconnecting");
                }
                Err(SdkError::Refused(status)) if is_fatal(&status) => {
                    tracing::error!(app_id = %self.options.app_id,
                        "the sidecar refused this app: {} ({:?}); fix the registration and restart",
                        status.message(), status.code());
                    report(
                        &self.options.app_id,
                        &format!(
                            "the sidecar refused this app: {} ({:?}); fix the registration and restart",
                            status.message(),
                            status.code()
                        ),
                    );
                    return Err(SdkError::Refused(status));
                }
                Err(err) => {
                    let why = unreachable_because(&err);
                    tracing::warn!(app_id = %self.options.app_id, "cannot reach the sidecar at {}: {why}; retrying", link.uri());
                    failures += 1;
                    if failures >= REPORT_AFTER_FAILURES && !reported {
                        reported = true;
                        report(
                            &self.options.app_id,
                            &format!(
                                "cannot reach the sidecar at {} after {failures} attempts: {why}; still retrying \
                             (is the sidecar running there? set up a tracing subscriber to see every attempt)",
                                link.uri()
                            ),
                        );
                    }
                }
            }
            registered.send_replace(None);
            let delay = backoff.next_delay();
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// Failed connection attempts after which an app with no tracing subscriber says why on stderr.
const REPORT_AFTER_FAILURES: u32 = 3;

/// Says `what` on stderr, for processes that set up no tracing subscriber (where the SDK's
/// warnings would go nowhere).
fn report(app_id: &str, what: &str) {
    if !tracing::dispatcher::has_been_set() {
        eprintln!("roomhooks-sdk: app {app_id:?}: {what}");
    }
}

/// Why a connection attempt failed, with the causes tonic keeps behind "transport error".
fn unreachable_because(err: &SdkError) -> String {
    let mut why = match err {
        // The shared connection's failures arrive as a status; its message is the summary.
        SdkError::Refused(status) => status.message().to_owned(),
        other => other.to_string(),
    };
    let mut source = match err {
        SdkError::Refused(status) => std::error::Error::source(status),
        other => std::error::Error::source(other),
    };
    while let Some(cause) = source {
        let text = cause.to_string();
        if !why.contains(&text) {
            why.push_str(": ");
            why.push_str(&text);
        }
        source = cause.source();
    }
    why
}

/// Refusals that retrying cannot fix.
fn is_fatal(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::InvalidArgument
            | tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated
            | tonic::Code::Unimplemented
    )
}

/// A running app. Dropping the handle stops the app gracefully in the background.
pub struct AppHandle {
    token: CancellationToken,
    registered: watch::Receiver<Option<String>>,
    task: Option<JoinHandle<Result<(), SdkError>>>,
}

impl AppHandle {
    /// Waits until the sidecar accepted the registration; returns the instance id.
    pub async fn registered(&mut self) -> Result<String, SdkError> {
        loop {
            if let Some(id) = self.registered.borrow_and_update().clone() {
                return Ok(id);
            }
            if self.registered.changed().await.is_err() {
                return Err(SdkError::Stopped);
            }
        }
    }

    /// Stops gracefully: in-flight calls finish (up to the drain timeout), then the stream closes.
    pub async fn shutdown(mut self) -> Result<(), SdkError> {
        self.token.cancel();
        self.join_task().await
    }

    /// Stops at once, as a crash would: the app's stream (and its own connection, if it has one)
    /// drops with calls unanswered.
    pub fn abort(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Waits for the app to stop by itself (a fatal refusal).
    pub async fn join(mut self) -> Result<(), SdkError> {
        self.join_task().await
    }

    async fn join_task(&mut self) -> Result<(), SdkError> {
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| SdkError::Protocol(format!("app task failed: {e}")))?,
            None => Err(SdkError::Stopped),
        }
    }
}

impl Drop for AppHandle {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// One builder method per hook: `$name` takes the handler of that hook, typed by its stage
/// and payload.
macro_rules! hook_method {
    (Veto, $name:ident, $snake:ident, Room, $doc:literal) => {
        hook_method!(@pre $name, $snake, Room, Veto, $doc,
            "Answer [`Veto::Prevent`] to stop it, [`Veto::Warn`] to let it through with a warning.");
    };
    (Veto, $name:ident, $snake:ident, $payload:ident, $doc:literal) => {
        hook_method!(@pre $name, $snake, $payload, (), $doc,
            "Return `Err(HookError::UserNotAllowed(..))` to stop it.");
    };
    (Extend, $name:ident, $snake:ident, Room, $doc:literal) => {
        hook_method!(@pre $name, $snake, Room, Extension, $doc,
            "Answer the custom fields and members to add; nothing can be changed or removed.");
    };
    (Modify, $name:ident, $snake:ident, Room, $doc:literal) => {
        hook_method!(@pre $name, $snake, Room, Modification, $doc,
            "Answer the changed room; apps run as a chain, each seeing the previous one's room.");
    };
    (Post, $name:ident, $snake:ident, $payload:ident, $doc:literal) => {
        #[doc = concat!("I", stringify!($name), ": ", $doc)]
        ///
        /// Returning `Ok` acknowledges the event; an error leaves it to be redelivered.
        pub fn $snake<F, Fut>(mut self, f: F) -> Self
        where
            F: Fn(PostContext, $payload) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<(), HookError>> + Send + 'static,
        {
            self.app.handlers.$snake = Some(handler::post(f));
            self
        }
    };
    (@pre $name:ident, $snake:ident, $payload:ident, $output:ty, $doc:literal, $how:literal) => {
        #[doc = concat!("I", stringify!($name), ": ", $doc)]
        ///
        #[doc = $how]
        pub fn $snake<F, Fut>(mut self, f: F) -> Self
        where
            F: Fn(HookContext, $payload) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<$output, HookError>> + Send + 'static,
        {
            self.app.handlers.$snake = Some(handler::pre(f));
            self
        }
    };
}

/// The builder methods of every hook, from the one list ([`roomhooks::with_hooks`]).
macro_rules! hook_methods {
    ($($name:ident, $snake:ident, $stage:ident, $variant:ident, $payload:ident, $doc:literal;)*) => {
        impl AppBuilder {
            $(hook_method!($stage, $name, $snake, $payload, $doc);)*
        }
    };
}

roomhooks::with_hooks!(hook_methods);

impl AppBuilder {
    /// Sets the version shown in Admin.ListApps.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.app.options.version = version.into();
        self
    }

    /// Names this instance (default: the sidecar assigns an id).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.app.options.instance_id = id.into();
        self
    }

    /// Connects over TLS (and mutual TLS when the config carries an identity) when the app has
    /// a connection of its own; on a shared [`Connection`], use [`Connection::tls`].
    pub fn tls(mut self, tls: ClientTlsConfig) -> Self {
        self.app.options.tls = Some(tls);
        self
    }

    /// Sets the token this app presents to the sidecar.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.app.options.token = Some(token.into());
        self
    }

    /// Sets the priority: apps run in ascending priority, then app id.
    pub fn priority(mut self, priority: i32) -> Self {
        self.app.options.priority = priority;
        self
    }

    /// Sets what the sidecar does when this app fails (default: ignore the failure).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.app.options.failure_policy = policy;
        self
    }

    /// Sets the sidecar's per-call timeout for this app.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.app.options.timeout = Some(timeout);
        self
    }

    /// Limits the app to these room types (default: all).
    pub fn room_types(mut self, types: impl IntoIterator<Item = RoomType>) -> Self {
        self.app.options.room_types = types.into_iter().collect();
        self
    }

    /// Sets how many calls are handled at once.
    pub fn max_concurrent_calls(mut self, max: usize) -> Self {
        self.app.options.max_concurrent_calls = max.max(1);
        self
    }

    /// Sets how long shutdown waits for calls in flight.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.app.options.drain_timeout = timeout;
        self
    }

    /// Sets the reconnect backoff range.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.app.options.reconnect_min = min;
        self.app.options.reconnect_max = max.max(min);
        self
    }

    /// Finishes the app.
    pub fn build(self) -> App {
        self.app
    }
}
