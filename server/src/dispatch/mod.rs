//! The Pre pipeline: one backend call runs as named stages over one registry snapshot —
//! [`veto`] (every app at once; any may prevent), [`extend`] (additions merged in app order),
//! [`modify`] (a chain in app order) — each app called through [`call`], timed out by [`alarm`],
//! its answer checked by the room [`rules`] and recorded in the [`verdict`].
//! It may use apps and edge's call context; it never builds a `Status`.

pub mod alarm;
pub mod call;
mod extend;
mod modify;
pub mod rules;
pub mod verdict;
mod veto;

use std::sync::Arc;

use futures_util::{StreamExt, stream::FuturesUnordered};
use roomhooks::v1::{Room, RoomType, hook_call};
use tracing::Instrument;

use crate::{
    apps::{
        frame::SharedCall,
        registry::{AppView, Registry, Snapshot},
    },
    cluster::forward::Forwarder,
    dispatch::{
        call::{Answer, CallLimits, Failure, Reply, call_app},
        verdict::Verdict,
    },
    edge::deadline::CallContext,
    hook::Hook,
};

/// Runs Pre hooks against the registered apps.
#[derive(Clone)]
pub struct Dispatcher {
    registry: Arc<Registry>,
    limits: CallLimits,
    /// In cluster mode, calls apps whose instances are at other sidecars.
    forward: Option<Forwarder>,
}

impl Dispatcher {
    /// A dispatcher over `registry`; with `forward`, apps with instances only at other
    /// sidecars are called there.
    pub fn new(registry: Arc<Registry>, limits: CallLimits, forward: Option<Forwarder>) -> Self {
        Self {
            registry,
            limits,
            forward,
        }
    }

    /// PreRoomCreate: Prevent, then Extend, then Modify. Returns the verdict and the final room.
    pub async fn pre_room_create(&self, mut room: Room, ctx: &CallContext) -> (Verdict, Room) {
        let mut call = self.pipeline(ctx);
        // Prevent and Extend apps see the same room: encoded once for both stages.
        let shared = room_call(&room, ctx);
        // 1. Any app may prevent the creation, all asked at once.
        call.veto(Hook::PreRoomCreatePrevent, &shared, room.r#type())
            .await;
        // 2. Additions only, merged in app order.
        if call.verdict.allowed() {
            call.extend(&mut room, &shared).await;
        }
        // 3. Changes, each app seeing the previous one's room.
        if call.verdict.allowed() {
            call.modify(&mut room).await;
        }
        (call.verdict, room)
    }

    /// A veto hook on its own (delete, join, leave).
    pub async fn prevent(
        &self,
        hook: Hook,
        payload: hook_call::Payload,
        room_type: RoomType,
        ctx: &CallContext,
    ) -> Verdict {
        let mut call = self.pipeline(ctx);
        let shared = SharedCall::encode(&payload, ctx.dry_run, &ctx.request_id, &ctx.traceparent);
        call.veto(hook, &shared, room_type).await;
        call.verdict
    }

    /// One backend call's pipeline, over the registry as it is now.
    fn pipeline<'a>(&'a self, ctx: &'a CallContext) -> Pipeline<'a> {
        Pipeline {
            registry: &self.registry,
            limits: &self.limits,
            forward: self.forward.as_ref(),
            snapshot: self.registry.snapshot(),
            ctx,
            verdict: Verdict::default(),
        }
    }
}

/// One backend call as it goes through the stages: the apps it sees (one snapshot for every
/// stage), its context and the verdict so far.
struct Pipeline<'a> {
    registry: &'a Registry,
    limits: &'a CallLimits,
    forward: Option<&'a Forwarder>,
    snapshot: Arc<Snapshot>,
    ctx: &'a CallContext,
    verdict: Verdict,
}

impl Pipeline<'_> {
    /// The apps subscribed to `hook` whose room-type filter admits `room_type`. Disabled apps
    /// are left out, except where they are essential for `hook` (then the call fails at once
    /// and the action is prevented).
    fn matching(&self, hook: Hook, room_type: RoomType) -> Vec<Arc<AppView>> {
        self.snapshot
            .subscribers(hook)
            .iter()
            .filter(|app| app.spec.room_types.matches(room_type))
            .filter(|app| app.enabled || app.spec.essential.contains(hook))
            .cloned()
            .collect()
    }

    /// Calls one app and waits for its answer.
    async fn call(&self, app: &AppView, hook: Hook, shared: &SharedCall) -> Answer {
        call_app(
            self.registry,
            self.limits,
            app,
            hook,
            shared,
            self.ctx,
            self.forward,
        )
        .instrument(app_span(app, hook))
        .await
    }

    /// Calls every app of one stage at once; the answers come back in `apps`' order.
    async fn call_all(
        &self,
        apps: &[Arc<AppView>],
        hook: Hook,
        shared: &SharedCall,
    ) -> Vec<Answer> {
        fan_out(
            apps.iter()
                .map(|app| self.call(app, hook, shared))
                .collect(),
        )
        .await
    }
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
