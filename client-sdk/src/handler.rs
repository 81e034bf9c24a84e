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

/// The handler type of one hook's slot, from its stage and payload: veto hooks on a room
/// answer a [`Veto`], join and leave vetoes answer `()` (or `HookError::UserNotAllowed`).
macro_rules! slot {
    (Veto, Room) => { PreHandler<Room, Veto> };
    (Veto, $payload:ident) => { PreHandler<$payload, ()> };
    (Extend, Room) => { PreHandler<Room, Extension> };
    (Modify, Room) => { PreHandler<Room, Modification> };
    (Post, $payload:ident) => { PostHandler<$payload> };
}

/// Generates [`Handlers`], one slot per hook, from the one list ([`roomhooks::with_hooks`]).
macro_rules! handlers {
    ($($name:ident, $snake:ident, $stage:ident, $variant:ident, $payload:ident, $doc:literal;)*) => {
        /// The handlers an app was built with; the registered interfaces are the filled slots.
        #[derive(Default, Clone)]
        pub struct Handlers {
            $(
                #[doc = $doc]
                pub(crate) $snake: Option<slot!($stage, $payload)>,
            )*
        }

        impl Handlers {
            /// The interfaces to register, derived from the handlers given, in wire order.
            pub fn interfaces(&self) -> Vec<HookInterface> {
                let mut interfaces = Vec::new();
                $(
                    if self.$snake.is_some() {
                        interfaces.push(HookInterface::$name);
                    }
                )*
                interfaces
            }
        }
    };
}

roomhooks::with_hooks!(handlers);
