//! `roomhooks-bench --quick` end to end against the debug `roomhooks` binary: it finishes, and its
//! table has every row with positive numbers. Times are never asserted (CI machines vary).

use std::{
    collections::HashMap,
    io::Read,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// How long the smoke run may take before the test gives up (it takes seconds).
const LIMIT: Duration = Duration::from_secs(180);

/// The bench executable built for this test.
const BENCH: &str = env!("CARGO_BIN_EXE_roomhooks-bench");

/// The sidecar binary next to the bench (cargo builds it for the server's own tests).
fn sidecar_bin() -> Option<PathBuf> {
    let bench = PathBuf::from(BENCH);
    let bin = bench.with_file_name(format!("roomhooks{}", std::env::consts::EXE_SUFFIX));
    bin.is_file().then_some(bin)
}

/// Runs the bench in quick mode with `extra` flags and returns its stdout.
fn run_quick(sidecar: &PathBuf, extra: &[&str]) -> String {
    let mut child = Command::new(BENCH)
        .arg("--quick")
        .arg("--sidecar-bin")
        .arg(sidecar)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the bench starts");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the bench can be waited for") {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("roomhooks-bench --quick did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = reader
        .join()
        .expect("the reader thread finishes")
        .expect("stdout is UTF-8");
    assert!(
        status.success(),
        "roomhooks-bench --quick failed ({status}):\n{text}"
    );
    text
}

/// The table's rows, by label, with their cells.
fn rows(text: &str) -> HashMap<String, Vec<String>> {
    text.lines()
        .filter(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells.len() == 9 && cells[0] != "scenario" && !cells[0].starts_with('-'))
        .map(|mut cells| (cells.remove(0), cells))
        .collect()
}

fn positive(row: &str, cells: &[String], columns: &[usize]) {
    for &column in columns {
        let cell = &cells[column];
        let value: f64 = cell
            .parse()
            .unwrap_or_else(|_| panic!("row {row:?} column {column}: {cell:?} is not a number"));
        assert!(
            value > 0.0,
            "row {row:?} column {column}: {value} is not positive"
        );
    }
}

/// The Node rows whose packages are built here, with Node on the PATH: the bench runs exactly
/// those and leaves the others out.
fn node_rows_when_built() -> Vec<&'static str> {
    let node = Command::new(std::env::var_os("NODE").unwrap_or_else(|| "node".into()))
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !node {
        return Vec::new();
    }
    let sdk = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../client-sdk/typescript");
    let built = |files: &[&str]| files.iter().all(|f| sdk.join(f).is_file());
    let sdk_built = built(&["dist/index.js"]);
    let runner_built = built(&[
        "apps-engine/dist/index.js",
        "apps-engine/build-test/test/apps/word-filter/WordFilterApp.js",
    ]);
    let mut rows = Vec::new();
    if sdk_built && std::env::var_os("ROOMHOOKS_TS_BENCH_APP").is_none() {
        rows.push("PreRoomUserJoin veto, 1 app (TypeScript SDK, Node)");
    }
    if sdk_built && runner_built && std::env::var_os("ROOMHOOKS_AE_BENCH_APP").is_none() {
        rows.push("PreRoomUserJoin veto, 1 app (Apps-Engine runner, Node)");
    }
    rows
}

/// The cluster rows, when the `nats-server` the bench looks for first (the one `cargo test`'s
/// cluster suites install into target/nats-venv) is there: the bench runs them then.
fn cluster_rows_when_nats_is_installed() -> Vec<&'static str> {
    let target = PathBuf::from(BENCH)
        .parent()
        .and_then(|profile| profile.parent())
        .map(|target| target.join("nats-venv/bin/nats-server"));
    if !target.is_some_and(|bin| bin.is_file()) {
        return Vec::new();
    }
    vec![
        "PreRoomUserJoin veto, 1 app, cluster mode (local)",
        "PreRoomUserJoin veto, 1 app at another sidecar (cluster, forwarded)",
        "PostEvents x100 accepted, 3 apps, cluster: 1 sidecar, R1 (events/s)",
        "PostEvents x100 accepted, 3 apps, cluster: 3 sidecars, R1 (events/s)",
        "PostEvents x100 accepted, 3 apps, cluster: 1 sidecar, R3 (events/s)",
        "PostEvents x100 accepted, 3 apps, cluster: 3 sidecars, R3 (events/s)",
    ]
}

/// Whether a quick run had the cluster rows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cluster {
    /// Run as found: with them when nats-server is installed.
    AsFound,
    /// `--no-cluster`.
    Left,
}

/// Checks that every row of a quick run's table is there with positive numbers.
fn every_row_positive(text: &str, cluster: Cluster) {
    let rows = rows(text);
    let all_numbers = [0, 1, 2, 3, 4, 5, 6, 7];
    for label in [
        "floor: bare tonic relay",
        "reference: bare tonic unary, no hop",
        "PreRoomUserJoin, no apps",
        "PreRoomUserJoin, 16 apps all skipped by match conditions",
        "PreRoomUserJoin veto, 1 app",
        "PreRoomUserJoin veto, 3 apps",
        "PreRoomUserJoin veto, 4 apps",
        "PreRoomUserJoin veto, 16 apps",
        "PreRoomUserJoin veto, 16 apps, one connection",
        "PreRoomCreate prevent+extend+modify, 3 apps",
        "PreRoomCreate prevent+extend+modify, 3 apps, one connection",
        "PostRoomCreate accepted, 3 apps",
    ] {
        let cells = rows
            .get(label)
            .unwrap_or_else(|| panic!("no row {label:?} in:\n{text}"));
        positive(label, cells, &all_numbers);
    }
    for label in node_rows_when_built() {
        let cells = rows.get(label).unwrap_or_else(|| {
            panic!("no row {label:?} although its packages are built, in:\n{text}")
        });
        positive(label, cells, &all_numbers);
    }
    let cluster = match cluster {
        Cluster::AsFound => cluster_rows_when_nats_is_installed(),
        Cluster::Left => Vec::new(),
    };
    for label in &cluster {
        let cells = rows.get(*label).unwrap_or_else(|| {
            panic!("no row {label:?} although nats-server is installed, in:\n{text}")
        });
        // A batch's latency has no floor ratio.
        let batch = label.starts_with("PostEvents");
        positive(
            label,
            cells,
            if batch {
                &[0, 1, 2, 5, 6, 7]
            } else {
                &all_numbers
            },
        );
    }
    if !cluster.is_empty() {
        let delivered = "PostEvents x100 delivered to all, 3 apps, cluster: 3 sidecars, R3";
        let cells = rows
            .get(delivered)
            .unwrap_or_else(|| panic!("no row {delivered:?} in:\n{text}"));
        positive(delivered, cells, &[5, 6]);
        let idle = "memory: sidecar idle, cluster mode";
        let cells = rows
            .get(idle)
            .unwrap_or_else(|| panic!("no row {idle:?} in:\n{text}"));
        positive(idle, cells, &[7]);
    }
    let delivered = "PostRoomCreate delivered to all, 3 apps";
    let cells = rows
        .get(delivered)
        .unwrap_or_else(|| panic!("no row {delivered:?} in:\n{text}"));
    positive(delivered, cells, &[5, 6]);
    for prefix in [
        "memory: sidecar idle",
        "memory: sidecar with ",
        "memory: sidecar peak under load",
    ] {
        let (label, cells) = rows
            .iter()
            .find(|(label, _)| label.starts_with(prefix))
            .unwrap_or_else(|| panic!("no row starting {prefix:?} in:\n{text}"));
        positive(label, cells, &[7]);
    }
}

/// The sidecar binary, or why the test is skipped.
fn sidecar_or_skip() -> Option<PathBuf> {
    let sidecar = sidecar_bin();
    if sidecar.is_none() {
        println!(
            "skipped: {} has no `roomhooks` binary next to it; run `cargo build --bin roomhooks` \
             (plain `cargo test` at the workspace root builds it)",
            BENCH
        );
    }
    sidecar
}

#[test]
fn quick_mode_prints_every_row_with_positive_numbers() {
    let Some(sidecar) = sidecar_or_skip() else {
        return;
    };
    every_row_positive(&run_quick(&sidecar, &[]), Cluster::AsFound);
}

#[test]
fn quick_mode_runs_every_scenario_with_the_hops_pinned_to_their_own_cpu() {
    let Some(sidecar) = sidecar_or_skip() else {
        return;
    };
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        println!("skipped: --pin needs at least 2 CPUs");
        return;
    }
    // The cluster rows run once, in the test above.
    every_row_positive(
        &run_quick(&sidecar, &["--pin", "--no-cluster"]),
        Cluster::Left,
    );
}

#[test]
fn quick_mode_with_svg_writes_the_fan_out_chart_with_a_point_per_plotted_row() {
    let Some(sidecar) = sidecar_or_skip() else {
        return;
    };
    let path = std::env::temp_dir().join(format!("roomhooks-bench-{}.svg", std::process::id()));
    let path_arg = path.to_str().expect("a UTF-8 temp path");

    let text = run_quick(&sidecar, &["--svg", path_arg, "--no-cluster"]);
    let svg = std::fs::read_to_string(&path).expect("the chart was written");
    let _ = std::fs::remove_file(&path);

    every_row_positive(&text, Cluster::Left);
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    // The floor, the 1-, 3-, 4- and 16-app joins, and the 16 apps on one connection.
    assert_eq!(svg.matches("<circle ").count(), 6, "{svg}");
    for label in [
        "floor: bare tonic relay",
        "PreRoomUserJoin veto, 16 apps, one connection",
    ] {
        assert!(
            svg.contains(&format!("<title>{label}: ")),
            "{label} in {svg}"
        );
    }
}
