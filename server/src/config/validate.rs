//! The checks that the settings fit together, run after loading and again by `Sidecar::start`.
//! Each check returns the first problem it finds; they run in this order, so the one reported
//! of several problems is always the same.

use std::time::Duration;

use super::{Config, ConfigError, bad};
use crate::apps::settings::AppSettings;

impl Config {
    /// Checks the settings fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_timeouts()?;
        self.check_sizes()?;
        self.check_liveness()?;
        self.check_delivery()?;
        self.check_runtime()?;
        self.check_security()?;
        if self.cluster_url.is_some() {
            self.validate_cluster()?;
        }
        for (app_id, app) in &self.apps {
            self.check_app(app_id, app)?;
        }
        Ok(())
    }

    /// The timeouts apps are held to: a default no longer than the most.
    fn check_timeouts(&self) -> Result<(), ConfigError> {
        if self.timeouts.max.is_zero() {
            return bad("max_timeout", "must be more than zero");
        }
        if self.timeouts.default.is_zero() || self.timeouts.default > self.timeouts.max {
            return bad(
                "default_timeout",
                "must be more than zero and at most max_timeout",
            );
        }
        Ok(())
    }

    /// The queue, window and limit sizes: none may be zero.
    fn check_sizes(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("post_queue_max_events", self.post.max_queued),
            ("post_window", self.post.window),
            (
                "max_in_flight_per_instance",
                self.calls.max_in_flight_per_instance as usize,
            ),
            ("max_message_size", self.max_message_size),
            ("max_custom_field_bytes", self.calls.max_custom_field_bytes),
            ("max_apps", self.capacity.max_apps),
            ("max_instances_per_app", self.capacity.max_instances_per_app),
            (
                "max_concurrent_backend_calls",
                self.max_concurrent_backend_calls,
            ),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1");
            }
        }
        Ok(())
    }

    /// Heartbeats: a silence longer than the interval between them.
    fn check_liveness(&self) -> Result<(), ConfigError> {
        if self.liveness.interval.is_zero() || self.liveness.timeout <= self.liveness.interval {
            return bad(
                "heartbeat_timeout",
                "must be longer than heartbeat_interval (which must be more than zero)",
            );
        }
        Ok(())
    }

    /// Post delivery and registration: attempts, the byte bound, and the waits.
    fn check_delivery(&self) -> Result<(), ConfigError> {
        if self.post.max_attempts == 0 {
            return bad("post_max_attempts", "must be at least 1");
        }
        if self.post.max_bytes < 1024 {
            return bad("post_queue_max_bytes", "must be at least 1024");
        }
        for (key, value) in [
            ("post_ack_timeout", self.post.ack_timeout),
            ("register_timeout", self.register_timeout),
        ] {
            if value.is_zero() {
                return bad(key, "must be more than zero");
            }
        }
        Ok(())
    }

    /// The runtime's thread count.
    fn check_runtime(&self) -> Result<(), ConfigError> {
        if self.worker_threads == Some(0) {
            return bad("worker_threads", "must be at least 1");
        }
        Ok(())
    }

    /// TLS files that go together, and no empty backend token.
    fn check_security(&self) -> Result<(), ConfigError> {
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
        Ok(())
    }

    /// One `[apps.<id>]` table: its id, token, timeouts and hooks.
    fn check_app(&self, app_id: &str, app: &AppSettings) -> Result<(), ConfigError> {
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
            if max.is_zero() || max > self.timeouts.max {
                return bad(
                    format!("apps.{app_id}.max_timeout"),
                    format!(
                        "must be more than zero and at most max_timeout ({})",
                        humantime::format_duration(self.timeouts.max)
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
        if app.mode == Some(crate::apps::rollout::Mode::Shadow) && !app.essential_hooks.is_empty() {
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
}
