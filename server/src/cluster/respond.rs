//! The serving side of forwarded Pre calls ([`super::forward`] is the calling side): one
//! queue-group subscription per app with live instances here; each request is one local app
//! call, answered with its outcome, the instance and this sidecar's id.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::HeaderMap;
use futures_util::{StreamExt, stream::FuturesUnordered};
use prost::Message;
use roomhooks::v1::HookResult;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    Cluster,
    forward::{CALL, DETAIL, HOOK, INSTANCE, OUTCOME, SIDECAR, TIMEOUT_US, header},
};
use crate::{
    apps::{frame::SharedCall, registry::Registry},
    dispatch::call::{CallLimits, Failure, Reply, call_app},
    edge::deadline::CallContext,
    hook::Hook,
    ids::AppId,
    lifecycle::tasks::Tasks,
};

/// Forwarded calls one sidecar serves at once per app; more are answered `unavailable`.
const MAX_SERVED_PER_APP: usize = 4096;

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
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Serves one app's forwarded calls until `stop`.
async fn answer_calls(inner: Arc<ResponderInner>, app_id: AppId, stop: CancellationToken) {
    let names = inner.cluster.names();
    let (subject, cancel_subject) = (names.call_subject(&app_id), names.cancel_subject(&app_id));
    let client = inner.cluster.client().clone();
    let subscribed = async {
        let calls = client
            .queue_subscribe(subject.clone(), subject.clone())
            .await?;
        let withdrawals = client.subscribe(cancel_subject).await?;
        Ok::<_, async_nats::SubscribeError>((calls, withdrawals))
    };
    let (mut calls, mut withdrawals) = match subscribed.await {
        Ok(subscribers) => subscribers,
        Err(e) => {
            tracing::warn!(%app_id, "cannot answer forwarded calls for the app: {e}");
            return;
        }
    };
    let mut running = FuturesUnordered::new();
    // The calls being served, by token, to withdraw them.
    let mut serving: HashMap<String, CancellationToken> = HashMap::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(token) = running.next(), if !running.is_empty() => {
                if let Some(token) = token {
                    serving.remove(&token);
                }
            }
            Some(withdrawal) = withdrawals.next() => {
                if let Ok(token) = std::str::from_utf8(&withdrawal.payload)
                    && let Some(withdrawn) = serving.remove(token)
                {
                    withdrawn.cancel();
                }
            }
            message = calls.next() => {
                let Some(message) = message else { break };
                if running.len() >= MAX_SERVED_PER_APP {
                    reply_failure(&inner, &message, "unavailable",
                        &format!("{MAX_SERVED_PER_APP} forwarded calls in flight")).await;
                    continue;
                }
                let token = header(&message, CALL);
                let withdrawn = CancellationToken::new();
                if let Some(token) = &token {
                    serving.insert(token.clone(), withdrawn.clone());
                }
                let inner = Arc::clone(&inner);
                let app_id = app_id.clone();
                running.push(async move {
                    tokio::select! {
                        // Dropping the call withdraws it from the app (CancelCall); the caller
                        // has gone, so there is no one to reply to.
                        () = withdrawn.cancelled() => {}
                        () = serve_one(inner, app_id, message) => {}
                    }
                    token
                });
            }
        }
    }
    let _ = calls.unsubscribe().await;
    let _ = withdrawals.unsubscribe().await;
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
    let answer = call_app::<Reply>(
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
            let body = HookResult {
                call_id: 0,
                result: Some(Reply::into_wire(reply)),
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
