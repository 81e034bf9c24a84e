//! PreRoomCreate: Prevent, then Extend (additive, merged in app order), then Modify (a chain).

mod common;

use common::{Harness, new_room, within};
use prost_types::Value;
use roomhooks_sdk::{
    App, Extension, HookError, Modification, Veto,
    proto::{HookInterface, OutcomeStatus, PreRoomCreateRequest, PreRoomCreateResponse, RoomType},
};

fn statuses(response: &PreRoomCreateResponse) -> Vec<(String, HookInterface, OutcomeStatus)> {
    response
        .outcomes
        .iter()
        .map(|o| {
            (
                o.app_id.clone(),
                HookInterface::try_from(o.hook).unwrap(),
                OutcomeStatus::try_from(o.status).unwrap(),
            )
        })
        .collect()
}

async fn create(h: &Harness, name: &str) -> PreRoomCreateResponse {
    within(h.backend().await.pre_room_create(PreRoomCreateRequest {
        room: Some(new_room(name, RoomType::Channel)),
        dry_run: false,
        request_id: String::new(),
    }))
    .await
    .expect("PreRoomCreate answers")
}

#[tokio::test]
async fn extensions_merge_in_app_order_and_an_overwrite_is_rejected_by_key() {
    let h = Harness::start().await;
    let _first = h
        .app(
            App::builder("a-tier")
                .priority(1)
                .pre_room_create_extend(|_, _| async {
                    Ok(Extension::new().field("tier", "gold").member("helper-bot"))
                })
                .build(),
        )
        .await;
    let _second = h
        .app(
            App::builder("b-tier")
                .priority(2)
                .pre_room_create_extend(|_, _| async {
                    Ok(Extension::new()
                        .field("tier", "silver")
                        .field("region", "eu"))
                })
                .build(),
        )
        .await;

    let response = create(&h, "Launch").await;

    assert!(response.allowed);
    let room = response.room.clone().unwrap();
    let fields = room.custom_fields.unwrap().fields;
    assert_eq!(
        fields["tier"],
        Value::from("gold"),
        "the earlier app's addition stands"
    );
    assert_eq!(
        fields["region"],
        Value::from("eu"),
        "the rest of a rejected app's additions apply"
    );
    assert_eq!(
        room.member_usernames,
        ["owner", "helper-bot"],
        "added members reach the backend"
    );
    assert_eq!(
        statuses(&response),
        [
            (
                "a-tier".into(),
                HookInterface::PreRoomCreateExtend,
                OutcomeStatus::Changed
            ),
            (
                "b-tier".into(),
                HookInterface::PreRoomCreateExtend,
                OutcomeStatus::Rejected
            ),
        ]
    );
    let detail = &response.outcomes[1].detail;
    assert!(
        detail.contains("\"tier\"") && detail.contains("a-tier"),
        "{detail}"
    );
}

#[tokio::test]
async fn an_extension_cannot_overwrite_a_field_the_room_already_has() {
    let h = Harness::start().await;
    let _app = h
        .app(
            App::builder("sneaky")
                .pre_room_create_extend(|_, _| async {
                    Ok(Extension::new().field("origin", "app"))
                })
                .build(),
        )
        .await;
    let mut room = new_room("Has fields", RoomType::Channel);
    room.custom_fields = Some(prost_types::Struct {
        fields: [("origin".to_owned(), Value::from("backend"))].into(),
    });

    let response = h
        .backend()
        .await
        .pre_room_create(PreRoomCreateRequest {
            room: Some(room),
            ..Default::default()
        })
        .await
        .unwrap();

    let fields = response.room.unwrap().custom_fields.unwrap().fields;
    assert_eq!(fields["origin"], Value::from("backend"));
    assert_eq!(response.outcomes[0].status, OutcomeStatus::Rejected as i32);
    assert!(response.outcomes[0].detail.contains("already in the room"));
}

#[tokio::test]
async fn modify_runs_as_a_chain_in_app_order_each_seeing_the_previous_room() {
    let h = Harness::start().await;
    // Registered in reverse so that order can only come from priorities.
    let _suffix = h
        .app(
            App::builder("suffix")
                .priority(2)
                .pre_room_create_modify(|_, mut room| async move {
                    room.display_name.push_str(" [2]");
                    Ok(Modification::Changed(room))
                })
                .build(),
        )
        .await;
    let _prefix = h
        .app(
            App::builder("prefix")
                .priority(1)
                .pre_room_create_modify(|_, mut room| async move {
                    room.display_name.push_str(" [1]");
                    Ok(Modification::Changed(room))
                })
                .build(),
        )
        .await;
    let _noop = h
        .app(
            App::builder("noop")
                .priority(3)
                .pre_room_create_modify(|_, _| async { Ok(Modification::Unchanged) })
                .build(),
        )
        .await;

    let response = create(&h, "Room").await;

    assert_eq!(response.room.as_ref().unwrap().display_name, "Room [1] [2]");
    let order: Vec<_> = statuses(&response)
        .into_iter()
        .map(|(a, _, s)| (a, s))
        .collect();
    assert_eq!(
        order,
        [
            ("prefix".into(), OutcomeStatus::Changed),
            ("suffix".into(), OutcomeStatus::Changed),
            ("noop".into(), OutcomeStatus::Unchanged),
        ]
    );
}

#[tokio::test]
async fn modify_cannot_change_the_room_id_and_the_chain_keeps_the_previous_room() {
    let h = Harness::start().await;
    let _thief = h
        .app(
            App::builder("id-thief")
                .priority(1)
                .pre_room_create_modify(|_, mut room| async move {
                    room.id = "forced-id".into();
                    room.display_name = "hijacked".into();
                    Ok(Modification::Changed(room))
                })
                .build(),
        )
        .await;
    let _honest = h
        .app(
            App::builder("honest")
                .priority(2)
                .pre_room_create_modify(|_, mut room| async move {
                    room.description = "checked".into();
                    Ok(Modification::Changed(room))
                })
                .build(),
        )
        .await;

    let response = create(&h, "Original").await;

    let room = response.room.clone().unwrap();
    assert_eq!(room.id, "");
    assert_eq!(room.display_name, "Original");
    assert_eq!(room.description, "checked");
    assert_eq!(response.outcomes[0].status, OutcomeStatus::Rejected as i32);
    assert!(
        response.outcomes[0]
            .detail
            .contains("room.id cannot be changed")
    );
    assert_eq!(response.outcomes[1].status, OutcomeStatus::Changed as i32);
}

#[tokio::test]
async fn a_failing_modify_app_is_skipped_without_wiping_the_chain() {
    let h = Harness::start().await;
    let _first = h
        .app(
            App::builder("first")
                .priority(1)
                .pre_room_create_modify(|_, mut room| async move {
                    room.slugified_name = "first-was-here".into();
                    Ok(Modification::Changed(room))
                })
                .build(),
        )
        .await;
    let _broken = h
        .app(
            App::builder("broken")
                .priority(2)
                .pre_room_create_modify(|_, _| async {
                    Err(HookError::Failed("database down".into()))
                })
                .build(),
        )
        .await;

    let response = create(&h, "Kept").await;

    assert!(response.allowed);
    assert_eq!(response.room.unwrap().slugified_name, "first-was-here");
    assert_eq!(response.outcomes[1].status, OutcomeStatus::Error as i32);
    assert!(response.outcomes[1].detail.contains("database down"));
    assert!(response.outcomes[1].detail.contains("IGNORE"));
}

#[tokio::test]
async fn creation_runs_prevent_then_extend_then_modify_and_modify_sees_the_extension() {
    let h = Harness::start().await;
    let _app = h
        .app(
            App::builder("all-stages")
                .pre_room_create_prevent(|_, _| async { Ok(Veto::Allow) })
                .pre_room_create_extend(|_, _| async {
                    Ok(Extension::new().field("stage", "extend"))
                })
                .pre_room_create_modify(|_, mut room| async move {
                    let seen = room
                        .custom_fields
                        .as_ref()
                        .and_then(|f| f.fields.get("stage"))
                        .is_some();
                    room.description = format!("modify saw the extension: {seen}");
                    Ok(Modification::Changed(room))
                })
                .build(),
        )
        .await;

    let response = create(&h, "Staged").await;

    let hooks: Vec<_> = statuses(&response)
        .into_iter()
        .map(|(_, hook, _)| hook)
        .collect();
    assert_eq!(
        hooks,
        [
            HookInterface::PreRoomCreatePrevent,
            HookInterface::PreRoomCreateExtend,
            HookInterface::PreRoomCreateModify
        ]
    );
    assert_eq!(
        response.room.as_ref().unwrap().description,
        "modify saw the extension: true"
    );
}

#[tokio::test]
async fn a_prevented_creation_skips_extend_and_modify() {
    let h = Harness::start().await;
    let _app = h
        .app(
            App::builder("gatekeeper")
                .pre_room_create_prevent(|_, _| async { Ok(Veto::prevent("closed for today")) })
                .pre_room_create_extend(|_, _| async { Ok(Extension::new().field("x", true)) })
                .build(),
        )
        .await;

    let response = create(&h, "Nope").await;

    assert!(!response.allowed);
    assert_eq!(response.preventions[0].message, "closed for today");
    assert_eq!(response.outcomes.len(), 1, "only the prevent stage ran");
}
