//! The cluster-mode rows: sidecars started with `--cluster-url` on a real NATS (one node for
//! R1, a three-node JetStream cluster for R3), each row under its own `--cluster-name` so the
//! rows share the NATS processes but none of its streams, consumers or buckets.

use std::{
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use roomhooks::v1::admin_client::AdminClient;

use crate::{
    calls::{channel, list_apps},
    error::Error,
    nats::Nats,
    placement::Cpus,
    plan::Plan,
    sidecar::SidecarProcess,
};

/// How long the sidecars may take to agree on which apps live where.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

/// The NATS processes the cluster rows run on.
pub struct ClusterNats {
    /// One node: the R1 rows and the forwarded call.
    pub one: Nats,
    /// Three clustered nodes: the R3 rows.
    pub three: Nats,
}

impl ClusterNats {
    /// Starts both NATS deployments of `bin` on `cpus`.
    pub async fn start(bin: &Path, cpus: Option<Cpus>) -> Result<Self, Error> {
        Ok(Self {
            one: Nats::start(bin, 1, cpus).await?,
            three: Nats::start(bin, 3, cpus).await?,
        })
    }

    /// The NATS for streams of `replicas` replicas.
    pub fn for_replicas(&self, replicas: usize) -> &Nats {
        if replicas > 1 { &self.three } else { &self.one }
    }
}

/// A fresh `--cluster-name` for one row.
pub fn fresh_name() -> String {
    static ROWS: AtomicUsize = AtomicUsize::new(0);
    format!("bench{}", ROWS.fetch_add(1, Ordering::Relaxed))
}

/// Starts `count` sidecars of one cluster called `name` on `nats`, with `replicas` replicas.
pub async fn start_sidecars(
    bin: &Path,
    plan: &Plan,
    nats: &Nats,
    name: &str,
    count: usize,
    replicas: usize,
) -> Result<Vec<SidecarProcess>, Error> {
    let mut sidecars = Vec::with_capacity(count);
    for i in 0..count {
        let args = [
            "--cluster-url".to_owned(),
            nats.urls.clone(),
            "--cluster-name".to_owned(),
            name.to_owned(),
            "--sidecar-id".to_owned(),
            format!("{name}-s{i}"),
            "--cluster-replicas".to_owned(),
            replicas.to_string(),
        ];
        sidecars.push(SidecarProcess::start_with_args(bin, plan, &args).await?);
    }
    Ok(sidecars)
}

/// Waits until `sidecar` lists every app of `app_ids` with a live instance (here or at another
/// sidecar): the cluster has converged, and the apps' post consumers exist.
pub async fn wait_for_apps(sidecar: &SidecarProcess, app_ids: &[String]) -> Result<(), Error> {
    let mut admin = AdminClient::new(channel(&sidecar.endpoint()).await?);
    let converged = async {
        loop {
            let listed = list_apps(&mut admin).await?;
            let known = |id: &String| {
                listed
                    .apps
                    .iter()
                    .any(|a| &a.app_id == id && !a.instances.is_empty())
            };
            if app_ids.iter().all(known) {
                return Ok::<(), Error>(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(CONVERGE_TIMEOUT, converged)
        .await
        .map_err(|_| {
            Error::Child(format!(
                "sidecar {} did not list the apps {app_ids:?} with instances within \
                 {CONVERGE_TIMEOUT:?}",
                sidecar.addr
            ))
        })?
}
