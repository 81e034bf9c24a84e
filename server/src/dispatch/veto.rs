//! The veto stage (create-prevent, delete-prevent, user-joined, user-leave): every matching app
//! is asked at once, so the stage takes as long as the slowest app; any veto prevents.

use roomhooks::v1::{OutcomeStatus, RoomType};

use super::{Pipeline, call::Answer, call::Reply};
use crate::{apps::frame::SharedCall, hook::Hook};

impl Pipeline<'_> {
    /// Asks every app subscribed to `hook` (and matching `room_type`) whether to prevent.
    pub(super) async fn veto(&mut self, hook: Hook, shared: &SharedCall, room_type: RoomType) {
        let apps = self.matching(hook, room_type);
        if apps.is_empty() {
            return;
        }
        let answers = self.call_all(&apps, hook, shared).await;
        for (app, Answer { meta, result }) in apps.iter().zip(answers) {
            match result {
                Ok(Reply::Decision(d)) if d.prevent => {
                    self.verdict.prevent(app, hook, &meta, d.message);
                }
                Ok(_) => {
                    self.verdict
                        .record(app, hook, &meta, OutcomeStatus::Allowed, String::new())
                }
                Err(failure) => self.verdict.fail(app, hook, &meta, &failure),
            }
        }
    }
}
