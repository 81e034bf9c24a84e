//! The operator's controls: essential apps and hooks, the unavailable message, enabling and
//! disabling apps, allowed hooks, configured overrides and tokens.

use super::*;

#[tokio::test]
async fn an_essential_app_that_never_connected_prevents_its_hooks() {
    let (h, response) = create_with_absent_compliance_app(AppSettings::default()).await;

    assert!(!response.allowed);
    let prevention = &response.preventions[0];
    assert_eq!(prevention.app_id, "compliance");
    assert_eq!(prevention.reason, PreventionReason::AppUnavailable as i32);
    assert!(
        response.outcomes[0].detail.contains("essential app"),
        "{}",
        response.outcomes[0].detail
    );
    let listed = h.list_apps().await;
    assert_eq!(
        listed.apps[0].essential_hooks,
        [HookInterface::PreRoomCreatePrevent as i32]
    );
}

#[tokio::test]
async fn an_operator_message_replaces_the_default_unavailable_message() {
    let (_h, response) = create_with_absent_compliance_app(AppSettings {
        unavailable_message: Some("Room creation is paused for maintenance.".into()),
        ..Default::default()
    })
    .await;

    assert_eq!(
        response.preventions[0].message,
        "Room creation is paused for maintenance."
    );
}

#[tokio::test]
async fn a_disabled_app_is_not_called_and_its_post_events_wait_until_enabled() {
    let h = Harness::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let (delivered_tx, mut delivered) = tokio::sync::mpsc::unbounded_channel();
    let _app = h
        .app(
            App::builder("pausable")
                .pre_room_user_joined({
                    let calls = Arc::clone(&calls);
                    move |_, _| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        async { Ok(()) }
                    }
                })
                .post_room_create(move |ctx, _| {
                    let _ = delivered_tx.send(ctx.event_id);
                    async { Ok(()) }
                })
                .build(),
        )
        .await;
    set_enabled(&h, "pausable", false).await.unwrap();
    let backend = h.backend().await;

    let response = backend.pre_room_user_join(join()).await.unwrap();
    backend
        .post_room_create(PostRoomCreateRequest {
            room: Some(stored_room("r1", RoomType::Channel)),
            event_id: "while-disabled".into(),
            wait_for_delivery: false,
        })
        .await
        .unwrap();

    assert!(response.allowed && response.outcomes.is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(delivered.try_recv().is_err(), "no delivery while disabled");
    assert!(!h.list_apps().await.apps[0].enabled);

    set_enabled(&h, "pausable", true).await.unwrap();
    assert_eq!(
        within(delivered.recv()).await.as_deref(),
        Some("while-disabled")
    );
    backend.pre_room_user_join(join()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn disabling_an_essential_app_prevents_its_essential_hooks() {
    let h = Harness::start_with(|c| {
        c.apps.insert(
            "gate".into(),
            AppSettings {
                essential_hooks: vec![Hook::PreRoomUserJoined],
                ..Default::default()
            },
        );
    })
    .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let _app = h.app(counting_joiner("gate", &calls)).await;
    let backend = h.backend().await;
    assert!(backend.pre_room_user_join(join()).await.unwrap().allowed);

    set_enabled(&h, "gate", false).await.unwrap();
    let response = backend.pre_room_user_join(join()).await.unwrap();

    assert!(!response.allowed);
    // The app is named in the prevention, not in the message the chat user sees.
    assert_eq!(response.preventions[0].app_id, "gate");
    assert!(!response.preventions[0].message.contains("gate"));
    assert!(
        response.outcomes[0].detail.contains("disabled"),
        "{}",
        response.outcomes[0].detail
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the disabled app is not called"
    );
}

#[tokio::test]
async fn setting_an_unknown_app_enabled_is_not_found() {
    let h = Harness::start().await;
    let status = set_enabled(&h, "ghost", true).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn registering_a_hook_the_config_does_not_allow_is_permission_denied() {
    let h = Harness::start_with(|c| {
        c.apps.insert(
            "narrow".into(),
            AppSettings {
                allowed_hooks: Some(vec![Hook::PostRoomCreate]),
                ..Default::default()
            },
        );
    })
    .await;

    let app = App::builder("narrow")
        .pre_room_user_joined(|_, _| async { Ok(()) })
        .build()
        .spawn(h.endpoint.clone());
    let refused = within(app.join()).await.unwrap_err();

    let SdkError::Refused(status) = refused else {
        panic!("expected a refusal, got {refused:?}")
    };
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("PreRoomUserJoined"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn configured_overrides_replace_what_the_app_registers() {
    let h = Harness::start_with(|c| {
        c.apps.insert(
            "tuned".into(),
            AppSettings {
                priority: Some(-5),
                failure_policy: Some(roomhooks_server::FailurePolicy::Fail),
                timeout: Some(Duration::from_millis(250)),
                ..Default::default()
            },
        );
    })
    .await;
    let _app = h
        .app(
            App::builder("tuned")
                .priority(50)
                .pre_room_create_prevent(|_, _| async { Ok(Veto::Allow) })
                .build(),
        )
        .await;

    let app = &h.list_apps().await.apps[0];

    assert_eq!(app.priority, -5);
    assert_eq!(app.failure_policy, FailurePolicy::Fail as i32);
    assert_eq!(
        app.timeout,
        Some(prost_types::Duration {
            seconds: 0,
            nanos: 250_000_000
        })
    );
}

#[tokio::test]
async fn backends_need_the_backend_token_when_one_is_configured() {
    let h = Harness::start_with(|c| c.backend_token = Some("backend-secret".into())).await;

    let anonymous = h
        .backend()
        .await
        .pre_room_user_join(join())
        .await
        .unwrap_err();
    let wrong = h
        .backend()
        .await
        .with_token("guess")
        .unwrap()
        .pre_room_user_join(join())
        .await
        .unwrap_err();
    let right = h
        .backend()
        .await
        .with_token("backend-secret")
        .unwrap()
        .pre_room_user_join(join())
        .await;

    assert_eq!(anonymous.code(), Code::Unauthenticated);
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert!(right.unwrap().allowed);
}

#[tokio::test]
async fn an_app_may_only_register_the_app_id_its_token_belongs_to() {
    let h = Harness::start_with(|c| {
        for (app, token) in [("alpha", "alpha-token"), ("beta", "beta-token")] {
            c.apps.insert(
                app.into(),
                AppSettings {
                    token: Some(token.into()),
                    ..Default::default()
                },
            );
        }
    })
    .await;
    let refused = |app: App| async {
        match within(app.spawn(h.endpoint.clone()).join()).await {
            Err(SdkError::Refused(status)) => status.code(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    };
    let joiner = |token: Option<&str>| {
        let builder = App::builder("alpha").pre_room_user_joined(|_, _| async { Ok(()) });
        match token {
            Some(t) => builder.token(t).build(),
            None => builder.build(),
        }
    };

    assert_eq!(refused(joiner(None)).await, Code::Unauthenticated);
    assert_eq!(
        refused(joiner(Some("beta-token"))).await,
        Code::PermissionDenied
    );
    let _ok = h.app(joiner(Some("alpha-token"))).await;
    assert_eq!(
        h.list_apps()
            .await
            .apps
            .iter()
            .filter(|a| !a.instances.is_empty())
            .count(),
        1
    );
}
