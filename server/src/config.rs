//! The sidecar's settings: command-line flags, each with a `ROOMHOOKS_*` environment variable and
//! a default that works with no configuration at all.

use std::{net::SocketAddr, time::Duration};

use clap::{Parser, ValueEnum};

use crate::{post::PostConfig, spec::TimeoutLimits};

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The roomhooks sidecar: runs chat-room hooks on app processes connected over gRPC.
#[derive(Parser, Clone, Debug)]
#[command(name = "roomhooks", version, about)]
pub struct Config {
    /// Address to serve gRPC on (backend, apps, admin, health, reflection). Port 0 picks a free
    /// port and logs it.
    #[arg(long, env = "ROOMHOOKS_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Per-call timeout of an app that registers none.
    #[arg(long, env = "ROOMHOOKS_DEFAULT_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub default_timeout: Duration,

    /// The most any app call, and any whole Pre call without a backend deadline, may take.
    #[arg(long, env = "ROOMHOOKS_MAX_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub max_timeout: Duration,

    /// Post events kept per app before the oldest is dropped (logged).
    #[arg(
        long,
        env = "ROOMHOOKS_POST_QUEUE_MAX_EVENTS",
        default_value_t = 100_000
    )]
    pub post_queue_max_events: usize,

    /// Post events sent to an app and not yet acknowledged, at most.
    #[arg(long, env = "ROOMHOOKS_POST_WINDOW", default_value_t = 256)]
    pub post_window: usize,

    /// How long an app has to acknowledge a post event before it is redelivered.
    #[arg(long, env = "ROOMHOOKS_POST_ACK_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub post_ack_timeout: Duration,

    /// How long a new app stream may take to send Register.
    #[arg(long, env = "ROOMHOOKS_REGISTER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub register_timeout: Duration,

    /// How long shutdown waits for in-flight calls.
    #[arg(long, env = "ROOMHOOKS_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Log format; the level comes from RUST_LOG (default: info).
    #[arg(
        long,
        env = "ROOMHOOKS_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
}

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {key}: {problem}")]
pub struct ConfigError {
    /// The flag at fault.
    pub key: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            default_timeout: Duration::from_secs(1),
            max_timeout: Duration::from_secs(10),
            post_queue_max_events: 100_000,
            post_window: 256,
            post_ack_timeout: Duration::from_secs(30),
            register_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(10),
            log_format: LogFormat::Pretty,
        }
    }
}

impl Config {
    /// Checks the settings fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, problem: &str| {
            Err(ConfigError {
                key,
                problem: problem.to_owned(),
            })
        };
        if self.max_timeout.is_zero() {
            return bad("--max-timeout", "must be more than zero");
        }
        if self.default_timeout.is_zero() || self.default_timeout > self.max_timeout {
            return bad(
                "--default-timeout",
                "must be more than zero and at most --max-timeout",
            );
        }
        if self.post_queue_max_events == 0 {
            return bad("--post-queue-max-events", "must be at least 1");
        }
        if self.post_window == 0 {
            return bad("--post-window", "must be at least 1");
        }
        if self.post_ack_timeout.is_zero() {
            return bad("--post-ack-timeout", "must be more than zero");
        }
        if self.register_timeout.is_zero() {
            return bad("--register-timeout", "must be more than zero");
        }
        Ok(())
    }

    /// The timeout limits apps are held to.
    pub fn timeout_limits(&self) -> TimeoutLimits {
        TimeoutLimits {
            default: self.default_timeout,
            max: self.max_timeout,
        }
    }

    /// The post-delivery settings.
    pub fn post_config(&self) -> PostConfig {
        PostConfig {
            max_queued: self.post_queue_max_events,
            window: self.post_window,
            ack_timeout: self.post_ack_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parsed_defaults_equal_default_and_are_valid() {
        let parsed = Config::parse_from(["roomhooks"]);
        let default = Config::default();
        assert_eq!(parsed.listen, default.listen);
        assert_eq!(parsed.max_timeout, default.max_timeout);
        assert_eq!(parsed.post_window, default.post_window);
        default.validate().unwrap();
    }

    #[test]
    fn a_default_timeout_above_the_max_is_refused_by_name() {
        let config = Config {
            default_timeout: Duration::from_secs(30),
            ..Config::default()
        };
        assert_eq!(config.validate().unwrap_err().key, "--default-timeout");
    }
}
