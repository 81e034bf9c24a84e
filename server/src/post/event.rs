//! One accepted post event as the queues share it: encoded once when accepted, with the count
//! of [`Hold`](super::hold::Hold)s that decides who deletes its store record.

use std::{
    sync::atomic::AtomicU32,
    time::{SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use prost::{
    Message,
    encoding::{self, WireType},
};
use roomhooks::v1::{PostEvent, post_event};

use crate::{
    apps::frame::{self, Frame},
    hook::Hook,
    ids::{AppId, EventId},
    store::StoredEvent,
};

/// One accepted post event, shared by every app it is queued for.
#[derive(Debug)]
pub struct PostEventData {
    /// Its id.
    pub id: EventId,
    /// Its hook.
    pub hook: Hook,
    /// The `PostEvent` without its attempt (id, hook, payload), encoded once when accepted: every
    /// app's delivery and store write reuses these bytes.
    encoded: Bytes,
    /// Holders of its shared store record: the queues it is in, and an acceptance in progress.
    holders: AtomicU32,
}

impl PostEventData {
    /// An accepted event; its payload is encoded here, once for every app and delivery.
    pub fn new(id: EventId, hook: Hook, payload: post_event::Payload) -> Self {
        let encoded = PostEvent {
            event_id: id.as_str().to_owned(),
            hook: hook.to_wire() as i32,
            attempt: 0,
            payload: Some(payload),
        }
        .encode_to_vec()
        .into();
        Self {
            id,
            hook,
            encoded,
            holders: AtomicU32::new(0),
        }
    }

    /// The event's payload, decoded again from its encoded bytes (for match conditions; `None`
    /// if the bytes do not decode, which they always do).
    pub fn payload(&self) -> Option<post_event::Payload> {
        PostEvent::decode(self.encoded.clone()).ok()?.payload
    }

    /// How many [`Hold`](super::hold::Hold)s its shared store record has (only holds count).
    pub(super) fn holders(&self) -> &AtomicU32 {
        &self.holders
    }

    /// The encoded `StoredEvent` of the shared record: the event once, with the apps it was
    /// queued for.
    pub fn shared_record(&self, accepted_unix_ms: i64, apps: &[AppId]) -> Vec<u8> {
        self.stored_with(0, accepted_unix_ms, None, apps)
    }

    /// The `PostEvent` without its attempt, encoded once (what cluster mode publishes).
    pub fn encoded(&self) -> &Bytes {
        &self.encoded
    }

    /// Bytes the event counts for in a queue's `--post-queue-max-bytes`.
    pub(super) fn size(&self) -> usize {
        self.encoded.len() + 16
    }

    /// The frame that makes delivery `attempt`.
    pub(super) fn frame(&self, attempt: u32) -> Frame {
        Frame::Post {
            attempt,
            event: self.encoded.clone(),
        }
    }

    /// The encoded `StoredEvent` of this event at `attempt`.
    pub(super) fn stored(
        &self,
        attempt: u32,
        accepted_unix_ms: i64,
        dead: Option<(&str, i64)>,
    ) -> Vec<u8> {
        self.stored_with(attempt, accepted_unix_ms, dead, &[])
    }

    fn stored_with(
        &self,
        attempt: u32,
        accepted_unix_ms: i64,
        dead: Option<(&str, i64)>,
        apps: &[AppId],
    ) -> Vec<u8> {
        let (reason, dead_unix_ms) = dead.unwrap_or(("", 0));
        let rest = StoredEvent {
            event: None,
            accepted_unix_ms,
            reason: reason.to_owned(),
            dead_unix_ms,
            apps: Vec::new(),
        };
        let head = PostEvent {
            attempt,
            ..PostEvent::default()
        };
        let apps_len: usize = apps
            .iter()
            .map(|app| {
                let len = app.as_str().len();
                encoding::key_len(STORED_APPS_TAG) + encoding::encoded_len_varint(len as u64) + len
            })
            .sum();
        let mut bytes = Vec::with_capacity(self.encoded.len() + 16 + rest.encoded_len() + apps_len);
        // A Vec grows as needed, so none of the writes can fail.
        let _ = frame::write_merged(STORED_EVENT_KEY, &head, &self.encoded, &mut bytes);
        let _ = rest.encode(&mut bytes);
        // `StoredEvent.apps`, written from the ids as prost writes a repeated string (field order
        // does not matter).
        for app in apps {
            let name = app.as_str().as_bytes();
            encoding::encode_key(STORED_APPS_TAG, WireType::LengthDelimited, &mut bytes);
            encoding::encode_varint(name.len() as u64, &mut bytes);
            bytes.extend_from_slice(name);
        }
        bytes
    }

    pub(super) fn from_stored(stored: &StoredEvent) -> Option<(Self, u32)> {
        let event = stored.event.as_ref()?;
        let data = PostEventData::new(
            EventId::from_ack(&event.event_id),
            Hook::from_wire(event.hook)?,
            event.payload.clone()?,
        );
        Some((data, event.attempt))
    }
}

/// The tag of `StoredEvent.apps`.
const STORED_APPS_TAG: u32 = 5;
/// The key of `StoredEvent.event` (field 1, length-delimited).
const STORED_EVENT_KEY: u8 = (1 << 3) | 2;

/// `at` in milliseconds since the Unix epoch.
pub fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{hook::Hook, ids::EventId};
    use prost::Message;
    use roomhooks::v1::{Room, RuntimeMessage, runtime_message::Msg};

    pub(crate) fn event() -> (PostEventData, PostEvent) {
        let room = Room {
            id: "r1".into(),
            ..Room::default()
        };
        let data = PostEventData::new(
            EventId::from_ack("evt-1"),
            Hook::PostRoomCreate,
            post_event::Payload::Room(room.clone()),
        );
        let whole = PostEvent {
            event_id: "evt-1".into(),
            hook: Hook::PostRoomCreate.to_wire() as i32,
            attempt: 3,
            payload: Some(post_event::Payload::Room(room)),
        };
        (data, whole)
    }

    #[test]
    fn a_delivery_frame_decodes_as_the_post_event_with_its_attempt() {
        let (data, whole) = event();
        let mut buf = Vec::new();
        data.frame(3).encode(&mut buf).expect("a Vec grows");
        let decoded = RuntimeMessage::decode(buf.as_slice()).expect("a valid RuntimeMessage");
        assert_eq!(decoded.msg, Some(Msg::PostEvent(whole)));
    }

    #[test]
    fn the_stored_bytes_decode_as_the_stored_event() {
        let (data, whole) = event();
        let bytes = data.stored(3, 1234, Some(("gave up", 5678)));
        let decoded = StoredEvent::decode(bytes.as_slice()).expect("a valid StoredEvent");
        assert_eq!(
            decoded,
            StoredEvent {
                event: Some(whole),
                accepted_unix_ms: 1234,
                reason: "gave up".into(),
                dead_unix_ms: 5678,
                apps: Vec::new(),
            }
        );
    }

    #[test]
    fn a_shared_record_decodes_with_the_apps_it_went_to() {
        let (data, whole) = event();
        let apps = [AppId::parse("a").unwrap(), AppId::parse("b").unwrap()];
        let bytes = data.shared_record(1234, &apps);
        let decoded = StoredEvent::decode(bytes.as_slice()).expect("a valid StoredEvent");
        assert_eq!(
            decoded.event,
            Some(PostEvent {
                attempt: 0,
                ..whole
            })
        );
        assert_eq!(decoded.accepted_unix_ms, 1234);
        assert_eq!(decoded.apps, ["a", "b"]);
    }

    #[test]
    fn a_shared_record_is_byte_for_byte_what_prost_writes_for_the_stored_event() {
        let (data, whole) = event();
        let apps = [AppId::parse("a").unwrap(), AppId::parse("bb").unwrap()];
        let expected = StoredEvent {
            event: Some(PostEvent {
                attempt: 0,
                ..whole
            }),
            accepted_unix_ms: 1234,
            reason: String::new(),
            dead_unix_ms: 0,
            apps: vec!["a".to_owned(), "bb".to_owned()],
        }
        .encode_to_vec();
        assert_eq!(data.shared_record(1234, &apps), expected);
    }
}
