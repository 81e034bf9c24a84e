//! The sidecar's memory at rest: just started, then holding many connected app instances.

use std::path::Path;

use roomhooks::v1::admin_client::AdminClient;

use crate::{
    calls::{channel, list_apps},
    cli::AppKind,
    cluster::{self, ClusterNats},
    error::Error,
    plan::Plan,
    rss::vm_rss,
    scenario::{Wire, start_apps},
    sidecar::SidecarProcess,
};

/// The sidecar's RSS at rest, in bytes.
#[derive(Clone, Copy, Debug)]
pub struct AtRest {
    /// Just started, no app connected.
    pub idle: u64,
    /// With `apps` × `instances` app instances connected and registered.
    pub connected: u64,
    /// App ids.
    pub apps: usize,
    /// Instances of each app id, each on its own connection.
    pub instances: usize,
    /// Just started in cluster mode (on a one-node NATS), when the cluster rows run.
    pub cluster_idle: Option<u64>,
}

/// Starts a fresh sidecar, reads its RSS, connects `memory_apps × memory_instances` instances
/// (one apps process, one connection per instance) and reads it again.
pub async fn at_rest(
    plan: &Plan,
    exe: &Path,
    sidecar_bin: &Path,
    nats: Option<&ClusterNats>,
) -> Result<AtRest, Error> {
    let cluster_idle = match nats {
        Some(nats) => {
            let name = cluster::fresh_name();
            let sidecars =
                cluster::start_sidecars(sidecar_bin, plan, &nats.one, &name, 1, 1).await?;
            tokio::time::sleep(plan.settle).await;
            Some(vm_rss(sidecars[0].pid()?)?)
        }
        None => None,
    };
    let sidecar = SidecarProcess::start(sidecar_bin, plan).await?;
    let pid = sidecar.pid()?;
    tokio::time::sleep(plan.settle).await;
    let idle = vm_rss(pid)?;
    let endpoint = sidecar.endpoint();
    let _apps = start_apps(
        exe,
        plan,
        &endpoint,
        AppKind::Veto,
        plan.memory_apps,
        plan.memory_instances,
        Wire::PerInstance,
    )
    .await?;
    // Every instance the apps process reported as registered is in the sidecar's registry.
    let listed = list_apps(&mut AdminClient::new(channel(&endpoint).await?)).await?;
    let connected_instances: usize = listed.apps.iter().map(|a| a.instances.len()).sum();
    let expected = plan.memory_apps * plan.memory_instances;
    if connected_instances != expected {
        return Err(Error::Answer(format!(
            "the sidecar lists {connected_instances} app instances, expected {expected}"
        )));
    }
    tokio::time::sleep(plan.settle).await;
    let connected = vm_rss(pid)?;
    Ok(AtRest {
        idle,
        connected,
        apps: plan.memory_apps,
        instances: plan.memory_instances,
        cluster_idle,
    })
}
