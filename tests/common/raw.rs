//! The app protocol spoken by hand: an app that sends exactly the `AppMessage`s a test writes
//! and reads every `RuntimeMessage` as it comes, so a test can register wrongly, stay silent,
//! flood, or answer with the wrong kind — what the SDK never does — and a codec that puts raw
//! bytes on the wire.
//!
//! The server crate's tests use this file too (`server/tests/common/mod.rs` includes it), so
//! it depends only on what both test crates have: the SDK's proto types, tokio and tonic.
#![allow(dead_code)]

use bytes::{Buf, BufMut};
use roomhooks_sdk::proto::{
    AppMessage, HookCall, HookInterface, HookResult, PostEventAck, Register, RuntimeMessage,
    app_message::Msg, app_runtime_client::AppRuntimeClient, hook_result,
    runtime_message::Msg as Down,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    Status, Streaming,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};

/// Messages a raw app can queue before the stream takes them.
const UP_CAPACITY: usize = 1024;

/// An app speaking `AppRuntime.Connect` by hand. It answers nothing by itself, not even
/// heartbeats; its stream stays open until it is dropped.
pub struct RawApp {
    up: mpsc::Sender<AppMessage>,
    down: Streaming<RuntimeMessage>,
}

impl RawApp {
    /// Opens a stream whose first message is `first`, reading nothing: the error is a refusal
    /// of the stream itself (e.g. a limit checked before registration).
    pub async fn open(channel: Channel, first: AppMessage) -> Result<Self, Status> {
        let (up, rx) = mpsc::channel(UP_CAPACITY);
        up.send(first)
            .await
            .expect("the stream has not started yet");
        let down = AppRuntimeClient::new(channel)
            .connect(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(Self { up, down })
    }

    /// Opens a stream whose first message is `first` and reads the sidecar's answer: the app
    /// once the sidecar said `Registered`, or the status the stream was refused with. Panics on
    /// any other answer.
    pub async fn connect(channel: Channel, first: AppMessage) -> Result<Self, Status> {
        let mut app = Self::open(channel, first).await?;
        match app.down.message().await? {
            Some(RuntimeMessage {
                msg: Some(Down::Registered(_)),
            }) => Ok(app),
            other => panic!("expected Registered, got {other:?}"),
        }
    }

    /// [`RawApp::connect`] with `register` as the first message.
    pub async fn register(channel: Channel, register: Register) -> Result<Self, Status> {
        Self::connect(channel, registration(register)).await
    }

    /// Sends `message` as it is. Panics if the sidecar already ended the stream.
    pub async fn send(&self, message: AppMessage) {
        self.up
            .send(message)
            .await
            .expect("the app stream is still open");
    }

    /// Answers HookCall `call_id` with `result` (`None`: a HookResult without one).
    pub async fn answer(&self, call_id: u64, result: Option<hook_result::Result>) {
        self.send(answer(call_id, result)).await;
    }

    /// Acknowledges post event `event_id`.
    pub async fn ack(&self, event_id: &str) {
        self.send(AppMessage {
            msg: Some(Msg::PostAck(PostEventAck {
                event_id: event_id.into(),
            })),
        })
        .await;
    }

    /// Another handle on the sending side, for a task that sends while the test reads.
    pub fn sender(&self) -> mpsc::Sender<AppMessage> {
        self.up.clone()
    }

    /// The next message from the sidecar, heartbeats included; `Ok(None)` when it ended the
    /// stream with status OK.
    pub async fn message(&mut self) -> Result<Option<RuntimeMessage>, Status> {
        self.down.message().await
    }

    /// The next message that is not a `Heartbeat`; `Ok(None)` when the sidecar ended the stream
    /// with status OK.
    pub async fn next(&mut self) -> Result<Option<Down>, Status> {
        loop {
            match self.down.message().await? {
                Some(RuntimeMessage {
                    msg: Some(Down::Heartbeat(_)),
                }) => {}
                Some(RuntimeMessage { msg }) => return Ok(msg),
                None => return Ok(None),
            }
        }
    }

    /// The next HookCall, skipping every other message. Panics if the stream ends first.
    pub async fn next_call(&mut self) -> HookCall {
        loop {
            match self.down.message().await {
                Ok(Some(RuntimeMessage {
                    msg: Some(Down::Call(call)),
                })) => return call,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the sidecar closed a stream it should have kept"),
                Err(status) => panic!("the sidecar ended the stream: {status:?}"),
            }
        }
    }
}

/// A registration of `app_id` for `hooks`, everything else left to the sidecar's defaults.
pub fn register(app_id: &str, hooks: &[HookInterface]) -> Register {
    Register {
        app_id: app_id.into(),
        interfaces: hooks.iter().map(|h| *h as i32).collect(),
        ..Default::default()
    }
}

/// `register` as the `AppMessage` that carries it.
pub fn registration(register: Register) -> AppMessage {
    AppMessage {
        msg: Some(Msg::Register(register)),
    }
}

/// The `AppMessage` answering HookCall `call_id` with `result`.
pub fn answer(call_id: u64, result: Option<hook_result::Result>) -> AppMessage {
    AppMessage {
        msg: Some(Msg::Result(HookResult { call_id, result })),
    }
}

/// A codec that sends each message as the bytes given and hands back each answer's bytes
/// undecoded: garbage on an app stream, or a backend request tonic's own encoding would refuse.
#[derive(Default, Clone, Copy)]
pub struct BytesCodec;

impl Codec for BytesCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = BytesCodec;
    type Decoder = BytesCodec;
    fn encoder(&mut self) -> Self::Encoder {
        BytesCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        BytesCodec
    }
}

impl Encoder for BytesCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for BytesCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}
