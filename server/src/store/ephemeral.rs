//! The store of `--ephemeral` (and of cluster mode, whose post events live in JetStream): it
//! keeps nothing, and confirms every write at once.

use futures_util::future::{BoxFuture, ready};
use tokio::sync::oneshot;

use super::{Committed, EventWrite, PostWrite, Storage, StoreError};
use crate::{apps::spec::AppSpec, ids::AppId};

/// Keeps nothing: post events live in the queues' memory only and are lost on restart.
pub(super) struct Ephemeral;

/// A confirmation already resolved, when one is asked for.
fn confirmed(confirm: bool) -> Option<Committed> {
    confirm.then(|| {
        let (done, rx) = oneshot::channel();
        let _ = done.send(Ok(()));
        rx
    })
}

impl Storage for Ephemeral {
    fn durable(&self) -> bool {
        false
    }

    fn write_posts(&self, _: Vec<PostWrite>, confirm: bool) -> BoxFuture<'_, Option<Committed>> {
        Box::pin(ready(confirmed(confirm)))
    }

    fn write_events<'a>(
        &'a self,
        _: &'a AppId,
        _: Vec<EventWrite>,
        confirm: bool,
    ) -> BoxFuture<'a, Option<Committed>> {
        Box::pin(ready(confirmed(confirm)))
    }

    fn put_app<'a>(&'a self, _: &'a AppSpec, _: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(ready(()))
    }

    fn delete_app<'a>(&'a self, _: &'a AppId, _: Vec<u64>, _: u64) -> BoxFuture<'a, ()> {
        Box::pin(ready(()))
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(ready(Ok(())))
    }

    fn close(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(ready(Ok(())))
    }
}
