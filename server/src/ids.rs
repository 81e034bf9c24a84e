//! Newtypes for the identifiers that cross the wire: apps, instances, calls and post events.

use std::{fmt, sync::Arc};

/// The longest app or instance id accepted.
pub const MAX_ID_LEN: usize = 128;

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    /// The id is empty.
    #[error("must not be empty")]
    Empty,
    /// The id is longer than its limit.
    #[error("is {len} bytes long; the limit is {max} bytes")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit enforced.
        max: usize,
    },
    /// The id holds a character outside `A-Z a-z 0-9 . _ -`.
    #[error("holds {0:?}; use only A-Z a-z 0-9 . _ -")]
    BadChar(char),
}

fn check_id(raw: &str) -> Result<(), InvalidId> {
    if raw.is_empty() {
        return Err(InvalidId::Empty);
    }
    if raw.len() > MAX_ID_LEN {
        return Err(InvalidId::TooLong {
            len: raw.len(),
            max: MAX_ID_LEN,
        });
    }
    match raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(bad) => Err(InvalidId::BadChar(bad)),
        None => Ok(()),
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
    };
}

string_id!(
    /// An app's id: every instance (replica) of one app shares it.
    AppId
);
string_id!(
    /// One connected instance of an app.
    InstanceId
);
string_id!(
    /// A post event's id, the key of acknowledgement and de-duplication.
    EventId
);

impl AppId {
    /// Validates an app id sent by a peer.
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        check_id(raw).map(|()| Self(raw.into()))
    }
}

impl InstanceId {
    /// Validates an instance id sent by a peer.
    pub fn parse(raw: &str) -> Result<Self, InvalidId> {
        check_id(raw).map(|()| Self(raw.into()))
    }

    /// A fresh id for an instance that did not name itself: `<app_id>-<random hex>`.
    pub fn generate(app: &AppId) -> Self {
        Self(format!("{app}-{:016x}", rand::random::<u64>()).into())
    }
}

impl EventId {
    /// The longest event id accepted.
    pub const MAX_LEN: usize = 256;

    /// Takes the backend's event id, or assigns a random one when it sent none.
    pub fn from_backend(raw: &str) -> Result<Self, InvalidId> {
        if raw.is_empty() {
            return Ok(Self(format!("{:032x}", rand::random::<u128>()).into()));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(InvalidId::TooLong {
                len: raw.len(),
                max: Self::MAX_LEN,
            });
        }
        Ok(Self(raw.into()))
    }

    /// An event id as an app echoed it in an ack (not validated: it is only looked up).
    pub fn from_ack(raw: &str) -> Self {
        Self(raw.into())
    }
}

/// The sidecar's id for one HookCall, unique for the life of the process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_accept_the_documented_alphabet_only() {
        assert!(AppId::parse("word-filter_v2.1").is_ok());
        assert_eq!(AppId::parse(""), Err(InvalidId::Empty));
        assert_eq!(AppId::parse("a b"), Err(InvalidId::BadChar(' ')));
        assert_eq!(
            AppId::parse(&"x".repeat(129)),
            Err(InvalidId::TooLong { len: 129, max: 128 })
        );
    }

    #[test]
    fn empty_event_ids_are_assigned_and_unique() {
        let a = EventId::from_backend("").unwrap();
        let b = EventId::from_backend("").unwrap();
        assert_eq!(a.as_str().len(), 32);
        assert_ne!(a, b);
        assert_eq!(EventId::from_backend("evt-1").unwrap().as_str(), "evt-1");
    }

    #[test]
    fn a_too_long_id_is_refused_stating_the_limit_enforced() {
        assert!(EventId::from_backend(&"e".repeat(256)).is_ok());
        let refused = EventId::from_backend(&"e".repeat(300)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "is 300 bytes long; the limit is 256 bytes"
        );
        let refused = InstanceId::parse(&"i".repeat(129)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "is 129 bytes long; the limit is 128 bytes"
        );
    }
}
