//! What the operator sets to roll an app out safely (`[apps.<id>]` `mode`, `match`,
//! `may_modify`), in the form the pipeline reads: whether the app's answers count, when it is
//! called, and which room fields its Modify answers may change.

use roomhooks::v1::Room;
use serde::{Deserialize, Serialize};

use crate::apps::conditions::Conditions;

/// Whether an app's answers count (`[apps.<id>] mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Its answers decide, as usual.
    #[default]
    Enforce,
    /// It is called as usual, but its answers change nothing: they are recorded as SHADOWED.
    Shadow,
}

impl Mode {
    /// The name in the config file and in `Admin.ListApps`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}

/// The room fields a Modify answer may change, as named in `may_modify` (everything but `id`).
pub const MODIFIABLE_FIELDS: [&str; 14] = [
    "display_name",
    "slugified_name",
    "type",
    "creator",
    "member_usernames",
    "is_default",
    "is_read_only",
    "display_system_messages",
    "description",
    "custom_fields",
    "parent_room_id",
    "message_count",
    "created_at",
    "updated_at",
];

/// Which fields an app's Modify answers may change (`may_modify`); `None` = every field but
/// `id` (which no app may change).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FieldGuard(Option<Vec<String>>);

impl FieldGuard {
    /// A guard allowing exactly `fields` (`display_name`, `custom_fields.*`, `custom_fields.k`),
    /// or the name that is not a room field.
    pub fn new(fields: Vec<String>) -> Result<Self, String> {
        for field in &fields {
            let known = MODIFIABLE_FIELDS.contains(&field.as_str())
                || field
                    .strip_prefix("custom_fields.")
                    .is_some_and(|key| !key.is_empty());
            if !known {
                return Err(field.clone());
            }
        }
        Ok(Self(Some(fields)))
    }

    /// Whether every field may be changed (no `may_modify`).
    pub fn is_open(&self) -> bool {
        self.0.is_none()
    }

    /// The first field `new` changes that the guard does not allow, if any.
    pub fn refused(&self, current: &Room, new: &Room) -> Option<String> {
        let allowed = self.0.as_ref()?;
        let allows = |field: &str| {
            allowed.iter().any(|a| {
                a == field
                    || field
                        .strip_prefix("custom_fields.")
                        .is_some_and(|_| a == "custom_fields" || a == "custom_fields.*")
            })
        };
        changed_fields(current, new)
            .into_iter()
            .find(|f| !allows(f))
    }
}

/// The fields `new` changes, `custom_fields` key by key (`custom_fields.locked`), in proto order.
pub fn changed_fields(current: &Room, new: &Room) -> Vec<String> {
    let mut changed = Vec::new();
    let mut field = |name: &str, differs: bool| {
        if differs {
            changed.push(name.to_owned());
        }
    };
    field("id", current.id != new.id);
    field("display_name", current.display_name != new.display_name);
    field(
        "slugified_name",
        current.slugified_name != new.slugified_name,
    );
    field("type", current.r#type != new.r#type);
    field("creator", current.creator != new.creator);
    field(
        "member_usernames",
        current.member_usernames != new.member_usernames,
    );
    field("is_default", current.is_default != new.is_default);
    field("is_read_only", current.is_read_only != new.is_read_only);
    field(
        "display_system_messages",
        current.display_system_messages != new.display_system_messages,
    );
    field("description", current.description != new.description);
    let empty = Default::default();
    let old_fields = current.custom_fields.as_ref().map_or(&empty, |s| &s.fields);
    let new_fields = new.custom_fields.as_ref().map_or(&empty, |s| &s.fields);
    let mut keys: Vec<&String> = old_fields.keys().chain(new_fields.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        if old_fields.get(key) != new_fields.get(key) {
            changed.push(format!("custom_fields.{key}"));
        }
    }
    let mut field = |name: &str, differs: bool| {
        if differs {
            changed.push(name.to_owned());
        }
    };
    field(
        "parent_room_id",
        current.parent_room_id != new.parent_room_id,
    );
    field("message_count", current.message_count != new.message_count);
    field("created_at", current.created_at != new.created_at);
    field("updated_at", current.updated_at != new.updated_at);
    changed
}

/// An app's rollout settings, as the pipeline reads them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    /// Whether its answers count.
    pub mode: Mode,
    /// When it is called.
    pub conditions: Conditions,
    /// What its Modify answers may change.
    pub may_modify: FieldGuard,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{Struct, Value};

    fn room(name: &str, fields: &[(&str, &str)]) -> Room {
        Room {
            display_name: name.into(),
            custom_fields: Some(Struct {
                fields: fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::from(v.to_string())))
                    .collect(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn changes_are_named_field_by_field_and_custom_field_by_key() {
        let old = room("a", &[("x", "1"), ("y", "2")]);
        let new = room("b", &[("x", "1"), ("z", "3")]);
        assert_eq!(
            changed_fields(&old, &new),
            ["display_name", "custom_fields.y", "custom_fields.z"]
        );
    }

    #[test]
    fn a_guard_allows_its_fields_and_any_custom_field_with_the_wildcard() {
        let guard = FieldGuard::new(vec!["custom_fields.*".into()]).unwrap();
        let old = room("a", &[]);
        assert_eq!(guard.refused(&old, &room("a", &[("k", "v")])), None);
        assert_eq!(
            guard.refused(&old, &room("b", &[])),
            Some("display_name".into())
        );
        let one = FieldGuard::new(vec!["custom_fields.k".into()]).unwrap();
        assert_eq!(
            one.refused(&old, &room("a", &[("j", "v")])),
            Some("custom_fields.j".into())
        );
        assert_eq!(FieldGuard::new(vec!["nmae".into()]), Err("nmae".into()));
    }
}
