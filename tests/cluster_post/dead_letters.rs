//! Events past the attempt cap: listed and retried from any sidecar, and reported to a caller
//! waiting for delivery.

use super::*;

#[tokio::test]
async fn an_event_past_the_attempt_cap_is_a_dead_letter_listed_and_retried_from_any_sidecar() {
    let nats = NatsCluster::start(1).await;
    let s = sidecars(&nats.urls(), &cluster_name("dead"), 2, |c, _| {
        c.post.ack_timeout = Duration::from_millis(500);
        c.post.max_attempts = 2;
    })
    .await;
    let accept = Arc::new(AtomicBool::new(false));
    let (app, mut rx) = {
        let accept = Arc::clone(&accept);
        choosy("audit", move |_| accept.load(Ordering::Relaxed))
    };
    let _app = s[1].app(app).await;
    s[0].wait_for_instance_at("audit", "s1").await;

    within(s[0].backend().await.post_room_create(created("r1", false)))
        .await
        .unwrap();
    assert_eq!(within(rx.recv()).await, Some(("evt-r1".into(), 1)));
    assert_eq!(within(rx.recv()).await, Some(("evt-r1".into(), 2)));

    let mut admin0 = AdminClient::new(s[0].channel().await);
    let listed = within(async {
        loop {
            let listed = admin0
                .list_dead_letters(ListDeadLettersRequest {
                    app_id: "audit".into(),
                    limit: 0,
                })
                .await
                .unwrap()
                .into_inner()
                .dead_letters;
            if !listed.is_empty() {
                return listed;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].event_id, "evt-r1");
    assert_eq!(listed[0].app_id, "audit");
    assert_eq!(listed[0].attempts, 2);
    assert!(
        listed[0].reason.contains("--post-max-attempts"),
        "{listed:?}"
    );
    let apps = s[0].list_apps().await;
    let audit = apps.apps.iter().find(|a| a.app_id == "audit").unwrap();
    assert_eq!(audit.dead_letters, 1, "ListApps counts it at any sidecar");
    assert!(
        rx.try_recv().is_err(),
        "the third delivery went to the dead letters, not to the app"
    );

    accept.store(true, Ordering::Relaxed);
    let retried = AdminClient::new(s[1].channel().await)
        .retry_dead_letters(RetryDeadLettersRequest {
            app_id: "audit".into(),
            event_ids: vec![],
        })
        .await
        .unwrap()
        .into_inner();

    assert_eq!(retried.retried, 1);
    assert_eq!(
        within(rx.recv()).await,
        Some(("evt-r1".into(), 1)),
        "attempts start over"
    );
    let left = admin0
        .list_dead_letters(ListDeadLettersRequest {
            app_id: "audit".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert!(left.is_empty(), "{left:?}");
    quiet(&mut rx, "the retried event is acknowledged").await;
}

#[tokio::test]
async fn wait_for_delivery_reports_an_event_that_became_a_dead_letter_as_an_error() {
    let nats = NatsCluster::start(1).await;
    let s = sidecars(&nats.urls(), &cluster_name("waitdead"), 2, |c, _| {
        c.post.ack_timeout = Duration::from_millis(300);
        c.post.max_attempts = 1;
    })
    .await;
    let (tx, _rx) = mpsc::unbounded_channel::<u32>();
    let _app = s[1]
        .app(
            App::builder("refuser")
                .timeout(Duration::from_secs(5))
                .post_room_create(move |ctx, _| {
                    let _ = tx.send(ctx.attempt);
                    async { Err(HookError::Failed("never".into())) }
                })
                .build(),
        )
        .await;
    s[0].wait_for_instance_at("refuser", "s1").await;

    let response = within(s[0].backend().await.post_room_create(created("r1", true)))
        .await
        .unwrap();

    assert_eq!(
        statuses(&response.outcomes),
        [("refuser", OutcomeStatus::Error)]
    );
    assert!(
        response.outcomes[0].detail.contains("dead letters"),
        "{:?}",
        response.outcomes[0]
    );
}
