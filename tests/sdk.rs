//! The SDK's lifecycle: reconnecting after a sidecar restart, draining on shutdown, surviving a
//! panicking handler, and what Admin.ListApps reports about a registered app.

mod common;

use std::time::Duration;

use common::{Harness, joining, within};
use roomhooks_sdk::{
    App,
    proto::{FailurePolicy, HookInterface, PreRoomUserJoinRequest, RoomType},
};
use tokio::sync::mpsc;

#[tokio::test]
async fn an_app_reconnects_and_registers_again_after_the_sidecar_restarts() {
    let first = Harness::start().await;
    let addr = first.sidecar.local_addr();
    let mut app = App::builder("survivor")
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .pre_room_user_joined(|_, _| async { Ok(()) })
        .build()
        .spawn(first.endpoint.clone());
    within(app.registered()).await.unwrap();

    let h = first.restart(|_| {}).await;
    assert_eq!(h.sidecar.local_addr(), addr);

    h.wait_for_apps("the app registered with the new sidecar", |l| {
        l.apps.len() == 1 && l.apps[0].instances.len() == 1
    })
    .await;
    let response = h
        .backend()
        .await
        .pre_room_user_join(PreRoomUserJoinRequest {
            context: Some(joining("r1", "kim")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(response.outcomes.len(), 1, "the reconnected app answered");
}

#[tokio::test]
async fn shutdown_lets_a_call_in_flight_finish_before_the_stream_closes() {
    let h = Harness::start().await;
    let (entered_tx, mut entered_rx) = mpsc::unbounded_channel();
    let app = h
        .app(
            App::builder("drainer")
                .timeout(Duration::from_secs(5))
                .pre_room_user_joined(move |_, _| {
                    let entered = entered_tx.clone();
                    async move {
                        let _ = entered.send(());
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Err(roomhooks_sdk::HookError::UserNotAllowed(
                            "answered while draining".into(),
                        ))
                    }
                })
                .build(),
        )
        .await;
    let backend = h.backend().await;
    let call = tokio::spawn(async move {
        backend
            .pre_room_user_join(PreRoomUserJoinRequest {
                context: Some(joining("r1", "lee")),
                ..Default::default()
            })
            .await
    });
    within(entered_rx.recv()).await.unwrap();

    within(app.shutdown()).await.unwrap();

    let response = within(call).await.unwrap().unwrap();
    assert_eq!(response.preventions[0].message, "answered while draining");
}

#[tokio::test]
async fn list_apps_reports_what_an_app_registered_and_its_instances() {
    let h = Harness::start().await;
    let _app = h
        .app(
            App::builder("listed")
                .version("2.1.0")
                .instance_id("listed-1")
                .priority(7)
                .failure_policy(FailurePolicy::Fail)
                .timeout(Duration::from_millis(750))
                .room_types([RoomType::Channel, RoomType::Livechat])
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .post_room_create(|_, _| async { Ok(()) })
                .build(),
        )
        .await;

    let listed = h.list_apps().await;

    let app = &listed.apps[0];
    assert_eq!(app.app_id, "listed");
    assert_eq!(app.versions, ["2.1.0"]);
    assert_eq!(
        app.interfaces,
        [
            HookInterface::PostRoomCreate as i32,
            HookInterface::PreRoomUserJoined as i32
        ]
    );
    assert_eq!(app.priority, 7);
    assert_eq!(app.failure_policy, FailurePolicy::Fail as i32);
    assert_eq!(
        app.timeout,
        Some(prost_types::Duration {
            seconds: 0,
            nanos: 750_000_000
        })
    );
    assert_eq!(
        app.room_types,
        [RoomType::Channel as i32, RoomType::Livechat as i32]
    );
    let instance = &app.instances[0];
    assert_eq!(instance.instance_id, "listed-1");
    assert!(instance.peer_address.starts_with("127.0.0.1:"));
    assert!(instance.connected_since.is_some());
}

#[tokio::test]
async fn a_handler_that_panics_answers_an_error_and_the_app_keeps_serving() {
    let h = Harness::start().await;
    let _app = h
        .app(
            App::builder("fragile")
                // The panic hook prints the panic (with RUST_BACKTRACE, a symbolized backtrace)
                // before the SDK answers; on a loaded CI machine that took over the default 1 s.
                .timeout(Duration::from_secs(5))
                .pre_room_user_joined(|_, ctx| async move {
                    let user = ctx.joining_user.map(|u| u.username).unwrap_or_default();
                    if user == "boom" {
                        panic!("a bug in the handler");
                    }
                    Ok(())
                })
                .build(),
        )
        .await;
    let backend = h.backend().await;
    let join = |user: &str| PreRoomUserJoinRequest {
        context: Some(joining("r1", user)),
        ..Default::default()
    };

    let broken = within(backend.pre_room_user_join(join("boom")))
        .await
        .unwrap();
    let fine = within(backend.pre_room_user_join(join("kim")))
        .await
        .unwrap();

    assert!(
        broken.outcomes[0].detail.contains("the handler panicked"),
        "the panic became an error answer: {:?}",
        broken.outcomes[0]
    );
    assert_eq!(
        fine.outcomes[0].status,
        roomhooks_sdk::proto::OutcomeStatus::Allowed as i32,
        "the same connection serves the next call"
    );
}

#[tokio::test]
async fn an_endpoint_without_a_scheme_is_taken_as_http() {
    let h = Harness::start().await;
    let bare = h.sidecar.local_addr().to_string();
    let mut app = App::builder("bare")
        .pre_room_user_joined(|_, _| async { Ok(()) })
        .build()
        .spawn(bare.clone());
    tokio::time::timeout(Duration::from_secs(5), app.registered())
        .await
        .expect("the app registers on 127.0.0.1:<port> without http://")
        .unwrap();

    let backend = roomhooks_sdk::RoomHooksClient::connect(bare)
        .await
        .expect("a backend connects without http:// too");
    let response = backend
        .pre_room_user_join(PreRoomUserJoinRequest {
            context: Some(joining("r1", "kim")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(response.outcomes.len(), 1);
}

#[tokio::test]
async fn an_endpoint_with_another_scheme_fails_at_once_saying_to_add_http() {
    let h = Harness::start().await;
    let endpoint = format!("grpc://{}", h.sidecar.local_addr());
    let result = tokio::time::timeout(
        Duration::from_secs(5),
        App::builder("confused")
            .pre_room_user_joined(|_, _| async { Ok(()) })
            .build()
            .run_until(endpoint, std::future::pending()),
    )
    .await
    .expect("fails at once instead of retrying");
    match result {
        Err(roomhooks_sdk::SdkError::InvalidEndpoint(why)) => {
            assert!(why.contains("add http:// or https://"), "{why}")
        }
        other => panic!("expected InvalidEndpoint, got {other:?}"),
    }
}

#[tokio::test]
async fn an_app_reads_a_custom_field_with_the_reexported_prost_types() {
    use roomhooks_sdk::{
        Veto,
        prost_types::{Struct, Value, value::Kind},
    };

    let h = Harness::start().await;
    let _app = h
        .app(
            App::builder("private-rooms-only")
                .pre_room_create_prevent(|_ctx, room| async move {
                    let private = room
                        .custom_fields
                        .as_ref()
                        .and_then(|fields| fields.fields.get("private"))
                        .and_then(|value| value.kind.as_ref());
                    Ok(match private {
                        Some(Kind::BoolValue(true)) => Veto::Allow,
                        _ => Veto::prevent("Only private rooms here."),
                    })
                })
                .build(),
        )
        .await;

    let mut room = common::new_room("Secret Club", RoomType::Channel);
    room.custom_fields = Some(Struct {
        fields: [("private".to_owned(), Value::from(true))].into(),
    });
    let response = h
        .backend()
        .await
        .pre_room_create(roomhooks_sdk::proto::PreRoomCreateRequest {
            room: Some(room),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(response.allowed, "the app read private = true");
}
