//! The holds on a shared store record. Each queue that took an event holds it, and so does
//! its acceptance until the record is written; whoever lets go last — by an ack, a drop on
//! overflow, or a stop — deletes the record, exactly once.
//!
//! The queues run without a store and their delivery tasks are never polled (the runtime
//! they are spawned on is only entered, never driven), so the writes an ack leaves for the
//! delivery task stay in the queue's state, where these tests read them.

use std::{sync::Arc, time::Duration};

use roomhooks::v1::{Room, post_event};

use super::*;
use crate::{
    hook::Hook,
    ids::{AppId, EventId, InstanceId},
    lifecycle::tasks::Tasks,
    post::sequence::Sequence,
    store::{EventWrite, Store},
};

/// A runtime to spawn the queues' delivery tasks on, never driven: they never run.
fn idle_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
}

fn config(max_queued: usize) -> PostConfig {
    PostConfig {
        max_queued,
        max_bytes: 1 << 20,
        window: 16,
        ack_timeout: Duration::from_secs(30),
        max_attempts: 10,
        dedupe_window: Duration::from_secs(60),
    }
}

/// A queue for `app` holding at most `max_queued` events, with no store.
fn queue(app: &str, max_queued: usize, tasks: &Tasks) -> Arc<PostQueue> {
    queue_with(app, config(max_queued), tasks)
}

/// A queue for `app` with `config`, with no store.
fn queue_with(app: &str, config: PostConfig, tasks: &Tasks) -> Arc<PostQueue> {
    let queue = PostQueue::new(
        AppId::parse(app).expect("a valid app id"),
        config,
        Store::ephemeral(),
        Arc::new(Sequence::new(1)),
        &mut Recovery::default(),
        Arc::default(),
        tasks,
    );
    queue.start(tasks);
    queue
}

fn event(id: &str) -> Arc<PostEventData> {
    Arc::new(PostEventData::new(
        EventId::from_ack(id),
        Hook::PostRoomCreate,
        post_event::Payload::Room(Room {
            id: format!("room-{id}"),
            ..Room::default()
        }),
    ))
}

/// Offers `event`, numbered `seq`, to each of `queues`; returns each admission's writes.
fn offer(queues: &[&Arc<PostQueue>], event: &Arc<PostEventData>, seq: u64) -> Vec<Vec<EventWrite>> {
    queues
        .iter()
        .map(|queue| {
            let admitted = queue.admit_many([Offer {
                event,
                seq,
                accepted_unix_ms: 0,
                wait: false,
            }]);
            assert_eq!(admitted.queued, [true], "a new event is queued");
            admitted.writes
        })
        .collect()
}

/// Accepts `event` into every queue as `accept` does: held for the acceptance while it is
/// offered, then let go once its record would be written. True if the acceptance let go
/// last (and so deletes the record itself).
fn accept(queues: &[&Arc<PostQueue>], event: &Arc<PostEventData>, seq: u64) -> bool {
    let acceptance = Hold::new(event, seq);
    offer(queues, event, seq);
    acceptance.release().is_some()
}

fn ack(queue: &PostQueue, id: &str) {
    let instance = InstanceId::parse("instance-1").expect("a valid instance id");
    assert!(
        queue.ack(&EventId::from_ack(id), &instance),
        "{id} awaits an ack"
    );
}

/// The shared records `writes` delete.
fn deleted(writes: &[EventWrite]) -> Vec<u64> {
    writes
        .iter()
        .filter_map(|write| match write {
            EventWrite::DeletePost(seq) => Some(*seq),
            _ => None,
        })
        .collect()
}

/// The shared records the queue's next store write deletes (taken, as its delivery task
/// takes them).
fn deletes_left_by_acks(queue: &PostQueue) -> Vec<u64> {
    deleted(&std::mem::take(&mut queue.lock().unwritten))
}

#[test]
fn a_record_held_by_three_queues_is_deleted_by_the_last_to_acknowledge_it_and_only_by_it() {
    let runtime = idle_runtime();
    let _entered = runtime.enter();
    let tasks = Tasks::new();
    let (a, b, c) = (
        queue("a", 100, &tasks),
        queue("b", 100, &tasks),
        queue("c", 100, &tasks),
    );
    let e1 = event("e1");
    assert!(!accept(&[&a, &b, &c], &e1, 1), "the queues still hold it");

    ack(&a, "e1");
    assert_eq!(
        deletes_left_by_acks(&a),
        [] as [u64; 0],
        "b and c still hold it"
    );
    ack(&c, "e1");
    assert_eq!(deletes_left_by_acks(&c), [] as [u64; 0], "b still holds it");
    ack(&b, "e1");
    assert_eq!(deletes_left_by_acks(&b), [1], "b let go last");
}

#[test]
fn no_queue_deletes_a_record_its_acceptance_is_still_writing() {
    let runtime = idle_runtime();
    let _entered = runtime.enter();
    let tasks = Tasks::new();
    let (a, b) = (queue("a", 100, &tasks), queue("b", 100, &tasks));
    let e1 = event("e1");
    let acceptance = Hold::new(&e1, 1);
    offer(&[&a, &b], &e1, 1);

    // Both apps acknowledge before the acceptance has sent the record to the store.
    ack(&a, "e1");
    ack(&b, "e1");

    assert_eq!(deletes_left_by_acks(&a), [] as [u64; 0]);
    assert_eq!(deletes_left_by_acks(&b), [] as [u64; 0]);
    assert!(
        acceptance.release().is_some(),
        "the acceptance lets go last and deletes the record"
    );
}

#[test]
fn a_queue_that_drops_the_event_on_overflow_deletes_the_record_when_it_held_it_last() {
    let runtime = idle_runtime();
    let _entered = runtime.enter();
    let tasks = Tasks::new();
    let (small, roomy) = (queue("small", 1, &tasks), queue("roomy", 100, &tasks));
    let e1 = event("e1");
    assert!(!accept(&[&small, &roomy], &e1, 1));
    ack(&roomy, "e1");
    assert_eq!(
        deletes_left_by_acks(&roomy),
        [] as [u64; 0],
        "small still holds it"
    );

    // e2 pushes e1 out of the small queue, the last one holding it.
    let writes = offer(&[&small], &event("e2"), 2);

    assert_eq!(deleted(&writes[0]), [1]);
    assert_eq!(small.dropped(), 1);
}

#[test]
fn a_stopped_queue_hands_back_only_the_records_it_held_last() {
    let runtime = idle_runtime();
    let _entered = runtime.enter();
    let tasks = Tasks::new();
    let (kept, removed) = (queue("kept", 100, &tasks), queue("removed", 100, &tasks));
    let (e1, e2) = (event("e1"), event("e2"));
    assert!(!accept(&[&kept, &removed], &e1, 1));
    assert!(!accept(&[&kept, &removed], &e2, 2));
    ack(&kept, "e1");

    let (dropped, released) = removed.stop();

    assert_eq!(dropped, 2);
    assert_eq!(released, [1], "e2 is still held by the queue kept");
    ack(&kept, "e2");
    assert_eq!(deletes_left_by_acks(&kept), [2]);
}

#[test]
fn a_delete_an_ack_left_unwritten_when_its_queue_stops_is_handed_back() {
    let runtime = idle_runtime();
    let _entered = runtime.enter();
    let tasks = Tasks::new();
    let (first, last) = (queue("first", 100, &tasks), queue("last", 100, &tasks));
    let e1 = event("e1");
    assert!(!accept(&[&first, &last], &e1, 1));
    ack(&first, "e1");
    // The last holder's ack decides the delete; its delivery task has not written it yet.
    ack(&last, "e1");

    let (dropped, released) = last.stop();

    assert_eq!(dropped, 0);
    assert_eq!(
        released,
        [1],
        "the stopped queue's caller deletes it with the app"
    );
}

#[test]
fn apps_acknowledging_the_same_events_at_once_on_many_threads_delete_each_record_once() {
    const APPS: usize = 8;
    const EVENTS: u64 = 2_000;
    let runtime = idle_runtime();
    let _entered = runtime.enter();
    let tasks = Tasks::new();
    // Every event in the ack window, so each app can ack them in any order.
    let config = PostConfig {
        window: usize::try_from(EVENTS).unwrap(),
        ..config(usize::try_from(EVENTS).unwrap())
    };
    let queues: Vec<_> = (0..APPS)
        .map(|i| queue_with(&format!("app{i}"), config, &tasks))
        .collect();
    let holders: Vec<&Arc<PostQueue>> = queues.iter().collect();
    for seq in 1..=EVENTS {
        assert!(!accept(&holders, &event(&format!("e{seq}")), seq));
    }

    // Each app acks every event on its own thread, all at once, and keeps the deletes its
    // acks decided.
    let deletes: Vec<u64> = std::thread::scope(|scope| {
        let threads: Vec<_> = queues
            .iter()
            .enumerate()
            .map(|(i, queue)| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    // Apps walk the events from different starting points.
                    for k in 0..EVENTS {
                        let seq = (k + i as u64 * EVENTS / APPS as u64) % EVENTS + 1;
                        ack(queue, &format!("e{seq}"));
                        mine.extend(deletes_left_by_acks(queue));
                    }
                    mine
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("an acking thread"))
            .collect()
    });

    let mut sorted = deletes.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=EVENTS).collect::<Vec<_>>(),
        "each record is deleted exactly once"
    );
}
