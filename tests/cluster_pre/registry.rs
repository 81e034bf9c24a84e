//! The shared registry: FAIL apps that left or were declared elsewhere, local instances preferred,
//! enabling and disabling, conflicting registrations, and the cluster-wide listings.

use super::*;

#[tokio::test]
async fn a_fail_app_that_left_the_other_sidecar_keeps_protecting_calls_here_until_removed() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("failapp");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let guardian = s[1]
        .app(
            App::builder("guardian")
                .failure_policy(FailurePolicy::Fail)
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;
    s[0].wait_for_instance_at("guardian", "s1").await;
    guardian.shutdown().await.unwrap();
    s[0].wait_for_apps("guardian has no instance anywhere", |list| {
        list.apps
            .iter()
            .any(|a| a.app_id == "guardian" && a.instances.is_empty())
    })
    .await;
    let backend = s[0].backend().await;

    let protected = within(backend.pre_room_user_join(join_request("erin")))
        .await
        .unwrap();
    AdminClient::new(s[1].channel().await)
        .remove_app(RemoveAppRequest {
            app_id: "guardian".into(),
        })
        .await
        .unwrap();
    s[0].wait_for_apps("guardian is forgotten here too", |list| {
        list.apps.iter().all(|a| a.app_id != "guardian")
    })
    .await;
    let after = within(backend.pre_room_user_join(join_request("erin")))
        .await
        .unwrap();

    assert!(
        !protected.allowed,
        "the FAIL app connected nowhere prevents at s0"
    );
    assert_eq!(
        protected.outcomes[0].status,
        OutcomeStatus::Unavailable as i32
    );
    assert!(
        after.allowed && after.outcomes.is_empty(),
        "removed at s1: gone at s0"
    );
}

#[tokio::test]
async fn a_fail_app_declared_at_one_sidecar_is_known_at_a_sidecar_started_later() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("latecomer");
    let first = sidecars(&nats.urls(), &name, 1, |_, _| {}).await;
    let guardian = first[0]
        .app(
            App::builder("guardian")
                .failure_policy(FailurePolicy::Fail)
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;
    guardian.shutdown().await.unwrap();
    let late =
        Harness::start_with(|config| common::cluster::join(config, &nats.urls(), &name, 7)).await;
    late.wait_for_apps("guardian is known", |list| {
        list.apps.iter().any(|a| a.app_id == "guardian")
    })
    .await;

    let response = within(
        late.backend()
            .await
            .pre_room_user_join(join_request("erin")),
    )
    .await
    .unwrap();

    assert!(!response.allowed);
    assert_eq!(
        response.outcomes[0].status,
        OutcomeStatus::Unavailable as i32
    );
}

#[tokio::test]
async fn a_local_instance_is_preferred_over_one_at_another_sidecar() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("local");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let (here, there) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let _remote = s[1]
        .app(bouncer("bouncer", "nobody", Arc::clone(&there)))
        .await;
    let _local = s[0]
        .app(bouncer("bouncer", "nobody", Arc::clone(&here)))
        .await;
    s[0].wait_for_instance_at("bouncer", "s1").await;
    let backend = s[0].backend().await;

    for _ in 0..10 {
        let response = within(backend.pre_room_user_join(join_request("alice")))
            .await
            .unwrap();
        assert_eq!(response.outcomes[0].sidecar_id, "s0");
    }

    assert_eq!(here.load(Ordering::Relaxed), 10);
    assert_eq!(there.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn disabling_an_app_at_one_sidecar_takes_effect_at_the_others() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("disable");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let _app = s[1]
        .app(bouncer("bouncer", "mallory", Arc::clone(&calls)))
        .await;
    s[0].wait_for_instance_at("bouncer", "s1").await;

    let asked = Instant::now();
    AdminClient::new(s[0].channel().await)
        .set_app_enabled(SetAppEnabledRequest {
            app_id: "bouncer".into(),
            enabled: false,
        })
        .await
        .unwrap();
    s[1].wait_for_apps("bouncer is disabled at s1", |list| {
        list.apps
            .iter()
            .any(|a| a.app_id == "bouncer" && !a.enabled)
    })
    .await;
    println!(
        "SetAppEnabled at s0 was applied at s1 after {:?}",
        asked.elapsed()
    );
    let at_s1 = within(
        s[1].backend()
            .await
            .pre_room_user_join(join_request("mallory")),
    )
    .await
    .unwrap();

    assert!(at_s1.allowed, "a disabled app is not called");
    assert_eq!(calls.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn an_instance_registered_differently_from_one_at_another_sidecar_is_refused() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("mismatch");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let joiner = |instance_id: &str, priority: i32| Register {
        instance_id: instance_id.into(),
        priority,
        ..register("filter", &[HookInterface::PreRoomUserJoined])
    };
    let _first = RawApp::register(s[0].channel().await, joiner("one", 5))
        .await
        .unwrap();
    s[1].wait_for_instance_at("filter", "s0").await;

    let refused = RawApp::register(s[1].channel().await, joiner("two", 7))
        .await
        .err()
        .expect("the mismatching instance is refused");

    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert!(
        refused.message().contains("priority 5 vs 7"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn list_apps_and_list_sidecars_at_any_sidecar_show_the_whole_cluster() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("admin");
    let s = sidecars(&nats.urls(), &name, 3, |_, _| {}).await;
    let _a = s[1].app(bouncer("bouncer", "x", Arc::default())).await;
    let _b = s[2].app(bouncer("bouncer", "x", Arc::default())).await;
    s[0].wait_for_instance_at("bouncer", "s2").await;
    s[0].wait_for_instance_at("bouncer", "s1").await;

    let list = s[0].list_apps().await;
    let ids = s[0].sidecar_ids().await;

    assert!(has_instance_at(&list, "bouncer", "s1") && has_instance_at(&list, "bouncer", "s2"));
    assert_eq!(ids, ["s0", "s1", "s2"]);
}
