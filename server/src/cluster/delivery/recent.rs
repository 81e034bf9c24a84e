//! The acks this sidecar saw lately, for `wait_for_delivery`: which instance took an event.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use super::MAX_RECENT;
use crate::ids::{AppId, InstanceId};

/// Who acknowledged an event, when this sidecar saw it.
#[derive(Clone, Debug, Default)]
pub struct AckedBy {
    /// The instance that acknowledged.
    pub instance: Option<InstanceId>,
    /// The sidecar it is connected to.
    pub sidecar: Option<String>,
    /// The delivery attempt it acknowledged (for a dead letter: the deliveries made).
    pub attempt: Option<u32>,
    /// Not acknowledged: it became a dead letter.
    pub dead: bool,
}

/// The acks this sidecar took recently, by app and stream sequence.
#[derive(Clone, Default)]
pub struct RecentAcks {
    inner: Arc<Mutex<RecentInner>>,
}

#[derive(Default)]
struct RecentInner {
    by_seq: HashMap<(AppId, u64), AckedBy>,
    order: VecDeque<(AppId, u64)>,
}

impl RecentAcks {
    /// Who acknowledged `app_id`'s message at `sequence`, if it was acknowledged here.
    pub fn get(&self, app_id: &AppId, sequence: u64) -> Option<AckedBy> {
        self.lock().by_seq.get(&(app_id.clone(), sequence)).cloned()
    }

    pub(super) fn put(&self, app_id: AppId, sequence: u64, by: AckedBy) {
        let mut inner = self.lock();
        if inner
            .by_seq
            .insert((app_id.clone(), sequence), by)
            .is_none()
        {
            inner.order.push_back((app_id, sequence));
        }
        while inner.order.len() > MAX_RECENT {
            if let Some(old) = inner.order.pop_front() {
                inner.by_seq.remove(&old);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecentInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
