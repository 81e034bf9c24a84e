//! What the store keeps, as records: a stored event (with its bookkeeping), an app's
//! registration, and what is read back at start.

use std::collections::BTreeMap;

use prost::Message;
use roomhooks::v1::PostEvent;

use crate::{apps::spec::AppSpec, ids::AppId};

/// An event as stored: the wire event plus bookkeeping.
#[derive(Clone, PartialEq, Message)]
pub struct StoredEvent {
    /// The event (its `attempt` is the last attempt known to have been made).
    #[prost(message, optional, tag = "1")]
    pub event: Option<PostEvent>,
    /// When the backend's call was accepted (Unix ms).
    #[prost(int64, tag = "2")]
    pub accepted_unix_ms: i64,
    /// Why it became a dead letter (dead letters only).
    #[prost(string, tag = "3")]
    pub reason: String,
    /// When it became a dead letter (Unix ms; dead letters only).
    #[prost(int64, tag = "4")]
    pub dead_unix_ms: i64,
    /// The apps a shared event (the `posts` keyspace) was queued for.
    #[prost(string, repeated, tag = "5")]
    pub apps: Vec<String>,
}

/// An app's registration as stored, so it stays known after a restart.
#[derive(Clone, PartialEq, Message)]
pub(super) struct StoredApp {
    #[prost(int32, repeated, tag = "1")]
    pub(super) interfaces: Vec<i32>,
    #[prost(int32, tag = "2")]
    pub(super) priority: i32,
    #[prost(bool, tag = "3")]
    pub(super) fail_closed: bool,
    #[prost(uint64, tag = "4")]
    pub(super) timeout_ms: u64,
    #[prost(int32, repeated, tag = "5")]
    pub(super) room_types: Vec<i32>,
    #[prost(string, tag = "6")]
    pub(super) version: String,
    /// When an instance of the app was last connected (Unix ms; 0 in older stores).
    #[prost(int64, tag = "7")]
    pub(super) last_seen_unix_ms: i64,
}

/// An app the store remembers.
pub struct RecoveredApp {
    /// What it registered last.
    pub spec: AppSpec,
    /// The version it registered last.
    pub version: String,
    /// When an instance of it was last connected, if the store knows.
    pub last_seen: Option<std::time::SystemTime>,
}

/// What the store held at start.
#[derive(Default)]
pub struct Recovered {
    /// Apps remembered, with the version they last registered and when they were last seen.
    pub apps: Vec<RecoveredApp>,
    /// Events apps hold on their own (retried dead letters, older stores), per app, in order.
    pub events: BTreeMap<AppId, Vec<(u64, StoredEvent)>>,
    /// Dead letters per app, in sequence order.
    pub dead: BTreeMap<AppId, Vec<(u64, StoredEvent)>>,
    /// Shared events some app has not finished, in sequence order.
    pub posts: Vec<RecoveredPost>,
    /// The first sequence number not used by anything stored.
    pub next_seq: u64,
    /// Shared events every app had finished (deleted when the store opens).
    pub(super) finished: Vec<u64>,
}

/// A shared event read back at start.
pub struct RecoveredPost {
    /// Its sequence number.
    pub seq: u64,
    /// The event as stored (its attempt is 0; `apps` is cleared).
    pub stored: StoredEvent,
    /// The apps that have not finished it, with the last delivery attempt made to each.
    pub apps: Vec<(AppId, u32)>,
}
