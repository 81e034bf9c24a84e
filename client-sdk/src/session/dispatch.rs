//! From a call or event to its handler, and from the handler's outcome to the wire answer. The
//! per-hook dispatch is generated from the one hook list ([`roomhooks::with_hooks`]).

use roomhooks::v1::{
    AppError, AppMessage, HookCall, HookInterface, HookResult, PreventDecision, RoomModification,
    app_message::Msg as Up, hook_call::Payload as CallPayload, hook_result::Result as Answer,
    post_event::Payload as EventPayload,
};
use tokio::time::Instant;

use super::Identity;
use crate::{
    answer::{Extension, HookError, Modification, Veto},
    context::{HookContext, PostContext},
    handler::Handlers,
};

/// The message carrying `answer` to call `call_id`.
pub(super) fn result(call_id: u64, answer: Answer) -> AppMessage {
    AppMessage {
        msg: Some(Up::Result(HookResult {
            call_id,
            result: Some(answer),
        })),
    }
}

/// An error answer with this message.
pub(super) fn error(message: impl Into<String>) -> Answer {
    Answer::Error(AppError {
        message: message.into(),
    })
}

/// The answer of a veto handler's outcome.
fn decision(veto: Result<Veto, HookError>) -> Answer {
    match veto {
        Ok(Veto::Allow) => Answer::Decision(PreventDecision::default()),
        Ok(Veto::Warn(warning)) => Answer::Decision(PreventDecision {
            warning,
            ..Default::default()
        }),
        Ok(Veto::Prevent(message)) | Err(HookError::UserNotAllowed(message)) => {
            Answer::Decision(PreventDecision {
                prevent: true,
                message,
                ..Default::default()
            })
        }
        Err(HookError::Failed(message)) => error(message),
    }
}

/// The error for a call to a hook this app has no handler for.
fn missing(hook: HookInterface) -> Answer {
    error(format!(
        "this app has no handler for {}",
        hook.as_str_name()
    ))
}

/// Runs the handler for one call and turns its outcome into an answer.
pub(super) async fn answer(
    handlers: &Handlers,
    call: HookCall,
    deadline: Instant,
    id: &Identity,
) -> Answer {
    let hook = HookInterface::try_from(call.hook).unwrap_or(HookInterface::Unspecified);
    let ctx = HookContext {
        call_id: call.call_id,
        hook,
        request_id: call.request_id,
        dry_run: call.dry_run,
        deadline,
        traceparent: call.traceparent,
        app_id: id.app_id.clone(),
        instance_id: id.instance_id.clone(),
    };
    pre_answer(handlers, hook, call.payload, ctx).await
}

/// What a Pre handler's result answers.
trait IntoAnswer {
    /// The answer sent back to the sidecar.
    fn into_answer(self) -> Answer;
}

impl IntoAnswer for Result<Veto, HookError> {
    fn into_answer(self) -> Answer {
        decision(self)
    }
}

impl IntoAnswer for Result<(), HookError> {
    /// A join or leave veto: `Ok` allows, `UserNotAllowed` prevents.
    fn into_answer(self) -> Answer {
        decision(self.map(|()| Veto::Allow))
    }
}

impl IntoAnswer for Result<Extension, HookError> {
    fn into_answer(self) -> Answer {
        match self {
            Ok(extension) => Answer::Extension(extension.into_wire()),
            Err(e) => error(e.to_string()),
        }
    }
}

impl IntoAnswer for Result<Modification, HookError> {
    fn into_answer(self) -> Answer {
        let room = match self {
            Ok(Modification::Unchanged) => None,
            Ok(Modification::Changed(room)) => Some(room),
            Err(e) => return error(e.to_string()),
        };
        Answer::Modification(RoomModification { room })
    }
}

/// One hook's arm of [`pre_answer`]: run its handler, or say it has none. Post hooks are never
/// called, so their payload does not fit a `HookCall`.
macro_rules! pre_arm {
    (Post, $slot:expr, $ctx:ident, $input:ident, $hook:ident) => {{
        let _ = ($ctx, $input);
        misfit("HookCall", $hook)
    }};
    ($stage:ident, $slot:expr, $ctx:ident, $input:ident, $hook:ident) => {
        match &$slot {
            Some(h) => h($ctx, $input).await.into_answer(),
            None => missing($hook),
        }
    };
}

/// One hook's arm of [`post_handle`]: run its handler (no handler acknowledges). A Pre hook's
/// payload does not fit a `PostEvent`.
macro_rules! post_arm {
    (Post, $slot:expr, $ctx:ident, $input:ident, $hook:ident) => {
        match &$slot {
            Some(h) => h($ctx, $input).await,
            None => Ok(()),
        }
    };
    ($stage:ident, $slot:expr, $ctx:ident, $input:ident, $hook:ident) => {{
        let _ = ($ctx, $input);
        Err(HookError::Failed(format!(
            "PostEvent for {} carried a payload that does not fit it",
            $hook.as_str_name()
        )))
    }};
}

/// Generates the dispatch of calls and events to their handlers from the one hook list
/// ([`roomhooks::with_hooks`]).
macro_rules! dispatch {
    ($($name:ident, $snake:ident, $stage:ident, $variant:ident, $payload:ident, $doc:literal;)*) => {
        /// Runs the Pre handler for `hook` on `payload`.
        async fn pre_answer(
            handlers: &Handlers,
            hook: HookInterface,
            payload: Option<CallPayload>,
            ctx: HookContext,
        ) -> Answer {
            match (hook, payload) {
                $(
                    (HookInterface::$name, Some(CallPayload::$variant(input))) => {
                        pre_arm!($stage, handlers.$snake, ctx, input, hook)
                    }
                )*
                (hook, _) => misfit("HookCall", hook),
            }
        }

        /// Runs the post handler for `hook` on `payload`; `Ok` acknowledges the event.
        pub(super) async fn post_handle(
            handlers: &Handlers,
            hook: HookInterface,
            payload: Option<EventPayload>,
            ctx: PostContext,
        ) -> Result<(), HookError> {
            match (hook, payload) {
                $(
                    (HookInterface::$name, Some(EventPayload::$variant(input))) => {
                        post_arm!($stage, handlers.$snake, ctx, input, hook)
                    }
                )*
                (hook, _) => Err(HookError::Failed(format!(
                    "PostEvent for {} carried a payload that does not fit it",
                    hook.as_str_name()
                ))),
            }
        }
    };
}

roomhooks::with_hooks!(dispatch);

/// The error for a call whose payload does not fit its hook.
fn misfit(what: &str, hook: HookInterface) -> Answer {
    error(format!(
        "{what} for {} carried a payload that does not fit it",
        hook.as_str_name()
    ))
}
