//! Operator controls: per-app settings from the config, essential hooks, enabling and disabling
//! apps, tokens, live statistics and the Prometheus endpoint.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{Harness, join_request, new_room, scrape, stored_room, within};
use roomhooks_sdk::{
    App, RoomHooksClient, SdkError, Veto,
    proto::{
        FailurePolicy, HookInterface, PostRoomCreateRequest, PreRoomCreateRequest,
        PreRoomUserJoinRequest, PreventionReason, RoomType, SetAppEnabledRequest,
        admin_client::AdminClient,
    },
};
use roomhooks_server::{config::MaybeAddr, hook::Hook, settings::AppSettings};
use tonic::Code;

fn join() -> PreRoomUserJoinRequest {
    join_request("olga")
}

fn counting_joiner(app_id: &str, calls: &Arc<AtomicUsize>) -> App {
    let calls = Arc::clone(calls);
    App::builder(app_id)
        .pre_room_user_joined(move |_, _| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        })
        .post_room_create(|_, _| async { Ok(()) })
        .build()
}

async fn set_enabled(h: &Harness, app_id: &str, enabled: bool) -> Result<(), tonic::Status> {
    AdminClient::new(h.channel().await)
        .set_app_enabled(SetAppEnabledRequest {
            app_id: app_id.into(),
            enabled,
        })
        .await
        .map(|_| ())
}

/// A sidecar where app "compliance" (never connected) is essential for PreRoomCreatePrevent,
/// with `settings` for the rest of its table; returns it with the answer to one creation.
async fn create_with_absent_compliance_app(
    settings: AppSettings,
) -> (Harness, roomhooks_sdk::proto::PreRoomCreateResponse) {
    let h = Harness::start_with(|c| {
        c.apps.insert(
            "compliance".into(),
            AppSettings {
                essential_hooks: vec![Hook::PreRoomCreatePrevent],
                ..settings
            },
        );
    })
    .await;
    let response = h
        .backend()
        .await
        .pre_room_create(PreRoomCreateRequest {
            room: Some(new_room("anything", RoomType::Channel)),
            ..Default::default()
        })
        .await
        .unwrap();
    (h, response)
}

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

#[tokio::test]
async fn list_apps_reports_live_statistics_per_hook() {
    let h = Harness::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let _app = h.app(counting_joiner("counted", &calls)).await;
    let backend = h.backend().await;
    for _ in 0..5 {
        backend.pre_room_user_join(join()).await.unwrap();
    }

    let app = &h.list_apps().await.apps[0];

    let stats = app
        .stats
        .iter()
        .find(|s| s.hook == HookInterface::PreRoomUserJoined as i32)
        .unwrap();
    assert_eq!(stats.calls, 5);
    assert_eq!(stats.vetoes + stats.timeouts + stats.errors, 0);
    assert!(stats.p50_us > 0 && stats.p99_us >= stats.p50_us);
}

#[tokio::test]
async fn the_metrics_endpoint_exports_calls_latency_and_backend_codes() {
    let h =
        Harness::start_with(|c| c.metrics_listen = MaybeAddr::On("127.0.0.1:0".parse().unwrap()))
            .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let _app = h.app(counting_joiner("metered", &calls)).await;
    let backend: RoomHooksClient = h.backend().await;
    backend.pre_room_user_join(join()).await.unwrap();
    let _ = backend
        .pre_room_user_join(PreRoomUserJoinRequest::default())
        .await;

    let text = within(scrape(h.sidecar.metrics_addr().unwrap())).await;

    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for line in [
        "roomhooks_app_calls_total{app_id=\"metered\",hook=\"PreRoomUserJoined\",status=\"ALLOWED\"} 1",
        "roomhooks_app_call_duration_seconds_bucket{app_id=\"metered\",hook=\"PreRoomUserJoined\",le=\"10\"} 1",
        "roomhooks_app_call_duration_seconds_count{app_id=\"metered\",hook=\"PreRoomUserJoined\"} 1",
        "roomhooks_app_instances{app_id=\"metered\"} 1",
        "roomhooks_post_queue_depth{app_id=\"metered\"} 0",
        "roomhooks_backend_requests_total{service=\"roomhooks.v1.RoomHooks\",method=\"PreRoomUserJoin\",code=\"OK\"} 1",
        "roomhooks_backend_requests_total{service=\"roomhooks.v1.RoomHooks\",method=\"PreRoomUserJoin\",code=\"INVALID_ARGUMENT\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

/// A sidecar with its metrics endpoint on a free port.
async fn metered() -> Harness {
    Harness::start_with(|c| c.metrics_listen = MaybeAddr::On("127.0.0.1:0".parse().unwrap())).await
}

/// The value of the one sample named exactly `series` (name and labels), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn an_idle_sidecar_exports_build_process_readiness_and_zeroed_request_series() {
    let h = metered().await;

    let text = within(scrape(h.sidecar.metrics_addr().unwrap())).await;

    let build = text
        .lines()
        .find(|l| l.starts_with("roomhooks_build_info{"))
        .unwrap_or_else(|| panic!("no build_info in\n{text}"));
    assert!(
        build.starts_with(&format!(
            "roomhooks_build_info{{version=\"{}\",commit=\"",
            env!("CARGO_PKG_VERSION")
        )) && build.ends_with("} 1"),
        "{build}"
    );
    assert_eq!(sample(&text, "roomhooks_ready"), Some(1.0));
    for series in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        let value = sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
        assert!(
            value > 0.0 || series == "process_cpu_seconds_total",
            "{series} {value}"
        );
    }
    for (service, method) in [
        ("roomhooks.v1.RoomHooks", "PreRoomCreate"),
        ("roomhooks.v1.RoomHooks", "PostEvents"),
        ("roomhooks.v1.Admin", "ListApps"),
        ("grpc.health.v1.Health", "Check"),
    ] {
        let series = format!(
            "roomhooks_backend_requests_total{{service=\"{service}\",method=\"{method}\",code=\"OK\"}}"
        );
        assert_eq!(sample(&text, &series), Some(0.0), "{series} in\n{text}");
    }
}

#[tokio::test]
async fn admin_and_health_calls_are_counted_with_their_service_and_code() {
    let h = metered().await;
    h.list_apps().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(h.channel().await);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap();
    let unknown = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let text = within(scrape(h.sidecar.metrics_addr().unwrap())).await;

    for (series, value) in [
        (
            "roomhooks_backend_requests_total{service=\"roomhooks.v1.Admin\",method=\"ListApps\",code=\"OK\"}",
            1.0,
        ),
        (
            "roomhooks_backend_requests_total{service=\"grpc.health.v1.Health\",method=\"Check\",code=\"OK\"}",
            1.0,
        ),
        (
            "roomhooks_backend_requests_total{service=\"grpc.health.v1.Health\",method=\"Check\",code=\"NOT_FOUND\"}",
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
}

#[tokio::test]
async fn post_hooks_count_deliveries_and_acks_and_vetoes_only_veto_hooks() {
    let h = metered().await;
    let (recorder, mut seen) = common::recorder("auditor");
    let _auditor = h.app(recorder).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let _joiner = h.app(counting_joiner("joiner", &calls)).await;
    let backend = h.backend().await;
    backend
        .post_room_create(common::created("r1", true))
        .await
        .unwrap();
    within(seen.recv()).await.unwrap();
    backend.pre_room_user_join(join()).await.unwrap();

    let text = within(scrape(h.sidecar.metrics_addr().unwrap())).await;

    let labels = "{app_id=\"auditor\",hook=\"PostRoomCreate\"}";
    assert_eq!(
        sample(&text, &format!("roomhooks_post_deliveries_total{labels}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("roomhooks_post_acks_total{labels}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("roomhooks_post_redeliveries_total{labels}")),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "roomhooks_app_vetoes_total{app_id=\"joiner\",hook=\"PreRoomUserJoined\"}"
        ),
        Some(0.0)
    );
    assert!(
        !text.contains("roomhooks_app_vetoes_total{app_id=\"auditor\""),
        "a post hook has no vetoes series:\n{text}"
    );
    let stats = h.list_apps().await;
    let auditor = stats.apps.iter().find(|a| a.app_id == "auditor").unwrap();
    let post = &auditor.stats[0];
    assert_eq!(
        (post.deliveries, post.acks, post.redeliveries),
        (1, 1, 0),
        "{post:?}"
    );
}
