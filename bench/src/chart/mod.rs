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
const TARGET_COLOUR: &str = "#2ca02c";

/// The chart of `points` as a standalone SVG document; the `subtitle` lines say where the
/// numbers came from. One `<circle>` per point, each with a `<title>` naming its row and value.
pub fn svg(points: &[Point], subtitle: &[&str]) -> String {
    let frame = Frame::fitting(points);
    let mut out = String::new();
    frame.title(&mut out, subtitle);
    frame.axes(&mut out, points);
    frame.guides(&mut out, points);
    frame.points(&mut out, points);
    frame.legend(&mut out);
    out.push_str("</svg>\n");
    out
}

/// The plot's scales: apps on a log2 x axis, p50 µs on a linear y axis from 0 to `y_max`.
struct Frame {
    max_apps: usize,
    /// The Rust SDK's 1-app p50, if it ran: the 16-app target line is twice it.
    one_app: Option<f64>,
    /// The y axis' grid step and top, round numbers above every point and the target line.
    step: f64,
    y_max: f64,
    plot_w: f64,
    plot_h: f64,
}

impl Frame {
    /// Scales that fit every point and the 16-app target line.
    fn fitting(points: &[Point]) -> Self {
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
        Self {
            max_apps,
            one_app,
            step,
            y_max: ((highest / step).floor() + 1.0) * step,
            plot_w: WIDTH - LEFT - RIGHT,
            plot_h: HEIGHT - TOP - BOTTOM,
        }
    }

    /// Apps on a log2 scale: 1, 3, 4 and 16 all stay readable.
    fn x(&self, apps: usize) -> f64 {
        LEFT + self.plot_w * (apps as f64).log2() / (self.max_apps as f64).log2()
    }

    fn y(&self, us: f64) -> f64 {
        TOP + self.plot_h * (1.0 - us / self.y_max)
    }

    /// The document's opening tag, its background, the title and the `subtitle` lines.
    fn title(&self, out: &mut String, subtitle: &[&str]) {
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
    }

    /// The grid, the ticks (one on x per app count plotted) and the axes with their labels.
    fn axes(&self, out: &mut String, points: &[Point]) {
        let (plot_w, plot_h) = (self.plot_w, self.plot_h);
        let mut tick = 0.0;
        while tick <= self.y_max + self.step / 2.0 {
            let ty = self.y(tick);
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
            tick += self.step;
        }
        let mut ticks: Vec<usize> = points.iter().map(|p| p.apps).collect();
        ticks.sort_unstable();
        ticks.dedup();
        for apps in ticks {
            let tx = self.x(apps);
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
    }

    /// The floor across the plot, the 16-app target, and the sidecar's line through its points.
    fn guides(&self, out: &mut String, points: &[Point]) {
        let right = LEFT + self.plot_w;
        // The floor is one hop whatever the fan-out: a dashed line across, its point at 1 app.
        if let Some(floor) = points.iter().find(|p| p.series == Series::Floor) {
            let fy = self.y(floor.p50_us);
            let _ = writeln!(
                out,
                r#"<line x1="{LEFT}" y1="{fy:.1}" x2="{right:.1}" y2="{fy:.1}" stroke="{FLOOR_COLOUR}" stroke-dasharray="6 4"/>"#
            );
        }
        // The 16-app target: at most 2x the 1-app p50.
        if let Some(one) = self.one_app {
            let ty = self.y(2.0 * one);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{right:.1}" y2="{ty:.1}" stroke="{TARGET_COLOUR}" stroke-dasharray="2 3"/>"##
            );
        }
        let sidecar: Vec<String> = points
            .iter()
            .filter(|p| p.series == Series::Sidecar)
            .map(|p| format!("{:.1},{:.1}", self.x(p.apps), self.y(p.p50_us)))
            .collect();
        if sidecar.len() > 1 {
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{SIDECAR_COLOUR}" stroke-width="2"/>"#,
                sidecar.join(" ")
            );
        }
    }

    /// A titled circle per point, its value beside it.
    fn points(&self, out: &mut String, points: &[Point]) {
        for p in points {
            let colour = colour(p.series);
            let (px, py) = (self.x(p.apps), self.y(p.p50_us));
            let _ = writeln!(
                out,
                r#"<circle cx="{px:.1}" cy="{py:.1}" r="5" fill="{colour}"><title>{}: {:.1} µs</title></circle>"#,
                escape(&p.label),
                p.p50_us
            );
            // Values beside their point, on the inner side at the right edge.
            let (dx, anchor) = if p.apps == self.max_apps {
                (-8.0, "end")
            } else {
                (8.0, "start")
            };
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" fill="{colour}" text-anchor="{anchor}">{:.0}</text>"#,
                px + dx,
                py - 6.0,
                p.p50_us
            );
        }
    }

    /// The legend, right of the plot.
    fn legend(&self, out: &mut String) {
        let legend_x = LEFT + self.plot_w + 20.0;
        let entries = [
            (FLOOR_COLOUR, "floor: bare tonic relay"),
            (SIDECAR_COLOUR, "sidecar, a connection per app"),
            (ONE_CONNECTION_COLOUR, "sidecar, apps on one connection"),
            (TARGET_COLOUR, "target: 2x the 1-app p50"),
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
    }
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
mod tests;
