//! Accepting post events from backends: each is numbered, queued for every subscribed app,
//! written once to the store (one record however many apps hold it) in a group commit, and
//! answered once durable — with `wait_for_delivery`, once each app acknowledged or timed out.
//! In cluster mode each event is instead published once to JetStream
//! ([`crate::cluster::journal`]) and answered once the stream acknowledged it.

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::Arc,
    time::SystemTime,
};

use futures_util::future::join_all;
use roomhooks::v1::{PostEventResponse, RoomType};
use tokio::time::Instant;

use super::outcome::{cluster_outcome, outcome};
use crate::{
    apps::conditions::{Payload, PayloadRef},
    apps::registry::{AppView, Registry, Snapshot},
    cluster::journal::{Journal, JournalError},
    edge::deadline::CallContext,
    ids::AppId,
    post::{Admitted, DeliveryWaiter, Hold, Offer, PostEventData, unix_ms},
    store::{Committed, PostWrite, Store, StoreError},
};

/// Why post events were not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The store could not take them.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Cluster mode: JetStream did not store them.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Accepts post events into the queues of the apps subscribed to them.
#[derive(Clone)]
pub struct Accept {
    registry: Arc<Registry>,
    /// Cluster mode: events go to JetStream instead of the local queues.
    journal: Option<Journal>,
}

impl Accept {
    /// Accepts into the queues of `registry`'s apps, or in cluster mode into `journal`.
    pub fn new(registry: Arc<Registry>, journal: Option<Journal>) -> Self {
        Self { registry, journal }
    }

    /// Queues a post event for every subscribed app; with `wait`, waits for their acks until
    /// each app's timeout (capped by the backend's deadline).
    /// Fails only when the event could not be written to the store (then it was not accepted).
    pub async fn post(
        &self,
        post: NewPost,
        ctx: &CallContext,
    ) -> Result<PostEventResponse, AcceptError> {
        let mut responses = self.post_batch(vec![post], ctx).await?;
        responses.pop().ok_or_else(|| {
            StoreError::Failed("internal: a batch of one gave no answer".into()).into()
        })
    }

    /// Queues post events in the order given, commits them to the store in one group, and
    /// answers for each once it is durable (and, for those that asked to wait, delivered or
    /// timed out). Fails when the store could not take them: events before the failure may be
    /// queued, so the backend retries with the same event ids (de-duplicated).
    pub async fn post_batch(
        &self,
        events: Vec<NewPost>,
        ctx: &CallContext,
    ) -> Result<Vec<PostEventResponse>, AcceptError> {
        if let Some(journal) = &self.journal {
            return self.post_to_journal(journal, events, ctx).await;
        }
        let snapshot = self.registry.snapshot();
        let (per_app, subscribed) = route(snapshot.as_ref(), &events);
        let live: Vec<bool> = per_app
            .iter()
            .map(|(app, _)| app.enabled && app.posts.has_live_instance())
            .collect();
        let accepted_unix_ms = unix_ms(SystemTime::now());
        let (records, admitted) = self.admit_all(&events, &per_app, accepted_unix_ms);
        let store = self.registry.store();
        // A store that keeps nothing needs no record encoded.
        let persisted = if store.durable() {
            write_records(store, &events, &records, accepted_unix_ms).await
        } else {
            None
        };
        let waiters = commit_all(&per_app, admitted, live, events.len()).await;
        release_all(store, records).await;
        // Durable before the backend hears "accepted" (group commit shares one journal write).
        if let Some(commit) = persisted {
            commit
                .await
                .unwrap_or_else(|_| Err(StoreError::Failed("the store writer stopped".into())))?;
        }
        Ok(answer(events, subscribed, waiters, ctx).await)
    }

    /// Cluster mode: publishes each event once to JetStream (pipelined) and answers once the
    /// stream acknowledged all of them; with `wait`, once each subscribed app's consumer
    /// acknowledged it or its timeout passed. Subscribed apps are the registry's (the cluster's)
    /// view, as for a single sidecar.
    async fn post_to_journal(
        &self,
        journal: &Journal,
        events: Vec<NewPost>,
        ctx: &CallContext,
    ) -> Result<Vec<PostEventResponse>, AcceptError> {
        let snapshot = self.registry.snapshot();
        let publish = journal.publish(
            events
                .iter()
                .map(|p| (&*p.event, p.room_type, p.wait))
                .collect(),
        );
        let (stored, notices) = tokio::time::timeout_at(ctx.deadline, publish)
            .await
            .map_err(|_| JournalError::Deadline)??;
        let notices = notices.as_ref();
        let started = Instant::now();
        let answers = join_all(events.iter().zip(stored).map(|(post, stored)| {
            let apps: Vec<&Arc<AppView>> = snapshot
                .subscribers(post.event.hook)
                .iter()
                .filter(|app| app.spec.room_types.matches(post.room_type))
                .collect();
            let hook = post.event.hook;
            async move {
                let outcomes = if post.wait {
                    join_all(apps.iter().map(|app| {
                        cluster_outcome(journal, notices, app, stored, hook, started, ctx)
                    }))
                    .await
                } else {
                    Vec::new()
                };
                PostEventResponse {
                    event_id: post.event.id.as_str().to_owned(),
                    subscribed_apps: u32::try_from(apps.len()).unwrap_or(u32::MAX),
                    outcomes,
                }
            }
        }));
        // The notices are read while the answers wait for them.
        let responses = match notices {
            Some(notices) => {
                let pump = async {
                    notices.pump().await;
                    std::future::pending::<std::convert::Infallible>().await
                };
                tokio::select! {
                    responses = answers => responses,
                    never = pump => match never {},
                }
            }
            None => answers.await,
        };
        Ok(responses)
    }

    /// Numbers `events` and queues them for every app in `per_app`, all under the sequence
    /// lock, so each queue holds its events in sequence order. Each event is held for the
    /// acceptance until [`release_all`], so no queue can delete its record before it is written.
    /// Returns each event's number with the apps that queued it, and each app's admission.
    fn admit_all(
        &self,
        events: &[NewPost],
        per_app: &[PerApp<'_>],
        accepted_unix_ms: i64,
    ) -> (Vec<Record>, Vec<Admitted>) {
        let mut sequence = self.registry.sequence().lock();
        let mut records: Vec<Record> = events
            .iter()
            .map(|post| {
                let seq = sequence.take();
                Record {
                    seq,
                    apps: Vec::new(),
                    acceptance: Hold::new(&post.event, seq),
                }
            })
            .collect();
        let admitted = per_app
            .iter()
            .map(|(app, mine)| {
                let offers = mine.iter().map(|&i| Offer {
                    event: &events[i].event,
                    seq: records[i].seq,
                    accepted_unix_ms,
                    wait: events[i].wait,
                });
                let result = app.posts.admit_many(offers);
                for (&i, &queued) in mine.iter().zip(&result.queued) {
                    if queued {
                        records[i].apps.push(app.spec.app_id.clone());
                    }
                }
                result
            })
            .collect();
        (records, admitted)
    }
}

/// Which events each subscribed app gets, in batch order, with apps in dispatch order; and how
/// many apps each event went to. Disabled apps still get their events queued: delivery resumes
/// when they are enabled.
fn route<'s>(snapshot: &'s Snapshot, events: &[NewPost]) -> (Vec<PerApp<'s>>, Vec<u32>) {
    let mut per_app: Vec<PerApp<'s>> = Vec::new();
    // Each app's place in `per_app`: a batch of many events for many apps stays linear.
    // Raw pointers are not Send: the index lives only while the batch is sorted by app.
    let mut slot_of: HashMap<*const AppView, usize, foldhash::fast::RandomState> =
        HashMap::default();
    let mut subscribed = vec![0u32; events.len()];
    for (
        i,
        NewPost {
            event, room_type, ..
        },
    ) in events.iter().enumerate()
    {
        let apps = snapshot
            .subscribers(event.hook)
            .iter()
            .filter(|app| app.spec.room_types.matches(*room_type));
        // The event as CEL variables, when an app has match conditions.
        let conditional = snapshot
            .subscribers(event.hook)
            .iter()
            .any(|app| !app.spec.rollout.conditions.is_empty());
        let decoded = conditional.then(|| event.payload()).flatten();
        let variables = decoded.as_ref().map(|payload| {
            let mut variables = Payload::new(PayloadRef::Post(payload));
            variables.for_hook(event.hook);
            variables
        });
        for app in apps {
            if !conditions_admit(app, event, variables.as_ref()) {
                app.stats.hook(event.hook).record_skip();
                continue;
            }
            subscribed[i] = subscribed[i].saturating_add(1);
            match slot_of.entry(Arc::as_ptr(app)) {
                Entry::Occupied(slot) => per_app[*slot.get()].1.push(i),
                Entry::Vacant(slot) => {
                    slot.insert(per_app.len());
                    per_app.push((app, vec![i]));
                }
            }
        }
    }
    (per_app, subscribed)
}

/// An app and the indexes of the batch's events it gets.
type PerApp<'s> = (&'s Arc<AppView>, Vec<usize>);

/// One app's wait for one event: the app, whether it had a live instance, and the waiter.
type Waiting = (Arc<AppView>, bool, DeliveryWaiter);

/// Commits each app's admission (its drops written, its delivery woken) and collects, per
/// event of the batch, the waiters of the apps it was queued for.
async fn commit_all(
    per_app: &[PerApp<'_>],
    admitted: Vec<Admitted>,
    live: Vec<bool>,
    events: usize,
) -> Vec<Vec<Waiting>> {
    let mut waiters: Vec<Vec<Waiting>> = (0..events).map(|_| Vec::new()).collect();
    for (((app, mine), mut result), live) in per_app.iter().zip(admitted).zip(live) {
        app.posts.commit(&mut result).await;
        for (&i, waiter) in mine.iter().zip(result.waiters) {
            if let Some(waiter) = waiter {
                waiters[i].push((Arc::clone(app), live, waiter));
            }
        }
    }
    waiters
}

/// The answer for each event, once each app that is waited for acknowledged it or timed out.
async fn answer(
    events: Vec<NewPost>,
    subscribed: Vec<u32>,
    waiters: Vec<Vec<Waiting>>,
    ctx: &CallContext,
) -> Vec<PostEventResponse> {
    let started = Instant::now();
    join_all(events.into_iter().zip(subscribed).zip(waiters).map(
        |((post, subscribed), waiters)| {
            let event = post.event;
            async move {
                let outcomes = join_all(waiters.into_iter().map(|(app, live, waiter)| {
                    outcome(app, live, waiter, event.hook, started, ctx)
                }))
                .await;
                PostEventResponse {
                    event_id: event.id.as_str().to_owned(),
                    subscribed_apps: subscribed,
                    outcomes,
                }
            }
        },
    ))
    .await
}

/// Whether `app`'s match conditions let `event` through. One that fails at run time lets it
/// through: a post event has no failure policy, and dropping it unseen would lose it.
fn conditions_admit(app: &AppView, event: &PostEventData, variables: Option<&Payload<'_>>) -> bool {
    let conditions = &app.spec.rollout.conditions;
    let Some(payload) = variables.filter(|_| !conditions.is_empty()) else {
        return true;
    };
    match conditions.matches(payload) {
        Ok(admitted) => admitted,
        Err(e) => {
            tracing::debug!(app_id = %app.spec.app_id, event_id = %event.id, error = %e,
                "a match condition failed on a post event; it is delivered");
            true
        }
    }
}

/// A post event the backend sent, before it is queued.
#[derive(Debug)]
pub struct NewPost {
    /// The event (shared by every queue that takes it).
    pub event: Arc<PostEventData>,
    /// The room's type, for the apps' room-type filters.
    pub room_type: RoomType,
    /// Whether the backend waits for delivery.
    pub wait: bool,
}

/// An event's number and the apps that queued it (none: a duplicate for every app).
struct Record {
    seq: u64,
    apps: Vec<AppId>,
    /// The acceptance's hold on the event's shared record, until it was sent to the store.
    acceptance: Hold,
}

/// Writes, in one confirmed group, the shared record of every event some app queued.
async fn write_records(
    store: &Store,
    events: &[NewPost],
    records: &[Record],
    accepted_unix_ms: i64,
) -> Option<Committed> {
    let puts: Vec<PostWrite> = events
        .iter()
        .zip(records)
        .filter(|(_, record)| !record.apps.is_empty())
        .map(|(post, record)| {
            PostWrite::Put(
                record.seq,
                post.event.shared_record(accepted_unix_ms, &record.apps),
            )
        })
        .collect();
    if puts.is_empty() {
        return None;
    }
    store.write_posts(puts, true).await
}

/// Lets go of the acceptance's hold on each event (after its record was sent to the store);
/// deletes the records no queue holds any more (every app already finished with the event).
async fn release_all(store: &Store, records: Vec<Record>) {
    let released: Vec<PostWrite> = records
        .into_iter()
        // Every hold is let go; only a record some app queued was written, to be deleted.
        .filter_map(|record| {
            let last = record.acceptance.release();
            last.filter(|_| !record.apps.is_empty())
        })
        .map(PostWrite::Delete)
        .collect();
    if !released.is_empty() {
        store.write_posts(released, false).await;
    }
}
