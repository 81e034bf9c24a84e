//! PostEvents: many post events in one call, each accepted exactly as its own Post* call would
//! accept it, queued in the order given; validation is all-or-nothing.

mod common;

use std::time::Duration;

use common::{Harness, joining, recorder, statuses, stored_room, within};
use roomhooks_sdk::proto::{
    OutcomeStatus, PostEventsItem, PostRoomUserJoinedRequest, Room, RoomType,
    post_events_item::Event,
};
use tonic::Code;

/// A batch item: PostRoomCreate for stored channel `id`, event id `evt-{id}`.
fn created(id: &str, wait: bool) -> PostEventsItem {
    PostEventsItem {
        event: Some(Event::RoomCreate(common::created(id, wait))),
    }
}

#[tokio::test]
async fn a_batch_reaches_every_subscribed_app_in_the_order_given() {
    let h = Harness::start().await;
    let (a, mut a_rx) = recorder("audit-a");
    let (b, mut b_rx) = recorder("audit-b");
    let (_a, _b) = (h.app(a).await, h.app(b).await);
    let batch: Vec<_> = (0..200)
        .map(|i| created(&format!("r{i:03}"), false))
        .collect();

    let results = within(h.backend().await.post_events(batch)).await.unwrap();

    let ids: Vec<_> = results.iter().map(|r| r.event_id.clone()).collect();
    let expected: Vec<_> = (0..200).map(|i| format!("evt-r{i:03}")).collect();
    assert_eq!(
        ids, expected,
        "one result per event, in the request's order"
    );
    assert!(results.iter().all(|r| r.subscribed_apps == 2));
    for rx in [&mut a_rx, &mut b_rx] {
        let mut seen = Vec::new();
        while seen.len() < 200 {
            let (id, _attempt) = within(rx.recv()).await.expect("the app is running");
            seen.push(id);
        }
        assert_eq!(seen, expected, "delivered in the order of the batch");
    }
}

#[tokio::test]
async fn events_of_other_hooks_in_a_batch_go_only_to_their_subscribers() {
    let h = Harness::start().await;
    let (audit, mut rx) = recorder("audit");
    let _audit = h.app(audit).await;
    let joined = PostEventsItem {
        event: Some(Event::UserJoined(PostRoomUserJoinedRequest {
            context: Some(joining("r1", "ana")),
            event_id: "evt-join".into(),
            wait_for_delivery: false,
        })),
    };

    let results = within(
        h.backend()
            .await
            .post_events(vec![joined, created("r2", false)]),
    )
    .await
    .unwrap();

    assert_eq!(results[0].event_id, "evt-join");
    assert_eq!(results[0].subscribed_apps, 0, "nobody subscribes to joins");
    assert_eq!(results[1].subscribed_apps, 1);
    assert_eq!(within(rx.recv()).await, Some(("evt-r2".into(), 1)));
}

#[tokio::test]
async fn one_invalid_event_refuses_the_whole_batch_and_queues_nothing() {
    let h = Harness::start().await;
    let (audit, mut rx) = recorder("audit");
    let _audit = h.app(audit).await;
    let backend = h.backend().await;
    let mut bad = created("r2", false);
    if let Some(Event::RoomCreate(req)) = &mut bad.event {
        req.room = Some(Room {
            id: String::new(),
            ..stored_room("r2", RoomType::Channel)
        });
    }

    let refused = within(backend.post_events(vec![created("r1", false), bad]))
        .await
        .expect_err("a room without an id is invalid");

    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("events[1].room"),
        "names the event and the field: {}",
        refused.message()
    );
    within(backend.post_events(vec![created("r3", false)]))
        .await
        .unwrap();
    assert_eq!(
        within(rx.recv()).await,
        Some(("evt-r3".into(), 1)),
        "evt-r1 of the refused batch was not queued"
    );
}

#[tokio::test]
async fn an_item_without_an_event_is_refused_by_index() {
    let h = Harness::start().await;

    let refused = within(
        h.backend()
            .await
            .post_events(vec![created("r1", false), PostEventsItem { event: None }]),
    )
    .await
    .expect_err("an empty item is invalid");

    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("events[1] has no event set"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn a_retried_batch_is_delivered_once() {
    let h = Harness::start().await;
    let (audit, mut rx) = recorder("audit");
    let _audit = h.app(audit).await;
    let backend = h.backend().await;
    let batch = || (0..5).map(|i| created(&format!("r{i}"), false)).collect();

    within(backend.post_events(batch())).await.unwrap();
    within(backend.post_events(batch())).await.unwrap();

    for i in 0..5 {
        assert_eq!(within(rx.recv()).await, Some((format!("evt-r{i}"), 1)));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        rx.try_recv().is_err(),
        "the retried events were de-duplicated"
    );
}

#[tokio::test]
async fn waiting_events_in_a_batch_report_each_apps_delivery() {
    let h = Harness::start().await;
    let (audit, _rx) = recorder("audit");
    let _audit = h.app(audit).await;

    let results = within(
        h.backend()
            .await
            .post_events(vec![created("r1", true), created("r2", false)]),
    )
    .await
    .unwrap();

    let statuses = statuses(&results[0].outcomes);
    assert_eq!(statuses, [("audit", OutcomeStatus::Delivered)]);
    assert!(results[1].outcomes.is_empty(), "no wait asked, no outcomes");
}
