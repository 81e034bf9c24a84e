//! The Rust SDK for roomhooks.
//!
//! **Apps**: build an [`App`] from the handlers you need, named after the Apps-Engine interfaces;
//! registration follows from them. [`App::run_until`] connects, answers calls concurrently,
//! handles post events in order (acknowledging each after its handler returns `Ok`), reconnects
//! with backoff when the sidecar restarts, and drains in-flight calls on shutdown.
//!
//! Pre handlers (veto, extend, modify) must be free of side effects: the sidecar may retry a call
//! on another instance when one disappears mid-call, and `dry_run` calls never lead to an action.
//! Post events are delivered at least once: use [`PostContext::event_id`] to skip duplicates.
//!
//! ```no_run
//! use roomhooks_sdk::{App, Veto, HookError, prost_types::value::Kind};
//! # async fn run() -> Result<(), roomhooks_sdk::SdkError> {
//! App::builder("word-filter")
//!     .pre_room_create_prevent(|_ctx, room| async move {
//!         // custom_fields is a protobuf Struct: match a field's Kind to read it.
//!         let vetted = room.custom_fields.as_ref().and_then(|f| f.fields.get("vetted"));
//!         if let Some(Kind::BoolValue(true)) = vetted.and_then(|v| v.kind.as_ref()) {
//!             return Ok(Veto::Allow);
//!         }
//!         Ok(if room.display_name.contains("spam") { Veto::prevent("No spam rooms.") } else { Veto::Allow })
//!     })
//!     .pre_room_user_joined(|_ctx, joined| async move {
//!         match joined.joining_user.map(|u| u.username) {
//!             Some(name) if name == "troll" => Err(HookError::UserNotAllowed("You are banned.".into())),
//!             _ => Ok(()),
//!         }
//!     })
//!     .build()
//!     .run_until("http://127.0.0.1:50051", async { let _ = tokio::signal::ctrl_c().await; })
//!     .await
//! # }
//! ```
//!
//! **Several apps in one process**: give them one [`Connection`] ([`App::spawn_on`],
//! [`App::run_on`]). Each keeps its own stream and registration; a call fanned out to all of
//! them travels as one write and one read on the shared HTTP/2 connection instead of one per app.
//!
//! **Backends**: [`RoomHooksClient`] makes the eight backend calls.

mod answer;
mod app;
mod backend;
mod backoff;
mod connection;
mod context;
mod handler;
mod session;

pub use answer::{Extension, HookError, Modification, Veto};
pub use app::{App, AppBuilder, AppHandle, AppOptions};
pub use backend::{RoomHooksClient, UserMessage};
pub use connection::Connection;
pub use context::{HookContext, PostContext};
/// The protobuf well-known types: a room's `custom_fields` is a [`prost_types::Struct`] of
/// [`prost_types::Value`]s (match on [`prost_types::value::Kind`] to read one).
pub use prost_types;
/// The wire types of `roomhooks.v1` (rooms, users, requests, responses).
pub use roomhooks::v1 as proto;

/// What can go wrong running an app or a backend client.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The endpoint is not a valid URI, or its scheme is neither `http` nor `https`.
    #[error("invalid sidecar endpoint {0}")]
    InvalidEndpoint(String),
    /// The sidecar could not be reached.
    #[error("cannot connect to the sidecar: {0}")]
    Connect(#[source] tonic::transport::Error),
    /// The sidecar refused the app or ended its stream with a status.
    #[error("the sidecar refused the app: {}", .0.message())]
    Refused(tonic::Status),
    /// The sidecar broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The app task stopped.
    #[error("the app stopped")]
    Stopped,
}
