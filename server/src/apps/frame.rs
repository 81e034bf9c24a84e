//! What the sidecar writes down an app's stream, and the codec that writes it.
//!
//! A fan-out sends the same room to every app. Instead of cloning and encoding the room once per
//! app, the parts of a `HookCall` that every app shares (payload, request id, dry-run flag, trace
//! context) are encoded once into a [`SharedCall`]; each app's frame adds only its own call id,
//! hook and time left. Protobuf defines concatenated encodings of one message as their merge, so
//! `head ++ shared` is exactly the `HookCall` any protobuf decoder expects.

use bytes::{BufMut, Bytes};
use prost::{Message, encoding};
use roomhooks::v1::{AppMessage, PostEvent, Room, RuntimeMessage, hook_call};
use tonic::{
    Status,
    codec::{Codec, EncodeBuf, Encoder},
};
use tonic_prost::ProstDecoder;

/// The key of `RuntimeMessage.call` (field 2, length-delimited).
const CALL_KEY: u8 = (2 << 3) | 2;
/// The key of `RuntimeMessage.post_event` (field 3, length-delimited).
const POST_EVENT_KEY: u8 = (3 << 3) | 2;

/// The fields of a `HookCall` shared by every app of one fan-out, encoded once.
#[derive(Clone, Debug)]
pub struct SharedCall(Bytes);

/// `HookCall` field numbers of the shared part.
const DRY_RUN: u32 = 4;
const REQUEST_ID: u32 = 5;
const ROOM: u32 = 6;
const TRACEPARENT: u32 = 9;

impl SharedCall {
    /// Encodes the shared fields: payload, dry-run flag, request id and trace context.
    pub fn encode(
        payload: &hook_call::Payload,
        dry_run: bool,
        request_id: &str,
        traceparent: &str,
    ) -> Self {
        Self::build(
            payload.encoded_len(),
            |buf| payload.encode(buf),
            dry_run,
            request_id,
            traceparent,
        )
    }

    /// The same with a room as the payload, encoded from where it is (no copy of the room).
    pub fn room(room: &Room, dry_run: bool, request_id: &str, traceparent: &str) -> Self {
        Self::build(
            encoding::message::encoded_len(ROOM, room),
            |buf| encoding::message::encode(ROOM, room, buf),
            dry_run,
            request_id,
            traceparent,
        )
    }

    /// Shared fields encoded elsewhere (a call forwarded by another sidecar).
    pub fn from_encoded(bytes: Bytes) -> Self {
        SharedCall(bytes)
    }

    /// The encoded shared fields.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// Writes the fields in field-number order, as prost would for the whole `HookCall`.
    fn build(
        payload_len: usize,
        payload: impl FnOnce(&mut Vec<u8>),
        dry_run: bool,
        request_id: &str,
        traceparent: &str,
    ) -> Self {
        let text_len = |tag: u32, text: &str| {
            if text.is_empty() {
                0
            } else {
                encoding::key_len(tag)
                    + encoding::encoded_len_varint(text.len() as u64)
                    + text.len()
            }
        };
        let mut buf = Vec::with_capacity(
            2 + text_len(REQUEST_ID, request_id) + payload_len + text_len(TRACEPARENT, traceparent),
        );
        if dry_run {
            encoding::bool::encode(DRY_RUN, &dry_run, &mut buf);
        }
        put_text(REQUEST_ID, request_id, &mut buf);
        payload(&mut buf);
        put_text(TRACEPARENT, traceparent, &mut buf);
        SharedCall(buf.into())
    }
}

/// Writes a string field (nothing for an empty one, as proto3 does).
fn put_text(tag: u32, text: &str, buf: &mut Vec<u8>) {
    if !text.is_empty() {
        encoding::encode_key(tag, encoding::WireType::LengthDelimited, buf);
        encoding::encode_varint(text.len() as u64, buf);
        buf.put_slice(text.as_bytes());
    }
}

/// A hook call's own fields (`HookCall` fields 1 to 3), written ahead of the shared ones: a few
/// bytes to move through the instance's queue instead of a whole `HookCall`.
#[derive(Clone, PartialEq, Message)]
pub struct CallHead {
    /// `HookCall.call_id`.
    #[prost(uint64, tag = "1")]
    pub call_id: u64,
    /// `HookCall.hook` (a `HookInterface`).
    #[prost(int32, tag = "2")]
    pub hook: i32,
    /// `HookCall.timeout`.
    #[prost(message, optional, tag = "3")]
    pub timeout: Option<prost_types::Duration>,
}

/// One message for an app instance's stream (small: the rare whole message is boxed).
#[derive(Debug)]
pub enum Frame {
    /// A message built for this instance alone (Registered, PostEvent, CancelCall, Heartbeat).
    Message(Box<RuntimeMessage>),
    /// A hook call: this instance's `call_id`, `hook` and `timeout`, then the shared fields.
    Call {
        /// `call_id`, `hook` and `timeout`.
        head: CallHead,
        /// Everything else, encoded once per fan-out.
        shared: SharedCall,
    },
    /// A post event: this delivery's `attempt`, then the event encoded once when accepted.
    Post {
        /// `PostEvent.attempt`.
        attempt: u32,
        /// The `PostEvent` without its attempt.
        event: Bytes,
    },
}

impl From<RuntimeMessage> for Frame {
    fn from(message: RuntimeMessage) -> Self {
        Frame::Message(Box::new(message))
    }
}

impl Frame {
    /// Writes the frame as an encoded `RuntimeMessage`.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), prost::EncodeError> {
        match self {
            Frame::Message(message) => message.encode(buf),
            Frame::Call { head, shared } => write_merged(CALL_KEY, head, &shared.0, buf),
            Frame::Post { attempt, event } => {
                let head = PostEvent {
                    attempt: *attempt,
                    ..PostEvent::default()
                };
                write_merged(POST_EVENT_KEY, &head, event, buf)
            }
        }
    }
}

/// Writes a length-delimited field `key` holding the message `head` merged with the encoded
/// fields `rest` (protobuf reads concatenated encodings of one message as their merge). `buf`
/// must grow as needed (a `Vec` or tonic's `EncodeBuf`).
pub fn write_merged(
    key: u8,
    head: &impl Message,
    rest: &[u8],
    buf: &mut impl BufMut,
) -> Result<(), prost::EncodeError> {
    let len = head.encoded_len() + rest.len();
    buf.put_u8(key);
    prost::encode_length_delimiter(len, buf)?;
    head.encode(buf)?;
    buf.put_slice(rest);
    Ok(())
}

/// The `AppRuntime.Connect` codec: writes [`Frame`]s, reads `AppMessage`s.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameCodec;

impl Codec for FrameCodec {
    type Encode = Frame;
    type Decode = AppMessage;
    type Encoder = FrameEncoder;
    type Decoder = ProstDecoder<AppMessage>;

    fn encoder(&mut self) -> Self::Encoder {
        FrameEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

/// Encodes [`Frame`]s into gRPC messages.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameEncoder;

impl Encoder for FrameEncoder {
    type Item = Frame;
    type Error = Status;

    fn encode(&mut self, item: Frame, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding a message for the app: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomhooks::v1::{HookCall, RoomUserJoined, User, runtime_message::Msg};

    #[test]
    fn a_shared_call_frame_decodes_as_the_whole_hook_call() {
        let room = Room {
            id: "r1".into(),
            display_name: "general".into(),
            ..Room::default()
        };
        let whole = HookCall {
            call_id: 42,
            hook: 3,
            timeout: Some(prost_types::Duration {
                seconds: 1,
                nanos: 5,
            }),
            dry_run: true,
            request_id: "req-1".into(),
            payload: Some(hook_call::Payload::Room(room.clone())),
            traceparent: "00-abc-def-01".into(),
        };
        let frame = Frame::Call {
            head: CallHead {
                call_id: 42,
                hook: 3,
                timeout: whole.timeout,
            },
            shared: SharedCall::room(&room, true, "req-1", "00-abc-def-01"),
        };
        let mut buf = Vec::new();
        frame.encode(&mut buf).expect("a Vec has room");
        let decoded = RuntimeMessage::decode(buf.as_slice()).expect("a valid RuntimeMessage");
        assert_eq!(decoded.msg, Some(Msg::Call(whole)));
    }

    #[test]
    fn the_shared_part_is_byte_for_byte_what_prost_writes_for_those_fields() {
        let room = Room {
            id: "r1".into(),
            display_name: "général".into(),
            member_usernames: vec!["ana".into()],
            ..Room::default()
        };
        let joined = hook_call::Payload::UserJoined(RoomUserJoined {
            room: Some(room.clone()),
            joining_user: Some(User {
                username: "ana".into(),
                ..User::default()
            }),
            inviter: None,
        });
        let whole = |payload, dry_run, request_id: &str, traceparent: &str| {
            HookCall {
                dry_run,
                request_id: request_id.into(),
                payload: Some(payload),
                traceparent: traceparent.into(),
                ..HookCall::default()
            }
            .encode_to_vec()
        };

        let room_call = SharedCall::room(&room, true, "req-1", "00-abc-def-01");
        let bare_room = SharedCall::room(&room, false, "", "");
        let joined_call = SharedCall::encode(&joined, false, "req-2", "");

        let room_payload = hook_call::Payload::Room(room);
        assert_eq!(
            room_call.0,
            whole(room_payload.clone(), true, "req-1", "00-abc-def-01")
        );
        assert_eq!(bare_room.0, whole(room_payload, false, "", ""));
        assert_eq!(joined_call.0, whole(joined, false, "req-2", ""));
    }
}
