//! Cluster-mode set-up shared by the cluster tests: sidecars joined to one NATS (from
//! [`super::nats`]) under a cluster name of their own, and waits for the cluster to converge.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use roomhooks_sdk::proto::{ListAppsResponse, ListSidecarsRequest, admin_client::AdminClient};
use roomhooks_server::Config;

use super::Harness;

/// A fresh cluster name, so tests sharing a NATS never see each other's objects.
pub fn cluster_name(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        test.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(12)
            .collect::<String>()
    )
}

/// Cluster settings for sidecar `s{i}` of cluster `name` on NATS `urls`, heartbeating fast.
pub fn join(config: &mut Config, urls: &str, name: &str, i: usize) {
    config.cluster_url = Some(urls.to_owned());
    config.cluster_name = name.to_owned();
    config.sidecar_id = Some(format!("s{i}"));
    config.cluster_member_ttl = Duration::from_secs(2);
}

/// `n` sidecars of one cluster on NATS `urls`, each also adjusted by `tweak(config, i)`.
pub async fn sidecars(
    urls: &str,
    name: &str,
    n: usize,
    tweak: impl Fn(&mut Config, usize),
) -> Vec<Harness> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(
            Harness::start_with(|config| {
                join(config, urls, name, i);
                tweak(config, i);
            })
            .await,
        );
    }
    out
}

/// Whether `list` shows app `app_id` with a live instance at sidecar `sidecar_id`.
pub fn has_instance_at(list: &ListAppsResponse, app_id: &str, sidecar_id: &str) -> bool {
    list.apps
        .iter()
        .any(|a| a.app_id == app_id && a.instances.iter().any(|i| i.sidecar_id == sidecar_id))
}

impl Harness {
    /// Waits until this sidecar sees app `app_id` with a live instance at `sidecar_id`.
    pub async fn wait_for_instance_at(&self, app_id: &str, sidecar_id: &str) {
        self.wait_for_apps(&format!("{app_id} at {sidecar_id}"), |list| {
            has_instance_at(list, app_id, sidecar_id)
        })
        .await;
    }

    /// Admin.ListSidecars: the ids of the live sidecars.
    pub async fn sidecar_ids(&self) -> Vec<String> {
        AdminClient::new(self.channel().await)
            .list_sidecars(ListSidecarsRequest {})
            .await
            .expect("ListSidecars answers")
            .into_inner()
            .sidecars
            .into_iter()
            .map(|s| s.sidecar_id)
            .collect()
    }
}

/// The posts stream of cluster `name` on NATS `urls` (comma-separated), over a client of the
/// test's own (to look at what JetStream holds).
pub async fn posts_stream(urls: &str, name: &str) -> async_nats::jetstream::stream::Stream {
    let servers: Vec<String> = urls.split(',').map(str::to_owned).collect();
    let js = async_nats::jetstream::new(
        async_nats::connect(servers)
            .await
            .expect("the test's client connects"),
    );
    js.get_stream(format!("{name}_posts"))
        .await
        .expect("the posts stream exists")
}
