use super::*;

fn conditions(sources: &[&str]) -> Conditions {
    Conditions::compile(&sources.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap()
}

fn room() -> pb::Room {
    pb::Room {
        display_name: "Launch".into(),
        r#type: RoomType::Channel as i32,
        custom_fields: Some(Struct {
            fields: [("locked".to_owned(), prost_types::Value::from(true))].into(),
        }),
        ..Default::default()
    }
}

#[test]
fn the_issue_examples_hold_for_a_locked_channel_created_by_a_member() {
    let c = conditions(&[
        "room.type == ROOM_TYPE_CHANNEL",
        "has(room.custom_fields.locked)",
        r#"!("admin" in user.roles)"#,
    ]);
    let room = room();
    let mut payload = Payload::new(PayloadRef::Room(&room));
    assert_eq!(
        c.matches(payload.for_hook(Hook::PreRoomCreatePrevent)),
        Ok(true)
    );
}

#[test]
fn a_false_condition_skips_and_a_failing_one_is_an_error() {
    let room = room();
    let mut payload = Payload::new(PayloadRef::Room(&room));
    let payload = payload.for_hook(Hook::PreRoomCreatePrevent);
    assert_eq!(
        conditions(&["room.type == ROOM_TYPE_LIVECHAT"]).matches(payload),
        Ok(false)
    );
    let err = conditions(&["room.custom_fields.missing == 1"])
        .matches(payload)
        .unwrap_err();
    assert!(err.problem.contains("failed"), "{err}");
    let err = conditions(&["room.display_name"])
        .matches(payload)
        .unwrap_err();
    assert!(err.problem.contains("not a bool"), "{err}");
}

#[test]
fn a_join_sees_the_joining_user_and_the_inviter() {
    let payload = hook_call::Payload::UserJoined(pb::RoomUserJoined {
        room: Some(room()),
        joining_user: Some(pb::User {
            username: "ann".into(),
            roles: vec!["admin".into()],
            ..Default::default()
        }),
        inviter: None,
    });
    let mut variables = Payload::new(PayloadRef::Call(&payload));
    let c = conditions(&[
        r#"user.username == "ann" && "admin" in user.roles"#,
        r#"inviter.username == """#,
        r#"hook == "PreRoomUserJoined""#,
    ]);
    assert_eq!(
        c.matches(variables.for_hook(Hook::PreRoomUserJoined)),
        Ok(true)
    );
}

#[test]
fn a_bad_expression_is_refused_with_its_index_and_position() {
    let err = Conditions::compile(&["true".into(), "room.type ==".into()]).unwrap_err();
    assert_eq!(err.index, 1);
    assert!(err.problem.contains("line 1 column"), "{err}");
}
