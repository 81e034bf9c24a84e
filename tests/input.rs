//! Bad input: every malformed backend request gets INVALID_ARGUMENT naming the field, and a
//! misbehaving app is ignored or refused without hurting the sidecar or the backend.

mod common;

use common::{
    Harness, joining,
    raw::{BytesCodec, RawApp, register, registration},
    stored_room, user, within,
};
use roomhooks_sdk::{
    App,
    proto::{
        AppMessage, HookInterface, HookResult, OutcomeStatus, PostRoomCreateRequest,
        PostRoomUserJoinedRequest, PreRoomCreateRequest, PreRoomDeleteRequest,
        PreRoomUserJoinRequest, PreRoomUserLeaveRequest, Register, Room, RoomExtension, RoomType,
        RoomUserJoined, RoomUserLeave, app_message::Msg, hook_result,
    },
};
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

/// A registration for `hooks` that gives each call 5 s, so an answer that fails fast is told
/// apart from one that timed out.
fn patient(app_id: &str, hooks: &[HookInterface]) -> Register {
    Register {
        timeout: Some(prost_types::Duration {
            seconds: 5,
            nanos: 0,
        }),
        ..register(app_id, hooks)
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
    let err = RawApp::connect(h.channel().await, result_first)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("must be Register"),
        "{}",
        err.message()
    );

    let unknown_hook = Register {
        app_id: "x".into(),
        interfaces: vec![42],
        ..Default::default()
    };
    let err = RawApp::register(h.channel().await, unknown_hook)
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("Register.interfaces"),
        "{}",
        err.message()
    );

    let bad_id = patient("no spaces allowed", &[HookInterface::PreRoomUserJoined]);
    let err = RawApp::register(h.channel().await, bad_id)
        .await
        .err()
        .unwrap();
    assert!(
        err.message().contains("Register.app_id"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_malformed_duration_in_register_is_invalid_argument() {
    let h = Harness::start().await;
    // Sign mismatch, nanos out of range either way: not a google.protobuf.Duration.
    for (seconds, nanos) in [(1, -500_000_000), (0, 1_000_000_000), (-1, 5)] {
        let first = Register {
            timeout: Some(prost_types::Duration { seconds, nanos }),
            ..patient("timed", &[HookInterface::PreRoomUserJoined])
        };
        let err = RawApp::register(h.channel().await, first)
            .await
            .err()
            .unwrap();
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "({seconds}, {nanos}): {err:?}"
        );
        assert!(
            err.message()
                .contains("Register.timeout is not a valid google.protobuf.Duration"),
            "{}",
            err.message()
        );
    }
}

/// Sends `body` as the raw bytes of a `method` request, bypassing the client's own encoding.
async fn raw_call(h: &Harness, method: &'static str, body: Vec<u8>) -> Status {
    let mut grpc = tonic::client::Grpc::new(h.channel().await);
    grpc.ready().await.expect("the channel is ready");
    grpc.unary::<Vec<u8>, Vec<u8>, _>(
        tonic::Request::new(body),
        http::uri::PathAndQuery::from_static(method),
        BytesCodec,
    )
    .await
    .expect_err("the request is refused")
}

/// A Struct nested `depth` objects deep.
fn nested(depth: usize) -> prost_types::Struct {
    let mut inner = prost_types::Struct::default();
    for _ in 0..depth {
        let mut outer = prost_types::Struct::default();
        outer.fields.insert(
            "a".into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StructValue(inner)),
            },
        );
        inner = outer;
    }
    inner
}

#[tokio::test]
async fn an_undecodable_request_is_invalid_argument_saying_what_could_not_be_decoded() {
    use prost::Message;
    let h = Harness::start().await;
    const METHOD: &str = "/roomhooks.v1.RoomHooks/PreRoomCreate";
    let request = |room: Room| PreRoomCreateRequest {
        room: Some(room),
        ..Default::default()
    };

    let mut bad_utf8 = request(Room {
        display_name: "NAME".into(),
        ..stored_room("r1", RoomType::Channel)
    })
    .encode_to_vec();
    let at = bad_utf8.windows(4).position(|w| w == b"NAME").unwrap();
    bad_utf8[at..at + 2].copy_from_slice(&[0xff, 0xfe]);
    let mut truncated = request(stored_room("r1", RoomType::Channel)).encode_to_vec();
    truncated.pop();
    let too_deep = request(Room {
        custom_fields: Some(nested(60)),
        ..stored_room("r1", RoomType::Channel)
    })
    .encode_to_vec();

    for (case, body, says) in [
        ("invalid UTF-8", bad_utf8, "invalid string value"),
        ("truncated", truncated, "could not be decoded"),
        ("nested too deep", too_deep, "recursion limit reached"),
    ] {
        let status = raw_call(&h, METHOD, body).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        assert!(
            status
                .message()
                .contains("the request could not be decoded")
                && status.message().contains(says),
            "{case}: {}",
            status.message()
        );
    }
    // The documented depth decodes.
    let b = h.backend().await;
    b.pre_room_create(request(Room {
        custom_fields: Some(nested(30)),
        ..stored_room("r1", RoomType::Channel)
    }))
    .await
    .expect("a Struct 30 objects deep is within the decoder's limit");
}

#[tokio::test]
async fn a_request_over_the_message_size_limit_is_resource_exhausted_naming_the_flag() {
    let h = Harness::start_with(|c| c.max_message_size = 1024).await;
    let b = h.backend().await;
    let status = b
        .pre_room_create(PreRoomCreateRequest {
            room: Some(Room {
                display_name: "x".repeat(4096),
                ..stored_room("r1", RoomType::Channel)
            }),
            ..Default::default()
        })
        .await
        .expect_err("a request over --max-message-size is refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("--max-message-size (1024 bytes)"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn the_custom_fields_of_users_count_toward_the_custom_field_limit() {
    let h = Harness::start_with(|c| c.calls.max_custom_field_bytes = 100).await;
    let b = h.backend().await;
    let fields = |bytes: usize| {
        let mut s = prost_types::Struct::default();
        s.fields.insert(
            "k".into(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("v".repeat(bytes))),
            },
        );
        s
    };
    let mut context = joining("r1", "ana");
    if let Some(room) = &mut context.room {
        room.custom_fields = Some(fields(40));
    }
    if let Some(user) = &mut context.joining_user {
        user.custom_fields = Some(fields(40));
    }
    // 49 + 49 + 29 bytes encoded: each within the limit, over it together.
    let mut inviter = user("bo");
    inviter.custom_fields = Some(fields(20));
    context.inviter = Some(inviter);
    let status = b
        .pre_room_user_join(PreRoomUserJoinRequest {
            context: Some(context),
            ..Default::default()
        })
        .await
        .expect_err("over the limit in all");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    for named in [
        "context.room.custom_fields",
        "context.joining_user.custom_fields",
        "context.inviter.custom_fields",
        "are 127 bytes encoded in all",
        "the limit is 100 bytes for all custom fields of a request (--max-custom-field-bytes)",
    ] {
        assert!(
            status.message().contains(named),
            "{named}: {}",
            status.message()
        );
    }
}

#[tokio::test]
async fn a_misbehaving_app_is_ignored_and_a_wrong_kind_answer_fails_fast() {
    let h = Harness::start().await;
    let mut raw = RawApp::register(
        h.channel().await,
        patient("garbage", &[HookInterface::PreRoomUserJoined]),
    )
    .await
    .unwrap();
    // Noise that must be ignored: unknown call ids, empty messages, a second Register, stray acks.
    for call_id in 0..50 {
        raw.answer(1_000_000 + call_id, None).await;
    }
    raw.send(AppMessage { msg: None }).await;
    raw.send(registration(patient(
        "garbage",
        &[HookInterface::PreRoomUserJoined],
    )))
    .await;
    raw.ack("never-sent").await;
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
    let hook_call = within(raw.next_call()).await;
    // Answer a veto hook with an extension: the wrong kind.
    raw.answer(
        hook_call.call_id,
        Some(hook_result::Result::Extension(RoomExtension::default())),
    )
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
