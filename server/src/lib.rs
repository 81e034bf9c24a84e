//! The roomhooks sidecar: a gRPC service that runs chat-room hooks (Rocket.Chat Apps-Engine
//! semantics) on app processes connected over bidirectional streams, and aggregates their answers.
//!
//! The data path, top to bottom: [`service`] (backend edge) → [`dispatch`] (stages) →
//! [`call`] (one app call) → [`instance`] (one app stream, written as [`frame`]s) ← [`connection`] (app edge, served by
//! [`runtime_server`]), with
//! [`registry`] holding who is connected, [`verdict`] and [`extend`] aggregating answers, and
//! [`post`] delivering notifications.

pub mod admin;
pub mod alarm;
pub mod auth;
pub mod call;
pub mod config;
pub mod connection;
pub mod deadline;
pub mod dispatch;
pub mod drain;
pub mod extend;
pub mod frame;
pub mod hook;
pub mod ids;
pub mod instance;
pub mod log_fields;
pub mod metrics;
#[cfg(feature = "otlp")]
pub mod otel;
pub mod post;
pub mod process;
pub mod recover;
pub mod registry;
pub mod requests;
pub mod runtime_server;
pub mod sequence;
pub mod service;
pub mod settings;
pub mod sidecar;
pub mod spec;
pub mod stats;
pub mod store;
pub mod tasks;
pub mod validate;
pub mod verdict;

pub use config::Config;
pub use sidecar::{Sidecar, SidecarError};
