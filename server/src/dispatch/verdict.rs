//! The aggregated answer of one backend call: every app's outcome, every veto, and the failure
//! policy applied to apps that gave no usable answer.

use roomhooks::v1::{AppOutcome, OutcomeStatus, Prevention, PreventionReason, Warning};

use crate::{
    apps::registry::AppView,
    apps::spec::FailurePolicy,
    apps::stats::PolicyEffect,
    dispatch::call::{CallMeta, Failure},
    hook::Hook,
};

/// What the chat user is shown when a FAIL or essential app cannot answer, unless the operator
/// set `[apps.<id>] unavailable_message`.
pub const DEFAULT_UNAVAILABLE_MESSAGE: &str =
    "This action is temporarily unavailable. Please try again later.";

/// Outcomes and vetoes collected so far, in call order.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Every veto, in app order.
    pub preventions: Vec<Prevention>,
    /// Every app call's outcome, in call order (shadow apps last).
    pub outcomes: Vec<AppOutcome>,
    /// Every warning for the user, in app order.
    pub warnings: Vec<Warning>,
}

impl Verdict {
    /// Whether no app prevented the action.
    pub fn allowed(&self) -> bool {
        self.preventions.is_empty()
    }

    /// Records an app call's outcome.
    pub fn record(
        &mut self,
        app: &AppView,
        hook: Hook,
        meta: &CallMeta,
        status: OutcomeStatus,
        detail: String,
    ) {
        self.record_with(app, hook, meta, status, detail, PolicyEffect::None);
    }

    /// Records a warning an app gave with its answer.
    pub fn warn(&mut self, app: &AppView, hook: Hook, message: String) {
        self.warnings.push(Warning {
            app_id: app.spec.app_id.as_str().to_owned(),
            hook: hook.to_wire() as i32,
            message,
        });
    }

    /// Adds an outcome already recorded in the app's stats (a shadow call's).
    pub fn push_outcome(&mut self, outcome: AppOutcome) {
        self.outcomes.push(outcome);
    }

    fn record_with(
        &mut self,
        app: &AppView,
        hook: Hook,
        meta: &CallMeta,
        status: OutcomeStatus,
        detail: String,
        effect: PolicyEffect,
    ) {
        app.stats.hook(hook).record(status, meta.elapsed, effect);
        self.outcomes.push(outcome(app, hook, meta, status, detail));
    }

    /// Records an app's veto.
    pub fn prevent(&mut self, app: &AppView, hook: Hook, meta: &CallMeta, message: String) {
        let spec = &app.spec;
        let message = if message.is_empty() {
            format!("The app {} prevented {}.", spec.app_id, action(hook))
        } else {
            message
        };
        self.record(app, hook, meta, OutcomeStatus::Prevented, message.clone());
        self.preventions.push(Prevention {
            app_id: spec.app_id.as_str().to_owned(),
            hook: hook.to_wire() as i32,
            message,
            reason: PreventionReason::AppPrevented as i32,
        });
    }

    /// Records an app that gave no usable answer, applying its failure policy.
    pub fn fail(&mut self, app: &AppView, hook: Hook, meta: &CallMeta, failure: &Failure) {
        let spec = &app.spec;
        let status = match failure {
            Failure::Timeout(_) => OutcomeStatus::Timeout,
            Failure::Unavailable(_) => OutcomeStatus::Unavailable,
            Failure::Error(_) => OutcomeStatus::Error,
        };
        match spec.policy_for(hook) {
            FailurePolicy::Ignore => {
                let effect = if hook.stage() == crate::hook::Stage::Veto {
                    "no objection"
                } else {
                    "no change"
                };
                let detail = format!("{failure}; failure policy IGNORE: counted as {effect}");
                self.record_with(app, hook, meta, status, detail, PolicyEffect::FailOpen);
            }
            FailurePolicy::Fail => {
                let why = if spec.essential.contains(hook) {
                    "essential app"
                } else {
                    "failure policy FAIL"
                };
                let detail = format!("{failure}; {why}: {} prevented", action(hook));
                self.record_with(app, hook, meta, status, detail, PolicyEffect::FailClosed);
                // The message is for the chat user; the app and the failure are in the
                // outcome's detail and the log.
                let message = spec
                    .unavailable_message
                    .as_deref()
                    .unwrap_or(DEFAULT_UNAVAILABLE_MESSAGE);
                self.preventions.push(Prevention {
                    app_id: spec.app_id.as_str().to_owned(),
                    hook: hook.to_wire() as i32,
                    message: message.to_owned(),
                    reason: PreventionReason::AppUnavailable as i32,
                });
            }
        }
    }
}

/// One app call's outcome on the wire.
pub fn outcome(
    app: &AppView,
    hook: Hook,
    meta: &CallMeta,
    status: OutcomeStatus,
    detail: String,
) -> AppOutcome {
    AppOutcome {
        app_id: app.spec.app_id.as_str().to_owned(),
        instance_id: meta
            .instance
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default(),
        hook: hook.to_wire() as i32,
        status: status as i32,
        duration_us: u64::try_from(meta.elapsed.as_micros()).unwrap_or(u64::MAX),
        detail,
        sidecar_id: meta.sidecar.as_deref().unwrap_or_default().to_owned(),
    }
}

/// The action a hook guards, for messages.
pub fn action(hook: Hook) -> &'static str {
    match hook {
        Hook::PreRoomCreatePrevent | Hook::PreRoomCreateExtend | Hook::PreRoomCreateModify => {
            "the room creation"
        }
        Hook::PreRoomDeletePrevent => "the room deletion",
        Hook::PreRoomUserJoined => "the user joining the room",
        Hook::PreRoomUserLeave => "the user leaving the room",
        Hook::PostRoomCreate
        | Hook::PostRoomDeleted
        | Hook::PostRoomUserJoined
        | Hook::PostRoomUserLeave => "the notification",
    }
}
