//! Post events in cluster mode are stored in JetStream, not on the sidecar's disk. Each accepted
//! event is published **once** to the posts stream on `<name>.post.<hook>.<room type>`, with its
//! `event_id` as `Nats-Msg-Id`: a backend that retries at another sidecar within
//! `--dedupe-window` is de-duplicated by the stream. The backend hears OK only once the stream
//! acknowledged every event of its call (the ack comes once the message is replicated per
//! `--cluster-replicas`). Each app's durable consumer ([`super::delivery`]) filters the subjects
//! it wants; interest retention keeps the one stored message until every consumer it matched
//! has acknowledged it.
//!
//! `wait_for_delivery`: an event the backend waits for carries a reply inbox in a header; the
//! sidecar whose instance acknowledged it (once its ack is sent to JetStream) sends a notice there
//! naming the instance, the sidecar and the attempt. Notices are core NATS (at most once), so
//! the waiter also reads the app's consumer: once its ack floor reached the event's stream
//! sequence, every message up to it is acknowledged (this never reports a delivery that did not
//! happen; an earlier event still unacknowledged holds the floor back). Neither in time: the
//! answer is `TIMEOUT`.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::{
    HeaderMap,
    jetstream::{context::PublishError, message::PublishMessage},
};
use futures_util::{StreamExt, stream::FuturesUnordered};
use roomhooks::v1::RoomType;
use tokio::{sync::Notify, time::Instant};

use super::{
    Cluster,
    delivery::{AckedBy, RecentAcks},
};
use crate::{
    apps::stats::BUCKETS_US,
    ids::{AppId, InstanceId},
    post::PostEventData,
};

/// Header: the event's id (a retried dead letter has a new `Nats-Msg-Id`, the same event id).
pub const EVENT_ID: &str = "Roomhooks-Event";
/// Header: the event's hook (its `HookInterface` number).
pub const HOOK: &str = "Roomhooks-Hook";
/// Header: where to send the notice of the event's acknowledgement (a backend waits for it).
pub const NOTIFY: &str = "Roomhooks-Notify";
/// Header of a notice: the app that acknowledged.
pub const NOTICE_APP: &str = "Roomhooks-App";
/// Header of a notice: the stream sequence acknowledged.
pub const NOTICE_SEQ: &str = "Roomhooks-Seq";
/// Header of a notice: the instance that acknowledged.
pub const NOTICE_INSTANCE: &str = "Roomhooks-Instance";
/// Header of a notice: the sidecar it is connected to.
pub const NOTICE_SIDECAR: &str = "Roomhooks-Sidecar";
/// Header of a notice: the attempt acknowledged.
pub const NOTICE_ATTEMPT: &str = "Roomhooks-Attempt";
/// Header of a notice: the event became a dead letter instead.
pub const NOTICE_DEAD: &str = "Roomhooks-Dead";
/// Publishes in flight per call, at most (below the client's 5,000 pending acks).
const PIPELINE: usize = 1024;
/// How often `wait_for_delivery` looks at an app's consumer.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// Why post events could not be stored in JetStream.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The NATS connection is down.
    #[error(
        "cluster mode: NATS is unreachable from this sidecar, so the event cannot be stored in \
         JetStream (the sidecar reconnects by itself)"
    )]
    Disconnected,
    /// The stream had not acknowledged every event when the backend's deadline came.
    #[error(
        "cluster mode: JetStream had not acknowledged every event when the call's deadline \
         passed (is a stream leader being elected?)"
    )]
    Deadline,
    /// The stream did not acknowledge a publish.
    #[error("cluster mode: JetStream did not store event {event_id:?}: {source}")]
    Publish {
        /// The event.
        event_id: String,
        /// The client's error.
        #[source]
        source: PublishError,
    },
}

/// What the stream said about one stored event.
#[derive(Clone, Copy, Debug)]
pub struct Stored {
    /// Its sequence in the posts stream (the original one for a duplicate).
    pub sequence: u64,
    /// The stream already held it (a retried event id within the window).
    pub duplicate: bool,
}

/// Publish latencies: the same fine buckets as the app call histograms.
pub struct PublishLatency {
    /// One slot per entry of [`BUCKETS_US`] plus one for everything above.
    pub buckets: [AtomicU64; 71],
    /// Sum of latencies in microseconds.
    pub sum_us: AtomicU64,
}

impl Default for PublishLatency {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl PublishLatency {
    /// Counts one publish that took `took`, from send to the stream's ack.
    pub fn record(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let slot = BUCKETS_US.partition_point(|&upper| upper < us);
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }
}

/// Stores post events in the posts stream and answers `wait_for_delivery` from the consumers.
#[derive(Clone)]
pub struct Journal {
    cluster: Cluster,
    latency: Arc<PublishLatency>,
    recent: RecentAcks,
}

impl Journal {
    /// A journal over `cluster`'s posts stream; `recent` holds the acks this sidecar took.
    pub fn new(cluster: Cluster, recent: RecentAcks) -> Self {
        Self {
            cluster,
            latency: Arc::default(),
            recent,
        }
    }

    /// The publish latencies, for the metrics endpoint.
    pub fn latency(&self) -> &Arc<PublishLatency> {
        &self.latency
    }

    /// Publishes each event once, pipelined, and returns once the stream acknowledged every one
    /// (in the order given), with the notices of the events that `wait` (when any does). Fails
    /// when any event could not be stored: the backend retries the call with the same event
    /// ids, and the ones already stored are de-duplicated.
    pub async fn publish(
        &self,
        events: Vec<(&PostEventData, RoomType, bool)>,
    ) -> Result<(Vec<Stored>, Option<Notices>), JournalError> {
        if !self.cluster.is_connected() {
            return Err(JournalError::Disconnected);
        }
        // Subscribed before anything is published, so no notice can come first.
        let notices = if events.iter().any(|(_, _, wait)| *wait) {
            let inbox = self.cluster.client().new_inbox();
            match self.cluster.client().subscribe(inbox.clone()).await {
                Ok(subscriber) => Some(Notices {
                    inbox,
                    subscriber: tokio::sync::Mutex::new(subscriber),
                    seen: Mutex::new(HashMap::new()),
                    changed: Notify::new(),
                }),
                Err(_) => None,
            }
        } else {
            None
        };
        let js = self.cluster.jetstream();
        let names = self.cluster.names();
        let mut stored: Vec<Option<Stored>> = Vec::new();
        let mut acks = FuturesUnordered::new();
        let mut first_error: Option<JournalError> = None;
        for (i, (event, room_type, wait)) in events.into_iter().enumerate() {
            stored.push(None);
            while acks.len() >= PIPELINE {
                if let Some(done) = acks.next().await {
                    self.take(done, &mut stored, &mut first_error);
                }
            }
            if first_error.is_some() {
                break;
            }
            let mut headers = HeaderMap::new();
            headers.insert(EVENT_ID, event.id.as_str());
            headers.insert(HOOK, (event.hook.to_wire() as i32).to_string().as_str());
            if let (true, Some(notices)) = (wait, &notices) {
                headers.insert(NOTIFY, notices.inbox.as_str());
            }
            let message = PublishMessage::build()
                .payload(event.encoded().clone())
                .headers(headers)
                .message_id(event.id.as_str());
            let subject = names.post_subject(event.hook, room_type);
            let sent = Instant::now();
            let event_id = event.id.as_str().to_owned();
            match js.send_publish(subject, message).await {
                Ok(ack) => acks.push(async move {
                    let result = ack.await;
                    (i, event_id, sent.elapsed(), result)
                }),
                Err(source) => {
                    first_error = Some(JournalError::Publish { event_id, source });
                    break;
                }
            }
        }
        while let Some(done) = acks.next().await {
            self.take(done, &mut stored, &mut first_error);
        }
        if let Some(err) = first_error {
            return Err(err);
        }
        Ok((stored.into_iter().flatten().collect(), notices))
    }

    /// Records one publish's ack.
    fn take(
        &self,
        (i, event_id, took, result): (
            usize,
            String,
            Duration,
            Result<async_nats::jetstream::publish::PublishAck, PublishError>,
        ),
        stored: &mut [Option<Stored>],
        first_error: &mut Option<JournalError>,
    ) {
        match result {
            Ok(ack) => {
                self.latency.record(took);
                stored[i] = Some(Stored {
                    sequence: ack.sequence,
                    duplicate: ack.duplicate,
                });
            }
            Err(source) => {
                if first_error.is_none() {
                    *first_error = Some(JournalError::Publish { event_id, source });
                }
            }
        }
    }

    /// Waits until `app_id` acknowledged the message at `sequence` (a notice, an ack taken
    /// here, or the consumer's ack floor), or `deadline`; `None` when it did not in time.
    pub async fn wait_acked(
        &self,
        app_id: &AppId,
        sequence: u64,
        deadline: Instant,
        notices: Option<&Notices>,
    ) -> Option<AckedBy> {
        let consumer = self.cluster.names().app_consumer(app_id);
        let stream = self.cluster.names().posts_stream();
        let js = self.cluster.jetstream();
        let mut next_poll = Instant::now();
        loop {
            let changed = notices.map(|n| n.changed.notified());
            tokio::pin!(changed);
            if let Some(changed) = changed.as_mut().as_pin_mut() {
                changed.enable();
            }
            if let Some(by) = notices.and_then(|n| n.get(app_id, sequence)) {
                return Some(by);
            }
            if let Some(by) = self.recent.get(app_id, sequence) {
                return Some(by);
            }
            if Instant::now() >= next_poll {
                let floor = tokio::time::timeout_at(deadline, async {
                    let stream = js.get_stream_no_info(&stream).await.ok()?;
                    let info = stream.consumer_info(&consumer).await.ok()?;
                    Some(info.ack_floor.stream_sequence)
                })
                .await
                .ok()?;
                if floor.is_some_and(|floor| floor >= sequence) {
                    // A notice may be on its way: it names the instance; give it a moment.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    return Some(
                        notices
                            .and_then(|n| n.get(app_id, sequence))
                            .or_else(|| self.recent.get(app_id, sequence))
                            .unwrap_or_default(),
                    );
                }
                next_poll = Instant::now() + POLL_EVERY;
            }
            if Instant::now() >= deadline {
                return None;
            }
            let wake = next_poll.min(deadline);
            match changed.as_mut().as_pin_mut() {
                Some(changed) => {
                    let _ = tokio::time::timeout_at(wake, changed).await;
                }
                None => tokio::time::sleep_until(wake).await,
            }
        }
    }
}

/// The notices of acknowledgement for one PostEvents call's waited-for events.
pub struct Notices {
    inbox: String,
    subscriber: tokio::sync::Mutex<async_nats::Subscriber>,
    seen: Mutex<HashMap<(String, u64), AckedBy>>,
    changed: Notify,
}

impl Notices {
    /// Who acknowledged `app_id`'s message at `sequence`, if the notice came.
    fn get(&self, app_id: &AppId, sequence: u64) -> Option<AckedBy> {
        self.lock()
            .get(&(app_id.as_str().to_owned(), sequence))
            .cloned()
    }

    /// Reads notices as they come (run it beside the waits; it ends with the subscription).
    pub async fn pump(&self) {
        let mut subscriber = self.subscriber.lock().await;
        while let Some(message) = subscriber.next().await {
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_owned())
            };
            let (Some(app), Some(seq)) = (
                header(NOTICE_APP),
                header(NOTICE_SEQ).and_then(|s| s.parse::<u64>().ok()),
            ) else {
                continue;
            };
            let by = AckedBy {
                instance: header(NOTICE_INSTANCE).and_then(|i| InstanceId::parse(&i).ok()),
                sidecar: header(NOTICE_SIDECAR),
                attempt: header(NOTICE_ATTEMPT).and_then(|a| a.parse().ok()),
                dead: header(NOTICE_DEAD).is_some(),
            };
            self.lock().insert((app, seq), by);
            self.changed.notify_waiters();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u64), AckedBy>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_is_counted_in_the_first_bucket_that_holds_its_latency() {
        let latency = PublishLatency::default();
        latency.record(Duration::from_micros(900));
        latency.record(Duration::from_secs(1_000));
        let at = |us: u64| BUCKETS_US.iter().position(|&b| b == us).unwrap();
        assert_eq!(latency.buckets[at(1_000)].load(Ordering::Relaxed), 1);
        assert_eq!(
            latency.buckets[BUCKETS_US.len()].load(Ordering::Relaxed),
            1,
            "beyond the last bucket"
        );
        assert_eq!(latency.sum_us.load(Ordering::Relaxed), 1_000_000_900);
    }
}
