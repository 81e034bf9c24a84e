//! Hostile and broken apps, and overload: the sidecar stays healthy, other apps are unaffected,
//! and every limit answers with a clear status instead of a stall.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{
    Harness, join_request, new_room,
    raw::{BytesCodec, RawApp, answer, register, registration},
    within,
};
use prost::Message;
use roomhooks_sdk::{
    App,
    proto::{
        HookInterface, OutcomeStatus, PreRoomCreateRequest, PreRoomUserJoinRequest, Register,
        RoomType, RuntimeMessage, runtime_message::Msg as Down,
    },
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

fn join() -> PreRoomUserJoinRequest {
    join_request("quinn")
}

/// A registration for PreRoomUserJoined only.
fn joiner(app_id: &str) -> Register {
    register(app_id, &[HookInterface::PreRoomUserJoined])
}

/// Opens an AppRuntime stream sending `frames` as they are; returns the first answer.
async fn raw_connect(h: &Harness, frames: Vec<Vec<u8>>) -> Result<Option<Vec<u8>>, Status> {
    let mut grpc = tonic::client::Grpc::new(h.channel().await);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = http::uri::PathAndQuery::from_static("/roomhooks.v1.AppRuntime/Connect");
    let (tx, rx) = mpsc::channel(16);
    for frame in frames {
        tx.send(frame).await.unwrap();
    }
    let mut stream = grpc
        .streaming(
            tonic::Request::new(ReceiverStream::new(rx)),
            path,
            BytesCodec,
        )
        .await?
        .into_inner();
    let first = stream.message().await?;
    // Drain until the sidecar ends the stream (it must, for garbage after Register).
    while stream.message().await?.is_some() {}
    drop(tx);
    Ok(first)
}

async fn a_good_app_still_answers(h: &Harness, app_id: &str) {
    let response = within(h.backend().await.pre_room_user_join(join()))
        .await
        .unwrap();
    let good = response
        .outcomes
        .iter()
        .find(|o| o.app_id == app_id)
        .unwrap();
    assert_eq!(good.status, OutcomeStatus::Allowed as i32);
}

#[tokio::test]
async fn garbage_bytes_on_an_app_stream_end_that_stream_and_nothing_else() {
    let h = Harness::start().await;
    let _good = h
        .app(
            App::builder("good")
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;

    let first_frame_garbage = raw_connect(&h, vec![vec![0xff, 0xff, 0xff, 0x07]]).await;
    let garbage_after_register = raw_connect(
        &h,
        vec![
            registration(joiner("garbler")).encode_to_vec(),
            vec![0x0a, 0xff, 0xff],
        ],
    )
    .await;

    assert!(
        first_frame_garbage.is_err(),
        "a stream starting with garbage is refused"
    );
    let status = garbage_after_register.unwrap_err();
    assert_ne!(status.code(), Code::Ok);
    h.wait_for_apps("the garbling instance is gone", |l| {
        l.apps
            .iter()
            .filter(|a| a.app_id == "garbler")
            .all(|a| a.instances.is_empty())
    })
    .await;
    a_good_app_still_answers(&h, "good").await;
}

#[tokio::test]
async fn a_flood_of_results_for_unknown_calls_does_not_disturb_other_apps() {
    // The flooder answers no heartbeat: give it time, this test is about the flood.
    let h = Harness::start_with(|c| c.liveness.timeout = Duration::from_secs(120)).await;
    let _good = h
        .app(
            App::builder("good")
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;
    let flooder = RawApp::register(
        h.channel().await,
        register("flooder", &[HookInterface::PostRoomCreate]), // never on the backend's path
    )
    .await
    .unwrap();
    let tx = flooder.sender();
    let flood = tokio::spawn(async move {
        for call_id in 0..100_000u64 {
            if tx.send(answer(u64::MAX - call_id, None)).await.is_err() {
                break;
            }
        }
        tx
    });

    for _ in 0..20 {
        let response = within(h.backend().await.pre_room_user_join(join()))
            .await
            .unwrap();
        let good = response
            .outcomes
            .iter()
            .find(|o| o.app_id == "good")
            .unwrap();
        assert_eq!(good.status, OutcomeStatus::Allowed as i32);
    }
    let _tx = within(flood).await.unwrap();
    let listed = h.list_apps().await;
    assert_eq!(
        listed
            .apps
            .iter()
            .filter(|a| !a.instances.is_empty())
            .count(),
        2,
        "both still connected: {listed:?}"
    );
}

#[tokio::test]
async fn an_instance_that_stops_answering_heartbeats_is_dropped() {
    let h = Harness::start_with(|c| {
        c.liveness.interval = Duration::from_millis(100);
        c.liveness.timeout = Duration::from_millis(300);
    })
    .await;
    let mut mute = RawApp::register(h.channel().await, joiner("mute"))
        .await
        .unwrap();

    let mut heartbeats = 0;
    let ended = within(async {
        loop {
            match mute.message().await {
                Ok(Some(RuntimeMessage {
                    msg: Some(Down::Heartbeat(_)),
                })) => heartbeats += 1,
                Ok(Some(_)) => {}
                Ok(None) => break None,
                Err(status) => break Some(status),
            }
        }
    })
    .await;

    assert!(heartbeats >= 2, "heartbeats were sent ({heartbeats})");
    let status = ended.expect("the stream ends with a status");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("HeartbeatAck"),
        "{}",
        status.message()
    );
    h.wait_for_apps("mute has no instance", |l| l.apps[0].instances.is_empty())
        .await;
    drop(mute);
}

#[tokio::test]
async fn an_sdk_app_answers_heartbeats_and_stays_connected() {
    let h = Harness::start_with(|c| {
        c.liveness.interval = Duration::from_millis(50);
        c.liveness.timeout = Duration::from_millis(150);
    })
    .await;
    let _app = h
        .app(
            App::builder("chatty")
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;

    tokio::time::sleep(Duration::from_millis(600)).await;

    assert_eq!(h.list_apps().await.apps[0].instances.len(), 1);
    a_good_app_still_answers(&h, "chatty").await;
}

#[tokio::test]
async fn an_instance_that_keeps_timing_out_is_ejected_and_listed_as_such() {
    let h = Harness::start_with(|c| {
        c.calls.ejection.after = 2;
        c.calls.ejection.base = Duration::from_secs(30);
    })
    .await;
    let _slow = h
        .app(
            App::builder("sluggish")
                .timeout(Duration::from_millis(50))
                .pre_room_user_joined(|_, _| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Ok(())
                })
                .build(),
        )
        .await;
    let backend = h.backend().await;

    for _ in 0..2 {
        let response = backend.pre_room_user_join(join()).await.unwrap();
        assert_eq!(response.outcomes[0].status, OutcomeStatus::Timeout as i32);
    }

    let instance = &h.list_apps().await.apps[0].instances[0];
    assert!(instance.ejected_until.is_some(), "{instance:?}");
}

#[tokio::test]
async fn an_instance_at_its_in_flight_limit_takes_no_more_calls() {
    let h = Harness::start_with(|c| c.calls.max_in_flight_per_instance = 1).await;
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let _busy = h
        .app(
            App::builder("single-lane")
                .timeout(Duration::from_secs(5))
                .pre_room_user_joined(move |_, _| {
                    let entered = entered_tx.clone();
                    async move {
                        let _ = entered.send(());
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Ok(())
                    }
                })
                .build(),
        )
        .await;
    let backend = h.backend().await;
    let first = tokio::spawn({
        let backend = backend.clone();
        async move { backend.pre_room_user_join(join()).await }
    });
    within(entered.recv()).await.unwrap();

    let second = backend.pre_room_user_join(join()).await.unwrap();

    assert_eq!(second.outcomes[0].status, OutcomeStatus::Unavailable as i32);
    assert!(
        second.outcomes[0].detail.contains("in flight"),
        "{}",
        second.outcomes[0].detail
    );
    assert_eq!(
        within(first).await.unwrap().unwrap().outcomes[0].status,
        OutcomeStatus::Allowed as i32
    );
}

#[tokio::test]
async fn backend_calls_beyond_the_limit_are_shed_with_resource_exhausted() {
    let h = Harness::start_with(|c| c.max_concurrent_backend_calls = 1).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let _slow = h
        .app(
            App::builder("slow")
                .timeout(Duration::from_secs(5))
                .pre_room_user_joined(move |_, _| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Ok(())
                    }
                })
                .build(),
        )
        .await;
    let backend = h.backend().await;
    let first = tokio::spawn({
        let backend = backend.clone();
        async move { backend.pre_room_user_join(join()).await }
    });
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let shed = backend.pre_room_user_join(join()).await.unwrap_err();

    assert_eq!(shed.code(), Code::ResourceExhausted);
    assert!(
        shed.message().contains("--max-concurrent-backend-calls"),
        "{}",
        shed.message()
    );
    assert!(within(first).await.unwrap().unwrap().allowed);
}

#[tokio::test]
async fn apps_beyond_the_limit_are_refused_with_resource_exhausted() {
    let h = Harness::start_with(|c| c.capacity.max_apps = 1).await;
    let _first = h
        .app(
            App::builder("first")
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;

    let refused = RawApp::open(h.channel().await, registration(joiner("second")))
        .await
        .err()
        .expect("the stream is refused");

    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("--max-apps"),
        "{}",
        refused.message()
    );
}

#[tokio::test]
async fn rooms_with_oversized_custom_fields_are_refused_naming_the_field() {
    let h = Harness::start_with(|c| c.calls.max_custom_field_bytes = 1024).await;
    let mut room = new_room("big", RoomType::Channel);
    room.custom_fields = Some(prost_types::Struct {
        fields: [(
            "blob".to_owned(),
            prost_types::Value::from("x".repeat(4096)),
        )]
        .into(),
    });

    let refused = h
        .backend()
        .await
        .pre_room_create(PreRoomCreateRequest {
            room: Some(room),
            ..Default::default()
        })
        .await
        .unwrap_err();

    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().starts_with("room.custom_fields"),
        "{}",
        refused.message()
    );
}
