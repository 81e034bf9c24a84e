//! Timeouts, failure policies, missing instances, backend deadlines and CancelCall.

mod common;

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use tokio::sync::Notify;

use common::{
    Harness, dawdler, flag_set_within, join_request, new_room, statuses, stored_room, user, within,
};
use roomhooks_sdk::{
    App, Extension, HookError, RoomHooksClient,
    proto::{
        FailurePolicy, OutcomeStatus, PreRoomCreateRequest, PreRoomUserLeaveRequest,
        PreventionReason, RemoveAppRequest, RoomType, RoomUserLeave, admin_client::AdminClient,
    },
};

fn sleeper(app_id: &str, policy: FailurePolicy, sleep: Duration) -> App {
    App::builder(app_id)
        .failure_policy(policy)
        .timeout(Duration::from_millis(100))
        .pre_room_user_joined(move |_, _| async move {
            tokio::time::sleep(sleep).await;
            Ok(())
        })
        .build()
}

#[tokio::test]
async fn a_timed_out_ignore_app_counts_as_no_objection() {
    let h = Harness::start().await;
    let _slow = h
        .app(sleeper(
            "slow",
            FailurePolicy::Ignore,
            Duration::from_secs(3),
        ))
        .await;

    let response = within(h.backend().await.pre_room_user_join(join_request("dave")))
        .await
        .unwrap();

    assert!(response.allowed);
    let outcome = &response.outcomes[0];
    assert_eq!(outcome.status, OutcomeStatus::Timeout as i32);
    assert!(outcome.detail.contains("IGNORE"), "{}", outcome.detail);
}

#[tokio::test]
async fn a_timed_out_fail_app_prevents_with_app_unavailable() {
    let h = Harness::start().await;
    let _slow = h
        .app(sleeper(
            "strict",
            FailurePolicy::Fail,
            Duration::from_secs(3),
        ))
        .await;

    let response = within(h.backend().await.pre_room_user_join(join_request("dave")))
        .await
        .unwrap();

    assert!(!response.allowed);
    assert_eq!(response.outcomes[0].status, OutcomeStatus::Timeout as i32);
    let prevention = &response.preventions[0];
    assert_eq!(prevention.app_id, "strict");
    assert_eq!(prevention.reason, PreventionReason::AppUnavailable as i32);
    // The message is for the chat user: no app id, no internals; those are in the detail.
    assert_eq!(
        prevention.message,
        "This action is temporarily unavailable. Please try again later."
    );
    assert!(
        response.outcomes[0].detail.contains("failure policy FAIL"),
        "{}",
        response.outcomes[0].detail
    );
}

#[tokio::test]
async fn a_fail_app_with_no_live_instance_keeps_protecting_until_removed() {
    let h = Harness::start().await;
    let app = h
        .app(
            App::builder("guardian")
                .failure_policy(FailurePolicy::Fail)
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;
    app.shutdown().await.unwrap();
    h.wait_for_apps("guardian has no instance", |list| {
        list.apps.len() == 1 && list.apps[0].instances.is_empty()
    })
    .await;
    let backend = h.backend().await;

    let response = backend
        .pre_room_user_join(join_request("erin"))
        .await
        .unwrap();

    assert!(!response.allowed);
    assert_eq!(
        response.outcomes[0].status,
        OutcomeStatus::Unavailable as i32
    );
    assert_eq!(
        response.preventions[0].reason,
        PreventionReason::AppUnavailable as i32
    );

    let removed = AdminClient::new(h.channel().await)
        .remove_app(RemoveAppRequest {
            app_id: "guardian".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(removed.removed);
    let after = backend
        .pre_room_user_join(join_request("erin"))
        .await
        .unwrap();
    assert!(after.allowed && after.outcomes.is_empty());
}

#[tokio::test]
async fn a_failing_fail_app_in_extend_prevents_the_creation() {
    let h = Harness::start().await;
    let _app = h
        .app(
            App::builder("required-extender")
                .failure_policy(FailurePolicy::Fail)
                .pre_room_create_extend(|_, _| async {
                    Err::<Extension, _>(HookError::Failed("quota service down".into()))
                })
                .build(),
        )
        .await;

    let response = h
        .backend()
        .await
        .pre_room_create(PreRoomCreateRequest {
            room: Some(new_room("x", RoomType::Channel)),
            ..Default::default()
        })
        .await
        .unwrap();

    assert!(!response.allowed);
    assert_eq!(
        response.preventions[0].reason,
        PreventionReason::AppUnavailable as i32
    );
    assert_eq!(response.outcomes[0].status, OutcomeStatus::Error as i32);
    assert!(response.outcomes[0].detail.contains("quota service down"));
}

#[tokio::test]
async fn a_shorter_timeout_that_starts_later_ends_its_wait_while_a_longer_one_still_runs() {
    let h = Harness::start().await;
    // The patient app holds a join (its timeout is 5 s) until the test has the answer to a leave
    // that the hasty app never answers (its timeout is 100 ms). The join is allowed only if the
    // leave's shorter timeout, starting later, ended its wait first.
    let patient_called = Arc::new(Notify::new());
    let go_ahead = Arc::new(Notify::new());
    let (called, go) = (Arc::clone(&patient_called), Arc::clone(&go_ahead));
    let _patient = h
        .app(
            App::builder("patient")
                .timeout(Duration::from_secs(5))
                .pre_room_user_joined(move |_, _| {
                    called.notify_one();
                    let go = Arc::clone(&go);
                    async move {
                        go.notified().await;
                        Ok(())
                    }
                })
                .build(),
        )
        .await;
    let _hasty = h
        .app(
            App::builder("hasty")
                .failure_policy(FailurePolicy::Ignore)
                .timeout(Duration::from_millis(100))
                .pre_room_user_leave(|_, _| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Ok(())
                })
                .build(),
        )
        .await;
    let backend = h.backend().await;
    let join = tokio::spawn({
        let backend = backend.clone();
        async move { backend.pre_room_user_join(join_request("erin")).await }
    });
    // The sidecar now waits up to 5 s for the patient app; the leave's 100 ms starts after that.
    within(patient_called.notified()).await;

    let leave = within(backend.pre_room_user_leave(PreRoomUserLeaveRequest {
        context: Some(RoomUserLeave {
            room: Some(stored_room("general", RoomType::Channel)),
            leaving_user: Some(user("erin")),
            removed_by: None,
        }),
        ..Default::default()
    }))
    .await
    .unwrap();
    go_ahead.notify_one();
    let join = within(join).await.unwrap().unwrap();

    assert_eq!(
        statuses(&leave.outcomes),
        [("hasty", OutcomeStatus::Timeout)]
    );
    assert_eq!(
        statuses(&join.outcomes),
        [("patient", OutcomeStatus::Allowed)]
    );
}

#[tokio::test]
async fn the_backend_deadline_caps_app_timeouts_and_the_answer_arrives_in_time() {
    let h = Harness::start().await;
    let _slow = h
        .app(
            App::builder("patient")
                .timeout(Duration::from_secs(5))
                .pre_room_user_joined(|_, _| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Ok(())
                })
                .build(),
        )
        .await;
    let backend = RoomHooksClient::connect(h.endpoint.clone())
        .await
        .unwrap()
        .with_deadline(Duration::from_millis(300));

    // A late answer would surface as DEADLINE_EXCEEDED instead of a verdict.
    let response = within(backend.pre_room_user_join(join_request("frank")))
        .await
        .unwrap();

    assert!(response.allowed);
    assert_eq!(response.outcomes[0].status, OutcomeStatus::Timeout as i32);
}

#[tokio::test]
async fn the_app_is_told_to_cancel_a_call_the_sidecar_stopped_waiting_for() {
    let h = Harness::start().await;
    let cancelled = Arc::new(AtomicBool::new(false));
    let _app = h
        .app(dawdler(
            Duration::from_millis(100),
            Arc::new(AtomicBool::new(false)),
            Arc::clone(&cancelled),
        ))
        .await;

    let _ = h
        .backend()
        .await
        .pre_room_user_join(join_request("gina"))
        .await
        .unwrap();

    // The SDK aborts the handler when CancelCall arrives, well before its 20 s sleep ends.
    assert!(
        flag_set_within(&cancelled, Duration::from_secs(1)).await,
        "the handler was not cancelled within 1 s of the timeout"
    );
}
