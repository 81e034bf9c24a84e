//! Apps of one process sharing one connection (`roomhooks_sdk::Connection`): each is its own
//! registered app on its own stream, and one leaving or crashing does not disturb the others.

mod common;

use std::time::Duration;

use common::{Harness, joining, within};
use roomhooks_sdk::{
    App, AppHandle, Connection, HookError, RoomHooksClient,
    proto::{ListAppsResponse, OutcomeStatus, PreRoomUserJoinRequest, PreventResponse},
};

/// A veto app that refuses `banned` and lets everyone else in.
fn gate(app_id: &str, banned: &'static str) -> App {
    App::builder(app_id)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .pre_room_user_joined(move |_, joined| async move {
            match joined.joining_user.map(|u| u.username) {
                Some(name) if name == banned => Err(HookError::UserNotAllowed(format!(
                    "{banned} is not allowed"
                ))),
                _ => Ok(()),
            }
        })
        .build()
}

async fn start_on(connection: &Connection, app: App) -> AppHandle {
    let mut handle = app.spawn_on(connection);
    within(handle.registered()).await.expect("app registers");
    handle
}

/// Starts gate-a (bans mallory), gate-b (trudy) and gate-c (eve) on one connection, in order.
async fn three_gates(h: &Harness) -> [AppHandle; 3] {
    let connection = Connection::new(h.endpoint.clone()).unwrap();
    [
        start_on(&connection, gate("gate-a", "mallory")).await,
        start_on(&connection, gate("gate-b", "trudy")).await,
        start_on(&connection, gate("gate-c", "eve")).await,
    ]
}

/// Asks the sidecar whether `user` may join.
async fn ask(backend: &RoomHooksClient, user: &str) -> PreventResponse {
    within(backend.pre_room_user_join(join(user)))
        .await
        .unwrap()
}

fn join(user: &str) -> PreRoomUserJoinRequest {
    PreRoomUserJoinRequest {
        context: Some(joining("r1", user)),
        ..Default::default()
    }
}

/// The ids of the listed apps and each one's peer addresses.
fn peers(listed: &ListAppsResponse) -> Vec<(String, Vec<String>)> {
    listed
        .apps
        .iter()
        .map(|a| {
            let addrs = a.instances.iter().map(|i| i.peer_address.clone()).collect();
            (a.app_id.clone(), addrs)
        })
        .collect()
}

#[tokio::test]
async fn apps_on_one_connection_register_separately_and_each_answers_its_calls() {
    let h = Harness::start().await;
    let _gates = three_gates(&h).await;
    let backend = h.backend().await;

    let listed = peers(&h.list_apps().await);
    let trudy = ask(&backend, "trudy").await;
    let kim = ask(&backend, "kim").await;

    let ids: Vec<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["gate-a", "gate-b", "gate-c"]);
    let addr = &listed[0].1;
    assert_eq!(addr.len(), 1, "one instance each: {listed:?}");
    assert!(
        listed.iter().all(|(_, a)| a == addr),
        "the three apps came over one TCP connection: {listed:?}"
    );
    assert!(!trudy.allowed);
    assert_eq!(trudy.preventions.len(), 1);
    assert_eq!(trudy.preventions[0].app_id, "gate-b");
    assert_eq!(trudy.preventions[0].message, "trudy is not allowed");
    assert!(kim.allowed);
    let statuses: Vec<i32> = kim.outcomes.iter().map(|o| o.status).collect();
    assert_eq!(statuses, [OutcomeStatus::Allowed as i32; 3]);
}

#[tokio::test]
async fn an_app_stopping_or_crashing_on_a_shared_connection_leaves_the_others_serving() {
    let h = Harness::start().await;
    let [stopped, crashed, _kept] = three_gates(&h).await;
    let backend = h.backend().await;

    stopped.shutdown().await.expect("graceful stop");
    crashed.abort();
    h.wait_for_apps("only gate-c has an instance left", |l| {
        l.apps
            .iter()
            .filter(|a| !a.instances.is_empty())
            .map(|a| a.app_id.as_str())
            .eq(["gate-c"])
    })
    .await;
    let eve = ask(&backend, "eve").await;

    assert!(
        !eve.allowed,
        "gate-c still answers on the shared connection"
    );
    assert_eq!(eve.preventions[0].app_id, "gate-c");
}

#[tokio::test]
async fn apps_on_a_shared_connection_register_again_after_the_sidecar_restarts() {
    let first = Harness::start().await;
    let connection = Connection::new(first.endpoint.clone()).unwrap();
    let _a = start_on(&connection, gate("gate-a", "mallory")).await;
    let _b = start_on(&connection, gate("gate-b", "trudy")).await;

    let h = first.restart(|_| {}).await;
    h.wait_for_apps("both apps registered with the new sidecar", |l| {
        l.apps.iter().filter(|a| a.instances.len() == 1).count() == 2
    })
    .await;
    let mallory = ask(&h.backend().await, "mallory").await;

    assert!(!mallory.allowed);
    assert_eq!(mallory.preventions[0].app_id, "gate-a");
    assert_eq!(mallory.outcomes.len(), 2, "both apps answered");
}
