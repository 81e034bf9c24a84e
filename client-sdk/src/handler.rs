//! Type-erased handlers, one slot per hook interface.

use std::{future::Future, pin::Pin, sync::Arc};

use roomhooks::v1::{HookInterface, Room, RoomUserJoined, RoomUserLeave};

use crate::{
    answer::{Extension, HookError, Modification, Veto},
    context::{HookContext, PostContext},
};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A Pre hook handler taking `I` and answering `O`.
pub type PreHandler<I, O> =
    Arc<dyn Fn(HookContext, I) -> BoxFuture<Result<O, HookError>> + Send + Sync>;

/// A post event handler taking `I`; `Ok` acknowledges the event.
pub type PostHandler<I> =
    Arc<dyn Fn(PostContext, I) -> BoxFuture<Result<(), HookError>> + Send + Sync>;

/// Boxes a closure into a [`PreHandler`].
pub fn pre<I, O, F, Fut>(f: F) -> PreHandler<I, O>
where
    F: Fn(HookContext, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, HookError>> + Send + 'static,
{
    Arc::new(move |ctx, input| Box::pin(f(ctx, input)))
}

/// Boxes a closure into a [`PostHandler`].
pub fn post<I, F, Fut>(f: F) -> PostHandler<I>
where
    F: Fn(PostContext, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HookError>> + Send + 'static,
{
    Arc::new(move |ctx, input| Box::pin(f(ctx, input)))
}

/// The handlers an app was built with; the registered interfaces are the filled slots.
#[derive(Default, Clone)]
pub struct Handlers {
    pub(crate) pre_room_create_prevent: Option<PreHandler<Room, Veto>>,
    pub(crate) pre_room_create_extend: Option<PreHandler<Room, Extension>>,
    pub(crate) pre_room_create_modify: Option<PreHandler<Room, Modification>>,
    pub(crate) pre_room_delete_prevent: Option<PreHandler<Room, Veto>>,
    pub(crate) pre_room_user_joined: Option<PreHandler<RoomUserJoined, ()>>,
    pub(crate) pre_room_user_leave: Option<PreHandler<RoomUserLeave, ()>>,
    pub(crate) post_room_create: Option<PostHandler<Room>>,
    pub(crate) post_room_deleted: Option<PostHandler<Room>>,
    pub(crate) post_room_user_joined: Option<PostHandler<RoomUserJoined>>,
    pub(crate) post_room_user_leave: Option<PostHandler<RoomUserLeave>>,
}

impl Handlers {
    /// The interfaces to register, derived from the handlers given.
    pub fn interfaces(&self) -> Vec<HookInterface> {
        let slots = [
            (
                self.pre_room_create_prevent.is_some(),
                HookInterface::PreRoomCreatePrevent,
            ),
            (
                self.pre_room_create_extend.is_some(),
                HookInterface::PreRoomCreateExtend,
            ),
            (
                self.pre_room_create_modify.is_some(),
                HookInterface::PreRoomCreateModify,
            ),
            (
                self.post_room_create.is_some(),
                HookInterface::PostRoomCreate,
            ),
            (
                self.pre_room_delete_prevent.is_some(),
                HookInterface::PreRoomDeletePrevent,
            ),
            (
                self.post_room_deleted.is_some(),
                HookInterface::PostRoomDeleted,
            ),
            (
                self.pre_room_user_joined.is_some(),
                HookInterface::PreRoomUserJoined,
            ),
            (
                self.post_room_user_joined.is_some(),
                HookInterface::PostRoomUserJoined,
            ),
            (
                self.pre_room_user_leave.is_some(),
                HookInterface::PreRoomUserLeave,
            ),
            (
                self.post_room_user_leave.is_some(),
                HookInterface::PostRoomUserLeave,
            ),
        ];
        slots
            .into_iter()
            .filter_map(|(present, hook)| present.then_some(hook))
            .collect()
    }
}
