//! Operator controls: per-app settings from the config, essential hooks, enabling and disabling
//! apps, tokens, live statistics and the Prometheus endpoint.
//!
//! `controls`: essential hooks, enabling and disabling, allowed hooks, overrides and tokens;
//! `statistics`: live statistics and the Prometheus endpoint.

#[path = "../common/mod.rs"]
mod common;

mod controls;
mod statistics;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{Harness, join_request, new_room, scrape, stored_room, within};
use roomhooks_sdk::{
    App, RoomHooksClient, SdkError, Veto,
    proto::{
        FailurePolicy, HookInterface, PostRoomCreateRequest, PreRoomCreateRequest,
        PreRoomUserJoinRequest, PreventionReason, RoomType, SetAppEnabledRequest,
        admin_client::AdminClient,
    },
};
use roomhooks_server::{config::MaybeAddr, hook::Hook, settings::AppSettings};
use tonic::Code;

fn join() -> PreRoomUserJoinRequest {
    join_request("olga")
}

fn counting_joiner(app_id: &str, calls: &Arc<AtomicUsize>) -> App {
    let calls = Arc::clone(calls);
    App::builder(app_id)
        .pre_room_user_joined(move |_, _| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .post_room_create(|_, _| async { Ok(()) })
        .build()
}

async fn set_enabled(h: &Harness, app_id: &str, enabled: bool) -> Result<(), tonic::Status> {
    AdminClient::new(h.channel().await)
        .set_app_enabled(SetAppEnabledRequest {
            app_id: app_id.into(),
            enabled,
        })
        .await
        .map(|_| ())
}

/// A sidecar where app "compliance" (never connected) is essential for PreRoomCreatePrevent,
/// with `settings` for the rest of its table; returns it with the answer to one creation.
async fn create_with_absent_compliance_app(
    settings: AppSettings,
) -> (Harness, roomhooks_sdk::proto::PreRoomCreateResponse) {
    let h = Harness::start_with(|c| {
        c.apps.insert(
            "compliance".into(),
            AppSettings {
                essential_hooks: vec![Hook::PreRoomCreatePrevent],
                ..settings
            },
        );
    })
    .await;
    let response = h
        .backend()
        .await
        .pre_room_create(PreRoomCreateRequest {
            room: Some(new_room("anything", RoomType::Channel)),
            ..Default::default()
        })
        .await
        .unwrap();
    (h, response)
}
