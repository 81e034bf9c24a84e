//! One registry for the cluster. Each app's declaration (what it registered, whether an
//! operator enabled it) is a key of the apps bucket; which sidecars hold its live instances is
//! in those sidecars' heartbeat records ([`super::members`]). A sync loop keeps this sidecar's
//! [`Registry`] in step: it writes this sidecar's record, reads everyone's, and hands the
//! cluster view to the registry ([`super::sync`]), so a FAIL app connected elsewhere (or nowhere)
//! protects calls here, and `SetAppEnabled` / `RemoveApp` at any sidecar apply at every one.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{Cluster, ClusterError, members::ServedInstance};
use crate::{
    apps::spec::{AppSpec, FailurePolicy},
    hook::{Hook, HookSet, RoomTypeSet},
    ids::AppId,
};

/// An app's declaration, as the apps bucket holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declaration {
    /// The hooks it answers (names, as in `Hook::name`).
    pub interfaces: Vec<String>,
    /// Its priority.
    pub priority: i32,
    /// `fail` or `ignore`.
    pub failure_policy: String,
    /// Its per-call timeout in milliseconds.
    pub timeout_ms: u64,
    /// The room types it wants (wire values; empty: all).
    pub room_types: Vec<i32>,
    /// The version its newest instance registered.
    pub version: String,
    /// False when an operator disabled it (anywhere in the cluster).
    pub enabled: bool,
}

impl Declaration {
    /// The declaration of `spec`.
    pub fn of(spec: &AppSpec, version: &str, enabled: bool) -> Self {
        Self {
            interfaces: spec
                .interfaces
                .iter()
                .map(|h| h.name().to_owned())
                .collect(),
            priority: spec.priority,
            failure_policy: match spec.failure_policy {
                FailurePolicy::Fail => "fail",
                FailurePolicy::Ignore => "ignore",
            }
            .to_owned(),
            timeout_ms: u64::try_from(spec.timeout.as_millis()).unwrap_or(u64::MAX),
            room_types: spec.room_types.iter().map(|t| t as i32).collect(),
            version: version.to_owned(),
            enabled,
        }
    }

    /// The spec it declares, for the app `app_id`.
    pub fn spec(&self, app_id: AppId) -> AppSpec {
        AppSpec {
            app_id,
            interfaces: HookSet::of(
                self.interfaces
                    .iter()
                    .filter_map(|h| h.parse::<Hook>().ok()),
            ),
            priority: self.priority,
            failure_policy: if self.failure_policy == "fail" {
                FailurePolicy::Fail
            } else {
                FailurePolicy::Ignore
            },
            timeout: Duration::from_millis(self.timeout_ms),
            room_types: RoomTypeSet::from_wire(&self.room_types),
            essential: HookSet::default(),
            unavailable_message: None,
            rollout: Default::default(),
        }
    }
}

/// A live instance of an app at another sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteInstance {
    /// The sidecar it is connected to.
    pub sidecar_id: Arc<str>,
    /// What that sidecar says about it.
    pub instance: ServedInstance,
}

/// What the cluster knows of one app, besides this sidecar's own instances.
#[derive(Clone, Debug, Default)]
pub struct ClusterApp {
    /// Its declaration, if the apps bucket holds one.
    pub declaration: Option<Declaration>,
    /// Its live instances at other sidecars.
    pub remote: Vec<RemoteInstance>,
}

/// The cluster's apps as one sync pass read them.
pub type ClusterView = BTreeMap<AppId, ClusterApp>;

impl Cluster {
    /// Declares an app (on each registration): its spec and version. The enabled flag an
    /// operator set stays as it is; a first declaration takes `enabled` (this sidecar's
    /// `[apps.<id>] enabled`).
    pub async fn declare(
        &self,
        spec: &AppSpec,
        version: &str,
        enabled: bool,
    ) -> Result<(), ClusterError> {
        let bucket = &self.buckets().apps;
        let key = spec.app_id.as_str();
        let enabled = match bucket.get(key).await {
            Ok(Some(value)) => {
                serde_json::from_slice::<Declaration>(&value).map_or(enabled, |d| d.enabled)
            }
            Ok(None) => enabled,
            Err(e) => return Err(ClusterError::Nats(format!("reading app {key}: {e}"))),
        };
        self.put_declaration(key, &Declaration::of(spec, version, enabled))
            .await
    }

    /// Sets an app's enabled flag for the whole cluster; false when no declaration exists.
    pub async fn set_enabled(&self, app_id: &AppId, enabled: bool) -> Result<bool, ClusterError> {
        let bucket = &self.buckets().apps;
        let key = app_id.as_str();
        let Some(value) = bucket
            .get(key)
            .await
            .map_err(|e| ClusterError::Nats(format!("reading app {key}: {e}")))?
        else {
            return Ok(false);
        };
        let mut declaration: Declaration = serde_json::from_slice(&value)
            .map_err(|e| ClusterError::Nats(format!("app {key}'s declaration: {e}")))?;
        declaration.enabled = enabled;
        self.put_declaration(key, &declaration).await?;
        Ok(true)
    }

    /// Forgets an app in the whole cluster: every sidecar removes it when it sees the delete.
    pub async fn undeclare(&self, app_id: &AppId) -> Result<(), ClusterError> {
        self.buckets()
            .apps
            .delete(app_id.as_str())
            .await
            .map_err(|e| ClusterError::Nats(format!("removing app {app_id}: {e}")))
    }

    async fn put_declaration(
        &self,
        key: &str,
        declaration: &Declaration,
    ) -> Result<(), ClusterError> {
        let value = serde_json::to_vec(declaration)
            .map_err(|e| ClusterError::Nats(format!("encoding app {key}: {e}")))?;
        self.buckets()
            .apps
            .put(key, Bytes::from(value))
            .await
            .map(|_| ())
            .map_err(|e| ClusterError::Nats(format!("declaring app {key}: {e}")))
    }

    /// Every declaration in the apps bucket.
    pub(super) async fn declarations(&self) -> Result<BTreeMap<AppId, Declaration>, ClusterError> {
        let bucket = &self.buckets().apps;
        let mut keys = bucket
            .keys()
            .await
            .map_err(|e| ClusterError::Nats(format!("listing apps: {e}")))?;
        let mut out = BTreeMap::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| ClusterError::Nats(format!("listing apps: {e}")))?;
            let (Ok(app_id), Ok(Some(value))) = (AppId::parse(&key), bucket.get(&key).await) else {
                continue;
            };
            if let Ok(declaration) = serde_json::from_slice(&value) {
                out.insert(app_id, declaration);
            }
        }
        Ok(out)
    }
}
