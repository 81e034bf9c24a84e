//! What the sidecar's log lines say: fields an operator reads are values (an address, an id),
//! never Rust's `Some(…)`, and fields with nothing to say are left out.
//!
//! Each test runs the sidecar in-process on the test's current-thread runtime under a subscriber
//! that records every span's and event's fields, so the fields seen are the ones any log format
//! prints.

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use common::{Harness, joining};
use roomhooks_sdk::{App, proto::PreRoomUserJoinRequest};
use tracing::{
    field::{Field, Visit},
    span,
};
use tracing_subscriber::{Layer, layer::Context, prelude::*};

/// A span or event as recorded: its name (the message, for events) and its fields as printed.
#[derive(Clone, Debug, Default)]
struct Record {
    name: String,
    fields: Vec<(String, String)>,
}

impl Record {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Visit for Record {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let printed = format!("{value:?}");
        if field.name() == "message" {
            self.name = printed;
        } else {
            self.fields.push((field.name().to_owned(), printed));
        }
    }
}

/// Records every span (with the fields recorded on it later) and every event.
#[derive(Clone, Default)]
struct Recorder {
    spans: Arc<Mutex<Vec<Record>>>,
    /// Each live span's place in `spans`.
    live: Arc<Mutex<HashMap<span::Id, usize>>>,
    events: Arc<Mutex<Vec<Record>>>,
}

impl<S: tracing::Subscriber> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, _: Context<'_, S>) {
        let mut record = Record {
            name: attrs.metadata().name().to_owned(),
            ..Default::default()
        };
        attrs.record(&mut record);
        let mut spans = self.spans.lock().unwrap();
        self.live.lock().unwrap().insert(id.clone(), spans.len());
        spans.push(record);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, _: Context<'_, S>) {
        if let Some(&at) = self.live.lock().unwrap().get(id) {
            values.record(&mut self.spans.lock().unwrap()[at]);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut record = Record::default();
        event.record(&mut record);
        self.events.lock().unwrap().push(record);
    }
}

impl Recorder {
    /// Makes this recorder the subscriber of the current thread until the guard drops.
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
    }

    fn spans(&self, name: &str) -> Vec<Record> {
        let spans = self.spans.lock().unwrap();
        spans.iter().filter(|s| s.name == name).cloned().collect()
    }

    fn event(&self, message: &str) -> Option<Record> {
        let events = self.events.lock().unwrap();
        events.iter().find(|e| e.name == message).cloned()
    }
}

#[tokio::test]
async fn the_registered_line_prints_the_apps_address_not_an_option() {
    let recorder = Recorder::default();
    let _guard = recorder.install();
    let h = Harness::start().await;
    let _app = h
        .app(
            App::builder("greeter")
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;

    let line = recorder
        .event("app instance registered")
        .expect("the sidecar logs each registration");
    let peer = line.field("peer").expect("the line names the peer");
    assert!(
        peer.starts_with("127.0.0.1:") && peer.parse::<std::net::SocketAddr>().is_ok(),
        "peer is printed as an address: {peer}"
    );
}

#[tokio::test]
async fn the_backend_call_span_leaves_out_an_empty_request_id() {
    let recorder = Recorder::default();
    let _guard = recorder.install();
    let h = Harness::start().await;
    let backend = h.backend().await;

    for request_id in ["", "req-7"] {
        backend
            .pre_room_user_join(PreRoomUserJoinRequest {
                context: Some(joining("general", "ana")),
                request_id: request_id.into(),
                ..Default::default()
            })
            .await
            .expect("PreRoomUserJoin answers");
    }

    let spans = recorder.spans("backend_call");
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert_eq!(spans[0].field("request_id"), None, "{:?}", spans[0]);
    assert_eq!(
        spans[1].field("request_id"),
        Some("req-7"),
        "{:?}",
        spans[1]
    );
}

#[tokio::test]
async fn an_app_that_stops_closes_its_stream_and_the_sidecar_sees_a_clean_leave() {
    let recorder = Recorder::default();
    let _guard = recorder.install();
    let h = Harness::start().await;
    let app = h
        .app(
            App::builder("leaver")
                .pre_room_user_joined(|_, _| async { Ok(()) })
                .build(),
        )
        .await;

    common::within(app.shutdown()).await.expect("the app stops");

    assert!(
        recorder.event("app instance closed its stream").is_some(),
        "the sidecar saw the app close its send side, not a cut connection: {:#?}",
        recorder.events.lock().unwrap()
    );
}
