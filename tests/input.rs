//! Bad input: every malformed backend request gets INVALID_ARGUMENT naming the field, and a
//! misbehaving app is ignored or refused without hurting the sidecar or the backend.

mod common;

use common::{Harness, joining, stored_room, user, within};
use roomhooks_sdk::{
    App,
    proto::{
        AppMessage, HookInterface, HookResult, OutcomeStatus, PostEventAck, PostRoomCreateRequest,
        PostRoomUserJoinedRequest, PreRoomCreateRequest, PreRoomDeleteRequest,
        PreRoomUserJoinRequest, PreRoomUserLeaveRequest, Register, Room, RoomExtension, RoomType,
        RoomUserJoined, RoomUserLeave, RuntimeMessage, app_message::Msg,
        app_runtime_client::AppRuntimeClient, hook_result, runtime_message::Msg as Down,
    },
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};

fn expect_invalid(result: Result<impl std::fmt::Debug, Status>, field: &str) {
    let status = result.expect_err("the request must be refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with(field),
        "{field}: {}",
        status.message()
    );
}

#[tokio::test]
async fn every_malformed_backend_request_is_refused_naming_the_field() {
    let h = Harness::start().await;
    let b = h.backend().await;
    let no_id = Room {
        id: String::new(),
        ..stored_room("x", RoomType::Channel)
    };

    expect_invalid(
        b.pre_room_create(PreRoomCreateRequest::default()).await,
        "room",
    );
    expect_invalid(
        b.pre_room_create(PreRoomCreateRequest {
            room: Some(Room {
                r#type: RoomType::Unspecified as i32,
                ..no_id.clone()
            }),
            ..Default::default()
        })
        .await,
        "room.type",
    );
    expect_invalid(
        b.pre_room_delete(PreRoomDeleteRequest {
            room: Some(no_id.clone()),
            ..Default::default()
        })
        .await,
        "room.id",
    );
    expect_invalid(
        b.pre_room_user_join(PreRoomUserJoinRequest::default())
            .await,
        "context",
    );
    expect_invalid(
        b.pre_room_user_join(PreRoomUserJoinRequest {
            context: Some(RoomUserJoined {
                room: Some(no_id.clone()),
                joining_user: Some(user("a")),
                inviter: None,
            }),
            ..Default::default()
        })
        .await,
        "context.room.id",
    );
    expect_invalid(
        b.pre_room_user_join(PreRoomUserJoinRequest {
            context: Some(RoomUserJoined {
                joining_user: None,
                ..joining("r1", "a")
            }),
            ..Default::default()
        })
        .await,
        "context.joining_user",
    );
    expect_invalid(
        b.pre_room_user_leave(PreRoomUserLeaveRequest {
            context: Some(RoomUserLeave {
                room: Some(stored_room("r1", RoomType::Channel)),
                leaving_user: None,
                removed_by: None,
            }),
            ..Default::default()
        })
        .await,
        "context.leaving_user",
    );
    expect_invalid(
        b.post_room_create(PostRoomCreateRequest {
            room: Some(no_id),
            ..Default::default()
        })
        .await,
        "room.id",
    );
    expect_invalid(
        b.post_room_user_joined(PostRoomUserJoinedRequest {
            context: Some(RoomUserJoined {
                joining_user: None,
                ..joining("r1", "a")
            }),
            ..Default::default()
        })
        .await,
        "context.joining_user",
    );
    expect_invalid(
        b.post_room_create(PostRoomCreateRequest {
            room: Some(stored_room("r1", RoomType::Channel)),
            event_id: "e".repeat(300),
            wait_for_delivery: false,
        })
        .await,
        "event_id",
    );
}

/// A hand-written app speaking the raw protocol.
struct RawApp {
    up: mpsc::Sender<AppMessage>,
    down: tonic::Streaming<RuntimeMessage>,
}

impl RawApp {
    async fn connect(h: &Harness, first: AppMessage) -> Result<Self, Status> {
        let (up, rx) = mpsc::channel(16);
        up.send(first).await.unwrap();
        let mut down = AppRuntimeClient::new(h.channel().await)
            .connect(ReceiverStream::new(rx))
            .await?
            .into_inner();
        match down.message().await? {
            Some(RuntimeMessage {
                msg: Some(Down::Registered(_)),
            }) => Ok(Self { up, down }),
            other => panic!("expected Registered, got {other:?}"),
        }
    }

    async fn send(&self, msg: Option<Msg>) {
        self.up.send(AppMessage { msg }).await.unwrap();
    }
}

fn register(app_id: &str, hooks: &[HookInterface]) -> AppMessage {
    AppMessage {
        msg: Some(Msg::Register(Register {
            app_id: app_id.into(),
            interfaces: hooks.iter().map(|h| *h as i32).collect(),
            timeout: Some(prost_types::Duration {
                seconds: 5,
                nanos: 0,
            }),
            ..Default::default()
        })),
    }
}

#[tokio::test]
async fn a_stream_must_start_with_a_valid_register() {
    let h = Harness::start().await;
    let result_first = AppMessage {
        msg: Some(Msg::Result(HookResult {
            call_id: 1,
            result: None,
        })),
    };
    let err = RawApp::connect(&h, result_first).await.err().unwrap();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("must be Register"),
        "{}",
        err.message()
    );

    let unknown_hook = AppMessage {
        msg: Some(Msg::Register(Register {
            app_id: "x".into(),
            interfaces: vec![42],
            ..Default::default()
        })),
    };
    let err = RawApp::connect(&h, unknown_hook).await.err().unwrap();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("Register.interfaces"),
        "{}",
        err.message()
    );

    let bad_id = register("no spaces allowed", &[HookInterface::PreRoomUserJoined]);
    let err = RawApp::connect(&h, bad_id).await.err().unwrap();
    assert!(
        err.message().contains("Register.app_id"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_misbehaving_app_is_ignored_and_a_wrong_kind_answer_fails_fast() {
    let h = Harness::start().await;
    let mut raw = RawApp::connect(&h, register("garbage", &[HookInterface::PreRoomUserJoined]))
        .await
        .unwrap();
    // Noise that must be ignored: unknown call ids, empty messages, a second Register, stray acks.
    for call_id in 0..50 {
        raw.send(Some(Msg::Result(HookResult {
            call_id: 1_000_000 + call_id,
            result: None,
        })))
        .await;
    }
    raw.send(None).await;
    raw.send(register("garbage", &[HookInterface::PreRoomUserJoined]).msg)
        .await;
    raw.send(Some(Msg::PostAck(PostEventAck {
        event_id: "never-sent".into(),
    })))
    .await;
    let _good = h
        .app(
            App::builder("well-behaved")
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;

    let backend = h.backend().await;
    let call = tokio::spawn(async move {
        backend
            .pre_room_user_join(PreRoomUserJoinRequest {
                context: Some(joining("r1", "judy")),
                ..Default::default()
            })
            .await
    });
    let hook_call = loop {
        match within(raw.down.message()).await.unwrap() {
            Some(RuntimeMessage {
                msg: Some(Down::Call(call)),
            }) => break call,
            Some(_) => continue,
            None => panic!("the sidecar closed a stream it should have kept"),
        }
    };
    // Answer a veto hook with an extension: the wrong kind.
    raw.send(Some(Msg::Result(HookResult {
        call_id: hook_call.call_id,
        result: Some(hook_result::Result::Extension(RoomExtension::default())),
    })))
    .await;
    let response = within(call).await.unwrap().unwrap();

    let garbage = response
        .outcomes
        .iter()
        .find(|o| o.app_id == "garbage")
        .unwrap();
    assert_eq!(
        garbage.status,
        OutcomeStatus::Error as i32,
        "not a 5 s timeout"
    );
    assert!(
        garbage.detail.contains("needs a HookResult.decision"),
        "{}",
        garbage.detail
    );
    let good = response
        .outcomes
        .iter()
        .find(|o| o.app_id == "well-behaved")
        .unwrap();
    assert_eq!(good.status, OutcomeStatus::Allowed as i32);
    assert!(response.allowed);
    let listed = h.list_apps().await;
    assert_eq!(
        listed.apps.len(),
        2,
        "the misbehaving app is still connected and listed"
    );
}
