//! Consumers left behind. `Admin.RemoveApp` deletes an app's declaration, then its consumer; a
//! sidecar that had not yet seen the delete may create the consumer again. With interest
//! retention such an orphan keeps every matching event for an app nobody serves, until the posts
//! stream is full and new posts are refused. Each sidecar therefore sweeps once per member TTL:
//! a consumer of the posts stream whose app is not declared (read from the apps bucket, not from
//! this sidecar's copy), not known here and not served by any live sidecar is a suspect, and a
//! suspect found again at the next sweep is deleted. A registering app declares itself before
//! its consumer is made, so a live app's consumer is never a suspect twice.

use std::collections::HashSet;

use futures_util::StreamExt;

use super::{Cluster, ClusterError};
use crate::{apps::registry::Registry, ids::AppId};

/// The consumers seen orphaned at the last sweep.
#[derive(Debug, Default)]
pub struct Orphans {
    suspects: HashSet<String>,
}

impl Orphans {
    /// One sweep: deletes the consumers orphaned at this sweep and the last; returns the apps
    /// whose consumers were deleted.
    pub async fn sweep(
        &mut self,
        cluster: &Cluster,
        registry: &Registry,
    ) -> Result<Vec<AppId>, ClusterError> {
        let names = cluster.names();
        let nats =
            |what: &str, e: &dyn std::fmt::Display| ClusterError::Nats(format!("{what}: {e}"));
        let stream = cluster
            .jetstream()
            .get_stream_no_info(names.posts_stream())
            .await
            .map_err(|e| nats("opening the posts stream", &e))?;
        let mut listed = stream.consumer_names();
        let mut consumers = Vec::new();
        while let Some(name) = listed.next().await {
            consumers.push(name.map_err(|e| nats("listing the posts stream's consumers", &e))?);
        }
        let served: HashSet<String> = cluster
            .members()
            .await?
            .into_iter()
            .flat_map(|m| m.record.apps.into_iter().map(|a| a.app_id))
            .collect();
        let snapshot = registry.snapshot();
        let mut orphans = HashSet::new();
        for consumer in consumers {
            let Some(app_id) = names.app_of_consumer(&consumer) else {
                continue;
            };
            if snapshot.app(&app_id).is_some() || served.contains(app_id.as_str()) {
                continue;
            }
            let declared = cluster
                .buckets()
                .apps
                .get(app_id.as_str())
                .await
                .map_err(|e| nats("reading an app's declaration", &e))?;
            if declared.is_none() {
                orphans.insert(consumer);
            }
        }
        let mut deleted = Vec::new();
        for consumer in orphans.intersection(&self.suspects) {
            let Some(app_id) = names.app_of_consumer(consumer) else {
                continue;
            };
            match stream.delete_consumer(consumer).await {
                Ok(_) => {
                    tracing::info!(%app_id, "deleted the JetStream consumer of an app removed from the cluster (it was made again after Admin.RemoveApp)");
                    deleted.push(app_id);
                }
                Err(e) => tracing::debug!(%app_id, "cannot delete an orphaned consumer: {e}"),
            }
        }
        self.suspects = orphans;
        Ok(deleted)
    }
}
