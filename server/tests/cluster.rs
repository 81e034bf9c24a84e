//! Cluster mode with the real binary: start-up refusals (NATS unreachable, a sidecar id already
//! held) and a sidecar killed with `kill -9` — forgotten by the others within the member TTL,
//! its id taken back when it restarts.

mod common;

use std::time::{Duration, Instant};

use common::{
    Binary, data_dir,
    nats::NatsCluster,
    raw::{RawApp, register},
    run_to_exit,
};
use roomhooks::v1::{HookInterface, ListAppsRequest, admin_client::AdminClient};

/// The cluster flags of sidecar `id` of cluster `name` (member TTL 2 s).
fn cluster_args<'a>(urls: &'a str, name: &'a str, id: &'a str) -> Vec<&'a str> {
    vec![
        "--cluster-url",
        urls,
        "--cluster-name",
        name,
        "--sidecar-id",
        id,
        "--cluster-member-ttl",
        "2s",
    ]
}

/// The sidecar ids `binary` lists instances of app `app_id` at.
async fn instances_at(binary: &Binary, app_id: &str) -> Vec<String> {
    let apps = AdminClient::new(binary.channel().await)
        .list_apps(ListAppsRequest {})
        .await
        .expect("ListApps answers")
        .into_inner()
        .apps;
    apps.into_iter()
        .filter(|a| a.app_id == app_id)
        .flat_map(|a| a.instances.into_iter().map(|i| i.sidecar_id))
        .collect()
}

/// Polls `binary` until app `app_id`'s instances are at `sidecars`, for up to 15 s.
async fn wait_for_instances(binary: &Binary, app_id: &str, sidecars: &[&str]) -> Duration {
    let started = Instant::now();
    loop {
        let mut at = instances_at(binary, app_id).await;
        at.sort();
        if at == sidecars {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "app {app_id} is at {at:?}, not {sidecars:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn start_up_fails_after_cluster_wait_when_nats_is_unreachable_naming_the_url() {
    let (_dir, data) = data_dir();
    let (status, stderr) = run_to_exit(
        &[
            "--cluster-url",
            "nats://127.0.0.1:1",
            "--cluster-wait",
            "1s",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
        ],
        &data,
    );

    assert!(!status.success());
    assert!(
        stderr.contains("cannot reach NATS at nats://127.0.0.1:1 within"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--cluster-wait forever"),
        "says how to keep retrying: {stderr}"
    );
}

#[tokio::test]
async fn a_second_sidecar_with_the_id_of_a_live_one_is_refused_at_start() {
    let nats = NatsCluster::start(1).await;
    let urls = nats.urls();
    let (_dir, data) = data_dir();
    let _first = Binary::start(&cluster_args(&urls, "dupid", "same"), &data);

    let (_dir2, data2) = data_dir();
    let mut args = cluster_args(&urls, "dupid", "same");
    args.extend(["--listen", "127.0.0.1:0", "--metrics-listen", "off"]);
    let (status, stderr) = run_to_exit(&args, &data2);

    assert!(!status.success());
    assert!(
        stderr.contains("another live sidecar already holds --sidecar-id \\\"same\\\""),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_sidecar_killed_with_kill_9_is_forgotten_by_the_others_and_takes_its_id_back_on_restart()
{
    let nats = NatsCluster::start(1).await;
    let urls = nats.urls();
    let (_da, data_a) = data_dir();
    let (_db, data_b) = data_dir();
    let a = Binary::start(&cluster_args(&urls, "killed", "a"), &data_a);
    let mut b = Binary::start(&cluster_args(&urls, "killed", "b"), &data_b);
    let _app = RawApp::register(
        b.channel().await,
        register("watcher", &[HookInterface::PreRoomUserJoined]),
    )
    .await
    .expect("the app registers at b");
    wait_for_instances(&a, "watcher", &["b"]).await;

    b.kill();
    let forgotten_after = wait_for_instances(&a, "watcher", &[]).await;
    println!(
        "a sidecar killed with kill -9 was forgotten after {forgotten_after:?} (member TTL 2 s)"
    );
    let restarted = Binary::start(&cluster_args(&urls, "killed", "b"), &data_b);

    assert!(restarted.logged("roomhooks sidecar listening"));
}

/// Post events to `lanes` backends, each alternating between the sidecars `endpoints` and
/// retrying an event at the next sidecar until it gets an OK; returns the ids that got one.
async fn post_round_robin(endpoints: Vec<String>, lanes: usize, per_lane: usize) -> Vec<String> {
    use roomhooks::v1::{PostRoomCreateRequest, Room, RoomType};
    use roomhooks_sdk::RoomHooksClient;
    let mut running = Vec::new();
    for lane in 0..lanes {
        let endpoints = endpoints.clone();
        running.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            let mut at = lane;
            for n in 0..per_lane {
                let event_id = format!("lane{lane}-{n:05}");
                loop {
                    at += 1;
                    let endpoint = endpoints[at % endpoints.len()].clone();
                    let Ok(client) = RoomHooksClient::connect(endpoint).await else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    let request = PostRoomCreateRequest {
                        room: Some(Room {
                            id: format!("room-{lane}-{n}"),
                            r#type: RoomType::Channel as i32,
                            ..Default::default()
                        }),
                        event_id: event_id.clone(),
                        wait_for_delivery: false,
                    };
                    if client
                        .with_deadline(Duration::from_secs(5))
                        .post_room_create(request)
                        .await
                        .is_ok()
                    {
                        ok.push(event_id);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            ok
        }));
    }
    let mut ok = Vec::new();
    for lane in running {
        ok.extend(lane.await.expect("a backend lane panicked"));
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_killed_with_kill_9_mid_load_loses_no_accepted_post_event() {
    use std::{
        collections::HashMap,
        sync::{Arc, Mutex},
    };
    let nats = NatsCluster::start(1).await;
    let urls = nats.urls();
    let (_da, data_a) = data_dir();
    let (_db, data_b) = data_dir();
    let ack = ["--post-ack-timeout", "1s"];
    let args = |id: &'static str| {
        let mut args = cluster_args(&urls, "midload", id);
        args.extend(ack);
        args
    };
    let mut a = Binary::start(&args("a"), &data_a);
    let b = Binary::start(&args("b"), &data_b);
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let record = Arc::clone(&seen);
    let mut app = roomhooks_sdk::App::builder("auditor")
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .post_room_create(move |ctx, _| {
            *record.lock().unwrap().entry(ctx.event_id).or_default() += 1;
            async { Ok(()) }
        })
        .build()
        .spawn(format!("{},{}", a.endpoint(), b.endpoint()));
    tokio::time::timeout(Duration::from_secs(20), app.registered())
        .await
        .expect("the app registers at a")
        .unwrap();
    wait_for_instances(&b, "auditor", &["a"]).await;

    let posting = tokio::spawn(post_round_robin(vec![a.endpoint(), b.endpoint()], 4, 250));
    while seen.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.kill();
    let ok = tokio::time::timeout(Duration::from_secs(120), posting)
        .await
        .expect("the backends finish")
        .unwrap();
    let _restarted = Binary::start(&args("a"), &data_a);
    let started = Instant::now();
    let lost = loop {
        let seen = seen.lock().unwrap().clone();
        let lost: Vec<&String> = ok.iter().filter(|id| !seen.contains_key(*id)).collect();
        if lost.is_empty() || started.elapsed() > Duration::from_secs(60) {
            break lost.len();
        }
        drop(seen);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seen = seen.lock().unwrap();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    println!(
        "sent 1000 / OK {} / delivered {} / duplicates {duplicates} / lost {lost}",
        ok.len(),
        seen.len()
    );

    assert_eq!(
        ok.len(),
        1000,
        "every event got an OK at one sidecar or the other"
    );
    assert_eq!(lost, 0, "no event the backend got an OK for is lost");
}
