//! What handlers return: one type per kind of hook, so an app cannot answer the wrong way.

use std::collections::BTreeMap;

use prost_types::{Struct, Value};
use roomhooks::v1::{Room, RoomExtension};

/// The answer of a PreRoomCreatePrevent or PreRoomDeletePrevent handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Veto {
    /// No objection.
    Allow,
    /// Stop the action; the message is shown to the end user.
    Prevent(String),
    /// No objection, with a warning the backend shows to the end user ("This room name may be
    /// confusing"); it reaches the backend in the response's `warnings`.
    Warn(String),
}

impl Veto {
    /// Stops the action with a message for the end user.
    pub fn prevent(message: impl Into<String>) -> Self {
        Veto::Prevent(message.into())
    }

    /// Allows the action with a warning for the end user.
    pub fn warn(warning: impl Into<String>) -> Self {
        Veto::Warn(warning.into())
    }
}

/// The answer of a PreRoomCreateExtend handler: additions only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extension {
    custom_fields: BTreeMap<String, Value>,
    member_usernames: Vec<String>,
}

impl Extension {
    /// An extension that adds nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a custom field (the sidecar refuses keys the room already has).
    pub fn field(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.custom_fields.insert(key.into(), value.into());
        self
    }

    /// Adds a member by username.
    pub fn member(mut self, username: impl Into<String>) -> Self {
        self.member_usernames.push(username.into());
        self
    }

    pub(crate) fn into_wire(self) -> RoomExtension {
        RoomExtension {
            custom_fields: (!self.custom_fields.is_empty()).then_some(Struct {
                fields: self.custom_fields,
            }),
            member_usernames: self.member_usernames,
        }
    }
}

/// The answer of a PreRoomCreateModify handler.
#[allow(clippy::large_enum_variant)] // a short-lived return value; boxing would only burden authors
#[derive(Debug, Clone, PartialEq)]
pub enum Modification {
    /// Leave the room as it is.
    Unchanged,
    /// Replace the room (its `id` must stay the same).
    Changed(Room),
}

/// Why a handler did not answer normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// Apps-Engine's `UserNotAllowedException`: prevents the join, leave (or any veto hook) with
    /// this message for the end user.
    #[error("user not allowed: {0}")]
    UserNotAllowed(String),
    /// The handler failed; the app's failure policy decides what that means.
    #[error("{0}")]
    Failed(String),
}

impl HookError {
    /// A failure from any displayable error.
    pub fn failed(err: impl std::fmt::Display) -> Self {
        HookError::Failed(err.to_string())
    }
}
