//! The veto stage (create-prevent, delete-prevent, user-joined, user-leave): every selected app
//! is asked at once, so the stage takes as long as the slowest enforcing app; any veto prevents.
//! An answer may carry a warning for the user, passed on whether or not the app prevented.

use roomhooks::v1::{OutcomeStatus, PreventDecision};

use super::{Pipeline, Selected, call::Answer};
use crate::{apps::frame::SharedCall, hook::Hook};

impl Pipeline<'_> {
    /// Asks every app `selected` for `hook` whether to prevent.
    pub(super) async fn veto(&mut self, hook: Hook, shared: &SharedCall, selected: Selected) {
        let apps = self.begin(hook, selected, shared, None);
        if apps.is_empty() {
            return;
        }
        let answers = self.call_all::<PreventDecision>(&apps, hook, shared).await;
        for (app, Answer { meta, result }) in apps.iter().zip(answers) {
            match result {
                Ok(d) => {
                    if !d.warning.is_empty() {
                        self.verdict.warn(app, hook, d.warning);
                    }
                    if d.prevent {
                        self.verdict.prevent(app, hook, &meta, d.message);
                    } else {
                        self.verdict.record(
                            app,
                            hook,
                            &meta,
                            OutcomeStatus::Allowed,
                            String::new(),
                        );
                    }
                }
                Err(failure) => self.verdict.fail(app, hook, &meta, &failure),
            }
        }
    }
}
