//! Which sidecars are alive: each holds one key of the sidecars bucket, named by its
//! `--sidecar-id`, rewritten every quarter of `--cluster-member-ttl` with what it serves. The
//! bucket's `max_age` is the TTL, so the key of a sidecar that dies without a goodbye ages out;
//! readers also treat a record older than the TTL as gone, whichever comes first.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{Cluster, ClusterError};

/// What a sidecar says about itself at each heartbeat.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SidecarRecord {
    /// Its gRPC listen address.
    pub listen: String,
    /// When it started (Unix ms).
    pub started_at_ms: i64,
    /// When it wrote this record (Unix ms).
    pub last_seen_ms: i64,
    /// The apps with live instances connected to it.
    pub apps: Vec<ServedApp>,
}

/// An app with live instances at one sidecar.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedApp {
    /// The app's id.
    pub app_id: String,
    /// Its live instances there.
    pub instances: Vec<ServedInstance>,
}

/// One live instance at one sidecar.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServedInstance {
    /// The instance's id.
    pub instance_id: String,
    /// Its version.
    pub version: String,
    /// Its peer address.
    pub peer: String,
    /// When it connected (Unix ms).
    pub connected_at_ms: i64,
}

/// A live sidecar as read from the bucket.
#[derive(Clone, Debug)]
pub struct Member {
    /// Its id.
    pub sidecar_id: String,
    /// What it last said.
    pub record: SidecarRecord,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    ms(SystemTime::now())
}

/// How long ago a Unix-ms time was (zero for one in the future).
fn ago(unix_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(now_ms().saturating_sub(unix_ms)).unwrap_or(0))
}

/// A time in milliseconds since the Unix epoch.
pub fn ms(at: SystemTime) -> i64 {
    i64::try_from(
        at.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

impl Cluster {
    /// Takes this sidecar's key. A key held by a live sidecar (its record keeps changing) is
    /// refused; a stale one (a predecessor killed with the same id) is taken over once it has
    /// been silent for two heartbeats.
    pub async fn claim_id(&self) -> Result<(), ClusterError> {
        let bucket = &self.buckets().sidecars;
        let id = self.sidecar_id().to_owned();
        let mine = self.record(Vec::new());
        let value = encode(&mine)?;
        match bucket.create(&id, value.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(ClusterError::Nats(format!("claiming --sidecar-id: {e}"))),
        }
        let entry = |what: &'static str| {
            let bucket = bucket.clone();
            let id = id.clone();
            async move {
                bucket
                    .entry(&id)
                    .await
                    .map_err(|e| ClusterError::Nats(format!("{what}: {e}")))
            }
        };
        let Some(first) = entry("reading the holder of --sidecar-id").await? else {
            return self.put_record(&mine).await;
        };
        let holder: SidecarRecord = serde_json::from_slice(&first.value).unwrap_or_default();
        let silent = ago(holder.last_seen_ms);
        let two_beats = self.settings().heartbeat_every() * 2;
        if silent < two_beats {
            tracing::info!(sidecar_id = %id, holder = %holder.listen,
                "--sidecar-id is held by a sidecar seen {silent:?} ago; waiting to see whether it is alive");
            tokio::time::sleep(two_beats.checked_sub(silent).unwrap() + Duration::from_millis(100))
                .await;
        }
        let now = entry("reading the holder of --sidecar-id").await?;
        if let Some(now) = now
            && now.revision != first.revision
        {
            let holder: SidecarRecord = serde_json::from_slice(&now.value).unwrap_or_default();
            return Err(ClusterError::IdTaken {
                id,
                holder: holder.listen,
                seen_ago: ago(holder.last_seen_ms),
            });
        }
        tracing::info!(sidecar_id = %id, "taking over --sidecar-id from a sidecar that stopped heartbeating");
        self.put_record(&mine).await
    }

    /// This sidecar's record with `apps` served, stamped now.
    pub fn record(&self, apps: Vec<ServedApp>) -> SidecarRecord {
        SidecarRecord {
            listen: self.settings().listen.to_string(),
            started_at_ms: ms(self.started_at()),
            last_seen_ms: now_ms(),
            apps,
        }
    }

    /// Writes this sidecar's record (a heartbeat).
    pub async fn put_record(&self, record: &SidecarRecord) -> Result<(), ClusterError> {
        self.buckets()
            .sidecars
            .put(self.sidecar_id(), encode(record)?)
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::Nats(format!("heartbeat: {e}")))
    }

    /// Says goodbye: deletes this sidecar's key, so others forget it at once.
    pub async fn leave(&self) {
        if let Err(e) = self.buckets().sidecars.delete(self.sidecar_id()).await {
            tracing::warn!(
                "could not remove this sidecar from the cluster's registry: {e}; \
                the others forget it within --cluster-member-ttl"
            );
        }
    }

    /// Every sidecar alive now: keys present whose record is younger than the TTL.
    pub async fn members(&self) -> Result<Vec<Member>, ClusterError> {
        let bucket = &self.buckets().sidecars;
        let mut keys = bucket
            .keys()
            .await
            .map_err(|e| ClusterError::Nats(format!("listing sidecars: {e}")))?;
        let ttl = i64::try_from(self.settings().member_ttl.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        let mut members = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| ClusterError::Nats(format!("listing sidecars: {e}")))?;
            let Some(value) = bucket
                .get(&key)
                .await
                .map_err(|e| ClusterError::Nats(format!("reading sidecar {key}: {e}")))?
            else {
                continue;
            };
            let Ok(record) = serde_json::from_slice::<SidecarRecord>(&value) else {
                tracing::warn!(sidecar_id = %key, "skipping an unreadable sidecar record");
                continue;
            };
            if now.saturating_sub(record.last_seen_ms) > ttl {
                continue;
            }
            members.push(Member {
                sidecar_id: key,
                record,
            });
        }
        members.sort_by(|a, b| a.sidecar_id.cmp(&b.sidecar_id));
        Ok(members)
    }
}

fn encode(record: &SidecarRecord) -> Result<Bytes, ClusterError> {
    serde_json::to_vec(record)
        .map(Bytes::from)
        .map_err(|e| ClusterError::Nats(format!("encoding the sidecar record: {e}")))
}
