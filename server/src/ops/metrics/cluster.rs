//! Cluster mode's series: the NATS connection, forwarded Pre calls, post events' publish
//! latency and each app consumer's pending messages.

use std::{fmt::Write, sync::atomic::Ordering};

use super::{ClusterPosts, histogram::histogram_series};

/// Cluster mode: the NATS connection and the Pre calls forwarded to other sidecars.
pub(super) fn cluster_series(out: &mut String, cluster: &crate::cluster::Cluster) {
    let _ = writeln!(
        out,
        "# HELP roomhooks_cluster_connected 1 while the NATS connection is up, 0 while it is lost."
    );
    let _ = writeln!(out, "# TYPE roomhooks_cluster_connected gauge");
    let _ = writeln!(
        out,
        "roomhooks_cluster_connected {}",
        u8::from(cluster.is_connected())
    );
    let _ = writeln!(
        out,
        "# HELP roomhooks_cluster_forwarded_calls_total Pre calls forwarded to another sidecar, by the sidecar that served them (empty: none did)."
    );
    let _ = writeln!(
        out,
        "# TYPE roomhooks_cluster_forwarded_calls_total counter"
    );
    for (sidecar, n) in cluster.forwarded() {
        let _ = writeln!(
            out,
            "roomhooks_cluster_forwarded_calls_total{{sidecar=\"{sidecar}\"}} {n}"
        );
    }
}

/// Cluster mode: the publish latency of post events, and each app consumer's pending messages.
pub(super) fn cluster_post_series(out: &mut String, sources: &ClusterPosts, buckets: &[usize]) {
    let _ = writeln!(
        out,
        "# HELP roomhooks_cluster_publish_seconds Time from publishing a post event to JetStream's ack."
    );
    let _ = writeln!(out, "# TYPE roomhooks_cluster_publish_seconds histogram");
    let sum_us = sources.latency.sum_us.load(Ordering::Relaxed);
    histogram_series(
        out,
        "roomhooks_cluster_publish_seconds",
        "",
        &sources.latency.buckets,
        sum_us,
        buckets,
    );
    let _ = writeln!(
        out,
        "# HELP roomhooks_cluster_consumer_pending Post events in an app's JetStream consumer \
         not delivered or not acknowledged yet (read every few seconds)."
    );
    let _ = writeln!(out, "# TYPE roomhooks_cluster_consumer_pending gauge");
    for (app_id, pending) in sources.delivery.pending() {
        let _ = writeln!(
            out,
            "roomhooks_cluster_consumer_pending{{app_id=\"{app_id}\"}} {pending}"
        );
    }
}
