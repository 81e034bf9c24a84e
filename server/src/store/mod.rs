//! The embedded on-disk store (fjall) for post events: every accepted event is written before
//! the backend's call returns, acknowledged events are deleted, dead letters are kept, and apps
//! with pending events are remembered across restarts.
//!
//! An accepted event is written **once**, however many apps it is queued for: the `posts`
//! keyspace holds it under its sequence number with the apps it was queued for, and is deleted
//! when every one of them is done with it. What each app has finished is kept as a cursor (every
//! event below it is done for that app), written at most once per commit group, so a restart
//! redelivers an event only to the apps that had not acknowledged it — or had, out of order,
//! past their cursor (delivery is at least once). Events an app holds on its own (a retried
//! dead letter, or an event from a store written before the `posts` keyspace) stay in the
//! per-app `events` keyspace; redelivery attempts of shared events go to `attempts`.
//!
//! One writer thread owns all writes and commits them in groups: whatever arrived while the last
//! commit ran goes into the next one, so many concurrent Post calls share one journal write.
//! `PersistMode::Buffer` (the default) hands each commit to the OS before the caller is answered,
//! which survives a crash of the sidecar process (`kill -9`); `--fsync` adds `fdatasync` per
//! commit for power-loss durability.
//!
//! Every write goes through one [`Store`] handle, to the fjall store on disk or, with
//! `--ephemeral` (and in cluster mode, where post events live in JetStream), to [`Storage`]
//! that keeps nothing and confirms at once.

mod disk;
mod ephemeral;
mod keys;
mod records;
mod recover;
#[cfg(test)]
mod tests;
mod writer;

use std::{path::Path, sync::Arc};

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;

pub use self::disk::StoreWriter;
pub use self::records::{Recovered, RecoveredApp, RecoveredPost, StoredEvent};
use self::{disk::Disk, ephemeral::Ephemeral};
use crate::{apps::spec::AppSpec, ids::AppId};

/// Resolves once a confirmed write group is committed (or failed to be).
pub type Committed = oneshot::Receiver<Result<(), StoreError>>;
type CommitSender = oneshot::Sender<Result<(), StoreError>>;

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the data directory.
    #[error(
        "{} is in use by another roomhooks process{}; use another --data-dir or --ephemeral",
        dir.display(),
        pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    InUse {
        /// The directory (absolute).
        dir: std::path::PathBuf,
        /// The holder's process id, when its pid file names it.
        pid: Option<u32>,
    },
    /// The store could not be opened or read back.
    #[error(
        "cannot open the post-event store in {}: {why} (check --data-dir, or run with \
         --ephemeral to keep post events in memory)",
        dir.display()
    )]
    Open {
        /// The directory (absolute).
        dir: std::path::PathBuf,
        /// What went wrong.
        why: String,
    },
    /// A write or read failed while running.
    #[error("the post-event store failed: {0}")]
    Failed(String),
}

impl From<fjall::Error> for StoreError {
    fn from(err: fjall::Error) -> Self {
        StoreError::Failed(err.to_string())
    }
}

/// One change to the shared events (the `posts` keyspace).
#[derive(Debug)]
pub enum PostWrite {
    /// Writes an accepted event once for every app it was queued for: its encoded `StoredEvent`
    /// with `apps` filled in.
    Put(u64, Vec<u8>),
    /// Deletes a shared event every app is done with.
    Delete(u64),
}

/// One change to an app's post events.
#[derive(Debug)]
pub enum EventWrite {
    /// Writes (or rewrites) an event the app holds on its own: its encoded `StoredEvent`.
    Put(u64, Vec<u8>),
    /// Deletes an event the app held on its own.
    Delete(u64),
    /// Writes a dead letter.
    PutDead(u64, Vec<u8>),
    /// Deletes a dead letter (retried or removed).
    DeleteDead(u64),
    /// Records the last delivery attempt of a shared event to this app.
    Attempt(u64, u32),
    /// Forgets the attempt recorded for a shared event.
    ForgetAttempt(u64),
    /// Every event below this sequence number is done for this app.
    Cursor(u64),
    /// Deletes a shared event: this app was the last one holding it.
    DeletePost(u64),
}

/// What keeps post events and app registrations: the store on disk, or one that keeps nothing.
/// Writes are applied in the order sent; a confirmed write's receiver resolves once committed.
pub trait Storage: Send + Sync {
    /// Whether what is written survives a restart.
    fn durable(&self) -> bool;

    /// Applies `writes` to the shared events in order, in one commit group. With `confirm`, the
    /// receiver resolves once they are committed.
    fn write_posts(
        &self,
        writes: Vec<PostWrite>,
        confirm: bool,
    ) -> BoxFuture<'_, Option<Committed>>;

    /// Applies `writes` to `app`'s post events in order, in one commit group. With `confirm`,
    /// the receiver resolves once they are committed.
    fn write_events<'a>(
        &'a self,
        app: &'a AppId,
        writes: Vec<EventWrite>,
        confirm: bool,
    ) -> BoxFuture<'a, Option<Committed>>;

    /// Remembers an app's registration, seen connected now (on register, and when its last
    /// instance leaves).
    fn put_app<'a>(&'a self, spec: &'a AppSpec, version: &'a str) -> BoxFuture<'a, ()>;

    /// Forgets an app with its pending events and dead letters; `released` are the shared
    /// events it was the last app holding, and `cursor` is past every stored event that named
    /// it (so an app registering again with this id does not get them back after a restart).
    fn delete_app<'a>(
        &'a self,
        app: &'a AppId,
        released: Vec<u64>,
        cursor: u64,
    ) -> BoxFuture<'a, ()>;

    /// Waits until everything sent so far is committed.
    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Commits everything sent so far, then stops the writer, which persists the journal and
    /// ends ([`StoreWriter::join`] waits for that). A write sent after this is lost, and logged:
    /// call it once every task that writes has stopped.
    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// The handle every store write goes through; cheap to clone. The default keeps nothing.
#[derive(Clone)]
pub struct Store(Arc<dyn Storage>);

impl Default for Store {
    fn default() -> Self {
        Self::ephemeral()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir` and reads back what it holds.
    pub fn open(dir: &Path, fsync: bool) -> Result<(Store, StoreWriter, Recovered), StoreError> {
        let (disk, writer, recovered) = Disk::open(dir, fsync)?;
        Ok((Store(Arc::new(disk)), writer, recovered))
    }

    /// A store that keeps nothing (`--ephemeral`): writes are dropped and confirmed at once.
    pub fn ephemeral() -> Store {
        Store(Arc::new(Ephemeral))
    }

    /// Whether what is written survives a restart (false: there is no point encoding records).
    pub fn durable(&self) -> bool {
        self.0.durable()
    }

    /// See [`Storage::write_posts`].
    pub async fn write_posts(&self, writes: Vec<PostWrite>, confirm: bool) -> Option<Committed> {
        self.0.write_posts(writes, confirm).await
    }

    /// See [`Storage::write_events`].
    pub async fn write_events(
        &self,
        app: &AppId,
        writes: Vec<EventWrite>,
        confirm: bool,
    ) -> Option<Committed> {
        self.0.write_events(app, writes, confirm).await
    }

    /// See [`Storage::put_app`].
    pub async fn put_app(&self, spec: &AppSpec, version: &str) {
        self.0.put_app(spec, version).await;
    }

    /// See [`Storage::delete_app`].
    pub async fn delete_app(&self, app: &AppId, released: Vec<u64>, cursor: u64) {
        self.0.delete_app(app, released, cursor).await;
    }

    /// See [`Storage::flush`].
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.0.flush().await
    }

    /// See [`Storage::close`].
    pub async fn close(&self) -> Result<(), StoreError> {
        self.0.close().await
    }
}
