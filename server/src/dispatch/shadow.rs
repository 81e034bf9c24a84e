//! Shadow apps (`[apps.<id>] mode = "shadow"`): called as usual, at the same point of the
//! pipeline as an enforcing app would be, but on a background task the backend never waits for.
//! When the backend's answer is ready, each shadow call that has ended adds its outcome
//! (SHADOWED, `detail` saying what it would have done); one still running is reported as "timed
//! out in shadow". Either way, once it ends, its answer is counted in the app's stats
//! (`Admin.ListApps`) and, when it would have changed the verdict or the room, in
//! `roomhooks_app_shadow_disagreements_total`.

use std::sync::Arc;

use roomhooks::v1::{AppOutcome, OutcomeStatus, Room, RoomExtension, RoomModification};
use tokio::{sync::oneshot, time::Instant};
use tracing::Instrument;

use super::{
    Pipeline, app_span,
    call::{Answer, CallMeta, Failure, Reply, call_app},
    rules::{ExtendMerge, Merge, check_modification},
    verdict::{action, outcome},
};
use crate::{
    apps::{frame::SharedCall, registry::AppView, spec::FailurePolicy, stats::PolicyEffect},
    hook::Hook,
};

/// A shadow call the pipeline started and will report on.
pub(super) struct ShadowCall {
    app: Arc<AppView>,
    hook: Hook,
    started: Instant,
    done: oneshot::Receiver<AppOutcome>,
}

impl Pipeline<'_> {
    /// Starts a shadow call of `app` on `hook`. `room` is the room the app's answer would apply
    /// to (Extend and Modify; `None` for veto hooks).
    pub(super) fn shadow(
        &mut self,
        app: &Arc<AppView>,
        hook: Hook,
        shared: &SharedCall,
        room: Option<Room>,
    ) {
        let (tx, done) = oneshot::channel();
        let registry = Arc::clone(self.registry);
        let limits = *self.limits;
        let ctx = self.ctx.clone();
        let shared = shared.clone();
        let called = Arc::clone(app);
        let forward = self.forward.cloned();
        let span = app_span(app, hook);
        self.registry.tasks().spawn(
            async move {
                let Answer { meta, result } = call_app::<Reply>(
                    &registry,
                    &limits,
                    &called,
                    hook,
                    &shared,
                    &ctx,
                    forward.as_ref(),
                )
                .await;
                let judged = judge(&called, hook, result, room, limits.max_custom_field_bytes);
                let _ = tx.send(record(&called, hook, &meta, judged));
            }
            .instrument(span),
        );
        self.shadows.push(ShadowCall {
            app: Arc::clone(app),
            hook,
            started: Instant::now(),
            done,
        });
    }

    /// Records a shadow app that could not be called (its match condition failed).
    pub(super) fn shadow_failed(&mut self, app: &AppView, hook: Hook, failure: Failure) {
        let meta = CallMeta {
            instance: None,
            sidecar: None,
            elapsed: std::time::Duration::ZERO,
        };
        let judged = judge(app, hook, Err(failure), None, 0);
        let outcome = record(app, hook, &meta, judged);
        self.verdict.push_outcome(outcome);
    }

    /// Adds the outcome of every shadow call: its answer if it ended, "timed out in shadow" if
    /// it is still running (it goes on, and is counted when it ends).
    pub(super) fn collect_shadows(&mut self) {
        for mut call in std::mem::take(&mut self.shadows) {
            let outcome = call.done.try_recv().unwrap_or_else(|_| {
                let meta = CallMeta {
                    instance: None,
                    sidecar: None,
                    elapsed: call.started.elapsed(),
                };
                outcome(
                    &call.app,
                    call.hook,
                    &meta,
                    OutcomeStatus::Shadowed,
                    "timed out in shadow: no answer before the enforcing apps'; the backend did \
                     not wait (the answer is counted in Admin.ListApps when it comes)"
                        .to_owned(),
                )
            });
            self.verdict.push_outcome(outcome);
        }
    }
}

/// What a shadow answer would have done, and whether that would have changed the verdict or
/// the room.
struct Judged {
    detail: String,
    disagrees: bool,
}

impl Judged {
    fn new(detail: String, disagrees: bool) -> Self {
        Self { detail, disagrees }
    }
}

/// Counts a judged shadow answer in the app's stats and returns its outcome.
fn record(app: &AppView, hook: Hook, meta: &CallMeta, judged: Judged) -> AppOutcome {
    let stats = app.stats.hook(hook);
    stats.record(OutcomeStatus::Shadowed, meta.elapsed, PolicyEffect::None);
    if judged.disagrees {
        stats.record_disagreement();
    }
    outcome(app, hook, meta, OutcomeStatus::Shadowed, judged.detail)
}

/// What `result` would have done, had the app been enforcing.
fn judge(
    app: &AppView,
    hook: Hook,
    result: Result<Reply, Failure>,
    room: Option<Room>,
    max_field_bytes: usize,
) -> Judged {
    let would = Judged::new;
    match result {
        Ok(Reply::Decision(d)) if d.prevent => {
            would(format!("would have prevented: {}", d.message), true)
        }
        Ok(Reply::Decision(d)) if !d.warning.is_empty() => would(
            format!("would have allowed with the warning: {}", d.warning),
            false,
        ),
        Ok(Reply::Decision(_)) => would("would have allowed".into(), false),
        Ok(Reply::Extension(extension)) => {
            would_extend(app, room.unwrap_or_default(), extension, max_field_bytes)
        }
        Ok(Reply::Modification(modification)) => would_modify(
            app,
            &room.unwrap_or_default(),
            modification,
            max_field_bytes,
        ),
        Err(failure) => match app.spec.policy_for(hook) {
            FailurePolicy::Fail => would(
                format!(
                    "{failure}; failure policy FAIL: would have prevented {}",
                    action(hook)
                ),
                true,
            ),
            FailurePolicy::Ignore => would(
                format!("{failure}; failure policy IGNORE: would have counted as no objection"),
                false,
            ),
        },
    }
}

/// What an Extend answer would have added to `room`.
fn would_extend(
    app: &AppView,
    mut room: Room,
    extension: RoomExtension,
    max_field_bytes: usize,
) -> Judged {
    let keys: Vec<String> = extension
        .custom_fields
        .as_ref()
        .map(|f| f.fields.keys().cloned().collect())
        .unwrap_or_default();
    let members = extension.member_usernames.clone();
    match ExtendMerge::new(&mut room, max_field_bytes).apply(&app.spec.app_id, extension) {
        Merge::Changed => {
            let mut added: Vec<String> = keys
                .iter()
                .map(|k| format!("custom field {k}"))
                .chain(members.iter().map(|m| format!("member {m}")))
                .collect();
            added.sort();
            Judged::new(format!("would have added {}", added.join(", ")), true)
        }
        Merge::Unchanged => Judged::new("would have changed nothing".into(), false),
        Merge::Rejected(why) => Judged::new(format!("would have been rejected: {why}"), false),
    }
}

/// What a Modify answer would have changed in `room`, or why it would have been refused.
fn would_modify(
    app: &AppView,
    room: &Room,
    modification: RoomModification,
    max_field_bytes: usize,
) -> Judged {
    let Some(new) = modification.room.filter(|new| new != room) else {
        return Judged::new("would have changed nothing".into(), false);
    };
    let refused = check_modification(room, &new, max_field_bytes)
        .err()
        .or_else(|| {
            app.spec
                .rollout
                .may_modify
                .refused(room, &new)
                .map(|field| guarded(app, &field))
        });
    match refused {
        Some(why) => Judged::new(format!("would have been rejected: {why}"), false),
        None => Judged::new(
            format!(
                "would have changed {}",
                crate::apps::rollout::changed_fields(room, &new).join(", ")
            ),
            true,
        ),
    }
}

/// The detail of a Modify answer that changed a field outside the app's `may_modify`.
pub(super) fn guarded(app: &AppView, field: &str) -> String {
    format!(
        "room.{field} may not be changed by app {} ([apps.{}] may_modify in the sidecar's \
         config); the chain continues with the previous room",
        app.spec.app_id, app.spec.app_id
    )
}
