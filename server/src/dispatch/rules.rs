//! The room rules the stages enforce on app answers. Extend is additive only: new custom-field
//! keys and new members; an addition that would overwrite a key already in the room (or added by
//! an earlier app) is rejected, the rest of that app's additions still apply. Modify may change
//! the room but not its id, may not unset its type, and stays within the custom-field limit.

use std::collections::HashMap;

use prost_types::Struct;
use roomhooks::v1::{Room, RoomExtension, RoomType};

use crate::ids::AppId;

/// What one app's extension did to the room.
#[derive(Debug, PartialEq, Eq)]
pub enum Merge {
    /// Something was added.
    Changed,
    /// Nothing was added (an empty extension, or only members already present).
    Unchanged,
    /// Some additions broke the rule and were dropped; the detail names them.
    Rejected(String),
}

/// Merges extensions into a room, remembering who added which key.
pub struct ExtendMerge<'a> {
    room: &'a mut Room,
    added_by: HashMap<String, AppId>,
    max_field_bytes: usize,
}

impl<'a> ExtendMerge<'a> {
    /// Starts merging into `room`, whose encoded custom fields may not exceed `max_field_bytes`.
    pub fn new(room: &'a mut Room, max_field_bytes: usize) -> Self {
        Self {
            room,
            added_by: HashMap::new(),
            max_field_bytes,
        }
    }

    /// Applies one app's additions.
    pub fn apply(&mut self, app: &AppId, extension: RoomExtension) -> Merge {
        let mut changed = false;
        let mut refused = Vec::new();
        for (key, value) in extension
            .custom_fields
            .map(|s| s.fields)
            .unwrap_or_default()
        {
            let taken = self
                .room
                .custom_fields
                .as_ref()
                .is_some_and(|f| f.fields.contains_key(&key));
            if taken {
                let owner = match self.added_by.get(&key) {
                    Some(earlier) => format!("added by app {earlier}"),
                    None => "already in the room".to_owned(),
                };
                refused.push(format!("custom field {key:?} ({owner})"));
                continue;
            }
            let fields = self.room.custom_fields.get_or_insert_with(Struct::default);
            fields.fields.insert(key.clone(), value);
            if prost::Message::encoded_len(&*fields) > self.max_field_bytes {
                fields.fields.remove(&key);
                refused.push(format!(
                    "custom field {key:?} (it would make custom_fields larger than {} bytes)",
                    self.max_field_bytes
                ));
                continue;
            }
            self.added_by.insert(key, app.clone());
            changed = true;
        }
        for username in extension.member_usernames {
            if username.trim().is_empty() {
                refused.push("an empty member username".to_owned());
            } else if !self.room.member_usernames.contains(&username) {
                self.room.member_usernames.push(username);
                changed = true;
            }
        }
        if !refused.is_empty() {
            Merge::Rejected(format!(
                "extensions may only add; refused {} (the rest was applied)",
                refused.join(", ")
            ))
        } else if changed {
            Merge::Changed
        } else {
            Merge::Unchanged
        }
    }
}

/// Checks a Modify answer: the id is fixed and the type must stay a real room type.
pub fn check_modification(
    current: &Room,
    new: &Room,
    max_field_bytes: usize,
) -> Result<(), String> {
    let size = new
        .custom_fields
        .as_ref()
        .map_or(0, prost::Message::encoded_len);
    if size > max_field_bytes {
        return Err(format!(
            "room.custom_fields would be {size} bytes (limit {max_field_bytes}); the chain \
             continues with the previous room"
        ));
    }
    if new.id != current.id {
        return Err(format!(
            "room.id cannot be changed ({:?} -> {:?}); the chain continues with the previous room",
            current.id, new.id
        ));
    }
    match RoomType::try_from(new.r#type) {
        Ok(RoomType::Unspecified) | Err(_) => Err(format!(
            "room.type {} is not a room type; the chain continues with the previous room",
            new.r#type
        )),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Value;

    fn fields(pairs: &[(&str, &str)]) -> Option<Struct> {
        Some(Struct {
            fields: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(v.to_string())))
                .collect(),
        })
    }

    #[test]
    fn additions_merge_in_order_and_overwrites_are_refused_by_key() {
        let mut room = Room {
            custom_fields: fields(&[("team", "core")]),
            member_usernames: vec!["alice".into()],
            ..Default::default()
        };
        let (a, b) = (AppId::parse("a").unwrap(), AppId::parse("b").unwrap());
        let mut merge = ExtendMerge::new(&mut room, 64 * 1024);
        let first = merge.apply(
            &a,
            RoomExtension {
                custom_fields: fields(&[("tier", "gold")]),
                member_usernames: vec!["alice".into(), "bot".into()],
            },
        );
        assert_eq!(first, Merge::Changed);
        let second = merge.apply(
            &b,
            RoomExtension {
                custom_fields: fields(&[("tier", "silver"), ("team", "x"), ("score", "1")]),
                member_usernames: vec![],
            },
        );
        let Merge::Rejected(detail) = second else {
            panic!("expected a rejection, got {second:?}");
        };
        assert!(detail.contains("\"tier\" (added by app a)"), "{detail}");
        assert!(
            detail.contains("\"team\" (already in the room)"),
            "{detail}"
        );
        let custom = room.custom_fields.unwrap().fields;
        assert_eq!(custom["tier"], Value::from("gold".to_string()));
        assert_eq!(custom["score"], Value::from("1".to_string()));
        assert_eq!(room.member_usernames, vec!["alice", "bot"]);
    }

    #[test]
    fn an_addition_that_would_exceed_the_size_limit_is_refused() {
        let mut room = Room::default();
        let mut merge = ExtendMerge::new(&mut room, 64);
        let result = merge.apply(
            &AppId::parse("a").unwrap(),
            RoomExtension {
                custom_fields: fields(&[("small", "ok"), ("big", &"x".repeat(100))]),
                member_usernames: vec![],
            },
        );
        let Merge::Rejected(detail) = result else {
            panic!("expected a rejection, got {result:?}");
        };
        assert!(detail.contains("\"big\""), "{detail}");
        assert!(room.custom_fields.unwrap().fields.contains_key("small"));
    }

    #[test]
    fn an_empty_extension_leaves_the_room_unchanged() {
        let mut room = Room::default();
        let merge = ExtendMerge::new(&mut room, 64 * 1024)
            .apply(&AppId::parse("a").unwrap(), RoomExtension::default());
        assert_eq!(merge, Merge::Unchanged);
    }
}
