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

mod keys;
mod records;
mod recover;
mod writer;

use std::{path::Path, thread::JoinHandle};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use prost::Message;
use tokio::sync::{mpsc, oneshot};

pub use self::records::{Recovered, RecoveredApp, RecoveredPost, StoredEvent};
use self::{keys::post_key, records::StoredApp, recover::recover, writer::write_loop};
use crate::{
    apps::spec::{AppSpec, FailurePolicy},
    ids::AppId,
};

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

enum Op {
    Posts {
        writes: Vec<PostWrite>,
        done: Option<CommitSender>,
    },
    Events {
        app: AppId,
        writes: Vec<EventWrite>,
        done: Option<CommitSender>,
    },
    PutApp {
        app: AppId,
        bytes: Vec<u8>,
    },
    DeleteApp {
        app: AppId,
        released: Vec<u64>,
        cursor: u64,
    },
    Flush {
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Commit what came before, then stop.
    Close {
        done: oneshot::Sender<Result<(), StoreError>>,
    },
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

/// Most operations one commit takes.
const MAX_GROUP: usize = 8192;
/// Operations waiting for the writer, at most (senders wait beyond it).
const QUEUE_CAPACITY: usize = 65_536;

/// A handle to the store; cheap to clone. The writer thread stops when every handle is dropped.
#[derive(Clone)]
pub struct Store {
    ops: mpsc::Sender<Op>,
}

/// Owns the writer thread; dropping it after the last [`Store`] handle lets the thread finish.
pub struct StoreWriter {
    thread: Option<JoinHandle<()>>,
}

impl StoreWriter {
    /// Waits for the writer to drain and stop (call after the last handle is dropped).
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The memtable size of the short-lived keyspaces (events, posts); fjall flushes it to a segment
/// when full. The 64 MiB default let a 50,000-event burst hold 253 MB of RSS; 32 MiB measured no
/// faster than 8 MiB and used 30 % more memory at peak (docs/performance.md).
const EVENTS_MEMTABLE_BYTES: u64 = 8 * 1024 * 1024;

/// The store's keyspaces.
struct Keyspaces {
    /// Events an app holds on its own, by app and sequence number.
    events: Keyspace,
    /// Shared events, by sequence number.
    posts: Keyspace,
    /// Each app's cursor, by app.
    cursors: Keyspace,
    /// Redelivery attempts of shared events, by app and sequence number.
    attempts: Keyspace,
    /// Dead letters, by app and sequence number.
    dead: Keyspace,
    /// Registrations, by app.
    apps: Keyspace,
}

impl Store {
    /// Opens (or creates) the store in `dir` and reads back what it holds.
    pub fn open(dir: &Path, fsync: bool) -> Result<(Store, StoreWriter, Recovered), StoreError> {
        // Paths in errors are absolute: the operator may not know the sidecar's working directory.
        let dir = &std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        let open_error = |why: String| StoreError::Open {
            dir: dir.clone(),
            why,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_error(format!("cannot create it: {e}")))?;
        let db = Database::builder(dir)
            .cache_size(8 * 1024 * 1024)
            .worker_threads(1)
            .open()
            .map_err(|err| match err {
                fjall::Error::Locked => in_use(dir),
                other => open_error(other.to_string()),
            })?;
        // Who holds the directory, for the next process that finds it locked.
        let pid_file = dir.join(PID_FILE);
        if let Err(err) = std::fs::write(&pid_file, std::process::id().to_string()) {
            tracing::warn!("cannot write {}: {err}", pid_file.display());
        }
        // Events live briefly (deleted on ack): a bounded memtable keeps bursts from holding
        // hundreds of MB.
        let short_lived =
            || KeyspaceCreateOptions::default().max_memtable_size(EVENTS_MEMTABLE_BYTES);
        let keyspaces = Keyspaces {
            events: db.keyspace("events", short_lived)?,
            posts: db.keyspace("posts", short_lived)?,
            cursors: db.keyspace("cursors", KeyspaceCreateOptions::default)?,
            attempts: db.keyspace("attempts", KeyspaceCreateOptions::default)?,
            dead: db.keyspace("dead", KeyspaceCreateOptions::default)?,
            apps: db.keyspace("apps", KeyspaceCreateOptions::default)?,
        };
        let recovered = recover(&keyspaces)?;
        if !recovered.finished.is_empty() {
            let mut batch = db.batch();
            for &seq in &recovered.finished {
                batch.remove(&keyspaces.posts, post_key(seq));
            }
            batch.commit()?;
        }
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let mode = if fsync {
            PersistMode::SyncData
        } else {
            PersistMode::Buffer
        };
        let thread = std::thread::Builder::new()
            .name("roomhooks-store".into())
            .spawn(move || write_loop(db, keyspaces, rx, mode))
            .map_err(|e| open_error(format!("cannot start the store writer: {e}")))?;
        Ok((
            Store { ops: tx },
            StoreWriter {
                thread: Some(thread),
            },
            recovered,
        ))
    }

    async fn send(&self, op: Op) {
        if self.ops.send(op).await.is_err() {
            tracing::error!("the post-event store writer has stopped; a write was lost");
        }
    }

    /// Applies `writes` to the shared events in order, in one commit group. With `confirm`, the
    /// receiver resolves once they are committed.
    pub async fn write_posts(&self, writes: Vec<PostWrite>, confirm: bool) -> Option<Committed> {
        let (done, rx) = confirmation(confirm);
        self.send(Op::Posts { writes, done }).await;
        rx
    }

    /// Applies `writes` to `app`'s post events in order, in one commit group. With `confirm`,
    /// the receiver resolves once they are committed.
    pub async fn write_events(
        &self,
        app: &AppId,
        writes: Vec<EventWrite>,
        confirm: bool,
    ) -> Option<Committed> {
        let (done, rx) = confirmation(confirm);
        self.send(Op::Events {
            app: app.clone(),
            writes,
            done,
        })
        .await;
        rx
    }

    /// Remembers an app's registration, seen connected now (on register, and when its last
    /// instance leaves).
    pub async fn put_app(&self, spec: &AppSpec, version: &str) {
        let stored = StoredApp {
            interfaces: spec.interfaces.iter().map(|h| h.to_wire() as i32).collect(),
            priority: spec.priority,
            fail_closed: spec.failure_policy == FailurePolicy::Fail,
            timeout_ms: u64::try_from(spec.timeout.as_millis()).unwrap_or(u64::MAX),
            room_types: spec.room_types.iter().map(|t| t as i32).collect(),
            version: version.to_owned(),
            last_seen_unix_ms: i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis(),
            )
            .unwrap_or(i64::MAX),
        };
        self.send(Op::PutApp {
            app: spec.app_id.clone(),
            bytes: stored.encode_to_vec(),
        })
        .await;
    }

    /// Forgets an app with its pending events and dead letters; `released` are the shared
    /// events it was the last app holding, and `cursor` is past every stored event that named
    /// it (so an app registering again with this id does not get them back after a restart).
    pub async fn delete_app(&self, app: &AppId, released: Vec<u64>, cursor: u64) {
        self.send(Op::DeleteApp {
            app: app.clone(),
            released,
            cursor,
        })
        .await;
    }

    /// Waits until everything sent so far is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (done, rx) = oneshot::channel();
        self.send(Op::Flush { done }).await;
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Failed("the store writer stopped".into())))
    }

    /// Commits everything sent so far, then stops the writer, which persists the journal and
    /// ends ([`StoreWriter::join`] waits for that). A write sent after this is lost, and logged:
    /// call it once every task that writes has stopped.
    pub async fn close(&self) -> Result<(), StoreError> {
        let (done, rx) = oneshot::channel();
        self.send(Op::Close { done }).await;
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Failed("the store writer stopped".into())))
    }
}

/// The file in the data directory naming the process that holds it.
const PID_FILE: &str = "roomhooks.pid";

/// The error for a data directory another process holds, naming it when its pid file does.
fn in_use(dir: &Path) -> StoreError {
    let pid = std::fs::read_to_string(dir.join(PID_FILE))
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    StoreError::InUse {
        dir: dir.to_owned(),
        pid,
    }
}

fn confirmation(confirm: bool) -> (Option<CommitSender>, Option<Committed>) {
    if confirm {
        let (done, rx) = oneshot::channel();
        (Some(done), Some(rx))
    } else {
        (None, None)
    }
}

#[cfg(test)]
mod tests;
