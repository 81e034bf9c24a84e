//! Each app's durable consumer on the posts stream: its filters, ack waits and limits.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};

use super::{Inner, lock};
use crate::{apps::spec::AppSpec, cluster::ClusterError, hook::Stage};

/// Whether `spec` registered any post hook (apps with only Pre hooks have no consumer).
pub(super) fn has_post_hooks(spec: &AppSpec) -> bool {
    spec.interfaces.iter().any(|h| h.stage() == Stage::Post)
}

/// The ack wait of each delivery of an event, attempt 1 to `max_attempts`.
fn backoff(ack_timeout: Duration, max_attempts: u32) -> Vec<Duration> {
    (1..=max_attempts)
        .map(|attempt| crate::post::ack_wait(ack_timeout, attempt))
        .collect()
}

pub(super) async fn ensure_consumer(inner: &Inner, spec: &AppSpec) -> Result<(), ClusterError> {
    let names = inner.cluster.names();
    let filters = names.app_filters(&spec.app_id, spec.interfaces, spec.room_types);
    if lock(&inner.ensured).get(&spec.app_id) == Some(&filters) {
        return Ok(());
    }
    let settings = inner.cluster.settings();
    let name = names.app_consumer(&spec.app_id);
    let config = pull::Config {
        durable_name: Some(name.clone()),
        description: Some(format!("roomhooks post events of app {}", spec.app_id)),
        // An app gets the events accepted from its first registration on.
        deliver_policy: DeliverPolicy::New,
        ack_policy: AckPolicy::Explicit,
        ack_wait: settings.ack_timeout,
        // Replaces `ack_wait` per delivery; JetStream wants it shorter than `max_deliver`.
        backoff: backoff(settings.ack_timeout, settings.max_attempts),
        // One delivery past the cap: the pull loop sees it and makes it a dead letter.
        max_deliver: i64::from(settings.max_attempts) + 1,
        max_ack_pending: i64::try_from(settings.window).unwrap_or(i64::MAX),
        filter_subjects: filters.clone(),
        // Never deleted for being idle: an app away for a while keeps its events.
        inactive_threshold: Duration::ZERO,
        ..Default::default()
    };
    inner
        .cluster
        .jetstream()
        .create_consumer_on_stream(config, names.posts_stream())
        .await
        .map_err(|e| ClusterError::Nats(format!("creating consumer {name}: {e}")))?;
    tracing::debug!(app_id = %spec.app_id, consumer = %name, ?filters, "app consumer ready");
    lock(&inner.ensured).insert(spec.app_id.clone(), filters);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_redelivery_waits_twice_as_long_as_the_last_up_to_sixteen_times_the_ack_timeout() {
        let waits = backoff(Duration::from_secs(1), 7);
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 16, 16]);
        // JetStream refuses a backoff list that is not shorter than max_deliver (attempts + 1).
        assert!(waits.len() < 7 + 1);
    }
}
