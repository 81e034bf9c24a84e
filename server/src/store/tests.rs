//! The store's own tests: keys, the directory lock, and what survives a reopen.

use super::{
    keys::{key, split_key},
    *,
};
use prost::Message;
use roomhooks::v1::PostEvent;

use crate::{
    apps::spec::FailurePolicy,
    hook::{Hook, HookSet, RoomTypeSet},
};

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
