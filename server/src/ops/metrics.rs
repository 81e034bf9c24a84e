//! The Prometheus endpoint: `GET /metrics` in the text exposition format, every series prefixed
//! `roomhooks_`. Rendered on request from the same counters `Admin.ListApps` reads.

use std::{
    fmt::Write,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use roomhooks::v1::OutcomeStatus;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    apps::registry::{Registry, Snapshot},
    apps::stats::BUCKETS_US,
    edge::requests::{RequestCounters, code_name},
    hook::{Hook, Stage},
    ops::process,
};

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

/// Bucket indices exported to Prometheus: 1, 2.5 and 5 per decade, up to the max timeout.
fn exported_buckets(max: Duration) -> Vec<usize> {
    let max_us = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
    let mut out = Vec::new();
    for (i, &upper) in BUCKETS_US.iter().enumerate() {
        if matches!(i % 10, 0 | 4 | 7) {
            out.push(i);
            if upper >= max_us {
                break;
            }
        }
    }
    out
}

fn status_name(index: usize) -> Option<&'static str> {
    let status = OutcomeStatus::try_from(i32::try_from(index).ok()?).ok()?;
    (status != OutcomeStatus::Unspecified)
        .then(|| status.as_str_name().trim_start_matches("OUTCOME_STATUS_"))
}

/// Reads per-hook counter values, each with an optional `status` label.
type CounterValues<'a> =
    &'a dyn Fn(&crate::apps::stats::HookCounters) -> Vec<(Option<&'static str>, u64)>;
/// A per-app series: name, type, help, value.
type AppSeries<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a dyn Fn(&crate::apps::registry::AppView) -> f64,
);

/// The exposition text.
pub fn render(sources: &Sources) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let snapshot = sources.registry.snapshot();
    latency_histograms(&mut out, &snapshot, &exported_buckets(sources.max_timeout));
    hook_counters(&mut out, &snapshot);
    app_gauges(&mut out, &snapshot);
    request_counters(&mut out, sources);
    sidecar_info(&mut out, sources);
    if let Some(cluster) = &sources.cluster {
        cluster_series(&mut out, cluster);
    }
    if let Some(posts) = &sources.cluster_posts {
        cluster_post_series(&mut out, posts, &exported_buckets(sources.max_timeout));
    }
    process::render(&mut out);
    out
}

/// Cluster mode: the NATS connection and the Pre calls forwarded to other sidecars.
fn cluster_series(out: &mut String, cluster: &crate::cluster::Cluster) {
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

/// Per app and hook: the call latency histogram.
fn latency_histograms(out: &mut String, snapshot: &Snapshot, buckets: &[usize]) {
    let _ = writeln!(
        out,
        "# HELP roomhooks_app_call_duration_seconds Time from sending a hook call to its outcome, per app and hook."
    );
    let _ = writeln!(out, "# TYPE roomhooks_app_call_duration_seconds histogram");
    for app in snapshot.apps() {
        for hook in Hook::ALL {
            let c = app.stats.hook(hook);
            let total = c.calls.load(Ordering::Relaxed);
            if total == 0 {
                continue;
            }
            let labels = format!("app_id=\"{}\",hook=\"{}\"", app.spec.app_id, hook.name());
            let sum_us = c.latency_sum_us.load(Ordering::Relaxed);
            histogram_series(
                out,
                "roomhooks_app_call_duration_seconds",
                &labels,
                &c.latency,
                sum_us,
                buckets,
            );
        }
    }
}

/// One histogram's series (`_bucket` at the exported `buckets`, `+Inf`, `_sum`, `_count`) from
/// per-bucket counters of microseconds; `labels` go before `le` (empty: none).
fn histogram_series(
    out: &mut String,
    name: &str,
    labels: &str,
    counters: &[std::sync::atomic::AtomicU64],
    sum_us: u64,
    buckets: &[usize],
) {
    let counts: Vec<u64> = counters.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    let sep = if labels.is_empty() { "" } else { "," };
    for &i in buckets {
        let cumulative: u64 = counts[..=i].iter().sum();
        let le = BUCKETS_US[i] as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
        );
    }
    let count: u64 = counts.iter().sum();
    let sum = sum_us as f64 / 1e6;
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let braces = |l: &str| {
        if l.is_empty() {
            String::new()
        } else {
            format!("{{{l}}}")
        }
    };
    let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
    let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
}

/// Per app and hook: calls by status, vetoes, failure-policy effects, post deliveries and acks.
fn hook_counters(out: &mut String, snapshot: &Snapshot) {
    const PRE: &[Stage] = &[Stage::Veto, Stage::Extend, Stage::Modify];
    const ALL: &[Stage] = &[Stage::Veto, Stage::Extend, Stage::Modify, Stage::Post];
    let mut counter = |name: &str, help: &str, stages: &[Stage], value: CounterValues<'_>| {
        let _ = writeln!(out, "# HELP roomhooks_{name} {help}");
        let _ = writeln!(out, "# TYPE roomhooks_{name} counter");
        for app in snapshot.apps() {
            for hook in Hook::ALL {
                let c = app.stats.hook(hook);
                if !c.is_used() || !stages.contains(&hook.stage()) {
                    continue;
                }
                for (status, v) in value(c) {
                    let extra = status
                        .map(|s| format!(",status=\"{s}\""))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "roomhooks_{name}{{app_id=\"{}\",hook=\"{}\"{extra}}} {v}",
                        app.spec.app_id,
                        hook.name()
                    );
                }
            }
        }
    };
    counter(
        "app_calls_total",
        "Hook calls by outcome status.",
        ALL,
        &|c| {
            (0..c.by_status.len())
                .filter_map(|i| {
                    let n = c.by_status[i].load(Ordering::Relaxed);
                    status_name(i).filter(|_| n > 0).map(|s| (Some(s), n))
                })
                .collect()
        },
    );
    counter(
        "app_vetoes_total",
        "Veto hook calls in which the app prevented the action.",
        &[Stage::Veto],
        &|c| vec![(None, c.status(OutcomeStatus::Prevented))],
    );
    counter(
        "app_shadow_disagreements_total",
        "Shadow answers (mode = \"shadow\") that would have changed the verdict or the room.",
        PRE,
        &|c| vec![(None, c.shadow_disagreements.load(Ordering::Relaxed))],
    );
    counter(
        "app_skipped_total",
        "Calls not made (post events not queued) because one of the app's match conditions was false.",
        ALL,
        &|c| vec![(None, c.skipped.load(Ordering::Relaxed))],
    );
    counter(
        "app_fail_opens_total",
        "App failures counted as no objection or no change (policy IGNORE).",
        PRE,
        &|c| vec![(None, c.fail_opens.load(Ordering::Relaxed))],
    );
    counter(
        "app_fail_closeds_total",
        "App failures that prevented the action (policy FAIL or essential).",
        PRE,
        &|c| vec![(None, c.fail_closeds.load(Ordering::Relaxed))],
    );
    counter(
        "post_deliveries_total",
        "Post events sent to the app, redeliveries included.",
        &[Stage::Post],
        &|c| vec![(None, c.deliveries.load(Ordering::Relaxed))],
    );
    counter(
        "post_redeliveries_total",
        "Post events sent again (not acknowledged in time, or the instance went away).",
        &[Stage::Post],
        &|c| vec![(None, c.redeliveries.load(Ordering::Relaxed))],
    );
    counter(
        "post_acks_total",
        "Post events the app acknowledged.",
        &[Stage::Post],
        &|c| vec![(None, c.acks.load(Ordering::Relaxed))],
    );
}

/// Per app: instances, enabled, and its post queue.
fn app_gauges(out: &mut String, snapshot: &Snapshot) {
    let gauges: [AppSeries<'_>; 6] = [
        (
            "app_instances",
            "gauge",
            "Connected instances per app.",
            &|a| a.instances.iter().filter(|i| i.is_live()).count() as f64,
        ),
        ("app_enabled", "gauge", "1 when the app is enabled.", &|a| {
            f64::from(u8::from(a.enabled))
        }),
        (
            "post_queue_depth",
            "gauge",
            "Post events queued for the app and not yet acknowledged.",
            &|a| a.posts.len() as f64,
        ),
        (
            "post_queue_oldest_age_seconds",
            "gauge",
            "Age of the oldest unacknowledged post event.",
            &|a| a.posts.oldest_age().as_secs_f64(),
        ),
        (
            "post_dropped_total",
            "counter",
            "Post events dropped because the app's queue was full.",
            &|a| a.posts.dropped() as f64,
        ),
        (
            "post_dead_letters",
            "gauge",
            "Post events that reached the attempt cap (Admin.ListDeadLetters).",
            &|a| a.posts.dead_count() as f64,
        ),
    ];
    for (name, kind, help, value) in gauges {
        let _ = writeln!(out, "# HELP roomhooks_{name} {help}");
        let _ = writeln!(out, "# TYPE roomhooks_{name} {kind}");
        for app in snapshot.apps() {
            let _ = writeln!(
                out,
                "roomhooks_{name}{{app_id=\"{}\"}} {}",
                app.spec.app_id,
                value(app)
            );
        }
    }
}

/// Every counted RPC by service, method and code.
fn request_counters(out: &mut String, sources: &Sources) {
    let _ = writeln!(
        out,
        "# HELP roomhooks_backend_requests_total RPCs answered by RoomHooks, Admin and Health, by \
         service, method and gRPC code."
    );
    let _ = writeln!(out, "# TYPE roomhooks_backend_requests_total counter");
    for (rpc, code, n) in sources.requests.samples() {
        let _ = writeln!(
            out,
            "roomhooks_backend_requests_total{{service=\"{}\",method=\"{}\",code=\"{}\"}} {n}",
            rpc.service(),
            rpc.method(),
            code_name(code)
        );
    }
}

/// Cluster mode: the publish latency of post events, and each app consumer's pending messages.
fn cluster_post_series(out: &mut String, sources: &ClusterPosts, buckets: &[usize]) {
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

/// Readiness and the build.
fn sidecar_info(out: &mut String, sources: &Sources) {
    let _ = writeln!(
        out,
        "# HELP roomhooks_ready 1 while the sidecar takes new calls, 0 once it drains for shutdown."
    );
    let _ = writeln!(out, "# TYPE roomhooks_ready gauge");
    let _ = writeln!(
        out,
        "roomhooks_ready {}",
        u8::from(!sources.drain.has_begun())
    );
    let _ = writeln!(
        out,
        "# HELP roomhooks_build_info The running build: its version and git commit."
    );
    let _ = writeln!(out, "# TYPE roomhooks_build_info gauge");
    let _ = writeln!(
        out,
        "roomhooks_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        option_env!("ROOMHOOKS_COMMIT").unwrap_or("unknown")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_buckets_reach_the_max_timeout() {
        let buckets = exported_buckets(Duration::from_secs(10));
        assert_eq!(BUCKETS_US[buckets[0]], 10);
        assert_eq!(BUCKETS_US[*buckets.last().unwrap()], 10_000_000);
        let long = exported_buckets(Duration::from_secs(30));
        assert!(BUCKETS_US[*long.last().unwrap()] >= 30_000_000);
    }
}
