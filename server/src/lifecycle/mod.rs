//! What every component shares about the sidecar's life: the shutdown [`drain`] (no new
//! work, wait for the work in flight) and the owner of background [`tasks`] (stop and await
//! them all). It uses nothing else of the crate.

pub mod drain;
pub mod tasks;
