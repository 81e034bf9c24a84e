//! Veto hooks: parallel fan-out, every veto reported in app order, filters, dry runs.

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{Harness, joining, new_room, statuses, stored_room, within};
use roomhooks_sdk::{
    App, HookError, UserMessage, Veto,
    proto::{
        HookInterface, OutcomeStatus, PreRoomCreateRequest, PreRoomDeleteRequest,
        PreRoomUserJoinRequest, PreRoomUserLeaveRequest, PreventionReason, RoomType, RoomUserLeave,
    },
};

fn join_request(username: &str) -> PreRoomUserJoinRequest {
    PreRoomUserJoinRequest {
        context: Some(joining("general", username)),
        dry_run: false,
        request_id: "req-1".into(),
    }
}

#[tokio::test]
async fn every_veto_is_reported_in_app_order_and_the_first_is_shown() {
    let h = Harness::start().await;
    // Registered out of order: dispatch order is priority, then app id.
    let _late = h
        .app(
            App::builder("zeta")
                .priority(20)
                .pre_room_user_joined(|_, _| async {
                    Err(HookError::UserNotAllowed("zeta says no".into()))
                })
                .build(),
        )
        .await;
    let _allow = h
        .app(
            App::builder("alpha")
                .priority(10)
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;
    let _early = h
        .app(
            App::builder("beta")
                .priority(10)
                .pre_room_user_joined(|_, _| async {
                    Err(HookError::UserNotAllowed("beta says no".into()))
                })
                .build(),
        )
        .await;

    let response = within(
        h.backend()
            .await
            .pre_room_user_join(join_request("mallory")),
    )
    .await
    .unwrap();

    assert!(!response.allowed);
    let vetoes: Vec<_> = response
        .preventions
        .iter()
        .map(|p| (p.app_id.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(vetoes, [("beta", "beta says no"), ("zeta", "zeta says no")]);
    assert!(response.preventions.iter().all(|p| {
        p.reason == PreventionReason::AppPrevented as i32
            && p.hook == HookInterface::PreRoomUserJoined as i32
    }));
    assert_eq!(response.user_message(), Some("beta says no"));
    let outcomes = statuses(&response.outcomes);
    assert_eq!(
        outcomes,
        [
            ("alpha", OutcomeStatus::Allowed),
            ("beta", OutcomeStatus::Prevented),
            ("zeta", OutcomeStatus::Prevented)
        ]
    );
    assert!(response.outcomes.iter().all(|o| !o.instance_id.is_empty()));
}

#[tokio::test]
async fn veto_apps_are_called_in_parallel_not_one_after_another() {
    let h = Harness::start().await;
    let entered = Arc::new(AtomicUsize::new(0));
    let seen_at_return = Arc::new(Mutex::new(Vec::new()));
    let mut apps = Vec::new();
    for name in ["a", "b", "c"] {
        let (entered, seen) = (Arc::clone(&entered), Arc::clone(&seen_at_return));
        let app = App::builder(name)
            .timeout(Duration::from_secs(5))
            .pre_room_user_joined(move |_, _| {
                let (entered, seen) = (Arc::clone(&entered), Arc::clone(&seen));
                async move {
                    entered.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    seen.lock().unwrap().push(entered.load(Ordering::SeqCst));
                    Ok(())
                }
            })
            .build();
        apps.push(h.app(app).await);
    }

    let response = within(h.backend().await.pre_room_user_join(join_request("bob")))
        .await
        .unwrap();

    assert!(response.allowed);
    // Had the calls been sequential, the first app to return would have seen only itself.
    assert_eq!(*seen_at_return.lock().unwrap(), vec![3, 3, 3]);
}

#[tokio::test]
async fn all_four_veto_hooks_reach_their_handlers() {
    let h = Harness::start().await;
    let _app = h
        .app(
            App::builder("guard")
                .pre_room_create_prevent(|_, room| async move {
                    Ok(if room.display_name.contains("spam") {
                        Veto::prevent("no spam rooms")
                    } else {
                        Veto::Allow
                    })
                })
                .pre_room_delete_prevent(|_, room| async move {
                    Ok(if room.id == "archive" {
                        Veto::prevent("keep the archive")
                    } else {
                        Veto::Allow
                    })
                })
                .pre_room_user_leave(|_, leave| async move {
                    match leave.leaving_user.map(|u| u.username).as_deref() {
                        Some("owner") => Err(HookError::UserNotAllowed("owners stay".into())),
                        _ => Ok(()),
                    }
                })
                .build(),
        )
        .await;
    let backend = h.backend().await;

    let create = backend
        .pre_room_create(PreRoomCreateRequest {
            room: Some(new_room("spam corner", RoomType::Channel)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(create.user_message(), Some("no spam rooms"));
    let delete = backend
        .pre_room_delete(PreRoomDeleteRequest {
            room: Some(stored_room("archive", RoomType::Channel)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(delete.user_message(), Some("keep the archive"));
    let leave = backend
        .pre_room_user_leave(PreRoomUserLeaveRequest {
            context: Some(RoomUserLeave {
                room: Some(stored_room("general", RoomType::Channel)),
                leaving_user: Some(common::user("owner")),
                removed_by: None,
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(leave.user_message(), Some("owners stay"));
    // The app registered no join handler, so joins are not sent to it.
    let join = backend
        .pre_room_user_join(join_request("owner"))
        .await
        .unwrap();
    assert!(join.allowed && join.outcomes.is_empty());
}

#[tokio::test]
async fn apps_are_not_called_for_hooks_or_room_types_they_did_not_register() {
    let h = Harness::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let _app = h
        .app(
            App::builder("channels-only")
                .room_types([RoomType::Channel])
                .pre_room_create_prevent(move |_, _| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async { Ok(Veto::prevent("never for DMs")) }
                })
                .build(),
        )
        .await;
    let backend = h.backend().await;
    let room = new_room("dm", RoomType::DirectMessage);

    let response = backend
        .pre_room_create(PreRoomCreateRequest {
            room: Some(room.clone()),
            ..Default::default()
        })
        .await
        .unwrap();

    assert!(response.allowed);
    assert!(response.outcomes.is_empty());
    assert_eq!(response.room, Some(room));
    let delete = backend
        .pre_room_delete(PreRoomDeleteRequest {
            room: Some(stored_room("r1", RoomType::Channel)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(delete.allowed && delete.outcomes.is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no call may reach the app");

    let channel = backend
        .pre_room_create(PreRoomCreateRequest {
            room: Some(new_room("chan", RoomType::Channel)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!channel.allowed, "a channel matches the filter");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn with_no_app_registered_pre_calls_allow_and_return_the_room_unchanged() {
    let h = Harness::start().await;
    let room = new_room("quiet", RoomType::PrivateGroup);
    let response = h
        .backend()
        .await
        .pre_room_create(PreRoomCreateRequest {
            room: Some(room.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(response.allowed);
    assert!(response.preventions.is_empty() && response.outcomes.is_empty());
    assert_eq!(response.room, Some(room));
}

#[tokio::test]
async fn dry_run_and_request_id_reach_the_app() {
    let h = Harness::start().await;
    let seen = Arc::new(Mutex::new(None));
    let record = Arc::clone(&seen);
    let _app = h
        .app(
            App::builder("observer")
                .pre_room_user_joined(move |ctx, _| {
                    *record.lock().unwrap() = Some((ctx.dry_run, ctx.request_id.clone()));
                    async { Ok(()) }
                })
                .build(),
        )
        .await;
    let mut request = join_request("carol");
    request.dry_run = true;
    request.request_id = "dry-42".into();

    let response = h.backend().await.pre_room_user_join(request).await.unwrap();

    assert!(response.allowed);
    assert_eq!(*seen.lock().unwrap(), Some((true, "dry-42".to_owned())));
}

#[tokio::test]
async fn the_backends_trace_context_reaches_the_app() {
    let h = Harness::start().await;
    let seen = Arc::new(Mutex::new(String::new()));
    let record = Arc::clone(&seen);
    let _app = h
        .app(
            App::builder("traced")
                .pre_room_user_joined(move |ctx, _| {
                    *record.lock().unwrap() = ctx.traceparent.clone();
                    async { Ok(()) }
                })
                .build(),
        )
        .await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request = tonic::Request::new(join_request("uma"));
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());

    roomhooks_sdk::proto::room_hooks_client::RoomHooksClient::new(h.channel().await)
        .pre_room_user_join(request)
        .await
        .unwrap();

    assert_eq!(*seen.lock().unwrap(), traceparent);
}
