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

    assert!(
        forgotten_after < Duration::from_secs(2) * 3,
        "forgotten within the member TTL and a heartbeat or two: {forgotten_after:?}"
    );
    assert!(restarted.logged("roomhooks sidecar listening"));
}
