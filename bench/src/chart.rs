//! `--svg FILE`: the fan-out chart — sequential p50 latency by number of veto apps for the
//! sidecar (a connection per app, and the 16 apps on one connection) next to the floor — written
//! as hand-made SVG text, so the doc can show the table's shape at a glance.

use std::fmt::Write;

use crate::{report::Summary, scenario::Key};

/// Which line a point belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Series {
    /// The bare tonic relay: one hop, drawn across every app count.
    Floor,
    /// PreRoomUserJoin, each app on its own connection.
    Sidecar,
    /// PreRoomUserJoin, the apps of one process on one connection.
    OneConnection,
}

/// One plotted row of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// The row's label in the table.
    pub label: String,
    /// Veto apps in the call (1 for the floor: one hop).
    pub apps: usize,
    /// Its sequential p50, µs.
    pub p50_us: f64,
    /// Its line.
    pub series: Series,
}

/// The rows the chart plots, in table order: the floor, then the join rows.
pub fn points(summaries: &[Summary]) -> Vec<Point> {
    summaries
        .iter()
        .filter_map(|s| {
            let (apps, series) = match s.key {
                Key::Floor => (1, Series::Floor),
                Key::Join(n) => (n, Series::Sidecar),
                Key::JoinShared(n) => (n, Series::OneConnection),
                _ => return None,
            };
            Some(Point {
                label: s.key.label(),
                apps,
                p50_us: s.latency.p50,
                series,
            })
        })
        .collect()
}

const WIDTH: f64 = 880.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 260.0;
const TOP: f64 = 75.0;
const BOTTOM: f64 = 60.0;
const FLOOR_COLOUR: &str = "#777777";
const SIDECAR_COLOUR: &str = "#1f77b4";
const ONE_CONNECTION_COLOUR: &str = "#d62728";

/// The chart of `points` as a standalone SVG document; the `subtitle` lines say where the
/// numbers came from. One `<circle>` per point, each with a `<title>` naming its row and value.
pub fn svg(points: &[Point], subtitle: &[&str]) -> String {
    let max_apps = points.iter().map(|p| p.apps).max().unwrap_or(1).max(2);
    let one_app = points
        .iter()
        .find(|p| p.series == Series::Sidecar && p.apps == 1)
        .map(|p| p.p50_us);
    let highest = points
        .iter()
        .map(|p| p.p50_us)
        .chain(one_app.map(|p| 2.0 * p))
        .fold(0.0, f64::max);
    let step = nice_step(highest / 5.0);
    let y_max = ((highest / step).floor() + 1.0) * step;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    // Apps on a log2 scale: 1, 3, 4 and 16 all stay readable.
    let x = |apps: usize| LEFT + plot_w * (apps as f64).log2() / (max_apps as f64).log2();
    let y = |us: f64| TOP + plot_h * (1.0 - us / y_max);

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">PreRoomUserJoin, sequential p50 by number of veto apps</text>"#
    );
    for (i, line) in subtitle.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{}" fill="{FLOOR_COLOUR}">{}</text>"#,
            40 + 16 * i,
            escape(line)
        );
    }

    // Axes, grid and ticks.
    let mut tick = 0.0;
    while tick <= y_max + step / 2.0 {
        let ty = y(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#e5e5e5"/>"##,
            LEFT + plot_w
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{tick:.0}</text>"#,
            LEFT - 8.0,
            ty + 4.0
        );
        tick += step;
    }
    let mut ticks: Vec<usize> = points.iter().map(|p| p.apps).collect();
    ticks.sort_unstable();
    ticks.dedup();
    for apps in ticks {
        let tx = x(apps);
        let _ = writeln!(
            out,
            r##"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#000000"/>"##,
            TOP + plot_h,
            TOP + plot_h + 5.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{tx:.1}" y="{:.1}" text-anchor="middle">{apps}</text>"#,
            TOP + plot_h + 20.0
        );
    }
    let _ = writeln!(
        out,
        r##"<polyline points="{LEFT},{TOP} {LEFT},{:.1} {:.1},{:.1}" fill="none" stroke="#000000"/>"##,
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">veto apps in the call (log scale)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 15.0
    );
    let _ = writeln!(
        out,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">p50 µs</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );

    // The floor is one hop whatever the fan-out: a dashed line across, its point at 1 app.
    if let Some(floor) = points.iter().find(|p| p.series == Series::Floor) {
        let fy = y(floor.p50_us);
        let _ = writeln!(
            out,
            r#"<line x1="{LEFT}" y1="{fy:.1}" x2="{:.1}" y2="{fy:.1}" stroke="{FLOOR_COLOUR}" stroke-dasharray="6 4"/>"#,
            LEFT + plot_w
        );
    }
    // The 16-app target: at most 2x the 1-app p50.
    if let Some(one) = one_app {
        let ty = y(2.0 * one);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#2ca02c" stroke-dasharray="2 3"/>"##,
            LEFT + plot_w
        );
    }
    let sidecar: Vec<String> = points
        .iter()
        .filter(|p| p.series == Series::Sidecar)
        .map(|p| format!("{:.1},{:.1}", x(p.apps), y(p.p50_us)))
        .collect();
    if sidecar.len() > 1 {
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{SIDECAR_COLOUR}" stroke-width="2"/>"#,
            sidecar.join(" ")
        );
    }
    for p in points {
        let colour = colour(p.series);
        let _ = writeln!(
            out,
            r#"<circle cx="{:.1}" cy="{:.1}" r="5" fill="{colour}"><title>{}: {:.1} µs</title></circle>"#,
            x(p.apps),
            y(p.p50_us),
            escape(&p.label),
            p.p50_us
        );
        // Values beside their point, on the inner side at the right edge.
        let (dx, anchor) = if p.apps == max_apps {
            (-8.0, "end")
        } else {
            (8.0, "start")
        };
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}" text-anchor="{anchor}">{:.0}</text>"#,
            x(p.apps) + dx,
            y(p.p50_us) - 6.0,
            p.p50_us
        );
    }

    // Legend.
    let legend_x = LEFT + plot_w + 20.0;
    let entries = [
        (FLOOR_COLOUR, "floor: bare tonic relay"),
        (SIDECAR_COLOUR, "sidecar, a connection per app"),
        (ONE_CONNECTION_COLOUR, "sidecar, apps on one connection"),
        ("#2ca02c", "target: 2x the 1-app p50"),
    ];
    for (i, (colour, text)) in entries.iter().enumerate() {
        let ly = TOP + 10.0 + 22.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{legend_x:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/>"#,
            ly - 10.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{ly:.1}">{}</text>"#,
            legend_x + 18.0,
            escape(text)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn colour(series: Series) -> &'static str {
    match series {
        Series::Floor => FLOOR_COLOUR,
        Series::Sidecar => SIDECAR_COLOUR,
        Series::OneConnection => ONE_CONNECTION_COLOUR,
    }
}

/// A round grid step (1, 2 or 5 times a power of ten) near `rough`.
fn nice_step(rough: f64) -> f64 {
    if rough <= 0.0 || !rough.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(rough.log10().floor());
    let scaled = rough / power;
    let nice = if scaled <= 1.0 {
        1.0
    } else if scaled <= 2.0 {
        2.0
    } else if scaled <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// `text` with XML's special characters escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Latency;

    fn summary(key: Key, p50: f64) -> Summary {
        Summary {
            key,
            latency: Latency {
                p50,
                p99: 2.0 * p50,
                p999: 3.0 * p50,
            },
            per_sec: 1000.0,
            delivered_per_sec: None,
            peak_rss: None,
            is_sidecar: key != Key::Floor,
            app_cpu_us_per_call: None,
            cpu_per_event: None,
        }
    }

    /// The round-5 p50s of docs/performance.md, with rows the chart leaves out.
    fn table() -> Vec<Summary> {
        vec![
            summary(Key::Floor, 158.0),
            summary(Key::FloorOtherRuntime, 164.0),
            summary(Key::Unary, 89.6),
            summary(Key::Join(1), 159.0),
            summary(Key::Join(3), 187.0),
            summary(Key::Join(4), 230.0),
            summary(Key::Join(16), 441.0),
            summary(Key::JoinShared(16), 314.0),
            summary(Key::Create(3), 482.0),
            summary(Key::Post(3), 156.0),
        ]
    }

    /// Checks that `doc` is well-formed XML as far as this chart uses it: every tag closed in
    /// order, attribute values quoted, and `&` only in the entities [`escape`] writes.
    fn assert_well_formed(doc: &str) {
        let mut open: Vec<String> = Vec::new();
        let mut rest = doc;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            assert_text_is_escaped(text);
            let end = rest[start..].find('>').expect("every tag ends") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "a tag inside a tag: <{tag}>");
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes in <{tag}>"
            );
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    open.pop().as_deref(),
                    Some(name),
                    "</{name}> closes the wrong tag"
                );
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().expect("a tag name");
                open.push(name.to_owned());
            }
            rest = &rest[end + 1..];
        }
        assert_text_is_escaped(rest);
        assert!(open.is_empty(), "tags left open: {open:?}");
    }

    fn assert_text_is_escaped(text: &str) {
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "an unescaped & in {text:?}"
            );
        }
        assert!(!text.contains('>'), "an unescaped > in {text:?}");
    }

    #[test]
    fn the_chart_plots_the_floor_and_every_join_row_and_nothing_else() {
        let points = points(&table());
        let plotted: Vec<(usize, Series)> = points.iter().map(|p| (p.apps, p.series)).collect();
        assert_eq!(
            plotted,
            [
                (1, Series::Floor),
                (1, Series::Sidecar),
                (3, Series::Sidecar),
                (4, Series::Sidecar),
                (16, Series::Sidecar),
                (16, Series::OneConnection),
            ]
        );
    }

    #[test]
    fn the_svg_is_well_formed_and_holds_one_point_per_row() {
        let points = points(&table());
        let doc = svg(
            &points,
            &["roomhooks-bench --quick <test> & more", "2 cores"],
        );

        assert!(
            doc.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{doc}"
        );
        assert!(doc.trim_end().ends_with("</svg>"));
        assert_well_formed(&doc);
        assert_eq!(doc.matches("<circle ").count(), points.len());
        for p in &points {
            let title = format!("<title>{}: {:.1} µs</title>", escape(&p.label), p.p50_us);
            assert!(doc.contains(&title), "no point titled {title:?} in:\n{doc}");
        }
    }

    #[test]
    fn the_well_formedness_check_rejects_a_tag_left_open_and_a_bare_ampersand() {
        let unclosed = std::panic::catch_unwind(|| assert_well_formed("<svg><g></svg>"));
        let ampersand = std::panic::catch_unwind(|| assert_well_formed("<svg>a & b</svg>"));
        assert!(unclosed.is_err() && ampersand.is_err());
    }

    #[test]
    fn a_slower_row_is_drawn_higher() {
        let doc = svg(&points(&table()), &[]);
        let cy = |label: &str| -> f64 {
            let at = doc
                .find(&format!("<title>{label}:"))
                .expect("the row's point");
            let circle = &doc[..at];
            let cy = circle.rfind("cy=\"").expect("its cy") + 4;
            circle[cy..].split('"').next().unwrap().parse().unwrap()
        };
        assert!(cy("PreRoomUserJoin veto, 16 apps") < cy("PreRoomUserJoin veto, 1 app"));
    }
}
