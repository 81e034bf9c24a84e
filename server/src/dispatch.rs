//! The dispatch engine: veto hooks fan out in parallel, Extend fans out and merges in app order,
//! Modify runs as a chain, and post events are queued for every subscribed app.

use std::{sync::Arc, time::SystemTime};

use futures_util::{StreamExt, future::join_all, stream::FuturesUnordered};
use roomhooks::v1::{AppOutcome, OutcomeStatus, PostEventResponse, Room, RoomType, hook_call};
use tokio::time::Instant;
use tracing::Instrument;

use crate::{
    call::{Answer, CallLimits, Failure, Reply, call_app},
    deadline::CallContext,
    extend::{ExtendMerge, Merge},
    frame::SharedCall,
    hook::Hook,
    post::{Admitted, Delivery, DeliveryWaiter, Offer, PostEventData, unix_ms},
    registry::{AppView, Registry},
    store::{Committed, PostWrite, Store, StoreError},
    verdict::Verdict,
};

/// Runs hooks against the registered apps.
#[derive(Clone)]
pub struct Dispatcher {
    registry: Arc<Registry>,
    limits: CallLimits,
}

impl Dispatcher {
    /// A dispatcher over `registry`.
    pub fn new(registry: Arc<Registry>, limits: CallLimits) -> Self {
        Self { registry, limits }
    }

    /// PreRoomCreate: Prevent, then Extend, then Modify. Returns the verdict and the final room.
    pub async fn pre_room_create(&self, mut room: Room, ctx: &CallContext) -> (Verdict, Room) {
        let mut verdict = Verdict::default();
        let room_type = room.r#type;
        // Prevent and Extend apps see the same room: encode it once for both stages.
        let call = room_call(&room, ctx);
        self.veto(
            Hook::PreRoomCreatePrevent,
            &call,
            room_type,
            ctx,
            &mut verdict,
        )
        .await;
        if verdict.allowed() {
            self.extend(&mut room, &call, ctx, &mut verdict).await;
        }
        if verdict.allowed() {
            self.modify(&mut room, ctx, &mut verdict).await;
        }
        (verdict, room)
    }

    /// A veto hook on its own (delete, join, leave).
    pub async fn prevent(
        &self,
        hook: Hook,
        payload: hook_call::Payload,
        room_type: i32,
        ctx: &CallContext,
    ) -> Verdict {
        let mut verdict = Verdict::default();
        let call = SharedCall::encode(&payload, ctx.dry_run, &ctx.request_id, &ctx.traceparent);
        self.veto(hook, &call, room_type, ctx, &mut verdict).await;
        verdict
    }

    /// Fans a veto hook out to every matching app at once; any veto prevents.
    async fn veto(
        &self,
        hook: Hook,
        call: &SharedCall,
        room_type: i32,
        ctx: &CallContext,
        verdict: &mut Verdict,
    ) {
        let snapshot = self.registry.snapshot();
        let apps = matching(snapshot.subscribers(hook), hook, room_type);
        if apps.is_empty() {
            return;
        }
        let answers = self.call_all(&apps, hook, call, ctx).await;
        for (app, Answer { meta, result }) in apps.iter().zip(answers) {
            match result {
                Ok(Reply::Decision(d)) if d.prevent => {
                    verdict.prevent(app, hook, &meta, d.message);
                }
                Ok(_) => verdict.record(app, hook, &meta, OutcomeStatus::Allowed, String::new()),
                Err(failure) => verdict.fail(app, hook, &meta, &failure),
            }
        }
    }

    /// Calls every app of one stage at once; the answers come back in `apps`' order.
    async fn call_all(
        &self,
        apps: &[&Arc<AppView>],
        hook: Hook,
        call: &SharedCall,
        ctx: &CallContext,
    ) -> Vec<Answer> {
        let calls: Vec<_> = apps
            .iter()
            .map(|app| {
                call_app(&self.registry, &self.limits, app, hook, call, ctx)
                    .instrument(app_span(app, hook))
            })
            .collect();
        fan_out(calls).await
    }

    /// Every Extend app sees the same room (`call` carries it); additions merge in app order.
    async fn extend(
        &self,
        room: &mut Room,
        call: &SharedCall,
        ctx: &CallContext,
        verdict: &mut Verdict,
    ) {
        let hook = Hook::PreRoomCreateExtend;
        let snapshot = self.registry.snapshot();
        let apps = matching(snapshot.subscribers(hook), hook, room.r#type);
        if apps.is_empty() {
            return;
        }
        let answers = self.call_all(&apps, hook, call, ctx).await;
        let mut merge = ExtendMerge::new(room, self.limits.max_custom_field_bytes);
        for (app, Answer { meta, result }) in apps.iter().zip(answers) {
            match result {
                Ok(Reply::Extension(extension)) => {
                    let (status, detail) = match merge.apply(&app.spec.app_id, extension) {
                        Merge::Changed => (OutcomeStatus::Changed, String::new()),
                        Merge::Unchanged => (OutcomeStatus::Unchanged, String::new()),
                        Merge::Rejected(detail) => (OutcomeStatus::Rejected, detail),
                    };
                    verdict.record(app, hook, &meta, status, detail);
                }
                Ok(other) => verdict.fail(app, hook, &meta, &wrong_kind(&other)),
                Err(failure) => verdict.fail(app, hook, &meta, &failure),
            }
            if !verdict.allowed() {
                return;
            }
        }
    }

    /// Modify apps run one after another, each seeing the room the previous one left.
    async fn modify(&self, room: &mut Room, ctx: &CallContext, verdict: &mut Verdict) {
        let hook = Hook::PreRoomCreateModify;
        let snapshot = self.registry.snapshot();
        for app in matching(snapshot.subscribers(hook), hook, room.r#type) {
            let call = room_call(room, ctx);
            let Answer { meta, result } =
                call_app(&self.registry, &self.limits, app, hook, &call, ctx)
                    .instrument(app_span(app, hook))
                    .await;
            let outcome = match result {
                Ok(Reply::Modification(m)) => Ok(match m.room {
                    None => (OutcomeStatus::Unchanged, String::new()),
                    Some(new) if new == *room => (OutcomeStatus::Unchanged, String::new()),
                    Some(new) => {
                        match check_modification(room, &new, self.limits.max_custom_field_bytes) {
                            Ok(()) => {
                                *room = new;
                                (OutcomeStatus::Changed, String::new())
                            }
                            Err(why) => (OutcomeStatus::Rejected, why),
                        }
                    }
                }),
                Ok(other) => Err(wrong_kind(&other)),
                Err(failure) => Err(failure),
            };
            let (status, detail) = match outcome {
                Ok(done) => done,
                Err(failure) => {
                    verdict.fail(app, hook, &meta, &failure);
                    if !verdict.allowed() {
                        return;
                    }
                    continue;
                }
            };
            verdict.record(app, hook, &meta, status, detail);
        }
    }

    /// Queues a post event for every subscribed app; with `wait`, waits for their acks until
    /// each app's timeout (capped by the backend's deadline).
    /// Fails only when the event could not be written to the store (then it was not accepted).
    pub async fn post(
        &self,
        post: NewPost,
        ctx: &CallContext,
    ) -> Result<PostEventResponse, StoreError> {
        let mut responses = self.post_batch(vec![post], ctx).await?;
        responses
            .pop()
            .ok_or_else(|| StoreError::Failed("internal: a batch of one gave no answer".into()))
    }

    /// Queues post events in the order given, commits them to the store in one group, and
    /// answers for each once it is durable (and, for those that asked to wait, delivered or
    /// timed out). Fails when the store could not take them: events before the failure may be
    /// queued, so the backend retries with the same event ids (de-duplicated).
    pub async fn post_batch(
        &self,
        events: Vec<NewPost>,
        ctx: &CallContext,
    ) -> Result<Vec<PostEventResponse>, StoreError> {
        let snapshot = self.registry.snapshot();
        // Which events each subscribed app gets, in batch order; apps in dispatch order.
        let mut per_app: Vec<(&Arc<AppView>, Vec<usize>)> = Vec::new();
        let mut subscribed = vec![0u32; events.len()];
        for (
            i,
            NewPost {
                event, room_type, ..
            },
        ) in events.iter().enumerate()
        {
            // Disabled apps still get their events queued: delivery resumes when they are enabled.
            let apps = snapshot
                .subscribers(event.hook)
                .iter()
                .filter(|app| app.spec.room_types.matches(*room_type));
            for app in apps {
                subscribed[i] = subscribed[i].saturating_add(1);
                match per_app.iter_mut().find(|(a, _)| Arc::ptr_eq(a, app)) {
                    Some((_, mine)) => mine.push(i),
                    None => per_app.push((app, vec![i])),
                }
            }
        }
        let live: Vec<bool> = per_app
            .iter()
            .map(|(app, _)| app.enabled && app.posts.has_live_instance())
            .collect();
        let accepted_unix_ms = unix_ms(SystemTime::now());
        let (records, admitted) = self.admit_all(&events, &per_app, accepted_unix_ms);
        let store = self.registry.store();
        let persisted = match store {
            Some(store) => write_records(store, &events, &records, accepted_unix_ms).await,
            None => None,
        };
        let mut waiters: Vec<Vec<_>> = events.iter().map(|_| Vec::new()).collect();
        for (((app, mine), mut result), live) in per_app.iter().zip(admitted).zip(live) {
            app.posts.commit(&mut result).await;
            for (&i, waiter) in mine.iter().zip(result.waiters) {
                if let Some(waiter) = waiter {
                    waiters[i].push((Arc::clone(app), live, waiter));
                }
            }
        }
        release_all(store, &events, &records).await;
        let queued: Vec<_> = events
            .into_iter()
            .zip(subscribed)
            .zip(waiters)
            .map(|((post, subscribed), waiters)| (post.event, subscribed, waiters))
            .collect();
        // Durable before the backend hears "accepted" (group commit shares one journal write).
        if let Some(commit) = persisted {
            commit
                .await
                .unwrap_or_else(|_| Err(StoreError::Failed("the store writer stopped".into())))?;
        }
        let started = Instant::now();
        let responses = join_all(queued.into_iter().map(|(event, subscribed, waiters)| {
            let hook = event.hook;
            async move {
                let outcomes = join_all(
                    waiters
                        .into_iter()
                        .map(|(app, live, waiter)| outcome(app, live, waiter, hook, started, ctx)),
                )
                .await;
                PostEventResponse {
                    event_id: event.id.as_str().to_owned(),
                    subscribed_apps: subscribed,
                    outcomes,
                }
            }
        }))
        .await;
        Ok(responses)
    }

    /// Numbers `events` and queues them for every app in `per_app`, all under the sequence
    /// lock, so each queue holds its events in sequence order. Each event is held for the
    /// acceptance until [`release_all`], so no queue can delete its record before it is written.
    /// Returns each event's number with the apps that queued it, and each app's admission.
    fn admit_all(
        &self,
        events: &[NewPost],
        per_app: &[(&Arc<AppView>, Vec<usize>)],
        accepted_unix_ms: i64,
    ) -> (Vec<Record>, Vec<Admitted>) {
        let mut sequence = self.registry.sequence().lock();
        let mut records: Vec<Record> = events
            .iter()
            .map(|post| {
                post.event.hold();
                Record {
                    seq: sequence.take(),
                    apps: Vec::new(),
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
                        records[i].apps.push(app.spec.app_id.as_str().to_owned());
                    }
                }
                result
            })
            .collect();
        (records, admitted)
    }
}

/// A post event the backend sent, before it is queued.
#[derive(Debug)]
pub struct NewPost {
    /// The event (shared by every queue that takes it).
    pub event: Arc<PostEventData>,
    /// The room's type, for the apps' room-type filters.
    pub room_type: i32,
    /// Whether the backend waits for delivery.
    pub wait: bool,
}

/// An event's number and the apps that queued it (none: a duplicate for every app).
struct Record {
    seq: u64,
    apps: Vec<String>,
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
async fn release_all(store: Option<&Store>, events: &[NewPost], records: &[Record]) {
    let released: Vec<PostWrite> = events
        .iter()
        .zip(records)
        .filter(|(post, record)| post.event.release() && !record.apps.is_empty())
        .map(|(_, record)| PostWrite::Delete(record.seq))
        .collect();
    if let Some(store) = store
        && !released.is_empty()
    {
        store.write_posts(released, false).await;
    }
}

/// Waits for one app's ack of a post event, until the app's timeout capped by the deadline.
async fn outcome(
    app: Arc<AppView>,
    live: bool,
    waiter: DeliveryWaiter,
    hook: Hook,
    started: Instant,
    ctx: &CallContext,
) -> AppOutcome {
    let deadline = ctx.deadline.min(started + app.spec.timeout);
    let (status, instance, detail) = if !live {
        (
            OutcomeStatus::Unavailable,
            String::new(),
            "no live instance (or the app is disabled); the event stays queued until one can \
             take it"
                .to_owned(),
        )
    } else {
        match tokio::time::timeout_at(deadline, waiter).await {
            Ok(Ok(Delivery::Acked {
                instance: Some(instance),
                attempt,
            })) => (
                OutcomeStatus::Delivered,
                instance.as_str().to_owned(),
                format!("acknowledged on attempt {attempt}"),
            ),
            Ok(Ok(Delivery::Acked { instance: None, .. })) => (
                OutcomeStatus::Delivered,
                String::new(),
                "already acknowledged (a retried event_id within the de-duplication window)"
                    .to_owned(),
            ),
            Ok(Ok(Delivery::DeadLettered)) => (
                OutcomeStatus::Error,
                String::new(),
                "moved to the dead letters after too many deliveries".to_owned(),
            ),
            Ok(Ok(Delivery::Dropped)) => (
                OutcomeStatus::Error,
                String::new(),
                "dropped: the app's post-event queue overflowed".to_owned(),
            ),
            Ok(Err(_)) => (
                OutcomeStatus::Error,
                String::new(),
                "the app was removed before acknowledging".to_owned(),
            ),
            Err(_) => (
                OutcomeStatus::Timeout,
                String::new(),
                format!(
                    "not acknowledged within {:?}; the event stays queued and will be redelivered",
                    deadline - started
                ),
            ),
        }
    };
    AppOutcome {
        app_id: app.spec.app_id.as_str().to_owned(),
        instance_id: instance,
        hook: hook.to_wire() as i32,
        status: status as i32,
        duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        detail,
    }
}

/// The apps among `subscribers` whose room-type filter admits `room_type`.
/// Disabled apps are left out, except where they are essential for `hook` (then the call fails
/// at once and the action is prevented).
fn matching(subscribers: &[Arc<AppView>], hook: Hook, room_type: i32) -> Vec<&Arc<AppView>> {
    subscribers
        .iter()
        .filter(|app| app.spec.room_types.matches(room_type))
        .filter(|app| app.enabled || app.spec.essential.contains(hook))
        .collect()
}

/// Runs the calls of one stage at once and returns their answers in the calls' order. Unlike
/// `join_all`, only the calls that were woken are polled again, so a wide fan-out costs O(apps)
/// polls rather than O(apps²).
async fn fan_out<F: Future>(mut calls: Vec<F>) -> Vec<F::Output> {
    if calls.len() == 1
        && let Some(only) = calls.pop()
    {
        return vec![only.await];
    }
    let mut running: FuturesUnordered<_> = calls
        .into_iter()
        .enumerate()
        .map(|(i, call)| async move { (i, call.await) })
        .collect();
    let mut answers: Vec<Option<F::Output>> = (0..running.len()).map(|_| None).collect();
    while let Some((i, answer)) = running.next().await {
        answers[i] = Some(answer);
    }
    answers.into_iter().flatten().collect()
}

/// The parts of a hook call every app of one stage shares, encoded once.
fn room_call(room: &Room, ctx: &CallContext) -> SharedCall {
    SharedCall::room(room, ctx.dry_run, &ctx.request_id, &ctx.traceparent)
}

/// A reply `call_app` should have refused already; kept as an error rather than a panic.
fn wrong_kind(reply: &Reply) -> Failure {
    Failure::Error(format!("internal: unexpected reply {reply:?}"))
}

fn app_span(app: &AppView, hook: Hook) -> tracing::Span {
    tracing::debug_span!("app_call", app_id = %app.spec.app_id, hook = hook.name())
}

/// Checks a Modify answer: the id is fixed and the type must stay a real room type.
fn check_modification(current: &Room, new: &Room, max_field_bytes: usize) -> Result<(), String> {
    let size = new
        .custom_fields
        .as_ref()
        .map_or(0, prost::Message::encoded_len);
    if size > max_field_bytes {
        return Err(format!(
            "room.custom_fields would be {size} bytes (limit {max_field_bytes}); the chain \
             continues with the previous room"
        ));
    }
    if new.id != current.id {
        return Err(format!(
            "room.id cannot be changed ({:?} -> {:?}); the chain continues with the previous room",
            current.id, new.id
        ));
    }
    match RoomType::try_from(new.r#type) {
        Ok(RoomType::Unspecified) | Err(_) => Err(format!(
            "room.type {} is not a room type; the chain continues with the previous room",
            new.r#type
        )),
        Ok(_) => Ok(()),
    }
}
