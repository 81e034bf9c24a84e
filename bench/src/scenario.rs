//! One scenario: the processes it needs (relay + echo peer for the floor, sidecar + apps for the
//! rest), kept running for the whole benchmark, and its warm-up and measured runs.

use std::{path::Path, time::Duration};

use roomhooks::v1::admin_client::AdminClient;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::{
    calls::{
        CreateCaller, FloorCaller, JoinCaller, PostCaller, balanced_channel, channel, list_apps,
    },
    child::{Child, Stderr},
    cli::AppKind,
    cluster::{self, ClusterNats},
    cpu::{Groups, PerEvent},
    error::Error,
    load::{Caller, Stop, Throughput, concurrent, sequential},
    node_app::{self, NodeSdk},
    plan::Plan,
    sidecar::SidecarProcess,
    stats::Latency,
};

/// How long a child process has to get ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the apps may take to handle every post event sent.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// Which scenario this is (the targets refer to these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// The bare tonic relay, on the hop runtime (the sidecar's).
    Floor,
    /// The same relay on the other runtime flavour: the floor a differently-built relay gets.
    FloorOtherRuntime,
    /// A bare unary call the relay answers itself (no peer hop): tonic's unary ceiling.
    Unary,
    /// PreRoomUserJoin with this many veto apps.
    Join(usize),
    /// PreRoomUserJoin with this many veto apps in one Node process, on the TypeScript SDK or
    /// through the Apps-Engine runner (see [`node_app`]), each on its own connection.
    JoinNode(NodeSdk, usize),
    /// PreRoomUserJoin with this many veto apps sharing one connection (one app process
    /// hosting them all on a `roomhooks_sdk::Connection`).
    JoinShared(usize),
    /// PreRoomUserJoin with no app at all: the sidecar's own cost of a call.
    JoinNoApps,
    /// PreRoomUserJoin with this many veto apps, every one skipped by its match condition
    /// (`[apps.<id>] match`, false for the bench's room): no app is called.
    JoinSkipped(usize),
    /// PreRoomCreate with this many prevent + extend + modify apps.
    Create(usize),
    /// PreRoomCreate with this many apps sharing one connection.
    CreateShared(usize),
    /// PostRoomCreate to this many apps.
    Post(usize),
    /// PostEvents batches of [`POST_BATCH`] PostRoomCreate events to this many apps, with
    /// [`POST_BATCHES_IN_FLIGHT`] calls in flight.
    PostBatch(usize),
    /// PreRoomUserJoin with 1 veto app connected to another sidecar of a cluster: every call is
    /// forwarded over NATS request-reply.
    JoinForwarded,
    /// PreRoomUserJoin with 1 veto app connected to the sidecar called, in cluster mode.
    JoinClusterLocal,
    /// [`Key::PostBatch`] to [`CLUSTER_POST_APPS`] apps through JetStream, spread over this
    /// many sidecars (the backend's calls too), with this many stream replicas.
    PostBatchCluster {
        /// Sidecars in the cluster.
        sidecars: usize,
        /// `--cluster-replicas` (3 runs on a three-node NATS).
        replicas: usize,
    },
}

/// Apps of the cluster post rows.
pub const CLUSTER_POST_APPS: usize = 3;

/// Events per PostEvents call in the batch scenario.
pub const POST_BATCH: usize = 100;
/// Sequential batch calls send this many events per sequential call of the other rows (so
/// 10,000 sequential calls become 500 batches of 100: 50,000 events, not a million).
const SEQUENTIAL_EVENTS_PER_CALL: u64 = 5;
/// PostEvents calls in flight in the batch scenario (800 events).
pub const POST_BATCHES_IN_FLIGHT: usize = 8;

impl Key {
    /// The row label.
    pub fn label(self) -> String {
        let apps = |n: usize| {
            if n == 1 {
                "1 app".to_owned()
            } else {
                format!("{n} apps")
            }
        };
        match self {
            Key::Floor => "floor: bare tonic relay".to_owned(),
            Key::FloorOtherRuntime => "floor, relay on the other runtime flavour".to_owned(),
            Key::Unary => "reference: bare tonic unary, no hop".to_owned(),
            Key::Join(n) => format!("PreRoomUserJoin veto, {}", apps(n)),
            Key::JoinShared(n) => format!("PreRoomUserJoin veto, {}, one connection", apps(n)),
            Key::JoinNode(sdk, n) => {
                format!("PreRoomUserJoin veto, {} ({}, Node)", apps(n), sdk.label())
            }
            Key::JoinNoApps => "PreRoomUserJoin, no apps".to_owned(),
            Key::JoinSkipped(n) => {
                format!(
                    "PreRoomUserJoin, {} all skipped by match conditions",
                    apps(n)
                )
            }
            Key::Create(n) => format!("PreRoomCreate prevent+extend+modify, {}", apps(n)),
            Key::CreateShared(n) => {
                format!(
                    "PreRoomCreate prevent+extend+modify, {}, one connection",
                    apps(n)
                )
            }
            Key::Post(n) => format!("PostRoomCreate accepted, {}", apps(n)),
            Key::PostBatch(n) => {
                format!("PostEvents x{POST_BATCH} accepted, {} (events/s)", apps(n))
            }
            Key::JoinForwarded => {
                "PreRoomUserJoin veto, 1 app at another sidecar (cluster, forwarded)".to_owned()
            }
            Key::JoinClusterLocal => "PreRoomUserJoin veto, 1 app, cluster mode (local)".to_owned(),
            Key::PostBatchCluster { sidecars, replicas } => format!(
                "PostEvents x{POST_BATCH} accepted, {}, cluster: {sidecars} sidecar{}, R{replicas} \
                 (events/s)",
                apps(CLUSTER_POST_APPS),
                if sidecars == 1 { "" } else { "s" }
            ),
        }
    }
}

/// One measured run.
#[derive(Clone, Copy, Debug)]
pub struct Round {
    /// Sequential latency.
    pub latency: Latency,
    /// Calls per second at the plan's calls in flight.
    pub per_sec: f64,
    /// Post only: events per second handled by every app.
    pub delivered_per_sec: Option<f64>,
    /// Node rows only: CPU time of the Node app process per call (sequential and in flight), µs.
    pub app_cpu_us_per_call: Option<f64>,
    /// Cluster post rows only: CPU per event delivered, by process group, in the timed part.
    pub cpu_per_event: Option<PerEvent>,
}

/// The processes of a scenario.
enum Hop {
    Floor {
        _relay: Child,
        _echo: Option<Child>,
        relay_pid: u32,
    },
    Sidecar {
        sidecar: SidecarProcess,
        apps: Child,
    },
    /// Cluster mode: the backend calls the first sidecar (or all of them, for posts).
    Cluster {
        sidecars: Vec<SidecarProcess>,
        apps: Child,
        /// The row's nats-server processes (shared with the other rows on the same NATS).
        nats_pids: Vec<u32>,
    },
}

impl Hop {
    /// The processes whose CPU a cluster row reports (none for the other rows).
    fn cpu_groups(&self) -> Option<Groups> {
        match self {
            Hop::Cluster {
                sidecars,
                apps,
                nats_pids,
            } => Some(Groups {
                nats: nats_pids.clone(),
                sidecars: sidecars.iter().filter_map(|s| s.pid().ok()).collect(),
                apps: apps.pid().into_iter().collect(),
            }),
            _ => None,
        }
    }

    /// The apps process, if the scenario has one.
    fn apps(&mut self) -> Option<&mut Child> {
        match self {
            Hop::Floor { .. } => None,
            Hop::Sidecar { apps, .. } | Hop::Cluster { apps, .. } => Some(apps),
        }
    }
}

/// The caller of a scenario.
enum Calls {
    Floor(FloorCaller),
    Join(JoinCaller),
    Create(CreateCaller),
    Post {
        caller: PostCaller,
        admin: AdminClient<Channel>,
        sent: u64,
    },
}

/// A scenario with its processes running.
pub struct Scenario {
    /// Which one.
    pub key: Key,
    hop: Hop,
    calls: Calls,
    /// Its measured runs so far.
    pub rounds: Vec<Round>,
}

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

    /// The process id of the hop (sidecar or relay), for its RSS.
    pub fn hop_pid(&self) -> Result<u32, Error> {
        match &self.hop {
            Hop::Floor { relay_pid, .. } => Ok(*relay_pid),
            Hop::Sidecar { sidecar, .. } => sidecar.pid(),
            Hop::Cluster { sidecars, .. } => sidecars
                .first()
                .ok_or_else(|| Error::Child("a cluster row without sidecars".into()))?
                .pid(),
        }
    }

    /// Whether the hop is the sidecar (not the floor's relay).
    pub fn is_sidecar(&self) -> bool {
        matches!(self.hop, Hop::Sidecar { .. } | Hop::Cluster { .. })
    }

    /// Sequential calls, then calls in flight, unmeasured.
    pub async fn warm_up(&mut self, plan: &Plan) -> Result<(), Error> {
        self.exercise(plan.warmup_calls, plan, Stop::After(plan.warmup_load))
            .await
            .map(|_| ())
    }

    /// One measured run, recorded in [`Scenario::rounds`].
    pub async fn measure(&mut self, plan: &Plan) -> Result<Round, Error> {
        let stop = match &self.calls {
            // Post runs send a fixed number of events, so delivery of all of them can be timed.
            Calls::Post { caller, .. } => {
                Stop::Calls(plan.post_events.div_ceil(caller.events_per_call()))
            }
            _ => Stop::After(plan.load_time),
        };
        let round = self.exercise(plan.seq_calls, plan, stop).await?;
        self.rounds.push(round);
        Ok(round)
    }

    async fn exercise(&mut self, seq_calls: u64, plan: &Plan, stop: Stop) -> Result<Round, Error> {
        let in_flight = plan.in_flight;
        let node_app = match (&mut self.hop, self.key) {
            (Hop::Sidecar { apps, .. }, Key::JoinNode(..)) => Some(apps),
            _ => None,
        };
        match &mut self.calls {
            Calls::Floor(caller) => simple(caller, seq_calls, in_flight, stop).await,
            Calls::Join(caller) => match node_app {
                Some(node) => {
                    let before = node_cpu(node).await?;
                    let (mut round, calls) = counted(caller, seq_calls, in_flight, stop).await?;
                    let used = node_cpu(node).await? - before;
                    round.app_cpu_us_per_call = Some(used / calls.max(1) as f64);
                    Ok(round)
                }
                None => simple(caller, seq_calls, in_flight, stop).await,
            },
            Calls::Create(caller) => simple(caller, seq_calls, in_flight, stop).await,
            Calls::Post {
                caller,
                admin,
                sent,
            } => {
                let groups = self.hop.cpu_groups();
                let Some(apps) = self.hop.apps() else {
                    return Err(Error::Child("a post scenario without apps".into()));
                };
                let per_call = caller.events_per_call();
                let in_flight = if per_call > 1 {
                    POST_BATCHES_IN_FLIGHT
                } else {
                    in_flight
                };
                // A batch carries POST_BATCH events: fewer sequential calls, so its sequential
                // part sends about as many events as a single-event row's (at least 10 calls).
                let seq_calls = if per_call > 1 {
                    (seq_calls * SEQUENTIAL_EVENTS_PER_CALL / per_call).max(10.min(seq_calls))
                } else {
                    seq_calls
                };
                let latency = sequential(caller, seq_calls).await?;
                *sent += seq_calls * per_call;
                // The backlog of the sequential calls is delivered before the timed part.
                delivered(apps, admin, *sent).await?;
                let before = groups.as_ref().map(Groups::read).transpose()?;
                let started = Instant::now();
                let load = concurrent(caller, in_flight, stop).await?;
                *sent += load.calls * per_call;
                delivered(apps, admin, *sent).await?;
                let cpu_per_event = match (&groups, before) {
                    (Some(groups), Some(before)) => {
                        Some(before.per_event(&groups.read()?, load.calls * per_call))
                    }
                    _ => None,
                };
                let delivery = Throughput {
                    calls: load.calls * per_call,
                    elapsed: started.elapsed(),
                };
                Ok(Round {
                    latency,
                    per_sec: load.per_sec() * per_call as f64,
                    delivered_per_sec: Some(delivery.per_sec()),
                    app_cpu_us_per_call: None,
                    cpu_per_event,
                })
            }
        }
    }
}

async fn simple<C: Caller>(
    caller: &C,
    seq_calls: u64,
    in_flight: usize,
    stop: Stop,
) -> Result<Round, Error> {
    counted(caller, seq_calls, in_flight, stop)
        .await
        .map(|(round, _)| round)
}

/// A [`simple`] run, with the number of calls it made (sequential and in flight).
async fn counted<C: Caller>(
    caller: &C,
    seq_calls: u64,
    in_flight: usize,
    stop: Stop,
) -> Result<(Round, u64), Error> {
    let latency = sequential(caller, seq_calls).await?;
    let load = concurrent(caller, in_flight, stop).await?;
    let round = Round {
        latency,
        per_sec: load.per_sec(),
        delivered_per_sec: None,
        app_cpu_us_per_call: None,
        cpu_per_event: None,
    };
    Ok((round, seq_calls + load.calls))
}

/// The Node app process's CPU time so far, in µs.
async fn node_cpu(node: &mut Child) -> Result<f64, Error> {
    node.send_line("cpu").await?;
    let answer = node.expect_line("cpu ", READY_TIMEOUT).await?;
    node_app::parse_cpu(&answer)
        .ok_or_else(|| Error::Child(format!("the Node app answered `cpu {answer}`")))
}

/// Waits until every app handled `total` events, then until the sidecar holds no unacknowledged
/// event (so the next run starts with empty queues).
async fn delivered(
    apps: &mut Child,
    admin: &mut AdminClient<Channel>,
    total: u64,
) -> Result<(), Error> {
    apps.send_line(&format!("expect {total}")).await?;
    apps.expect_line(&format!("reached {total}"), DELIVERY_TIMEOUT)
        .await?;
    let drained = async {
        loop {
            let listed = list_apps(admin).await?;
            if listed.apps.iter().all(|a| a.queued_post_events == 0) {
                return Ok::<(), Error>(());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(DELIVERY_TIMEOUT, drained)
        .await
        .map_err(|_| {
            Error::Child(format!(
                "the sidecar still had unacknowledged post events {DELIVERY_TIMEOUT:?} after \
                 the apps handled them"
            ))
        })?
}
