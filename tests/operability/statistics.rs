//! Live statistics in ListApps and the Prometheus endpoint's series.

use super::*;

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
