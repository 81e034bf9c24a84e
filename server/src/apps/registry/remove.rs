//! Forgetting apps: an operator's `Admin.RemoveApp`, and apps idle for `--forget-apps-after`.

use std::time::{Duration, SystemTime};

use tonic::Status;

use super::Registry;
use crate::ids::AppId;

/// What a removal took with it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// Live instances disconnected.
    pub instances: usize,
    /// Queued post events dropped.
    pub post_events: usize,
    /// Shared post events the app was the last to hold (to delete from the store).
    pub released: Vec<u64>,
    /// The app's cursor from now on: no stored event below it is the app's any more.
    pub cursor: u64,
}

impl Registry {
    /// Forgets the apps that have had no instance, no queued post event and no dead letter for
    /// `after` by `now` — except apps the config file declares (FAIL and essential ones among
    /// them), which keep protecting. Returns each forgotten app with what its removal took.
    pub fn forget_idle(&self, now: SystemTime, after: Duration) -> Vec<(AppId, Removed)> {
        let idle: Vec<AppId> = self
            .lock()
            .iter()
            .filter(|(app_id, entry)| {
                // The operator declared it (FAIL and essential apps among them): it stays.
                let protected = self.settings.contains_key(*app_id);
                let quiet = entry.instances.iter().all(|i| !i.is_live())
                    && entry.remote.is_empty()
                    && entry.posts.is_empty()
                    && entry.posts.dead_count() == 0;
                let long_enough = entry
                    .idle_since
                    .is_some_and(|since| now.duration_since(since).unwrap_or_default() >= after);
                !protected && quiet && long_enough
            })
            .map(|(app_id, _)| app_id.clone())
            .collect();
        idle.into_iter()
            .filter_map(|app_id| self.remove(&app_id).map(|removed| (app_id, removed)))
            .collect()
    }

    /// Forgets an app: disconnects its instances and drops its queue.
    pub fn remove(&self, app_id: &AppId) -> Option<Removed> {
        let mut entries = self.lock();
        let entry = entries.remove(app_id)?;
        self.publish(&entries);
        drop(entries);
        let mut removed = Removed::default();
        for instance in &entry.instances {
            if instance.is_live() {
                removed.instances += 1;
            }
            instance.close(Some(Status::not_found(format!(
                "app {app_id:?} was removed by an operator (Admin.RemoveApp); reconnect to \
                 register it again"
            ))));
        }
        {
            // Under the sequence lock no batch is being queued: every number below the next one
            // was either taken by this queue (and is released here) or is not the app's.
            let sequence = self.sequence.lock();
            (removed.post_events, removed.released) = entry.posts.stop();
            removed.cursor = sequence.peek();
        }
        Some(removed)
    }
}
