//! Dead letters in cluster mode: a post event delivered more than `--post-max-attempts` times
//! is published to the dead stream on the app's dead subject (`<name>.dead.<app>`), with its
//! attempts, reason and time as headers, and terminated in the posts stream. Any sidecar lists
//! them from the dead stream, and retries them by publishing the event again on the app's retry
//! subject (`<name>.retry.<app>`, which only that app's consumer takes; a new `Nats-Msg-Id`, so
//! the de-duplication window does not swallow it) and deleting the dead message.

use std::time::SystemTime;

use async_nats::{
    HeaderMap,
    jetstream::{
        message::PublishMessage,
        stream::{LastRawMessageErrorKind, Stream},
    },
};
use bytes::Bytes;
use futures_util::TryStreamExt;

use super::{
    Cluster, ClusterError,
    journal::{EVENT_ID, HOOK},
};
use crate::{
    hook::Hook,
    ids::{AppId, EventId},
    post::unix_ms,
};

/// Header of a dead letter: the deliveries made.
const ATTEMPTS: &str = "Roomhooks-Attempts";
/// Header of a dead letter: why it was given up on.
const REASON: &str = "Roomhooks-Reason";
/// Header of a dead letter: when it was given up on (Unix ms).
const DEAD_AT: &str = "Roomhooks-Dead-At";
/// Dead letters a retry reads at most in one call.
const MAX_RETRY: usize = 100_000;

/// One dead letter, as the dead stream holds it.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// Its sequence in the dead stream.
    pub sequence: u64,
    /// The event's id.
    pub event_id: String,
    /// The event's hook.
    pub hook: Option<Hook>,
    /// Deliveries made.
    pub attempts: u32,
    /// Why it was given up on.
    pub reason: String,
    /// When it was given up on (Unix ms).
    pub dead_at_ms: i64,
    /// The encoded `PostEvent` without its attempt.
    pub payload: Bytes,
}

/// Stores `message` as a dead letter of `app_id` (waits for the dead stream's ack).
pub async fn bury(
    cluster: &Cluster,
    app_id: &AppId,
    message: &async_nats::jetstream::Message,
    attempts: u32,
    reason: &str,
) -> Result<(), ClusterError> {
    let mut headers = HeaderMap::new();
    let copy = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    let event_id = copy(EVENT_ID);
    headers.insert(EVENT_ID, event_id.as_str());
    headers.insert(HOOK, copy(HOOK).as_str());
    headers.insert(ATTEMPTS, attempts.to_string().as_str());
    headers.insert(REASON, reason);
    headers.insert(DEAD_AT, unix_ms(SystemTime::now()).to_string().as_str());
    let sequence = message.info().map_or(0, |i| i.stream_sequence);
    let publish = PublishMessage::build()
        .payload(message.payload.clone())
        .headers(headers)
        // A redelivery racing this one is buried once.
        .message_id(format!("{event_id}@{sequence}"));
    cluster
        .jetstream()
        .send_publish(cluster.names().dead_subject(app_id), publish)
        .await
        .map_err(|e| ClusterError::Nats(format!("publishing a dead letter: {e}")))?
        .await
        .map_err(|e| ClusterError::Nats(format!("storing a dead letter: {e}")))?;
    Ok(())
}

async fn dead_stream(cluster: &Cluster) -> Result<Stream<()>, ClusterError> {
    cluster
        .jetstream()
        .get_stream_no_info(cluster.names().dead_stream())
        .await
        .map_err(|e| ClusterError::Nats(format!("opening the dead-letter stream: {e}")))
}

/// `app_id`'s dead letters, oldest first, at most `limit`.
pub async fn list(
    cluster: &Cluster,
    app_id: &AppId,
    limit: usize,
) -> Result<Vec<DeadLetter>, ClusterError> {
    let stream = dead_stream(cluster).await?;
    let subject = cluster.names().dead_subject(app_id);
    let mut out = Vec::new();
    let mut from = 1;
    while out.len() < limit {
        let message = match stream
            .raw_message_builder()
            .sequence(from)
            .next_by_subject(subject.clone())
            .send()
            .await
        {
            Ok(message) => message,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => break,
            Err(e) => return Err(ClusterError::Nats(format!("reading dead letters: {e}"))),
        };
        let header = |name: &str| {
            message
                .headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        from = message.sequence + 1;
        out.push(DeadLetter {
            sequence: message.sequence,
            event_id: header(EVENT_ID),
            hook: header(HOOK).parse::<i32>().ok().and_then(Hook::from_wire),
            attempts: header(ATTEMPTS).parse().unwrap_or(0),
            reason: header(REASON),
            dead_at_ms: header(DEAD_AT).parse().unwrap_or(0),
            payload: message.payload,
        });
    }
    Ok(out)
}

/// How many dead letters `app_id` has.
pub async fn count(cluster: &Cluster, app_id: &AppId) -> Result<u64, ClusterError> {
    let stream = dead_stream(cluster).await?;
    let subject = cluster.names().dead_subject(app_id);
    let mut info = stream
        .info_builder()
        .subjects(subject.clone())
        .fetch()
        .await
        .map_err(|e| ClusterError::Nats(format!("counting dead letters: {e}")))?;
    let mut total = 0u64;
    while let Some((s, n)) = info
        .try_next()
        .await
        .map_err(|e| ClusterError::Nats(format!("counting dead letters: {e}")))?
    {
        if s == subject {
            total += n as u64;
        }
    }
    Ok(total)
}

/// Delivers `app_id`'s dead letters again (all when `ids` is empty), attempts starting over;
/// returns how many were queued again.
pub async fn retry(
    cluster: &Cluster,
    app_id: &AppId,
    ids: &[EventId],
) -> Result<usize, ClusterError> {
    let stream = dead_stream(cluster).await?;
    let letters = list(cluster, app_id, MAX_RETRY).await?;
    let mut retried = 0;
    for letter in letters
        .into_iter()
        .filter(|d| ids.is_empty() || ids.iter().any(|id| id.as_str() == d.event_id))
    {
        let mut headers = HeaderMap::new();
        headers.insert(EVENT_ID, letter.event_id.as_str());
        if let Some(hook) = letter.hook {
            headers.insert(HOOK, (hook.to_wire() as i32).to_string().as_str());
        }
        let publish = PublishMessage::build()
            .payload(letter.payload)
            .headers(headers)
            // A new id: the original one may still be in the posts stream's window.
            .message_id(format!("{}@retry-{}", letter.event_id, letter.sequence));
        cluster
            .jetstream()
            .send_publish(cluster.names().retry_subject(app_id), publish)
            .await
            .map_err(|e| ClusterError::Nats(format!("retrying a dead letter: {e}")))?
            .await
            .map_err(|e| ClusterError::Nats(format!("retrying a dead letter: {e}")))?;
        stream
            .delete_message(letter.sequence)
            .await
            .map_err(|e| ClusterError::Nats(format!("deleting a retried dead letter: {e}")))?;
        retried += 1;
    }
    Ok(retried)
}
