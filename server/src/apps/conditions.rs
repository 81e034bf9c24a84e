//! Match conditions (`[apps.<id>] match = [...]`): CEL expressions over a Pre call's payload,
//! compiled once when the config is read and evaluated in the sidecar before any app is called.
//! All true: the app is called; any false: it is skipped with no round trip (and no outcome,
//! like a room-type filter); one that fails at run time: the app's failure policy applies.
//! Post events are filtered the same way when accepted (an event no condition lets through is
//! not queued for the app; one whose condition fails is, as post events have no failure policy).
//!
//! The variables an expression sees (every field is present, with its default value when the
//! backend left it unset, so reading one never fails; `has()` tests a `custom_fields` key):
//! - `room`: the room, its fields named as in the proto (`room.display_name`, `room.type`,
//!   `room.custom_fields.locked`, `room.creator.username`); `type` is the enum's name;
//! - `user`: the joining (PreRoomUserJoined, PostRoomUserJoined) or leaving (PreRoomUserLeave,
//!   PostRoomUserLeave) user, or the room's creator for the create and delete hooks;
//! - `inviter` (join) and `removed_by` (leave): a user, empty when absent;
//! - `hook`: the hook's name (`"PreRoomCreatePrevent"`);
//! - `ROOM_TYPE_CHANNEL`, `ROOM_TYPE_PRIVATE_GROUP`, `ROOM_TYPE_DIRECT_MESSAGE`,
//!   `ROOM_TYPE_LIVECHAT`: the room types, to compare `room.type` with.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock},
};

use cel::{
    Context, Env, Program, Value,
    common::types::{CelBool, CelDouble, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt},
};
use prost_types::{Struct, value::Kind};
use roomhooks::v1::{self as pb, RoomType, hook_call, post_event};

use crate::hook::Hook;

/// The standard CEL environment, built once.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// One compiled expression and its source.
struct Condition {
    source: String,
    program: Program,
}

/// An app's match conditions, compiled; empty = the app is called for every event.
#[derive(Clone, Default)]
pub struct Conditions(Arc<[Condition]>);

/// An expression that does not compile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "match expression {} of {count} `{expression}` does not compile: {problem}",
    index + 1
)]
pub struct CompileError {
    /// Its place in the list, from 0.
    pub index: usize,
    /// How many expressions the list holds.
    pub count: usize,
    /// The expression as written.
    pub expression: String,
    /// What is wrong, with the line and column inside the expression.
    pub problem: String,
}

/// An expression that failed while evaluated, or did not give a boolean.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("match expression `{expression}` {problem}")]
pub struct EvalError {
    /// The expression as written.
    pub expression: String,
    /// What went wrong.
    pub problem: String,
}

impl Conditions {
    /// Compiles every expression, or says which one is wrong and where.
    pub fn compile(sources: &[String]) -> Result<Self, CompileError> {
        let mut out = Vec::with_capacity(sources.len());
        for (index, source) in sources.iter().enumerate() {
            let program = ENV.compile(source).map_err(|errors| CompileError {
                index,
                count: sources.len(),
                expression: source.clone(),
                problem: errors
                    .errors
                    .iter()
                    .map(|e| format!("line {} column {}: {}", e.pos.0, e.pos.1, e.msg))
                    .collect::<Vec<_>>()
                    .join("; "),
            })?;
            out.push(Condition {
                source: source.clone(),
                program,
            });
        }
        Ok(Self(out.into()))
    }

    /// Whether there are no conditions.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The expressions as written.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|c| c.source.as_str())
    }

    /// Whether every condition holds for `payload` (set for the app's hook with
    /// `Payload::for_hook`): `Ok(false)` at the first false one.
    pub fn matches(&self, payload: &Payload<'_>) -> Result<bool, EvalError> {
        for condition in self.0.iter() {
            let fail = |problem: String| EvalError {
                expression: condition.source.clone(),
                problem,
            };
            match condition.program.execute(&payload.context) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => return Ok(false),
                Ok(other) => {
                    return Err(fail(format!(
                        "gave {:?}, not a bool (true calls the app, false skips it)",
                        other.type_of()
                    )));
                }
                Err(e) => return Err(fail(format!("failed: {e}"))),
            }
        }
        Ok(true)
    }
}

impl std::fmt::Debug for Conditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.sources()).finish()
    }
}

/// Two condition lists are the same when they were written the same.
impl PartialEq for Conditions {
    fn eq(&self, other: &Self) -> bool {
        self.sources().eq(other.sources())
    }
}

impl Eq for Conditions {}

impl serde::Serialize for Conditions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.sources())
    }
}

impl<'de> serde::Deserialize<'de> for Conditions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let sources = Vec::<String>::deserialize(d)?;
        Conditions::compile(&sources).map_err(serde::de::Error::custom)
    }
}

/// One call's payload as CEL variables, built once per backend call (borrowing the payload's
/// strings, not copying them) and shared by every app's conditions.
pub struct Payload<'a> {
    context: Context<'a, 'a>,
}

impl<'a> Payload<'a> {
    /// The variables of a call's payload; `hook` is set by [`Payload::for_hook`].
    pub fn new(payload: PayloadRef<'a>) -> Self {
        let mut context = Context::with_env(Arc::clone(&ENV));
        let (room, user, extra) = match payload {
            PayloadRef::Room(room) => (Some(room), room.creator.as_ref(), None),
            PayloadRef::Call(hook_call::Payload::Room(room))
            | PayloadRef::Post(post_event::Payload::Room(room)) => {
                (Some(room), room.creator.as_ref(), None)
            }
            PayloadRef::Call(hook_call::Payload::UserJoined(c))
            | PayloadRef::Post(post_event::Payload::UserJoined(c)) => (
                c.room.as_ref(),
                c.joining_user.as_ref(),
                Some(("inviter", c.inviter.as_ref())),
            ),
            PayloadRef::Call(hook_call::Payload::UserLeave(c))
            | PayloadRef::Post(post_event::Payload::UserLeave(c)) => (
                c.room.as_ref(),
                c.leaving_user.as_ref(),
                Some(("removed_by", c.removed_by.as_ref())),
            ),
        };
        context.add_variable_as_val("room", room_val(room));
        context.add_variable_as_val("user", user_val(user));
        if let Some((name, other)) = extra {
            context.add_variable_as_val(name, user_val(other));
        }
        for t in [
            RoomType::Channel,
            RoomType::PrivateGroup,
            RoomType::DirectMessage,
            RoomType::Livechat,
        ] {
            context.add_variable_as_val(t.as_str_name(), text(t.as_str_name()));
        }
        Self { context }
    }

    /// Sets the `hook` variable before evaluating the conditions of `hook`'s apps.
    pub fn for_hook(&mut self, hook: Hook) -> &Self {
        self.context.add_variable_as_val("hook", text(hook.name()));
        self
    }
}

/// Where a call's payload is: the room of PreRoomCreate, a veto hook's payload, or a post
/// event's.
#[derive(Clone, Copy)]
pub enum PayloadRef<'a> {
    /// A room (PreRoomCreate's three hooks).
    Room(&'a pb::Room),
    /// A veto hook's payload.
    Call(&'a hook_call::Payload),
    /// A post event's payload.
    Post(&'a post_event::Payload),
}

type Val<'a> = Box<dyn cel::common::value::Val + 'a>;

fn text(s: &str) -> Val<'_> {
    Box::new(CelString::from(s))
}

fn map<'a>(entries: impl IntoIterator<Item = (&'a str, Val<'a>)>) -> Val<'a> {
    let map: HashMap<CelMapKey<'a>, Val<'a>> = entries
        .into_iter()
        .map(|(k, v)| (CelMapKey::String(CelString::from(k)), v))
        .collect();
    Box::new(CelMap::from(map))
}

fn strings(list: &[String]) -> Val<'_> {
    let items: Vec<Val<'_>> = list.iter().map(|s| text(s)).collect();
    Box::new(CelList::from(items))
}

fn flag(b: bool) -> Val<'static> {
    Box::new(CelBool::from(b))
}

fn room_val(room: Option<&pb::Room>) -> Val<'_> {
    let Some(room) = room else {
        return room_val(Some(&DEFAULT_ROOM));
    };
    map([
        ("id", text(&room.id)),
        ("display_name", text(&room.display_name)),
        ("slugified_name", text(&room.slugified_name)),
        ("type", text(room.r#type().as_str_name())),
        ("creator", user_val(room.creator.as_ref())),
        ("member_usernames", strings(&room.member_usernames)),
        ("is_default", flag(room.is_default)),
        ("is_read_only", flag(room.is_read_only)),
        (
            "display_system_messages",
            flag(room.display_system_messages),
        ),
        ("description", text(&room.description)),
        ("custom_fields", struct_val(room.custom_fields.as_ref())),
        ("parent_room_id", text(&room.parent_room_id)),
        (
            "message_count",
            Box::new(CelUInt::from(room.message_count)) as Val<'_>,
        ),
    ])
}

/// What an absent room or user reads as: every field at its default.
static DEFAULT_ROOM: pb::Room = pb::Room {
    id: String::new(),
    display_name: String::new(),
    slugified_name: String::new(),
    r#type: 0,
    creator: None,
    member_usernames: Vec::new(),
    is_default: false,
    is_read_only: false,
    display_system_messages: false,
    description: String::new(),
    custom_fields: None,
    parent_room_id: String::new(),
    message_count: 0,
    created_at: None,
    updated_at: None,
};

static DEFAULT_USER: pb::User = pb::User {
    id: String::new(),
    username: String::new(),
    name: String::new(),
    roles: Vec::new(),
    custom_fields: None,
};

fn user_val(user: Option<&pb::User>) -> Val<'_> {
    let user = user.unwrap_or(&DEFAULT_USER);
    map([
        ("id", text(&user.id)),
        ("username", text(&user.username)),
        ("name", text(&user.name)),
        ("roles", strings(&user.roles)),
        ("custom_fields", struct_val(user.custom_fields.as_ref())),
    ])
}

fn struct_val(fields: Option<&Struct>) -> Val<'_> {
    let map: HashMap<CelMapKey<'_>, Val<'_>> = fields
        .map(|s| {
            s.fields
                .iter()
                .map(|(k, v)| (CelMapKey::String(CelString::from(k.as_str())), json_val(v)))
                .collect()
        })
        .unwrap_or_default();
    Box::new(CelMap::from(map))
}

fn json_val(value: &prost_types::Value) -> Val<'_> {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Box::new(CelNull),
        Some(Kind::NumberValue(n)) => Box::new(CelDouble::from(*n)),
        Some(Kind::StringValue(s)) => text(s),
        Some(Kind::BoolValue(b)) => flag(*b),
        Some(Kind::StructValue(s)) => struct_val(Some(s)),
        Some(Kind::ListValue(l)) => {
            let items: Vec<Val<'_>> = l.values.iter().map(json_val).collect();
            Box::new(CelList::from(items))
        }
    }
}

#[cfg(test)]
mod tests;
