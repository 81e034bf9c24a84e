//! Cluster mode, Pre hooks and the shared registry: apps connected at one sidecar answer calls
//! made at another (forwarded over NATS request-reply), exactly as if they were local; every
//! sidecar knows every app, and operator changes at one apply at all. Real nats-server, real
//! sidecars, real SDK apps.
//!
//! `forwarding`: calls answered by apps at another sidecar; `registry`: what every sidecar knows of
//! every app, and operator changes; `outages`: NATS down, and an app's sidecar going away.

#[path = "../common/mod.rs"]
mod common;

mod forwarding;
mod outages;
mod registry;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    Harness,
    cluster::{cluster_name, has_instance_at, sidecars},
    dawdler, flag_set_within, join_request,
    nats::NatsCluster,
    new_room,
    raw::{RawApp, register},
    statuses, within,
};
use prost_types::Value;
use roomhooks_sdk::{
    App, Extension, HookError, Modification,
    proto::{
        FailurePolicy, HookInterface, OutcomeStatus, PreRoomCreateRequest, PreventionReason,
        Register, RemoveAppRequest, RoomType, SetAppEnabledRequest, admin_client::AdminClient,
    },
};

/// An app that refuses `banned` and counts its calls.
fn bouncer(app_id: &str, banned: &'static str, calls: Arc<AtomicUsize>) -> App {
    App::builder(app_id)
        .pre_room_user_joined(move |_, joined| {
            calls.fetch_add(1, Ordering::Relaxed);
            let refuse = joined
                .joining_user
                .as_ref()
                .is_some_and(|u| u.username == banned);
            async move {
                if refuse {
                    Err(HookError::UserNotAllowed(format!("{banned} is banned")))
                } else {
                    Ok(())
                }
            }
        })
        .build()
}

/// A Modify app at `priority` that appends " (<priority>)" to the room's display name.
fn renamer(app_id: &str, priority: i32) -> App {
    App::builder(app_id)
        .priority(priority)
        .pre_room_create_modify(move |_, mut room| async move {
            room.display_name = format!("{} ({priority})", room.display_name);
            Ok(Modification::Changed(room))
        })
        .build()
}

fn create_request(name: &str) -> PreRoomCreateRequest {
    PreRoomCreateRequest {
        room: Some(new_room(name, RoomType::Channel)),
        dry_run: false,
        request_id: String::new(),
    }
}
