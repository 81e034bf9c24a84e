//! Operating a cluster: NATS down, the metrics, and the consumers of removed apps.

use super::*;
use crate::common::scrape;

#[tokio::test]
async fn post_events_are_refused_with_unavailable_while_nats_is_down() {
    let mut nats = NatsCluster::start(1).await;
    let s = sidecars(&nats.urls(), &cluster_name("down"), 1, |_, _| {}).await;
    let (app, mut rx) = recorder("audit");
    let _app = s[0].app(app).await;
    let backend = s[0].backend().await;
    within(backend.post_room_create(created("before", false)))
        .await
        .unwrap();
    assert_eq!(within(rx.recv()).await, Some(("evt-before".into(), 1)));

    nats.stop_all();

    let refused = within(async {
        loop {
            match backend.post_room_create(created("during", false)).await {
                Err(status) => return status,
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("NATS"), "{refused:?}");

    nats.start_all().await;
    let after = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match backend.post_room_create(created("after", false)).await {
                Ok(response) => return response,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
    .await
    .expect("posts are accepted again once NATS is back");
    assert_eq!(after.subscribed_apps, 1);
    let got = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let (event_id, _) = rx.recv().await.expect("the app runs");
            if event_id == "evt-after" {
                return event_id;
            }
        }
    })
    .await
    .expect("the event accepted after the outage is delivered");
    assert_eq!(got, "evt-after");
}

#[tokio::test]
async fn the_metrics_show_the_nats_connection_publish_latency_and_each_consumers_pending_events() {
    let nats = NatsCluster::start(1).await;
    let s = sidecars(&nats.urls(), &cluster_name("metrics"), 1, |c, _| {
        c.metrics_listen = MaybeAddr::On("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let (app, _rx) = choosy("backlog", |_| false);
    let _app = s[0].app(app).await;
    let backend = s[0].backend().await;
    for i in 0..3 {
        backend
            .post_room_create(created(&format!("m{i}"), false))
            .await
            .unwrap();
    }

    let text = within(async {
        loop {
            let text = scrape(s[0].sidecar.metrics_addr().unwrap()).await;
            if text.contains("roomhooks_cluster_consumer_pending{app_id=\"backlog\"} 3") {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;

    assert!(text.contains("roomhooks_cluster_connected 1"), "{text}");
    assert!(
        text.contains("roomhooks_cluster_publish_seconds_count 3"),
        "{text}"
    );
    assert!(
        text.contains("roomhooks_cluster_publish_seconds_bucket{le=\"+Inf\"} 3"),
        "{text}"
    );
    let listed = s[0].list_apps().await;
    assert_eq!(
        listed.apps[0].queued_post_events, 3,
        "ListApps reads the consumer"
    );
}

#[tokio::test]
async fn an_app_removed_at_one_sidecar_loses_its_consumer_and_starts_afresh_when_it_registers_again()
 {
    let nats = NatsCluster::start(1).await;
    let s = sidecars(&nats.urls(), &cluster_name("remove"), 2, |_, _| {}).await;
    let (app, _rx) = choosy("audit", |_| false);
    let app = s[1].app(app).await;
    s[0].wait_for_instance_at("audit", "s1").await;
    let backend = s[0].backend().await;
    backend
        .post_room_create(created("old", false))
        .await
        .unwrap();
    app.abort();
    s[0].wait_for_apps("audit has no instance", |l| {
        l.apps.iter().all(|a| a.instances.is_empty())
    })
    .await;

    let removed = AdminClient::new(s[0].channel().await)
        .remove_app(RemoveAppRequest {
            app_id: "audit".into(),
        })
        .await
        .unwrap()
        .into_inner();

    assert!(removed.removed);
    assert_eq!(
        removed.dropped_post_events, 1,
        "the consumer held the unacknowledged event"
    );
    s[1].wait_for_apps("audit is forgotten at s1 too", |l| l.apps.is_empty())
        .await;
    let (again, mut rx) = recorder("audit");
    let _again = s[1].app(again).await;
    s[0].wait_for_instance_at("audit", "s1").await;
    backend
        .post_room_create(created("new", false))
        .await
        .unwrap();
    assert_eq!(
        within(rx.recv()).await,
        Some(("evt-new".into(), 1)),
        "the event from before the removal is gone with the consumer"
    );
    quiet(&mut rx, "nothing else").await;
}

#[tokio::test]
async fn a_consumer_made_again_for_an_app_removed_from_the_cluster_is_deleted_by_the_sidecars() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("orphan");
    let s = sidecars(&nats.urls(), &name, 1, |_, _| {}).await;
    let stream = posts_stream(&nats.urls(), &name).await;
    // What a sidecar that had not yet seen a RemoveApp would leave behind: the consumer of an
    // app that is declared nowhere and served nowhere. With interest retention it would keep
    // every matching event for ever.
    let orphan = format!("{name}_app_ghost");
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some(orphan.clone()),
            filter_subject: format!("{name}.post.PostRoomCreate.*"),
            ..Default::default()
        })
        .await
        .expect("the orphan consumer is made");
    // A live app's consumer, beside it, must stay.
    let (app, _rx) = recorder("audit");
    let _app = s[0].app(app).await;

    // Two sweeps, one member TTL (2 s here) apart, find it orphaned and delete it.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut names = Vec::new();
    while Instant::now() < deadline {
        names = consumer_names(&stream).await;
        if !names.contains(&orphan) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !names.contains(&orphan),
        "the orphan is still there: {names:?}"
    );
    assert!(
        names.contains(&format!("{name}_app_audit")),
        "the live app's consumer stays: {names:?}"
    );
}

/// The names of every consumer of `stream`.
async fn consumer_names(stream: &async_nats::jetstream::stream::Stream) -> Vec<String> {
    use futures_util::StreamExt;
    let mut names = Vec::new();
    let mut listed = stream.consumer_names();
    while let Some(name) = listed.next().await {
        names.push(name.expect("a consumer name"));
    }
    names
}
