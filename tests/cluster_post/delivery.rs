//! Where and how often an event arrives: at any sidecar, once per event id, redelivered while
//! unacknowledged, filtered by room type, held for an app with no instance or disabled.

use super::*;

#[tokio::test]
async fn an_event_posted_at_one_sidecar_is_delivered_to_the_app_connected_at_another() {
    let nats = NatsCluster::start(1).await;
    let s = sidecars(&nats.urls(), &cluster_name("deliver"), 2, |_, _| {}).await;
    let (app, mut rx) = recorder("audit");
    let _app = s[1].app(app).await;
    s[0].wait_for_instance_at("audit", "s1").await;

    let accepted = within(s[0].backend().await.post_room_create(created("r1", false)))
        .await
        .expect("the event is stored");

    assert_eq!(accepted.subscribed_apps, 1, "s0 knows the app at s1");
    assert_eq!(within(rx.recv()).await, Some(("evt-r1".into(), 1)));
    quiet(&mut rx, "delivered once").await;
}

#[tokio::test]
async fn a_retry_of_the_same_event_id_at_another_sidecar_is_delivered_once() {
    let nats = NatsCluster::start(1).await;
    let s = sidecars(&nats.urls(), &cluster_name("dedupe"), 2, |_, _| {}).await;
    let (app, mut rx) = recorder("audit");
    let _app = s[1].app(app).await;
    s[0].wait_for_instance_at("audit", "s1").await;

    let first = within(s[0].backend().await.post_room_create(created("r1", false))).await;
    let retried = within(s[1].backend().await.post_room_create(created("r1", false))).await;

    assert!(first.is_ok() && retried.is_ok(), "both answers are OK");
    assert_eq!(within(rx.recv()).await, Some(("evt-r1".into(), 1)));
    quiet(&mut rx, "the retry is de-duplicated by JetStream").await;
}

#[tokio::test]
async fn an_unacknowledged_event_is_redelivered_with_attempt_two() {
    let nats = NatsCluster::start(1).await;
    let s = sidecars(&nats.urls(), &cluster_name("redeliver"), 2, |c, _| {
        c.post.ack_timeout = Duration::from_secs(1);
    })
    .await;
    let (app, mut rx) = choosy("audit", |attempt| attempt >= 2);
    let _app = s[1].app(app).await;
    s[0].wait_for_instance_at("audit", "s1").await;

    within(s[0].backend().await.post_room_create(created("r1", false)))
        .await
        .unwrap();

    assert_eq!(within(rx.recv()).await, Some(("evt-r1".into(), 1)));
    assert_eq!(
        within(rx.recv()).await,
        Some(("evt-r1".into(), 2)),
        "JetStream redelivers after the ack timeout"
    );
    quiet(&mut rx, "acknowledged on attempt 2").await;
}

#[tokio::test]
async fn an_event_held_by_an_instance_that_leaves_is_redelivered_at_once_at_another_sidecar() {
    let nats = NatsCluster::start(1).await;
    // A long ack timeout: only the nak of the leaving instance can bring the event back soon.
    let s = sidecars(&nats.urls(), &cluster_name("nak"), 2, |c, _| {
        c.post.ack_timeout = Duration::from_secs(60);
    })
    .await;
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let stuck = s[0]
        .app(
            App::builder("audit")
                .instance_id("stuck")
                .post_room_create(move |ctx, _| {
                    let _ = entered_tx.send(ctx.attempt);
                    async {
                        std::future::pending::<()>().await;
                        Ok(())
                    }
                })
                .build(),
        )
        .await;
    within(s[0].backend().await.post_room_create(created("r1", false)))
        .await
        .unwrap();
    assert_eq!(within(entered.recv()).await, Some(1));
    let (healthy, mut rx) = recorder("audit");
    let _healthy = s[1].app(healthy).await;

    stuck.abort();

    let started = Instant::now();
    assert_eq!(within(rx.recv()).await, Some(("evt-r1".into(), 2)));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "redelivered by the nak, not the 60 s ack timeout"
    );
}

#[tokio::test]
async fn an_app_filtering_room_types_gets_only_the_events_of_its_rooms() {
    let nats = NatsCluster::start(1).await;
    let s = sidecars(&nats.urls(), &cluster_name("roomtypes"), 2, |_, _| {}).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _app = s[1]
        .app(
            App::builder("channels-only")
                .room_types([RoomType::Channel])
                .post_room_create(move |ctx, _| {
                    let _ = tx.send(ctx.event_id);
                    async { Ok(()) }
                })
                .build(),
        )
        .await;
    s[0].wait_for_instance_at("channels-only", "s1").await;
    let backend = s[0].backend().await;

    let dm = backend
        .post_room_create(PostRoomCreateRequest {
            room: Some(stored_room("dm", RoomType::DirectMessage)),
            event_id: "evt-dm".into(),
            wait_for_delivery: false,
        })
        .await
        .unwrap();
    backend
        .post_room_create(created("general", false))
        .await
        .unwrap();

    assert_eq!(dm.subscribed_apps, 0);
    assert_eq!(within(rx.recv()).await.as_deref(), Some("evt-general"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        rx.try_recv().is_err(),
        "the direct message's event is not the app's"
    );
}

#[tokio::test]
async fn events_wait_in_jetstream_while_the_app_has_no_instance_and_go_to_the_next_one_anywhere() {
    let nats = NatsCluster::start(1).await;
    let s = sidecars(&nats.urls(), &cluster_name("waiting"), 2, |_, _| {}).await;
    let (first, _) = recorder("late-reader");
    s[1].app(first).await.shutdown().await.unwrap();
    s[0].wait_for_apps("late-reader is known and has no instance", |l| {
        l.apps
            .iter()
            .any(|a| a.app_id == "late-reader" && a.instances.is_empty())
    })
    .await;
    let backend = s[0].backend().await;

    let waited = backend.post_room_create(created("q1", true)).await.unwrap();
    backend
        .post_room_create(created("q2", false))
        .await
        .unwrap();
    let (reader, mut rx) = recorder("late-reader");
    let _reader = s[0].app(reader).await;

    assert_eq!(
        statuses(&waited.outcomes),
        [("late-reader", OutcomeStatus::Unavailable)]
    );
    assert_eq!(within(rx.recv()).await, Some(("evt-q1".into(), 1)));
    assert_eq!(within(rx.recv()).await, Some(("evt-q2".into(), 1)));
}

#[tokio::test]
async fn a_disabled_app_gets_its_events_once_it_is_enabled_again_at_any_sidecar() {
    let nats = NatsCluster::start(1).await;
    let s = sidecars(&nats.urls(), &cluster_name("disabled"), 2, |_, _| {}).await;
    let (app, mut rx) = recorder("audit");
    let _app = s[1].app(app).await;
    s[0].wait_for_instance_at("audit", "s1").await;
    let set = |enabled| SetAppEnabledRequest {
        app_id: "audit".into(),
        enabled,
    };
    AdminClient::new(s[0].channel().await)
        .set_app_enabled(set(false))
        .await
        .unwrap();
    s[1].wait_for_apps("audit is disabled at s1", |l| {
        l.apps.iter().any(|a| a.app_id == "audit" && !a.enabled)
    })
    .await;

    within(s[0].backend().await.post_room_create(created("r1", false)))
        .await
        .unwrap();
    quiet(&mut rx, "a disabled app gets nothing").await;
    AdminClient::new(s[0].channel().await)
        .set_app_enabled(set(true))
        .await
        .unwrap();

    // Attempt 1, or 2 when the event reached s1's pull loop just before it saw the disable.
    let (event_id, _attempt) = within(rx.recv()).await.unwrap();
    assert_eq!(event_id, "evt-r1");
}

#[tokio::test]
async fn wait_for_delivery_answers_delivered_once_the_remote_app_acknowledged() {
    let nats = NatsCluster::start(1).await;
    let s = sidecars(&nats.urls(), &cluster_name("wait"), 2, |_, _| {}).await;
    let (app, mut rx) = recorder("audit");
    let _app = s[1].app(app).await;
    let (slow, _slow_rx) = choosy("never-acks", |_| false);
    let _slow = s[1].app(slow).await;
    s[0].wait_for_instance_at("audit", "s1").await;
    s[0].wait_for_instance_at("never-acks", "s1").await;

    let response = within(s[0].backend().await.post_room_create(created("r1", true)))
        .await
        .unwrap();

    assert_eq!(
        statuses(&response.outcomes),
        [
            ("audit", OutcomeStatus::Delivered),
            ("never-acks", OutcomeStatus::Timeout)
        ]
    );
    let delivered = &response.outcomes[0];
    assert_eq!(delivered.sidecar_id, "s1", "the serving sidecar is named");
    assert!(!delivered.instance_id.is_empty(), "{delivered:?}");
    assert!(delivered.detail.contains("attempt 1"), "{delivered:?}");
    assert_eq!(within(rx.recv()).await, Some(("evt-r1".into(), 1)));
}
