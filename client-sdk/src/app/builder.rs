//! Building an app: its options and, one method per hook, its handlers.

use std::{future::Future, time::Duration};

use roomhooks::v1::{FailurePolicy, Room, RoomType, RoomUserJoined, RoomUserLeave};
use tonic::transport::ClientTlsConfig;

use super::{App, AppOptions};
use crate::{
    answer::{Extension, HookError, Modification, Veto},
    context::{HookContext, PostContext},
    handler::{self, Handlers},
};

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
    /// a connection of its own; on a shared [`Connection`](crate::Connection), use
    /// [`Connection::tls`](crate::Connection::tls).
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
