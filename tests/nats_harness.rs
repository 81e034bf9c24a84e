//! The NATS JetStream harness itself (tests/common/nats.rs), before any cluster-mode test leans on
//! it: a real 3-node cluster takes writes on a 3-replica stream, keeps taking them with a node
//! killed, takes the node back on restart; a single server stopped and started keeps its stream.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream};
use common::nats::NatsCluster;

/// A JetStream context on a client that knows every node of `nats`.
async fn jetstream_on(nats: &NatsCluster) -> jetstream::Context {
    let urls: Vec<String> = nats.urls().split(',').map(String::from).collect();
    let client = async_nats::connect(urls)
        .await
        .expect("the client connects to the cluster");
    jetstream::new(client)
}

/// Publishes message `id` to `subject` and waits for the stream's ack, retrying (the `Nats-Msg-Id`
/// de-duplicates retries) while a leader is being elected, for up to 20 s.
async fn publish(js: &jetstream::Context, subject: &str, id: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let message = PublishMessage::build()
            .payload(format!("message {id}").into())
            .message_id(format!("msg-{id}"));
        let error = match js.send_publish(subject.to_string(), message).await {
            Ok(ack) => match ack.await {
                Ok(_) => return,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "message {id} not acked within 20 s: {error}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The stream's info, retrying while its leader is being elected, for up to 20 s.
async fn stream_info(js: &jetstream::Context, name: &str) -> stream::Info {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Getting the stream asks the server for its info.
        let error = match js.get_stream(name).await {
            Ok(stream) => return stream.cached_info().clone(),
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "no info on stream {name} within 20 s: {error}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The index of the node leading `name`'s stream.
async fn stream_leader(nats: &NatsCluster, js: &jetstream::Context, name: &str) -> usize {
    let cluster = stream_info(js, name)
        .await
        .cluster
        .expect("a clustered stream");
    let leader = cluster.leader.expect("the stream has a leader");
    nats.index_of(&leader).expect("the leader is one of ours")
}

#[tokio::test]
async fn a_three_node_cluster_keeps_accepting_writes_with_one_node_killed() {
    let started = Instant::now();
    let mut nats = NatsCluster::start(3).await;
    eprintln!("3-node cluster up in {:.1?}", started.elapsed());
    let js = jetstream_on(&nats).await;
    js.create_stream(stream::Config {
        name: "HARNESS".into(),
        subjects: vec!["harness.>".into()],
        num_replicas: 3,
        ..Default::default()
    })
    .await
    .expect("a 3-replica stream is created");
    for id in 0..10 {
        publish(&js, "harness.a", id).await;
    }

    // Kill the stream's leader: the two others still make a quorum and elect a new one.
    let killed = stream_leader(&nats, &js, "HARNESS").await;
    nats.kill(killed);
    assert!(!nats.is_running(killed));
    for id in 10..20 {
        publish(&js, "harness.a", id).await;
    }
    let info = stream_info(&js, "HARNESS").await;
    assert_eq!(
        info.state.messages, 20,
        "every acked message is stored once"
    );
    let leader = info.cluster.and_then(|c| c.leader).expect("a new leader");
    assert_ne!(leader, nats.node_name(killed), "the leader moved");

    // Restarted on its ports and store, the node catches up: every replica current, none behind.
    nats.restart(killed).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let replicas = stream_info(&js, "HARNESS")
            .await
            .cluster
            .expect("clustered")
            .replicas;
        let caught_up = replicas.len() == 2
            && replicas
                .iter()
                .all(|peer| peer.current && !peer.offline && peer.lag.unwrap_or(0) == 0);
        if caught_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node did not catch up within 20 s: {replicas:?}\n{}",
            nats.log_tail(killed)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // It really holds its replica: with another node killed, the quorum needs it.
    let other = (0..3).find(|&i| i != killed).expect("another node");
    nats.kill(other);
    publish(&js, "harness.a", 20).await;
    assert_eq!(stream_info(&js, "HARNESS").await.state.messages, 21);
    eprintln!("whole test in {:.1?}", started.elapsed());
}

#[tokio::test]
async fn a_single_node_stopped_then_started_again_keeps_its_stream() {
    let mut nats = NatsCluster::start(1).await;
    let js = jetstream_on(&nats).await;
    js.create_stream(stream::Config {
        name: "SOLO".into(),
        subjects: vec!["solo.>".into()],
        ..Default::default()
    })
    .await
    .expect("a stream is created");
    for id in 0..5 {
        publish(&js, "solo.a", id).await;
    }

    nats.stop_all();
    let port = nats.url(0).rsplit(':').next().unwrap().to_string();
    assert!(
        tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .is_err(),
        "nothing listens while NATS is stopped"
    );

    // Back on the same port and store: the client reconnects and finds its messages.
    nats.start_all().await;
    publish(&js, "solo.a", 5).await;
    assert_eq!(stream_info(&js, "SOLO").await.state.messages, 6);
}
