//! Checks on what the backend sends, before any app is called. Each refusal names the field.
//! A request that passed every check becomes its own type — [`NewRoom`], [`VetoRequest`] — which
//! only this module can build, so the dispatcher never receives an unchecked room.

use roomhooks::v1::{self as pb, Room, RoomType, RoomUserJoined, RoomUserLeave, hook_call};
use tonic::Status;

use crate::hook::Hook;

/// The room of a PreRoomCreate call, checked: present, of a known type other than
/// `ROOM_TYPE_UNSPECIFIED`, its custom fields within `--max-custom-field-bytes`.
#[derive(Debug)]
pub struct NewRoom(Room);

impl NewRoom {
    /// The room, to change in the pipeline and hand back.
    pub fn into_room(self) -> Room {
        self.0
    }
}

/// A veto call on its own (delete, join, leave), checked: a stored room (with its id), the user
/// for join and leave, custom fields within `--max-custom-field-bytes`. The hook always fits the
/// payload.
#[derive(Debug)]
pub struct VetoRequest {
    hook: Hook,
    room_type: RoomType,
    payload: hook_call::Payload,
}

impl VetoRequest {
    /// The veto hook the request is for.
    pub fn hook(&self) -> Hook {
        self.hook
    }

    /// The type of the room it is about.
    pub fn room_type(&self) -> RoomType {
        self.room_type
    }

    /// What apps are sent.
    pub fn payload(&self) -> &hook_call::Payload {
        &self.payload
    }
}

/// Why a Pre request was refused before any app was called.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A field is missing or wrong.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    /// Its custom fields weigh too much.
    #[error(transparent)]
    TooLarge(#[from] CustomFieldsTooLarge),
}

impl From<Refused> for Status {
    fn from(err: Refused) -> Self {
        Status::invalid_argument(err.to_string())
    }
}

/// Checks a PreRoomCreate request: custom fields first, then the room.
pub fn create_request(
    req: pb::PreRoomCreateRequest,
    max_field_bytes: usize,
) -> Result<NewRoom, Refused> {
    custom_fields(
        max_field_bytes,
        &[FieldsOf::Room("room", req.room.as_ref())],
    )?;
    Ok(NewRoom(pre_room_create(req)?))
}

/// Checks a PreRoomDelete request: custom fields first, then the room.
pub fn delete_request(
    req: pb::PreRoomDeleteRequest,
    max_field_bytes: usize,
) -> Result<VetoRequest, Refused> {
    custom_fields(
        max_field_bytes,
        &[FieldsOf::Room("room", req.room.as_ref())],
    )?;
    let room = pre_room_delete(req)?;
    Ok(VetoRequest {
        hook: Hook::PreRoomDeletePrevent,
        room_type: room.r#type(),
        payload: hook_call::Payload::Room(room),
    })
}

/// Checks a PreRoomUserJoin request: the context, then its custom fields.
pub fn join_request(
    req: pb::PreRoomUserJoinRequest,
    max_field_bytes: usize,
) -> Result<VetoRequest, Refused> {
    let context = pre_room_user_join(req)?;
    joined_fields(&context, max_field_bytes)?;
    Ok(VetoRequest {
        hook: Hook::PreRoomUserJoined,
        room_type: room_type(context.room.as_ref()),
        payload: hook_call::Payload::UserJoined(context),
    })
}

/// Checks a PreRoomUserLeave request: the context, then its custom fields.
pub fn leave_request(
    req: pb::PreRoomUserLeaveRequest,
    max_field_bytes: usize,
) -> Result<VetoRequest, Refused> {
    let context = pre_room_user_leave(req)?;
    leave_fields(&context, max_field_bytes)?;
    Ok(VetoRequest {
        hook: Hook::PreRoomUserLeave,
        room_type: room_type(context.room.as_ref()),
        payload: hook_call::Payload::UserLeave(context),
    })
}

/// Checks a join context's custom fields (room, joining user, inviter).
pub fn joined_fields(c: &RoomUserJoined, limit: usize) -> Result<(), CustomFieldsTooLarge> {
    custom_fields(
        limit,
        &[
            FieldsOf::Room("context.room", c.room.as_ref()),
            FieldsOf::User(
                "context.joining_user.custom_fields",
                c.joining_user.as_ref(),
            ),
            FieldsOf::User("context.inviter.custom_fields", c.inviter.as_ref()),
        ],
    )
}

/// Checks a leave context's custom fields (room, leaving user, remover).
pub fn leave_fields(c: &RoomUserLeave, limit: usize) -> Result<(), CustomFieldsTooLarge> {
    custom_fields(
        limit,
        &[
            FieldsOf::Room("context.room", c.room.as_ref()),
            FieldsOf::User(
                "context.leaving_user.custom_fields",
                c.leaving_user.as_ref(),
            ),
            FieldsOf::User("context.removed_by.custom_fields", c.removed_by.as_ref()),
        ],
    )
}

/// The type of a room that may be absent (absent reads as UNSPECIFIED).
pub fn room_type(room: Option<&Room>) -> RoomType {
    room.map_or(RoomType::Unspecified, Room::r#type)
}

/// A backend request that cannot be dispatched.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field} {problem}")]
pub struct InvalidRequest {
    /// The offending field, as a path in the request.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl From<InvalidRequest> for Status {
    fn from(err: InvalidRequest) -> Self {
        Status::invalid_argument(err.to_string())
    }
}

/// The longest `request_id` accepted, in bytes.
pub const MAX_REQUEST_ID_LEN: usize = 256;

fn invalid(field: &'static str, problem: &'static str) -> InvalidRequest {
    InvalidRequest { field, problem }
}

fn request_id(raw: &str) -> Result<(), InvalidRequest> {
    if raw.len() > MAX_REQUEST_ID_LEN {
        return Err(invalid("request_id", "is longer than 256 bytes, the limit"));
    }
    Ok(())
}

/// PreRoomCreate needs a room with a type.
fn pre_room_create(req: pb::PreRoomCreateRequest) -> Result<Room, InvalidRequest> {
    request_id(&req.request_id)?;
    let room = req.room.ok_or(invalid("room", "is required"))?;
    match RoomType::try_from(room.r#type) {
        Ok(RoomType::Unspecified) => Err(invalid(
            "room.type",
            "is ROOM_TYPE_UNSPECIFIED; set the type of the room to create",
        )),
        Err(_) => Err(invalid("room.type", "is not a known RoomType")),
        Ok(_) => Ok(room),
    }
}

/// A room that already exists must carry its id.
pub fn stored_room(room: Option<Room>, field: &'static str) -> Result<Room, InvalidRequest> {
    let room = room.ok_or(invalid(field, "is required"))?;
    if room.id.is_empty() {
        return Err(invalid(
            match field {
                "context.room" => "context.room.id",
                _ => "room.id",
            },
            "is required (the room must already be stored)",
        ));
    }
    Ok(room)
}

/// PreRoomDelete needs a stored room.
fn pre_room_delete(req: pb::PreRoomDeleteRequest) -> Result<Room, InvalidRequest> {
    request_id(&req.request_id)?;
    stored_room(req.room, "room")
}

/// A join context needs a stored room and the joining user.
pub fn joined(context: Option<RoomUserJoined>) -> Result<RoomUserJoined, InvalidRequest> {
    let mut context = context.ok_or(invalid("context", "is required"))?;
    context.room = Some(stored_room(context.room.take(), "context.room")?);
    if context.joining_user.is_none() {
        return Err(invalid("context.joining_user", "is required"));
    }
    Ok(context)
}

/// A leave context needs a stored room and the leaving user.
pub fn leave(context: Option<RoomUserLeave>) -> Result<RoomUserLeave, InvalidRequest> {
    let mut context = context.ok_or(invalid("context", "is required"))?;
    context.room = Some(stored_room(context.room.take(), "context.room")?);
    if context.leaving_user.is_none() {
        return Err(invalid("context.leaving_user", "is required"));
    }
    Ok(context)
}

/// PreRoomUserJoin needs a valid join context.
fn pre_room_user_join(req: pb::PreRoomUserJoinRequest) -> Result<RoomUserJoined, InvalidRequest> {
    request_id(&req.request_id)?;
    joined(req.context)
}

/// PreRoomUserLeave needs a valid leave context.
fn pre_room_user_leave(req: pb::PreRoomUserLeaveRequest) -> Result<RoomUserLeave, InvalidRequest> {
    request_id(&req.request_id)?;
    leave(req.context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_room_create_names_the_missing_room_and_the_unspecified_type() {
        let err = pre_room_create(pb::PreRoomCreateRequest::default()).unwrap_err();
        assert_eq!(err.field, "room");
        let err = pre_room_create(pb::PreRoomCreateRequest {
            room: Some(Room::default()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "room.type");
    }

    #[test]
    fn join_and_leave_need_a_stored_room_and_their_user() {
        let room = Some(Room {
            id: "r1".into(),
            ..Default::default()
        });
        let err = joined(Some(RoomUserJoined {
            room: Some(Room::default()),
            ..Default::default()
        }))
        .unwrap_err();
        assert_eq!(err.field, "context.room.id");
        let err = joined(Some(RoomUserJoined {
            room: room.clone(),
            ..Default::default()
        }))
        .unwrap_err();
        assert_eq!(err.field, "context.joining_user");
        let err = leave(Some(RoomUserLeave {
            room,
            ..Default::default()
        }))
        .unwrap_err();
        assert_eq!(err.field, "context.leaving_user");
    }
}

/// The custom fields of a request weigh more than `--max-custom-field-bytes` in all.
#[derive(Debug, PartialEq, Eq)]
pub struct CustomFieldsTooLarge {
    /// Each non-empty `custom_fields` of the request, by field path, with its encoded size.
    pub parts: Vec<(&'static str, usize)>,
    /// Their sum.
    pub total: usize,
    /// The limit.
    pub limit: usize,
}

impl std::error::Error for CustomFieldsTooLarge {}

impl std::fmt::Display for CustomFieldsTooLarge {
    /// Starts with the field path, as every refusal does: `room.custom_fields is 4111 bytes
    /// encoded; …` or `context.room.custom_fields + context.inviter.custom_fields are … in all`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limit = self.limit;
        match self.parts.as_slice() {
            [(field, size)] => write!(f, "{field} is {size} bytes encoded"),
            parts => {
                let fields: Vec<&str> = parts.iter().map(|(field, _)| *field).collect();
                let sizes: Vec<String> = parts.iter().map(|(f, s)| format!("{f} {s}")).collect();
                write!(
                    f,
                    "{} are {} bytes encoded in all ({})",
                    fields.join(" + "),
                    self.total,
                    sizes.join(", ")
                )
            }
        }?;
        write!(
            f,
            "; the limit is {limit} bytes for all custom fields of a request \
             (--max-custom-field-bytes)"
        )
    }
}

impl From<CustomFieldsTooLarge> for Status {
    fn from(err: CustomFieldsTooLarge) -> Self {
        Status::invalid_argument(err.to_string())
    }
}

/// Where a request carries custom fields: a room (with its creator) or a user.
pub enum FieldsOf<'a> {
    /// A room and its creator, under `path` ("room" or "context.room").
    Room(&'static str, Option<&'a Room>),
    /// A user under `path` ("context.joining_user", …).
    User(&'static str, Option<&'a pb::User>),
}

/// Checks that the custom fields of a request (rooms, creators and users alike) weigh at most
/// `limit` bytes encoded in all.
pub fn custom_fields(limit: usize, sources: &[FieldsOf<'_>]) -> Result<(), CustomFieldsTooLarge> {
    fn size(fields: Option<&prost_types::Struct>) -> usize {
        fields.map_or(0, prost::Message::encoded_len)
    }
    let mut parts = Vec::new();
    for source in sources {
        match *source {
            FieldsOf::Room(path, Some(room)) => {
                let (fields, creator) = match path {
                    "context.room" => (
                        "context.room.custom_fields",
                        "context.room.creator.custom_fields",
                    ),
                    _ => ("room.custom_fields", "room.creator.custom_fields"),
                };
                parts.push((fields, size(room.custom_fields.as_ref())));
                let of_creator = room.creator.as_ref().and_then(|u| u.custom_fields.as_ref());
                parts.push((creator, size(of_creator)));
            }
            FieldsOf::User(path, Some(user)) => {
                parts.push((path, size(user.custom_fields.as_ref())));
            }
            FieldsOf::Room(_, None) | FieldsOf::User(_, None) => {}
        }
    }
    parts.retain(|&(_, size)| size > 0);
    let total = parts.iter().map(|&(_, size)| size).sum();
    if total > limit {
        return Err(CustomFieldsTooLarge {
            parts,
            total,
            limit,
        });
    }
    Ok(())
}
