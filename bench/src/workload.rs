//! The requests the load generator sends: realistic rooms and users, a few hundred bytes encoded.

use prost::Message;
use roomhooks::v1::{
    PostRoomCreateRequest, PreRoomCreateRequest, PreRoomUserJoinRequest, Room, RoomType,
    RoomUserJoined, User,
};

fn user(username: &str) -> User {
    User {
        id: format!("u-{username}-5f3c9a1e"),
        username: username.into(),
        name: format!("{username} (bench)"),
        roles: vec!["user".into()],
        custom_fields: None,
    }
}

/// A room as a chat backend would send it; `id` empty for one not stored yet.
pub fn room(id: &str) -> Room {
    Room {
        id: id.into(),
        display_name: "Launch Party".into(),
        slugified_name: "launch-party".into(),
        r#type: RoomType::Channel as i32,
        creator: Some(user("owner")),
        member_usernames: vec!["owner".into(), "ana".into(), "bruno".into()],
        description: "Planning the launch".into(),
        ..Default::default()
    }
}

/// `ana` joins the stored channel `GENERAL` by herself.
pub fn joined() -> RoomUserJoined {
    RoomUserJoined {
        room: Some(room("GENERAL")),
        joining_user: Some(user("ana")),
        inviter: None,
    }
}

/// PreRoomUserJoin for [`joined`].
pub fn join_request() -> PreRoomUserJoinRequest {
    PreRoomUserJoinRequest {
        context: Some(joined()),
        dry_run: false,
        request_id: "bench".into(),
    }
}

/// PreRoomCreate for a room not stored yet.
pub fn create_request() -> PreRoomCreateRequest {
    PreRoomCreateRequest {
        room: Some(room("")),
        dry_run: false,
        request_id: "bench".into(),
    }
}

/// PostRoomCreate for a stored room; the sidecar assigns each event its id.
pub fn post_request() -> PostRoomCreateRequest {
    PostRoomCreateRequest {
        room: Some(room("GENERAL")),
        event_id: String::new(),
        wait_for_delivery: false,
    }
}

/// The floor's payload: the join context, encoded, so the floor moves the same bytes.
pub fn floor_body() -> Vec<u8> {
    joined().encode_to_vec()
}
