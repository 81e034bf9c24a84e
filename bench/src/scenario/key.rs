//! Which scenario a row is, its label, and the counts the post rows are built from.

use crate::node_app::NodeSdk;

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
    /// through the Apps-Engine runner (see [`crate::node_app`]), each on its own connection.
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
pub(super) const SEQUENTIAL_EVENTS_PER_CALL: u64 = 5;
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
