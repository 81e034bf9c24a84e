//! The writer thread: it owns every write and commits them in groups — whatever arrived while
//! the last commit ran goes into the next one — and answers each confirmed write once its group
//! is committed.

use fjall::{Database, OwnedWriteBatch, PersistMode};
use tokio::sync::mpsc;

use super::{
    CommitSender, EventWrite, PostWrite, StoreError,
    disk::{Keyspaces, MAX_GROUP, Op},
    keys::{key, post_key},
};
use crate::ids::AppId;

/// Runs the writer until every handle is dropped or [`Op::Close`] arrives, then persists the
/// journal.
pub(super) fn write_loop(
    db: Database,
    ks: Keyspaces,
    mut rx: mpsc::Receiver<Op>,
    mode: PersistMode,
) {
    let mut closing = false;
    while !closing && let Some(first) = rx.blocking_recv() {
        let mut group = Group::new(db.batch().durability(Some(mode)));
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(op) = next.take() {
            taken += 1;
            closing = group.apply(&ks, op);
            if taken < MAX_GROUP && !closing {
                next = rx.try_recv().ok();
            }
        }
        group.commit(&ks);
    }
    if let Err(err) = db.persist(PersistMode::SyncAll) {
        tracing::error!("could not flush the post-event store at shutdown: {err}");
    }
}

/// One commit group being built: its batch, who waits for it, and each app's furthest cursor.
struct Group {
    batch: OwnedWriteBatch,
    waiters: Vec<CommitSender>,
    /// Only an app's last cursor in a group is written.
    cursors: Vec<(AppId, u64)>,
}

impl Group {
    fn new(batch: OwnedWriteBatch) -> Self {
        Self {
            batch,
            waiters: Vec::new(),
            cursors: Vec::new(),
        }
    }

    /// Adds `op` to the group; true when it closes the store (nothing more is taken).
    fn apply(&mut self, ks: &Keyspaces, op: Op) -> bool {
        match op {
            Op::Posts { writes, done } => {
                for write in writes {
                    match write {
                        PostWrite::Put(seq, bytes) => {
                            self.batch.insert(&ks.posts, post_key(seq), bytes);
                        }
                        PostWrite::Delete(seq) => self.batch.remove(&ks.posts, post_key(seq)),
                    }
                }
                self.waiters.extend(done);
            }
            Op::Events { app, writes, done } => {
                for write in writes {
                    self.event_write(ks, &app, write);
                }
                self.waiters.extend(done);
            }
            Op::PutApp { app, bytes } => {
                self.batch
                    .insert(&ks.apps, app.as_str().as_bytes().to_vec(), bytes);
            }
            Op::DeleteApp {
                app,
                released,
                cursor,
            } => self.delete_app(ks, &app, released, cursor),
            Op::Flush { done } => self.waiters.push(done),
            Op::Close { done } => {
                self.waiters.push(done);
                return true;
            }
        }
        false
    }

    /// Adds one change to `app`'s post events.
    fn event_write(&mut self, ks: &Keyspaces, app: &AppId, write: EventWrite) {
        let batch = &mut self.batch;
        match write {
            EventWrite::Put(seq, bytes) => batch.insert(&ks.events, key(app, seq), bytes),
            EventWrite::Delete(seq) => batch.remove(&ks.events, key(app, seq)),
            EventWrite::PutDead(seq, bytes) => batch.insert(&ks.dead, key(app, seq), bytes),
            EventWrite::DeleteDead(seq) => batch.remove(&ks.dead, key(app, seq)),
            EventWrite::Attempt(seq, attempt) => {
                batch.insert(&ks.attempts, key(app, seq), attempt.to_be_bytes());
            }
            EventWrite::ForgetAttempt(seq) => batch.remove(&ks.attempts, key(app, seq)),
            EventWrite::Cursor(seq) => note_cursor(&mut self.cursors, app, seq),
            EventWrite::DeletePost(seq) => batch.remove(&ks.posts, post_key(seq)),
        }
    }

    /// Forgets `app`: its registration, own events, dead letters and attempts; deletes the
    /// shared events it `released` last; moves its cursor to `cursor`.
    fn delete_app(&mut self, ks: &Keyspaces, app: &AppId, released: Vec<u64>, cursor: u64) {
        self.batch
            .remove(&ks.apps, app.as_str().as_bytes().to_vec());
        note_cursor(&mut self.cursors, app, cursor);
        for seq in released {
            self.batch.remove(&ks.posts, post_key(seq));
        }
        let mut prefix = app.as_str().as_bytes().to_vec();
        prefix.push(0);
        for keyspace in [&ks.events, &ks.dead, &ks.attempts] {
            for item in keyspace.prefix(&prefix) {
                if let Ok(k) = item.key() {
                    self.batch.remove(keyspace, k);
                }
            }
        }
    }

    /// Writes the group's cursors, commits it, and answers everyone waiting for it.
    fn commit(mut self, ks: &Keyspaces) {
        for (app, seq) in std::mem::take(&mut self.cursors) {
            // A cursor only moves forward: a late write from a queue that was since removed
            // (whose removal moved the cursor past everything) must not move it back.
            let key = app.as_str().as_bytes().to_vec();
            let stored = ks
                .cursors
                .get(&key)
                .ok()
                .flatten()
                .and_then(|v| <[u8; 8]>::try_from(&*v).ok().map(u64::from_be_bytes));
            if stored.is_none_or(|stored| seq > stored) {
                self.batch.insert(&ks.cursors, key, seq.to_be_bytes());
            }
        }
        let result = self.batch.commit().map_err(StoreError::from);
        if let Err(err) = &result {
            tracing::error!("{err}; backends are told their post events were not accepted");
        }
        for waiter in self.waiters {
            let _ = waiter.send(result.clone());
        }
    }
}

/// Notes `app`'s cursor for the group being built (the furthest one wins).
fn note_cursor(cursors: &mut Vec<(AppId, u64)>, app: &AppId, seq: u64) {
    match cursors.iter_mut().find(|(a, _)| a == app) {
        Some((_, cursor)) => *cursor = (*cursor).max(seq),
        None => cursors.push((app.clone(), seq)),
    }
}
