//! The chart's rows, its SVG's well-formedness, and its geometry.

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
