//! Operating the sidecar: the Prometheus endpoint ([`metrics`], with the standard
//! [`process`] series), JSON log fields ([`log_fields`]) and OpenTelemetry export (`otel`,
//! feature `otlp`). It reads apps, post and lifecycle; nothing depends on it but the sidecar.

pub mod log_fields;
pub mod metrics;
#[cfg(feature = "otlp")]
pub mod otel;
pub mod process;
