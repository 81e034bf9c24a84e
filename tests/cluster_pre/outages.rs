//! NATS down, and an app whose sidecar goes away.

use super::*;

/// The health status of the NATS connection at `h` (the `roomhooks.cluster` entry).
async fn nats_health(h: &Harness) -> i32 {
    tonic_health::pb::health_client::HealthClient::new(h.channel().await)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "roomhooks.cluster".into(),
        })
        .await
        .map(|r| r.into_inner().status)
        .unwrap_or(-1)
}

/// Waits until `h` reports the NATS connection as `status`.
async fn wait_for_nats_health(
    h: &Harness,
    status: tonic_health::pb::health_check_response::ServingStatus,
) {
    for _ in 0..300 {
        if nats_health(h).await == status as i32 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("health of roomhooks.cluster never became {status:?}");
}

#[tokio::test]
async fn while_nats_is_down_local_apps_still_answer_and_remote_only_apps_count_as_unavailable() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let mut nats = NatsCluster::start(1).await;
    let name = cluster_name("natsdown");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let _local = s[0]
        .app(bouncer("local-bouncer", "mallory", Arc::default()))
        .await;
    let _remote = s[1]
        .app(bouncer("remote-bouncer", "nobody", Arc::default()))
        .await;
    s[0].wait_for_instance_at("remote-bouncer", "s1").await;
    let backend = s[0].backend().await;

    nats.stop_all();
    wait_for_nats_health(&s[0], ServingStatus::NotServing).await;
    let during = within(backend.pre_room_user_join(join_request("mallory")))
        .await
        .unwrap();
    nats.start_all().await;
    wait_for_nats_health(&s[0], ServingStatus::Serving).await;
    let mut after = None;
    for _ in 0..100 {
        let response = within(backend.pre_room_user_join(join_request("alice")))
            .await
            .unwrap();
        if statuses(&response.outcomes).contains(&("remote-bouncer", OutcomeStatus::Allowed)) {
            after = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert!(!during.allowed, "the local app still vetoes");
    assert_eq!(
        statuses(&during.outcomes),
        [
            ("local-bouncer", OutcomeStatus::Prevented),
            ("remote-bouncer", OutcomeStatus::Unavailable)
        ]
    );
    let after = after.expect("the remote app answers again once NATS is back");
    assert!(after.allowed);
}

#[tokio::test]
async fn an_app_given_several_sidecars_moves_to_another_when_its_sidecar_goes_away() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("rotate");
    let mut s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoints = format!("{},{}", s[0].endpoint, s[1].endpoint);
    let app = App::builder("bouncer")
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .pre_room_user_joined({
            let calls = Arc::clone(&calls);
            move |_, _| {
                calls.fetch_add(1, Ordering::Relaxed);
                async { Ok(()) }
            }
        })
        .build();
    let mut handle = app.spawn(endpoints);
    within(handle.registered())
        .await
        .expect("registers at the first sidecar");
    s[1].wait_for_instance_at("bouncer", "s0").await;

    let first = s.remove(0);
    first.sidecar.shutdown().await.expect("s0 shuts down");
    s[0].wait_for_instance_at("bouncer", "s1").await;
    let response = within(
        s[0].backend()
            .await
            .pre_room_user_join(join_request("alice")),
    )
    .await
    .unwrap();

    assert_eq!(
        statuses(&response.outcomes),
        [("bouncer", OutcomeStatus::Allowed)]
    );
    assert_eq!(
        response.outcomes[0].sidecar_id, "s1",
        "answered by the instance now at s1"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}
