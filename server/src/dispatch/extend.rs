//! The Extend stage: every matching app sees the same room and is asked at once; their additions
//! merge in app order under the room rules (new keys and members only).

use roomhooks::v1::{OutcomeStatus, Room, RoomExtension};

use super::{
    Pipeline, Selected,
    call::Answer,
    rules::{ExtendMerge, Merge},
};
use crate::{apps::frame::SharedCall, hook::Hook};

impl Pipeline<'_> {
    /// Merges every Extend app's additions into `room` (`shared` carries the room as it was).
    pub(super) async fn extend(
        &mut self,
        room: &mut Room,
        shared: &SharedCall,
        selected: Selected,
    ) {
        let hook = Hook::PreRoomCreateExtend;
        let apps = self.begin(hook, selected, shared, Some(room));
        if !self.verdict.allowed() || apps.is_empty() {
            return;
        }
        let answers = self.call_all::<RoomExtension>(&apps, hook, shared).await;
        let mut merge = ExtendMerge::new(room, self.limits.max_custom_field_bytes);
        for (app, Answer { meta, result }) in apps.iter().zip(answers) {
            match result {
                Ok(extension) => {
                    let (status, detail) = match merge.apply(&app.spec.app_id, extension) {
                        Merge::Changed => (OutcomeStatus::Changed, String::new()),
                        Merge::Unchanged => (OutcomeStatus::Unchanged, String::new()),
                        Merge::Rejected(detail) => (OutcomeStatus::Rejected, detail),
                    };
                    self.verdict.record(app, hook, &meta, status, detail);
                }
                Err(failure) => self.verdict.fail(app, hook, &meta, &failure),
            }
            if !self.verdict.allowed() {
                return;
            }
        }
    }
}
