//! One scenario: the processes it needs (relay + echo peer for the floor, sidecar + apps for the
//! rest), kept running for the whole benchmark, and its warm-up and measured runs.
//!
//! [`key`] names the rows, [`start`] brings each kind of row's processes up, and [`exercise`]
//! runs its calls and measures them.

mod exercise;
mod key;
mod start;

use roomhooks::v1::admin_client::AdminClient;
use tonic::transport::Channel;

use self::key::SEQUENTIAL_EVENTS_PER_CALL;
pub use self::{
    key::{CLUSTER_POST_APPS, Key, POST_BATCH, POST_BATCHES_IN_FLIGHT},
    start::{Wire, start_apps},
};
use crate::{
    calls::{CreateCaller, FloorCaller, JoinCaller, PostCaller},
    child::Child,
    cpu::{Groups, PerEvent},
    error::Error,
    load::Stop,
    plan::Plan,
    sidecar::SidecarProcess,
    stats::Latency,
};

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

impl Scenario {
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
}
