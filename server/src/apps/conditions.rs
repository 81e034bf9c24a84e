//! Match conditions (`[apps.<id>] match = [...]`): CEL expressions over a Pre call's payload,
//! compiled once when the config is read and evaluated in the sidecar before any app is called.
//! All true: the app is called; any false: it is skipped with no round trip (and no outcome,
//! like a room-type filter); one that fails at run time: the app's failure policy applies.
//!
//! The variables an expression sees (every field is present, with its default value when the
//! backend left it unset, so reading one never fails; `has()` tests a `custom_fields` key):
//! - `room`: the room, its fields named as in the proto (`room.display_name`, `room.type`,
//!   `room.custom_fields.locked`, `room.creator.username`); `type` is the enum's name;
//! - `user`: the joining (PreRoomUserJoined) or leaving (PreRoomUserLeave) user, or the room's
//!   creator for the create and delete hooks;
//! - `inviter` (join) and `removed_by` (leave): a user, empty when absent;
//! - `hook`: the hook's name (`"PreRoomCreatePrevent"`);
//! - `ROOM_TYPE_CHANNEL`, `ROOM_TYPE_PRIVATE_GROUP`, `ROOM_TYPE_DIRECT_MESSAGE`,
//!   `ROOM_TYPE_LIVECHAT`: the room types, to compare `room.type` with.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock},
};

use cel::{Context, Env, Program, Value, objects::Key};
use prost_types::{Struct, value::Kind};
use roomhooks::v1::{self as pb, RoomType, hook_call};

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

    /// Whether every condition holds for `payload` on `hook`: `Ok(false)` at the first false one.
    pub fn matches(&self, payload: &Payload, hook: Hook) -> Result<bool, EvalError> {
        let mut scope = payload.context.new_inner_scope();
        scope.add_variable_from_value("hook", hook.name());
        for condition in self.0.iter() {
            let fail = |problem: String| EvalError {
                expression: condition.source.clone(),
                problem,
            };
            match condition.program.execute(&scope) {
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

/// One call's payload as CEL variables, built once per backend call and shared by every app's
/// conditions.
pub struct Payload {
    context: Context<'static, 'static>,
}

impl Payload {
    /// The variables of a Pre call's payload (`hook` is added by [`Conditions::matches`]).
    pub fn new(payload: PayloadRef<'_>) -> Self {
        let mut context = Context::with_env(Arc::clone(&ENV));
        let (room, user, extra) = match payload {
            PayloadRef::Room(room) => (Some(room), room.creator.as_ref(), None),
            PayloadRef::Call(hook_call::Payload::Room(room)) => {
                (Some(room), room.creator.as_ref(), None)
            }
            PayloadRef::Call(hook_call::Payload::UserJoined(c)) => (
                c.room.as_ref(),
                c.joining_user.as_ref(),
                Some(("inviter", c.inviter.as_ref())),
            ),
            PayloadRef::Call(hook_call::Payload::UserLeave(c)) => (
                c.room.as_ref(),
                c.leaving_user.as_ref(),
                Some(("removed_by", c.removed_by.as_ref())),
            ),
        };
        let default_room = pb::Room::default();
        context.add_variable_from_value("room", room_value(room.unwrap_or(&default_room)));
        context.add_variable_from_value("user", user_value(user));
        if let Some((name, other)) = extra {
            context.add_variable_from_value(name, user_value(other));
        }
        for t in [
            RoomType::Channel,
            RoomType::PrivateGroup,
            RoomType::DirectMessage,
            RoomType::Livechat,
        ] {
            context.add_variable_from_value(t.as_str_name(), t.as_str_name());
        }
        Self { context }
    }
}

/// Where a call's payload is: the room of PreRoomCreate, or a veto hook's payload.
#[derive(Clone, Copy)]
pub enum PayloadRef<'a> {
    /// A room (PreRoomCreate's three hooks).
    Room(&'a pb::Room),
    /// A veto hook's payload.
    Call(&'a hook_call::Payload),
}

fn map(entries: Vec<(&'static str, Value)>) -> Value {
    let map: HashMap<Key, Value> = entries
        .into_iter()
        .map(|(k, v)| (Key::from(k), v))
        .collect();
    Value::Map(map.into())
}

fn strings(list: &[String]) -> Value {
    Value::List(Arc::new(
        list.iter().map(|s| Value::from(s.as_str())).collect(),
    ))
}

fn room_value(room: &pb::Room) -> Value {
    map(vec![
        ("id", room.id.as_str().into()),
        ("display_name", room.display_name.as_str().into()),
        ("slugified_name", room.slugified_name.as_str().into()),
        ("type", room.r#type().as_str_name().into()),
        ("creator", user_value(room.creator.as_ref())),
        ("member_usernames", strings(&room.member_usernames)),
        ("is_default", room.is_default.into()),
        ("is_read_only", room.is_read_only.into()),
        (
            "display_system_messages",
            room.display_system_messages.into(),
        ),
        ("description", room.description.as_str().into()),
        ("custom_fields", struct_value(room.custom_fields.as_ref())),
        ("parent_room_id", room.parent_room_id.as_str().into()),
        ("message_count", Value::UInt(room.message_count)),
    ])
}

fn user_value(user: Option<&pb::User>) -> Value {
    let default = pb::User::default();
    let user = user.unwrap_or(&default);
    map(vec![
        ("id", user.id.as_str().into()),
        ("username", user.username.as_str().into()),
        ("name", user.name.as_str().into()),
        ("roles", strings(&user.roles)),
        ("custom_fields", struct_value(user.custom_fields.as_ref())),
    ])
}

fn struct_value(fields: Option<&Struct>) -> Value {
    let map: HashMap<Key, Value> = fields
        .map(|s| {
            s.fields
                .iter()
                .map(|(k, v)| (Key::from(k.as_str()), json_value(v)))
                .collect()
        })
        .unwrap_or_default();
    Value::Map(map.into())
}

fn json_value(value: &prost_types::Value) -> Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => Value::Float(*n),
        Some(Kind::StringValue(s)) => s.as_str().into(),
        Some(Kind::BoolValue(b)) => (*b).into(),
        Some(Kind::StructValue(s)) => struct_value(Some(s)),
        Some(Kind::ListValue(l)) => {
            Value::List(Arc::new(l.values.iter().map(json_value).collect()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions(sources: &[&str]) -> Conditions {
        Conditions::compile(&sources.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
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
        let payload = Payload::new(PayloadRef::Room(&room()));
        assert_eq!(c.matches(&payload, Hook::PreRoomCreatePrevent), Ok(true));
    }

    #[test]
    fn a_false_condition_skips_and_a_failing_one_is_an_error() {
        let payload = Payload::new(PayloadRef::Room(&room()));
        assert_eq!(
            conditions(&["room.type == ROOM_TYPE_LIVECHAT"])
                .matches(&payload, Hook::PreRoomCreatePrevent),
            Ok(false)
        );
        let err = conditions(&["room.custom_fields.missing == 1"])
            .matches(&payload, Hook::PreRoomCreatePrevent)
            .unwrap_err();
        assert!(err.problem.contains("failed"), "{err}");
        let err = conditions(&["room.display_name"])
            .matches(&payload, Hook::PreRoomCreatePrevent)
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
        let payload = Payload::new(PayloadRef::Call(&payload));
        let c = conditions(&[
            r#"user.username == "ann" && "admin" in user.roles"#,
            r#"inviter.username == """#,
            r#"hook == "PreRoomUserJoined""#,
        ]);
        assert_eq!(c.matches(&payload, Hook::PreRoomUserJoined), Ok(true));
    }

    #[test]
    fn a_bad_expression_is_refused_with_its_index_and_position() {
        let err = Conditions::compile(&["true".into(), "room.type ==".into()]).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(err.problem.contains("line 1 column"), "{err}");
    }
}
