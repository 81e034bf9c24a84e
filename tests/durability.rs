//! Durable post events: what the backend got an OK for survives a sidecar restart, reaches apps
//! that connect later, becomes a dead letter after the attempt cap, and is accepted once when the
//! backend retries it.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{Harness, created, recorder, within};
use roomhooks_sdk::{
    App, HookError,
    proto::{
        FailurePolicy, ListDeadLettersRequest, OutcomeStatus, PreRoomUserJoinRequest,
        PreventionReason, RetryDeadLettersRequest, admin_client::AdminClient,
    },
};

#[tokio::test]
async fn accepted_events_survive_a_restart_and_reach_an_app_that_connects_later() {
    let h = Harness::start().await;
    let (first, _) = recorder("archiver");
    h.app(first).await.shutdown().await.unwrap();
    let backend = h.backend().await;
    for id in ["a", "b", "c"] {
        backend.post_room_create(created(id, false)).await.unwrap();
    }

    let h = h.restart(|_| {}).await;

    h.wait_for_apps("the app is remembered with its queue", |l| {
        l.apps.len() == 1 && l.apps[0].app_id == "archiver" && l.apps[0].queued_post_events == 3
    })
    .await;
    let (second, mut rx) = recorder("archiver");
    let _second = h.app(second).await;
    for expected in ["evt-a", "evt-b", "evt-c"] {
        assert_eq!(within(rx.recv()).await.unwrap().0, expected);
    }
    h.wait_for_apps("the queue drained", |l| l.apps[0].queued_post_events == 0)
        .await;
}

#[tokio::test]
async fn a_fail_closed_app_keeps_protecting_across_a_restart() {
    let h = Harness::start().await;
    let app = h
        .app(
            App::builder("guardian")
                .failure_policy(FailurePolicy::Fail)
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;
    app.shutdown().await.unwrap();

    let h = h.restart(|_| {}).await;
    let response = h
        .backend()
        .await
        .pre_room_user_join(PreRoomUserJoinRequest {
            context: Some(common::joining("general", "pat")),
            ..Default::default()
        })
        .await
        .unwrap();

    assert!(!response.allowed);
    assert_eq!(
        response.preventions[0].reason,
        PreventionReason::AppUnavailable as i32
    );
}

#[tokio::test]
async fn events_never_acknowledged_become_dead_letters_that_can_be_retried() {
    let h = Harness::start_with(|c| {
        c.post.max_attempts = 2;
        c.post.ack_timeout = Duration::from_millis(50);
    })
    .await;
    let failing = h
        .app(
            App::builder("flaky")
                .post_room_create(|_, _| async {
                    Err(HookError::Failed("downstream is down".into()))
                })
                .build(),
        )
        .await;
    h.backend()
        .await
        .post_room_create(created("d1", false))
        .await
        .unwrap();
    h.wait_for_apps("one dead letter", |l| l.apps[0].dead_letters == 1)
        .await;
    let mut admin = AdminClient::new(h.channel().await);

    let listed = admin
        .list_dead_letters(ListDeadLettersRequest {
            app_id: "flaky".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();

    let dead = &listed.dead_letters[0];
    assert_eq!((dead.event_id.as_str(), dead.attempts), ("evt-d1", 2));
    assert!(dead.reason.contains("2 deliveries"), "{}", dead.reason);
    assert_eq!(h.list_apps().await.apps[0].queued_post_events, 0);

    failing.shutdown().await.unwrap();
    let (healthy, mut rx) = recorder("flaky");
    let _healthy = h.app(healthy).await;
    let retried = admin
        .retry_dead_letters(RetryDeadLettersRequest {
            app_id: "flaky".into(),
            event_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.retried, 1);
    assert_eq!(within(rx.recv()).await, Some(("evt-d1".into(), 1)));
    h.wait_for_apps("no dead letters left", |l| l.apps[0].dead_letters == 0)
        .await;
}

#[tokio::test]
async fn a_backend_retrying_an_acknowledged_event_id_is_answered_without_a_second_delivery() {
    let h = Harness::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let _app = h
        .app(
            App::builder("once")
                .post_room_create(move |ctx, _| {
                    record.lock().unwrap().push(ctx.event_id);
                    async { Ok(()) }
                })
                .build(),
        )
        .await;
    let backend = h.backend().await;

    let first = backend.post_room_create(created("x", true)).await.unwrap();
    let retry = backend.post_room_create(created("x", true)).await.unwrap();

    assert_eq!(first.outcomes[0].status, OutcomeStatus::Delivered as i32);
    assert_eq!(retry.outcomes[0].status, OutcomeStatus::Delivered as i32);
    assert!(
        retry.outcomes[0].detail.contains("already acknowledged"),
        "{}",
        retry.outcomes[0].detail
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*seen.lock().unwrap(), ["evt-x"]);
}

#[tokio::test]
async fn after_a_restart_an_event_goes_only_to_the_apps_that_had_not_acknowledged_it() {
    let h = Harness::start().await;
    let (early, mut early_rx) = recorder("early");
    let early = h.app(early).await;
    let (late, _) = recorder("late");
    h.app(late).await.shutdown().await.unwrap();
    let backend = h.backend().await;
    for id in ["a", "b"] {
        backend.post_room_create(created(id, false)).await.unwrap();
    }
    for expected in ["evt-a", "evt-b"] {
        assert_eq!(within(early_rx.recv()).await.unwrap().0, expected);
    }
    let queued = |l: &roomhooks_sdk::proto::ListAppsResponse, app: &str| {
        l.apps
            .iter()
            .find(|a| a.app_id == app)
            .map(|a| a.queued_post_events)
    };
    h.wait_for_apps("early acknowledged both; late holds both", |l| {
        queued(l, "early") == Some(0) && queued(l, "late") == Some(2)
    })
    .await;
    early.shutdown().await.unwrap();

    let h = h.restart(|_| {}).await;

    h.wait_for_apps("only late still holds the events", |l| {
        queued(l, "early") == Some(0) && queued(l, "late") == Some(2)
    })
    .await;
    let (early, mut early_rx) = recorder("early");
    let _early = h.app(early).await;
    let (late, mut late_rx) = recorder("late");
    let _late = h.app(late).await;
    for expected in ["evt-a", "evt-b"] {
        assert_eq!(within(late_rx.recv()).await.unwrap().0, expected);
    }
    // Delivery is in order: had a or b come back to early, they would arrive before c.
    h.backend()
        .await
        .post_room_create(created("c", false))
        .await
        .unwrap();
    assert_eq!(within(early_rx.recv()).await.unwrap().0, "evt-c");
    assert_eq!(within(late_rx.recv()).await.unwrap().0, "evt-c");
}
