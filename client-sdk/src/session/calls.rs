//! The calls a session is answering now: each a task, cancellable by call id, cut off at its
//! deadline.

use std::{
    collections::HashMap, future::Future, panic::AssertUnwindSafe, sync::Arc, time::Duration,
};

use futures_util::FutureExt;
use roomhooks::v1::{AppMessage, HookCall};
use tokio::{
    sync::mpsc,
    task::{AbortHandle, JoinSet},
    time::Instant,
};

use super::{
    Identity,
    dispatch::{answer, error, result},
};
use crate::handler::Handlers;

/// The calls running now, by call id and by task id.
#[derive(Default)]
pub(super) struct Calls {
    /// The tasks of the calls that wait.
    pub(super) set: JoinSet<()>,
    by_call: HashMap<u64, AbortHandle>,
    by_task: HashMap<tokio::task::Id, u64>,
}

impl Calls {
    /// How many calls are running.
    pub(super) fn len(&self) -> usize {
        self.by_call.len()
    }

    /// Whether no call task is left.
    pub(super) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Runs a call's handler. A handler that finishes on its first poll (no `.await` that
    /// waits) is answered at once; one that waits becomes a task, cancellable by `CancelCall`
    /// and cut off at the call's deadline.
    pub(super) fn start(
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

    /// Runs `task` for the call `call_id`.
    fn spawn(&mut self, call_id: u64, task: impl Future<Output = ()> + Send + 'static) {
        let abort = self.set.spawn(task);
        self.by_task.insert(abort.id(), call_id);
        self.by_call.insert(call_id, abort);
    }

    /// Stops the call `call_id` (`CancelCall`), if it is still running.
    pub(super) fn cancel(&mut self, call_id: u64) {
        if let Some(abort) = self.by_call.remove(&call_id) {
            abort.abort();
        }
    }

    /// Forgets the call whose task `task` ended.
    pub(super) fn finished(&mut self, task: tokio::task::Id) {
        if let Some(call_id) = self.by_task.remove(&task) {
            self.by_call.remove(&call_id);
        }
    }
}
