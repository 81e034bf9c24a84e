//! Cluster mode, post events: stored once in JetStream when the backend hears OK, delivered from
//! each app's durable consumer by whichever sidecar holds its instances, acknowledged, redelivered,
//! dead-lettered and retried from any sidecar. Real nats-server nodes, real sidecars, real SDK apps.

mod common;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    Harness,
    cluster::{cluster_name, join, posts_stream, sidecars},
    created,
    nats::NatsCluster,
    recorder, statuses, stored_room, within,
};
use roomhooks_sdk::{
    App, HookError, RoomHooksClient,
    proto::{
        ListDeadLettersRequest, OutcomeStatus, PostEventsItem, PostRoomCreateRequest,
        RemoveAppRequest, RetryDeadLettersRequest, RoomType, SetAppEnabledRequest,
        admin_client::AdminClient, post_events_item::Event,
    },
};
use roomhooks_server::{Config, Sidecar, config::MaybeAddr};
use tokio::sync::mpsc;

/// An app that reports every PostRoomCreate it handles as (event_id, attempt) and acknowledges
/// it only when `ack` says so at that attempt.
fn choosy(
    app_id: &str,
    ack: impl Fn(u32) -> bool + Send + Sync + 'static,
) -> (App, mpsc::UnboundedReceiver<(String, u32)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let ack = Arc::new(ack);
    let app = App::builder(app_id)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .post_room_create(move |ctx, _room| {
            let _ = tx.send((ctx.event_id, ctx.attempt));
            let ok = ack(ctx.attempt);
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(HookError::Failed("not now".into()))
                }
            }
        })
        .build();
    (app, rx)
}

/// Nothing more arrives on `rx` for a while.
async fn quiet(rx: &mut mpsc::UnboundedReceiver<(String, u32)>, what: &str) {
    tokio::time::sleep(Duration::from_millis(700)).await;
    if let Ok(more) = rx.try_recv() {
        panic!("{what}: got {more:?} as well");
    }
}

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

/// The text of `GET /metrics` at `addr`.
async fn scrape(addr: std::net::SocketAddr) -> String {
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

/// One PostRoomCreate for the load test.
fn load_item(i: usize) -> PostEventsItem {
    PostEventsItem {
        event: Some(Event::RoomCreate(PostRoomCreateRequest {
            room: Some(stored_room(&format!("r{i}"), RoomType::Channel)),
            event_id: format!("evt-{i}"),
            wait_for_delivery: false,
        })),
    }
}

/// An app whose every instance reports the event ids it handles on `tx`, tagged with `app_id`.
fn counter(app_id: &'static str, tx: mpsc::UnboundedSender<(&'static str, String)>) -> App {
    App::builder(app_id)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .post_room_create(move |ctx, _| {
            let _ = tx.send((app_id, ctx.event_id));
            async { Ok(()) }
        })
        .build()
}

/// A sidecar on a runtime of its own, which it can lose at once as a process killed with
/// `kill -9` would: nothing graceful runs (no nak, no goodbye heartbeat, no stream ends with OK);
/// its sockets just close.
struct Crashable {
    addr: std::net::SocketAddr,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Crashable {
    /// Starts a sidecar with `config` (retrying while its id is still held by a killed
    /// predecessor, until the member TTL forgets it).
    async fn start(config: Config) -> Self {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (kill, killed) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the sidecar");
            let sidecar = runtime.block_on(async {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    match Sidecar::start(config.clone()).await {
                        Ok(sidecar) => break sidecar,
                        Err(e) if Instant::now() < deadline => {
                            eprintln!("the sidecar does not start yet: {e}");
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Err(e) => panic!("the sidecar does not start: {e}"),
                    }
                }
            });
            let _ = ready_tx.send(sidecar.local_addr());
            let _ = killed.recv();
            // Like SIGKILL: no Drop, no shutdown; every task is dropped where it stands.
            std::mem::forget(sidecar);
            runtime.shutdown_background();
        });
        let addr = ready_rx.await.expect("the sidecar started");
        Self {
            addr,
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    /// Loses the sidecar at once.
    fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Crashable {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn events_sent_round_robin_to_three_sidecars_are_all_delivered_while_a_sidecar_and_a_nats_node_are_killed()
 {
    let total: usize = std::env::var("ROOMHOOKS_CLUSTER_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    const BATCH: usize = 100;
    let mut nats = NatsCluster::start(3).await;
    let urls: Vec<String> = nats.urls().split(',').map(String::from).collect();
    let name = cluster_name("load");
    let data = tempfile::tempdir().unwrap();
    let config = |i: usize, listen: std::net::SocketAddr| {
        let mut c = Config {
            listen,
            metrics_listen: MaybeAddr::Off,
            data_dir: data.path().join(format!("s{i}")),
            ..Config::default()
        };
        join(&mut c, &urls.join(","), &name, i);
        // Each sidecar tries a different node first.
        let mut mine = urls.clone();
        mine.rotate_left(i);
        c.cluster_url = Some(mine.join(","));
        c.cluster_replicas = 3;
        c.post.ack_timeout = Duration::from_secs(5);
        c
    };
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut s1 = Crashable::start(config(1, any)).await;
    let s0 = Harness::start_with(|c| *c = config(0, any)).await;
    let s2 = Harness::start_with(|c| *c = config(2, any)).await;
    let endpoints = [
        s0.endpoint.clone(),
        format!("http://{}", s1.addr),
        s2.endpoint.clone(),
    ];
    let (tx, mut deliveries) = mpsc::unbounded_channel();
    let mut apps = Vec::new();
    for i in 0..3 {
        // Each instance knows another sidecar to move to.
        let mine = format!("{},{}", endpoints[i], endpoints[(i + 1) % 3]);
        let mut app = counter("audit", tx.clone()).spawn(mine);
        within(app.registered()).await.expect("audit registers");
        apps.push(app);
    }
    apps.push(s2.app(counter("index", tx.clone())).await);
    s0.wait_for_instance_at("index", "s2").await;
    s0.wait_for_instance_at("audit", "s1").await;
    let backends = [
        s0.backend().await,
        RoomHooksClient::connect(endpoints[1].clone())
            .await
            .unwrap(),
        s2.backend().await,
    ];
    // The node leading the posts stream is the one killed: its loss forces an election.
    let leader = posts_stream(&urls.join(","), &name)
        .await
        .info()
        .await
        .expect("stream info")
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .and_then(|name| nats.index_of(&name))
        .unwrap_or(0);

    let started = Instant::now();
    let mut ok: HashSet<String> = HashSet::new();
    let mut refused_calls = 0usize;
    let mut next_sidecar = 0usize;
    let batches = total.div_ceil(BATCH);
    for b in 0..batches {
        if b == batches / 4 {
            s1.kill();
            eprintln!("killed sidecar s1 after {} events", b * BATCH);
        }
        if b == batches / 2 {
            nats.kill(leader);
            eprintln!(
                "killed NATS node {leader} (the posts stream's leader) after {} events",
                b * BATCH
            );
        }
        if b == 3 * batches / 4 {
            s1 = Crashable::start(config(1, s1.addr)).await;
            eprintln!("restarted sidecar s1 after {} events", b * BATCH);
        }
        let items: Vec<PostEventsItem> = (b * BATCH..((b + 1) * BATCH).min(total))
            .map(load_item)
            .collect();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let backend = &backends[next_sidecar % 3];
            next_sidecar += 1;
            match tokio::time::timeout(Duration::from_secs(20), backend.post_events(items.clone()))
                .await
            {
                Ok(Ok(results)) => {
                    ok.extend(results.into_iter().map(|r| r.event_id));
                    break;
                }
                refused => {
                    refused_calls += 1;
                    assert!(
                        Instant::now() < deadline,
                        "batch {b} refused for 90 s: {refused:?}"
                    );
                    // The backend retries the same event ids at the next sidecar.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let sent_in = started.elapsed();

    let mut seen: HashMap<&'static str, HashSet<String>> = HashMap::new();
    let mut received = HashMap::<&'static str, usize>::new();
    let all_in = tokio::time::timeout(Duration::from_secs(180), async {
        while ["audit", "index"].iter().any(|app| {
            ok.iter()
                .any(|id| !seen.get(app).is_some_and(|s| s.contains(id)))
        }) {
            let Some((app, event_id)) = deliveries.recv().await else {
                break;
            };
            *received.entry(app).or_default() += 1;
            seen.entry(app).or_default().insert(event_id);
        }
    })
    .await;
    // Late duplicates, if any, still count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok((app, event_id)) = deliveries.try_recv() {
        *received.entry(app).or_default() += 1;
        seen.entry(app).or_default().insert(event_id);
    }

    let mut lost_total = 0;
    for app in ["audit", "index"] {
        let unique = seen.get(app).map_or(0, HashSet::len);
        let lost = ok
            .iter()
            .filter(|id| !seen.get(app).is_some_and(|s| s.contains(*id)))
            .count();
        lost_total += lost;
        eprintln!(
            "cluster post load, app {app}: sent {total} / OK {} / delivered {unique} / duplicates {} / lost {lost} \
             ({refused_calls} batch calls refused and retried; sent in {sent_in:?}; sidecar s1 killed and \
             restarted, NATS node {leader} killed, replicas 3)",
            ok.len(),
            received.get(app).copied().unwrap_or(0) - unique,
        );
    }
    assert_eq!(ok.len(), total, "every event was accepted in the end");
    assert!(
        all_in.is_ok(),
        "not every accepted event was delivered in 180 s"
    );
    assert_eq!(lost_total, 0);
    drop(apps);
}
