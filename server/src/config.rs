//! The sidecar's settings, from one surface: command-line flags, then `ROOMHOOKS_*` environment
//! variables, then the TOML file given with `--config`, then defaults that work with no
//! configuration at all. `roomhooks --print-config` prints the effective result as TOML.
//!
//! Each setting is declared once, in the `settings!` table below: its field of [`Config`], its
//! `--help` heading and text, its default and its parser. The flag (`--max-timeout`), the
//! variable (`ROOMHOOKS_MAX_TIMEOUT`), the file key (`max_timeout`), the default shown in
//! `--help`, [`Config::default`] and `--print-config` all follow from that one line, so they
//! cannot disagree. A bad value is reported where it was written: the file's line and column,
//! the variable, or the flag.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::{apps::settings::AppSettings, apps::spec::TimeoutLimits, post::PostConfig};

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err(r#"expected "pretty" or "json""#.into()),
        }
    }
}

/// The flavour of the tokio runtime the sidecar runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeFlavor {
    /// current-thread on hosts with 2 cores or fewer, multi-thread on bigger ones.
    Auto,
    /// A work-stealing pool of worker threads (one per core unless --worker-threads).
    MultiThread,
    /// Everything on one thread: less cross-thread wake-up cost on small machines.
    CurrentThread,
}

impl FromStr for RuntimeFlavor {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "auto" => Ok(RuntimeFlavor::Auto),
            "multi-thread" => Ok(RuntimeFlavor::MultiThread),
            "current-thread" => Ok(RuntimeFlavor::CurrentThread),
            _ => Err(r#"expected "auto", "multi-thread" or "current-thread""#.into()),
        }
    }
}

impl RuntimeFlavor {
    /// The flavour to build: `Auto` resolved for a host with `cores` cores.
    pub fn resolve(self, cores: usize) -> RuntimeFlavor {
        match self {
            RuntimeFlavor::Auto if cores <= 2 => RuntimeFlavor::CurrentThread,
            RuntimeFlavor::Auto => RuntimeFlavor::MultiThread,
            chosen => chosen,
        }
    }
}

/// An address setting that can be turned off with `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaybeAddr {
    /// Listen here.
    On(SocketAddr),
    /// Do not listen.
    Off,
}

impl FromStr for MaybeAddr {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "off" | "" => Ok(MaybeAddr::Off),
            _ => raw
                .parse()
                .map(MaybeAddr::On)
                .map_err(|_| "expected an address like 127.0.0.1:9464, or off".to_owned()),
        }
    }
}

impl Serialize for MaybeAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MaybeAddr::On(addr) => s.serialize_str(&addr.to_string()),
            MaybeAddr::Off => s.serialize_str("off"),
        }
    }
}

impl<'de> Deserialize<'de> for MaybeAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

// === the value parsers: each says what it expected ===

fn addr(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|_| "expected an address like 127.0.0.1:50051".to_owned())
}

fn duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw)
        .map_err(|_| r#"expected a duration like "5s" or "250ms""#.to_owned())
}

fn count<T: FromStr + num_bounds::Bounded>(raw: &str) -> Result<T, String> {
    raw.parse().map_err(|_| {
        format!(
            "expected a whole number from 0 to {}",
            <T as num_bounds::Bounded>::MAX
        )
    })
}

fn path(raw: &str) -> Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("expected a path".into());
    }
    Ok(PathBuf::from(raw))
}

fn switch(raw: &str) -> Result<bool, String> {
    match raw {
        "true" | "1" | "on" | "yes" => Ok(true),
        "false" | "0" | "off" | "no" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn text(raw: &str) -> Result<String, String> {
    Ok(raw.to_owned())
}

fn parsed<T: FromStr<Err = String>>(raw: &str) -> Result<T, String> {
    raw.parse()
}

/// `Some(parse(raw))`, or `None` for an empty value (the default of optional settings).
fn optional<T>(parse: fn(&str) -> Result<T, String>) -> impl Fn(&str) -> Result<Option<T>, String> {
    move |raw| match raw {
        "" => Ok(None),
        raw => parse(raw).map(Some),
    }
}

/// The largest value of each integer type, for "expected a whole number from 0 to N".
mod num_bounds {
    /// An integer type with a largest value.
    pub trait Bounded {
        /// The largest value.
        const MAX: u64;
    }
    impl Bounded for u32 {
        const MAX: u64 = u32::MAX as u64;
    }
    impl Bounded for usize {
        const MAX: u64 = usize::MAX as u64;
    }
}

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
    /// The file key and the field of [`Config`]; the flag and variable follow from it.
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
    apply: fn(&mut Config, &str) -> Result<(), String>,
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

macro_rules! settings {
    ($(
        $(#[$attr:meta])*
        $heading:ident $kind:ident $key:ident: $ty:ty = $default:literal, $parse:expr, $help:literal;
    )*) => {
        /// The effective settings.
        #[derive(Clone, Debug, Serialize)]
        pub struct Config {
            $(
                #[doc = $help]
                $(#[$attr])*
                pub $key: $ty,
            )*
            /// Per-app settings, by app id.
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            pub apps: BTreeMap<String, AppSettings>,
            /// Problems that do not stop the sidecar (an unknown `ROOMHOOKS_*` variable), for
            /// `main` to log once logging is set up.
            #[serde(skip)]
            pub warnings: Vec<String>,
        }

        /// Every setting of [`Config`] except the per-app tables, in `--help` order.
        pub static SETTINGS: &[Setting] = &[$(
            Setting {
                key: stringify!($key),
                heading: heading::$heading,
                help: $help,
                default: $default,
                switch: settings!(@switch $kind),
                apply: |config, raw| {
                    config.$key = ($parse)(raw)?;
                    Ok(())
                },
            },
        )*];

        impl Default for Config {
            /// The declared defaults: the sidecar runs with no configuration at all.
            fn default() -> Self {
                Self {
                    $(
                        $key: ($parse)($default)
                            .expect(concat!("the declared default of ", stringify!($key), " parses")),
                    )*
                    apps: BTreeMap::new(),
                    warnings: Vec::new(),
                }
            }
        }
    };
    (@switch value) => { false };
    (@switch switch) => { true };
}

settings! {
    LISTENING value listen: SocketAddr = "127.0.0.1:50051", addr,
        "gRPC address for backends, apps, admin, health and reflection";
    LISTENING value metrics_listen: MaybeAddr = "127.0.0.1:9464", parsed::<MaybeAddr>,
        "Prometheus endpoint address (path /metrics), or off";

    #[serde(with = "humantime_serde")]
    TIMEOUTS value default_timeout: Duration = "1s", duration,
        "Per-call timeout of an app that registers none";
    #[serde(with = "humantime_serde")]
    TIMEOUTS value max_timeout: Duration = "10s", duration,
        "The most any app call, and any Pre call without a backend deadline, may take";
    #[serde(with = "humantime_serde")]
    TIMEOUTS value register_timeout: Duration = "10s", duration,
        "How long a new app stream may take to send Register";
    #[serde(with = "humantime_serde")]
    TIMEOUTS value drain_timeout: Duration = "10s", duration,
        "How long shutdown waits for in-flight calls";

    POST_EVENTS value post_queue_max_events: usize = "100000", count::<usize>,
        "Post events kept per app before the oldest is dropped (logged, counted)";
    POST_EVENTS value post_queue_max_bytes: usize = "268435456", count::<usize>,
        "Encoded bytes of post events kept per app before the oldest is dropped";
    POST_EVENTS value post_window: usize = "1024", count::<usize>,
        "Post events sent to an app and not yet acknowledged, at most";
    #[serde(with = "humantime_serde")]
    POST_EVENTS value post_ack_timeout: Duration = "30s", duration,
        "Redeliver a post event not acknowledged within this time (doubles per attempt, up to 16x)";
    POST_EVENTS value post_max_attempts: u32 = "10", count::<u32>,
        "Deliveries of one post event before it becomes a dead letter";
    #[serde(with = "humantime_serde")]
    POST_EVENTS value dedupe_window: Duration = "10m", duration,
        "How long an acknowledged event id is remembered to de-duplicate retries";
    POST_EVENTS value data_dir: PathBuf = "./roomhooks-data", path,
        "Directory of the post-event store";
    POST_EVENTS switch ephemeral: bool = "off", switch,
        "Keep post events in memory only (lost on restart) instead of on disk";
    POST_EVENTS switch fsync: bool = "off", switch,
        "fdatasync each store commit: survives power loss, not just a crash of the sidecar";

    #[serde(with = "humantime_serde")]
    LIVENESS value heartbeat_interval: Duration = "2s", duration,
        "How often app instances are sent a Heartbeat";
    #[serde(with = "humantime_serde")]
    LIVENESS value heartbeat_timeout: Duration = "8s", duration,
        "An instance silent this long is disconnected, noticed within one more interval (its calls retried on siblings)";
    LIVENESS value eject_after: u32 = "5", count::<u32>,
        "Timeouts in a row that take an instance out of rotation (0 = never)";
    #[serde(with = "humantime_serde")]
    LIVENESS value eject_for: Duration = "10s", duration,
        "How long the first ejection lasts; each further one lasts as much longer";
    LIVENESS value max_in_flight_per_instance: u32 = "64", count::<u32>,
        "Pre calls one app instance may have in flight; beyond it siblings or the failure policy take over";
    #[serde(with = "humantime_serde")]
    LIVENESS value forget_apps_after: Duration = "7d", duration,
        "Forget an app with no instance and no pending post event for this long (0 = never; apps configured in the file are never forgotten)";

    LIMITS value max_message_size: usize = "4194304", count::<usize>,
        "Largest gRPC message accepted, in bytes";
    LIMITS value max_custom_field_bytes: usize = "65536", count::<usize>,
        "Largest encoded custom_fields of a room, in bytes (requests and app answers)";
    LIMITS value max_apps: usize = "1000", count::<usize>,
        "Most distinct apps known at once";
    LIMITS value max_instances_per_app: usize = "1000", count::<usize>,
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

/// The cluster's name, which prefixes NATS subjects, streams, consumers and buckets: subject
/// tokens, stream and bucket names all take `A-Z a-z 0-9 _ -`.
fn cluster_name(raw: &str) -> Result<String, String> {
    if raw.is_empty() || raw.len() > 32 {
        return Err("expected 1 to 32 characters".into());
    }
    match raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
    {
        Some(bad) => Err(format!("holds {bad:?}; use only A-Z a-z 0-9 _ -")),
        None => Ok(raw.to_owned()),
    }
}

/// A sidecar id: the alphabet of app ids (`A-Z a-z 0-9 . _ -`), up to 128 bytes.
fn sidecar_id(raw: &str) -> Result<String, String> {
    crate::ids::AppId::parse(raw)
        .map(|id| id.as_str().to_owned())
        .map_err(|e| format!("the sidecar id {e}"))
}

/// How long start-up waits for NATS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterWait {
    /// Fail the start after this long without a connection.
    Bounded(Duration),
    /// Keep retrying (not ready meanwhile).
    Forever,
}

impl FromStr for ClusterWait {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "forever" => Ok(ClusterWait::Forever),
            raw => duration(raw)
                .map(ClusterWait::Bounded)
                .map_err(|_| r#"expected a duration like "30s", or forever"#.to_owned()),
        }
    }
}

impl Serialize for ClusterWait {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ClusterWait::Bounded(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            ClusterWait::Forever => s.serialize_str("forever"),
        }
    }
}

/// The variable of `--config`.
const CONFIG_ENV: &str = "ROOMHOOKS_CONFIG";
/// The variable of `--app-token` (comma-separated).
const APP_TOKENS_ENV: &str = "ROOMHOOKS_APP_TOKENS";
/// The variable of `--otlp-endpoint` (known even when built without the `otlp` feature).
const OTLP_ENV: &str = "ROOMHOOKS_OTLP_ENDPOINT";
/// The keys of an `[apps.<id>]` table.
const APP_KEYS: [&str; 12] = [
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

/// A setting that cannot work, or a config file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ConfigError {
    /// The file key at fault (`max_timeout`, `apps.filter.timeout`), or the flag.
    pub key: String,
    /// What is wrong, and what to do.
    pub problem: String,
    /// Where the value was written, as the user wrote it (`roomhooks.toml:3:15: max_timeout =
    /// "banana"`, `ROOMHOOKS_MAX_TIMEOUT="banana"`, `--max-timeout "banana"`); none for defaults.
    pub origin: Option<String>,
    /// Further problems found in the same pass, each reported on its own line.
    pub also: Vec<ConfigError>,
}

impl ConfigError {
    fn describe(&self) -> String {
        match &self.origin {
            Some(origin) => format!("{origin}: {}", self.problem),
            None => format!("invalid setting {}: {}", self.key, self.problem),
        }
    }

    /// This problem and every further one, in the order found.
    pub fn all(&self) -> impl Iterator<Item = &ConfigError> {
        std::iter::once(self).chain(self.also.iter())
    }

    fn at(key: impl Into<String>, origin: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            problem: problem.into(),
            origin: Some(origin.into()),
            also: Vec::new(),
        }
    }
}

fn bad<T>(key: impl Into<String>, problem: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError {
        key: key.into(),
        problem: problem.into(),
        origin: None,
        also: Vec::new(),
    })
}

/// The closest of `known` to `unknown`, if it is close enough to be a typo.
fn closest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::levenshtein(unknown, k), k))
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
        .min()
        .map(|(_, k)| k)
}

fn did_you_mean(closest: Option<&str>) -> String {
    match closest {
        Some(k) => format!("; did you mean `{k}`?"),
        None => String::new(),
    }
}

/// Collects the problems of one loading pass and where each key's value came from.
#[derive(Default)]
struct Loading {
    errors: Vec<ConfigError>,
    /// Where each setting's effective value was written, for errors of [`Config::validate`].
    origins: BTreeMap<String, String>,
}

impl Loading {
    fn apply(&mut self, config: &mut Config, setting: &Setting, raw: &str, origin: String) {
        match (setting.apply)(config, raw) {
            Ok(()) => {
                self.origins.insert(setting.key.to_owned(), origin);
            }
            Err(problem) => self
                .errors
                .push(ConfigError::at(setting.key, origin, problem)),
        }
    }
}

impl Config {
    /// Resolves flags over environment over the config file over defaults.
    pub fn load(cli: Cli) -> Result<Self, ConfigError> {
        let mut config = Config::default();
        let mut loading = Loading::default();
        if let Some(path) = &cli.config {
            match std::fs::read_to_string(path) {
                Ok(text) => file::read_file(path, &text, &mut config, &mut loading),
                Err(e) => {
                    return bad(
                        "config",
                        format!("cannot read the config file {}: {e}", path.display()),
                    );
                }
            }
        }
        let known_env: BTreeSet<String> = SETTINGS
            .iter()
            .map(Setting::env)
            .chain([CONFIG_ENV, APP_TOKENS_ENV, OTLP_ENV].map(str::to_owned))
            .collect();
        for (var, raw) in &cli.env {
            if !known_env.contains(var) {
                config.warnings.push(format!(
                    "{var} is not a roomhooks setting and is ignored{}",
                    did_you_mean(closest(var, known_env.iter().map(String::as_str)))
                ));
            }
            let Some(setting) = SETTINGS.iter().find(|s| s.env() == *var) else {
                continue;
            };
            // An empty variable counts as unset, as it did with clap's `env`.
            if !cli.flags.contains_key(setting.key) && !raw.is_empty() {
                loading.apply(&mut config, setting, raw, format!("{var}={raw:?}"));
            }
        }
        for (key, raw) in &cli.flags {
            if let Some(setting) = Setting::named(key) {
                let origin = match setting.switch {
                    true => setting.flag(),
                    false => format!("{} {raw:?}", setting.flag()),
                };
                loading.apply(&mut config, setting, raw, origin);
            }
        }
        for pair in &cli.app_tokens {
            let Some((app, token)) = pair.split_once('=') else {
                loading.errors.push(ConfigError::at(
                    "app_tokens",
                    format!("--app-token {pair:?}"),
                    "expected APP_ID=TOKEN",
                ));
                continue;
            };
            let app = app.trim().to_owned();
            config.apps.entry(app).or_default().token = Some(token.trim().to_owned());
        }
        let mut errors = loading.errors.into_iter();
        if let Some(mut first) = errors.next() {
            first.also = errors.collect();
            return Err(first);
        }
        config.validate().map_err(|mut err| {
            if let Some(origin) = loading.origins.get(&err.key) {
                err.origin = Some(origin.clone());
            }
            err
        })?;
        Ok(config)
    }

    /// The effective configuration as TOML, secrets redacted; empty tables are left out.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print the config: {e}\n"))
    }

    /// Checks the settings fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_timeout.is_zero() {
            return bad("max_timeout", "must be more than zero");
        }
        if self.default_timeout.is_zero() || self.default_timeout > self.max_timeout {
            return bad(
                "default_timeout",
                "must be more than zero and at most max_timeout",
            );
        }
        if self.post_queue_max_events == 0 {
            return bad("post_queue_max_events", "must be at least 1");
        }
        if self.post_window == 0 {
            return bad("post_window", "must be at least 1");
        }
        for (key, value) in [
            (
                "max_in_flight_per_instance",
                self.max_in_flight_per_instance as usize,
            ),
            ("max_message_size", self.max_message_size),
            ("max_custom_field_bytes", self.max_custom_field_bytes),
            ("max_apps", self.max_apps),
            ("max_instances_per_app", self.max_instances_per_app),
            (
                "max_concurrent_backend_calls",
                self.max_concurrent_backend_calls,
            ),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1");
            }
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_timeout <= self.heartbeat_interval {
            return bad(
                "heartbeat_timeout",
                "must be longer than heartbeat_interval (which must be more than zero)",
            );
        }
        if self.post_max_attempts == 0 {
            return bad("post_max_attempts", "must be at least 1");
        }
        if self.post_queue_max_bytes < 1024 {
            return bad("post_queue_max_bytes", "must be at least 1024");
        }
        for (key, value) in [
            ("post_ack_timeout", self.post_ack_timeout),
            ("register_timeout", self.register_timeout),
        ] {
            if value.is_zero() {
                return bad(key, "must be more than zero");
            }
        }
        if self.worker_threads == Some(0) {
            return bad("worker_threads", "must be at least 1");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad(
                "tls_cert",
                "tls_cert and tls_key go together: set both or neither",
            );
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            return bad(
                "tls_client_ca",
                "mutual TLS needs tls_cert and tls_key as well",
            );
        }
        if self.backend_token.as_deref() == Some("") {
            return bad(
                "backend_token",
                "is empty; remove it to run without a backend token",
            );
        }
        if self.cluster_url.is_some() {
            self.validate_cluster()?;
        }
        for (app_id, app) in &self.apps {
            if let Err(e) = crate::ids::AppId::parse(app_id) {
                return bad(format!("apps.{app_id}"), format!("the app id {e}"));
            }
            if app.token.as_deref() == Some("") {
                return bad(format!("apps.{app_id}.token"), "is empty");
            }
            if app.timeout.is_some_and(|t| t.is_zero()) {
                return bad(format!("apps.{app_id}.timeout"), "must be more than zero");
            }
            if let Some(max) = app.max_timeout {
                if max.is_zero() || max > self.max_timeout {
                    return bad(
                        format!("apps.{app_id}.max_timeout"),
                        format!(
                            "must be more than zero and at most max_timeout ({})",
                            humantime::format_duration(self.max_timeout)
                        ),
                    );
                }
                if app.timeout.is_some_and(|t| t > max) {
                    return bad(
                        format!("apps.{app_id}.timeout"),
                        "must be at most the app's max_timeout",
                    );
                }
            }
            if app.mode == Some(crate::apps::rollout::Mode::Shadow)
                && !app.essential_hooks.is_empty()
            {
                return bad(
                    format!("apps.{app_id}.mode"),
                    "a shadow app cannot be essential (its answers change nothing): remove \
                     essential_hooks or use mode = \"enforce\"",
                );
            }
            if let Some(allowed) = &app.allowed_hooks
                && let Some(h) = app.essential_hooks.iter().find(|h| !allowed.contains(h))
            {
                return bad(
                    format!("apps.{app_id}.essential_hooks"),
                    format!("{h} is essential but not in allowed_hooks"),
                );
            }
        }
        Ok(())
    }

    /// The cluster settings that cannot work together.
    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let urls = self.cluster_url.as_deref().unwrap_or_default();
        if urls.split(',').any(|url| url.trim().is_empty()) {
            return bad(
                "cluster_url",
                "lists an empty address; write nats://host:4222[,nats://host2:4222]",
            );
        }
        if self.cluster_replicas == 0 || self.cluster_replicas > 5 {
            return bad("cluster_replicas", "must be 1 to 5 (JetStream's limit)");
        }
        if self.cluster_member_ttl < Duration::from_secs(2) {
            return bad(
                "cluster_member_ttl",
                "must be at least 2s (a sidecar heartbeats every quarter of it)",
            );
        }
        if self.cluster_user.is_some() != self.cluster_password.is_some() {
            return bad(
                "cluster_user",
                "cluster_user and cluster_password go together: set both or neither",
            );
        }
        if self.cluster_tls_cert.is_some() != self.cluster_tls_key.is_some() {
            return bad(
                "cluster_tls_cert",
                "cluster_tls_cert and cluster_tls_key go together: set both or neither",
            );
        }
        Ok(())
    }

    /// Whether any token is configured (otherwise the sidecar runs open).
    pub fn has_tokens(&self) -> bool {
        self.backend_token.is_some() || self.apps.values().any(|a| a.token.is_some())
    }

    /// The timeout limits apps are held to.
    pub fn timeout_limits(&self) -> TimeoutLimits {
        TimeoutLimits {
            default: self.default_timeout,
            max: self.max_timeout,
        }
    }

    /// The limits of one app call.
    pub fn call_limits(&self) -> crate::dispatch::call::CallLimits {
        crate::dispatch::call::CallLimits {
            max_in_flight_per_instance: self.max_in_flight_per_instance,
            ejection: crate::apps::instance::Ejection {
                after: self.eject_after,
                base: self.eject_for,
            },
            max_custom_field_bytes: self.max_custom_field_bytes,
        }
    }

    /// The post-delivery settings.
    pub fn post_config(&self) -> PostConfig {
        PostConfig {
            max_queued: self.post_queue_max_events,
            max_bytes: self.post_queue_max_bytes,
            window: self.post_window,
            ack_timeout: self.post_ack_timeout,
            max_attempts: self.post_max_attempts,
            dedupe_window: self.dedupe_window,
        }
    }
}

mod cli;
mod file;
#[cfg(test)]
mod tests;

pub use cli::Cli;
