//! One connected app instance: its outbound stream, the calls it owes answers to, and its load.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use roomhooks::v1::{CancelCall, RuntimeMessage, hook_result, runtime_message::Msg};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::{
    apps::frame::{CallHead, Frame, SharedCall},
    hook::Hook,
    ids::{AppId, CallId, InstanceId},
};

/// When an instance is taken out of rotation for timing out (`Default` is a blank, zeros).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ejection {
    /// Timeouts in a row that eject (0 = never).
    pub after: u32,
    /// The first ejection's length; each further one is longer by as much.
    pub base: Duration,
}

/// What the sidecar sends down an app's stream.
pub type Outbound = mpsc::Sender<Result<Frame, Status>>;

/// How many messages may wait in one instance's outbound queue.
pub const OUTBOUND_CAPACITY: usize = 1024;

static NEXT_CALL_ID: AtomicU64 = AtomicU64::new(1);

/// A call the instance has not answered yet.
struct Pending {
    reply: oneshot::Sender<CallEnd>,
    /// When the call times out (the registry's alarm enforces it: [`Instance::expire`]).
    deadline: Instant,
}

/// How a sent call ended, as its caller sees it.
#[derive(Debug)]
// Moved once through a oneshot, as the bare answer was; boxing it would allocate per call.
#[allow(clippy::large_enum_variant)]
pub enum CallEnd {
    /// The app answered.
    Answered(hook_result::Result),
    /// Its deadline passed first; the app was told to cancel it.
    Expired,
    /// The instance went away first.
    Gone,
    /// The sidecar shut down first (its drain timeout passed): no sibling will take the call.
    ShutDown,
}

/// One live connection of an app.
pub struct Instance {
    /// The app this is an instance of.
    pub app_id: AppId,
    /// This instance's id.
    pub id: InstanceId,
    /// The version it registered with.
    pub version: String,
    /// Its socket address, when known.
    pub peer: Option<SocketAddr>,
    /// When it registered.
    pub connected_at: SystemTime,
    outbound: Outbound,
    pending: Mutex<HashMap<CallId, Pending, foldhash::fast::RandomState>>,
    in_flight: AtomicU32,
    consecutive_timeouts: AtomicU32,
    ejections: AtomicU32,
    ejected_until: Mutex<Option<(Instant, SystemTime)>>,
    /// Cancelled when the instance stops being usable (stream ended, app removed, shutdown).
    closed: CancellationToken,
    /// Cancelled to end the outbound stream at once (when a closing status could not be queued).
    cut: CancellationToken,
}

/// Why a call could not be sent to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Its outbound queue is full: it is not reading.
    Busy,
    /// It is gone.
    Closed,
}

/// What became of an app's answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Completion {
    /// It answered a call that was waiting.
    Delivered,
    /// No call with that id is waiting: unknown, timed out or already answered.
    Unknown,
}

impl Instance {
    /// A new instance writing to `outbound`.
    pub fn new(
        app_id: AppId,
        id: InstanceId,
        version: String,
        peer: Option<SocketAddr>,
        outbound: Outbound,
    ) -> Self {
        Self {
            app_id,
            id,
            version,
            peer,
            connected_at: SystemTime::now(),
            outbound,
            pending: Mutex::new(HashMap::default()),
            in_flight: AtomicU32::new(0),
            consecutive_timeouts: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            ejected_until: Mutex::new(None),
            closed: CancellationToken::new(),
            cut: CancellationToken::new(),
        }
    }

    /// Pre calls sent and not answered yet.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Timeouts in a row since the last answer.
    pub fn consecutive_timeouts(&self) -> u32 {
        self.consecutive_timeouts.load(Ordering::Relaxed)
    }

    /// Records an answer: the timeout streak ends.
    pub fn record_answer(&self) {
        self.consecutive_timeouts.store(0, Ordering::Relaxed);
    }

    /// Records a timeout; after `ejection.after` in a row the instance is taken out of rotation
    /// for `ejection.base` × the number of times it was ejected (Envoy-style outlier ejection).
    pub fn record_timeout(&self, ejection: Ejection) {
        let streak = self.consecutive_timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        if ejection.after == 0 || streak < ejection.after {
            return;
        }
        self.consecutive_timeouts.store(0, Ordering::Relaxed);
        let times = self.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let period = ejection.base * times.min(30);
        *self.lock_ejection() = Some((Instant::now() + period, SystemTime::now() + period));
        tracing::warn!(app_id = %self.app_id, instance_id = %self.id, streak, ?period,
            "instance timed out too often in a row: out of rotation (outlier ejection)");
    }

    /// Whether the instance is out of rotation after too many timeouts.
    pub fn is_ejected(&self) -> bool {
        self.lock_ejection()
            .is_some_and(|(until, _)| Instant::now() < until)
    }

    /// When the current ejection ends, if the instance is ejected.
    pub fn ejected_until(&self) -> Option<SystemTime> {
        self.lock_ejection()
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, wall)| wall)
    }

    fn lock_ejection(&self) -> std::sync::MutexGuard<'_, Option<(Instant, SystemTime)>> {
        self.ejected_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends a heartbeat without waiting; false when the outbound queue is full or closed.
    pub fn send_heartbeat(&self, nonce: u64) -> bool {
        let message = RuntimeMessage {
            msg: Some(Msg::Heartbeat(roomhooks::v1::Heartbeat { nonce })),
        };
        self.outbound.try_send(Ok(message.into())).is_ok()
    }

    /// Whether the instance can take calls.
    pub fn is_live(&self) -> bool {
        !self.closed.is_cancelled()
    }

    /// A token cancelled when the instance closes.
    pub fn closed_token(&self) -> &CancellationToken {
        &self.closed
    }

    /// A token cancelled when the outbound stream must end at once.
    pub fn cut_token(&self) -> &CancellationToken {
        &self.cut
    }

    /// Sends a hook call without waiting; the returned handle yields the answer. The call is
    /// `hook`, due by `deadline`, plus the fan-out's `shared` fields. The deadline is kept with
    /// the call: whoever runs the registry's alarm must be told of it ([`Alarm::arm`]).
    ///
    /// [`Alarm::arm`]: crate::dispatch::alarm::Alarm::arm
    pub fn start_call(
        self: &Arc<Self>,
        hook: Hook,
        deadline: Instant,
        shared: &SharedCall,
    ) -> Result<PendingCall, SendError> {
        if !self.is_live() {
            return Err(SendError::Closed);
        }
        let call_id = CallId(NEXT_CALL_ID.fetch_add(1, Ordering::Relaxed));
        let left = deadline.saturating_duration_since(Instant::now());
        let head = CallHead {
            call_id: call_id.0,
            hook: hook.to_wire() as i32,
            timeout: prost_types::Duration::try_from(left).ok(),
        };
        let (reply, rx) = oneshot::channel();
        self.lock_pending()
            .insert(call_id, Pending { reply, deadline });
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        // `close` cancels, then drains the calls: a call added after its drain would wait for
        // nobody (the alarm only looks at instances in the registry).
        if !self.is_live() {
            self.forget(call_id);
            return Err(SendError::Closed);
        }
        let frame = Frame::Call {
            head,
            shared: shared.clone(),
        };
        if let Err(err) = self.outbound.try_send(Ok(frame)) {
            self.forget(call_id);
            return Err(match err {
                mpsc::error::TrySendError::Full(_) => SendError::Busy,
                mpsc::error::TrySendError::Closed(_) => SendError::Closed,
            });
        }
        Ok(PendingCall {
            instance: Arc::clone(self),
            call_id,
            rx,
        })
    }

    /// Hands an app's answer to the call waiting for it.
    pub fn complete(&self, call_id: CallId, result: hook_result::Result) -> Completion {
        match self.forget(call_id) {
            Some(pending) => {
                // The waiter may have just given up; then the answer is simply late.
                let _ = pending.reply.send(CallEnd::Answered(result));
                Completion::Delivered
            }
            None => Completion::Unknown,
        }
    }

    /// Times out every call due by `now` (each waiter gets [`CallEnd::Expired`], the app a
    /// `CancelCall`) and returns the earliest deadline still waiting.
    pub fn expire(&self, now: Instant) -> Option<Instant> {
        let (due, next) = {
            let mut pending = self.lock_pending();
            let due: Vec<_> = pending.extract_if(|_, call| call.deadline <= now).collect();
            (due, pending.values().map(|call| call.deadline).min())
        };
        if !due.is_empty() {
            self.in_flight.fetch_sub(
                u32::try_from(due.len()).unwrap_or(u32::MAX),
                Ordering::Relaxed,
            );
        }
        for (call_id, call) in due {
            // The waiter may have gone at the same moment; then nobody needs to know.
            let _ = call.reply.send(CallEnd::Expired);
            self.send_cancel(call_id);
        }
        next
    }

    /// Queues a frame that must not be dropped (post events), waiting for room.
    pub async fn send(&self, frame: Frame) -> Result<(), SendError> {
        tokio::select! {
            biased;
            () = self.closed.cancelled() => Err(SendError::Closed),
            sent = self.outbound.send(Ok(frame)) => sent.map_err(|_| SendError::Closed),
        }
    }

    /// Closes the instance: waiting calls fail at once, and the stream ends, with `status` when
    /// given (the app sees why).
    pub fn close(&self, status: Option<Status>) {
        if self.closed.is_cancelled() {
            return;
        }
        self.closed.cancel();
        let drained: Vec<_> = self.lock_pending().drain().collect();
        self.in_flight.store(0, Ordering::Relaxed);
        drop(drained);
        let ended_with_status = status.is_some_and(|s| self.outbound.try_send(Err(s)).is_ok());
        if !ended_with_status {
            self.cut.cancel();
        }
    }

    /// Ends the stream cleanly (status OK) for a shutdown: waiting calls end with
    /// [`CallEnd::ShutDown`] and are not retried; the app is expected to reconnect with backoff.
    pub fn close_for_shutdown(&self) {
        if self.closed.is_cancelled() {
            return;
        }
        self.closed.cancel();
        let drained: Vec<_> = self.lock_pending().drain().collect();
        self.in_flight.store(0, Ordering::Relaxed);
        for (_, call) in drained {
            let _ = call.reply.send(CallEnd::ShutDown);
        }
        self.cut.cancel();
    }

    /// Tells the app a call is withdrawn. Best effort: a full queue means it is not reading.
    fn send_cancel(&self, call_id: CallId) {
        let cancel = RuntimeMessage {
            msg: Some(Msg::Cancel(CancelCall { call_id: call_id.0 })),
        };
        let _ = self.outbound.try_send(Ok(cancel.into()));
    }

    fn forget(&self, call_id: CallId) -> Option<Pending> {
        let pending = self.lock_pending().remove(&call_id);
        if pending.is_some() {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        pending
    }

    fn lock_pending(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<CallId, Pending, foldhash::fast::RandomState>> {
        // A panic while holding this lock cannot leave the map inconsistent: keep serving.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A sent call awaiting its answer. Dropping it unanswered withdraws the call and tells the app
/// with `CancelCall`.
pub struct PendingCall {
    instance: Arc<Instance>,
    call_id: CallId,
    rx: oneshot::Receiver<CallEnd>,
}

impl PendingCall {
    /// The answer, the deadline passing, or the instance going away, whichever came first.
    pub async fn answer(&mut self) -> CallEnd {
        (&mut self.rx).await.unwrap_or(CallEnd::Gone)
    }

    /// The call's id.
    pub fn call_id(&self) -> CallId {
        self.call_id
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        if self.instance.forget(self.call_id).is_some() {
            self.instance.send_cancel(self.call_id);
        }
    }
}
