//! The one table the bench prints: medians of every scenario, ratios to the floor, and memory.

use std::fmt::Write;

use crate::{
    cpu::PerEvent,
    memory::AtRest,
    plan::Plan,
    scenario::{CLUSTER_POST_APPS, Key, POST_BATCH, Round},
    stats::{Latency, median},
};

/// Bytes per megabyte (the targets are in MB).
const MB: f64 = 1_000_000.0;

/// The medians of one scenario's runs.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    /// Which scenario.
    pub key: Key,
    /// Median p50, p99 and p999 of the sequential runs.
    pub latency: Latency,
    /// Median calls per second at the plan's calls in flight.
    pub per_sec: f64,
    /// Post only: median events per second handled by every app.
    pub delivered_per_sec: Option<f64>,
    /// The peak RSS of the hop process (sidecar or relay) during the benchmark, in bytes.
    pub peak_rss: Option<u64>,
    /// Whether the hop is the sidecar.
    pub is_sidecar: bool,
    /// Node rows only: median CPU time of the Node app process per call, µs.
    pub app_cpu_us_per_call: Option<f64>,
    /// Cluster post rows only: median CPU per event delivered, by process group, µs.
    pub cpu_per_event: Option<PerEvent>,
}

impl Summary {
    /// Medians of `rounds`.
    pub fn of(key: Key, rounds: &[Round], peak_rss: Option<u64>, is_sidecar: bool) -> Self {
        let delivered: Vec<f64> = rounds.iter().filter_map(|r| r.delivered_per_sec).collect();
        let app_cpu: Vec<f64> = rounds
            .iter()
            .filter_map(|r| r.app_cpu_us_per_call)
            .collect();
        Self {
            key,
            latency: Latency {
                p50: median(rounds.iter().map(|r| r.latency.p50)),
                p99: median(rounds.iter().map(|r| r.latency.p99)),
                p999: median(rounds.iter().map(|r| r.latency.p999)),
            },
            per_sec: median(rounds.iter().map(|r| r.per_sec)),
            delivered_per_sec: (!delivered.is_empty()).then(|| median(delivered)),
            peak_rss,
            is_sidecar,
            app_cpu_us_per_call: (!app_cpu.is_empty()).then(|| median(app_cpu)),
            cpu_per_event: median_cpu(rounds),
        }
    }
}

/// The per-group medians of the rounds' CPU per event, when the rounds have it.
fn median_cpu(rounds: &[Round]) -> Option<PerEvent> {
    let cpu: Vec<PerEvent> = rounds.iter().filter_map(|r| r.cpu_per_event).collect();
    (!cpu.is_empty()).then(|| PerEvent {
        nats: median(cpu.iter().map(|c| c.nats)),
        sidecars: median(cpu.iter().map(|c| c.sidecars)),
        apps: median(cpu.iter().map(|c| c.apps)),
        load: median(cpu.iter().map(|c| c.load)),
    })
}

/// One line of the table; `None` cells print as `-`.
struct Row {
    label: String,
    cells: [Option<String>; 8],
}

fn us(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn ratio(value: f64, floor: f64) -> Option<String> {
    (floor > 0.0).then(|| format!("{:.2}", value / floor))
}

fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MB)
}

/// The floor's summary, if it ran.
pub fn floor(summaries: &[Summary]) -> Option<&Summary> {
    summaries.iter().find(|s| s.key == Key::Floor)
}

/// Renders the table (Markdown, so it can be pasted into docs/performance.md).
pub fn table(plan: &Plan, summaries: &[Summary], at_rest: &AtRest) -> String {
    let mut rows = scenario_rows(summaries);
    rows.extend(memory_rows(summaries, at_rest));
    let header = [
        "scenario".to_owned(),
        "p50 µs".to_owned(),
        "p99 µs".to_owned(),
        "p999 µs".to_owned(),
        "p50 / floor".to_owned(),
        "p99 / floor".to_owned(),
        format!("calls/s @{}", plan.in_flight),
        "calls/s / floor".to_owned(),
        "RSS MB".to_owned(),
    ];
    markdown(&header, rows)
}

/// A row per scenario, and for posts a second row of what was delivered to every app.
fn scenario_rows(summaries: &[Summary]) -> Vec<Row> {
    let floor = floor(summaries).copied();
    let (floor_p50, floor_p99, floor_rate) = floor.map_or((0.0, 0.0, 0.0), |f| {
        (f.latency.p50, f.latency.p99, f.per_sec)
    });
    let mut rows = Vec::new();
    for s in summaries {
        let batch = matches!(s.key, Key::PostBatch(_) | Key::PostBatchCluster { .. });
        rows.push(Row {
            label: s.key.label(),
            cells: [
                Some(us(s.latency.p50)),
                Some(us(s.latency.p99)),
                Some(us(s.latency.p999)),
                // A batch call's latency is not comparable with one hop's.
                ratio(s.latency.p50, floor_p50).filter(|_| !batch),
                ratio(s.latency.p99, floor_p99).filter(|_| !batch),
                Some(format!("{:.0}", s.per_sec)),
                ratio(s.per_sec, floor_rate),
                s.peak_rss.map(mb),
            ],
        });
        if let (Some(label), Some(delivered)) = (delivered_label(s.key), s.delivered_per_sec) {
            rows.push(Row {
                label,
                cells: [
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some(format!("{delivered:.0}")),
                    ratio(delivered, floor_rate),
                    None,
                ],
            });
        }
    }
    rows
}

/// The label of a post row's "delivered to all" line; `None` for the other rows.
fn delivered_label(key: Key) -> Option<String> {
    match key {
        Key::Post(n) => Some(format!("PostRoomCreate delivered to all, {n} apps")),
        Key::PostBatch(n) => Some(format!(
            "PostEvents x{POST_BATCH} delivered to all, {n} apps"
        )),
        Key::PostBatchCluster { sidecars, replicas } => Some(format!(
            "PostEvents x{POST_BATCH} delivered to all, {CLUSTER_POST_APPS} apps, cluster: \
             {sidecars} sidecar{}, R{replicas}",
            if sidecars == 1 { "" } else { "s" }
        )),
        _ => None,
    }
}

/// The sidecar's memory at rest, with many apps, and its peak under load.
fn memory_rows(summaries: &[Summary], at_rest: &AtRest) -> Vec<Row> {
    let memory_row = |label: String, bytes: u64| Row {
        label,
        cells: [None, None, None, None, None, None, None, Some(mb(bytes))],
    };
    let mut rows = vec![memory_row("memory: sidecar idle".into(), at_rest.idle)];
    if let Some(idle) = at_rest.cluster_idle {
        rows.push(memory_row(
            "memory: sidecar idle, cluster mode".into(),
            idle,
        ));
    }
    rows.push(memory_row(
        format!(
            "memory: sidecar with {} app instances ({} ids x {})",
            at_rest.apps * at_rest.instances,
            at_rest.apps,
            at_rest.instances
        ),
        at_rest.connected,
    ));
    if let Some(peak) = summaries
        .iter()
        .filter(|s| s.is_sidecar)
        .filter_map(|s| s.peak_rss.map(|rss| (rss, s.key)))
        .max_by_key(|(rss, _)| *rss)
    {
        rows.push(memory_row(
            format!("memory: sidecar peak under load ({})", peak.1.label()),
            peak.0,
        ));
    }
    rows
}

/// `rows` under `header` as a Markdown table, columns padded to their widest cell, the label
/// left-aligned and the figures right-aligned.
fn markdown(header: &[String], rows: Vec<Row>) -> String {
    let lines: Vec<Vec<String>> = rows
        .into_iter()
        .map(|row| {
            std::iter::once(row.label)
                .chain(
                    row.cells
                        .into_iter()
                        .map(|c| c.unwrap_or_else(|| "-".into())),
                )
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::from("|");
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i == 0 {
                let _ = write!(text, " {cell}{} |", " ".repeat(pad));
            } else {
                let _ = write!(text, " {}{cell} |", " ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{text}");
    };
    line(header);
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                "-".repeat(*w)
            } else {
                format!("{}:", "-".repeat(w.saturating_sub(1)))
            }
        })
        .collect();
    line(&rule);
    for cells in &lines {
        line(cells);
    }
    out
}
