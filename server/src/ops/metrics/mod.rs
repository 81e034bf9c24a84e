//! The Prometheus endpoint: `GET /metrics` in the text exposition format, every series prefixed
//! `roomhooks_`. Rendered on request from the same counters `Admin.ListApps` reads.

use std::{sync::Arc, time::Duration};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{apps::registry::Registry, edge::requests::RequestCounters, ops::process};

mod apps;
mod cluster;
mod histogram;
mod hooks;
mod sidecar;

use histogram::exported_buckets;

/// What the endpoint reads.
pub struct Sources {
    /// The apps and their statistics.
    pub registry: Arc<Registry>,
    /// Answered requests of RoomHooks, Admin and Health.
    pub requests: Arc<RequestCounters>,
    /// The shutdown drain: the sidecar is ready until it begins.
    pub drain: Arc<crate::lifecycle::drain::Drain>,
    /// The largest timeout: histogram buckets go at least this far.
    pub max_timeout: Duration,
    /// Cluster mode, when on.
    pub cluster: Option<crate::cluster::Cluster>,
    /// Cluster mode: post events in JetStream.
    pub cluster_posts: Option<ClusterPosts>,
}

/// What the endpoint reads of post events in cluster mode.
pub struct ClusterPosts {
    /// Publish latencies of post events.
    pub latency: Arc<crate::cluster::journal::PublishLatency>,
    /// The consumers' pending counts, read every few seconds.
    pub delivery: crate::cluster::delivery::Delivery,
}

/// Serves `/metrics` on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, sources: Arc<Sources>, stop: CancellationToken) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(sources);
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::error!("the metrics endpoint stopped: {err}");
    }
}

async fn metrics(State(sources): State<Arc<Sources>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&sources),
    )
}

/// The exposition text.
pub fn render(sources: &Sources) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let snapshot = sources.registry.snapshot();
    histogram::latency_histograms(&mut out, &snapshot, &exported_buckets(sources.max_timeout));
    hooks::hook_counters(&mut out, &snapshot);
    apps::app_gauges(&mut out, &snapshot);
    sidecar::request_counters(&mut out, sources);
    sidecar::sidecar_info(&mut out, sources);
    if let Some(cluster) = &sources.cluster {
        cluster::cluster_series(&mut out, cluster);
    }
    if let Some(posts) = &sources.cluster_posts {
        cluster::cluster_post_series(&mut out, posts, &exported_buckets(sources.max_timeout));
    }
    process::render(&mut out);
    out
}
