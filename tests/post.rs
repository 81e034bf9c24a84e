//! Post events: accepted for every subscribed app, delivered once per app, in order, acked by
//! event id, redelivered when an instance dies before acking, queued while no instance is live.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{Harness, created, joining, recorder, statuses, stored_room, within};
use roomhooks_sdk::{
    App,
    proto::{
        OutcomeStatus, PostRoomDeletedRequest, PostRoomUserJoinedRequest, PostRoomUserLeaveRequest,
        RoomType, RoomUserLeave,
    },
};
use tokio::sync::mpsc;

#[tokio::test]
async fn every_subscribed_app_gets_the_event_once_and_waiting_reports_delivery() {
    let h = Harness::start().await;
    let (a, mut a_rx) = recorder("audit-a");
    let (b, mut b_rx) = recorder("audit-b");
    let (_a, _b) = (h.app(a).await, h.app(b).await);

    let response = within(h.backend().await.post_room_create(created("r1", true)))
        .await
        .unwrap();

    assert_eq!(response.event_id, "evt-r1");
    assert_eq!(response.subscribed_apps, 2);
    let delivered = statuses(&response.outcomes);
    assert_eq!(
        delivered,
        [
            ("audit-a", OutcomeStatus::Delivered),
            ("audit-b", OutcomeStatus::Delivered)
        ]
    );
    assert_eq!(a_rx.recv().await, Some(("evt-r1".into(), 1)));
    assert_eq!(b_rx.recv().await, Some(("evt-r1".into(), 1)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(a_rx.try_recv().is_err(), "delivered once");
}

#[tokio::test]
async fn events_reach_an_app_in_the_order_they_were_accepted() {
    let h = Harness::start().await;
    let (app, mut rx) = recorder("ordered");
    let _app = h.app(app).await;
    let backend = h.backend().await;

    for i in 0..300 {
        backend
            .post_room_create(created(&format!("r{i:03}"), false))
            .await
            .unwrap();
    }

    let mut seen = Vec::new();
    while seen.len() < 300 {
        let (event_id, _) = within(rx.recv()).await.unwrap();
        seen.push(event_id);
    }
    let expected: Vec<_> = (0..300).map(|i| format!("evt-r{i:03}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn an_event_not_acked_by_a_dying_instance_is_redelivered_with_the_next_attempt() {
    let h = Harness::start().await;
    let (entered_tx, mut entered_rx) = mpsc::unbounded_channel();
    let stuck = h
        .app(
            App::builder("auditor")
                .instance_id("stuck")
                .post_room_create(move |ctx, _| {
                    let entered = entered_tx.clone();
                    async move {
                        let _ = entered.send(ctx.attempt);
                        std::future::pending::<()>().await; // never acks
                        Ok(())
                    }
                })
                .build(),
        )
        .await;
    let accepted = h
        .backend()
        .await
        .post_room_create(created("r9", false))
        .await
        .unwrap();
    assert_eq!(accepted.subscribed_apps, 1);
    assert_eq!(within(entered_rx.recv()).await, Some(1));

    stuck.abort();
    let (healthy, mut rx) = recorder("auditor");
    let _healthy = h.app(healthy).await;

    assert_eq!(within(rx.recv()).await, Some(("evt-r9".into(), 2)));
}

#[tokio::test]
async fn events_wait_in_the_queue_until_an_instance_connects() {
    let h = Harness::start().await;
    let (first, _) = recorder("late-reader");
    h.app(first).await.shutdown().await.unwrap();
    h.wait_for_apps("late-reader has no instance", |l| {
        l.apps[0].instances.is_empty()
    })
    .await;
    let backend = h.backend().await;

    let waited = backend.post_room_create(created("q1", true)).await.unwrap();
    backend
        .post_room_create(created("q2", false))
        .await
        .unwrap();

    assert_eq!(waited.subscribed_apps, 1);
    assert_eq!(waited.outcomes[0].status, OutcomeStatus::Unavailable as i32);
    assert!(waited.outcomes[0].detail.contains("stays queued"));
    h.wait_for_apps("two events queued", |l| l.apps[0].queued_post_events == 2)
        .await;
    let (second, mut rx) = recorder("late-reader");
    let _second = h.app(second).await;
    assert_eq!(within(rx.recv()).await.unwrap().0, "evt-q1");
    assert_eq!(within(rx.recv()).await.unwrap().0, "evt-q2");
    h.wait_for_apps("queue drained", |l| l.apps[0].queued_post_events == 0)
        .await;
}

#[tokio::test]
async fn a_retried_event_id_is_queued_only_once() {
    let h = Harness::start().await;
    let (app, _) = recorder("dedupe");
    h.app(app).await.shutdown().await.unwrap();
    h.wait_for_apps("dedupe has no instance", |l| l.apps[0].instances.is_empty())
        .await;
    let backend = h.backend().await;

    backend
        .post_room_create(created("same", false))
        .await
        .unwrap();
    backend
        .post_room_create(created("same", false))
        .await
        .unwrap();

    h.wait_for_apps("one event queued", |l| l.apps[0].queued_post_events == 1)
        .await;
}

#[tokio::test]
async fn all_four_post_hooks_are_delivered_with_their_payloads() {
    let h = Harness::start().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s1, s2, s3, s4) = (seen.clone(), seen.clone(), seen.clone(), seen.clone());
    let _app = h
        .app(
            App::builder("everything")
                .post_room_create(move |_, room| {
                    s1.lock().unwrap().push(format!("created {}", room.id));
                    async { Ok(()) }
                })
                .post_room_deleted(move |_, room| {
                    s2.lock().unwrap().push(format!("deleted {}", room.id));
                    async { Ok(()) }
                })
                .post_room_user_joined(move |_, joined| {
                    s3.lock()
                        .unwrap()
                        .push(format!("joined {}", joined.joining_user.unwrap().username));
                    async { Ok(()) }
                })
                .post_room_user_leave(move |_, leave| {
                    s4.lock()
                        .unwrap()
                        .push(format!("left {}", leave.leaving_user.unwrap().username));
                    async { Ok(()) }
                })
                .build(),
        )
        .await;
    let backend = h.backend().await;

    backend.post_room_create(created("r1", true)).await.unwrap();
    backend
        .post_room_user_joined(PostRoomUserJoinedRequest {
            context: Some(joining("r1", "ivy")),
            event_id: String::new(),
            wait_for_delivery: true,
        })
        .await
        .unwrap();
    let leave = backend
        .post_room_user_leave(PostRoomUserLeaveRequest {
            context: Some(RoomUserLeave {
                room: Some(stored_room("r1", RoomType::Channel)),
                leaving_user: Some(common::user("ivy")),
                removed_by: None,
            }),
            event_id: String::new(),
            wait_for_delivery: true,
        })
        .await
        .unwrap();
    backend
        .post_room_deleted(PostRoomDeletedRequest {
            room: Some(stored_room("r1", RoomType::Channel)),
            event_id: String::new(),
            wait_for_delivery: true,
        })
        .await
        .unwrap();

    assert_eq!(
        leave.event_id.len(),
        32,
        "an event id is assigned when none is sent"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        ["created r1", "joined ivy", "left ivy", "deleted r1"]
    );
}
