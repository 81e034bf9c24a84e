//! A running app: wait for its registration, stop it gracefully or at once.

use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::SdkError;

/// A running app. Dropping the handle stops the app gracefully in the background.
pub struct AppHandle {
    /// Cancelled to stop the app gracefully.
    pub(super) token: CancellationToken,
    /// The registered instance id, while the app is registered.
    pub(super) registered: watch::Receiver<Option<String>>,
    /// The app's task, until joined or aborted.
    pub(super) task: Option<JoinHandle<Result<(), SdkError>>>,
}

impl AppHandle {
    /// Waits until the sidecar accepted the registration; returns the instance id.
    pub async fn registered(&mut self) -> Result<String, SdkError> {
        loop {
            if let Some(id) = self.registered.borrow_and_update().clone() {
                return Ok(id);
            }
            if self.registered.changed().await.is_err() {
                return Err(SdkError::Stopped);
            }
        }
    }

    /// Stops gracefully: in-flight calls finish (up to the drain timeout), then the stream closes.
    pub async fn shutdown(mut self) -> Result<(), SdkError> {
        self.token.cancel();
        self.join_task().await
    }

    /// Stops at once, as a crash would: the app's stream (and its own connection, if it has one)
    /// drops with calls unanswered.
    pub fn abort(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Waits for the app to stop by itself (a fatal refusal).
    pub async fn join(mut self) -> Result<(), SdkError> {
        self.join_task().await
    }

    async fn join_task(&mut self) -> Result<(), SdkError> {
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| SdkError::Protocol(format!("app task failed: {e}")))?,
            None => Err(SdkError::Stopped),
        }
    }
}

impl Drop for AppHandle {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
