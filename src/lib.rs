//! The roomhooks wire contract: package `roomhooks.v1`, generated from `proto/` at build time.
//!
//! Clients are generated without the `connect(dst)` constructor (the `AppRuntime.Connect` RPC
//! would clash with it): build them from a [`tonic::transport::Channel`].

/// Messages and services of `roomhooks.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("roomhooks.v1");
}

/// The encoded FileDescriptorSet of `roomhooks.v1` and its imports, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/roomhooks_descriptor.bin"));

/// Calls `$callback!` with the ten room hook interfaces, in wire order — the one list the
/// server's and the SDK's per-hook tables are generated from.
///
/// Each entry is `Name, snake_name, Stage, PayloadVariant, PayloadType, "doc line";`: the
/// Apps-Engine interface name (also the [`v1::HookInterface`] variant), its `snake_case`
/// name, how the sidecar runs it (`Veto`, `Extend`, `Modify` or `Post`), the variant of
/// `HookCall.payload` / `PostEvent.payload` it carries, that payload's message type, and one
/// line saying what the hook does.
///
/// ```
/// macro_rules! names {
///     ($($name:ident, $snake:ident, $stage:ident, $variant:ident, $payload:ident, $doc:literal;)*) => {
///         [$(stringify!($name)),*]
///     };
/// }
/// let names = roomhooks::with_hooks!(names);
/// assert_eq!(names.len(), 10);
/// assert_eq!(names[0], "PreRoomCreatePrevent");
/// ```
#[macro_export]
macro_rules! with_hooks {
    ($callback:ident) => {
        $callback! {
            PreRoomCreatePrevent, pre_room_create_prevent, Veto, Room, Room,
                "Veto a room creation.";
            PreRoomCreateExtend, pre_room_create_extend, Extend, Room, Room,
                "Add to a room being created.";
            PreRoomCreateModify, pre_room_create_modify, Modify, Room, Room,
                "Change a room being created.";
            PostRoomCreate, post_room_create, Post, Room, Room,
                "A room was created.";
            PreRoomDeletePrevent, pre_room_delete_prevent, Veto, Room, Room,
                "Veto a room deletion.";
            PostRoomDeleted, post_room_deleted, Post, Room, Room,
                "A room was deleted.";
            PreRoomUserJoined, pre_room_user_joined, Veto, UserJoined, RoomUserJoined,
                "Veto a user joining.";
            PostRoomUserJoined, post_room_user_joined, Post, UserJoined, RoomUserJoined,
                "A user joined.";
            PreRoomUserLeave, pre_room_user_leave, Veto, UserLeave, RoomUserLeave,
                "Veto a user leaving.";
            PostRoomUserLeave, post_room_user_leave, Post, UserLeave, RoomUserLeave,
                "A user left.";
        }
    };
}
