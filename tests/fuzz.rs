//! Property test of the engine's robustness: arbitrary app message sequences and arbitrary
//! backend requests, thrown at a real sidecar at once. Whatever they hold: no panic, no hang,
//! every backend call ends with an answer or a clear status, and the sidecar stays healthy.

mod common;

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use common::{
    Harness,
    raw::{RawApp, answer, registration},
    user,
};
use futures_util::future::join_all;
use proptest::{
    collection::vec,
    prelude::*,
    test_runner::{Config as RunnerConfig, TestRunner},
};
use roomhooks_sdk::{
    RoomHooksClient,
    proto::{
        AppError, AppMessage, HeartbeatAck, HookResult, PostEventAck, PostRoomCreateRequest,
        PreRoomCreateRequest, PreRoomUserJoinRequest, PreventDecision, Register, Room,
        RoomExtension, RoomModification, RoomUserJoined, RuntimeMessage, app_message::Msg,
        hook_result, runtime_message::Msg as Down,
    },
};
use tonic::Code;

static APP_MESSAGES: AtomicUsize = AtomicUsize::new(0);
static BACKEND_CALLS: AtomicUsize = AtomicUsize::new(0);
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn fields() -> impl Strategy<Value = Option<prost_types::Struct>> {
    prop::option::of(vec(("[a-z]{0,3}", "[a-z]{0,5}"), 0..4).prop_map(|pairs| {
        prost_types::Struct {
            fields: pairs
                .into_iter()
                .map(|(k, v)| (k, prost_types::Value::from(v)))
                .collect::<BTreeMap<_, _>>(),
        }
    }))
}

fn room() -> impl Strategy<Value = Room> {
    (
        "[a-z0-9]{0,3}",
        "[ -~]{0,8}",
        -2i32..7,
        vec("[a-z]{0,3}", 0..3),
        fields(),
    )
        .prop_map(|(id, name, room_type, members, custom_fields)| Room {
            id,
            display_name: name,
            r#type: room_type,
            member_usernames: members,
            custom_fields,
            ..Default::default()
        })
}

fn result_kind() -> impl Strategy<Value = Option<hook_result::Result>> {
    prop_oneof![
        Just(None),
        (any::<bool>(), "[ -~]{0,10}").prop_map(|(prevent, message)| Some(
            hook_result::Result::Decision(PreventDecision {
                prevent,
                message,
                ..Default::default()
            })
        )),
        (fields(), vec("[a-z ]{0,3}", 0..3)).prop_map(|(custom_fields, member_usernames)| {
            Some(hook_result::Result::Extension(RoomExtension {
                custom_fields,
                member_usernames,
            }))
        }),
        prop::option::of(room())
            .prop_map(|room| Some(hook_result::Result::Modification(RoomModification { room }))),
        "[ -~]{0,10}".prop_map(|message| Some(hook_result::Result::Error(AppError { message }))),
    ]
}

fn app_message() -> impl Strategy<Value = AppMessage> {
    let register = (
        prop_oneof![Just("fuzz".to_owned()), "[a-z .]{0,5}"],
        vec(-2i32..13, 0..5),
        any::<i32>(),
        -1i32..4,
        prop::option::of((-2i64..2, -5i32..1_000_000_000)),
        vec(-2i32..7, 0..3),
    )
        .prop_map(
            |(app_id, interfaces, priority, policy, timeout, room_types)| Register {
                app_id,
                interfaces,
                priority,
                failure_policy: policy,
                timeout: timeout.map(|(seconds, nanos)| prost_types::Duration { seconds, nanos }),
                room_types,
                ..Default::default()
            },
        );
    prop_oneof![
        register.prop_map(|r| Some(Msg::Register(r))),
        (prop_oneof![0u64..64, any::<u64>()], result_kind())
            .prop_map(|(call_id, result)| Some(Msg::Result(HookResult { call_id, result }))),
        "[ -~]{0,8}".prop_map(|event_id| Some(Msg::PostAck(PostEventAck { event_id }))),
        any::<u64>().prop_map(|nonce| Some(Msg::HeartbeatAck(HeartbeatAck { nonce }))),
        Just(None),
    ]
    .prop_map(|msg| AppMessage { msg })
}

#[derive(Debug, Clone)]
enum BackendCall {
    Create(Option<Room>, bool),
    Join(Option<Room>, bool),
    Post(Option<Room>, String),
}

fn backend_call() -> impl Strategy<Value = BackendCall> {
    prop_oneof![
        (prop::option::of(room()), any::<bool>()).prop_map(|(r, d)| BackendCall::Create(r, d)),
        (prop::option::of(room()), any::<bool>()).prop_map(|(r, u)| BackendCall::Join(r, u)),
        (prop::option::of(room()), "[a-z0-9]{0,4}").prop_map(|(r, id)| BackendCall::Post(r, id)),
    ]
}

async fn send(client: &RoomHooksClient, call: BackendCall) -> Result<(), tonic::Status> {
    match call {
        BackendCall::Create(room, dry_run) => client
            .pre_room_create(PreRoomCreateRequest {
                room,
                dry_run,
                request_id: "fuzz".into(),
            })
            .await
            .map(drop),
        BackendCall::Join(room, with_user) => client
            .pre_room_user_join(PreRoomUserJoinRequest {
                context: Some(RoomUserJoined {
                    room,
                    joining_user: with_user.then(|| user("z")),
                    inviter: None,
                }),
                ..Default::default()
            })
            .await
            .map(drop),
        BackendCall::Post(room, event_id) => client
            .post_room_create(PostRoomCreateRequest {
                room,
                event_id,
                wait_for_delivery: true,
            })
            .await
            .map(drop),
    }
}

/// One case: a scripted app stream plus a chaotic responder, against concurrent backend calls.
async fn run_case(
    script: Vec<AppMessage>,
    answers: Vec<Option<hook_result::Result>>,
    calls: Vec<BackendCall>,
) {
    let h = Harness::start_with(|c| {
        c.ephemeral = true;
        c.timeouts.max = Duration::from_millis(500);
        c.timeouts.default = Duration::from_millis(200);
    })
    .await;
    APP_MESSAGES.fetch_add(script.len(), Ordering::Relaxed);
    BACKEND_CALLS.fetch_add(calls.len(), Ordering::Relaxed);

    // A well-formed registration first, so calls reach this app; then the arbitrary script.
    let mut app = RawApp::open(
        h.channel().await,
        registration(Register {
            app_id: "fuzz".into(),
            interfaces: (1..=10).collect(),
            ..Default::default()
        }),
    )
    .await
    .expect("a valid registration is accepted");
    let up = app.sender();
    for message in script {
        if up.send(message).await.is_err() {
            break;
        }
    }
    let responder = tokio::spawn(async move {
        let mut answers = answers.into_iter().cycle();
        while let Ok(Some(RuntimeMessage { msg: Some(msg) })) = app.message().await {
            if let Down::Call(call) = msg
                && up
                    .send(answer(call.call_id, answers.next().flatten()))
                    .await
                    .is_err()
            {
                break;
            }
        }
    });

    let client = h.backend().await.with_deadline(Duration::from_secs(2));
    let ended = tokio::time::timeout(
        Duration::from_secs(10),
        join_all(calls.into_iter().map(|c| send(&client, c))),
    )
    .await
    .expect("every backend call ends");
    for result in ended {
        if let Err(status) = result {
            assert!(
                matches!(
                    status.code(),
                    Code::InvalidArgument | Code::Unavailable | Code::ResourceExhausted
                ),
                "unexpected status {status:?}"
            );
        }
    }
    // Still healthy: a plain call is answered.
    let health = send(
        &client,
        BackendCall::Join(
            Some(Room {
                id: "r".into(),
                r#type: 1,
                ..Default::default()
            }),
            true,
        ),
    )
    .await;
    assert!(health.is_ok(), "{health:?}");
    responder.abort();
}

#[test]
fn arbitrary_app_messages_and_backend_requests_never_panic_or_hang_the_sidecar() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    // Any panic anywhere in the process (a sidecar task included) is counted and fails the test.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        failure_persistence: None,
        ..RunnerConfig::default()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let strategy = (
        vec(app_message(), 0..40),
        vec(result_kind(), 1..6),
        vec(backend_call(), 1..12),
    );
    runner
        .run(&strategy, |(script, answers, calls)| {
            runtime.block_on(run_case(script, answers, calls));
            Ok(())
        })
        .unwrap();
    let panics = PANICS.load(Ordering::SeqCst);
    println!(
        "fuzz: {cases} cases, {} arbitrary app messages, {} arbitrary backend calls, {panics} panics, no hang",
        APP_MESSAGES.load(Ordering::Relaxed),
        BACKEND_CALLS.load(Ordering::Relaxed)
    );
    assert_eq!(panics, 0, "the sidecar panicked");
}
