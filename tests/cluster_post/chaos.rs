//! A sidecar and a NATS node killed while events are sent round robin to three sidecars.

use super::*;

/// One PostRoomCreate for the load test.
fn load_item(i: usize) -> PostEventsItem {
    PostEventsItem {
        event: Some(Event::RoomCreate(PostRoomCreateRequest {
            room: Some(stored_room(&format!("r{i}"), RoomType::Channel)),
            event_id: format!("evt-{i}"),
            wait_for_delivery: false,
        })),
    }
}

/// An app whose every instance reports the event ids it handles on `tx`, tagged with `app_id`.
fn counter(app_id: &'static str, tx: mpsc::UnboundedSender<(&'static str, String)>) -> App {
    App::builder(app_id)
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .post_room_create(move |ctx, _| {
            let _ = tx.send((app_id, ctx.event_id));
            async { Ok(()) }
        })
        .build()
}

/// A sidecar on a runtime of its own, which it can lose at once as a process killed with
/// `kill -9` would: nothing graceful runs (no nak, no goodbye heartbeat, no stream ends with OK);
/// its sockets just close.
struct Crashable {
    addr: std::net::SocketAddr,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Crashable {
    /// Starts a sidecar with `config` (retrying while its id is still held by a killed
    /// predecessor, until the member TTL forgets it).
    async fn start(config: Config) -> Self {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (kill, killed) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for the sidecar");
            let sidecar = runtime.block_on(async {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    match Sidecar::start(config.clone()).await {
                        Ok(sidecar) => break sidecar,
                        Err(e) if Instant::now() < deadline => {
                            eprintln!("the sidecar does not start yet: {e}");
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Err(e) => panic!("the sidecar does not start: {e}"),
                    }
                }
            });
            let _ = ready_tx.send(sidecar.local_addr());
            let _ = killed.recv();
            // Like SIGKILL: no Drop, no shutdown; every task is dropped where it stands.
            std::mem::forget(sidecar);
            runtime.shutdown_background();
        });
        let addr = ready_rx.await.expect("the sidecar started");
        Self {
            addr,
            kill: Some(kill),
            thread: Some(thread),
        }
    }

    /// Loses the sidecar at once.
    fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Crashable {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn events_sent_round_robin_to_three_sidecars_are_all_delivered_while_a_sidecar_and_a_nats_node_are_killed()
 {
    let total: usize = std::env::var("ROOMHOOKS_CLUSTER_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    const BATCH: usize = 100;
    let mut nats = NatsCluster::start(3).await;
    let urls: Vec<String> = nats.urls().split(',').map(String::from).collect();
    let name = cluster_name("load");
    let data = tempfile::tempdir().unwrap();
    let config = |i: usize, listen: std::net::SocketAddr| {
        let mut c = Config {
            listen,
            metrics_listen: MaybeAddr::Off,
            data_dir: data.path().join(format!("s{i}")),
            ..Config::default()
        };
        join(&mut c, &urls.join(","), &name, i);
        // Each sidecar tries a different node first.
        let mut mine = urls.clone();
        mine.rotate_left(i);
        c.cluster_url = Some(mine.join(","));
        c.cluster_replicas = 3;
        c.post.ack_timeout = Duration::from_secs(5);
        c
    };
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut s1 = Crashable::start(config(1, any)).await;
    let s0 = Harness::start_with(|c| *c = config(0, any)).await;
    let s2 = Harness::start_with(|c| *c = config(2, any)).await;
    let endpoints = [
        s0.endpoint.clone(),
        format!("http://{}", s1.addr),
        s2.endpoint.clone(),
    ];
    let (tx, mut deliveries) = mpsc::unbounded_channel();
    let mut apps = Vec::new();
    for i in 0..3 {
        // Each instance knows another sidecar to move to.
        let mine = format!("{},{}", endpoints[i], endpoints[(i + 1) % 3]);
        let mut app = counter("audit", tx.clone()).spawn(mine);
        within(app.registered()).await.expect("audit registers");
        apps.push(app);
    }
    apps.push(s2.app(counter("index", tx.clone())).await);
    s0.wait_for_instance_at("index", "s2").await;
    s0.wait_for_instance_at("audit", "s1").await;
    let backends = [
        s0.backend().await,
        RoomHooksClient::connect(endpoints[1].clone())
            .await
            .unwrap(),
        s2.backend().await,
    ];
    // The node leading the posts stream is the one killed: its loss forces an election.
    let leader = posts_stream(&urls.join(","), &name)
        .await
        .info()
        .await
        .expect("stream info")
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .and_then(|name| nats.index_of(&name))
        .unwrap_or(0);

    let started = Instant::now();
    let mut ok: HashSet<String> = HashSet::new();
    let mut refused_calls = 0usize;
    let mut next_sidecar = 0usize;
    let batches = total.div_ceil(BATCH);
    for b in 0..batches {
        if b == batches / 4 {
            s1.kill();
            eprintln!("killed sidecar s1 after {} events", b * BATCH);
        }
        if b == batches / 2 {
            nats.kill(leader);
            eprintln!(
                "killed NATS node {leader} (the posts stream's leader) after {} events",
                b * BATCH
            );
        }
        if b == 3 * batches / 4 {
            s1 = Crashable::start(config(1, s1.addr)).await;
            eprintln!("restarted sidecar s1 after {} events", b * BATCH);
        }
        let items: Vec<PostEventsItem> = (b * BATCH..((b + 1) * BATCH).min(total))
            .map(load_item)
            .collect();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let backend = &backends[next_sidecar % 3];
            next_sidecar += 1;
            match tokio::time::timeout(Duration::from_secs(20), backend.post_events(items.clone()))
                .await
            {
                Ok(Ok(results)) => {
                    ok.extend(results.into_iter().map(|r| r.event_id));
                    break;
                }
                refused => {
                    refused_calls += 1;
                    assert!(
                        Instant::now() < deadline,
                        "batch {b} refused for 90 s: {refused:?}"
                    );
                    // The backend retries the same event ids at the next sidecar.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    let sent_in = started.elapsed();

    let mut seen: HashMap<&'static str, HashSet<String>> = HashMap::new();
    let mut received = HashMap::<&'static str, usize>::new();
    let all_in = tokio::time::timeout(Duration::from_secs(180), async {
        while ["audit", "index"].iter().any(|app| {
            ok.iter()
                .any(|id| !seen.get(app).is_some_and(|s| s.contains(id)))
        }) {
            let Some((app, event_id)) = deliveries.recv().await else {
                break;
            };
            *received.entry(app).or_default() += 1;
            seen.entry(app).or_default().insert(event_id);
        }
    })
    .await;
    // Late duplicates, if any, still count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok((app, event_id)) = deliveries.try_recv() {
        *received.entry(app).or_default() += 1;
        seen.entry(app).or_default().insert(event_id);
    }

    let mut lost_total = 0;
    for app in ["audit", "index"] {
        let unique = seen.get(app).map_or(0, HashSet::len);
        let lost = ok
            .iter()
            .filter(|id| !seen.get(app).is_some_and(|s| s.contains(*id)))
            .count();
        lost_total += lost;
        eprintln!(
            "cluster post load, app {app}: sent {total} / OK {} / delivered {unique} / duplicates {} / lost {lost} \
             ({refused_calls} batch calls refused and retried; sent in {sent_in:?}; sidecar s1 killed and \
             restarted, NATS node {leader} killed, replicas 3)",
            ok.len(),
            received.get(app).copied().unwrap_or(0) - unique,
        );
    }
    assert_eq!(ok.len(), total, "every event was accepted in the end");
    assert!(
        all_in.is_ok(),
        "not every accepted event was delivered in 180 s"
    );
    assert_eq!(lost_total, 0);
    drop(apps);
}
