//! One session with the sidecar (one `Connect` stream): register, then answer calls concurrently
//! and post events in order, until the stream ends or the app shuts down.

use std::{
    collections::HashMap, future::Future, panic::AssertUnwindSafe, sync::Arc, time::Duration,
};

use futures_util::FutureExt;
use roomhooks::v1::{
    AppError, AppMessage, HookCall, HookInterface, HookResult, PostEvent, PostEventAck,
    PreventDecision, Registered, RoomModification, RuntimeMessage, app_message::Msg as Up,
    app_runtime_client::AppRuntimeClient, hook_call::Payload as CallPayload,
    hook_result::Result as Answer, post_event::Payload as EventPayload,
    runtime_message::Msg as Down,
};
use tokio::{
    sync::{mpsc, watch},
    task::{AbortHandle, JoinSet},
    time::Instant,
};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::{
    SdkError,
    answer::{Extension, HookError, Modification, Veto},
    app::App,
    connection::Link,
    context::{HookContext, PostContext},
    handler::Handlers,
};

/// Messages waiting to go up to the sidecar, at most.
const UPLINK_CAPACITY: usize = 1024;
/// Post events waiting for the in-order worker, at most (above the sidecar's default window of
/// 1024 in flight, so a full window never overflows it).
const POST_BACKLOG: usize = 4096;

/// How a session ended.
pub(crate) enum SessionEnd {
    /// The app was asked to stop and drained.
    Shutdown,
    /// The connection dropped.
    Disconnected {
        /// Whether the sidecar had accepted the registration.
        was_registered: bool,
    },
}

#[derive(Debug)]
struct Identity {
    app_id: String,
    instance_id: String,
}

/// Runs one session: a stream on a new connection or on the shared one.
pub(crate) async fn run(
    app: &App,
    link: &Link,
    shutdown: &CancellationToken,
    registered: &watch::Sender<Option<String>>,
) -> Result<SessionEnd, SdkError> {
    let channel = link.channel().await?;
    let mut client = AppRuntimeClient::new(channel);
    let (uplink, uplink_rx) = mpsc::channel::<AppMessage>(UPLINK_CAPACITY);
    let register = AppMessage {
        msg: Some(Up::Register(app.register_message())),
    };
    uplink
        .try_send(register)
        .map_err(|_| SdkError::Protocol("could not queue Register".into()))?;
    let mut request = tonic::Request::new(ReceiverStream::new(uplink_rx));
    if let Some(token) = &app.options.token {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| SdkError::Protocol("the app token is not valid in a header".into()))?;
        request.metadata_mut().insert("authorization", value);
    }
    let mut inbound = client
        .connect(request)
        .await
        .map_err(SdkError::Refused)?
        .into_inner();
    let Registered {
        app_id,
        instance_id,
    } = match inbound.message().await.map_err(SdkError::Refused)? {
        Some(RuntimeMessage {
            msg: Some(Down::Registered(r)),
        }) => r,
        Some(_) => {
            return Err(SdkError::Protocol(
                "the sidecar did not answer Register with Registered".into(),
            ));
        }
        None => {
            return Ok(SessionEnd::Disconnected {
                was_registered: false,
            });
        }
    };
    tracing::info!(%app_id, %instance_id, "registered with the sidecar");
    registered.send_replace(Some(instance_id.clone()));
    let identity = Arc::new(Identity {
        app_id,
        instance_id,
    });

    let (post_tx, post_rx) = mpsc::channel(POST_BACKLOG);
    let mut workers = JoinSet::new();
    workers.spawn(post_worker(
        app.handlers.clone(),
        post_rx,
        uplink.clone(),
        Arc::clone(&identity),
    ));
    let mut calls = Calls::default();
    let mut draining_until: Option<Instant> = None;

    loop {
        if let Some(until) = draining_until
            && (calls.is_empty() || Instant::now() >= until)
        {
            if !calls.is_empty() {
                tracing::warn!(app_id = %identity.app_id, left = calls.len(),
                    "drain timeout passed with calls still running; abandoning them");
            }
            return Ok(leave(inbound, uplink, workers, calls).await);
        }
        let drain_tick = async {
            match draining_until {
                Some(until) => tokio::time::sleep_until(until).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled(), if draining_until.is_none() => {
                tracing::info!(app_id = %identity.app_id, in_flight = calls.len(), "draining before shutdown");
                draining_until = Some(Instant::now() + app.options.drain_timeout);
            }
            () = drain_tick => {}
            Some(done) = calls.set.join_next_with_id(), if !calls.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(err) => err.id(),
                };
                calls.finished(id);
            }
            next = inbound.message() => {
                let message = match next {
                    Ok(Some(RuntimeMessage { msg: Some(message) })) => message,
                    Ok(Some(RuntimeMessage { msg: None })) => continue,
                    Ok(None) => return Ok(SessionEnd::Disconnected { was_registered: true }),
                    Err(status) => {
                        tracing::info!(app_id = %identity.app_id, "stream ended: {}", status.message());
                        return Ok(SessionEnd::Disconnected { was_registered: true });
                    }
                };
                match message {
                    Down::Call(call) => {
                        let refuse = if draining_until.is_some() {
                            Some("the app instance is shutting down")
                        } else if calls.len() >= app.options.max_concurrent_calls {
                            Some("the app instance is at its max_concurrent_calls")
                        } else {
                            None
                        };
                        match refuse {
                            Some(why) => {
                                let _ = uplink.try_send(result(call.call_id, error(why)));
                            }
                            None => calls.start(call, &app.handlers, &uplink, &identity),
                        }
                    }
                    Down::Cancel(cancel) => calls.cancel(cancel.call_id),
                    Down::PostEvent(event) => {
                        if draining_until.is_none() && post_tx.try_send(event).is_err() {
                            tracing::warn!(app_id = %identity.app_id,
                                "post-event backlog full; the event will be redelivered");
                        }
                    }
                    Down::Heartbeat(beat) => {
                        let ack = AppMessage {
                            msg: Some(Up::HeartbeatAck(roomhooks::v1::HeartbeatAck { nonce: beat.nonce })),
                        };
                        // A full uplink means the sidecar is not reading; it will notice either way.
                        let _ = uplink.try_send(ack);
                    }
                    Down::Registered(_) => {}
                }
            }
        }
    }
}

/// How long a leaving instance waits for the sidecar to end its stream after closing its side.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Leaves gracefully: closes this instance's send side (once every task holding it has stopped),
/// so the sidecar retries anything still in flight on siblings and ends the stream with OK; then
/// waits briefly for that end, so the close reaches the sidecar before the process exits rather
/// than the connection being cut.
async fn leave(
    mut inbound: tonic::Streaming<RuntimeMessage>,
    uplink: mpsc::Sender<AppMessage>,
    mut workers: JoinSet<()>,
    mut calls: Calls,
) -> SessionEnd {
    workers.abort_all();
    calls.set.abort_all();
    while workers.join_next().await.is_some() {}
    while calls.set.join_next().await.is_some() {}
    drop(uplink);
    let _ = tokio::time::timeout(LEAVE_TIMEOUT, async {
        while let Ok(Some(_)) = inbound.message().await {}
    })
    .await;
    SessionEnd::Shutdown
}

/// The calls running now, by call id and by task id.
#[derive(Default)]
struct Calls {
    set: JoinSet<()>,
    by_call: HashMap<u64, AbortHandle>,
    by_task: HashMap<tokio::task::Id, u64>,
}

impl Calls {
    fn len(&self) -> usize {
        self.by_call.len()
    }

    fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Runs a call's handler. A handler that finishes on its first poll (no `.await` that
    /// waits) is answered at once; one that waits becomes a task, cancellable by `CancelCall`
    /// and cut off at the call's deadline.
    fn start(
        &mut self,
        call: HookCall,
        handlers: &Handlers,
        uplink: &mpsc::Sender<AppMessage>,
        identity: &Arc<Identity>,
    ) {
        let call_id = call.call_id;
        let timeout = call
            .timeout
            .and_then(|t| Duration::try_from(t).ok())
            .unwrap_or(Duration::from_secs(30));
        let deadline = Instant::now() + timeout;
        let handlers = handlers.clone();
        let identity = Arc::clone(identity);
        let mut answered = Box::pin(async move {
            AssertUnwindSafe(answer(&handlers, call, deadline, &identity))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| error("the handler panicked"))
        });
        let mut first_poll = std::task::Context::from_waker(std::task::Waker::noop());
        if let std::task::Poll::Ready(answer) = answered.as_mut().poll(&mut first_poll) {
            match uplink.try_send(result(call_id, answer)) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(message)) => {
                    // The uplink is backed up: wait for room in a task, as a slow call would.
                    let uplink = uplink.clone();
                    self.spawn(call_id, async move {
                        let _ = uplink.send(message).await;
                    });
                    return;
                }
            }
        }
        let uplink = uplink.clone();
        self.spawn(call_id, async move {
            // Past the deadline the sidecar no longer waits: send nothing.
            if let Ok(answer) = tokio::time::timeout_at(deadline, answered).await {
                let _ = uplink.send(result(call_id, answer)).await;
            }
        });
    }

    fn spawn(&mut self, call_id: u64, task: impl Future<Output = ()> + Send + 'static) {
        let abort = self.set.spawn(task);
        self.by_task.insert(abort.id(), call_id);
        self.by_call.insert(call_id, abort);
    }

    fn cancel(&mut self, call_id: u64) {
        if let Some(abort) = self.by_call.remove(&call_id) {
            abort.abort();
        }
    }

    fn finished(&mut self, task: tokio::task::Id) {
        if let Some(call_id) = self.by_task.remove(&task) {
            self.by_call.remove(&call_id);
        }
    }
}

fn result(call_id: u64, answer: Answer) -> AppMessage {
    AppMessage {
        msg: Some(Up::Result(HookResult {
            call_id,
            result: Some(answer),
        })),
    }
}

fn error(message: impl Into<String>) -> Answer {
    Answer::Error(AppError {
        message: message.into(),
    })
}

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

fn missing(hook: HookInterface) -> Answer {
    error(format!(
        "this app has no handler for {}",
        hook.as_str_name()
    ))
}

/// Runs the handler for one call and turns its outcome into an answer.
async fn answer(handlers: &Handlers, call: HookCall, deadline: Instant, id: &Identity) -> Answer {
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
        async fn post_handle(
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

/// Handles post events one at a time, in delivery order; acknowledges each after its handler
/// returns `Ok`.
async fn post_worker(
    handlers: Handlers,
    mut events: mpsc::Receiver<PostEvent>,
    uplink: mpsc::Sender<AppMessage>,
    id: Arc<Identity>,
) {
    while let Some(event) = events.recv().await {
        let hook = HookInterface::try_from(event.hook).unwrap_or(HookInterface::Unspecified);
        let ctx = PostContext {
            event_id: event.event_id.clone(),
            hook,
            attempt: event.attempt,
            app_id: id.app_id.clone(),
            instance_id: id.instance_id.clone(),
        };
        let handled = AssertUnwindSafe(post_handle(&handlers, hook, event.payload, ctx))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(HookError::Failed("the post handler panicked".into())));
        match handled {
            Ok(()) => {
                let ack = AppMessage {
                    msg: Some(Up::PostAck(PostEventAck {
                        event_id: event.event_id,
                    })),
                };
                if uplink.send(ack).await.is_err() {
                    return;
                }
            }
            Err(err) => tracing::warn!(app_id = %id.app_id, event_id = %event.event_id,
                "post handler failed: {err}; not acknowledged, the sidecar will redeliver it"),
        }
    }
}
