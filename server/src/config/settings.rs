//! The settings table: each setting declared once, in the `settings!` table, with its heading,
//! help, default and parser; the flag, the variable, the file key and `--help` follow from it.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use serde::Serialize;

use super::values::*;
use crate::{
    apps::{registry::Capacity, settings::AppSettings, spec::TimeoutLimits},
    dispatch::call::CallLimits,
    edge::connection::Liveness,
    post::PostConfig,
};

// === the settings, each declared once ===

/// The `--help` headings settings are grouped under.
pub mod heading {
    /// Where the sidecar listens.
    pub const LISTENING: &str = "Listening";
    /// App-call and lifecycle timeouts.
    pub const TIMEOUTS: &str = "Timeouts";
    /// Post-event queues and their store.
    pub const POST_EVENTS: &str = "Post events";
    /// Heartbeats, ejection and forgetting apps.
    pub const LIVENESS: &str = "Liveness";
    /// Sizes and counts.
    pub const LIMITS: &str = "Limits";
    /// The async runtime.
    pub const RUNTIME: &str = "Runtime";
    /// Tokens and TLS.
    pub const SECURITY: &str = "Security";
    /// Logs and traces.
    pub const OBSERVABILITY: &str = "Observability";
    /// Cluster mode on NATS JetStream (`[cluster]` in the file).
    pub const CLUSTER: &str = "Cluster (NATS JetStream)";
}

/// One setting: everything the flag, the variable, the file key, `--help` and the defaults are
/// made from.
pub struct Setting {
    /// The file key (and the field of [`Config`], unless the table puts it in a group); the flag
    /// and variable follow from it.
    pub key: &'static str,
    /// The `--help` heading.
    pub heading: &'static str,
    /// What it does (one line of `--help`).
    pub help: &'static str,
    /// The default as written by a user; empty for "unset".
    pub default: &'static str,
    /// A flag without a value (`--fsync`) rather than one with a value.
    pub switch: bool,
    /// Parses `raw` into the setting's field of the config.
    pub(super) apply: fn(&mut Config, &str) -> Result<(), String>,
}

impl Setting {
    /// The command-line flag, e.g. `--max-timeout`.
    pub fn flag(&self) -> String {
        format!("--{}", self.key.replace('_', "-"))
    }

    /// The environment variable, e.g. `ROOMHOOKS_MAX_TIMEOUT`.
    pub fn env(&self) -> String {
        format!("ROOMHOOKS_{}", self.key.to_uppercase())
    }

    /// The setting named by its file key.
    pub fn named(key: &str) -> Option<&'static Setting> {
        SETTINGS.iter().find(|s| s.key == key)
    }
}

/// Makes [`Config`], [`SETTINGS`] and the flat view `--print-config` prints from the table.
///
/// `groups` names the subsystem structs that are fields of [`Config`]. Each line is one setting:
/// `HEADING kind key: Type = "default", parser, "help";` is a field `key` of [`Config`];
/// `HEADING kind key in group.field: ...` is the field `field` of the group instead (the file
/// key, flag and variable are still made from `key`). The `#[serde]` attributes of a line shape
/// how `--print-config` prints it.
macro_rules! settings {
    (
        groups { $( #[doc = $gdoc:literal] $group:ident: $gty:ty, )* }
        $(
            $(#[$attr:meta])*
            $heading:ident $kind:ident $key:ident $(in $($place:ident).+)?: $ty:ty =
                $default:literal, $parse:expr, $help:literal;
        )*
    ) => {
        settings!(@config [$([$gdoc] $group: $gty,)*] []
            $([$key $(in $($place).+)?: $ty = $default, $parse, $help])*);

        /// Every setting of [`Config`] except the per-app tables, in `--help` order.
        pub static SETTINGS: &[Setting] = &[$(
            Setting {
                key: stringify!($key),
                heading: heading::$heading,
                help: $help,
                default: $default,
                switch: settings!(@switch $kind),
                apply: |config, raw| {
                    let field = &mut settings!(@place config, $key $(, $($place).+)?);
                    *field = ($parse)(raw)?;
                    Ok(())
                },
            },
        )*];

        /// The settings as `--print-config` shows them: flat, by file key, in `--help` order.
        #[derive(Serialize)]
        pub(super) struct Printed {
            $(
                $(#[$attr])*
                $key: $ty,
            )*
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            apps: BTreeMap<String, AppSettings>,
        }

        impl From<&Config> for Printed {
            fn from(config: &Config) -> Self {
                Self {
                    $($key: settings!(@place config, $key $(, $($place).+)?).clone(),)*
                    apps: config.apps.clone(),
                }
            }
        }
    };
    // A grouped setting is a field of its group, not of `Config` itself.
    (@config $groups:tt [$($flat:tt)*]
        [$key:ident in $($place:ident).+: $ty:ty = $default:literal, $parse:expr, $help:literal]
        $($rest:tt)*
    ) => {
        settings!(@config $groups [$($flat)*] $($rest)*);
    };
    (@config $groups:tt [$($flat:tt)*]
        [$key:ident: $ty:ty = $default:literal, $parse:expr, $help:literal]
        $($rest:tt)*
    ) => {
        settings!(@config $groups [$($flat)* [$key: $ty = $default, $parse, $help]] $($rest)*);
    };
    (@config [$([$gdoc:literal] $group:ident: $gty:ty,)*]
        [$([$key:ident: $ty:ty = $default:literal, $parse:expr, $help:literal])*]
    ) => {
        /// The effective settings: the subsystems' own settings as their structs, the rest flat.
        #[derive(Clone, Debug)]
        pub struct Config {
            $(
                #[doc = $help]
                pub $key: $ty,
            )*
            $(
                #[doc = $gdoc]
                pub $group: $gty,
            )*
            /// Per-app settings, by app id.
            pub apps: BTreeMap<String, AppSettings>,
            /// Problems that do not stop the sidecar (an unknown `ROOMHOOKS_*` variable), for
            /// `main` to log once logging is set up.
            pub warnings: Vec<String>,
        }

        impl Default for Config {
            /// The declared defaults: the sidecar runs with no configuration at all.
            fn default() -> Self {
                let mut config = Self {
                    $(
                        $key: ($parse)($default)
                            .expect(concat!("the declared default of ", stringify!($key), " parses")),
                    )*
                    // Blanks, each field set to its setting's declared default just below.
                    $($group: <$gty>::default(),)*
                    apps: BTreeMap::new(),
                    warnings: Vec::new(),
                };
                for setting in SETTINGS {
                    if let Err(problem) = (setting.apply)(&mut config, setting.default) {
                        panic!("the declared default of {} does not parse: {problem}", setting.key);
                    }
                }
                config
            }
        }
    };
    (@place $config:ident, $key:ident) => { $config.$key };
    (@place $config:ident, $key:ident, $($place:ident).+) => { $config.$($place).+ };
    (@switch value) => { false };
    (@switch switch) => { true };
}

settings! {
    groups {
        /// The timeouts apps are held to: the default of an app that sets none, and the most.
        timeouts: TimeoutLimits,
        /// Post-event queues and their delivery.
        post: PostConfig,
        /// How app instances' liveness is checked.
        liveness: Liveness,
        /// The limits of one app call, ejection included.
        calls: CallLimits,
        /// How many apps and instances the registry holds at most.
        capacity: Capacity,
    }

    LISTENING value listen: SocketAddr = "127.0.0.1:50051", addr,
        "gRPC address for backends, apps, admin, health and reflection";
    LISTENING value metrics_listen: MaybeAddr = "127.0.0.1:9464", parsed::<MaybeAddr>,
        "Prometheus endpoint address (path /metrics), or off";

    #[serde(with = "humantime_serde")]
    TIMEOUTS value default_timeout in timeouts.default: Duration = "1s", duration,
        "Per-call timeout of an app that registers none";
    #[serde(with = "humantime_serde")]
    TIMEOUTS value max_timeout in timeouts.max: Duration = "10s", duration,
        "The most any app call, and any Pre call without a backend deadline, may take";
    #[serde(with = "humantime_serde")]
    TIMEOUTS value register_timeout: Duration = "10s", duration,
        "How long a new app stream may take to send Register";
    #[serde(with = "humantime_serde")]
    TIMEOUTS value drain_timeout: Duration = "10s", duration,
        "How long shutdown waits for in-flight calls";

    POST_EVENTS value post_queue_max_events in post.max_queued: usize = "100000", count::<usize>,
        "Post events kept per app before the oldest is dropped (logged, counted)";
    POST_EVENTS value post_queue_max_bytes in post.max_bytes: usize = "268435456", count::<usize>,
        "Encoded bytes of post events kept per app before the oldest is dropped";
    POST_EVENTS value post_window in post.window: usize = "1024", count::<usize>,
        "Post events sent to an app and not yet acknowledged, at most";
    #[serde(with = "humantime_serde")]
    POST_EVENTS value post_ack_timeout in post.ack_timeout: Duration = "30s", duration,
        "Redeliver a post event not acknowledged within this time (doubles per attempt, up to 16x)";
    POST_EVENTS value post_max_attempts in post.max_attempts: u32 = "10", count::<u32>,
        "Deliveries of one post event before it becomes a dead letter";
    #[serde(with = "humantime_serde")]
    POST_EVENTS value dedupe_window in post.dedupe_window: Duration = "10m", duration,
        "How long an acknowledged event id is remembered to de-duplicate retries";
    POST_EVENTS value data_dir: PathBuf = "./roomhooks-data", path,
        "Directory of the post-event store";
    POST_EVENTS switch ephemeral: bool = "off", switch,
        "Keep post events in memory only (lost on restart) instead of on disk";
    POST_EVENTS switch fsync: bool = "off", switch,
        "fdatasync each store commit: survives power loss, not just a crash of the sidecar";

    #[serde(with = "humantime_serde")]
    LIVENESS value heartbeat_interval in liveness.interval: Duration = "2s", duration,
        "How often app instances are sent a Heartbeat";
    #[serde(with = "humantime_serde")]
    LIVENESS value heartbeat_timeout in liveness.timeout: Duration = "8s", duration,
        "An instance silent this long is disconnected, noticed within one more interval (its calls retried on siblings)";
    LIVENESS value eject_after in calls.ejection.after: u32 = "5", count::<u32>,
        "Timeouts in a row that take an instance out of rotation (0 = never)";
    #[serde(with = "humantime_serde")]
    LIVENESS value eject_for in calls.ejection.base: Duration = "10s", duration,
        "How long the first ejection lasts; each further one lasts as much longer";
    LIVENESS value max_in_flight_per_instance in calls.max_in_flight_per_instance: u32 = "64", count::<u32>,
        "Pre calls one app instance may have in flight; beyond it siblings or the failure policy take over";
    #[serde(with = "humantime_serde")]
    LIVENESS value forget_apps_after: Duration = "7d", duration,
        "Forget an app with no instance and no pending post event for this long (0 = never; apps configured in the file are never forgotten)";

    LIMITS value max_message_size: usize = "4194304", count::<usize>,
        "Largest gRPC message accepted, in bytes";
    LIMITS value max_custom_field_bytes in calls.max_custom_field_bytes: usize = "65536", count::<usize>,
        "Largest encoded custom_fields of a room, in bytes (requests and app answers)";
    LIMITS value max_apps in capacity.max_apps: usize = "1000", count::<usize>,
        "Most distinct apps known at once";
    LIMITS value max_instances_per_app in capacity.max_instances_per_app: usize = "1000", count::<usize>,
        "Most live instances of one app";
    LIMITS value max_concurrent_backend_calls: usize = "4096", count::<usize>,
        "Backend calls served at once; more are shed with RESOURCE_EXHAUSTED";

    RUNTIME value runtime: RuntimeFlavor = "auto", parsed::<RuntimeFlavor>,
        "The async runtime: auto (current-thread on hosts with 2 cores or fewer, where it measured faster; multi-thread on bigger ones), multi-thread or current-thread";
    #[serde(skip_serializing_if = "Option::is_none")]
    RUNTIME value worker_threads: Option<usize> = "", optional(count::<usize>),
        "Worker threads of the multi-thread runtime (unset: one per core)";

    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::apps::settings::redact")]
    SECURITY value backend_token: Option<String> = "", optional(text),
        "The bearer token backends must send to RoomHooks and Admin (unset: open)";
    #[serde(skip_serializing_if = "Option::is_none")]
    SECURITY value tls_cert: Option<PathBuf> = "", optional(path),
        "PEM certificate chain: serve gRPC over TLS (with --tls-key)";
    #[serde(skip_serializing_if = "Option::is_none")]
    SECURITY value tls_key: Option<PathBuf> = "", optional(path),
        "PEM private key of --tls-cert";
    #[serde(skip_serializing_if = "Option::is_none")]
    SECURITY value tls_client_ca: Option<PathBuf> = "", optional(path),
        "PEM CA bundle: require client certificates signed by it (mutual TLS)";

    OBSERVABILITY value log_format: LogFormat = "pretty", parsed::<LogFormat>,
        "Log format, pretty or json (on stderr; the level comes from RUST_LOG)";

    #[serde(skip_serializing_if = "Option::is_none")]
    CLUSTER value cluster_url: Option<String> = "", optional(text),
        "NATS servers for cluster mode, comma-separated (nats://host:4222,...); unset: one sidecar with its own store";
    CLUSTER value cluster_name: String = "roomhooks", cluster_name,
        "Prefix of every NATS subject, stream, consumer and bucket, so two clusters can share one NATS";
    #[serde(skip_serializing_if = "Option::is_none")]
    CLUSTER value sidecar_id: Option<String> = "", optional(sidecar_id),
        "This sidecar's id, unique in the cluster (unset: HOSTNAME-PORT, from the host name and the --listen port)";
    CLUSTER value cluster_replicas: usize = "1", count::<usize>,
        "Replicas of the cluster's streams and buckets (3 on a 3-node NATS)";
    CLUSTER value cluster_wait: ClusterWait = "30s", parsed::<ClusterWait>,
        "How long start-up waits for NATS before it fails, or forever";
    #[serde(with = "humantime_serde")]
    CLUSTER value cluster_member_ttl: Duration = "10s", duration,
        "A sidecar that stops heartbeating is forgotten (with its instances) after this long";
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::apps::settings::redact")]
    CLUSTER value cluster_token: Option<String> = "", optional(text),
        "NATS token";
    #[serde(skip_serializing_if = "Option::is_none")]
    CLUSTER value cluster_user: Option<String> = "", optional(text),
        "NATS user (with --cluster-password)";
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "crate::apps::settings::redact")]
    CLUSTER value cluster_password: Option<String> = "", optional(text),
        "NATS password of --cluster-user";
    #[serde(skip_serializing_if = "Option::is_none")]
    CLUSTER value cluster_creds: Option<PathBuf> = "", optional(path),
        "NATS .creds file (JWT and NKey seed)";
    #[serde(skip_serializing_if = "Option::is_none")]
    CLUSTER value cluster_tls_ca: Option<PathBuf> = "", optional(path),
        "PEM CA bundle that signs the NATS servers' certificates (requires TLS)";
    #[serde(skip_serializing_if = "Option::is_none")]
    CLUSTER value cluster_tls_cert: Option<PathBuf> = "", optional(path),
        "PEM client certificate for NATS (with --cluster-tls-key)";
    #[serde(skip_serializing_if = "Option::is_none")]
    CLUSTER value cluster_tls_key: Option<PathBuf> = "", optional(path),
        "PEM private key of --cluster-tls-cert";
}

/// The variable of `--config`.
pub(super) const CONFIG_ENV: &str = "ROOMHOOKS_CONFIG";
/// The variable of `--app-token` (comma-separated).
pub(super) const APP_TOKENS_ENV: &str = "ROOMHOOKS_APP_TOKENS";
/// The variable of `--otlp-endpoint` (known even when built without the `otlp` feature).
pub(super) const OTLP_ENV: &str = "ROOMHOOKS_OTLP_ENDPOINT";
/// The keys of an `[apps.<id>]` table.
pub(super) const APP_KEYS: [&str; 12] = [
    "priority",
    "failure_policy",
    "timeout",
    "allowed_hooks",
    "essential_hooks",
    "token",
    "enabled",
    "unavailable_message",
    "mode",
    "match",
    "may_modify",
    "max_timeout",
];
