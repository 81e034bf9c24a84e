//! The sidecar's background tasks (app stream read loops, post delivery, the call alarm, the
//! metrics endpoint): each is spawned here, told to stop by one token and awaited on shutdown,
//! so nothing that writes to the store can outlive its close.

use std::{future::Future, time::Duration};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Owns background tasks: spawns them, stops them together and waits for them.
#[derive(Clone, Debug, Default)]
pub struct Tasks {
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    /// An owner with no tasks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` in the background; it must end soon after [`Tasks::stopping`] is cancelled.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// Cancelled when the tasks are told to stop; tasks derive their own stop signal from it.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stop
    }

    /// Tasks still running.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    /// Whether every task has ended.
    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Tells every task to stop and waits up to `within` for all of them to end; returns how
    /// many were still running then.
    pub async fn stop(&self, within: Duration) -> usize {
        self.stop.cancel();
        self.tracker.close();
        match tokio::time::timeout(within, self.tracker.wait()).await {
            Ok(()) => 0,
            Err(_) => self.tracker.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_cancels_every_task_and_waits_for_it_to_end() {
        let tasks = Tasks::new();
        let (ended_tx, mut ended) = tokio::sync::mpsc::channel(2);
        for _ in 0..2 {
            let (stop, ended_tx) = (tasks.stopping().child_token(), ended_tx.clone());
            tasks.spawn(async move {
                stop.cancelled().await;
                tokio::task::yield_now().await;
                let _ = ended_tx.send(()).await;
            });
        }
        drop(ended_tx);
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks.stop(Duration::from_secs(5)).await, 0);
        assert!(tasks.is_empty());
        assert_eq!(ended.recv().await, Some(()));
        assert_eq!(ended.recv().await, Some(()));
    }

    #[tokio::test(start_paused = true)]
    async fn stop_gives_up_on_a_task_that_ignores_it() {
        let tasks = Tasks::new();
        tasks.spawn(std::future::pending());
        assert_eq!(tasks.stop(Duration::from_secs(1)).await, 1);
    }
}
