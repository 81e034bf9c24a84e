//! Pre calls across sidecars. A backend call at sidecar A for an app with no live instance at
//! A, but with instances at other sidecars, is sent as a NATS request on the app's call subject
//! ([`Forwarder`]); every sidecar holding live instances of the app listens on that subject in
//! one queue group ([`Responder`]), so NATS hands the request to one of them, which calls its
//! own least-loaded instance exactly as for a local call (timeouts, ejection, CancelCall) and
//! replies with the answer and its sidecar id. A aggregates it like any other answer.
//!
//! The request is the fan-out's shared `HookCall` bytes; the hook, the time left and a call
//! token travel as headers. A forwarded call is never forwarded again. When the backend gives up
//! on a call before the answer came (it cancelled its RPC), the calling sidecar publishes the
//! token on the app's cancel subject; the serving sidecar drops the call, which tells its app
//! with `CancelCall` exactly as for a local call. Best effort, like a local `CancelCall`: a
//! withdrawal that arrives before its call, or when the queue of withdrawals is full, is lost,
//! and the call then ends at its own deadline.
//!
//! This module is the calling side; [`super::respond`] is the serving side.

use std::{sync::Arc, time::Duration};

use async_nats::{HeaderMap, RequestErrorKind};
use prost::Message;
use roomhooks::v1::{HookResult, hook_result};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::{Cluster, token::CallTokens};
use crate::{
    apps::frame::SharedCall,
    dispatch::call::Failure,
    hook::Hook,
    ids::{AppId, InstanceId},
    lifecycle::tasks::Tasks,
};

/// Header: the hook called (its `HookInterface` number).
pub(super) const HOOK: &str = "Roomhooks-Hook";
/// Header: the time left for the call, in microseconds.
pub(super) const TIMEOUT_US: &str = "Roomhooks-Timeout-Us";
/// Header of a reply: `answered`, `timeout`, `unavailable` or `error`.
pub(super) const OUTCOME: &str = "Roomhooks-Outcome";
/// Header of a reply: why a call did not get an answer.
pub(super) const DETAIL: &str = "Roomhooks-Detail";
/// Header of a reply: the instance that answered.
pub(super) const INSTANCE: &str = "Roomhooks-Instance";
/// Header of a reply: the sidecar that served the call.
pub(super) const SIDECAR: &str = "Roomhooks-Sidecar";
/// Header: the call's token ([`CallTokens`]), which a withdrawal names.
pub(super) const CALL: &str = "Roomhooks-Call";
/// Withdrawals waiting to be published; when full, more are dropped (best effort).
const WITHDRAWALS_QUEUED: usize = 1024;

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
    /// Numbers this sidecar's forwarded calls, for their tokens.
    tokens: CallTokens,
    /// To the task publishing withdrawals.
    withdrawals: mpsc::Sender<Withdrawal>,
}

/// A forwarded call the backend gave up on: its app's cancel subject and its token.
struct Withdrawal {
    subject: String,
    token: String,
}

impl Forwarder {
    /// A forwarder over `cluster`'s connection; the task publishing its withdrawals is owned by
    /// `tasks`.
    pub fn new(cluster: Cluster, tasks: &Tasks) -> Self {
        let here: Arc<str> = cluster.sidecar_id().into();
        let (withdrawals, queued) = mpsc::channel(WITHDRAWALS_QUEUED);
        tasks.spawn(publish_withdrawals(
            cluster.clone(),
            queued,
            tasks.stopping().child_token(),
        ));
        Self {
            cluster,
            tokens: CallTokens::new(Arc::clone(&here)),
            here,
            withdrawals,
        }
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
        let token = self.tokens.next();
        let mut headers = HeaderMap::new();
        headers.insert(HOOK, (hook.to_wire() as i32).to_string().as_str());
        headers.insert(TIMEOUT_US, left.as_micros().to_string().as_str());
        headers.insert(CALL, token.as_str());
        let request = async_nats::Request::new()
            .payload(shared.bytes().clone())
            .headers(headers)
            .timeout(Some(left));
        let subject = self.cluster.names().call_subject(app_id);
        // Dropped before the request ends (the backend cancelled): the serving sidecar is told.
        let withdraw = WithdrawOnDrop {
            withdrawal: Some(Withdrawal {
                subject: self.cluster.names().cancel_subject(app_id),
                token,
            }),
            to: &self.withdrawals,
        };
        let sent = self.cluster.client().send_request(subject, request).await;
        withdraw.disarm();
        let forwarded = match sent {
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

/// Withdraws a forwarded call when dropped before [`WithdrawOnDrop::disarm`].
struct WithdrawOnDrop<'a> {
    withdrawal: Option<Withdrawal>,
    to: &'a mpsc::Sender<Withdrawal>,
}

impl WithdrawOnDrop<'_> {
    /// The request ended (answered, timed out or failed): nothing to withdraw.
    fn disarm(mut self) {
        self.withdrawal = None;
    }
}

impl Drop for WithdrawOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(withdrawal) = self.withdrawal.take() {
            // Best effort: a full queue drops it, and the call ends at its deadline there.
            let _ = self.to.try_send(withdrawal);
        }
    }
}

/// Publishes the withdrawals of forwarded calls until `stop`.
async fn publish_withdrawals(
    cluster: Cluster,
    mut queued: mpsc::Receiver<Withdrawal>,
    stop: CancellationToken,
) {
    loop {
        let withdrawal = tokio::select! {
            () = stop.cancelled() => return,
            next = queued.recv() => match next {
                Some(withdrawal) => withdrawal,
                None => return,
            },
        };
        if let Err(e) = cluster
            .client()
            .publish(withdrawal.subject, withdrawal.token.into())
            .await
        {
            tracing::debug!("cannot withdraw a forwarded call: {e}");
        }
    }
}

/// The value of header `name` of `message`, if it has one.
pub(super) fn header(message: &async_nats::Message, name: &str) -> Option<String> {
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
