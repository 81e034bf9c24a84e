//! Calls answered by apps at another sidecar: vetoes, extend and modify, timeouts and withdrawn
//! calls, as if the apps were local.

use super::*;

#[tokio::test]
async fn a_veto_from_an_app_connected_at_another_sidecar_prevents_the_join_and_names_that_sidecar()
{
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("veto");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let _app = s[1]
        .app(bouncer("bouncer", "mallory", Arc::clone(&calls)))
        .await;
    s[0].wait_for_instance_at("bouncer", "s1").await;
    let backend = s[0].backend().await;

    let refused = within(backend.pre_room_user_join(join_request("mallory")))
        .await
        .unwrap();
    let allowed = within(backend.pre_room_user_join(join_request("alice")))
        .await
        .unwrap();

    assert!(!refused.allowed);
    assert_eq!(refused.preventions[0].message, "mallory is banned");
    assert_eq!(
        refused.outcomes[0].sidecar_id, "s1",
        "the serving sidecar is named"
    );
    assert!(!refused.outcomes[0].instance_id.is_empty());
    assert!(allowed.allowed);
    assert_eq!(
        calls.load(Ordering::Relaxed),
        2,
        "both calls reached the app at s1"
    );
}

#[tokio::test]
async fn vetoes_from_apps_at_two_other_sidecars_are_all_reported_in_app_order() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("parallel");
    let s = sidecars(&nats.urls(), &name, 3, |_, _| {}).await;
    let refuse = |id: &str, priority: i32| {
        let message = format!("{id} says no");
        App::builder(id)
            .priority(priority)
            .pre_room_user_joined(move |_, _| {
                let message = message.clone();
                async move { Err(HookError::UserNotAllowed(message)) }
            })
            .build()
    };
    let _late = s[2].app(refuse("zeta", 20)).await;
    let _early = s[1].app(refuse("alpha", 10)).await;
    s[0].wait_for_instance_at("zeta", "s2").await;
    s[0].wait_for_instance_at("alpha", "s1").await;

    let response = within(s[0].backend().await.pre_room_user_join(join_request("bob")))
        .await
        .unwrap();

    assert!(!response.allowed);
    assert_eq!(
        statuses(&response.outcomes),
        [
            ("alpha", OutcomeStatus::Prevented),
            ("zeta", OutcomeStatus::Prevented)
        ]
    );
    assert_eq!(response.preventions[0].message, "alpha says no");
    let served: Vec<&str> = response
        .outcomes
        .iter()
        .map(|o| o.sidecar_id.as_str())
        .collect();
    assert_eq!(served, ["s1", "s2"]);
}

#[tokio::test]
async fn extend_and_modify_answers_from_remote_apps_are_merged_and_chained_as_if_local() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("extmod");
    let s = sidecars(&nats.urls(), &name, 3, |_, _| {}).await;
    let _extender = s[1]
        .app(
            App::builder("tagger")
                .pre_room_create_extend(|_, _| async {
                    Ok(Extension::new().field("tier", "gold").member("helper-bot"))
                })
                .build(),
        )
        .await;
    let _first = s[1].app(renamer("a-rename", 1)).await;
    let _second = s[2].app(renamer("b-rename", 2)).await;
    for (app, at) in [("tagger", "s1"), ("a-rename", "s1"), ("b-rename", "s2")] {
        s[0].wait_for_instance_at(app, at).await;
    }

    let response = within(
        s[0].backend()
            .await
            .pre_room_create(create_request("Launch")),
    )
    .await
    .unwrap();

    assert!(response.allowed);
    let room = response.room.unwrap();
    assert_eq!(
        room.display_name, "Launch (1) (2)",
        "each modifier saw the previous one's room"
    );
    assert_eq!(
        room.custom_fields.unwrap().fields["tier"],
        Value::from("gold")
    );
    assert_eq!(room.member_usernames, ["owner", "helper-bot"]);
}

#[tokio::test]
async fn a_remote_app_slower_than_its_timeout_times_out_and_its_failure_policy_applies() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("timeout");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let _slow = s[1]
        .app(
            App::builder("slowpoke")
                .failure_policy(FailurePolicy::Fail)
                .timeout(Duration::from_millis(200))
                .pre_room_user_joined(|_, _| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Ok(())
                })
                .build(),
        )
        .await;
    s[0].wait_for_instance_at("slowpoke", "s1").await;

    let response = within(
        s[0].backend()
            .await
            .pre_room_user_join(join_request("carol")),
    )
    .await
    .unwrap();

    assert!(!response.allowed, "a FAIL app that timed out prevents");
    assert_eq!(response.outcomes[0].status, OutcomeStatus::Timeout as i32);
    assert_eq!(
        response.preventions[0].reason,
        PreventionReason::AppUnavailable as i32
    );
}

#[tokio::test]
async fn a_call_the_backend_gives_up_on_is_withdrawn_from_the_app_at_the_other_sidecar() {
    let nats = NatsCluster::start(1).await;
    let name = cluster_name("withdraw");
    let s = sidecars(&nats.urls(), &name, 2, |_, _| {}).await;
    let (started, cancelled) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let _dawdler = s[1]
        .app(dawdler(
            Duration::from_secs(10),
            Arc::clone(&started),
            Arc::clone(&cancelled),
        ))
        .await;
    s[0].wait_for_instance_at("dawdler", "s1").await;
    let backend = s[0].backend().await;

    // The backend cancels its RPC once the app at s1 is working on it.
    let call = tokio::spawn(async move { backend.pre_room_user_join(join_request("dora")).await });
    assert!(
        flag_set_within(&started, Duration::from_secs(10)).await,
        "the forwarded call did not reach the app"
    );
    call.abort();

    // Long before the app's 10 s timeout would have cancelled it at s1.
    assert!(
        flag_set_within(&cancelled, Duration::from_secs(3)).await,
        "the app at s1 was not told the backend gave up on the call"
    );
}
