//! The roomhooks sidecar: a gRPC service that runs chat-room hooks (Rocket.Chat Apps-Engine
//! semantics) on app processes connected over bidirectional streams, and aggregates their answers.
//!
//! The crate's folders follow the data path (docs/architecture.md draws it):
//! - `edge` — the gRPC services, authentication, validation; the only place a `Status` is made;
//! - `dispatch` — the Pre pipeline: veto, extend and modify stages, one app call, the alarm and
//!   the verdict;
//! - `apps` — the registry of apps and their instances (the app streams), specs, settings, stats;
//! - `post` — accepting post events, each app's queue and delivery, recovery at start;
//! - `store` — the embedded journal (fjall) post events are written to;
//! - `cluster` — cluster mode on NATS JetStream: membership, the shared registry, forwarded
//!   calls;
//! - `lifecycle` — the shutdown drain and the owner of background tasks;
//! - `ops` — metrics, logging, OpenTelemetry; [`config`] — the settings; [`sidecar`] assembles it
//!   all.
//!
//! The public API is what the binary, the tests and the bench use: [`Sidecar`], [`Config`] and
//! the settings types, [`hook::Hook`], and the log formatting of [`ops`].

pub(crate) mod apps;
pub(crate) mod cluster;
pub mod config;
pub(crate) mod dispatch;
pub(crate) mod edge;
pub mod hook;
pub(crate) mod ids;
pub(crate) mod lifecycle;
pub mod ops;
pub(crate) mod post;
pub mod sidecar;
pub(crate) mod store;

pub use apps::{
    conditions::{CompileError, Conditions},
    rollout::{FieldGuard, Mode},
    settings::{self, AppSettings},
    spec::FailurePolicy,
};
pub use config::Config;
pub use sidecar::{Sidecar, SidecarError};
