//! The Pre pipeline: one backend call runs as named stages over one registry snapshot —
//! [`veto`] (every app at once; any may prevent), [`extend`] (additions merged in app order),
//! [`modify`] (a chain in app order) — each app called through [`call`], timed out by [`alarm`],
//! its answer checked by the room [`rules`] and recorded in the [`verdict`]. Before any app is
//! called, each app's match conditions pick the apps to call; [`shadow`] apps are called on the
//! side and never change the verdict.
//! It may use apps and edge's call context; it never builds a `Status`.

pub mod alarm;
pub mod call;
mod extend;
mod modify;
pub mod rules;
mod shadow;
pub mod verdict;
mod veto;

use std::sync::Arc;

use futures_util::{StreamExt, stream::FuturesUnordered};
use roomhooks::v1::{Room, RoomType};
use tracing::Instrument;

use crate::{
    apps::{
        conditions::{Payload, PayloadRef},
        frame::SharedCall,
        registry::{AppView, Registry, Snapshot},
        rollout::Mode,
    },
    cluster::forward::Forwarder,
    dispatch::{
        call::{Answer, CallLimits, Failure, ReplyKind, call_app},
        verdict::Verdict,
    },
    edge::{
        deadline::CallContext,
        validate::{NewRoom, VetoRequest},
    },
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
    pub async fn pre_room_create(&self, room: NewRoom, ctx: &CallContext) -> (Verdict, Room) {
        let mut room = room.into_room();
        let mut call = self.pipeline(ctx);
        // 0. Match conditions, over the request's room, before any app is called.
        let [prevent, extend, modify] = call.select(
            [
                Hook::PreRoomCreatePrevent,
                Hook::PreRoomCreateExtend,
                Hook::PreRoomCreateModify,
            ],
            room.r#type(),
            PayloadRef::Room(&room),
        );
        // Prevent and Extend apps see the same room: encoded once for both stages.
        let shared = room_call(&room, ctx);
        // 1. Any app may prevent the creation, all asked at once.
        call.veto(Hook::PreRoomCreatePrevent, &shared, prevent)
            .await;
        // 2. Additions only, merged in app order.
        if call.verdict.allowed() {
            call.extend(&mut room, &shared, extend).await;
        }
        // 3. Changes, each app seeing the previous one's room.
        if call.verdict.allowed() {
            call.modify(&mut room, modify).await;
        }
        // 4. Whatever shadow apps answered by now.
        call.collect_shadows();
        (call.verdict, room)
    }

    /// A veto hook on its own (delete, join, leave).
    pub async fn prevent(&self, request: VetoRequest, ctx: &CallContext) -> Verdict {
        let mut call = self.pipeline(ctx);
        let (hook, payload) = (request.hook(), request.payload());
        let [selected] = call.select([hook], request.room_type(), PayloadRef::Call(payload));
        let shared = SharedCall::encode(payload, ctx.dry_run, &ctx.request_id, &ctx.traceparent);
        call.veto(hook, &shared, selected).await;
        call.collect_shadows();
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
            shadows: Vec::new(),
        }
    }
}

/// The apps one hook of a call will ask, once room types and match conditions have spoken.
#[derive(Default)]
struct Selected {
    /// The apps to call, in dispatch order.
    apps: Vec<Arc<AppView>>,
    /// Apps whose match condition failed at run time: their failure policy applies.
    failed: Vec<(Arc<AppView>, Failure)>,
}

/// One backend call as it goes through the stages: the apps it sees (one snapshot for every
/// stage), its context and the verdict so far.
struct Pipeline<'a> {
    registry: &'a Arc<Registry>,
    limits: &'a CallLimits,
    forward: Option<&'a Forwarder>,
    snapshot: Arc<Snapshot>,
    ctx: &'a CallContext,
    verdict: Verdict,
    /// Shadow calls started so far, reported on when the answer is ready.
    shadows: Vec<shadow::ShadowCall>,
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

    /// The apps to ask for each of `hooks`: those [`Self::matching`] whose match conditions all
    /// hold for `payload`. The payload is turned into CEL variables once, and only when some
    /// app has conditions; a skipped app is counted in its stats and gets no outcome.
    fn select<const N: usize>(
        &self,
        hooks: [Hook; N],
        room_type: RoomType,
        payload: PayloadRef<'_>,
    ) -> [Selected; N] {
        let mut variables: Option<Payload<'_>> = None;
        hooks.map(|hook| {
            let mut selected = Selected::default();
            let mut set_for = None;
            for app in self.matching(hook, room_type) {
                let conditions = &app.spec.rollout.conditions;
                if conditions.is_empty() {
                    selected.apps.push(app);
                    continue;
                }
                let variables = variables.get_or_insert_with(|| Payload::new(payload));
                if set_for != Some(hook) {
                    variables.for_hook(hook);
                    set_for = Some(hook);
                }
                match conditions.matches(variables) {
                    Ok(true) => selected.apps.push(app),
                    Ok(false) => app.stats.hook(hook).record_skip(),
                    Err(e) => selected.failed.push((app, Failure::Error(e.to_string()))),
                }
            }
            selected
        })
    }

    /// Starts a stage: applies the failure policy of apps whose condition failed, starts the
    /// shadow apps (`room`: what their answers would apply to) and returns the enforcing ones;
    /// none once the action is prevented.
    fn begin(
        &mut self,
        hook: Hook,
        selected: Selected,
        shared: &SharedCall,
        room: Option<&Room>,
    ) -> Vec<Arc<AppView>> {
        self.condition_failures(hook, selected.failed);
        if !self.verdict.allowed() {
            return Vec::new();
        }
        let (shadows, enforcing): (Vec<_>, Vec<_>) = selected
            .apps
            .into_iter()
            .partition(|app| app.spec.rollout.mode == Mode::Shadow);
        for app in &shadows {
            self.shadow(app, hook, shared, room.cloned());
        }
        enforcing
    }

    /// Applies the failure policy of apps whose match condition failed at run time (a shadow
    /// app's is only recorded).
    fn condition_failures(&mut self, hook: Hook, failed: Vec<(Arc<AppView>, Failure)>) {
        for (app, failure) in failed {
            if app.spec.rollout.mode == Mode::Shadow {
                self.shadow_failed(&app, hook, failure);
            } else {
                let meta = call::CallMeta {
                    instance: None,
                    sidecar: None,
                    elapsed: std::time::Duration::ZERO,
                };
                self.verdict.fail(&app, hook, &meta, &failure);
            }
        }
    }

    /// Calls one app and waits for its answer.
    async fn call<K: ReplyKind>(
        &self,
        app: &AppView,
        hook: Hook,
        shared: &SharedCall,
    ) -> Answer<K> {
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
    async fn call_all<K: ReplyKind>(
        &self,
        apps: &[Arc<AppView>],
        hook: Hook,
        shared: &SharedCall,
    ) -> Vec<Answer<K>> {
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

fn app_span(app: &AppView, hook: Hook) -> tracing::Span {
    tracing::debug_span!("app_call", app_id = %app.spec.app_id, hook = hook.name())
}
