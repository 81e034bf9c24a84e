//! The Modify stage: a chain in app order, each app seeing the room the previous one left. An
//! answer that breaks the room rules is rejected and the chain goes on with the previous room;
//! an app that fails is skipped without wiping earlier changes.

use roomhooks::v1::{OutcomeStatus, Room, RoomModification};

use super::{
    Pipeline,
    call::{Answer, Reply},
    room_call,
    rules::check_modification,
    wrong_kind,
};
use crate::hook::Hook;

impl Pipeline<'_> {
    /// Runs the Modify chain over `room`.
    pub(super) async fn modify(&mut self, room: &mut Room) {
        let hook = Hook::PreRoomCreateModify;
        for app in self.matching(hook, room.r#type()) {
            let shared = room_call(room, self.ctx);
            let Answer { meta, result } = self.call(&app, hook, &shared).await;
            match result {
                Ok(Reply::Modification(modification)) => {
                    let (status, detail) = self.apply(room, modification);
                    self.verdict.record(&app, hook, &meta, status, detail);
                }
                Ok(other) => self.verdict.fail(&app, hook, &meta, &wrong_kind(&other)),
                Err(failure) => self.verdict.fail(&app, hook, &meta, &failure),
            }
            if !self.verdict.allowed() {
                return;
            }
        }
    }

    /// Applies one app's modification to `room` if it keeps the rules; returns its outcome.
    fn apply(&self, room: &mut Room, modification: RoomModification) -> (OutcomeStatus, String) {
        match modification.room {
            None => (OutcomeStatus::Unchanged, String::new()),
            Some(new) if new == *room => (OutcomeStatus::Unchanged, String::new()),
            Some(new) => match check_modification(room, &new, self.limits.max_custom_field_bytes) {
                Ok(()) => {
                    *room = new;
                    (OutcomeStatus::Changed, String::new())
                }
                Err(why) => (OutcomeStatus::Rejected, why),
            },
        }
    }
}
