//! Several instances of one app: load sharing, consistent registration, unique instance ids,
//! and retry on a sibling when an instance vanishes mid-call.

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    Harness, joining,
    raw::{RawApp, register},
    within,
};
use futures_util::future::join_all;
use roomhooks_sdk::{
    App,
    proto::{HookInterface, OutcomeStatus, PreRoomUserJoinRequest, Register},
};
use tokio::sync::mpsc;

fn slow_joiner(instance: &str, seen: Arc<Mutex<HashMap<String, usize>>>) -> App {
    App::builder("shared")
        .instance_id(instance)
        .pre_room_user_joined(move |ctx, _| {
            *seen
                .lock()
                .unwrap()
                .entry(ctx.instance_id.clone())
                .or_default() += 1;
            async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(())
            }
        })
        .build()
}

#[tokio::test]
async fn calls_are_shared_between_the_instances_of_an_app() {
    let h = Harness::start().await;
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let _one = h.app(slow_joiner("one", Arc::clone(&seen))).await;
    let _two = h.app(slow_joiner("two", Arc::clone(&seen))).await;
    let backend = h.backend().await;

    let responses = within(join_all((0..10).map(|i| {
        backend.pre_room_user_join(PreRoomUserJoinRequest {
            context: Some(joining("general", &format!("user{i}"))),
            ..Default::default()
        })
    })))
    .await;

    assert!(responses.iter().all(|r| r.as_ref().unwrap().allowed));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.values().sum::<usize>(),
        10,
        "each call went to exactly one instance"
    );
    assert!(seen.get("one").copied().unwrap_or(0) >= 3, "{seen:?}");
    assert!(seen.get("two").copied().unwrap_or(0) >= 3, "{seen:?}");
    let listed = h.list_apps().await;
    assert_eq!(listed.apps.len(), 1);
    assert_eq!(listed.apps[0].instances.len(), 2);
}

/// Instance `instance_id` of app "shared", joining at `priority`.
fn shared_instance(instance_id: &str, priority: i32) -> Register {
    Register {
        instance_id: instance_id.into(),
        priority,
        ..register("shared", &[HookInterface::PreRoomUserJoined])
    }
}

/// Connects `register` by hand: the instance (its stream open while it lives), or the status it
/// was refused with.
async fn connect(h: &Harness, register: Register) -> Result<RawApp, tonic::Status> {
    RawApp::register(h.channel().await, register).await
}

#[tokio::test]
async fn an_instance_registering_differently_is_refused_with_what_differs() {
    let h = Harness::start().await;
    let _one = connect(&h, shared_instance("one", 5)).await.unwrap();

    let refused = connect(&h, shared_instance("two", 7)).await.err().unwrap();

    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("priority 5 vs 7"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn an_instance_asking_for_another_timeout_is_refused_with_what_differs() {
    let h = Harness::start().await;
    let with_timeout = |instance_id: &str, seconds: i64| Register {
        timeout: Some(prost_types::Duration { seconds, nanos: 0 }),
        ..shared_instance(instance_id, 5)
    };
    let _one = connect(&h, with_timeout("one", 2)).await.unwrap();

    let refused = connect(&h, with_timeout("two", 3)).await.err().unwrap();

    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("timeout 2s vs 3s"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn a_second_live_instance_with_the_same_instance_id_is_refused() {
    let h = Harness::start().await;
    let _first = connect(&h, shared_instance("same", 0)).await.unwrap();

    let refused = connect(&h, shared_instance("same", 0)).await.err().unwrap();

    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("already connected"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn a_call_is_retried_on_a_sibling_when_its_instance_dies_mid_call() {
    let h = Harness::start().await;
    let (entered_tx, mut entered_rx) = mpsc::channel::<()>(1);
    let doomed = h
        .app(
            App::builder("shared")
                .instance_id("doomed")
                .timeout(Duration::from_secs(5))
                .pre_room_user_joined(move |_, _| {
                    let entered = entered_tx.clone();
                    async move {
                        let _ = entered.send(()).await;
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                })
                .build(),
        )
        .await;
    let backend = h.backend().await;
    let call = tokio::spawn(async move {
        backend
            .pre_room_user_join(PreRoomUserJoinRequest {
                context: Some(joining("general", "henry")),
                ..Default::default()
            })
            .await
    });
    within(entered_rx.recv()).await.unwrap();
    let _survivor = h
        .app(
            App::builder("shared")
                .instance_id("survivor")
                .timeout(Duration::from_secs(5))
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;

    doomed.abort();
    let response = within(call).await.unwrap().unwrap();

    assert!(response.allowed);
    assert_eq!(response.outcomes[0].status, OutcomeStatus::Allowed as i32);
    assert_eq!(response.outcomes[0].instance_id, "survivor");
}
