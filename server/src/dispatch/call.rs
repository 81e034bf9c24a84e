//! One app call: pick the least-loaded live instance, send, wait until the app's timeout (capped
//! by the backend's deadline), retry on a sibling if the instance vanished, and check the answer
//! is of the kind the hook needs.

use std::{sync::Arc, time::Duration};

use roomhooks::v1::{PreventDecision, RoomExtension, RoomModification, hook_result};
use tokio::time::Instant;

use crate::{
    apps::frame::SharedCall,
    apps::instance::{CallEnd, Instance, SendError},
    apps::registry::{AppView, Registry},
    cluster::forward::Forwarder,
    edge::deadline::CallContext,
    hook::{Hook, Stage},
    ids::InstanceId,
};

/// Limits that shape one app call (`Config::calls`; `Default` is a blank, zeros).
#[derive(Clone, Copy, Debug, Default)]
pub struct CallLimits {
    /// Calls one instance may have in flight; beyond it siblings or the failure policy take over.
    pub max_in_flight_per_instance: u32,
    /// When an instance that keeps timing out is taken out of rotation.
    pub ejection: crate::apps::instance::Ejection,
    /// Largest encoded `custom_fields` an Extend or Modify answer may leave in the room.
    pub max_custom_field_bytes: usize,
}

/// A well-formed answer of whichever kind its hook needs (for calls that serve any hook: shadow
/// calls and calls forwarded from another sidecar).
#[allow(clippy::large_enum_variant)] // moved once from the wire into the verdict, never stored
#[derive(Debug)]
pub enum Reply {
    /// A veto hook's answer.
    Decision(PreventDecision),
    /// An Extend answer.
    Extension(RoomExtension),
    /// A Modify answer.
    Modification(RoomModification),
}

impl Reply {
    /// The reply as it goes on the wire.
    pub fn into_wire(self) -> hook_result::Result {
        match self {
            Reply::Decision(d) => hook_result::Result::Decision(d),
            Reply::Extension(e) => hook_result::Result::Extension(e),
            Reply::Modification(m) => hook_result::Result::Modification(m),
        }
    }
}

/// The kind of answer a call expects, checked once where the app's result arrives: each stage
/// calls apps for its own kind, so it never sees another.
pub trait ReplyKind: Sized {
    /// The `HookResult` field this kind is, for `hook`, as a refusal names it.
    fn wanted(hook: Hook) -> &'static str;
    /// `result` as this kind for `hook`, or back if it is another kind.
    #[allow(clippy::result_large_err)] // the wire message, moved back once on a wrong answer
    fn take(hook: Hook, result: hook_result::Result) -> Result<Self, hook_result::Result>;
}

impl ReplyKind for PreventDecision {
    fn wanted(_: Hook) -> &'static str {
        "decision"
    }
    fn take(_: Hook, result: hook_result::Result) -> Result<Self, hook_result::Result> {
        match result {
            hook_result::Result::Decision(d) => Ok(d),
            other => Err(other),
        }
    }
}

impl ReplyKind for RoomExtension {
    fn wanted(_: Hook) -> &'static str {
        "extension"
    }
    fn take(_: Hook, result: hook_result::Result) -> Result<Self, hook_result::Result> {
        match result {
            hook_result::Result::Extension(e) => Ok(e),
            other => Err(other),
        }
    }
}

impl ReplyKind for RoomModification {
    fn wanted(_: Hook) -> &'static str {
        "modification"
    }
    fn take(_: Hook, result: hook_result::Result) -> Result<Self, hook_result::Result> {
        match result {
            hook_result::Result::Modification(m) => Ok(m),
            other => Err(other),
        }
    }
}

impl ReplyKind for Reply {
    /// What the hook's stage needs.
    fn wanted(hook: Hook) -> &'static str {
        match hook.stage() {
            Stage::Veto => "decision",
            Stage::Extend => "extension",
            Stage::Modify => "modification",
            Stage::Post => "post_ack",
        }
    }
    fn take(hook: Hook, result: hook_result::Result) -> Result<Self, hook_result::Result> {
        use hook_result::Result as R;
        match (hook.stage(), result) {
            (Stage::Veto, R::Decision(d)) => Ok(Reply::Decision(d)),
            (Stage::Extend, R::Extension(e)) => Ok(Reply::Extension(e)),
            (Stage::Modify, R::Modification(m)) => Ok(Reply::Modification(m)),
            (_, other) => Err(other),
        }
    }
}

/// Why an app gave no usable answer; its failure policy decides what that means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the time allowed.
    Timeout(Duration),
    /// No live instance could take the call.
    Unavailable(String),
    /// The app reported an error, or answered with the wrong kind of result.
    Error(String),
}

impl Failure {
    /// The sidecar shut down before the app answered.
    fn shut_down() -> Self {
        Failure::Unavailable(
            "the sidecar shut down before the app answered (its --drain-timeout passed)".into(),
        )
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout(waited) => write!(f, "no answer within {waited:?}"),
            Failure::Unavailable(why) => write!(f, "unavailable: {why}"),
            Failure::Error(message) => write!(f, "error: {message}"),
        }
    }
}

/// Who answered one app call, and how long it took.
#[derive(Debug)]
pub struct CallMeta {
    /// The instance that answered (or was last tried).
    pub instance: Option<InstanceId>,
    /// In cluster mode, the sidecar of that instance (this one, or the one the call was
    /// forwarded to).
    pub sidecar: Option<Arc<str>>,
    /// From the first send to the end.
    pub elapsed: Duration,
}

/// The end of one app call that expects a `K`.
#[derive(Debug)]
pub struct Answer<K = Reply> {
    /// Who answered, and when.
    pub meta: CallMeta,
    /// The answer, or why there is none.
    pub result: Result<K, Failure>,
}

/// Calls one app with `call` (the fan-out's payload, encoded once) and waits for its answer.
/// When every instance in `app` was tried, the registry's current view is consulted for
/// instances that connected since. In cluster mode (`forward`), an app with no live instance
/// here but some at other sidecars is called there. An answer of another kind than `K` is the
/// app's error.
pub async fn call_app<K: ReplyKind>(
    registry: &Registry,
    limits: &CallLimits,
    app: &AppView,
    hook: Hook,
    call: &SharedCall,
    ctx: &CallContext,
    forward: Option<&Forwarder>,
) -> Answer<K> {
    let started = Instant::now();
    let deadline = ctx.deadline.min(started + app.spec.timeout);
    let (instance, result) = if !app.enabled {
        // 1. A disabled app is not called.
        let why = "the app is disabled by an operator (Admin.SetAppEnabled)";
        (None, Err(Failure::Unavailable(why.into())))
    } else if let Some(forward) = forward.filter(|_| only_elsewhere(app)) {
        // 2. Cluster mode: an app with live instances only at other sidecars is called there.
        let forwarded = forward.call(&app.spec.app_id, hook, call, deadline).await;
        return Answer {
            meta: CallMeta {
                instance: forwarded.instance,
                sidecar: forwarded.sidecar,
                elapsed: started.elapsed(),
            },
            result: forwarded
                .result
                .and_then(|result| accept::<K>(hook, result)),
        };
    } else {
        // 3. Here: the least-loaded live instance, then a sibling if it went away.
        call_here::<K>(registry, limits, app, hook, call, started, deadline).await
    };
    Answer {
        meta: CallMeta {
            sidecar: instance.as_ref().and(forward.map(|f| Arc::clone(f.here()))),
            instance,
            elapsed: started.elapsed(),
        },
        result,
    }
}

/// Whether the app has live instances only at other sidecars (cluster mode).
fn only_elsewhere(app: &AppView) -> bool {
    !app.remote.is_empty() && !app.instances.iter().any(|i| i.is_live())
}

/// Calls the app's instances at this sidecar until one answers, the deadline passes or none is
/// left to try; returns the instance that answered (or was last tried) and the result.
async fn call_here<K: ReplyKind>(
    registry: &Registry,
    limits: &CallLimits,
    app: &AppView,
    hook: Hook,
    call: &SharedCall,
    started: Instant,
    deadline: Instant,
) -> (Option<InstanceId>, Result<K, Failure>) {
    let mut tried: Vec<InstanceId> = Vec::new();
    loop {
        if registry.is_closing() {
            return (tried.pop(), Err(Failure::shut_down()));
        }
        if deadline <= Instant::now() {
            return (tried.pop(), Err(Failure::Timeout(deadline - started)));
        }
        let instance = match pick(registry, app, &tried, limits.max_in_flight_per_instance) {
            Ok(instance) => instance,
            Err(failure) => return (tried.pop(), Err(failure)),
        };
        let mut pending = match instance.start_call(hook, deadline, call) {
            Ok(pending) => pending,
            Err(err) => {
                if err == SendError::Busy {
                    tracing::warn!(app_id = %app.spec.app_id, instance_id = %instance.id,
                        "instance is not reading its stream (outbound queue full); trying another");
                }
                tried.push(instance.id.clone());
                continue;
            }
        };
        registry.alarm().arm(deadline);
        let result = match pending.answer().await {
            CallEnd::Expired => {
                instance.record_timeout(limits.ejection);
                Err(Failure::Timeout(deadline - started))
            }
            CallEnd::Gone => {
                tracing::info!(app_id = %app.spec.app_id, instance_id = %instance.id,
                    call_id = %pending.call_id(), "instance went away mid-call; retrying on a sibling");
                tried.push(instance.id.clone());
                continue;
            }
            CallEnd::ShutDown => Err(Failure::shut_down()),
            CallEnd::Answered(result) => {
                instance.record_answer();
                accept::<K>(hook, result)
            }
        };
        return (Some(instance.id.clone()), result);
    }
}

/// The instance to call next: the least-loaded live one not `tried` yet; once every instance
/// in `app` was tried, one that connected since (from the registry's current view).
fn pick(
    registry: &Registry,
    app: &AppView,
    tried: &[InstanceId],
    max: u32,
) -> Result<Arc<Instance>, Failure> {
    let picked = match app.pick(tried, max) {
        Some(instance) => Some(Arc::clone(instance)),
        None if tried.is_empty() => None,
        None => registry
            .snapshot()
            .app(&app.spec.app_id)
            .and_then(|view| view.pick(tried, max).cloned()),
    };
    picked.ok_or_else(|| {
        let why = if tried.is_empty() && !app.instances.iter().any(|i| i.is_live()) {
            "the app has no live instance".to_owned()
        } else if tried.is_empty() {
            format!("every instance has {max} calls in flight (--max-in-flight-per-instance)")
        } else {
            format!("no instance could take the call (tried {tried:?})")
        };
        Failure::Unavailable(why)
    })
}

/// Accepts an answer only if it is the kind `K` `hook` needs.
fn accept<K: ReplyKind>(hook: Hook, result: hook_result::Result) -> Result<K, Failure> {
    use hook_result::Result as R;
    match result {
        R::Error(e) if e.message.is_empty() => Err(Failure::Error(
            "the app reported an error without a message".into(),
        )),
        R::Error(e) => Err(Failure::Error(e.message)),
        other => K::take(hook, other).map_err(|other| {
            let got = match other {
                R::Decision(_) => "decision",
                R::Extension(_) => "extension",
                R::Modification(_) => "modification",
                R::Error(_) => "error",
            };
            let wanted = K::wanted(hook);
            Failure::Error(format!(
                "answered {hook} with a HookResult.{got}; it needs a HookResult.{wanted}"
            ))
        }),
    }
}
