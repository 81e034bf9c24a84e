//! Timeouts, failure policies, missing instances, backend deadlines and CancelCall.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::{Harness, joining, new_room, within};
use roomhooks_sdk::{
    App, Extension, HookError, RoomHooksClient,
    proto::{
        FailurePolicy, OutcomeStatus, PreRoomCreateRequest, PreRoomUserJoinRequest,
        PreventionReason, RemoveAppRequest, RoomType, admin_client::AdminClient,
    },
};

fn join(username: &str) -> PreRoomUserJoinRequest {
    PreRoomUserJoinRequest {
        context: Some(joining("general", username)),
        ..Default::default()
    }
}

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

    let response = within(h.backend().await.pre_room_user_join(join("dave")))
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

    let response = within(h.backend().await.pre_room_user_join(join("dave")))
        .await
        .unwrap();

    assert!(!response.allowed);
    assert_eq!(response.outcomes[0].status, OutcomeStatus::Timeout as i32);
    let prevention = &response.preventions[0];
    assert_eq!(prevention.app_id, "strict");
    assert_eq!(prevention.reason, PreventionReason::AppUnavailable as i32);
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

    let response = backend.pre_room_user_join(join("erin")).await.unwrap();

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
    let after = backend.pre_room_user_join(join("erin")).await.unwrap();
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
async fn each_app_times_out_at_its_own_timeout_while_a_slower_one_is_still_waited_for() {
    let h = Harness::start().await;
    // Called first, so the sidecar is already waiting 5 s for it when the short timeout starts.
    let _patient = h
        .app(
            App::builder("patient")
                .priority(10)
                .timeout(Duration::from_secs(5))
                .pre_room_user_joined(|_, _| async {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Ok(())
                })
                .build(),
        )
        .await;
    let _hasty = h
        .app(sleeper(
            "hasty",
            FailurePolicy::Ignore,
            Duration::from_secs(3),
        ))
        .await;

    let response = within(h.backend().await.pre_room_user_join(join("erin")))
        .await
        .unwrap();

    assert!(response.allowed);
    let outcome = |app_id: &str| {
        response
            .outcomes
            .iter()
            .find(|o| o.app_id == app_id)
            .unwrap_or_else(|| panic!("no outcome for {app_id}: {:?}", response.outcomes))
    };
    assert_eq!(outcome("patient").status, OutcomeStatus::Allowed as i32);
    let hasty = outcome("hasty");
    assert_eq!(hasty.status, OutcomeStatus::Timeout as i32);
    // Its 100 ms timeout ended its wait, not the patient app's answer a second later.
    assert!(
        hasty.duration_us < 1_000_000,
        "the 100 ms timeout took {} µs",
        hasty.duration_us
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
    let response = within(backend.pre_room_user_join(join("frank")))
        .await
        .unwrap();

    assert!(response.allowed);
    assert_eq!(response.outcomes[0].status, OutcomeStatus::Timeout as i32);
}

#[tokio::test]
async fn the_app_is_told_to_cancel_a_call_the_sidecar_stopped_waiting_for() {
    let h = Harness::start().await;
    let cancelled = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancelled);
    let _app = h
        .app(
            App::builder("dawdler")
                .timeout(Duration::from_millis(100))
                .pre_room_user_joined(move |_, _| {
                    let guard = SetOnDrop(Arc::clone(&flag));
                    async move {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        drop(guard);
                        Ok(())
                    }
                })
                .build(),
        )
        .await;

    let _ = h
        .backend()
        .await
        .pre_room_user_join(join("gina"))
        .await
        .unwrap();

    // The SDK aborts the handler when CancelCall arrives, well before its 2 s sleep ends.
    for _ in 0..100 {
        if cancelled.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the handler was not cancelled within 1 s of the timeout");
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}
