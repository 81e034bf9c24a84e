//! The Pre pipeline: veto hooks fan out in parallel, Extend fans out and merges in app order,
//! Modify runs as a chain — one app call at a time through [`call`], timed out by [`alarm`],
//! aggregated into a [`verdict`]. It may use apps and edge's call context; never `Status`.

pub mod alarm;
pub mod call;
pub mod extend;
pub mod verdict;

use std::sync::Arc;

use futures_util::{StreamExt, stream::FuturesUnordered};
use roomhooks::v1::{OutcomeStatus, Room, RoomType, hook_call};
use tracing::Instrument;

use crate::{
    apps::frame::SharedCall,
    apps::registry::{AppView, Registry},
    dispatch::call::{Answer, CallLimits, Failure, Reply, call_app},
    dispatch::extend::{ExtendMerge, Merge},
    dispatch::verdict::Verdict,
    edge::deadline::CallContext,
    hook::Hook,
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
