//! The keys of the store's keyspaces: `app \0 seq` (big-endian, so an app's events sort in
//! sequence order) and a shared event's bare sequence number.

use crate::ids::AppId;

pub(super) fn key(app: &AppId, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(app.as_str().len() + 9);
    key.extend_from_slice(app.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// A shared event's key: its sequence number, big-endian so keys sort in sequence order.
pub(super) fn post_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

pub(super) fn split_key(key: &[u8]) -> Option<(AppId, u64)> {
    let zero = key.iter().position(|&b| b == 0)?;
    let (app, rest) = key.split_at(zero);
    let seq = u64::from_be_bytes(rest.get(1..9)?.try_into().ok()?);
    Some((AppId::parse(std::str::from_utf8(app).ok()?).ok()?, seq))
}
