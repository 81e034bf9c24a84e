//! Graceful shutdown of the real binary on SIGTERM: health goes NOT_SERVING and new work is
//! refused at once, the calls in flight finish with their apps (which stay connected), calls
//! still running at the drain timeout get their apps' failure policy, app streams end cleanly,
//! and what was accepted is on disk for the next start.

mod common;

use std::time::Duration;

use common::{
    Binary, data_dir, join_request,
    raw::{RawApp, answer, register, registration},
};
use roomhooks_sdk::{
    App, AppHandle, HookError, RoomHooksClient,
    proto::{
        FailurePolicy, HookInterface, OutcomeStatus, PostRoomCreateRequest, PreventDecision,
        PreventionReason, Room, RoomType, hook_result, runtime_message,
    },
};
use tokio::sync::{mpsc, watch};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Bounds every wait so a bug fails the test instead of hanging it.
async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("the step finished within 30 s")
}

/// A join veto app that reports each call it gets, then waits for `release` to become true
/// before answering (a ban for "troll", else allow).
fn gate(
    app_id: &str,
    policy: FailurePolicy,
    release: watch::Receiver<bool>,
) -> (App, mpsc::UnboundedReceiver<()>) {
    let (got, calls) = mpsc::unbounded_channel();
    let app = App::builder(app_id)
        .failure_policy(policy)
        .timeout(Duration::from_secs(10))
        .pre_room_user_joined(move |_, joined| {
            let (got, mut release) = (got.clone(), release.clone());
            async move {
                let _ = got.send(());
                let _ = release.wait_for(|open| *open).await;
                match joined.joining_user.map(|u| u.username).as_deref() {
                    Some("troll") => Err(HookError::UserNotAllowed("You are banned.".into())),
                    _ => Ok(()),
                }
            }
        })
        .build();
    (app, calls)
}

/// Starts `app` against `sidecar` and waits until it is registered.
async fn connected(app: App, sidecar: &Binary) -> AppHandle {
    let mut handle = app.spawn(sidecar.endpoint());
    within(handle.registered())
        .await
        .expect("the app registers");
    handle
}

/// The metrics text at `addr`.
async fn scrape(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body
}

fn backend(channel: tonic::transport::Channel) -> RoomHooksClient {
    RoomHooksClient::from_channel(channel).with_deadline(Duration::from_secs(20))
}

#[tokio::test]
async fn a_call_in_flight_at_sigterm_still_gets_its_apps_veto() {
    let (_dir, path) = data_dir();
    let mut sidecar = Binary::start(&["--drain-timeout", "3s"], &path);
    let (open, release) = watch::channel(false);
    let (app, mut calls) = gate("slow-guard", FailurePolicy::Ignore, release);
    let _app = connected(app, &sidecar).await;

    let client = backend(sidecar.channel().await);
    let call = tokio::spawn(async move { client.pre_room_user_join(join_request("troll")).await });
    within(calls.recv()).await.expect("the app got the call");
    sidecar.terminate();
    // The app answers 0.8 s after the signal, well within the drain timeout.
    tokio::time::sleep(Duration::from_millis(800)).await;
    open.send_replace(true);

    let verdict = within(call)
        .await
        .unwrap()
        .expect("the call in flight is answered");
    assert!(!verdict.allowed, "the app's veto stands: {verdict:?}");
    assert_eq!(verdict.preventions[0].message, "You are banned.");
    assert_eq!(
        verdict.outcomes[0].status,
        OutcomeStatus::Prevented as i32,
        "{:?}",
        verdict.outcomes
    );
    let exit = sidecar.exited(Duration::from_secs(15)).await;
    assert!(exit.success(), "a drained sidecar exits 0, got {exit:?}");
}

#[tokio::test]
async fn a_call_still_running_when_the_drain_timeout_passes_gets_the_failure_policy_saying_the_sidecar_shut_down()
 {
    let (_dir, path) = data_dir();
    let mut sidecar = Binary::start(&["--drain-timeout", "300ms"], &path);
    let (_never, release) = watch::channel(false);
    let (app, mut calls) = gate("stuck-guard", FailurePolicy::Fail, release);
    let _app = connected(app, &sidecar).await;

    let client = backend(sidecar.channel().await);
    let call = tokio::spawn(async move { client.pre_room_user_join(join_request("ana")).await });
    within(calls.recv()).await.expect("the app got the call");
    sidecar.terminate();

    let verdict = within(call).await.unwrap().expect("the call is answered");
    assert!(!verdict.allowed, "FAIL: an app cut off prevents the action");
    let outcome = &verdict.outcomes[0];
    assert_eq!(
        outcome.status,
        OutcomeStatus::Unavailable as i32,
        "{outcome:?}"
    );
    assert!(
        outcome.detail.contains("sidecar shut down"),
        "the detail says why: {:?}",
        outcome.detail
    );
    assert_eq!(
        verdict.preventions[0].reason,
        PreventionReason::AppUnavailable as i32
    );
    let exit = sidecar.exited(Duration::from_secs(15)).await;
    assert!(exit.success(), "got {exit:?}");
}

#[tokio::test]
async fn while_draining_health_is_not_serving_and_new_calls_and_registrations_are_refused() {
    let (_dir, path) = data_dir();
    let mut sidecar = Binary::start(
        &["--drain-timeout", "10s", "--metrics-listen", "127.0.0.1:0"],
        &path,
    );
    let metrics = sidecar
        .log_line("\"metrics_addr\":\"")
        .and_then(|l| {
            Some(
                l.split("\"metrics_addr\":\"")
                    .nth(1)?
                    .split('"')
                    .next()?
                    .to_owned(),
            )
        })
        .expect("the metrics address is logged");
    assert!(scrape(&metrics).await.contains("\nroomhooks_ready 1\n"));
    let (open, release) = watch::channel(false);
    let (app, mut calls) = gate("holding-guard", FailurePolicy::Ignore, release);
    let _app = connected(app, &sidecar).await;
    let client = backend(sidecar.channel().await);
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.pre_room_user_join(join_request("ana")).await }
    });
    within(calls.recv()).await.expect("the app got the call");
    sidecar.terminate();

    // A new connection still gets through: the listener is open while the drain runs.
    let fresh = sidecar.channel().await;
    let mut health = HealthClient::new(fresh.clone());
    let check = |service: &'static str| {
        let mut health = health.clone();
        async move {
            health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .expect("health answers while draining")
                .into_inner()
                .status
        }
    };
    within(async {
        while check("").await != ServingStatus::NotServing as i32 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    for service in [
        "roomhooks.v1.RoomHooks",
        "roomhooks.v1.AppRuntime",
        "roomhooks.v1.Admin",
    ] {
        assert_eq!(
            check(service).await,
            ServingStatus::NotServing as i32,
            "{service}"
        );
    }
    let _ = health.check(HealthCheckRequest::default()).await;
    assert!(
        scrape(&metrics).await.contains("\nroomhooks_ready 0\n"),
        "roomhooks_ready is 0 while draining"
    );

    let refused = backend(fresh.clone())
        .pre_room_user_join(join_request("bo"))
        .await
        .expect_err("a new backend call is refused");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("shutting down"), "{refused:?}");

    let refused = RawApp::register(
        fresh,
        register("late-app", &[HookInterface::PreRoomUserJoined]),
    )
    .await
    .err()
    .expect("a registration during the drain is refused");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");

    open.send_replace(true);
    let verdict = within(held).await.unwrap().expect("the held call finishes");
    assert!(verdict.allowed);
    let exit = sidecar.exited(Duration::from_secs(15)).await;
    assert!(exit.success(), "got {exit:?}");
}

#[tokio::test]
async fn an_app_stream_stays_open_through_the_drain_and_then_ends_cleanly_with_status_ok() {
    let (_dir, path) = data_dir();
    let mut sidecar = Binary::start(&["--drain-timeout", "5s"], &path);
    // Heartbeats may come between the messages this test waits for: `next` skips them.
    let mut app = RawApp::open(
        sidecar.channel().await,
        registration(register("raw-app", &[HookInterface::PreRoomUserJoined])),
    )
    .await
    .expect("the stream opens");
    let first = within(app.next()).await.expect("a first message");
    assert!(
        matches!(first, Some(runtime_message::Msg::Registered(_))),
        "{first:?}"
    );

    let client = backend(sidecar.channel().await);
    let call = tokio::spawn(async move { client.pre_room_user_join(join_request("ana")).await });
    let call_id = match within(app.next()).await.expect("a hook call") {
        Some(runtime_message::Msg::Call(call)) => call.call_id,
        other => panic!("expected a HookCall, got {other:?}"),
    };
    sidecar.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.sender()
        .send(answer(
            call_id,
            Some(hook_result::Result::Decision(PreventDecision {
                prevent: true,
                message: "Not during maintenance.".into(),
                ..Default::default()
            })),
        ))
        .await
        .expect("the app can still answer after SIGTERM");
    let verdict = within(call).await.unwrap().expect("the call is answered");
    assert_eq!(
        verdict.preventions.first().map(|p| p.message.as_str()),
        Some("Not during maintenance."),
        "the answer sent after SIGTERM counts: {verdict:?}"
    );

    let end = within(app.next()).await;
    assert!(
        matches!(end, Ok(None)),
        "a clean end of stream (status OK), got {end:?}"
    );
    drop(app);
    let exit = sidecar.exited(Duration::from_secs(15)).await;
    assert!(exit.success(), "got {exit:?}");
}

#[tokio::test]
async fn a_post_event_still_unacknowledged_at_shutdown_is_delivered_after_a_restart() {
    let (_dir, path) = data_dir();
    let mut sidecar = Binary::start(&["--drain-timeout", "5s"], &path);
    // The first instance takes the event but never acknowledges it.
    let (got, mut received) = mpsc::unbounded_channel();
    let silent = App::builder("auditor")
        .timeout(Duration::from_secs(1))
        .post_room_create(move |ctx, _room| {
            let _ = got.send(ctx.event_id);
            std::future::pending()
        })
        .build();
    let silent = connected(silent, &sidecar).await;
    let client = backend(sidecar.channel().await);
    let post = tokio::spawn(async move {
        client
            .post_room_create(PostRoomCreateRequest {
                room: Some(Room {
                    id: "r1".into(),
                    r#type: RoomType::Channel as i32,
                    ..Default::default()
                }),
                event_id: "evt-r1".into(),
                wait_for_delivery: true,
            })
            .await
    });
    assert_eq!(within(received.recv()).await.as_deref(), Some("evt-r1"));
    sidecar.terminate();
    let answer = within(post).await.unwrap().expect("the event was accepted");
    assert_eq!(
        answer.outcomes[0].status,
        OutcomeStatus::Timeout as i32,
        "it was delivered but not acknowledged: {:?}",
        answer.outcomes
    );
    let exit = sidecar.exited(Duration::from_secs(15)).await;
    assert!(exit.success(), "got {exit:?}");
    silent.abort();

    let restarted = Binary::start(&[], &path);
    let (got, mut received) = mpsc::unbounded_channel();
    let acking = App::builder("auditor")
        .timeout(Duration::from_secs(1))
        .post_room_create(move |ctx, _room| {
            let _ = got.send((ctx.event_id, ctx.attempt));
            async { Ok(()) }
        })
        .build();
    let _acking = connected(acking, &restarted).await;
    let (event_id, _attempt) = within(received.recv()).await.expect("redelivered");
    assert_eq!(event_id, "evt-r1");
}
