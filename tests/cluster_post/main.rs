//! Cluster mode, post events: stored once in JetStream when the backend hears OK, delivered from
//! each app's durable consumer by whichever sidecar holds its instances, acknowledged, redelivered,
//! dead-lettered and retried from any sidecar. Real nats-server nodes, real sidecars, real SDK apps.
//!
//! `delivery`: where and how often an event arrives; `dead_letters`: past the attempt cap;
//! `operations`: NATS down, metrics, removed apps' consumers; `chaos`: a sidecar and a NATS node
//! killed under load.

#[path = "../common/mod.rs"]
mod common;

mod chaos;
mod dead_letters;
mod delivery;
mod operations;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    Harness,
    cluster::{cluster_name, join, posts_stream, sidecars},
    created,
    nats::NatsCluster,
    recorder, statuses, stored_room, within,
};
use roomhooks_sdk::{
    App, HookError, RoomHooksClient,
    proto::{
        ListDeadLettersRequest, OutcomeStatus, PostEventsItem, PostRoomCreateRequest,
        RemoveAppRequest, RetryDeadLettersRequest, RoomType, SetAppEnabledRequest,
        admin_client::AdminClient, post_events_item::Event,
    },
};
use roomhooks_server::{Config, Sidecar, config::MaybeAddr};
use tokio::sync::mpsc;

/// An app that reports every PostRoomCreate it handles as (event_id, attempt) and acknowledges
/// it only when `ack` says so at that attempt.
fn choosy(
    app_id: &str,
    ack: impl Fn(u32) -> bool + Send + Sync + 'static,
) -> (App, mpsc::UnboundedReceiver<(String, u32)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let ack = Arc::new(ack);
    let app = App::builder(app_id)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .post_room_create(move |ctx, _room| {
            let _ = tx.send((ctx.event_id, ctx.attempt));
            let ok = ack(ctx.attempt);
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(HookError::Failed("not now".into()))
                }
            }
        })
        .build();
    (app, rx)
}

/// Nothing more arrives on `rx` for a while.
async fn quiet(rx: &mut mpsc::UnboundedReceiver<(String, u32)>, what: &str) {
    tokio::time::sleep(Duration::from_millis(700)).await;
    if let Ok(more) = rx.try_recv() {
        panic!("{what}: got {more:?} as well");
    }
}
