//! The apps: who is registered (the [`registry`], read on the hot path through a lock-free
//! snapshot), each connected [`instance`] and the frames written to it, what an app declares
//! ([`spec`]) and what the operator sets for it ([`settings`]; how it is rolled out:
//! [`rollout`], its match [`conditions`]), and its statistics ([`stats`]).
//! It may use post (each app's queue), store and lifecycle.

pub mod conditions;
pub mod frame;
pub mod instance;
pub mod registry;
pub mod rollout;
pub mod settings;
pub mod spec;
pub mod stats;
