//! The ten hook interfaces, the stage each belongs to, and the sets apps register.

use roomhooks::v1::{HookInterface, RoomType};

/// How the sidecar runs a hook.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stage {
    /// Fan out in parallel; any app may prevent.
    Veto,
    /// Fan out in parallel; additions merged in app order.
    Extend,
    /// Sequential chain in app order.
    Modify,
    /// Durable notification, delivered at least once.
    Post,
}

/// Generates [`Hook`] and its per-hook tables from the one list, [`roomhooks::with_hooks`].
macro_rules! hooks {
    ($($name:ident, $snake:ident, $stage:ident, $variant:ident, $payload:ident, $doc:literal;)*) => {
        /// One of the ten room hook interfaces.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub enum Hook {
            $(#[doc = $doc] $name,)*
        }

        impl Hook {
            /// How many hooks there are.
            pub const COUNT: usize = [$(Hook::$name),*].len();

            /// Every hook, in wire order.
            pub const ALL: [Hook; Hook::COUNT] = [$(Hook::$name),*];

            /// The wire value.
            pub fn to_wire(self) -> HookInterface {
                match self {
                    $(Hook::$name => HookInterface::$name,)*
                }
            }

            /// The Apps-Engine name of the interface, for logs and messages.
            pub fn name(self) -> &'static str {
                match self {
                    $(Hook::$name => stringify!($name),)*
                }
            }

            /// The stage that runs this hook.
            pub fn stage(self) -> Stage {
                match self {
                    $(Hook::$name => Stage::$stage,)*
                }
            }
        }
    };
}

roomhooks::with_hooks!(hooks);

impl Hook {
    /// The hook for a wire value, or `None` for UNSPECIFIED and unknown values.
    pub fn from_wire(value: i32) -> Option<Hook> {
        let index = usize::try_from(value).ok()?.checked_sub(1)?;
        Hook::ALL.get(index).copied()
    }

    /// A dense index in `0..Hook::COUNT`, for per-hook tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::str::FromStr for Hook {
    type Err = String;

    /// Accepts the Apps-Engine name (`PreRoomCreatePrevent`) or the wire name
    /// (`HOOK_INTERFACE_PRE_ROOM_CREATE_PREVENT`).
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Hook::ALL
            .into_iter()
            .find(|h| h.name() == raw || h.to_wire().as_str_name() == raw)
            .ok_or_else(|| {
                format!(
                    "{raw:?} is not a hook; use one of {}",
                    Hook::ALL.map(Hook::name).join(", ")
                )
            })
    }
}

impl serde::Serialize for Hook {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Hook {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of hooks, as an app registers them.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct HookSet(u16);

impl HookSet {
    /// A set of the given hooks.
    pub fn of(hooks: impl IntoIterator<Item = Hook>) -> Self {
        let mut set = Self::default();
        for hook in hooks {
            set.insert(hook);
        }
        set
    }

    /// The hooks in `self` that are not in `other`.
    pub fn minus(self, other: HookSet) -> HookSet {
        HookSet(self.0 & !other.0)
    }

    /// Adds a hook.
    pub fn insert(&mut self, hook: Hook) {
        self.0 |= 1 << hook.index();
    }

    /// Whether the set holds `hook`.
    pub fn contains(self, hook: Hook) -> bool {
        self.0 & (1 << hook.index()) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The hooks in the set, in wire order.
    pub fn iter(self) -> impl Iterator<Item = Hook> {
        Hook::ALL.into_iter().filter(move |h| self.contains(*h))
    }
}

/// The room types an app wants; empty means all.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct RoomTypeSet(u8);

impl RoomTypeSet {
    /// Adds a room type (UNSPECIFIED is never added).
    pub fn insert(&mut self, room_type: RoomType) {
        if room_type != RoomType::Unspecified {
            self.0 |= 1 << room_type as i32;
        }
    }

    /// The set of the known room types among wire values read back (unknown ones are left out).
    pub fn from_wire(values: &[i32]) -> Self {
        let mut set = Self::default();
        for t in values.iter().filter_map(|&t| RoomType::try_from(t).ok()) {
            set.insert(t);
        }
        set
    }

    /// Whether an app with this filter wants a room of type `room_type` (an empty filter wants
    /// every room; `ROOM_TYPE_UNSPECIFIED` matches only an empty filter).
    pub fn matches(self, room_type: RoomType) -> bool {
        let bit = room_type as i32;
        self.0 == 0 || (1..8).contains(&bit) && self.0 & (1 << bit) != 0
    }

    /// The room types in the set, in wire order.
    pub fn iter(self) -> impl Iterator<Item = RoomType> {
        (1..8)
            .filter(move |bit| self.0 & (1 << bit) != 0)
            .filter_map(|bit| RoomType::try_from(bit).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip_and_unspecified_is_refused() {
        for hook in Hook::ALL {
            assert_eq!(Hook::from_wire(hook.to_wire() as i32), Some(hook));
        }
        assert_eq!(Hook::from_wire(0), None);
        assert_eq!(Hook::from_wire(11), None);
        assert_eq!(Hook::from_wire(-3), None);
    }

    #[test]
    fn an_empty_room_type_filter_matches_everything_and_a_set_one_only_its_types() {
        let all = RoomTypeSet::default();
        assert!(all.matches(RoomType::Livechat));
        let mut channels = RoomTypeSet::default();
        channels.insert(RoomType::Channel);
        assert!(channels.matches(RoomType::Channel));
        assert!(!channels.matches(RoomType::DirectMessage));
        assert!(!channels.matches(RoomType::Unspecified));
        // An unknown wire value reads as ROOM_TYPE_UNSPECIFIED, which no set filter wants.
        let unknown = roomhooks::v1::Room {
            r#type: 99,
            ..Default::default()
        };
        assert!(!channels.matches(unknown.r#type()));
    }
}
