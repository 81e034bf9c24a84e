//! Per app and hook: calls by status, vetoes, shadow disagreements, skips, failure-policy
//! effects, post deliveries and acks — one table row per counter.

use std::{fmt::Write, sync::atomic::Ordering};

use roomhooks::v1::OutcomeStatus;

use crate::{
    apps::registry::Snapshot,
    apps::stats::HookCounters,
    hook::{Hook, Stage},
};

/// The Pre stages.
const PRE: &[Stage] = &[Stage::Veto, Stage::Extend, Stage::Modify];
/// Every stage.
const ALL: &[Stage] = &[Stage::Veto, Stage::Extend, Stage::Modify, Stage::Post];

/// A counter's values, each with an optional `status` label.
type Values = Vec<(Option<&'static str>, u64)>;

/// One per-hook counter series: its name (after `roomhooks_`), help, the stages whose hooks have
/// it, and its values, each with an optional `status` label.
struct Series {
    name: &'static str,
    help: &'static str,
    stages: &'static [Stage],
    values: fn(&HookCounters) -> Values,
}

/// A series with one value read from one counter.
macro_rules! single {
    ($name:literal, $help:literal, $stages:expr, $field:ident) => {
        Series {
            name: $name,
            help: $help,
            stages: $stages,
            values: |c| vec![(None, c.$field.load(Ordering::Relaxed))],
        }
    };
}

/// Every per-hook counter, in exposition order.
const SERIES: &[Series] = &[
    Series {
        name: "app_calls_total",
        help: "Hook calls by outcome status.",
        stages: ALL,
        values: calls_by_status,
    },
    Series {
        name: "app_vetoes_total",
        help: "Veto hook calls in which the app prevented the action.",
        stages: &[Stage::Veto],
        values: |c| vec![(None, c.status(OutcomeStatus::Prevented))],
    },
    single!(
        "app_shadow_disagreements_total",
        "Shadow answers (mode = \"shadow\") that would have changed the verdict or the room.",
        PRE,
        shadow_disagreements
    ),
    single!(
        "app_skipped_total",
        "Calls not made (post events not queued) because one of the app's match conditions was false.",
        ALL,
        skipped
    ),
    single!(
        "app_fail_opens_total",
        "App failures counted as no objection or no change (policy IGNORE).",
        PRE,
        fail_opens
    ),
    single!(
        "app_fail_closeds_total",
        "App failures that prevented the action (policy FAIL or essential).",
        PRE,
        fail_closeds
    ),
    single!(
        "post_deliveries_total",
        "Post events sent to the app, redeliveries included.",
        &[Stage::Post],
        deliveries
    ),
    single!(
        "post_redeliveries_total",
        "Post events sent again (not acknowledged in time, or the instance went away).",
        &[Stage::Post],
        redeliveries
    ),
    single!(
        "post_acks_total",
        "Post events the app acknowledged.",
        &[Stage::Post],
        acks
    ),
];

/// Writes every per-hook counter of every app, for the hooks it has used.
pub(super) fn hook_counters(out: &mut String, snapshot: &Snapshot) {
    for series in SERIES {
        let name = series.name;
        let _ = writeln!(out, "# HELP roomhooks_{name} {}", series.help);
        let _ = writeln!(out, "# TYPE roomhooks_{name} counter");
        for app in snapshot.apps() {
            for hook in Hook::ALL {
                let c = app.stats.hook(hook);
                if !c.is_used() || !series.stages.contains(&hook.stage()) {
                    continue;
                }
                for (status, v) in (series.values)(c) {
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
    }
}

/// Calls by each outcome status that has any.
fn calls_by_status(c: &HookCounters) -> Values {
    (0..c.by_status.len())
        .filter_map(|i| {
            let n = c.by_status[i].load(Ordering::Relaxed);
            status_name(i).filter(|_| n > 0).map(|s| (Some(s), n))
        })
        .collect()
}

/// The exposition name of the outcome status with wire value `index` (none for unspecified).
fn status_name(index: usize) -> Option<&'static str> {
    let status = OutcomeStatus::try_from(i32::try_from(index).ok()?).ok()?;
    (status != OutcomeStatus::Unspecified)
        .then(|| status.as_str_name().trim_start_matches("OUTCOME_STATUS_"))
}
