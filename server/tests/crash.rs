//! The crash fault test: `kill -9` the sidecar binary while 10,000 post events flow to an app,
//! restart it on the same address and data directory, and check that every event the backend got
//! an OK for is delivered at least once, in order per backend lane, with nothing lost.

mod common;

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::Binary;
use roomhooks_sdk::{
    App, RoomHooksClient,
    proto::{PostRoomCreateRequest, Room, RoomType},
};

const LANES: usize = 8;
const PER_LANE: usize = 1_250;
const KILL_AFTER: usize = 3_000;

/// Starts the binary on `listen` with `data` as its store, logging only warnings and the line
/// with the address it bound (10,000 events make for a long info log).
fn start(listen: &str, data: &Path) -> Binary {
    Binary::start_with_env(
        &["--listen", listen],
        data,
        &[("RUST_LOG", "warn,roomhooks_server::sidecar=info")],
    )
}

fn event(lane: usize, n: usize) -> PostRoomCreateRequest {
    PostRoomCreateRequest {
        room: Some(Room {
            id: format!("room-{lane}-{n}"),
            r#type: RoomType::Channel as i32,
            ..Default::default()
        }),
        event_id: format!("lane{lane}-{n:05}"),
        wait_for_delivery: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_post_event_the_backend_got_an_ok_for_is_lost_when_the_sidecar_is_killed() {
    let data = tempfile::tempdir().unwrap();
    let first = start("127.0.0.1:0", data.path());
    let (addr, endpoint) = (first.addr.clone(), first.endpoint());
    let first = Arc::new(Mutex::new(Some(first)));

    // The app records every delivery, in arrival order.
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let record = Arc::clone(&seen);
    let mut app = App::builder("auditor")
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(250))
        .post_room_create(move |ctx, _| {
            record.lock().unwrap().push(ctx.event_id);
            async { Ok(()) }
        })
        .build()
        .spawn(endpoint.clone());
    tokio::time::timeout(Duration::from_secs(20), app.registered())
        .await
        .expect("the app registers")
        .unwrap();

    // Backend lanes: sequential within a lane, retrying an event until it gets an OK.
    let oks = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<Vec<Vec<String>>>> = Arc::new(Mutex::new(vec![Vec::new(); LANES]));
    let restarted = Arc::new(Mutex::new(None::<Binary>));
    let killer = {
        let (oks, first, restarted, addr, data_path) = (
            Arc::clone(&oks),
            Arc::clone(&first),
            Arc::clone(&restarted),
            addr.clone(),
            data.path().to_owned(),
        );
        tokio::spawn(async move {
            while oks.load(Ordering::SeqCst) < KILL_AFTER {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let mut sidecar = first.lock().unwrap().take().unwrap();
            sidecar.kill(); // SIGKILL: no shutdown, no flush
            let killed_at = oks.load(Ordering::SeqCst);
            let again = tokio::task::spawn_blocking(move || start(&addr, &data_path))
                .await
                .unwrap();
            *restarted.lock().unwrap() = Some(again);
            killed_at
        })
    };
    let failures = Arc::new(AtomicUsize::new(0));
    let lanes: Vec<_> = (0..LANES)
        .map(|lane| {
            let (endpoint, oks, acked, failures) = (
                endpoint.clone(),
                Arc::clone(&oks),
                Arc::clone(&acked),
                Arc::clone(&failures),
            );
            tokio::spawn(async move {
                let mut backend = None;
                for n in 0..PER_LANE {
                    loop {
                        if backend.is_none() {
                            backend = RoomHooksClient::connect(endpoint.clone()).await.ok();
                        }
                        let Some(client) = backend.clone() else {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        match client
                            .with_deadline(Duration::from_secs(5))
                            .post_room_create(event(lane, n))
                            .await
                        {
                            Ok(_) => {
                                acked.lock().unwrap()[lane].push(event(lane, n).event_id);
                                oks.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            Err(_) => {
                                failures.fetch_add(1, Ordering::SeqCst);
                                backend = None;
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for lane in lanes {
        tokio::time::timeout(Duration::from_secs(120), lane)
            .await
            .expect("lanes finish")
            .unwrap();
    }
    let killed_at = killer.await.unwrap();

    // Every OK'd event must arrive (at least once) within a bounded time.
    let acked = acked.lock().unwrap().clone();
    let wanted: HashSet<&String> = acked.iter().flatten().collect();
    let mut delivered = HashSet::new();
    for _ in 0..600 {
        delivered = seen.lock().unwrap().iter().cloned().collect::<HashSet<_>>();
        if wanted.iter().all(|id| delivered.contains(*id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lost: Vec<_> = wanted
        .iter()
        .filter(|id| !delivered.contains(**id))
        .collect();
    let seen = seen.lock().unwrap().clone();
    println!(
        "crash test: sent {} events in {LANES} lanes, backend OKs {}, sidecar killed -9 after {killed_at} OKs, \
         {} failed attempts retried by the backend, delivered {} distinct ({} deliveries, {} duplicates), lost {}",
        LANES * PER_LANE,
        wanted.len(),
        failures.load(Ordering::SeqCst),
        delivered.len(),
        seen.len(),
        seen.len() - delivered.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "lost {} acknowledged events, e.g. {:?}",
        lost.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    assert_eq!(wanted.len(), LANES * PER_LANE);

    // Per lane, first deliveries follow the order the backend's OKs came in.
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (i, id) in seen.iter().enumerate() {
        first_seen.entry(id.as_str()).or_insert(i);
    }
    for lane in &acked {
        let positions: Vec<usize> = lane.iter().map(|id| first_seen[id.as_str()]).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "lane delivered out of order"
        );
    }
    app.abort();
    drop(restarted);
}
