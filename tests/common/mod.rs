//! Shared set-up for the end-to-end tests: a real sidecar on 127.0.0.1:0, real SDK apps and a
//! real backend client, all over TCP.
#![allow(dead_code)]

use std::{future::Future, time::Duration};

use roomhooks_sdk::{
    App, AppHandle, RoomHooksClient,
    proto::{
        ListAppsRequest, ListAppsResponse, Room, RoomType, RoomUserJoined, User,
        admin_client::AdminClient,
    },
};
use roomhooks_server::{Config, Sidecar, config::MaybeAddr};
use tonic::transport::Channel;

/// A running sidecar and the URL apps and backends use to reach it.
pub struct Harness {
    pub sidecar: Sidecar,
    pub endpoint: String,
}

impl Harness {
    /// Starts a sidecar with default settings on a free port.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a sidecar with settings adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: MaybeAddr::Off,
            ..Config::default()
        };
        tweak(&mut config);
        let sidecar = Sidecar::start(config).await.expect("sidecar starts");
        let endpoint = format!("http://{}", sidecar.local_addr());
        Self { sidecar, endpoint }
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

    /// Waits until ListApps satisfies `ready`.
    pub async fn wait_for_apps(&self, what: &str, ready: impl Fn(&ListAppsResponse) -> bool) {
        for _ in 0..500 {
            if ready(&self.list_apps().await) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for: {what}");
    }
}

/// Bounds any wait in a test so a bug fails the test instead of hanging it.
pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("the operation did not finish within 20 s")
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
pub fn user(username: &str) -> User {
    User {
        id: format!("u-{username}"),
        username: username.into(),
        name: username.into(),
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
