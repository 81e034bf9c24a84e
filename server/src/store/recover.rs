//! Reading the store back at start: the apps it remembers, each app's unfinished events, dead
//! letters, the shared events some app has not finished, and the next sequence number.

use std::collections::BTreeMap;

use fjall::Keyspace;
use prost::Message;

use super::{
    StoreError,
    disk::Keyspaces,
    keys::split_key,
    records::{Recovered, RecoveredApp, RecoveredPost, StoredApp, StoredEvent},
};
use crate::{
    apps::spec::{AppSpec, FailurePolicy},
    hook::{Hook, HookSet, RoomTypeSet},
    ids::AppId,
};

/// Reads everything back, in stages: the apps, the events apps hold on their own and the dead
/// letters, the cursors and attempts, then the shared events some app has not finished.
pub(super) fn recover(ks: &Keyspaces) -> Result<Recovered, StoreError> {
    let mut recovered = Recovered {
        apps: recover_apps(&ks.apps)?,
        ..Recovered::default()
    };
    let mut max_seq = recover_events(&ks.events, &mut recovered.events)?;
    max_seq = max_seq.max(recover_events(&ks.dead, &mut recovered.dead)?);
    let cursors = recover_cursors(&ks.cursors)?;
    let attempts = recover_attempts(&ks.attempts)?;
    max_seq = max_seq.max(recover_posts(
        &ks.posts,
        &cursors,
        &attempts,
        &mut recovered,
    )?);
    max_seq = max_seq.max(cursors.values().copied().max().unwrap_or(0));
    recovered.next_seq = max_seq + 1;
    Ok(recovered)
}

/// Per-app event records (`events` or `dead`) into `into`; the highest sequence number read.
fn recover_events(
    keyspace: &Keyspace,
    into: &mut BTreeMap<AppId, Vec<(u64, StoredEvent)>>,
) -> Result<u64, StoreError> {
    let mut max_seq = 0;
    for item in keyspace.iter() {
        let (k, v) = item.into_inner()?;
        match (split_key(&k), StoredEvent::decode(&*v)) {
            (Some((app, seq)), Ok(event)) => {
                max_seq = max_seq.max(seq);
                into.entry(app).or_default().push((seq, event));
            }
            _ => tracing::warn!("skipping an unreadable event record in the store"),
        }
    }
    Ok(max_seq)
}

/// Each app's cursor: every shared event below it is done for the app.
fn recover_cursors(cursors: &Keyspace) -> Result<BTreeMap<AppId, u64>, StoreError> {
    let mut out = BTreeMap::new();
    for item in cursors.iter() {
        let (k, v) = item.into_inner()?;
        let app = std::str::from_utf8(&k)
            .ok()
            .and_then(|s| AppId::parse(s).ok());
        let seq = <[u8; 8]>::try_from(&*v).ok().map(u64::from_be_bytes);
        match (app, seq) {
            (Some(app), Some(seq)) => {
                out.insert(app, seq);
            }
            _ => tracing::warn!("skipping an unreadable cursor record in the store"),
        }
    }
    Ok(out)
}

/// The last delivery attempt of shared events redelivered to an app, by app and sequence.
fn recover_attempts(attempts: &Keyspace) -> Result<BTreeMap<(AppId, u64), u32>, StoreError> {
    let mut out = BTreeMap::new();
    for item in attempts.iter() {
        let (k, v) = item.into_inner()?;
        let attempt = <[u8; 4]>::try_from(&*v).ok().map(u32::from_be_bytes);
        match (split_key(&k), attempt) {
            (Some(key), Some(attempt)) => {
                out.insert(key, attempt);
            }
            _ => tracing::warn!("skipping an unreadable attempt record in the store"),
        }
    }
    Ok(out)
}

/// Shared events with the apps that have not finished them into `recovered.posts` (those
/// every app finished into `recovered.finished`); the highest sequence number read.
fn recover_posts(
    posts: &Keyspace,
    cursors: &BTreeMap<AppId, u64>,
    attempts: &BTreeMap<(AppId, u64), u32>,
    recovered: &mut Recovered,
) -> Result<u64, StoreError> {
    let mut max_seq = 0;
    for item in posts.iter() {
        let (k, v) = item.into_inner()?;
        let seq = <[u8; 8]>::try_from(&*k).ok().map(u64::from_be_bytes);
        let (Some(seq), Ok(mut stored)) = (seq, StoredEvent::decode(&*v)) else {
            tracing::warn!("skipping an unreadable shared event in the store");
            continue;
        };
        max_seq = max_seq.max(seq);
        let apps = std::mem::take(&mut stored.apps)
            .iter()
            .filter_map(|app| {
                let parsed = AppId::parse(app);
                if parsed.is_err() {
                    tracing::warn!(
                        seq,
                        "skipping an unreadable app id in a shared event in the store"
                    );
                }
                parsed.ok()
            })
            // An app past this event acknowledged it before the restart.
            .filter(|app| cursors.get(app).is_none_or(|&cursor| seq >= cursor))
            .map(|app| {
                let attempt = attempts.get(&(app.clone(), seq)).copied().unwrap_or(0);
                (app, attempt)
            })
            .collect::<Vec<_>>();
        if apps.is_empty() {
            // Every app it went to had finished it; only its delete was not written.
            recovered.finished.push(seq);
            continue;
        }
        recovered.posts.push(RecoveredPost { seq, stored, apps });
    }
    Ok(max_seq)
}

fn recover_apps(apps: &Keyspace) -> Result<Vec<RecoveredApp>, StoreError> {
    let mut recovered = Vec::new();
    for item in apps.iter() {
        let (k, v) = item.into_inner()?;
        let (Ok(id), Ok(stored)) = (
            std::str::from_utf8(&k)
                .map_err(|_| ())
                .and_then(|s| AppId::parse(s).map_err(|_| ())),
            StoredApp::decode(&*v),
        ) else {
            tracing::warn!("skipping an unreadable app record in the store");
            continue;
        };
        let spec = AppSpec {
            app_id: id,
            interfaces: HookSet::of(stored.interfaces.iter().filter_map(|&h| Hook::from_wire(h))),
            priority: stored.priority,
            failure_policy: if stored.fail_closed {
                FailurePolicy::Fail
            } else {
                FailurePolicy::Ignore
            },
            timeout: std::time::Duration::from_millis(stored.timeout_ms),
            room_types: RoomTypeSet::from_wire(&stored.room_types),
            essential: HookSet::default(),
            unavailable_message: None,
            rollout: Default::default(),
        };
        let last_seen = u64::try_from(stored.last_seen_unix_ms)
            .ok()
            .filter(|&ms| ms > 0)
            .map(|ms| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms));
        recovered.push(RecoveredApp {
            spec,
            version: stored.version,
            last_seen,
        });
    }
    Ok(recovered)
}
