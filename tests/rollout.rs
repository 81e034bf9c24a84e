//! Rolling an app out: shadow mode, match conditions, guarded modifications, warnings and the
//! per-app call budget, each set in the operator's `[apps.<id>]` table.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{Harness, created, join_request, new_room, recorder, scrape, statuses, within};
use roomhooks_sdk::{
    App, Extension, Modification, Veto,
    proto::{
        HookInterface, HookStats, ListAppsResponse, OutcomeStatus, PreRoomCreateRequest,
        PreventionReason, RoomType,
    },
};
use roomhooks_server::{AppSettings, Conditions, FieldGuard, Mode, config::MaybeAddr};

fn create(name: &str, room_type: RoomType) -> PreRoomCreateRequest {
    PreRoomCreateRequest {
        room: Some(new_room(name, room_type)),
        ..Default::default()
    }
}

fn shadow() -> AppSettings {
    AppSettings {
        mode: Some(Mode::Shadow),
        ..Default::default()
    }
}

fn conditions(sources: &[&str]) -> Conditions {
    Conditions::compile(&sources.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("the conditions compile")
}

/// The stats of `app_id` for `hook`, if it was called for it.
fn stats(listed: &ListAppsResponse, app_id: &str, hook: HookInterface) -> Option<HookStats> {
    listed
        .apps
        .iter()
        .find(|a| a.app_id == app_id)?
        .stats
        .iter()
        .find(|s| s.hook == hook as i32)
        .cloned()
}

/// An app that prevents every room creation and counts its calls.
fn vetoer(app_id: &str, calls: &Arc<AtomicUsize>) -> App {
    let calls = Arc::clone(calls);
    App::builder(app_id)
        .pre_room_create_prevent(move |_, _| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok(Veto::prevent("No rooms today.")) }
        })
        .build()
}

#[tokio::test]
async fn a_shadow_app_that_would_veto_never_vetoes_and_is_counted_as_a_disagreement() {
    let h = Harness::start_with(|c| {
        c.metrics_listen = MaybeAddr::On("127.0.0.1:0".parse().unwrap());
        c.apps.insert("strict".into(), shadow());
    })
    .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let _app = h.app(vetoer("strict", &calls)).await;

    let response = h
        .backend()
        .await
        .pre_room_create(create("Launch", RoomType::Channel))
        .await
        .unwrap();

    assert!(response.allowed, "{response:?}");
    assert!(response.preventions.is_empty());
    assert_eq!(
        statuses(&response.outcomes),
        [("strict", OutcomeStatus::Shadowed)]
    );
    h.wait_for_apps("the shadow answer is counted", |listed| {
        stats(listed, "strict", HookInterface::PreRoomCreatePrevent)
            .is_some_and(|s| s.shadowed == 1 && s.shadow_disagreements == 1 && s.vetoes == 0)
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the app was called");
    let text = within(scrape(h.sidecar.metrics_addr().unwrap())).await;
    let series = "roomhooks_app_shadow_disagreements_total{app_id=\"strict\",hook=\"PreRoomCreatePrevent\"} 1";
    assert!(text.contains(series), "missing {series:?} in\n{text}");
    assert_eq!(h.list_apps().await.apps[0].mode, "shadow");
}

#[tokio::test]
async fn a_shadow_answer_given_in_time_says_what_it_would_have_done() {
    let h = Harness::start_with(|c| {
        c.apps.insert("strict".into(), shadow());
    })
    .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let _shadow = h.app(vetoer("strict", &calls)).await;
    // An enforcing app that answers only after the shadow app did.
    let slow = App::builder("slow")
        .pre_room_create_prevent(|_, _| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(Veto::Allow)
        })
        .build();
    let _slow = h.app(slow).await;

    let response = h
        .backend()
        .await
        .pre_room_create(create("Launch", RoomType::Channel))
        .await
        .unwrap();

    assert!(response.allowed);
    let shadowed = response
        .outcomes
        .iter()
        .find(|o| o.app_id == "strict")
        .expect("the shadow app's outcome");
    assert_eq!(shadowed.status, OutcomeStatus::Shadowed as i32);
    assert_eq!(shadowed.detail, "would have prevented: No rooms today.");
}

#[tokio::test]
async fn a_shadow_extend_app_changes_nothing_and_says_what_it_would_have_added() {
    let h = Harness::start_with(|c| {
        c.apps.insert("tiering".into(), shadow());
    })
    .await;
    let tiering = App::builder("tiering")
        .pre_room_create_extend(|_, _| async { Ok(Extension::new().field("tier", "gold")) })
        .build();
    // An enforcing Modify app that takes a while: the shadow answer is in by the end.
    let slow = App::builder("slow")
        .pre_room_create_modify(|_, _| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(Modification::Unchanged)
        })
        .build();
    let _apps = (h.app(tiering).await, h.app(slow).await);

    let response = h
        .backend()
        .await
        .pre_room_create(create("Launch", RoomType::Channel))
        .await
        .unwrap();

    assert!(response.allowed);
    let room = response.room.unwrap();
    assert!(
        room.custom_fields
            .as_ref()
            .is_none_or(|f| !f.fields.contains_key("tier")),
        "the shadow app's field was not added: {room:?}"
    );
    assert_eq!(
        statuses(&response.outcomes),
        [
            ("slow", OutcomeStatus::Unchanged),
            ("tiering", OutcomeStatus::Shadowed)
        ]
    );
    assert_eq!(
        response.outcomes[1].detail,
        "would have added custom field tier"
    );
}

#[tokio::test]
async fn a_shadow_app_slower_than_the_deadline_does_not_delay_the_answer() {
    let h = Harness::start_with(|c| {
        c.apps.insert(
            "sluggish".into(),
            AppSettings {
                timeout: Some(Duration::from_secs(9)),
                ..shadow()
            },
        );
    })
    .await;
    let answered = Arc::new(AtomicBool::new(false));
    let sluggish = App::builder("sluggish")
        .pre_room_create_prevent({
            let answered = Arc::clone(&answered);
            move |_, _| {
                let answered = Arc::clone(&answered);
                async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    answered.store(true, Ordering::SeqCst);
                    Ok(Veto::prevent("too late"))
                }
            }
        })
        .build();
    let _sluggish = h.app(sluggish).await;
    let quick = App::builder("quick")
        .pre_room_create_prevent(|_, _| async { Ok(Veto::Allow) })
        .build();
    let _quick = h.app(quick).await;

    let response = h
        .backend()
        .await
        .with_deadline(Duration::from_secs(3))
        .pre_room_create(create("Launch", RoomType::Channel))
        .await
        .expect("the answer arrives within the backend's deadline");

    assert!(
        !answered.load(Ordering::SeqCst),
        "the answer came while the shadow app was still sleeping"
    );
    assert!(response.allowed);
    assert_eq!(
        statuses(&response.outcomes),
        [
            ("quick", OutcomeStatus::Allowed),
            ("sluggish", OutcomeStatus::Shadowed)
        ]
    );
    assert!(
        response.outcomes[1]
            .detail
            .starts_with("timed out in shadow"),
        "{}",
        response.outcomes[1].detail
    );
}

#[tokio::test]
async fn a_false_match_condition_skips_the_app_with_no_round_trip() {
    let h = Harness::start_with(|c| {
        c.apps.insert(
            "channels-only".into(),
            AppSettings {
                match_conditions: conditions(&["room.type == ROOM_TYPE_CHANNEL"]),
                ..Default::default()
            },
        );
    })
    .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let _app = h.app(vetoer("channels-only", &calls)).await;
    let backend = h.backend().await;

    let group = backend
        .pre_room_create(create("Team", RoomType::PrivateGroup))
        .await
        .unwrap();

    assert!(group.allowed && group.outcomes.is_empty(), "{group:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no round trip");
    let channel = backend
        .pre_room_create(create("Town square", RoomType::Channel))
        .await
        .unwrap();
    assert!(!channel.allowed, "the condition holds: the app is called");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let listed = h.list_apps().await;
    let counted = stats(
        &listed,
        "channels-only",
        HookInterface::PreRoomCreatePrevent,
    )
    .unwrap();
    assert_eq!((counted.calls, counted.skipped), (1, 1));
    assert_eq!(listed.apps[0].r#match, ["room.type == ROOM_TYPE_CHANNEL"]);
}

#[tokio::test]
async fn a_post_event_the_match_conditions_refuse_is_not_queued_for_the_app() {
    let h = Harness::start_with(|c| {
        c.apps.insert(
            "channel-audit".into(),
            AppSettings {
                match_conditions: conditions(&["room.type == ROOM_TYPE_CHANNEL"]),
                ..Default::default()
            },
        );
    })
    .await;
    let (app, mut handled) = recorder("channel-audit");
    let _app = h.app(app).await;
    let backend = h.backend().await;
    let mut group = created("team-room", false);
    if let Some(room) = group.room.as_mut() {
        room.r#type = RoomType::PrivateGroup as i32;
    }

    let refused = backend.post_room_create(group).await.unwrap();
    let admitted = backend
        .post_room_create(created("town-square", true))
        .await
        .unwrap();

    assert_eq!((refused.subscribed_apps, admitted.subscribed_apps), (0, 1));
    assert_eq!(
        within(handled.recv()).await,
        Some(("evt-town-square".to_owned(), 1)),
        "the first event the app handles is the channel's"
    );
}

#[tokio::test]
async fn a_match_condition_that_fails_at_run_time_applies_the_apps_failure_policy() {
    let h = Harness::start_with(|c| {
        c.apps.insert(
            "tiered".into(),
            AppSettings {
                failure_policy: Some(roomhooks_server::FailurePolicy::Fail),
                // The room has no custom field "tier": reading it fails.
                match_conditions: conditions(&[r#"room.custom_fields.tier == "gold""#]),
                ..Default::default()
            },
        );
    })
    .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let _app = h.app(vetoer("tiered", &calls)).await;

    let response = h
        .backend()
        .await
        .pre_room_create(create("Launch", RoomType::Channel))
        .await
        .unwrap();

    assert!(!response.allowed);
    assert_eq!(
        response.preventions[0].reason,
        PreventionReason::AppUnavailable as i32
    );
    assert_eq!(
        statuses(&response.outcomes),
        [("tiered", OutcomeStatus::Error)]
    );
    let detail = &response.outcomes[0].detail;
    assert!(
        detail.contains(r#"`room.custom_fields.tier == "gold"`"#)
            && detail.contains("failure policy FAIL"),
        "{detail}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the app was not called");
}

#[tokio::test]
async fn a_modification_outside_may_modify_is_rejected_and_the_chain_continues() {
    let h = Harness::start_with(|c| {
        c.apps.insert(
            "slugger".into(),
            AppSettings {
                may_modify: FieldGuard::new(vec!["slugified_name".into()]).unwrap(),
                ..Default::default()
            },
        );
    })
    .await;
    let slugger = App::builder("slugger")
        .priority(1)
        .pre_room_create_modify(|_, mut room| async move {
            room.display_name = "RENAMED".into();
            room.slugified_name = "renamed".into();
            Ok(Modification::Changed(room))
        })
        .build();
    let describer = App::builder("describer")
        .priority(2)
        .pre_room_create_modify(|_, mut room| async move {
            room.description = format!("{} (described)", room.display_name);
            Ok(Modification::Changed(room))
        })
        .build();
    let _apps = (h.app(slugger).await, h.app(describer).await);

    let response = h
        .backend()
        .await
        .pre_room_create(create("Launch", RoomType::Channel))
        .await
        .unwrap();

    assert!(response.allowed);
    assert_eq!(
        statuses(&response.outcomes),
        [
            ("slugger", OutcomeStatus::Rejected),
            ("describer", OutcomeStatus::Changed)
        ]
    );
    let detail = &response.outcomes[0].detail;
    assert!(
        detail.contains("room.display_name may not be changed") && detail.contains("may_modify"),
        "{detail}"
    );
    let room = response.room.unwrap();
    assert_eq!(
        (room.display_name.as_str(), room.slugified_name.as_str()),
        ("Launch", "launch"),
        "the chain went on with the room as it was before the rejected answer"
    );
    assert_eq!(room.description, "Launch (described)");
}

#[tokio::test]
async fn an_allow_with_a_warning_reaches_the_backend_in_warnings() {
    let h = Harness::start().await;
    let warner = App::builder("namecheck")
        .pre_room_create_prevent(|_, _| async { Ok(Veto::warn("This room name may be confusing")) })
        .build();
    let _app = h.app(warner).await;

    let response = h
        .backend()
        .await
        .pre_room_create(create("l0gin", RoomType::Channel))
        .await
        .unwrap();

    assert!(response.allowed);
    assert_eq!(response.warnings.len(), 1, "{response:?}");
    let warning = &response.warnings[0];
    assert_eq!(
        (warning.app_id.as_str(), warning.message.as_str()),
        ("namecheck", "This room name may be confusing")
    );
    assert_eq!(warning.hook, HookInterface::PreRoomCreatePrevent as i32);
}

#[tokio::test]
async fn a_registered_timeout_is_capped_by_the_apps_max_timeout() {
    let h = Harness::start_with(|c| {
        c.apps.insert(
            "greedy".into(),
            AppSettings {
                max_timeout: Some(Duration::from_millis(250)),
                ..Default::default()
            },
        );
    })
    .await;
    let greedy = App::builder("greedy")
        .timeout(Duration::from_secs(5))
        .pre_room_user_joined(|_, _| async { Ok(()) })
        .build();
    let _app = h.app(greedy).await;

    let listed = h.list_apps().await;

    let timeout = listed.apps[0].timeout.expect("a timeout");
    assert_eq!((timeout.seconds, timeout.nanos), (0, 250_000_000));
    let response = h
        .backend()
        .await
        .pre_room_user_join(join_request("olga"))
        .await
        .unwrap();
    assert!(response.allowed);
}
