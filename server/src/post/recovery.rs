//! What the store held for the apps' queues at start, sorted by app: one [`PostEventData`] per
//! shared event, held by every app that had not finished it.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use crate::{
    ids::AppId,
    store::{RecoveredPost, StoredEvent},
};

use super::{Hold, PostEventData};

/// An event read back from the store, ready to queue again.
pub struct Recovering {
    pub(super) seq: u64,
    pub(super) event: Arc<PostEventData>,
    /// Whether its record is the shared one (`posts`), not one of the app's own (`events`).
    shared: bool,
    /// The app's hold on the shared record, taken when the app's queue takes the event.
    pub(super) hold: Option<Hold>,
    pub(super) attempt: u32,
    pub(super) accepted_unix_ms: i64,
}

/// What the store held for the apps' queues, handed out app by app as the registry builds them.
#[derive(Default)]
pub struct Recovery {
    events: HashMap<AppId, Vec<Recovering>>,
    dead: BTreeMap<AppId, Vec<(u64, StoredEvent)>>,
}

impl Recovery {
    /// Sorts what the store recovered by app: events of the app's own, and shared events (one
    /// [`PostEventData`] for all the apps that still hold one).
    pub fn new(
        events: BTreeMap<AppId, Vec<(u64, StoredEvent)>>,
        dead: BTreeMap<AppId, Vec<(u64, StoredEvent)>>,
        posts: Vec<RecoveredPost>,
    ) -> Self {
        let mut by_app: HashMap<AppId, Vec<Recovering>> = HashMap::new();
        for (app, own) in events {
            let queue = by_app.entry(app).or_default();
            for (seq, stored) in own {
                if let Some((event, attempt)) = PostEventData::from_stored(&stored) {
                    queue.push(Recovering {
                        seq,
                        event: Arc::new(event),
                        shared: false,
                        hold: None,
                        attempt,
                        accepted_unix_ms: stored.accepted_unix_ms,
                    });
                }
            }
        }
        for post in posts {
            let Some((event, _)) = PostEventData::from_stored(&post.stored) else {
                continue;
            };
            let event = Arc::new(event);
            for (app, attempt) in post.apps {
                by_app.entry(app).or_default().push(Recovering {
                    seq: post.seq,
                    event: Arc::clone(&event),
                    shared: true,
                    hold: None,
                    attempt,
                    accepted_unix_ms: post.stored.accepted_unix_ms,
                });
            }
        }
        Self {
            events: by_app,
            dead,
        }
    }

    /// Takes an app's pending events (in sequence order, holding the shared ones) and dead
    /// letters.
    pub(super) fn take(&mut self, app: &AppId) -> (Vec<Recovering>, Vec<(u64, StoredEvent)>) {
        let mut events = self.events.remove(app).unwrap_or_default();
        events.sort_by_key(|e| e.seq);
        for event in events.iter_mut().filter(|e| e.shared) {
            event.hold = Some(Hold::new(&event.event, event.seq));
        }
        (events, self.dead.remove(app).unwrap_or_default())
    }

    /// Shared events no known app took (they stay in the store).
    pub fn unclaimed(&self) -> usize {
        self.events.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use roomhooks::v1::PostEvent;

    use super::*;
    use crate::post::event::tests::event;

    #[test]
    fn a_shared_event_recovered_for_two_apps_is_one_event_both_hold() {
        let (data, whole) = event();
        let stored = StoredEvent::decode(data.stored(0, 1, None).as_slice()).expect("valid");
        assert_eq!(
            stored.event,
            Some(PostEvent {
                attempt: 0,
                ..whole
            })
        );
        let (a, b) = (AppId::parse("a").unwrap(), AppId::parse("b").unwrap());
        let post = RecoveredPost {
            seq: 9,
            stored,
            apps: vec![(a.clone(), 0), (b.clone(), 2)],
        };
        let mut recovery = Recovery::new(BTreeMap::new(), BTreeMap::new(), vec![post]);
        let (mut for_a, _) = recovery.take(&a);
        let (mut for_b, _) = recovery.take(&b);
        assert!(Arc::ptr_eq(&for_a[0].event, &for_b[0].event));
        assert_eq!((for_a[0].attempt, for_b[0].attempt), (0, 2));
        assert_eq!(recovery.unclaimed(), 0);
        let (hold_a, hold_b) = (for_a[0].hold.take(), for_b[0].hold.take());
        assert!(
            hold_a.expect("a holds it").release().is_none(),
            "b still holds it"
        );
        assert!(
            hold_b.expect("b holds it").release().is_some(),
            "the last holder deletes it"
        );
    }
}
