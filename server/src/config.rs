//! The sidecar's settings, from one surface: command-line flags, then `ROOMHOOKS_*` environment
//! variables, then the TOML file given with `--config`, then defaults that work with no
//! configuration at all. `roomhooks --print-config` prints the effective result as TOML.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::{post::PostConfig, settings::AppSettings, spec::TimeoutLimits};

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The flavour of the tokio runtime the sidecar runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeFlavor {
    /// current-thread on hosts with 2 cores or fewer, multi-thread on bigger ones.
    Auto,
    /// A work-stealing pool of worker threads (one per core unless --worker-threads).
    MultiThread,
    /// Everything on one thread: less cross-thread wake-up cost on small machines.
    CurrentThread,
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

impl std::str::FromStr for MaybeAddr {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "off" | "" => Ok(MaybeAddr::Off),
            _ => raw.parse().map(MaybeAddr::On).map_err(|e| {
                format!("{raw:?} is not an address like 127.0.0.1:9464 or `off`: {e}")
            }),
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

/// The command line. Every setting also reads a `ROOMHOOKS_*` environment variable; both win
/// over the config file.
#[derive(Parser, Debug, Default)]
#[command(
    name = "roomhooks",
    version,
    about = "The roomhooks sidecar: runs chat-room hooks on app processes connected over gRPC."
)]
pub struct Cli {
    /// A TOML config file (keys are the flag names with underscores, plus [apps.<app_id>] tables).
    #[arg(long, env = "ROOMHOOKS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// gRPC address for backends, apps, admin, health and reflection [default: 127.0.0.1:50051].
    #[arg(long, env = "ROOMHOOKS_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Prometheus endpoint address (path /metrics), or `off` [default: 127.0.0.1:9464].
    #[arg(long, env = "ROOMHOOKS_METRICS_LISTEN")]
    pub metrics_listen: Option<MaybeAddr>,
    /// Per-call timeout of an app that registers none [default: 1s].
    #[arg(long, env = "ROOMHOOKS_DEFAULT_TIMEOUT", value_parser = humantime::parse_duration)]
    pub default_timeout: Option<Duration>,
    /// The most any app call, and any Pre call without a backend deadline, may take [default: 10s].
    #[arg(long, env = "ROOMHOOKS_MAX_TIMEOUT", value_parser = humantime::parse_duration)]
    pub max_timeout: Option<Duration>,
    /// Post events kept per app before the oldest is dropped (logged, counted) [default: 100000].
    #[arg(long, env = "ROOMHOOKS_POST_QUEUE_MAX_EVENTS")]
    pub post_queue_max_events: Option<usize>,
    /// Post events sent to an app and not yet acknowledged, at most [default: 1024].
    #[arg(long, env = "ROOMHOOKS_POST_WINDOW")]
    pub post_window: Option<usize>,
    /// Redeliver a post event not acknowledged within this time [default: 30s].
    #[arg(long, env = "ROOMHOOKS_POST_ACK_TIMEOUT", value_parser = humantime::parse_duration)]
    pub post_ack_timeout: Option<Duration>,
    /// Encoded bytes of post events kept per app before the oldest is dropped [default: 268435456].
    #[arg(long, env = "ROOMHOOKS_POST_QUEUE_MAX_BYTES")]
    pub post_queue_max_bytes: Option<usize>,
    /// Deliveries of one post event before it becomes a dead letter [default: 10].
    #[arg(long, env = "ROOMHOOKS_POST_MAX_ATTEMPTS")]
    pub post_max_attempts: Option<u32>,
    /// How long an acknowledged event id is remembered to de-duplicate retries [default: 10m].
    #[arg(long, env = "ROOMHOOKS_DEDUPE_WINDOW", value_parser = humantime::parse_duration)]
    pub dedupe_window: Option<Duration>,
    /// Directory of the post-event store [default: ./roomhooks-data].
    #[arg(long, env = "ROOMHOOKS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep post events in memory only (lost on restart) instead of on disk.
    #[arg(long, env = "ROOMHOOKS_EPHEMERAL")]
    pub ephemeral: bool,
    /// fdatasync each store commit: survives power loss, not just a crash of the sidecar.
    #[arg(long, env = "ROOMHOOKS_FSYNC")]
    pub fsync: bool,
    /// How long a new app stream may take to send Register [default: 10s].
    #[arg(long, env = "ROOMHOOKS_REGISTER_TIMEOUT", value_parser = humantime::parse_duration)]
    pub register_timeout: Option<Duration>,
    /// How long shutdown waits for in-flight calls [default: 10s].
    #[arg(long, env = "ROOMHOOKS_DRAIN_TIMEOUT", value_parser = humantime::parse_duration)]
    pub drain_timeout: Option<Duration>,
    /// Pre calls one app instance may have in flight; beyond it siblings or the failure policy take over [default: 64].
    #[arg(long, env = "ROOMHOOKS_MAX_IN_FLIGHT_PER_INSTANCE")]
    pub max_in_flight_per_instance: Option<u32>,
    /// Timeouts in a row that take an instance out of rotation (0 = never) [default: 5].
    #[arg(long, env = "ROOMHOOKS_EJECT_AFTER")]
    pub eject_after: Option<u32>,
    /// How long the first ejection lasts; each further one lasts as much longer [default: 10s].
    #[arg(long, env = "ROOMHOOKS_EJECT_FOR", value_parser = humantime::parse_duration)]
    pub eject_for: Option<Duration>,
    /// How often app instances are sent a Heartbeat [default: 2s].
    #[arg(long, env = "ROOMHOOKS_HEARTBEAT_INTERVAL", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Option<Duration>,
    /// An instance silent this long is disconnected, noticed within one more interval (its calls retried on siblings) [default: 8s].
    #[arg(long, env = "ROOMHOOKS_HEARTBEAT_TIMEOUT", value_parser = humantime::parse_duration)]
    pub heartbeat_timeout: Option<Duration>,
    /// Largest gRPC message accepted, in bytes [default: 4194304].
    #[arg(long, env = "ROOMHOOKS_MAX_MESSAGE_SIZE")]
    pub max_message_size: Option<usize>,
    /// Largest encoded custom_fields of a room, in bytes (requests and app answers) [default: 65536].
    #[arg(long, env = "ROOMHOOKS_MAX_CUSTOM_FIELD_BYTES")]
    pub max_custom_field_bytes: Option<usize>,
    /// Most distinct apps known at once [default: 1000].
    #[arg(long, env = "ROOMHOOKS_MAX_APPS")]
    pub max_apps: Option<usize>,
    /// Most live instances of one app [default: 1000].
    #[arg(long, env = "ROOMHOOKS_MAX_INSTANCES_PER_APP")]
    pub max_instances_per_app: Option<usize>,
    /// Backend calls served at once; more are shed with RESOURCE_EXHAUSTED [default: 4096].
    #[arg(long, env = "ROOMHOOKS_MAX_CONCURRENT_BACKEND_CALLS")]
    pub max_concurrent_backend_calls: Option<usize>,
    /// PEM certificate chain: serve gRPC over TLS (with --tls-key).
    #[arg(long, env = "ROOMHOOKS_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "ROOMHOOKS_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates signed by it (mutual TLS).
    #[arg(long, env = "ROOMHOOKS_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// The async runtime: auto, multi-thread or current-thread [default: auto = current-thread on
    /// hosts with 2 cores or fewer, where it measured faster; multi-thread on bigger ones].
    #[arg(long, env = "ROOMHOOKS_RUNTIME", value_enum)]
    pub runtime: Option<RuntimeFlavor>,
    /// Worker threads of the multi-thread runtime [default: one per core].
    #[arg(long, env = "ROOMHOOKS_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// Log format; the level comes from RUST_LOG [default: pretty].
    #[arg(long, env = "ROOMHOOKS_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// The bearer token backends must send to RoomHooks and Admin [default: none, open].
    #[arg(long, env = "ROOMHOOKS_BACKEND_TOKEN", hide_env_values = true)]
    pub backend_token: Option<String>,
    /// Export spans over OTLP/gRPC to this collector (e.g. http://127.0.0.1:4317).
    #[cfg(feature = "otlp")]
    #[arg(long, env = "ROOMHOOKS_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// An app's token, as APP_ID=TOKEN (repeatable; env: comma-separated).
    #[arg(
        long = "app-token",
        env = "ROOMHOOKS_APP_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub app_tokens: Vec<String>,
}

/// The `--config` file. Unknown keys are refused.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    metrics_listen: Option<MaybeAddr>,
    #[serde(default, with = "humantime_serde")]
    default_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max_timeout: Option<Duration>,
    post_queue_max_events: Option<usize>,
    post_window: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    post_ack_timeout: Option<Duration>,
    post_queue_max_bytes: Option<usize>,
    post_max_attempts: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    dedupe_window: Option<Duration>,
    data_dir: Option<PathBuf>,
    ephemeral: Option<bool>,
    fsync: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    register_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    drain_timeout: Option<Duration>,
    max_in_flight_per_instance: Option<u32>,
    eject_after: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    eject_for: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    heartbeat_interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    heartbeat_timeout: Option<Duration>,
    max_message_size: Option<usize>,
    max_custom_field_bytes: Option<usize>,
    max_apps: Option<usize>,
    max_instances_per_app: Option<usize>,
    max_concurrent_backend_calls: Option<usize>,
    log_format: Option<LogFormat>,
    runtime: Option<RuntimeFlavor>,
    worker_threads: Option<usize>,
    backend_token: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    #[serde(default)]
    apps: BTreeMap<String, AppSettings>,
}

/// The effective settings.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// gRPC address.
    pub listen: SocketAddr,
    /// Prometheus address.
    pub metrics_listen: MaybeAddr,
    /// Timeout of apps that set none.
    #[serde(with = "humantime_serde")]
    pub default_timeout: Duration,
    /// Cap on app timeouts and on Pre calls without a deadline.
    #[serde(with = "humantime_serde")]
    pub max_timeout: Duration,
    /// Per-app post-event queue bound.
    pub post_queue_max_events: usize,
    /// Per-app unacknowledged post events, at most.
    pub post_window: usize,
    /// Redelivery delay for unacknowledged post events (doubles per attempt, up to 16×).
    #[serde(with = "humantime_serde")]
    pub post_ack_timeout: Duration,
    /// Per-app post-event queue bound in encoded bytes.
    pub post_queue_max_bytes: usize,
    /// Deliveries before a post event becomes a dead letter.
    pub post_max_attempts: u32,
    /// How long acknowledged event ids are remembered.
    #[serde(with = "humantime_serde")]
    pub dedupe_window: Duration,
    /// The post-event store's directory.
    pub data_dir: PathBuf,
    /// Post events in memory only.
    pub ephemeral: bool,
    /// fdatasync per store commit.
    pub fsync: bool,
    /// Time a new stream has to register.
    #[serde(with = "humantime_serde")]
    pub register_timeout: Duration,
    /// Shutdown drain time.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Pre calls one app instance may have in flight; beyond it siblings or the failure policy take over.
    pub max_in_flight_per_instance: u32,
    /// Timeouts in a row that take an instance out of rotation (0 = never).
    pub eject_after: u32,
    /// How long the first ejection lasts; each further one lasts as much longer.
    #[serde(with = "humantime_serde")]
    pub eject_for: Duration,
    /// How often app instances are sent a Heartbeat.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// An instance silent this long is disconnected (its calls retried on siblings).
    #[serde(with = "humantime_serde")]
    pub heartbeat_timeout: Duration,
    /// Largest gRPC message accepted, in bytes.
    pub max_message_size: usize,
    /// Largest encoded custom_fields of a room, in bytes (requests and app answers).
    pub max_custom_field_bytes: usize,
    /// Most distinct apps known at once.
    pub max_apps: usize,
    /// Most live instances of one app.
    pub max_instances_per_app: usize,
    /// Backend calls served at once; more are shed with RESOURCE_EXHAUSTED.
    pub max_concurrent_backend_calls: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// The async runtime's flavour.
    pub runtime: RuntimeFlavor,
    /// Worker threads of the multi-thread runtime (none = one per core).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_threads: Option<usize>,
    /// The backends' bearer token.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::settings::redact"
    )]
    pub backend_token: Option<String>,
    /// TLS certificate chain (PEM), when serving TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// CA bundle for client certificates (mutual TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_ca: Option<PathBuf>,
    /// Per-app settings, by app id.
    pub apps: BTreeMap<String, AppSettings>,
}

/// A setting that cannot work, or a config file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {key}: {problem}")]
pub struct ConfigError {
    /// The flag or key at fault.
    pub key: String,
    /// What is wrong, and what to do.
    pub problem: String,
}

fn bad<T>(key: impl Into<String>, problem: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError {
        key: key.into(),
        problem: problem.into(),
    })
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: MaybeAddr::On(SocketAddr::from(([127, 0, 0, 1], 9464))),
            default_timeout: Duration::from_secs(1),
            max_timeout: Duration::from_secs(10),
            post_queue_max_events: 100_000,
            post_window: 1024,
            post_ack_timeout: Duration::from_secs(30),
            post_queue_max_bytes: 256 * 1024 * 1024,
            post_max_attempts: 10,
            dedupe_window: Duration::from_secs(600),
            data_dir: PathBuf::from("./roomhooks-data"),
            ephemeral: false,
            fsync: false,
            register_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            max_in_flight_per_instance: 64,
            eject_after: 5,
            eject_for: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(8),
            max_message_size: 4 * 1024 * 1024,
            max_custom_field_bytes: 64 * 1024,
            max_apps: 1000,
            max_instances_per_app: 1000,
            max_concurrent_backend_calls: 4096,
            log_format: LogFormat::Pretty,
            runtime: RuntimeFlavor::Auto,
            worker_threads: None,
            backend_token: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            apps: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Resolves flags and environment (already in `cli`) over the config file over defaults.
    pub fn load(cli: Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let d = Config::default();
        let mut apps = file.apps;
        for pair in &cli.app_tokens {
            let Some((app, token)) = pair.split_once('=') else {
                return bad("--app-token", format!("{pair:?} is not APP_ID=TOKEN"));
            };
            apps.entry(app.trim().to_owned()).or_default().token = Some(token.trim().to_owned());
        }
        let config = Config {
            listen: cli.listen.or(file.listen).unwrap_or(d.listen),
            metrics_listen: cli
                .metrics_listen
                .or(file.metrics_listen)
                .unwrap_or(d.metrics_listen),
            default_timeout: cli
                .default_timeout
                .or(file.default_timeout)
                .unwrap_or(d.default_timeout),
            max_timeout: cli
                .max_timeout
                .or(file.max_timeout)
                .unwrap_or(d.max_timeout),
            post_queue_max_events: cli
                .post_queue_max_events
                .or(file.post_queue_max_events)
                .unwrap_or(d.post_queue_max_events),
            post_window: cli
                .post_window
                .or(file.post_window)
                .unwrap_or(d.post_window),
            post_ack_timeout: cli
                .post_ack_timeout
                .or(file.post_ack_timeout)
                .unwrap_or(d.post_ack_timeout),
            post_queue_max_bytes: cli
                .post_queue_max_bytes
                .or(file.post_queue_max_bytes)
                .unwrap_or(d.post_queue_max_bytes),
            post_max_attempts: cli
                .post_max_attempts
                .or(file.post_max_attempts)
                .unwrap_or(d.post_max_attempts),
            dedupe_window: cli
                .dedupe_window
                .or(file.dedupe_window)
                .unwrap_or(d.dedupe_window),
            data_dir: cli.data_dir.or(file.data_dir).unwrap_or(d.data_dir),
            ephemeral: cli.ephemeral || file.ephemeral.unwrap_or(d.ephemeral),
            fsync: cli.fsync || file.fsync.unwrap_or(d.fsync),
            register_timeout: cli
                .register_timeout
                .or(file.register_timeout)
                .unwrap_or(d.register_timeout),
            drain_timeout: cli
                .drain_timeout
                .or(file.drain_timeout)
                .unwrap_or(d.drain_timeout),
            max_in_flight_per_instance: cli
                .max_in_flight_per_instance
                .or(file.max_in_flight_per_instance)
                .unwrap_or(d.max_in_flight_per_instance),
            eject_after: cli
                .eject_after
                .or(file.eject_after)
                .unwrap_or(d.eject_after),
            eject_for: cli.eject_for.or(file.eject_for).unwrap_or(d.eject_for),
            heartbeat_interval: cli
                .heartbeat_interval
                .or(file.heartbeat_interval)
                .unwrap_or(d.heartbeat_interval),
            heartbeat_timeout: cli
                .heartbeat_timeout
                .or(file.heartbeat_timeout)
                .unwrap_or(d.heartbeat_timeout),
            max_message_size: cli
                .max_message_size
                .or(file.max_message_size)
                .unwrap_or(d.max_message_size),
            max_custom_field_bytes: cli
                .max_custom_field_bytes
                .or(file.max_custom_field_bytes)
                .unwrap_or(d.max_custom_field_bytes),
            max_apps: cli.max_apps.or(file.max_apps).unwrap_or(d.max_apps),
            max_instances_per_app: cli
                .max_instances_per_app
                .or(file.max_instances_per_app)
                .unwrap_or(d.max_instances_per_app),
            max_concurrent_backend_calls: cli
                .max_concurrent_backend_calls
                .or(file.max_concurrent_backend_calls)
                .unwrap_or(d.max_concurrent_backend_calls),
            log_format: cli.log_format.or(file.log_format).unwrap_or(d.log_format),
            runtime: cli.runtime.or(file.runtime).unwrap_or(d.runtime),
            worker_threads: cli.worker_threads.or(file.worker_threads),
            backend_token: cli.backend_token.or(file.backend_token),
            tls_cert: cli.tls_cert.or(file.tls_cert),
            tls_key: cli.tls_key.or(file.tls_key),
            tls_client_ca: cli.tls_client_ca.or(file.tls_client_ca),
            apps,
        };
        config.validate()?;
        Ok(config)
    }

    /// The effective configuration as TOML, secrets redacted.
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
    pub fn call_limits(&self) -> crate::call::CallLimits {
        crate::call::CallLimits {
            max_in_flight_per_instance: self.max_in_flight_per_instance,
            ejection: crate::instance::Ejection {
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

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .or_else(|e| bad("--config", format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).or_else(|e: toml::de::Error| {
        let key = e
            .span()
            .map(|span| format!("{} (byte {})", path.display(), span.start))
            .unwrap_or_else(|| path.display().to_string());
        bad(key, e.message().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auto_runtime_is_current_thread_on_two_cores_or_fewer() {
        assert_eq!(RuntimeFlavor::Auto.resolve(1), RuntimeFlavor::CurrentThread);
        assert_eq!(RuntimeFlavor::Auto.resolve(2), RuntimeFlavor::CurrentThread);
        assert_eq!(RuntimeFlavor::Auto.resolve(4), RuntimeFlavor::MultiThread);
        assert_eq!(
            RuntimeFlavor::MultiThread.resolve(2),
            RuntimeFlavor::MultiThread,
            "an explicit choice stands"
        );
        assert_eq!(cli(&[]).runtime, None, "unset means the default, auto");
        assert_eq!(
            cli(&["--runtime", "auto"]).runtime,
            Some(RuntimeFlavor::Auto)
        );
    }

    fn cli(args: &[&str]) -> Cli {
        Cli::parse_from(std::iter::once("roomhooks").chain(args.iter().copied()))
    }

    fn file(text: &str) -> tempfile_path::TempPath {
        tempfile_path::write(text)
    }

    /// A minimal temp-file helper so tests need no extra crate.
    mod tempfile_path {
        use std::path::PathBuf;

        pub struct TempPath(pub PathBuf);
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        pub fn write(text: &str) -> TempPath {
            let path = std::env::temp_dir().join(format!(
                "roomhooks-config-{:016x}.toml",
                rand::random::<u64>()
            ));
            std::fs::write(&path, text).unwrap();
            TempPath(path)
        }
    }

    #[test]
    fn defaults_need_no_configuration_and_are_valid() {
        let config = Config::load(Cli::default()).unwrap();
        assert_eq!(config.listen, Config::default().listen);
        assert_eq!(config.max_timeout, Duration::from_secs(10));
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let f = file("listen = \"127.0.0.1:6000\"\nmax_timeout = \"20s\"\npost_window = 8\n");
        let path = f.0.to_str().unwrap().to_owned();
        let config = Config::load(cli(&["--config", &path, "--listen", "127.0.0.1:7000"])).unwrap();
        assert_eq!(config.listen.port(), 7000, "flag over file");
        assert_eq!(
            config.max_timeout,
            Duration::from_secs(20),
            "file over default"
        );
        assert_eq!(config.post_window, 8);
        assert_eq!(config.default_timeout, Duration::from_secs(1), "default");
    }

    #[test]
    fn an_unknown_or_malformed_key_fails_naming_it() {
        let f = file("listen = \"127.0.0.1:6000\"\nmax_timout = \"20s\"\n");
        let err = Config::load(cli(&["--config", f.0.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("max_timout"), "{err}");
        let f = file("[apps.filter]\nallowed_hooks = [\"PreRoomNope\"]\n");
        let err = Config::load(cli(&["--config", f.0.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("PreRoomNope"), "{err}");
    }

    #[test]
    fn a_default_timeout_above_the_max_is_refused_by_name() {
        let err = Config::load(cli(&["--default-timeout", "30s"])).unwrap_err();
        assert_eq!(err.key, "default_timeout");
    }

    #[test]
    fn printed_configs_redact_tokens_and_round_trip() {
        let config = Config::load(cli(&[
            "--backend-token",
            "s3cret",
            "--app-token",
            "filter=t0k",
        ]))
        .unwrap();
        let printed = config.to_toml();
        assert!(
            !printed.contains("s3cret") && !printed.contains("t0k"),
            "{printed}"
        );
        assert!(printed.contains("<redacted>"));
        assert!(config.has_tokens());
        let reparsed: FileConfig =
            toml::from_str(&printed.replace("\"<redacted>\"", "\"x\"")).unwrap();
        assert_eq!(reparsed.listen, Some(config.listen));
    }
}
