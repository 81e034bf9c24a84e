//! Per-app gauges: instances, enabled, and the app's post queue.

use std::fmt::Write;

use crate::apps::registry::{AppView, Snapshot};

/// A per-app series: name, type, help, value.
type AppSeries<'a> = (&'a str, &'a str, &'a str, &'a dyn Fn(&AppView) -> f64);

/// Per app: instances, enabled, and its post queue.
pub(super) fn app_gauges(out: &mut String, snapshot: &Snapshot) {
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
