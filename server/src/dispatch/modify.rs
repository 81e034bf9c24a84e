//! The Modify stage: a chain in app order, each app seeing the room the previous one left. An
//! answer that breaks the room rules is rejected and the chain goes on with the previous room;
//! an app that fails is skipped without wiping earlier changes. A change to a field outside the
//! app's `may_modify` is rejected the same way. A shadow app is asked at its place in the chain,
//! on the side, and the chain goes on without waiting for it.

use roomhooks::v1::{OutcomeStatus, Room, RoomModification};

use super::{
    Pipeline, Selected, call::Answer, room_call, rules::check_modification, shadow::guarded,
};
use crate::{
    apps::{registry::AppView, rollout::Mode},
    hook::Hook,
};

impl Pipeline<'_> {
    /// Runs the Modify chain over `room`.
    pub(super) async fn modify(&mut self, room: &mut Room, selected: Selected) {
        let hook = Hook::PreRoomCreateModify;
        self.condition_failures(hook, selected.failed);
        if !self.verdict.allowed() {
            return;
        }
        for app in selected.apps {
            let shared = room_call(room, self.ctx);
            if app.spec.rollout.mode == Mode::Shadow {
                self.shadow(&app, hook, &shared, Some(room.clone()));
                continue;
            }
            let Answer { meta, result } = self.call::<RoomModification>(&app, hook, &shared).await;
            match result {
                Ok(modification) => {
                    let (status, detail) = self.apply(&app, room, modification);
                    self.verdict.record(&app, hook, &meta, status, detail);
                }
                Err(failure) => self.verdict.fail(&app, hook, &meta, &failure),
            }
            if !self.verdict.allowed() {
                return;
            }
        }
    }

    /// Applies one app's modification to `room` if it keeps the rules; returns its outcome.
    fn apply(
        &self,
        app: &AppView,
        room: &mut Room,
        modification: RoomModification,
    ) -> (OutcomeStatus, String) {
        match modification.room {
            None => (OutcomeStatus::Unchanged, String::new()),
            Some(new) if new == *room => (OutcomeStatus::Unchanged, String::new()),
            Some(new) => match check_modification(room, &new, self.limits.max_custom_field_bytes) {
                Ok(()) => match app.spec.rollout.may_modify.refused(room, &new) {
                    Some(field) => (OutcomeStatus::Rejected, guarded(app, &field)),
                    None => {
                        *room = new;
                        (OutcomeStatus::Changed, String::new())
                    }
                },
                Err(why) => (OutcomeStatus::Rejected, why),
            },
        }
    }
}
