//! Cluster mode: many sidecars as one system on NATS JetStream (`--cluster-url`). It owns the
//! NATS connection, the cluster's JetStream objects ([`names`]), the membership of sidecars
//! ([`members`]), the shared registry of apps ([`directory`]) and Pre calls forwarded to the
//! sidecar holding an app's instances ([`forward`], numbered by [`token`]), and post events:
//! stored in JetStream ([`journal`]), delivered from one durable consumer per app
//! ([`delivery`]), dead letters in their own stream ([`dead_letters`]), consumers left behind by
//! a removal swept ([`orphans`]). It may use apps, dispatch and post; without `--cluster-url`
//! none of it runs and the sidecar is the single node it always was.

mod connect;
pub mod dead_letters;
pub mod delivery;
pub mod directory;
pub mod forward;
pub mod journal;
pub mod members;
pub mod names;
pub mod orphans;
pub mod respond;
pub mod settings;
pub mod sync;
pub mod token;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use async_nats::jetstream::{self, kv};
use tokio::time::Instant;

pub use self::settings::ClusterSettings;
use self::{
    connect::{connect_nats, ensure_objects},
    names::Names,
};
use crate::config::ClusterWait;

/// Why cluster mode could not start or do its work.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// NATS could not be reached within `--cluster-wait`.
    #[error(
        "cannot reach NATS at {urls} within {waited:?} (--cluster-wait): {last}; check \
         --cluster-url and that nats-server runs with JetStream (-js), or set --cluster-wait \
         forever to keep retrying"
    )]
    Unreachable {
        /// The URLs tried.
        urls: String,
        /// How long start-up waited.
        waited: Duration,
        /// The last connection error.
        last: String,
    },
    /// The NATS credentials or TLS files could not be used.
    #[error("NATS credentials or TLS: {0} (check --cluster-creds, --cluster-tls-*)")]
    Credentials(String),
    /// A JetStream object could not be created or opened.
    #[error(
        "cannot set up JetStream {what} {name:?}: {source}; is JetStream enabled on the NATS \
         servers (nats-server -js), and do they have room for {replicas} replica(s) \
         (--cluster-replicas)?"
    )]
    Setup {
        /// What kind of object.
        what: &'static str,
        /// Its name.
        name: String,
        /// Replicas asked for.
        replicas: usize,
        /// NATS's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Another live sidecar holds this sidecar's id.
    #[error(
        "another live sidecar already holds --sidecar-id {id:?} (listening on {holder}, seen \
         {seen_ago:?} ago); give each sidecar a unique --sidecar-id"
    )]
    IdTaken {
        /// The id.
        id: String,
        /// The other sidecar's listen address.
        holder: String,
        /// How long ago it last heartbeated.
        seen_ago: Duration,
    },
    /// NATS answered a request with an error, or did not answer.
    #[error("NATS: {0}")]
    Nats(String),
}

impl ClusterError {
    /// A JetStream set-up error.
    fn setup(
        what: &'static str,
        name: String,
        replicas: usize,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ClusterError::Setup {
            what,
            name,
            replicas,
            source: Box::new(source),
        }
    }
}

/// What the services use of cluster mode: the cluster, the forwarder of Pre calls, and the
/// signal that local instances changed (the sync loop heartbeats at once).
#[derive(Clone)]
pub struct Link {
    /// The cluster.
    pub cluster: Cluster,
    /// Sends Pre calls to other sidecars.
    pub forwarder: forward::Forwarder,
    /// Notified when an instance connects here or leaves.
    pub changed: Arc<tokio::sync::Notify>,
    /// Post events: the apps' consumers and this sidecar's pull loops.
    pub delivery: delivery::Delivery,
    /// Post events: stored in the posts stream.
    pub journal: journal::Journal,
}

impl Link {
    /// Declares a newly registered app's spec to the cluster (`enabled` if it is the first
    /// declaration) and heartbeats at once, so the other sidecars see the instance without
    /// waiting for the next beat.
    pub async fn registered(
        &self,
        spec: &crate::apps::spec::AppSpec,
        version: &str,
        enabled: bool,
    ) {
        if let Err(e) = self.cluster.declare(spec, version, enabled).await {
            tracing::warn!(app_id = %spec.app_id, "cannot declare the app to the cluster: {e}; \
                other sidecars learn of it at the next heartbeat");
        }
        // The app's consumer exists before its first instance is told it is registered, so every
        // event accepted from now on is the app's.
        if spec
            .interfaces
            .iter()
            .any(|h| h.stage() == crate::hook::Stage::Post)
            && let Err(e) = self.delivery.ensure_consumer(spec).await
        {
            tracing::warn!(app_id = %spec.app_id, "cannot create the app's JetStream consumer: \
                {e}; retrying in the background");
        }
        self.delivery.serve();
        self.changed.notify_one();
    }

    /// An instance left: its unacknowledged post events go back to JetStream, and the sidecar
    /// heartbeats at once.
    pub fn departed(&self, instance: &crate::apps::instance::Instance) {
        self.delivery.departed(instance);
        self.changed.notify_one();
    }
}

/// The buckets of the cluster's shared state.
#[derive(Clone)]
pub struct Buckets {
    /// Live sidecars, kept alive by heartbeats.
    pub sidecars: kv::Store,
    /// App declarations.
    pub apps: kv::Store,
}

/// This sidecar's membership of its cluster: the NATS connection and the cluster's objects.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    names: Names,
    settings: ClusterSettings,
    buckets: Buckets,
    started_at: SystemTime,
    /// Pre calls forwarded from here, by the sidecar that served them ("" for none).
    forwarded: Mutex<BTreeMap<String, u64>>,
}

impl Cluster {
    /// Connects to NATS (waiting as `--cluster-wait` says) and creates or opens the cluster's
    /// streams and buckets.
    pub async fn connect(settings: ClusterSettings) -> Result<Self, ClusterError> {
        let started = Instant::now();
        let client = connect_nats(&settings).await?;
        let js = jetstream::new(client.clone());
        let names = Names::new(&settings.name);
        // A NATS cluster that just started answers before it has elected its JetStream
        // leader: set-up is retried for as long as --cluster-wait allows.
        let mut pause = Duration::from_millis(200);
        let buckets = loop {
            match ensure_objects(&js, &names, &settings).await {
                Ok(buckets) => break buckets,
                Err(err) => match settings.wait {
                    ClusterWait::Bounded(limit) if started.elapsed() >= limit => return Err(err),
                    _ => {
                        tracing::warn!("{err}; retrying (--cluster-wait)");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                    }
                },
            }
        };
        tracing::info!(sidecar_id = %settings.sidecar_id, cluster = %settings.name,
            nats = %settings.urls.join(","), replicas = settings.replicas,
            "cluster mode: post events are stored in JetStream, apps are shared with the cluster");
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                js,
                names,
                settings,
                buckets,
                started_at: SystemTime::now(),
                forwarded: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    /// The NATS client.
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// The names of the cluster's objects.
    pub fn names(&self) -> &Names {
        &self.inner.names
    }

    /// The cluster settings.
    pub fn settings(&self) -> &ClusterSettings {
        &self.inner.settings
    }

    /// This sidecar's id.
    pub fn sidecar_id(&self) -> &str {
        &self.inner.settings.sidecar_id
    }

    /// The shared-state buckets.
    pub fn buckets(&self) -> &Buckets {
        &self.inner.buckets
    }

    /// When this sidecar started.
    pub fn started_at(&self) -> SystemTime {
        self.inner.started_at
    }

    /// Whether the NATS connection is up now.
    pub fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Counts one forwarded Pre call served by `sidecar` ("" when none served it).
    pub fn count_forwarded(&self, sidecar: &str) {
        let mut forwarded = self
            .inner
            .forwarded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match forwarded.get_mut(sidecar) {
            Some(n) => *n += 1,
            None => {
                forwarded.insert(sidecar.to_owned(), 1);
            }
        }
    }

    /// Pre calls forwarded from here so far, by serving sidecar.
    pub fn forwarded(&self) -> BTreeMap<String, u64> {
        self.inner
            .forwarded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
