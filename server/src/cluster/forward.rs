//! Pre calls across sidecars. A backend call at sidecar A for an app with no live instance at
//! A, but with instances at other sidecars, is sent as a NATS request on the app's call subject
//! ([`Forwarder`]); every sidecar holding live instances of the app listens on that subject in
//! one queue group ([`Responder`]), so NATS hands the request to one of them, which calls its
//! own least-loaded instance exactly as for a local call (timeouts, ejection, CancelCall) and
//! replies with the answer and its sidecar id. A aggregates it like any other answer.
//!
//! The request is the fan-out's shared `HookCall` bytes; the hook and the time left travel as
//! headers. A forwarded call is never forwarded again.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::{HeaderMap, RequestErrorKind};
use futures_util::{StreamExt, stream::FuturesUnordered};
use prost::Message;
use roomhooks::v1::{HookResult, hook_result};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Cluster;
use crate::{
    apps::{frame::SharedCall, registry::Registry},
    dispatch::call::{CallLimits, Failure, Reply, call_app},
    edge::deadline::CallContext,
    hook::Hook,
    ids::{AppId, InstanceId},
    lifecycle::tasks::Tasks,
};

/// Header: the hook called (its `HookInterface` number).
const HOOK: &str = "Roomhooks-Hook";
/// Header: the time left for the call, in microseconds.
const TIMEOUT_US: &str = "Roomhooks-Timeout-Us";
/// Header of a reply: `answered`, `timeout`, `unavailable` or `error`.
const OUTCOME: &str = "Roomhooks-Outcome";
/// Header of a reply: why a call did not get an answer.
const DETAIL: &str = "Roomhooks-Detail";
/// Header of a reply: the instance that answered.
const INSTANCE: &str = "Roomhooks-Instance";
/// Header of a reply: the sidecar that served the call.
const SIDECAR: &str = "Roomhooks-Sidecar";
/// Forwarded calls one sidecar serves at once per app; more are answered `unavailable`.
const MAX_SERVED_PER_APP: usize = 4096;

/// The end of one forwarded call, as the calling sidecar sees it.
#[derive(Debug)]
pub struct Forwarded {
    /// The sidecar that served it, when one did.
    pub sidecar: Option<Arc<str>>,
    /// The instance that answered there.
    pub instance: Option<InstanceId>,
    /// The app's answer (its kind not yet checked), or why there is none.
    pub result: Result<hook_result::Result, Failure>,
}

/// Sends Pre calls to the sidecars holding an app's instances.
#[derive(Clone)]
pub struct Forwarder {
    cluster: Cluster,
    here: Arc<str>,
}

impl Forwarder {
    /// A forwarder over `cluster`'s connection.
    pub fn new(cluster: Cluster) -> Self {
        let here = cluster.sidecar_id().into();
        Self { cluster, here }
    }

    /// This sidecar's id (local answers name it in their outcome).
    pub fn here(&self) -> &Arc<str> {
        &self.here
    }

    /// Calls `app_id` at another sidecar with the time left until `deadline`.
    pub async fn call(
        &self,
        app_id: &AppId,
        hook: Hook,
        shared: &SharedCall,
        deadline: Instant,
    ) -> Forwarded {
        let left = deadline.saturating_duration_since(Instant::now());
        let unanswered = |result| Forwarded {
            sidecar: None,
            instance: None,
            result: Err(result),
        };
        if left.is_zero() {
            return unanswered(Failure::Timeout(Duration::ZERO));
        }
        if !self.cluster.is_connected() {
            return unanswered(Failure::Unavailable(
                "the app's instances are at other sidecars and NATS is unreachable".into(),
            ));
        }
        let mut headers = HeaderMap::new();
        headers.insert(HOOK, (hook.to_wire() as i32).to_string().as_str());
        headers.insert(TIMEOUT_US, left.as_micros().to_string().as_str());
        let request = async_nats::Request::new()
            .payload(shared.bytes().clone())
            .headers(headers)
            .timeout(Some(left));
        let subject = self.cluster.names().call_subject(app_id);
        let forwarded = match self.cluster.client().send_request(subject, request).await {
            Ok(reply) => decode_reply(reply),
            Err(e) => unanswered(match e.kind() {
                RequestErrorKind::TimedOut => Failure::Timeout(left),
                RequestErrorKind::NoResponders => Failure::Unavailable(
                    "no sidecar holds a live instance of the app any more (forwarding found no \
                     responder)"
                        .into(),
                ),
                _ => Failure::Unavailable(format!("forwarding to another sidecar failed: {e}")),
            }),
        };
        self.cluster
            .count_forwarded(forwarded.sidecar.as_deref().unwrap_or_default());
        forwarded
    }
}

/// The value of header `name` of `message`, if it has one.
fn header(message: &async_nats::Message, name: &str) -> Option<String> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

/// Reads a reply's headers and body into the call's end.
fn decode_reply(reply: async_nats::Message) -> Forwarded {
    let header = |name: &str| header(&reply, name);
    let sidecar = header(SIDECAR).map(Arc::<str>::from);
    let instance = header(INSTANCE).and_then(|raw| InstanceId::parse(&raw).ok());
    let detail = header(DETAIL).unwrap_or_default();
    let at = sidecar.as_deref().unwrap_or("another sidecar");
    let result = match header(OUTCOME).as_deref() {
        Some("answered") => match HookResult::decode(reply.payload) {
            Ok(HookResult {
                result: Some(result),
                ..
            }) => Ok(result),
            _ => Err(Failure::Error(format!(
                "sidecar {at} sent an unreadable answer"
            ))),
        },
        Some("timeout") => Err(Failure::Timeout(Duration::from_micros(
            detail.parse().unwrap_or(0),
        ))),
        Some("unavailable") => Err(Failure::Unavailable(format!("{detail} (at sidecar {at})"))),
        Some("error") => Err(Failure::Error(detail)),
        _ => Err(Failure::Error(format!(
            "sidecar {at} sent a reply without an outcome"
        ))),
    };
    Forwarded {
        sidecar,
        instance,
        result,
    }
}

/// Answers forwarded calls for the apps with live instances at this sidecar: one queue-group
/// subscription per such app, started when its first instance connects here and ended when the
/// last one leaves.
#[derive(Clone)]
pub struct Responder {
    inner: Arc<ResponderInner>,
}

struct ResponderInner {
    cluster: Cluster,
    registry: Arc<Registry>,
    limits: CallLimits,
    tasks: Tasks,
    serving: Mutex<HashMap<AppId, CancellationToken>>,
}

impl Responder {
    /// A responder calling the instances of `registry`; its subscriptions are owned by `tasks`.
    pub fn new(
        cluster: Cluster,
        registry: Arc<Registry>,
        limits: CallLimits,
        tasks: Tasks,
    ) -> Self {
        Self {
            inner: Arc::new(ResponderInner {
                cluster,
                registry,
                limits,
                tasks,
                serving: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Subscribes for every app with a live instance here, and unsubscribes for the others.
    pub fn serve(&self, registry: &Registry) {
        let snapshot = registry.snapshot();
        let here: Vec<AppId> = snapshot
            .apps()
            .iter()
            .filter(|app| app.instances.iter().any(|i| i.is_live()))
            .map(|app| app.spec.app_id.clone())
            .collect();
        let mut serving = self.lock();
        serving.retain(|app_id, stop| {
            let keep = here.contains(app_id);
            if !keep {
                stop.cancel();
            }
            keep
        });
        for app_id in here {
            if serving.contains_key(&app_id) {
                continue;
            }
            let stop = self.inner.tasks.stopping().child_token();
            serving.insert(app_id.clone(), stop.clone());
            self.inner
                .tasks
                .spawn(answer_calls(Arc::clone(&self.inner), app_id, stop));
        }
    }

    /// Ends every subscription.
    pub fn stop_all(&self) {
        for (_, stop) in self.lock().drain() {
            stop.cancel();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AppId, CancellationToken>> {
        self.inner
            .serving
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Serves one app's forwarded calls until `stop`.
async fn answer_calls(inner: Arc<ResponderInner>, app_id: AppId, stop: CancellationToken) {
    let subject = inner.cluster.names().call_subject(&app_id);
    let client = inner.cluster.client().clone();
    let mut calls = match client
        .queue_subscribe(subject.clone(), subject.clone())
        .await
    {
        Ok(subscriber) => subscriber,
        Err(e) => {
            tracing::warn!(%app_id, "cannot answer forwarded calls for the app: {e}");
            return;
        }
    };
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(()) = running.next(), if !running.is_empty() => {}
            message = calls.next() => {
                let Some(message) = message else { break };
                if running.len() >= MAX_SERVED_PER_APP {
                    reply_failure(&inner, &message, "unavailable",
                        &format!("{MAX_SERVED_PER_APP} forwarded calls in flight")).await;
                    continue;
                }
                running.push(serve_one(Arc::clone(&inner), app_id.clone(), message));
            }
        }
    }
    let _ = calls.unsubscribe().await;
    // The calls already taken still get their answers.
    while running.next().await.is_some() {}
}

/// Calls the local instance for one forwarded request and replies.
async fn serve_one(inner: Arc<ResponderInner>, app_id: AppId, message: async_nats::Message) {
    let header = |name: &str| header(&message, name);
    let hook = header(HOOK)
        .and_then(|raw| raw.parse::<i32>().ok())
        .and_then(Hook::from_wire);
    let left = header(TIMEOUT_US)
        .and_then(|raw| raw.parse::<u64>().ok())
        .map(Duration::from_micros);
    let (Some(hook), Some(left)) = (hook, left) else {
        reply_failure(
            &inner,
            &message,
            "error",
            "a forwarded call without its hook or timeout",
        )
        .await;
        return;
    };
    let Some(app) = inner.registry.snapshot().app(&app_id).cloned() else {
        reply_failure(&inner, &message, "unavailable", "the app is not known here").await;
        return;
    };
    let ctx = CallContext {
        deadline: Instant::now() + left,
        dry_run: false,
        request_id: String::new(),
        traceparent: String::new(),
    };
    let shared = SharedCall::from_encoded(message.payload.clone());
    let answer = call_app(
        &inner.registry,
        &inner.limits,
        &app,
        hook,
        &shared,
        &ctx,
        None,
    )
    .await;
    let instance = answer.meta.instance.map(|i| i.as_str().to_owned());
    let (outcome, detail, body) = match answer.result {
        Ok(reply) => {
            let result = match reply {
                Reply::Decision(d) => hook_result::Result::Decision(d),
                Reply::Extension(e) => hook_result::Result::Extension(e),
                Reply::Modification(m) => hook_result::Result::Modification(m),
            };
            let body = HookResult {
                call_id: 0,
                result: Some(result),
            }
            .encode_to_vec();
            ("answered", String::new(), body)
        }
        Err(Failure::Timeout(waited)) => ("timeout", waited.as_micros().to_string(), Vec::new()),
        Err(Failure::Unavailable(why)) => ("unavailable", why, Vec::new()),
        Err(Failure::Error(why)) => ("error", why, Vec::new()),
    };
    reply(
        &inner,
        &message,
        outcome,
        &detail,
        instance.as_deref(),
        body,
    )
    .await;
}

async fn reply_failure(
    inner: &ResponderInner,
    message: &async_nats::Message,
    outcome: &str,
    detail: &str,
) {
    reply(inner, message, outcome, detail, None, Vec::new()).await;
}

async fn reply(
    inner: &ResponderInner,
    message: &async_nats::Message,
    outcome: &str,
    detail: &str,
    instance: Option<&str>,
    body: Vec<u8>,
) {
    let Some(to) = message.reply.clone() else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(OUTCOME, outcome);
    headers.insert(SIDECAR, inner.cluster.sidecar_id());
    if !detail.is_empty() {
        // Header values are one line.
        headers.insert(DETAIL, detail.replace(['\r', '\n'], " ").as_str());
    }
    if let Some(instance) = instance {
        headers.insert(INSTANCE, instance);
    }
    if let Err(e) = inner
        .cluster
        .client()
        .publish_with_headers(to, headers, body.into())
        .await
    {
        tracing::warn!("cannot reply to a forwarded call: {e}");
    }
}
