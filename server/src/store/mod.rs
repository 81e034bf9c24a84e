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
mod tests {
    use super::{
        keys::{key, split_key},
        *,
    };
    use crate::hook::{Hook, HookSet, RoomTypeSet};
    use roomhooks::v1::PostEvent;

    /// Commits what was sent, then stops the writer (as the sidecar does at shutdown).
    async fn close(store: Store, writer: StoreWriter) {
        store.flush().await.unwrap();
        drop(store);
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .unwrap();
    }

    #[test]
    fn keys_sort_by_app_then_sequence_and_split_back() {
        let a = AppId::parse("app").unwrap();
        assert!(key(&a, 2) < key(&a, 10));
        assert_eq!(split_key(&key(&a, 77)), Some((a, 77)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_directory_in_use_is_refused_naming_the_process_that_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, writer, _) = Store::open(dir.path(), false).unwrap();
        let Err(refused) = Store::open(dir.path(), false) else {
            panic!("a second open of a held directory must fail");
        };
        let absolute = std::path::absolute(dir.path()).unwrap();
        assert!(
            matches!(&refused, StoreError::InUse { dir: d, pid: Some(pid) }
                if *d == absolute && *pid == std::process::id()),
            "{refused:?}"
        );
        let message = refused.to_string();
        assert!(
            message.contains("is in use by another roomhooks process (pid")
                && message.contains("use another --data-dir or --ephemeral"),
            "{message}"
        );
        close(store, writer).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_and_apps_survive_a_reopen() {
        let dir = std::env::temp_dir().join(format!("roomhooks-store-{:x}", rand::random::<u64>()));
        let app = AppId::parse("keeper").unwrap();
        let spec = AppSpec {
            app_id: app.clone(),
            interfaces: HookSet::of([Hook::PostRoomCreate]),
            priority: 3,
            failure_policy: FailurePolicy::Fail,
            timeout: std::time::Duration::from_millis(500),
            room_types: RoomTypeSet::default(),
            essential: HookSet::default(),
            unavailable_message: None,
            rollout: Default::default(),
        };
        {
            let (store, writer, recovered) = Store::open(&dir, false).unwrap();
            assert!(recovered.apps.is_empty());
            store.put_app(&spec, "1.0").await;
            for seq in 1..=3 {
                let event = StoredEvent {
                    event: Some(PostEvent {
                        event_id: format!("e{seq}"),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                store
                    .write_events(
                        &app,
                        vec![EventWrite::Put(seq, event.encode_to_vec())],
                        true,
                    )
                    .await
                    .expect("confirmed")
                    .await
                    .unwrap()
                    .unwrap();
            }
            store
                .write_events(&app, vec![EventWrite::Delete(2)], false)
                .await;
            close(store, writer).await;
        }
        let (_store, _writer, recovered) = Store::open(&dir, false).unwrap();
        assert_eq!(recovered.apps.len(), 1);
        assert_eq!(recovered.apps[0].spec, spec);
        assert_eq!(recovered.apps[0].version, "1.0");
        let seen = recovered.apps[0].last_seen.expect("last seen is stored");
        assert!(seen.elapsed().unwrap_or_default() < std::time::Duration::from_secs(60));
        let seqs: Vec<u64> = recovered.events[&app].iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [1, 3]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shared_event_comes_back_only_for_unfinished_apps_and_a_finished_one_is_deleted() {
        let dir = std::env::temp_dir().join(format!("roomhooks-store-{:x}", rand::random::<u64>()));
        let (done, pending) = (
            AppId::parse("done").unwrap(),
            AppId::parse("pending").unwrap(),
        );
        {
            let (store, writer, _) = Store::open(&dir, false).unwrap();
            let shared = StoredEvent {
                event: Some(PostEvent {
                    event_id: "e5".into(),
                    ..Default::default()
                }),
                apps: vec!["done".into(), "pending".into()],
                ..Default::default()
            };
            let finished = StoredEvent {
                apps: vec!["done".into()],
                ..shared.clone()
            };
            let puts = vec![
                PostWrite::Put(4, finished.encode_to_vec()),
                PostWrite::Put(5, shared.encode_to_vec()),
            ];
            store
                .write_posts(puts, true)
                .await
                .expect("confirmed")
                .await
                .unwrap()
                .unwrap();
            store
                .write_events(&done, vec![EventWrite::Cursor(6)], false)
                .await;
            let writes = vec![EventWrite::Attempt(5, 3), EventWrite::Cursor(5)];
            store.write_events(&pending, writes, false).await;
            close(store, writer).await;
        }
        {
            let (store, writer, recovered) = Store::open(&dir, false).unwrap();
            assert_eq!(recovered.posts.len(), 1);
            assert_eq!(recovered.posts[0].seq, 5);
            assert_eq!(recovered.posts[0].apps, vec![(pending, 3)]);
            assert!(recovered.posts[0].stored.apps.is_empty());
            assert_eq!(
                recovered.finished,
                [4],
                "every app it went to had finished it"
            );
            assert_eq!(recovered.next_seq, 7, "past every stored number and cursor");
            close(store, writer).await;
        }
        let (_store, _writer, recovered) = Store::open(&dir, false).unwrap();
        assert!(
            recovered.finished.is_empty(),
            "deleted when the store opened"
        );
        assert_eq!(recovered.posts.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cursor_never_moves_back_and_a_removed_app_is_past_all_its_events() {
        let dir = std::env::temp_dir().join(format!("roomhooks-store-{:x}", rand::random::<u64>()));
        let (x, removed) = (AppId::parse("x").unwrap(), AppId::parse("gone").unwrap());
        let record = |apps: &[&str]| {
            StoredEvent {
                event: Some(PostEvent::default()),
                apps: apps.iter().map(|a| (*a).to_owned()).collect(),
                ..Default::default()
            }
            .encode_to_vec()
        };
        {
            let (store, writer, _) = Store::open(&dir, false).unwrap();
            let puts = vec![
                PostWrite::Put(7, record(&["x", "y"])),
                PostWrite::Put(8, record(&["gone"])),
            ];
            store.write_posts(puts, false).await;
            store
                .write_events(&x, vec![EventWrite::Cursor(10)], false)
                .await;
            store.flush().await.unwrap();
            // A late write from before, in a later group.
            store
                .write_events(&x, vec![EventWrite::Cursor(5)], false)
                .await;
            store.delete_app(&removed, Vec::new(), 20).await;
            close(store, writer).await;
        }
        let (_store, _writer, recovered) = Store::open(&dir, false).unwrap();
        assert_eq!(recovered.posts.len(), 1);
        assert_eq!(
            recovered.posts[0].apps,
            vec![(AppId::parse("y").unwrap(), 0)],
            "x stays past 7"
        );
        assert_eq!(recovered.finished, [8], "the removed app is past its event");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
