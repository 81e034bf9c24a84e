//! Bringing a row's processes up: the floor's relay, a sidecar with the bench's synthetic apps
//! or a Node app, or a cluster of sidecars on NATS; then the load generator's connection.

use std::{path::Path, time::Duration};

use roomhooks::v1::admin_client::AdminClient;

use super::{CLUSTER_POST_APPS, Calls, Hop, Key, POST_BATCH, Scenario};
use crate::{
    calls::{CreateCaller, FloorCaller, JoinCaller, PostCaller, balanced_channel, channel},
    child::{Child, Stderr},
    cli::AppKind,
    cluster::{self, ClusterNats},
    error::Error,
    node_app::{self, NodeSdk},
    plan::Plan,
    sidecar::SidecarProcess,
};

/// How long a child process has to get ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How the apps process connects its instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// A connection per instance, as separate app processes would have.
    PerInstance,
    /// One connection for all of them (`--shared-connection`).
    Shared,
    /// App number i connected to the i-th of several sidecars (`--spread`).
    Spread,
}

/// A config file's text giving each of the `apps` veto apps a match condition that is false for
/// the bench's join (its room is a channel), so each is skipped without a round trip.
fn skipping_config(apps: usize) -> String {
    (0..apps)
        .map(|index| {
            format!("[apps.veto-{index:02}]\nmatch = ['room.type == ROOM_TYPE_LIVECHAT']\n\n")
        })
        .collect()
}

/// Starts `roomhooks-bench apps` against `endpoint` and waits until every instance registered.
pub async fn start_apps(
    exe: &Path,
    plan: &Plan,
    endpoint: &str,
    kind: AppKind,
    apps: usize,
    instances: usize,
    wire: Wire,
) -> Result<Child, Error> {
    let mut args = vec![
        "apps".to_owned(),
        "--endpoint".to_owned(),
        endpoint.to_owned(),
        "--kind".to_owned(),
        kind.as_arg().to_owned(),
        "--apps".to_owned(),
        apps.to_string(),
        "--instances".to_owned(),
        instances.to_string(),
        "--runtime".to_owned(),
        plan.runtime.as_arg().to_owned(),
    ];
    match wire {
        Wire::PerInstance => {}
        Wire::Shared => args.push("--shared-connection".to_owned()),
        Wire::Spread => args.push("--spread".to_owned()),
    }
    let mut child = Child::spawn(
        "the apps process",
        exe,
        args,
        Stderr::Inherit,
        plan.rest_cpus(),
    )?;
    child.expect_line("ready", READY_TIMEOUT).await?;
    Ok(child)
}

impl Scenario {
    /// Starts the processes of `key` and connects the load generator.
    pub async fn start(
        key: Key,
        plan: &Plan,
        exe: &Path,
        sidecar_bin: &Path,
        nats: Option<&ClusterNats>,
    ) -> Result<Self, Error> {
        let (kind, apps, wire) = match key {
            Key::JoinForwarded | Key::JoinClusterLocal | Key::PostBatchCluster { .. } => {
                let nats = nats
                    .ok_or_else(|| Error::Child(format!("the row {:?} needs NATS", key.label())))?;
                return Self::start_cluster(key, plan, exe, sidecar_bin, nats).await;
            }
            Key::Floor | Key::FloorOtherRuntime => {
                return Self::start_relay(key, plan, exe, true).await;
            }
            Key::Unary => return Self::start_relay(key, plan, exe, false).await,
            Key::JoinNode(sdk, n) => {
                return Self::start_node_apps(key, sdk, n, plan, sidecar_bin).await;
            }
            Key::Join(n) | Key::JoinSkipped(n) => (AppKind::Veto, n, Wire::PerInstance),
            Key::JoinNoApps => (AppKind::Veto, 0, Wire::PerInstance),
            Key::JoinShared(n) => (AppKind::Veto, n, Wire::Shared),
            Key::Create(n) => (AppKind::Create, n, Wire::PerInstance),
            Key::CreateShared(n) => (AppKind::Create, n, Wire::Shared),
            Key::Post(n) | Key::PostBatch(n) => (AppKind::Post, n, Wire::PerInstance),
        };
        let batch = matches!(key, Key::PostBatch(_)).then_some(POST_BATCH);
        let sidecar = match key {
            Key::JoinSkipped(n) => {
                SidecarProcess::start_with_config(sidecar_bin, plan, &skipping_config(n)).await?
            }
            _ => SidecarProcess::start(sidecar_bin, plan).await?,
        };
        let endpoint = sidecar.endpoint();
        let apps_process = start_apps(exe, plan, &endpoint, kind, apps, 1, wire).await?;
        let backend = channel(&endpoint).await?;
        // Skipped apps give no outcome: the call expects none.
        let answering = if matches!(key, Key::JoinSkipped(_)) {
            0
        } else {
            apps
        };
        let calls = match kind {
            AppKind::Veto => Calls::Join(JoinCaller::new(backend, answering)),
            AppKind::Create => Calls::Create(CreateCaller::new(backend, apps)),
            AppKind::Post => Calls::Post {
                caller: PostCaller::new(backend, u32::try_from(apps).unwrap_or(u32::MAX), batch),
                admin: AdminClient::new(channel(&endpoint).await?),
                sent: 0,
            },
        };
        Ok(Self {
            key,
            hop: Hop::Sidecar {
                sidecar,
                apps: apps_process,
            },
            calls,
            rounds: Vec::new(),
        })
    }

    /// Starts the sidecars of a cluster row and its apps, and waits until the cluster agrees
    /// where every app is.
    async fn start_cluster(
        key: Key,
        plan: &Plan,
        exe: &Path,
        sidecar_bin: &Path,
        nats: &ClusterNats,
    ) -> Result<Self, Error> {
        let name = cluster::fresh_name();
        let (count, replicas) = match key {
            Key::JoinForwarded => (2, 1),
            Key::PostBatchCluster { sidecars, replicas } => (sidecars, replicas),
            _ => (1, 1),
        };
        let sidecars = cluster::start_sidecars(
            sidecar_bin,
            plan,
            nats.for_replicas(replicas),
            &name,
            count,
            replicas,
        )
        .await?;
        let endpoints: Vec<String> = sidecars.iter().map(SidecarProcess::endpoint).collect();
        let called = &sidecars[0];
        let (apps, calls) = match key {
            Key::PostBatchCluster { .. } => {
                let apps = start_apps(
                    exe,
                    plan,
                    &endpoints.join(","),
                    AppKind::Post,
                    CLUSTER_POST_APPS,
                    1,
                    Wire::Spread,
                )
                .await?;
                let ids: Vec<String> = (0..CLUSTER_POST_APPS)
                    .map(|i| format!("post-{i}"))
                    .collect();
                for sidecar in &sidecars {
                    cluster::wait_for_apps(sidecar, &ids).await?;
                }
                let apps_count = u32::try_from(CLUSTER_POST_APPS).unwrap_or(u32::MAX);
                let calls = Calls::Post {
                    caller: PostCaller::new(
                        balanced_channel(&endpoints)?,
                        apps_count,
                        Some(POST_BATCH),
                    ),
                    admin: AdminClient::new(channel(&called.endpoint()).await?),
                    sent: 0,
                };
                (apps, calls)
            }
            _ => {
                // Forwarded: the app is at the second sidecar; the backend calls the first.
                let at = endpoints.last().cloned().unwrap_or_default();
                let apps =
                    start_apps(exe, plan, &at, AppKind::Veto, 1, 1, Wire::PerInstance).await?;
                cluster::wait_for_apps(called, &["veto-00".to_owned()]).await?;
                let calls = Calls::Join(JoinCaller::new(channel(&called.endpoint()).await?, 1));
                (apps, calls)
            }
        };
        Ok(Self {
            key,
            hop: Hop::Cluster {
                sidecars,
                apps,
                nats_pids: nats.for_replicas(replicas).pids(),
            },
            calls,
            rounds: Vec::new(),
        })
    }

    /// Starts a sidecar and `apps` veto apps of `sdk` in one Node process.
    async fn start_node_apps(
        key: Key,
        sdk: NodeSdk,
        apps: usize,
        plan: &Plan,
        sidecar_bin: &Path,
    ) -> Result<Self, Error> {
        let node = node_app::locate(sdk).map_err(Error::Child)?;
        let sidecar = SidecarProcess::start(sidecar_bin, plan).await?;
        let endpoint = sidecar.endpoint();
        let script = node.script.display().to_string();
        let mut args = vec![script, "--endpoint".to_owned(), endpoint.clone()];
        if apps != 1 {
            return Err(Error::Child(format!(
                "the {} row runs 1 app, not {apps}",
                sdk.label()
            )));
        }
        args.extend(["--app-id".to_owned(), "veto-00".to_owned()]);
        let what = match sdk {
            NodeSdk::TypeScript => "the TypeScript SDK app (node)",
            NodeSdk::AppsEngine => "the Apps-Engine app through the runner (node)",
        };
        let mut apps_process =
            Child::spawn(what, &node.node, args, Stderr::Inherit, plan.rest_cpus())?;
        apps_process.expect_line("ready", READY_TIMEOUT).await?;
        let backend = channel(&endpoint).await?;
        Ok(Self {
            key,
            hop: Hop::Sidecar {
                sidecar,
                apps: apps_process,
            },
            calls: Calls::Join(JoinCaller::new(backend, apps)),
            rounds: Vec::new(),
        })
    }

    /// Starts the floor's relay and, with `hop`, its echo peer.
    async fn start_relay(key: Key, plan: &Plan, exe: &Path, hop: bool) -> Result<Self, Error> {
        let mut relay = Child::spawn(
            "the floor's relay",
            exe,
            [
                "relay",
                "--runtime",
                match key {
                    Key::FloorOtherRuntime => plan.hop_runtime.other().as_arg(),
                    _ => plan.hop_runtime.as_arg(),
                },
            ],
            Stderr::Inherit,
            plan.hop_cpus(),
        )?;
        let addr = relay.expect_line("listening ", READY_TIMEOUT).await?;
        let endpoint = format!("http://{addr}");
        let echo = if hop {
            let mut echo = Child::spawn(
                "the floor's echo peer",
                exe,
                [
                    "echo",
                    "--endpoint",
                    &endpoint,
                    "--runtime",
                    plan.runtime.as_arg(),
                ],
                Stderr::Inherit,
                plan.rest_cpus(),
            )?;
            echo.expect_line("ready", READY_TIMEOUT).await?;
            Some(echo)
        } else {
            None
        };
        let relay_pid = relay
            .pid()
            .ok_or_else(|| Error::Child("the floor's relay has exited".into()))?;
        Ok(Self {
            key,
            hop: Hop::Floor {
                _relay: relay,
                _echo: echo,
                relay_pid,
            },
            calls: Calls::Floor(FloorCaller::new(channel(&endpoint).await?, hop)),
            rounds: Vec::new(),
        })
    }
}
