//! Shared set-up for the end-to-end tests: a real sidecar on 127.0.0.1:0, real SDK apps and a
//! real backend client, all over TCP.
#![allow(dead_code)]

pub mod cluster;
pub mod nats;
pub mod raw;

use std::{future::Future, sync::Arc, time::Duration};

use roomhooks_sdk::{
    App, AppHandle, RoomHooksClient,
    proto::{
        AppOutcome, ListAppsRequest, ListAppsResponse, OutcomeStatus, PostRoomCreateRequest,
        PreRoomUserJoinRequest, Room, RoomType, RoomUserJoined, User, admin_client::AdminClient,
    },
};
use roomhooks_server::{Config, Sidecar, config::MaybeAddr};
use tonic::transport::Channel;

/// A running sidecar and the URL apps and backends use to reach it.
pub struct Harness {
    pub sidecar: Sidecar,
    pub endpoint: String,
    /// The store's directory, removed when the harness is dropped.
    pub data_dir: Arc<tempfile::TempDir>,
}

impl Harness {
    /// Starts a sidecar with default settings on a free port.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a sidecar with settings adjusted by `tweak`, storing post events in a fresh
    /// temporary directory.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("a temp dir"));
        Self::start_in(dir, "127.0.0.1:0".parse().unwrap(), tweak).await
    }

    /// Starts a sidecar on `listen` storing post events in `data_dir` (a restart reuses both).
    pub async fn start_in(
        data_dir: Arc<tempfile::TempDir>,
        listen: std::net::SocketAddr,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config {
            listen,
            metrics_listen: MaybeAddr::Off,
            data_dir: data_dir.path().to_path_buf(),
            ..Config::default()
        };
        tweak(&mut config);
        let sidecar = Sidecar::start(config).await.expect("sidecar starts");
        let endpoint = format!("http://{}", sidecar.local_addr());
        Self {
            sidecar,
            endpoint,
            data_dir,
        }
    }

    /// Stops this sidecar gracefully and starts a new one on the same address and store.
    pub async fn restart(self, tweak: impl FnOnce(&mut Config)) -> Self {
        let (addr, dir) = (self.sidecar.local_addr(), Arc::clone(&self.data_dir));
        self.sidecar.shutdown().await.expect("clean shutdown");
        Self::start_in(dir, addr, tweak).await
    }

    /// A backend client.
    pub async fn backend(&self) -> RoomHooksClient {
        RoomHooksClient::connect(self.endpoint.clone())
            .await
            .expect("backend connects")
    }

    /// A raw channel, for hand-written clients.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint.clone())
            .unwrap()
            .connect()
            .await
            .expect("channel connects")
    }

    /// Starts an app and waits until the sidecar accepted it.
    pub async fn app(&self, app: App) -> AppHandle {
        let mut handle = app.spawn(self.endpoint.clone());
        within(handle.registered()).await.expect("app registers");
        handle
    }

    /// Admin.ListApps.
    pub async fn list_apps(&self) -> ListAppsResponse {
        AdminClient::new(self.channel().await)
            .list_apps(ListAppsRequest {})
            .await
            .expect("ListApps answers")
            .into_inner()
    }

    /// Waits until ListApps satisfies `ready` (up to 20 s, as [`within`]: a NATS cluster that
    /// has just started may still be electing its leaders).
    pub async fn wait_for_apps(&self, what: &str, ready: impl Fn(&ListAppsResponse) -> bool) {
        for _ in 0..2000 {
            if ready(&self.list_apps().await) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for: {what}");
    }
}

/// Sets its flag when dropped: a handler holding one shows when it was aborted (`CancelCall`).
pub struct SetOnDrop(pub Arc<std::sync::atomic::AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// An app "dawdler" with `timeout` whose join handler sets `handling`, then takes 20 s: it ends
/// early only when aborted (`CancelCall`), which sets `cancelled`.
pub fn dawdler(
    timeout: Duration,
    handling: Arc<std::sync::atomic::AtomicBool>,
    cancelled: Arc<std::sync::atomic::AtomicBool>,
) -> App {
    App::builder("dawdler")
        .timeout(timeout)
        .pre_room_user_joined(move |_, _| {
            handling.store(true, std::sync::atomic::Ordering::SeqCst);
            let guard = SetOnDrop(Arc::clone(&cancelled));
            async move {
                tokio::time::sleep(Duration::from_secs(20)).await;
                drop(guard);
                Ok(())
            }
        })
        .build()
}

/// Waits up to `limit` for `flag` to be set; whether it was.
pub async fn flag_set_within(flag: &std::sync::atomic::AtomicBool, limit: Duration) -> bool {
    let until = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < until {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    flag.load(std::sync::atomic::Ordering::SeqCst)
}

/// Bounds any wait in a test so a bug fails the test instead of hanging it.
pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("the operation did not finish within 20 s")
}

/// The Prometheus endpoint's answer to `GET /metrics` (status line, headers and body).
pub async fn scrape(addr: std::net::SocketAddr) -> String {
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

/// A room about to be created.
pub fn new_room(name: &str, room_type: RoomType) -> Room {
    Room {
        display_name: name.into(),
        slugified_name: name.to_lowercase().replace(' ', "-"),
        r#type: room_type as i32,
        creator: Some(user("owner")),
        member_usernames: vec!["owner".into()],
        ..Default::default()
    }
}

/// A stored room.
pub fn stored_room(id: &str, room_type: RoomType) -> Room {
    Room {
        id: id.into(),
        ..new_room(id, room_type)
    }
}

/// A user.
/// PostRoomCreate for stored channel `id`, with event id `evt-{id}`.
pub fn created(id: &str, wait: bool) -> PostRoomCreateRequest {
    PostRoomCreateRequest {
        room: Some(stored_room(id, RoomType::Channel)),
        event_id: format!("evt-{id}"),
        wait_for_delivery: wait,
    }
}

/// Each outcome as (app id, status), in the answer's order.
pub fn statuses(outcomes: &[AppOutcome]) -> Vec<(&str, OutcomeStatus)> {
    outcomes
        .iter()
        .map(|o| {
            let status = OutcomeStatus::try_from(o.status).expect("a known OutcomeStatus");
            (o.app_id.as_str(), status)
        })
        .collect()
}

pub fn user(username: &str) -> User {
    User {
        id: format!("u-{username}"),
        username: username.into(),
        name: username.into(),
        ..Default::default()
    }
}

/// PreRoomUserJoin for `username` joining stored channel "general".
pub fn join_request(username: &str) -> PreRoomUserJoinRequest {
    PreRoomUserJoinRequest {
        context: Some(joining("general", username)),
        ..Default::default()
    }
}

/// A join context for `username` joining a stored channel.
pub fn joining(room_id: &str, username: &str) -> RoomUserJoined {
    RoomUserJoined {
        room: Some(stored_room(room_id, RoomType::Channel)),
        joining_user: Some(user(username)),
        inviter: None,
    }
}

/// An app that reports every PostRoomCreate event it handles as (event_id, attempt), and
/// reconnects quickly.
pub fn recorder(app_id: &str) -> (App, tokio::sync::mpsc::UnboundedReceiver<(String, u32)>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = App::builder(app_id)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .post_room_create(move |ctx, _room| {
            let _ = tx.send((ctx.event_id, ctx.attempt));
            async { Ok(()) }
        })
        .build();
    (app, rx)
}
