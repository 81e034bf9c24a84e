//! The store on disk (fjall): the handle that sends operations to the writer thread, opening
//! the data directory (and saying who holds it when it is locked), and its keyspaces.

use std::{path::Path, thread::JoinHandle};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use futures_util::future::BoxFuture;
use prost::Message;
use tokio::sync::{mpsc, oneshot};

use super::{
    CommitSender, Committed, EventWrite, PostWrite, Recovered, Storage, StoreError, keys::post_key,
    records::StoredApp, recover::recover, writer::write_loop,
};
use crate::{
    apps::spec::{AppSpec, FailurePolicy},
    ids::AppId,
};

/// An operation for the writer thread.
pub(super) enum Op {
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

/// Most operations one commit takes.
pub(super) const MAX_GROUP: usize = 8192;
/// Operations waiting for the writer, at most (senders wait beyond it).
const QUEUE_CAPACITY: usize = 65_536;

/// The store on disk: it sends every write to the writer thread, which stops when this is
/// dropped (with the last [`Store`](super::Store) handle holding it).
pub(super) struct Disk {
    ops: mpsc::Sender<Op>,
}

/// Owns the writer thread; dropping it after the last [`Store`](super::Store) handle lets the
/// thread finish.
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
pub(super) struct Keyspaces {
    /// Events an app holds on its own, by app and sequence number.
    pub(super) events: Keyspace,
    /// Shared events, by sequence number.
    pub(super) posts: Keyspace,
    /// Each app's cursor, by app.
    pub(super) cursors: Keyspace,
    /// Redelivery attempts of shared events, by app and sequence number.
    pub(super) attempts: Keyspace,
    /// Dead letters, by app and sequence number.
    pub(super) dead: Keyspace,
    /// Registrations, by app.
    pub(super) apps: Keyspace,
}

impl Disk {
    /// Opens (or creates) the store in `dir` and reads back what it holds.
    pub(super) fn open(
        dir: &Path,
        fsync: bool,
    ) -> Result<(Disk, StoreWriter, Recovered), StoreError> {
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
            Disk { ops: tx },
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
}

// === impl Storage for Disk ===

impl Storage for Disk {
    fn durable(&self) -> bool {
        true
    }

    fn write_posts(
        &self,
        writes: Vec<PostWrite>,
        confirm: bool,
    ) -> BoxFuture<'_, Option<Committed>> {
        Box::pin(async move {
            let (done, rx) = confirmation(confirm);
            self.send(Op::Posts { writes, done }).await;
            rx
        })
    }

    fn write_events<'a>(
        &'a self,
        app: &'a AppId,
        writes: Vec<EventWrite>,
        confirm: bool,
    ) -> BoxFuture<'a, Option<Committed>> {
        Box::pin(async move {
            let (done, rx) = confirmation(confirm);
            self.send(Op::Events {
                app: app.clone(),
                writes,
                done,
            })
            .await;
            rx
        })
    }

    fn put_app<'a>(&'a self, spec: &'a AppSpec, version: &'a str) -> BoxFuture<'a, ()> {
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
        Box::pin(self.send(Op::PutApp {
            app: spec.app_id.clone(),
            bytes: stored.encode_to_vec(),
        }))
    }

    fn delete_app<'a>(
        &'a self,
        app: &'a AppId,
        released: Vec<u64>,
        cursor: u64,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.send(Op::DeleteApp {
            app: app.clone(),
            released,
            cursor,
        }))
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let (done, rx) = oneshot::channel();
            self.send(Op::Flush { done }).await;
            rx.await
                .unwrap_or_else(|_| Err(StoreError::Failed("the store writer stopped".into())))
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let (done, rx) = oneshot::channel();
            self.send(Op::Close { done }).await;
            rx.await
                .unwrap_or_else(|_| Err(StoreError::Failed("the store writer stopped".into())))
        })
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
